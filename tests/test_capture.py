"""Recorded objectives (``capture=true``) replay exactly what the eager Pyro program computes."""

import logging

import pyro
import pytest
import torch
from hydra.utils import instantiate

from pyro_vsc.build import build_guide
from pyro_vsc.run import build_optimizers, runtime_settings, wrap_networks
from pyro_vsc.train.capture import CapturedProgram
from pyro_vsc.train.distributed import DistributedContext
from pyro_vsc.train.guards import python_state
from pyro_vsc.train.step import ObjectiveStep
from pyro_vsc.train.trainer import Trainer
from tests.helpers import compose_config

LINEAR_GUIDES = ["gaussian", "laplace", "spike_slab", "thresh_gauss", "thresh_gauss_gamma", "thresh",
                 "thresh_gamma"]
SMALL_LINEAR = ["model.data_dim=16", "model.latent_dim=12", "model.backbone.hidden=[32,16]"]


def _trainer(overrides, capture):
    cfg = compose_config([*overrides, f"capture={capture}"])
    pyro.set_rng_seed(0)
    model = instantiate(cfg.model.module, prior=instantiate(cfg.prior))
    guide = build_guide(cfg.guide, model)
    objective = ObjectiveStep(instantiate(cfg.elbo), model, guide, dict(cfg.kl_weights),
                              capture=cfg.capture)
    return cfg, Trainer(model=model, guide=guide, objective=objective,
                        optimizers=build_optimizers(cfg, model, guide, 10), batches=None, epochs=1)


def _train(trainer, batches):
    """Losses, ELBO terms and codes of each step, then the final state and RNG state."""
    pyro.set_rng_seed(1)
    steps = []
    for x in batches:
        loss = trainer.train_step(x)
        objective = trainer.objective
        steps.append((loss, dict(objective.site_terms), objective.latent()))
    state = {part: getattr(trainer, part).state_dict() for part in ("model", "guide")}
    return steps, state, torch.get_rng_state()


def _assert_identical(overrides, batches):
    cfg, eager = _trainer(overrides, capture=False)
    with runtime_settings(cfg):  # as in a run: validation off
        _, captured = _trainer(overrides, capture=True)
        expected, replayed = _train(eager, batches), _train(captured, batches)
    for (loss, terms, latent), (loss_r, terms_r, latent_r) in zip(expected[0], replayed[0]):
        assert torch.equal(loss, loss_r) and torch.equal(latent, latent_r)
        assert terms.keys() == terms_r.keys()
        assert all(torch.equal(terms[name], terms_r[name]) for name in terms)
    for part in ("model", "guide"):
        torch.testing.assert_close(replayed[1][part], expected[1][part], rtol=0, atol=0)
    assert torch.equal(replayed[2], expected[2]), "the replay drew a different number of random values"
    return captured.objective._terms


@pytest.mark.parametrize("objective,num_particles", [("max", 1), ("max", 3), ("avg", 3)])
@pytest.mark.parametrize("guide", LINEAR_GUIDES)
def test_replay_equals_the_eager_program_bit_for_bit(guide, objective, num_particles):
    """Every Table 1 guide, over steps where the warm-ups move (ω, τ), with the max (eq. 9) and
    average (eq. 7) ELBOs: the same losses, ELBO terms, codes, parameters, optimizer updates and
    random stream as the eager Pyro program."""
    overrides = [f"guide={guide}", f"elbo={objective}", f"elbo.num_particles={num_particles}", *SMALL_LINEAR,
                 "schedule_time_scale=500"]  # the warm-ups change visibly within 4 steps
    batches = list(torch.randn(4, 5, 16, generator=torch.Generator().manual_seed(2)))
    program = _assert_identical(overrides, batches)
    assert isinstance(program, CapturedProgram) and program.unsupported is None
    assert len(program.graphs) == 1  # recorded once, replayed at the next steps


def test_networks_with_batchnorm_replay_their_statistics_updates():
    """The conv networks' BatchNorm running statistics (buffers updated in place) follow the
    eager program's, and a smaller last batch gets its own recording."""
    overrides = ["model=fmnist", "guide=thresh_gauss_gamma", "model.latent_dim=6", "elbo.num_particles=2"]
    generator = torch.Generator().manual_seed(3)
    batches = [torch.rand(4, 1, 28, 28, generator=generator) for _ in range(2)]
    batches.append(torch.rand(3, 1, 28, 28, generator=generator))
    program = _assert_identical(overrides, batches)
    assert program.unsupported is None and len(program.graphs) == 2


@pytest.mark.parametrize("overrides, reason", [
    (["elbo=avg_pyro"], "reads tensor values"),     # Trace_ELBO's NaN warning branches on the loss
    (["guide=fista"], "reads tensor values"),        # FISTA's stopping rule
    (["validate=true"], "reads tensor values"),      # argument checks
])
def test_programs_that_read_tensor_values_run_eagerly_and_say_why(overrides, reason, caplog):
    """Recording on fake tensors turns a Python branch on a tensor value into a recording failure,
    so such programs run eagerly instead of replaying the branch taken once."""
    cfg, trainer = _trainer([*overrides, *SMALL_LINEAR], capture=True)
    with runtime_settings(cfg), caplog.at_level(logging.INFO, logger="pyro_vsc.train.capture"):
        pyro.enable_validation(cfg.validate)
        assert trainer.train_step(torch.randn(5, 16)) is not None
    program = trainer.objective._terms
    assert reason in program.unsupported and not program.graphs
    assert "runs eagerly" in caplog.text
    if overrides == ["elbo=avg_pyro"]:  # the eager program still computes the same numbers
        _assert_identical([*overrides, *SMALL_LINEAR], [torch.randn(5, 16)])


def test_networks_behind_autocast_are_not_recorded():
    """Wrapped networks (autocast, DistributedDataParallel) run their wrapper's forward: eager."""
    cfg, trainer = _trainer(SMALL_LINEAR, capture=True)
    wrap_networks(trainer.model, trainer.guide, DistributedContext(), torch.bfloat16)
    with runtime_settings(cfg):
        trainer.train_step(torch.randn(5, 16))
    assert "autocast" in trainer.objective._terms.unsupported


def test_eval_mode_and_grad_mode_get_their_own_recordings():
    """Grad mode is part of a recording's signature; a mode switch changes the guarded state,
    which is recorded anew once it has held for a call (the first call under it runs eagerly)."""
    cfg, trainer = _trainer(SMALL_LINEAR, capture=True)
    program, x = trainer.objective._terms, torch.randn(5, 16)
    with runtime_settings(cfg):
        program(x)
        with torch.no_grad():
            program(x)
        trainer.guide.eval()
        program(x)
        assert len(program.graphs) == 2
        program(x)
    assert len(program.graphs) == 3


def test_capture_false_runs_the_pyro_program_itself():
    _, trainer = _trainer(SMALL_LINEAR, capture=False)
    assert trainer.objective._terms == trainer.objective.terms


def test_simplify_keeps_random_draws_and_drops_only_exact_identities():
    """An unused random draw stays (the random stream must not change); x·1, same-shape views and
    constant copies go; x + 0 stays (it turns -0.0 into +0.0), as do broadcasting views."""
    from torch.fx.experimental.proxy_tensor import make_fx

    from pyro_vsc.train.capture import simplify

    def program(x):
        torch.rand(3)                                   # drawn, unused
        y = (x * 1).expand(2, 3).reshape(2, 3) + 0      # x·1 and the views change nothing
        return y * torch.tensor(2.0) + x.expand(4, 2, 3).sum(0)

    graph = make_fx(program, pre_dispatch=True, tracing_mode="fake")(torch.ones(2, 3))
    simplify(graph)
    graph.recompile()
    targets = [str(node.target) for node in graph.graph.nodes if node.op == "call_function"]
    assert "aten.rand.default" in targets and "aten.add.Tensor" in targets
    assert targets.count("aten.mul.Tensor") == 1 and "aten.reshape.default" not in targets  # ·2 stays
    assert "aten.lift_fresh_copy.default" not in targets
    assert targets.count("aten.expand.default") == 1  # the broadcasting one
    x = torch.randn(2, 3)
    torch.testing.assert_close(graph(x), program(x), rtol=0, atol=0)


def test_simplify_evaluates_operations_on_constants_once_but_no_random_draw():
    """An operation of constants alone (a likelihood's normalising constant from its fixed scale)
    is evaluated at recording; a random draw, an operation on the input and a constant the
    program returns (one tensor shared by every call) stay; the replay equals the program."""
    from torch.fx.experimental.proxy_tensor import make_fx

    from pyro_vsc.train.capture import simplify

    def program(x):
        scale = torch.tensor(3.0).log().mul(2.0)        # constants only
        noise = torch.rand(3)                           # drawn at every call
        return x * scale + noise, torch.tensor(1.0).neg()

    graph = make_fx(program, pre_dispatch=True, tracing_mode="fake")(torch.ones(3))
    simplify(graph)
    graph.recompile()
    targets = [str(node.target) for node in graph.graph.nodes if node.op == "call_function"]
    assert "aten.log.default" not in targets and targets.count("aten.mul.Tensor") == 1
    assert "aten.rand.default" in targets and "aten.neg.default" in targets
    x = torch.randn(3)
    torch.manual_seed(1)
    expected = program(x)
    torch.manual_seed(1)
    torch.testing.assert_close(graph(x), expected, rtol=0, atol=0)
    first, second = graph(x)[1], graph(x)[1]
    assert first is not second


def test_recorded_operations_call_the_dispatcher_without_the_python_overload_call(monkeypatch):
    """The replay's operators are called through torch's dispatcher entry directly, not through
    ``OpOverload.__call__`` (a Python frame per operation): same values, gradients and random
    draws; targets that are not operators (``getitem``, grad-mode switches) stay as they are."""
    from torch.fx.experimental.proxy_tensor import make_fx

    from pyro_vsc.train.capture import call_the_dispatcher_directly, simplify

    def program(x):
        noise = torch.rand(x.shape, dtype=x.dtype)
        with torch.no_grad():
            count = torch.zeros(3, dtype=torch.float64, device=x.device).add(1)
        values, index = (x * 2.0 + noise).max(0)
        return values.exp().sum(), index, count

    recorded = make_fx(program, pre_dispatch=True, tracing_mode="fake")(torch.ones(4, 3))
    simplify(recorded)
    call_the_dispatcher_directly(recorded)
    recorded.recompile()
    targets = [node.target for node in recorded.graph.nodes if node.op == "call_function"]
    assert not any(isinstance(target, torch._ops.OpOverload) for target in targets)
    assert any(target is __import__("operator").getitem for target in targets)
    calls = []
    overload_call = torch._ops.OpOverload.__call__
    monkeypatch.setattr(torch._ops.OpOverload, "__call__",
                        lambda self, *args, **kwargs: calls.append(self) or overload_call(self, *args, **kwargs))
    x = torch.randn(4, 3, requires_grad=True)
    torch.manual_seed(2)
    expected = program(x)
    expected_grad, = torch.autograd.grad(expected[0], x)
    torch.manual_seed(2)
    calls.clear()
    replayed = recorded(x)
    assert not calls, f"the replay called {calls[0]} through OpOverload.__call__"
    next_draw = torch.rand(2)
    replayed_grad, = torch.autograd.grad(replayed[0], x)
    for got, want in zip((*replayed, replayed_grad), (*expected, expected_grad)):
        assert got.dtype == want.dtype and torch.equal(got, want)
    torch.manual_seed(2)
    torch.rand(4, 3)
    assert torch.equal(next_draw, torch.rand(2)), "the replay drew a different number of random values"


def test_the_replay_reads_the_current_parameters_and_records_a_changed_set_anew():
    """Parameters are graph inputs read at every call: an assigned new parameter object (not
    only an in-place update) is used; a parameter added after recording changes the guarded
    state, and the program is recorded anew (the same numbers as the eager program)."""
    cfg, trainer = _trainer(SMALL_LINEAR, capture=True)
    program, x = trainer.objective._terms, torch.randn(5, 16)
    model = trainer.model
    def likelihood_term(evaluate):
        torch.manual_seed(0)
        return evaluate(x)[1]["x"]

    with runtime_settings(cfg), torch.no_grad():
        before = likelihood_term(program)
        model.decoder.weight = torch.nn.Parameter(torch.randn_like(model.decoder.weight))
        replayed = likelihood_term(program)
        torch.testing.assert_close(replayed, likelihood_term(program.fn), rtol=0, atol=0)
        assert not torch.equal(replayed, before)
        model.register_parameter("extra", torch.nn.Parameter(torch.zeros(1)))
        recorded = len(program.graphs)
        for _ in range(3):
            torch.testing.assert_close(likelihood_term(program), likelihood_term(program.fn), rtol=0, atol=0)
        assert len(program.graphs) == recorded + 1 and program.unsupported is None


def test_replays_build_the_guarded_state_only_when_something_it_is_made_of_changed(monkeypatch):
    """Between replays the guard checks a snapshot of the objects the state is made of
    (:class:`~pyro_vsc.train.guards.StateSnapshot`) instead of building the state: built on
    the first replay of a recording, then again only after an attribute changed."""
    import pyro_vsc.train.capture as capture

    cfg, trainer = _trainer(SMALL_LINEAR, capture=True)
    program, x = trainer.objective._terms, torch.randn(5, 16)
    built = []
    monkeypatch.setattr(capture, "python_state", lambda roots: built.append(1) or python_state(roots))
    with runtime_settings(cfg), torch.no_grad():
        program(x)                  # a watched eager call, then the recording
        built.clear()
        for _ in range(4):
            program(x)
        assert len(built) == 1 and len(program.graphs) == 1
        trainer.guide.flag = True   # a new attribute: seen, the next call runs eagerly
        built.clear()
        torch.manual_seed(0)
        changed = program(x)[1]["x"]
        torch.manual_seed(0)
        torch.testing.assert_close(changed, program.fn(x)[1]["x"], rtol=0, atol=0)
        assert len(built) >= 2
        for _ in range(3):
            program(x)
        assert len(program.graphs) == 2 and program.unsupported is None
