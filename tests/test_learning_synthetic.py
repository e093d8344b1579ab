"""Learning works: a short `thresh` run recovers most atoms of a known dictionary (§4.1)."""

import torch
from hydra.utils import instantiate

from pyro_vsc.metrics import recovered_fraction
from pyro_vsc.run import train
from tests.helpers import compose_config


def test_thresholded_laplace_recovers_a_known_dictionary(tmp_path):
    # 64-dim signals from a random 64-atom dictionary, 4 Laplace(3) coefficients per code
    # (per-pixel variance ≈ 1, like the standardised patches). The paper's encoder schedule is
    # built for 240,000 steps; this 6,000-step run uses Adam (lr 1e-3) for the encoder instead,
    # everything else as in the default run (β = 1e-2, λ₀ = 0.25, b₀ = 0.1, J = 1, max-ELBO).
    cfg = compose_config([
        "guide=thresh", "data=synthetic", "data.num_train=10000", "data.num_val=500",
        "data.scale=3.0", "model.data_dim=${data.dim}", "model.latent_dim=${data.size}",
        "model.backbone.hidden=[256,256]", "epochs=60", "progress=false",
        "model.optim.guide.optimizer._target_=torch.optim.Adam",
        "model.optim.guide.optimizer.lr=1e-3", "~model.optim.guide.optimizer.momentum",
        "~model.optim.guide.optimizer.nesterov", "~model.optim.guide.optimizer.foreach",
        f"run_dir={tmp_path}",
    ])
    history = train(cfg)
    data = instantiate(cfg.data)
    learned = torch.load(tmp_path / "checkpoint.pt", weights_only=False)["model"]["decoder.weight"]
    random_start = recovered_fraction(torch.randn_like(learned), data.dictionary)
    assert random_start == 0.0
    # Measured 0.67 (43/64 atoms) on this seed; a run that learns nothing scores 0.
    assert recovered_fraction(learned, data.dictionary) >= 0.6
    # The code stays sparse: about the prior's 8% non-zero, far from dense.
    assert history[-1]["val_nonzero_pct"] < 20.0
    # and explains a good part of the signal (the zero code leaves the full per-pixel variance)
    assert history[-1]["val_mse"] < 0.8 * float(data.val.pow(2).mean())
