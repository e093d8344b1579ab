"""The guard of recorded objectives sees every kind of Python state a program can read, and
nothing else (pyro_vsc/train/guards.py)."""

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from pyro_vsc.train.guards import StateSnapshot, describe_change, python_state


@dataclass
class Schedule:
    start: float
    steps: int


@dataclass(frozen=True)
class FrozenSchedule:
    start: float
    increment: float


class OtherSchedule(Schedule):
    pass


class Program(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
        self.scale = 0.5
        self.name = "laplace"
        self.schedule = Schedule(0.1, 10)
        self.sizes = [1, 2, {"a": 3}]
        self.steps = [1, 2]                  # numbers only: tracked by the identity of its items
        self.frozen = FrozenSchedule(0.1, 2e-4)
        self.constant = torch.ones(2)        # a plain tensor attribute: recorded as a constant
        self.register_buffer("counter", torch.zeros(()))
        self.missing = float("nan")


def _edits():
    def add_hook(p):
        p.inner[0].register_forward_hook(lambda *args: None)

    return {
        "a float": lambda p: setattr(p, "scale", 0.25),
        "a string": lambda p: setattr(p, "name", "normal"),
        "a nested schedule": lambda p: setattr(p, "schedule", Schedule(0.2, 10)),
        "a list item": lambda p: p.sizes[2].update(a=4),
        "a plain tensor in place": lambda p: p.constant.mul_(2),
        "a plain tensor replaced": lambda p: setattr(p, "constant", torch.ones(2)),
        "a submodule's mode": lambda p: p.inner[1].eval(),
        "a submodule's class": lambda p: p.inner.__setitem__(1, nn.Tanh()),
        "a forward hook": add_hook,
        "a new attribute": lambda p: setattr(p.inner[0], "flag", True),
        "a new buffer": lambda p: p.register_buffer("extra", torch.zeros(1)),
        "a nested field in place": lambda p: setattr(p.schedule, "start", 0.2),
        "a nested object's class": lambda p: setattr(p.schedule, "__class__", OtherSchedule),
        "a frozen dataclass forced": lambda p: object.__setattr__(p.frozen, "start", 0.2),
        "a frozen dataclass field added": lambda p: object.__setattr__(p.frozen, "extra", 1),
        "a number in a list": lambda p: p.steps.__setitem__(0, 3),
        "a list grown": lambda p: p.steps.append(3),
        "a list reordered": lambda p: p.steps.reverse(),
        "an attribute renamed": lambda p: (delattr(p, "name"), setattr(p, "title", "laplace")),
        "a submodule replaced by one of its class": lambda p: p.inner.__setitem__(0, nn.Linear(2, 2)),
        "a KL weight": lambda p: None,  # the KL weights are a further root, edited below
        "a KL weight renamed": lambda p: None,
    }


@pytest.mark.parametrize("edit", list(_edits()))
def test_each_kind_of_python_state_is_seen(edit):
    program, weights = Program(), {"z": 0.01}

    class KLWeights:
        def __init__(self):
            self.weights = weights

    roots = (program, KLWeights())
    before, snapshot = python_state(roots), StateSnapshot(roots)
    assert snapshot.unchanged()
    _edits()[edit](program)
    if edit == "a KL weight":
        weights["z"] = 0.02
    if edit == "a KL weight renamed":
        weights["x"] = weights.pop("z")
    after = python_state(roots)
    assert after != before
    assert describe_change(before, after, roots)
    assert not snapshot.unchanged()  # the per-step check sees every change the state does


def test_a_tensor_attribute_replaced_while_the_old_one_lives_is_a_change():
    """Identity, not the tensors' values (nor their elementwise ``==``), tells them apart."""
    program = Program()
    before = python_state([program])
    old, program.constant = program.constant, program.constant.clone()
    assert python_state([program]) != before
    program.constant = old
    assert python_state([program]) == before


def test_a_global_forward_hook_is_seen():
    program = Program()
    before, snapshot = python_state([program]), StateSnapshot([program])
    handle = torch.nn.modules.module.register_module_forward_hook(lambda *args: None)
    try:
        assert python_state([program]) != before
        assert not snapshot.unchanged()
    finally:
        handle.remove()
    assert snapshot.unchanged()


def test_what_the_replay_reads_live_does_not_change_the_state():
    """Parameter and buffer values are replay inputs, so updating them is not a state change;
    NaN equals itself; the state is hashable (recordings are looked up by it)."""
    program = Program()
    before = python_state([program])
    with torch.no_grad():
        program.inner[0].weight.add_(1.0)
        program.counter += 1
    program.inner[0].weight = nn.Parameter(torch.zeros(2, 2))  # the same name, read live
    assert python_state([program]) == before
    hash(before)


def test_the_snapshot_is_unchanged_only_while_the_same_objects_hold_the_same_values():
    """Parameter and buffer values are read live, so updating them in place leaves the snapshot
    unchanged; an equal new object in an attribute is a change to the snapshot (conservative:
    the caller then builds the state, which is equal)."""
    program = Program()
    snapshot = StateSnapshot([program])
    with torch.no_grad():
        program.inner[0].weight.add_(1.0)
        program.counter += 1
    program.sizes[2]["a"] = 3  # written, with the value it had
    assert snapshot.unchanged()
    program.scale = float("0.5")  # an equal float, another object
    program.inner[0].weight = nn.Parameter(torch.zeros(2, 2))
    assert not snapshot.unchanged()
    assert StateSnapshot([program]).unchanged()


def test_the_snapshot_rebuilds_no_value_of_a_container_of_plain_values(monkeypatch):
    """Lists, dicts and plain objects (schedules, dataclasses, a dict of KL weights) that hold
    numbers only are checked by the identity of what they hold, at C speed; only a container
    that holds another container (``sizes``) has its value built again at every check."""
    from pyro_vsc.train import guards

    program = Program()
    snapshot = StateSnapshot([program])
    built = []
    entry = guards._entry
    monkeypatch.setattr(guards, "_entry", lambda item: built.append(item) or entry(item))
    assert snapshot.unchanged()
    assert built == [program.sizes]


def test_the_change_is_named():
    program = Program()
    before = python_state([program])
    program.scale = 0.125
    program.inner[1].eval()
    assert describe_change(before, python_state([program]), [program]) == (
        "Program.scale: 0.5 -> 0.125; Program.inner.1.training: True -> False")
