"""The Python state a recorded objective depends on, as a cheap comparable value (its guard).

A recording (:mod:`pyro_vsc.train.capture`) keeps the tensor operations of one run of a Pyro
program. Tensors the program reads through its modules' parameters and buffers are inputs of the
replay and are read live; everything else the program's Python reads is frozen into the
recording: a prior's scale held as a Python float, a KL weight β, a counter, a flag switched by
the training loop, a submodule's ``train()``/``eval()`` mode, a hook, a plain tensor attribute
(recorded as a constant). :func:`python_state` collects all of it from a set of root objects —
the model, the guide, their submodules, the ELBO and the KL weights — walking attributes the way
``torch.compile``'s guards do:

* numbers, strings, ``None``, devices and dtypes by value (floats by ``float.hex``, so NaN equals
  itself and -0.0 differs from 0.0);
* the keys of torch's global forward hooks;
* lists, tuples, dicts and sets element by element; plain objects (schedules, dataclasses)
  through their attributes, to a bounded depth;
* ``nn.Module``\\ s through their own attributes (``training`` among them) and the keys of their
  forward hooks, with the parameter and buffer *names* (their values are replay inputs);
* a plain tensor attribute by identity and version counter (an in-place change bumps it);
* functions, classes and objects it cannot look into by identity (a weak reference, so that a
  new object at a freed object's address is not taken for it);
* each module's class, so that a submodule replaced by one of another class is seen.

The result is a tuple of ``(owner id, attribute, value)`` entries (owners are the live modules
and roots of the program), so comparing two states is a
tuple comparison and :func:`describe_change` can name the attribute that differs.

Building the state walks every attribute in Python (0.12-0.14 ms for the paper's linear model on
this project's CPU). Between replays a :class:`StateSnapshot` tells that nothing it is made of
changed with a few C-level identity comparisons instead (about 0.04 ms; lists, dicts and plain
objects that hold plain values only are checked by the identity of what they hold), and the
state is built again only when the snapshot cannot vouch for it.
"""

import enum
import operator
import types
import weakref
from itertools import chain

import torch
from torch import nn
from torch.nn.modules import module as _global_hooks

#: How deep plain objects (not modules) are followed before only their identity counts.
MAX_DEPTH = 4

#: nn.Module internals that are not program state: submodules are walked as modules of their own,
#: parameters and buffers are inputs of the replay (their names are kept), and the hooks of
#: ``state_dict``/``load_state_dict``/backward do not change the forward computation.
#: ``training``, the names of parameters, buffers and submodules and the forward hooks are kept
#: as one entry per module (``<module>``).
_FORWARD_HOOKS = ("_forward_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called",
                  "_forward_pre_hooks", "_forward_pre_hooks_with_kwargs")
_MODULE_INTERNALS = frozenset({
    "training", *_FORWARD_HOOKS, "_modules", "_parameters", "_buffers",
    "_non_persistent_buffers_set", "_state_dict_hooks", "_state_dict_pre_hooks",
    "_load_state_dict_pre_hooks", "_load_state_dict_post_hooks", "_backward_hooks",
    "_backward_pre_hooks", "_is_full_backward_hook",
})
_BY_VALUE = (bool, int, str, bytes, type(None), complex, torch.device, torch.dtype, torch.Size,
             enum.Enum, range)
_BY_IDENTITY = (types.FunctionType, types.BuiltinFunctionType, types.MethodType, type,
                types.ModuleType)


def _identity(obj):
    """A token equal for the same object only: its id with a weak reference to it. The id tells
    two live objects apart (two weak references to live objects compare the objects themselves,
    with their own ``__eq__``: elementwise for tensors); the weak reference tells a new object at
    a freed object's address from the old one (an id alone could be reused). Where weak
    references are not possible, the id alone."""
    try:
        token = weakref.ref(obj)
        hash(token)
    except TypeError:
        return id(obj)
    return (id(obj), token)


def _value(obj, depth, seen):
    """A comparable, hashable stand-in for ``obj``."""
    if isinstance(obj, float):
        return ("float", obj.hex())
    if isinstance(obj, _BY_VALUE):
        return obj
    if isinstance(obj, torch.Tensor):
        return ("tensor", _identity(obj), obj._version)
    if isinstance(obj, nn.Module) or isinstance(obj, _BY_IDENTITY):
        return ("object", _identity(obj))
    if depth >= MAX_DEPTH or id(obj) in seen:
        return ("object", _identity(obj))
    seen = seen | {id(obj)}
    if isinstance(obj, (list, tuple)):
        return (type(obj).__name__, tuple(_value(item, depth + 1, seen) for item in obj))
    if isinstance(obj, dict):
        return ("dict", tuple((_value(key, depth + 1, seen), _value(item, depth + 1, seen))
                              for key, item in obj.items()))
    if isinstance(obj, (set, frozenset)):
        return ("set", tuple(sorted(map(repr, obj))))
    attributes = getattr(obj, "__dict__", None)
    if attributes is None:
        return ("object", _identity(obj))
    return (type(obj), tuple((name, _value(item, depth + 1, seen)) for name, item in attributes.items()))


_PLAIN = frozenset({bool, int, str, type(None)})


def _entry(item):
    """:func:`_value` with a fast path for the plain values that most attributes hold."""
    kind = type(item)
    if kind in _PLAIN:
        return item
    if kind is float:
        return ("float", item.hex())
    return _value(item, 0, frozenset())


def _walk(roots):
    """``(modules, others)``: every module reachable from ``roots`` (by id, in the order of
    ``root.modules()``) and the roots that are not modules."""
    modules, others = {}, []
    for root in roots:
        if isinstance(root, nn.Module):
            stack = [root]
            while stack:  # root.modules() without its name bookkeeping
                module = stack.pop()
                if id(module) not in modules:
                    modules[id(module)] = module
                    stack.extend(child for child in reversed(module._modules.values()) if child is not None)
        else:
            others.append(root)
    return modules, others


def python_state(roots):
    """The Python state reachable from ``roots`` (modules and other objects), as a tuple."""
    entries = []
    modules, others = _walk(roots)
    for root in others:
        owner = id(root)
        for name, item in vars(root).items():
            entries.append((owner, name, _entry(item)))
    for owner, module in modules.items():
        attributes = module.__dict__
        entries.append((owner, "<module>", (
            attributes["training"], type(module), tuple(module._parameters), tuple(module._buffers),
            tuple(module._modules), *(tuple(attributes[name]) for name in _FORWARD_HOOKS))))
        for name, item in attributes.items():
            if name not in _MODULE_INTERNALS:
                entries.append((owner, name, _entry(item)))
    entries.append((0, "<global forward hooks>", (tuple(_global_hooks._global_forward_hooks),
                                                   tuple(_global_hooks._global_forward_pre_hooks))))
    return tuple(entries)


def _contents(item):
    """The objects a list, dict or plain object is made of, for :class:`StateSnapshot`: the list
    itself, the dict, or the object's attribute dict; ``None`` for anything else (sets, subclasses
    of list or dict, objects without an attribute dict)."""
    kind = type(item)
    if kind is list or kind is dict:
        return item
    if isinstance(item, (list, dict, tuple, set, frozenset, torch.Tensor, *_BY_VALUE)):
        return None
    attributes = getattr(item, "__dict__", None)
    return attributes if type(attributes) is dict else None


def _fixed(item, depth=0):
    """Whether the same object always has the same :func:`_value`: an immutable value all the way
    down (numbers, strings, tuples of such, ...) or one taken by identity (modules, functions)."""
    if isinstance(item, (nn.Module, float, *_BY_VALUE, *_BY_IDENTITY)):
        return True
    if type(item) in (tuple, frozenset) and depth < MAX_DEPTH:
        return all(_fixed(element, depth + 1) for element in item)
    return False


def _live_views(contents):
    """Live views of what a container tracked by :class:`StateSnapshot` holds: a list itself, or a
    dict's keys and values."""
    return (contents,) if type(contents) is list else (contents.keys(), contents.values())


#: The dicts of a module whose contents its state entry is made of.
_CONTAINERS = ("_parameters", "_buffers", "_modules", *_FORWARD_HOOKS)
_dict_of = operator.attrgetter("__dict__")


class StateSnapshot:
    """What :func:`python_state` reads from ``roots``, kept so that a later call can tell that the
    state is unchanged without building it again (the replay's per-step guard, a few times
    cheaper than building the state).

    It keeps every object the state is made of (each module reachable from ``roots`` and each
    other root): its class, its attribute dict, that dict's keys and values (the objects
    themselves) and the keys and values of each module's parameter, buffer, submodule and
    forward-hook dicts; the version of each plain tensor attribute; the contents (the objects
    themselves, and a plain object's class) of each list, dict or plain object attribute whose
    contents all are values that the same object always gives (a schedule's numbers, a dict of
    KL weights); and the :func:`_value` of each other attribute that can change in place,
    recomputed by :meth:`unchanged`. Every other attribute holds a value that the same object
    always gives (numbers, strings, tuples of such, modules and functions by identity). So if
    :meth:`unchanged` says ``True``, each entry of :func:`python_state` would be built from the
    same objects with the same contents as at the snapshot, and the state is equal; if it says
    ``False`` the state may or may not have changed (an attribute assigned an equal new object,
    a parameter replaced under its name), and the caller builds it again.
    """

    def __init__(self, roots):
        modules, others = _walk(roots)
        objects = [*modules.values(), *others]
        self._objects = objects
        self._kinds = tuple(map(type, objects))
        self._dicts = tuple(map(_dict_of, objects))
        tracked, self._changeable, self._tensors = [], [], []
        held, held_kinds = [], []  # plain objects whose contents are tracked, and their classes
        for obj, attributes in zip(objects, self._dicts):
            is_module = isinstance(obj, nn.Module)
            tracked += [attributes, *(attributes[name] for name in _CONTAINERS)] if is_module else [attributes]
            for name, item in attributes.items():
                if is_module and name in _MODULE_INTERNALS:
                    continue
                if isinstance(item, torch.Tensor):
                    self._tensors.append((item, item._version))
                    continue
                if _fixed(item):
                    continue
                contents = _contents(item)
                if contents is not None and all(map(_fixed, chain.from_iterable(_live_views(contents)))):
                    tracked.append(contents)
                    if contents is not item:
                        held.append(item)
                        held_kinds.append(type(item))
                else:
                    self._changeable.append((attributes, name, _entry(item)))
        self._objects += held
        self._kinds += tuple(held_kinds)
        self._dicts += tuple(map(_dict_of, held))
        self._tracked, self._lengths = tracked, tuple(map(len, tracked))
        # live views of the containers that hold something (most hook dicts are empty)
        self._views = [view for contents in tracked if contents for view in _live_views(contents)]
        self._items = tuple(chain.from_iterable(self._views))
        self._global_hooks = (tuple(_global_hooks._global_forward_hooks),
                              tuple(_global_hooks._global_forward_pre_hooks))

    def unchanged(self):
        """Whether :func:`python_state` of the roots is certainly what it was at the snapshot."""
        same = operator.is_
        return (all(map(same, map(type, self._objects), self._kinds))
                and all(map(same, map(_dict_of, self._objects), self._dicts))
                and tuple(map(len, self._tracked)) == self._lengths
                and all(map(same, chain.from_iterable(self._views), self._items))
                and all(_entry(attributes[name]) == value for attributes, name, value in self._changeable)
                and all(tensor._version == version for tensor, version in self._tensors)
                and self._global_hooks == (tuple(_global_hooks._global_forward_hooks),
                                           tuple(_global_hooks._global_forward_pre_hooks)))


def _owner_names(roots):
    names = {0: "torch.nn.modules.module"}
    for root in roots:
        label = type(root).__name__
        if isinstance(root, nn.Module):
            for name, module in root.named_modules():
                names.setdefault(id(module), f"{label}.{name}" if name else label)
        else:
            names.setdefault(id(root), label)
    return names


def _shown(value):
    if isinstance(value, tuple) and value[:1] == ("float",):
        return repr(float.fromhex(value[1]))
    if isinstance(value, tuple) and value[:1] == ("tensor",):
        return "a plain tensor attribute (not a buffer) that was replaced or changed in place"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def describe_change(before, after, roots, shown=3):
    """Names the attributes that differ between two :func:`python_state` results, e.g.
    ``LinearSparseCoding.prior.scale: 0.1 -> 0.07``."""
    names = _owner_names(roots)
    old = {(owner, name): value for owner, name, value in before}
    new = {(owner, name): value for owner, name, value in after}
    changes = []
    for key in dict.fromkeys([*old, *new]):
        if old.get(key, "<absent>") != new.get(key, "<absent>"):
            owner, name = key
            where = f"{names.get(owner, 'an object')}.{name}"
            if key not in old:
                changes.append(f"{where} was added")
            elif key not in new:
                changes.append(f"{where} was removed")
            elif name == "<module>":
                where = where[: -len(".<module>")]
                if old[key][0] != new[key][0]:
                    changes.append(f"{where}.training: {old[key][0]} -> {new[key][0]}")
                if old[key][1:] != new[key][1:]:
                    changes.append(f"{where}: its class, parameters, buffers, submodules or forward hooks")
            elif isinstance(old[key], tuple) and old[key][:1] == ("tensor",):
                changes.append(f"{where} ({_shown(old[key])})")
            else:
                changes.append(f"{where}: {_shown(old[key])} -> {_shown(new[key])}")
    more = len(changes) - shown
    return "; ".join(changes[:shown]) + (f" and {more} more" if more > 0 else "")
