"""Command line: ``python -m pyro_vsc.report <folder of runs> [--output FOLDER]``.

Aggregates the ``evaluation.json`` of every run folder below the given folder (single runs or
Hydra multirun folders ``runs/multirun/<date>/<n>_.../``), mean ± std over seeds, into:

* ``table1.md``: Table 1 layout (validation loss, multi-information, IWAE loss for each J; max-ELBO
  runs with the straight-through estimator; FISTA row);
* ``table6.md``: the same with standard deviations (Table 6 is its J = 20 part);
* ``table2.md``: Table 2 layout, straight-through vs subgradient: % posterior and feature collapse;
  runs that diverged show as NaN;
* ``snr.png``: Figures 4/9, encoder and dictionary gradient SNR per method, J = 1 vs J = 20;
* ``jaccard.png``: Figure 5, histograms of the average pairwise Jaccard index, max vs avg.

Run folders without ``evaluation.json`` are listed, with the command that evaluates them.
"""

import argparse
import logging
from pathlib import Path

from pyro_vsc.reporting.collect import collect_evaluations
from pyro_vsc.reporting.figures import plot_jaccard, plot_snr
from pyro_vsc.reporting.tables import table1_markdown, table2_markdown, table6_markdown

log = logging.getLogger("pyro_vsc.report")


def write_report(root, output=None):
    """Writes the tables and figures for the runs under ``root`` into ``output`` (default ``root``).

    :returns: dict with ``written`` (paths), ``evaluated`` (number of runs) and ``unevaluated``
        (run folders without ``evaluation.json``).
    """
    evaluations, unevaluated = collect_evaluations(root)
    output = Path(output or root)
    output.mkdir(parents=True, exist_ok=True)
    written = []
    if unevaluated:
        log.warning("%d run folder(s) have no evaluation.json and are left out: %s\n  evaluate "
                    "them with: python -m pyro_vsc.evaluate %s", len(unevaluated),
                    ", ".join(str(p) for p in unevaluated), " ".join(str(p) for p in unevaluated))
    if not evaluations:
        log.warning("no evaluated runs under %s: nothing to report", root)
        return {"written": written, "evaluated": 0, "unevaluated": unevaluated}
    for name, markdown in (("table1.md", table1_markdown), ("table6.md", table6_markdown),
                           ("table2.md", table2_markdown)):
        (output / name).write_text(markdown(evaluations))
        written.append(output / name)
    for name, plot, needs in (("snr.png", plot_snr, "gradient SNR values (evaluate with --snr-points > 0)"),
                              ("jaccard.png", plot_jaccard,
                               "runs of one method and J under both objectives (experiment=jaccard)")):
        if plot(evaluations, output / name):
            written.append(output / name)
        else:
            log.warning("%s not written: it needs %s", name, needs)
    return {"written": written, "evaluated": len(evaluations), "unevaluated": unevaluated}


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m pyro_vsc.report",
        description="Aggregate evaluated runs (mean ± std over seeds) into the layouts of Tables 1, "
                    "2 and 6 (Markdown) and Figures 4/9 and 5 (PNG).")
    parser.add_argument("root", metavar="RUNS", help="folder containing run folders (searched recursively)")
    parser.add_argument("--output", default=None, help="where to write the report (default: RUNS)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    result = write_report(args.root, args.output)
    print(f"{result['evaluated']} evaluated run(s), {len(result['unevaluated'])} without "
          f"evaluation.json; wrote: " + ", ".join(str(p) for p in result["written"]))


if __name__ == "__main__":
    main()
