"""Figures and numbers of the DNN-generator experiment (§4.2, Appendix G) from run folders.

``python -m pyro_vsc.dnn_figures run runs/<folder>`` infers max-ELBO codes for the validation
images with the trained guide and writes into the run folder:

* ``estimated_dictionary.png``: the least-squares linear dictionary of the codes (§4.2),
  entries in descending order of norm (Figs. 6, 20-23);
* ``reconstructions.png``: validation images above their reconstructions (Fig. 19);
* for CelebA, ``attribute_entries.png`` and ``point_biserial.json``: for every attribute (or the
  ``--attributes`` chosen), the feature with the largest absolute point-biserial correlation and
  its estimated dictionary entry (Fig. 8);
* ``dnn_evaluation.json``: validation MSE, % non-zero, multi-information, and the FID of the
  reconstructions, or the reason it was skipped (Fig. 7b/f needs the optional extra ``fid``).

``python -m pyro_vsc.dnn_figures sweep runs/multirun/<folder>`` draws the Fig. 7 panels from
every run below a folder (e.g. the Hydra sweeps ``sweep=fig7_latent_dim`` and
``sweep=fig7_sparsity``) into ``fig7.png`` there.
"""

import argparse
import json
import logging
from pathlib import Path

import torch
from omegaconf import OmegaConf

from pyro_vsc.devices import select_device
from pyro_vsc.evaluation.methods import method_label
from pyro_vsc.evaluation.trained_run import find_run_folders, read_history
from pyro_vsc.image_plots import plot_attribute_entries, plot_image_dictionary, plot_image_rows, plot_sweep
from pyro_vsc.metrics import estimate_linear_dictionary, multi_information, point_biserial_correlation
from pyro_vsc.metrics.attribute_features import top_feature_per_attribute
from pyro_vsc.metrics.fid import FIDUnavailable, frechet_inception_distance
from pyro_vsc.resolvers import register_resolvers
from pyro_vsc.trained import load_run
from pyro_vsc.train.batches import OrderedBatches
from pyro_vsc.train.validation import select_codes

log = logging.getLogger(__name__)
register_resolvers()

SUMMARY_NAME = "dnn_evaluation.json"
RECONSTRUCTIONS_SHOWN = 8


@torch.no_grad()
def evaluate_image_run(run_dir, device="auto", attributes=None, fid=True):
    """Writes the DNN figures and ``dnn_evaluation.json`` of a trained run; returns the summary."""
    run_dir, device = Path(run_dir), select_device(device)
    trained = load_run(run_dir, device)
    cfg, model, objective = trained.config, trained.model, trained.objective
    _, val_set = trained.load_data()
    images, codes, targets, pairs = [], [], [], []
    for x, y in OrderedBatches(val_set, cfg.batch_size, device).with_targets():
        z = select_codes(objective, x, batch_size=x.shape[0])["z"]
        reconstructions = model.decoder(z)
        images.append(x.cpu())
        codes.append(z.cpu())
        targets.append(y)
        pairs.append((x.cpu(), reconstructions.cpu()))
    images, codes, targets = torch.cat(images), torch.cat(codes), torch.cat(targets)
    reconstructions = torch.cat([r for _, r in pairs])
    summary = {
        "method": method_label(cfg),
        "latent_dim": int(cfg.model.latent_dim),
        "images": images.shape[0],
        "mse": float((images - reconstructions).pow(2).mean()),
        "nonzero_pct": float(100.0 * (codes != 0).float().mean()),
        "multi_information": multi_information(codes),
    }
    dictionary = estimate_linear_dictionary(images.flatten(1).to(device), codes.to(device)).cpu()
    plot_image_dictionary(dictionary, model.image_shape, run_dir / "estimated_dictionary.png",
                          title=f"{summary['method']}, d = {codes.shape[1]}: estimated dictionary")
    plot_image_rows([images[:RECONSTRUCTIONS_SHOWN], reconstructions[:RECONSTRUCTIONS_SHOWN]],
                    run_dir / "reconstructions.png", labels=["validation images", summary["method"]])
    if targets.dim() == 2:  # CelebA: 40 binary attributes per image
        names = list(val_set.dataset.attr_names[:targets.shape[1]])
        correlations = point_biserial_correlation(codes, targets)
        features, values = top_feature_per_attribute(correlations)
        (run_dir / "point_biserial.json").write_text(json.dumps(
            {name: {"feature": int(f), "correlation": float(v)} for name, f, v in zip(names, features, values)},
            indent=1))
        plot_attribute_entries(dictionary, correlations, names, model.image_shape,
                               run_dir / "attribute_entries.png", attributes=attributes)
    if fid:
        try:
            summary["fid"] = frechet_inception_distance(pairs, device)
        except FIDUnavailable as reason:
            summary["fid_skipped"] = str(reason)
            log.warning("FID skipped: %s", reason)
    else:
        summary["fid_skipped"] = "not requested (--no-fid)"
    (run_dir / SUMMARY_NAME).write_text(json.dumps(summary, indent=1))
    return summary


def sweep_summaries(folder):
    """One summary per run below ``folder`` (any depth) from its config and last metrics record:
    ``method``, ``latent_dim``, ``nonzero_pct`` (the prior's target ``100 * nonzero_fraction`` in
    sparsity sweeps, else ``None``), ``mse``, ``multi_information`` and, when
    ``dnn_evaluation.json`` has it, ``fid``."""
    runs = []
    for run_dir in find_run_folders(folder) if Path(folder).is_dir() else []:
        records = [r for r in read_history(run_dir) if "val_mse" in r]
        if not records:
            continue
        cfg = OmegaConf.load(run_dir / "config.yaml")
        fraction = cfg.get("nonzero_fraction")
        evaluation = run_dir / SUMMARY_NAME
        fid = json.loads(evaluation.read_text()).get("fid") if evaluation.exists() else None
        runs.append({"method": method_label(cfg), "latent_dim": int(cfg.model.latent_dim),
                     "nonzero_pct": None if fraction is None else 100.0 * float(fraction),
                     "mse": records[-1]["val_mse"],
                     "multi_information": records[-1]["val_multi_information"], "fid": fid})
    if not runs:
        raise FileNotFoundError(f"no run folder with validation metrics below {folder}")
    return runs


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m pyro_vsc.dnn_figures", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="figures and numbers of one trained run")
    run.add_argument("run_dir")
    run.add_argument("--device", default="auto")
    run.add_argument("--attributes", help="comma-separated CelebA attributes for Fig. 8 (default: all 40)")
    run.add_argument("--no-fid", dest="fid", action="store_false", help="do not try to compute FID")
    sweep = commands.add_parser("sweep", help="Fig. 7 panels from all runs below a folder")
    sweep.add_argument("folder")
    sweep.add_argument("--out", help="output image (default: <folder>/fig7.png)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command == "run":
        attributes = args.attributes.split(",") if args.attributes else None
        print(json.dumps(evaluate_image_run(args.run_dir, args.device, attributes, args.fid), indent=1))
    else:
        out = Path(args.out) if args.out else Path(args.folder) / "fig7.png"
        plot_sweep(sweep_summaries(args.folder), out, title=str(Path(args.folder).name))
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
