import os
import tempfile

import pyro
import pytest
import torch

# Keep parallel test workers from oversubscribing the cores.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)

# Dataset caches of the test session live in a temporary folder, not in ~/.cache.
os.environ.setdefault("PYRO_VSC_CACHE", tempfile.mkdtemp(prefix="pyro_vsc_test_cache_"))


@pytest.fixture(autouse=True)
def _fresh_pyro_state():
    """Every test starts with an empty param store and a fixed seed."""
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    yield
    pyro.clear_param_store()
