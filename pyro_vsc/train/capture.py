"""Recorded training objectives: the Pyro program traced once, its tensor operations replayed.

Evaluating a Pyro objective runs Python at every step: effect handlers, trace bookkeeping,
distribution objects, the ELBO's site loop. The tensor operations they issue are the same at
every step of a run (same shapes, same constants), so — like Pyro's ``JitTrace_ELBO`` — the
program can be recorded once and its operations replayed. :class:`CapturedProgram` records with
``make_fx`` (pre-dispatch, so ``detach`` and the straight-through estimator of eq. 4 keep their
autograd meaning) on *fake* tensors, drops operations the replay does not need (:func:`simplify`), and replays the
graph with the live parameters and buffers as inputs; autograd runs through the replay as through
the eager program. Random draws are graph operations on the global generator, so a replay draws
exactly what the eager program draws: a run with ``capture=true`` equals one with
``capture=false`` bit for bit (``tests/test_capture.py``).

What is recorded is the tensor arithmetic only; a program whose Python reads tensor values
(``bool(t)``, ``.item()``, validation checks, Pyro's NaN warnings in ``Trace_ELBO``), or runs
under ``DistributedDataParallel`` or autocast wrappers, cannot be recorded. Tracing on fake
tensors makes such reads fail at recording time, and the program then runs eagerly (logged
once) instead of replaying a branch taken at recording. A program whose Python depends on state
that changes between steps without being a tensor (a Python counter read by a model) would be
replayed with the recorded value: keep such state in tensors (buffers), as the warm-up
schedules of this library do, or set ``capture=false``.
"""

import logging

import torch
from torch import nn
from torch._subclasses.fake_tensor import DataDependentOutputException
from torch.fx.experimental.proxy_tensor import make_fx
from torch.fx.experimental.symbolic_shapes import GuardOnDataDependentSymNode

from .distributed import is_routed

log = logging.getLogger(__name__)


#: Raised when traced Python reads the value of a fake tensor (``bool(t)``, ``.item()``, ...).
DATA_DEPENDENT = (GuardOnDataDependentSymNode, DataDependentOutputException)


def _reason(error):
    """Why recording failed, in one line."""
    if isinstance(error, DATA_DEPENDENT):
        return "its Python reads tensor values (a data-dependent branch, .item(), a validation check)"
    first_line = (str(error).strip().splitlines() or [""])[0]
    return f"{type(error).__name__}: {first_line}".rstrip(": ")


_aten = torch.ops.aten
#: Views that change nothing when their result has the input's shape and strides.
_VIEWS = {_aten.alias.default, _aten.expand.default, _aten.reshape.default, _aten.view.default}
#: Arithmetic with a scalar that returns its input exactly (x - 0, x · 1, x / 1; not x + 0,
#: which turns -0.0 into +0.0).
_NEUTRAL = {_aten.sub.Tensor: 0, _aten.mul.Tensor: 1, _aten.div.Tensor: 1}


def simplify(graph):
    """Removes recorded operations the replay does not need, and their backward nodes: results
    nobody uses, operations that return their input (:func:`_route_around_identities`) and the
    copies of constants (:func:`_use_constants_directly`). The Pyro program issues such
    operations at every step (event-shape expansions, unit scales, ``torch.tensor`` constants)."""
    _route_around_identities(graph)
    _use_constants_directly(graph)
    graph.eliminate_dead_code()


def _returns_its_input(node):
    """Whether ``node`` is a same-shape view or ``x - 0``, ``x · 1``, ``x / 1`` of a tensor with
    the result's shape, dtype and strides (no broadcasting, no type promotion)."""
    if node.op != "call_function" or not node.args or not isinstance(node.args[0], torch.fx.Node):
        return False
    neutral = (node.target in _NEUTRAL and len(node.args) == 2 and not node.kwargs
               and isinstance(node.args[1], (int, float)) and node.args[1] == _NEUTRAL[node.target])
    if node.target not in _VIEWS and not neutral:
        return False
    source, result = node.args[0].meta.get("val"), node.meta.get("val")
    return (isinstance(source, torch.Tensor) and isinstance(result, torch.Tensor)
            and (source.shape, source.dtype, source.stride()) == (result.shape, result.dtype, result.stride()))


def _route_around_identities(graph):
    for node in graph.nodes:
        if _returns_its_input(node) and not any(user.op == "output" for user in node.users):
            node.replace_all_uses_with(node.args[0])


def _use_constants_directly(graph):
    """Drops the copy-and-detach the recording makes of tensor constants created in the program
    (``torch.tensor(...)`` → ``lift_fresh_copy`` + ``detach_``) when nothing writes to the copy."""
    for node in list(graph.nodes):
        if node.op != "call_function" or node.target is not _aten.detach_.default:
            continue
        value = node.meta.get("val")
        if isinstance(value, torch.Tensor) and not value.requires_grad:  # detach_ changes nothing
            node.replace_all_uses_with(node.args[0])
            graph.erase_node(node)
    for node in list(graph.nodes):
        if (node.op == "call_function" and node.target is _aten.lift_fresh_copy.default
                and all(user.op == "call_function" and isinstance(user.target, torch._ops.OpOverload)
                        and not user.target._schema.is_mutable for user in node.users)):
            node.replace_all_uses_with(node.args[0])
            graph.erase_node(node)


class _Program(nn.Module):
    """``fn`` as the forward of a module that owns ``modules``, for ``functional_call``."""

    def __init__(self, fn, modules):
        super().__init__()
        self.parts = nn.ModuleList(modules)
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


class CapturedProgram:
    """Calls ``fn(x)`` by replaying its recorded tensor operations.

    One graph is recorded per input signature (shape, dtype and device of ``x``, grad mode, the
    modules' train/eval mode); recording takes a fraction of a second.

    :param fn: ``fn(x)`` returning a pytree of tensors; it may read the parameters and buffers
        of ``modules`` and the global random generator, nothing else that changes.
    :param modules: the ``nn.Module``\\ s whose parameters and buffers ``fn`` reads.
    """

    def __init__(self, fn, modules):
        self.fn = fn
        self.program = _Program(fn, modules)
        self.graphs = {}
        self.unsupported = None  # why this program runs eagerly, once recording failed

    def _signature(self, x):
        return (tuple(x.shape), x.dtype, x.device, torch.is_grad_enabled(),
                tuple(m.training for m in self.program.parts))

    def _inputs(self):
        named = dict(self.program.named_parameters())
        named.update(self.program.named_buffers())
        return tuple(named), list(named.values())

    def _record(self, x):
        if any(is_routed(m) for m in self.program.parts):
            raise NotImplementedError("the networks run inside DistributedDataParallel or autocast")
        names, tensors = self._inputs()

        def replayable(tensors, x):
            return torch.func.functional_call(self.program, dict(zip(names, tensors)), (x,))

        graph = make_fx(replayable, pre_dispatch=True, tracing_mode="fake")(tensors, x)
        simplify(graph.graph)
        graph.recompile()
        return names, graph

    def __call__(self, x):
        if self.unsupported is not None:
            return self.fn(x)
        signature = self._signature(x)
        recorded = self.graphs.get(signature)
        if recorded is None:
            try:
                recorded = self.graphs[signature] = self._record(x)
            except Exception as error:  # the eager program raises real errors itself
                self.unsupported = _reason(error)
                log.info("the objective runs eagerly: it cannot be recorded (%s)", self.unsupported)
                return self.fn(x)
        names, graph = recorded
        current, tensors = self._inputs()
        if current != names:
            raise RuntimeError(f"the modules' parameters or buffers changed after recording "
                               f"({len(names)} then {len(current)}); build a new objective")
        return graph(tensors, x)
