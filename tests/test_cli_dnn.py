"""The DNN-generator command on tiny Fashion-MNIST/CelebA folders: training, resume, figures, Fig. 7 sweeps."""

import json

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from pyro_vsc.dnn_figures import evaluate_image_run, main as dnn_figures_main, sweep_summaries
from pyro_vsc.run import train, worker_config
from tests.helpers import compose_config
from tests.image_data import CELEBA_HEIGHT, CELEBA_WIDTH, write_celeba, write_fashion_mnist

RUN_FILES = {"config.yaml", "metrics.jsonl", "checkpoint.pt", "reconstructions.png", "dictionary.png",
             "training_curves.png"}
VALIDATION = {"val_mse", "val_nonzero_pct", "val_multi_information", "val_elbo", "val_kl_z"}
TIMING = {"seconds", "steps_per_second"}


def tiny_fmnist(root, run_dir):
    """32 training and 16 validation images, batch 16, d = 8, J = 2: seconds per epoch on a CPU."""
    return ["model=fmnist", f"data.root={root}", "data.train_size=32", "data.val_size=16",
            "data.download=false", "model.latent_dim=8", "elbo.num_particles=2", "batch_size=16",
            "epochs=2", "num_workers=0", "progress=false", f"run_dir={run_dir}"]


@pytest.fixture(scope="module")
def fmnist(tmp_path_factory):
    root = tmp_path_factory.mktemp("fmnist")
    write_fashion_mnist(root / "data", train_count=32, test_count=16)
    history = train(compose_config(tiny_fmnist(root / "data", root / "straight")))
    return root, history


def test_fmnist_run_fills_its_folder(fmnist):
    root, history = fmnist
    run_dir = root / "straight"
    assert RUN_FILES <= {p.name for p in run_dir.iterdir()}
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert records == history and [r["epoch"] for r in records] == [1, 2]
    for record in records:
        assert VALIDATION <= record.keys()
        assert all(np.isfinite(v) for v in record.values())
        assert 0 <= record["val_nonzero_pct"] <= 100 and record["val_multi_information"] >= 0
        # pixels and reconstructions lie in [0, 1]: the per-pixel squared error cannot exceed 1
        assert 0 < record["val_mse"] < 1
    saved = OmegaConf.load(run_dir / "config.yaml")
    assert saved.data._target_.endswith("load_fashion_mnist")  # model=fmnist selected its data


def test_fmnist_resume_continues_exactly(fmnist):
    """Two one-epoch sessions equal one two-epoch session: DataLoader order, RNG and optimizers."""
    root, straight = fmnist
    overrides = tiny_fmnist(root / "data", root / "split")
    assert len(train(compose_config([*overrides, "session_epochs=1"]))) == 1
    resumed = train(compose_config([*overrides[:-1], f"resume={root / 'split'}"]))
    strip = [{k: v for k, v in r.items() if k not in TIMING} for r in resumed]
    assert strip == [{k: v for k, v in r.items() if k not in TIMING} for r in straight]
    done = [torch.load(root / name / "checkpoint.pt", weights_only=False) for name in ("straight", "split")]
    for part in ("model", "guide"):
        for key, value in done[0][part].items():
            torch.testing.assert_close(done[1][part][key], value, rtol=0, atol=0, msg=f"{part}.{key}")


def test_figures_command_on_a_fmnist_run(fmnist):
    root, history = fmnist
    run_dir = root / "straight"
    dnn_figures_main(["run", str(run_dir), "--device", "cpu"])
    summary = json.loads((run_dir / "dnn_evaluation.json").read_text())
    assert {"estimated_dictionary.png", "reconstructions.png"} <= {p.name for p in run_dir.iterdir()}
    assert summary["images"] == 16 and summary["latent_dim"] == 8
    assert summary["method"] == "Thresholded Laplacian+Gamma"
    # fresh Monte Carlo draws of the same trained guide: close to the last validation, not equal
    assert summary["mse"] == pytest.approx(history[-1]["val_mse"], rel=0.05)
    assert ("fid" in summary) != ("fid_skipped" in summary)


def test_celeba_run_and_its_attribute_figure(tmp_path):
    """CelebA end to end: 4 training and 4 validation images (64x64 after crop and resize), then
    the point-biserial feature of every attribute with its estimated dictionary entry (Fig. 8)."""
    rng = np.random.default_rng(0)
    attributes = rng.choice([-1, 1], size=(8, 40))
    write_celeba(tmp_path / "data", [0, 0, 0, 0, 2, 2, 2, 2], attributes,
                 lambda _: rng.integers(0, 256, size=(CELEBA_HEIGHT, CELEBA_WIDTH, 3), dtype=np.uint8))
    train(compose_config([
        "model=celeba", f"data.root={tmp_path / 'data'}", "data.train_size=4", "data.val_size=4",
        "data.download=false", "data.verify_checksums=false", "model.latent_dim=4", "batch_size=2",
        "epochs=2", "num_workers=0", "progress=false", "guide=thresh_gauss_gamma", f"run_dir={tmp_path / 'run'}"]))
    summary = evaluate_image_run(tmp_path / "run", device="cpu", attributes=["Smiling", "Male"], fid=False)
    assert summary["fid_skipped"] == "not requested (--no-fid)"
    correlations = json.loads((tmp_path / "run" / "point_biserial.json").read_text())
    assert len(correlations) == 40 and 0 <= correlations["Smiling"]["feature"] < 4
    assert (tmp_path / "run" / "attribute_entries.png").is_file()


def _fake_run(folder, prior, latent_dim, mse, information, nonzero_fraction=None):
    folder.mkdir(parents=True)
    cfg = {"prior": {"_target_": f"pyro_vsc.models.priors.{prior}"}, "model": {"latent_dim": latent_dim}}
    if nonzero_fraction is not None:
        cfg["nonzero_fraction"] = nonzero_fraction
    OmegaConf.save(OmegaConf.create(cfg), folder / "config.yaml")
    record = {"epoch": 1, "val_mse": mse, "val_multi_information": information}
    (folder / "metrics.jsonl").write_text(json.dumps(record) + "\n")


def test_sweep_summaries_and_fig7_panels(tmp_path):
    _fake_run(tmp_path / "dims" / "0", "GaussianPrior", 64, 0.02, 30.0)
    _fake_run(tmp_path / "dims" / "1", "GaussianPrior", 128, 0.03, 60.0)
    _fake_run(tmp_path / "dims" / "2", "ThresholdedNormalGammaPrior", 64, 0.02, 10.0)
    _fake_run(tmp_path / "sparsity" / "0", "ThresholdedNormalPrior", 256, 0.01, 5.0, nonzero_fraction=0.2)
    (tmp_path / "dims" / "1" / "dnn_evaluation.json").write_text(json.dumps({"fid": 12.5}))
    runs = {(r["method"], r["latent_dim"]): r for r in sweep_summaries(tmp_path)}
    assert runs[("Thresholded Gaussian", 256)]["nonzero_pct"] == pytest.approx(20.0)
    assert runs[("Gaussian", 128)]["fid"] == 12.5 and runs[("Gaussian", 64)]["fid"] is None
    assert runs[("Thresholded Gaussian+Gamma", 64)]["nonzero_pct"] is None
    dnn_figures_main(["sweep", str(tmp_path)])
    assert (tmp_path / "fig7.png").stat().st_size > 0
    with pytest.raises(FileNotFoundError, match="no run folder"):
        sweep_summaries(tmp_path / "dims" / "nothing")


def test_torchrun_workers_compose_the_command_line_without_hydra_outputs():
    cfg = worker_config(["model=fmnist", "hydra.run.dir=/elsewhere", "batch_size=64"])
    assert cfg.batch_size == 64 and cfg.data._target_.endswith("load_fashion_mnist")
    with pytest.raises(ValueError, match="multirun cannot be combined with torchrun"):
        worker_config(["-m", "model=fmnist"])


def test_paper_settings_of_the_experiments():
    """Appendix E: batch 512, J = 20/10, β = 1e-2/1e-3 with β₂ = β/10, Adam 3e-4 (0.5, 0.999) with
    weight decay 1e-5, 300 epochs, mixed precision."""
    for name, particles, beta in (("fmnist", 20, 1e-2), ("celeba", 10, 1e-3)):
        cfg = compose_config([f"experiment={name}"])
        assert (cfg.batch_size, cfg.elbo.num_particles, cfg.epochs, cfg.amp) == (512, particles, 300, "fp16")
        assert cfg.kl_weights.z == beta and cfg.kl_weights.threshold == pytest.approx(beta / 10)
        for part in ("model", "guide"):
            optimizer = cfg.model.optim[part].optimizer
            assert (optimizer._target_, optimizer.lr, list(optimizer.betas), optimizer.weight_decay) == (
                "torch.optim.Adam", 3e-4, [0.5, 0.999], 1e-5)


def test_sparsity_sweep_calibrates_the_prior_threshold():
    """Prop. 3.1: the thresholded Gaussian prior's λ₀ is set for the target fraction of non-zeros
    (0.52 at 10% for variance 0.1, Appendix D)."""
    ten = compose_config(["experiment=celeba", "sweep=fig7_sparsity", "guide=thresh_gauss"])
    assert ten.prior.threshold == pytest.approx(0.52, abs=5e-3)
    assert ten.guide.threshold.threshold == ten.prior.threshold
    five = compose_config(["experiment=celeba", "sweep=fig7_sparsity", "guide=thresh_gauss",
                           "nonzero_fraction=0.05"])
    assert five.prior.threshold > ten.prior.threshold
    slab = compose_config(["experiment=fmnist", "sweep=fig7_sparsity_spike_slab", "nonzero_fraction=0.2"])
    assert slab.prior.nonzero_prob == 0.2 and slab.guide._target_.endswith("SpikeSlabGuide")
