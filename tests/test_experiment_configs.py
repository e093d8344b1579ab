"""The sweep configs of Table 1, Table 2 and Figure 5: their parameter grids, composed without
training (``python -m pyro_vsc.run -m experiment=<name>`` runs one job per grid point)."""

import itertools

import pytest
from hydra import compose, initialize_config_module
from hydra.core.override_parser.overrides_parser import OverridesParser

from pyro_vsc.evaluation.methods import METHOD_LABELS, describe_run
from pyro_vsc.resolvers import register_resolvers
from pyro_vsc.run import train
from tests.helpers import compose_config

SEEDS = {0, 1337, 747}  # Appendix D


def sweep_grid(experiment):
    """Hydra's own parse of the experiment's ``hydra.sweeper.params``, expanded to its jobs, and
    the config of every seed-0 job as the command would compose it: ``[(job, cfg or None)]``."""
    register_resolvers()
    with initialize_config_module(config_module="pyro_vsc.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"experiment={experiment}"],
                      return_hydra_config=True)
        parsed = OverridesParser.create().parse_overrides(
            [f"{key}={value}" for key, value in cfg.hydra.sweeper.params.items()])
        axes = [[(override.key_or_group, value) for value in override.sweep_string_iterator()]
                for override in parsed]
        jobs = [dict(job) for job in itertools.product(*axes)]
        return [(job, compose(config_name="config", overrides=[
                    f"experiment={experiment}", *(f"{k}={v}" for k, v in job.items())])
                 if job["seed"] == "0" else None) for job in jobs]


def test_table1_sweeps_every_method_both_sample_budgets_and_the_paper_seeds():
    grid = sweep_grid("table1")
    jobs = [job for job, _ in grid]
    assert len(jobs) == 8 * 2 * 3
    assert {job["guide"] for job in jobs} == set(METHOD_LABELS)
    assert {job["elbo.num_particles"] for job in jobs} == {"1", "20"}
    assert {int(job["seed"]) for job in jobs} == SEEDS
    for job, cfg in grid:
        if cfg is None:
            continue
        run = describe_run(cfg)
        assert (run["method"], run["num_particles"], run["objective"]) == (
            job["guide"], int(job["elbo.num_particles"]), "max")
        assert cfg.epochs == 300 and cfg.schedule_time_scale == 1.0  # Appendix D


def test_table1_skips_fista_with_twenty_particles(tmp_path):
    """FISTA is deterministic: its J = 20 jobs stop at once and leave no run folder behind."""
    cfg = compose_config(["experiment=table1", "guide=fista", "elbo.num_particles=20", "seed=0"])
    cfg.run_dir = str(tmp_path / "fista_J20")
    assert train(cfg) == []
    assert not (tmp_path / "fista_J20").exists()


@pytest.mark.parametrize("experiment,swept,values", [
    ("table2", "guide.straight_through", {"True", "False"}),
    ("jaccard", "elbo", {"max", "avg"}),
])
def test_table2_and_jaccard_sweep_the_thresholded_laplacian(experiment, swept, values):
    grid = sweep_grid(experiment)
    jobs = [job for job, _ in grid]
    particles = {"table2": {"1", "20"}, "jaccard": {"20", "100"}}[experiment]
    assert len(jobs) == 2 * 2 * 3
    assert {job[swept] for job in jobs} == values
    assert {job["elbo.num_particles"] for job in jobs} == particles
    assert {int(job["seed"]) for job in jobs} == SEEDS
    for job, cfg in grid:
        if cfg is None:
            continue
        run = describe_run(cfg)
        assert run["method"] == "thresh" and str(run["num_particles"]) == job["elbo.num_particles"]
        if swept == "elbo":
            assert run["objective"] == job["elbo"]
        else:
            assert run["straight_through"] == (job[swept] == "True")
