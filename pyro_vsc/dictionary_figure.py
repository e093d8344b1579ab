"""``python -m pyro_vsc.dictionary_figure <run folder> <out.png>``: a trained run's dictionary as a
small figure (the picture at the top of the README is made with it)."""

import argparse
from pathlib import Path

from pyro_vsc.evaluation.methods import method_label
from pyro_vsc.plotting import plot_dictionary
from pyro_vsc.trained import load_run


def write_dictionary_figure(run_dir, path, width=4.5, dpi=100):
    """Draws the atoms of a linear run's dictionary, sorted by norm, titled with the method, the
    epochs, and the last validation objective (10) and % non-zero."""
    run = load_run(run_dir)
    last = next((r for r in reversed(run.history) if "val_objective" in r), {})
    title = f"{method_label(run.config)}, {run.epochs_trained} epochs"
    if last:
        title += f": objective {last['val_objective']:.1f}, {last['val_nonzero_pct']:.1f}% non-zero"
    plot_dictionary(run.dictionary, path, title=title, width=width, dpi=dpi)
    return Path(path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="a run folder of the linear generator")
    parser.add_argument("out", help="the PNG to write")
    parser.add_argument("--width", type=float, default=4.5, help="figure width in inches (default 4.5)")
    parser.add_argument("--dpi", type=int, default=100, help="pixels per inch (default 100)")
    args = parser.parse_args(argv)
    print(write_dictionary_figure(args.run_dir, args.out, args.width, args.dpi))


if __name__ == "__main__":
    main()
