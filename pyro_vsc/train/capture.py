"""Recorded training objectives: the Pyro program traced once, its tensor operations replayed.

Evaluating a Pyro objective runs Python at every step: effect handlers, trace bookkeeping,
distribution objects, the ELBO's site loop. The tensor operations they issue are the same at
every step of a run (same shapes, same constants), so — like Pyro's ``JitTrace_ELBO`` — the
program can be recorded once and its operations replayed. :class:`CapturedProgram` records with
``make_fx`` (pre-dispatch, so ``detach`` and the straight-through estimator of eq. 4 keep their
autograd meaning) on *fake* tensors, drops operations the replay does not need (:func:`simplify`),
lets its operations enter torch's dispatcher without a Python call in between
(:func:`call_the_dispatcher_directly`), and replays the graph with the live parameters and
buffers as inputs; autograd runs through the
replay as through the eager program. Random draws are graph operations on the global generator,
so a replay draws exactly what the eager program draws: a run with ``capture=true`` equals one
with ``capture=false`` bit for bit (``tests/test_capture.py``, ``tests/test_user_edits.py``).

**What a replay may not get wrong, and how it is guarded.** Users edit model and guide code, so
the recording must be right for programs this library did not write. Tensors read through the
modules' parameters and buffers are replay inputs; everything else the program's Python reads is
frozen into the recording. The design, and why:

1. *A guard on every call* (as ``torch.compile`` guards its graphs): the Python state the program
   can read — every non-tensor attribute of every submodule of model and guide, their
   ``train()``/``eval()`` flags, forward hooks, plain tensor attributes, the ELBO's and the KL
   weights' attributes (:func:`pyro_vsc.train.guards.python_state`), plus grad mode, autocast,
   the default dtype and Pyro's validation flag — is compared with the state of the recording.
   A recording is replayed only under the state it was made in. Between replays a snapshot of
   the objects the state is made of (:class:`~pyro_vsc.train.guards.StateSnapshot`) checks by
   identity that none changed, and the state is built again only when one did (about 0.04 ms
   per call instead of 0.16-0.18 ms for building the state and looking up the inputs).
2. *Every recording starts with an eager call that is watched.* The first call under a new state
   (or input signature) runs the Pyro program itself, and the state is compared before and after
   it. A program that changes its own Python state while it runs (a prior annealing
   ``self.scale *= 0.7`` in ``forward``, a call counter, a cache attribute) can never be
   replayed — a replay runs no Python — so after two such calls in a row it runs eagerly for good,
   announced once at WARNING level naming the attribute. (One such call is allowed: lazy
   initialisation, e.g. Pyro's ELBO guessing ``max_plate_nesting``.) The same holds for a program
   that draws from Python's or NumPy's random generators.
3. *State changed from outside is recorded anew once it settles*: when the training loop (or a
   callback) changes what the program reads — β of eq. (5) as a Python float, a flag, a
   submodule's mode — the next call runs eagerly and, if the state is then unchanged at the call
   after it, a new recording is made. State that changes at every step is never recorded: the
   objective runs eagerly (announced once) until it settles. Schedules meant to change every step
   belong in tensors (buffers) that the recording reads, as this library's warm-ups and the KL
   warm-up (``kl_warmup_steps``) do.
4. *Programs whose Python reads tensor values* (``bool(t)``, ``.item()``, validation checks,
   FISTA's stopping rule, Pyro's stock ``Trace_ELBO`` with its NaN check) fail to record on fake
   tensors and run eagerly, announced once; so do networks behind DDP or autocast wrappers.

Not guarded: module-level globals and closure variables the program reads (keep such state on
the modules, or set ``capture=false``). Detection at recording time alone (2) would miss state
the loop changes between steps (3), and ``torch.compile`` itself breaks its graphs around
Pyro's handlers at every site; guards plus a watched first call keep the replay's speed and
are correct for every program that keeps its changing state on its modules.
"""

import functools
import logging
import operator
import random
from collections import OrderedDict

import numpy as np
import torch
from pyro.infer.util import is_validation_enabled
from torch import nn
from torch._subclasses.fake_tensor import DataDependentOutputException
from torch.fx.experimental.proxy_tensor import make_fx
from torch.fx.experimental.symbolic_shapes import GuardOnDataDependentSymNode

from .distributed import is_routed
from .guards import StateSnapshot, describe_change, python_state

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


def simplify(module):
    """Removes recorded operations the replay does not need, and their backward nodes, from the
    recorded ``torch.fx.GraphModule``: results nobody uses, operations that return their input
    (:func:`_route_around_identities`), the copies of constants (:func:`_use_constants_directly`)
    and operations on constants alone, evaluated once here (:func:`_fold_constants`). The Pyro
    program issues such operations at every step (event-shape expansions, unit scales,
    ``torch.tensor`` constants, a likelihood's normalising constant from its fixed scale)."""
    graph = module.graph
    _route_around_identities(graph)
    _use_constants_directly(graph)
    _fold_constants(module)
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


def _foldable(node, module):
    """Whether ``node`` is a pure tensor operation of recorded constants only: a deterministic
    ATen operator (no random draw, no in-place write) whose tensor inputs are all constants of
    the recording that take no gradient, with a tensor result that no later operation writes to
    and the replay does not return (a returned constant would be one tensor object shared by
    every call)."""
    if node.op != "call_function" or not isinstance(node.target, torch._ops.OpOverload):
        return False
    if node.target._schema.is_mutable or torch.Tag.nondeterministic_seeded in node.target.tags:
        return False
    if not isinstance(node.meta.get("val"), torch.Tensor):
        return False
    constants = [getattr(module, source.target) if source.op == "get_attr" else None
                 for source in node.all_input_nodes]
    if not all(isinstance(value, torch.Tensor) and not value.requires_grad for value in constants):
        return False
    return all(user.op == "call_function" and isinstance(user.target, torch._ops.OpOverload)
               and not user.target._schema.is_mutable for user in node.users)


def _fold_constants(module):
    """Replaces each operation on constants alone (:func:`_foldable`) by its result, computed
    once at recording with the real constants (the recording itself ran on fake tensors). The
    constants are frozen into the recording anyway (a tensor attribute of the program is guarded
    by identity and version, :mod:`pyro_vsc.train.guards`), so the result is what every replay
    would compute."""
    graph = module.graph
    for index, node in enumerate(list(graph.nodes)):
        if not _foldable(node, module):
            continue
        args, kwargs = torch.fx.node.map_arg((node.args, node.kwargs),
                                             lambda source: getattr(module, source.target))
        with torch.no_grad():
            value = node.target(*args, **kwargs)
        name = f"_folded_constant_{index}"
        module.register_buffer(name, value, persistent=False)
        with graph.inserting_before(node):
            constant = graph.get_attr(name)
        constant.meta.update(node.meta)
        node.replace_all_uses_with(constant)
        graph.erase_node(node)


class _DispatcherCall(functools.partial):
    """An ATen operator's entry into torch's C++ dispatcher, named for the recording's generated
    code (a ``functools.partial`` of it: called from C, without a Python frame)."""


def _dispatcher_entry(target):
    """What ``target(*args, **kwargs)`` calls, for an ``OpOverload`` that calls it unchanged; else
    ``target`` itself. ``OpOverload.__call__`` is a Python function that forwards its arguments
    to the dispatcher's entry point (torch 2.14: the C++ dispatcher's handle
    ``_cpp_dispatch_handle``, or an equivalent PyObject fast path when an operator enables one;
    earlier versions: ``_op``), and that Python frame costs 1-2 µs per operation, about a
    tenth of a replay of the linear model at J = 1."""
    if not isinstance(target, torch._ops.OpOverload):
        return target
    entry = getattr(target, "_cpp_dispatch_handle", None)
    if entry is None:
        if hasattr(target, "_pyobj_dispatcher"):  # a fast path this code does not know
            return target
        entry = target._op  # torch before the PyObject dispatcher: __call__ is _op(*args, **kwargs)
    call = _DispatcherCall(entry)
    call.__name__ = call.__qualname__ = str(target).replace(".", "_")
    call.__module__ = __name__
    return call


def call_the_dispatcher_directly(module):
    """Lets the recorded ``torch.fx.GraphModule``'s operations call torch's dispatcher without
    ``OpOverload.__call__`` in between (:func:`_dispatcher_entry`): the same kernels with the
    same arguments. Call before ``recompile``."""
    entries = {}
    for node in module.graph.nodes:
        if node.op == "call_function" and isinstance(node.target, torch._ops.OpOverload):
            if node.target not in entries:
                entries[node.target] = _dispatcher_entry(node.target)
            node.target = entries[node.target]


class _Program(nn.Module):
    """``fn`` as the forward of a module that owns ``modules``, for ``functional_call``."""

    def __init__(self, fn, modules):
        super().__init__()
        self.parts = nn.ModuleList(modules)
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


#: What a recording assumes of each parameter and buffer it reads.
_TENSOR_SIGNATURE = operator.attrgetter("shape", "dtype", "device", "requires_grad")
#: Recordings kept (LRU), by guard state; a state that comes back reuses its recording.
MAX_STATES = 4
#: Calls in a row whose state differs from the previous call's before the eager fallback is announced.
UNSETTLED_CALLS = 3


def _python_rng_state():
    """States of Python's and NumPy's global generators (a recording would freeze their draws)."""
    numpy_state = np.random.get_state()
    return random.getstate(), (numpy_state[0], numpy_state[1].tobytes(), *numpy_state[2:])


class CapturedProgram:
    """Calls ``fn(x)`` by replaying its recorded tensor operations, guarded by the Python state
    it reads (module docstring).

    One graph is recorded per guard state and input signature (shape, dtype and device of ``x``
    and of the parameters and buffers, grad mode, autocast, default dtype, Pyro's validation
    flag); recording takes a fraction of a second.

    :param fn: ``fn(x)`` returning a pytree of tensors; it may read the parameters, buffers and
        attributes of ``modules``, the attributes of ``state``, and the global random generator.
    :param modules: the ``nn.Module``\\ s whose parameters and buffers ``fn`` reads.
    :param state: further objects whose attributes ``fn`` reads (the ELBO, the KL weights).
    """

    def __init__(self, fn, modules, state=()):
        self.fn = fn
        self.program = _Program(fn, modules)
        self.roots = (*modules, *state)
        self.recordings = OrderedDict()  # guard state -> {signature: graph}
        self.unsupported = None  # why this program runs eagerly for good
        self._previous = None    # the state of the previous call
        self._unsettled = 0      # calls in a row whose state differed from the previous call's
        self._mutating = 0       # calls in a row that changed the state while they ran
        self._announced = False
        # (snapshot, state, inputs) of the previous call if it replayed: while the snapshot says
        # that nothing the state and the inputs are made of changed, neither is built again
        self._replayed = None

    @property
    def graphs(self):
        """Every recording kept: (state, signature) → graph."""
        return {(state, signature): graph for state, by_signature in self.recordings.items()
                for signature, graph in by_signature.items()}

    def _state(self):
        return python_state(self.roots)

    def _inputs(self):
        """``(names, tensors)`` of the parameters and buffers the replay reads (between replays
        :attr:`_replayed` keeps them while its snapshot vouches that no module changed)."""
        named = dict(self.program.named_parameters())
        named.update(self.program.named_buffers())
        return tuple(named), list(named.values())

    def _signature(self, x, tensors):
        return (tuple(x.shape), x.dtype, x.device, torch.is_grad_enabled(),
                torch.is_autocast_enabled(), torch.get_default_dtype(), is_validation_enabled(),
                tuple(map(_TENSOR_SIGNATURE, tensors)))

    def _record(self, x):
        if any(is_routed(m) for m in self.program.parts):
            raise NotImplementedError("the networks run inside DistributedDataParallel or autocast")
        names, tensors = self._inputs()

        def replayable(tensors, x):
            return torch.func.functional_call(self.program, dict(zip(names, tensors)), (x,))

        graph = make_fx(replayable, pre_dispatch=True, tracing_mode="fake")(tensors, x)
        simplify(graph)
        call_the_dispatcher_directly(graph)
        graph.recompile()
        return graph

    def _announce(self, reason):
        if not self._announced:
            self._announced = True
            log.warning("the objective runs eagerly (no recorded replay): %s", reason)

    def _give_up(self, reason):
        self.unsupported = reason
        self._announce(reason)

    def __call__(self, x):
        if self.unsupported is not None:
            return self.fn(x)
        replayed = self._replayed
        if replayed is not None and replayed[0].unchanged():
            _, state, tensors = replayed  # the state of the previous replay, certainly equal
        else:
            replayed, state, tensors = None, self._state(), self._inputs()[1]
        signature = self._signature(x, tensors)
        graph = self.recordings.get(state, {}).get(signature)
        if graph is not None:
            if replayed is None:  # taken with the state: no Python of the program ran since
                self._replayed = (StateSnapshot((self.program, *self.roots)), state, tensors)
                self.recordings.move_to_end(state)
            self._previous, self._unsettled = state, 0
            return graph.forward(tensors, x)  # the recording has no hooks: nn.Module.__call__ adds nothing
        self._replayed = None
        return self._watched_call(x, state, signature)

    def _watched_call(self, x, state, signature):
        """Runs the program eagerly, watching its Python state; records it if it is replayable."""
        rng = _python_rng_state()
        result = self.fn(x)
        after = self._state()
        if _python_rng_state() != rng:
            self._give_up("it draws from Python's or NumPy's random generator, whose values a "
                          "recording would freeze; use torch's generator")
            return result
        if after != state:
            self._mutating += 1
            if self._mutating >= 2:
                self._give_up(f"its Python state changes while it runs "
                              f"({describe_change(state, after, self.roots)}); keep state that "
                              "changes in tensors (buffers) to let it be recorded")
            self._previous = after
            return result
        self._mutating = 0
        unsettled = self._previous is not None and state != self._previous
        if unsettled:
            self._unsettled += 1
            if self._unsettled >= UNSETTLED_CALLS:
                self._announce(f"Python state it reads changes between steps "
                               f"({describe_change(self._previous, state, self.roots)}); it is "
                               "recorded again once that state settles; keep state that changes "
                               "at every step in tensors (buffers)")
        self._previous = state
        if unsettled:
            return result
        self._unsettled = 0
        try:
            graph = self._record(x)
        except Exception as error:  # the eager program raises real errors itself
            self._give_up(f"it cannot be recorded ({_reason(error)})")
            return result
        if self._state() != state:
            self._give_up("its Python state changed while it was recorded")
            return result
        self.recordings.setdefault(state, {})[signature] = graph
        self.recordings.move_to_end(state)
        while len(self.recordings) > MAX_STATES:
            self.recordings.popitem(last=False)
        return result
