"""A small stand-in for `dataclasses` on the hot path.

`import dataclasses` plus generating each class's methods costs ~15 ms per process for
pyrunc's model, paid by every `create`.  `record` makes a slotted class with one
generic __init__, __eq__ and __repr__ from the class annotations, without generating
code.  Same declaration syntax: `@record class X: a: int; b: list = field(default_factory=list)`.
"""
from __future__ import annotations

_MISSING = object()


class _Factory:
    __slots__ = ("make",)

    def __init__(self, make):
        self.make = make


def field(*, default=_MISSING, default_factory=_MISSING):
    if default_factory is not _MISSING:
        return _Factory(default_factory)
    return default


def record(cls=None, *, frozen: bool = False):
    def wrap(cls):
        names = tuple(cls.__dict__.get("__annotations__", {}))
        defaults = {}
        for name in names:
            if name in cls.__dict__:
                defaults[name] = cls.__dict__[name]
        namespace = {k: v for k, v in cls.__dict__.items()
                     if k not in names and k not in ("__dict__", "__weakref__")}
        namespace["__slots__"] = names
        namespace["_fields"] = names
        namespace["_defaults"] = defaults
        namespace["__init__"] = _init
        namespace["__eq__"] = _eq
        namespace["__repr__"] = _repr
        if frozen:
            namespace["__setattr__"] = _frozen_setattr
            namespace["__hash__"] = _hash
        else:
            namespace["__hash__"] = None
        return type(cls)(cls.__name__, cls.__bases__, namespace)
    return wrap if cls is None else wrap(cls)


def _init(self, *args, **kwargs):
    fields = self._fields
    if len(args) > len(fields):
        raise TypeError(f"{type(self).__name__}() takes {len(fields)} positional arguments")
    setter = object.__setattr__
    for name, value in zip(fields, args):
        setter(self, name, value)
    for name in fields[len(args):]:
        if name in kwargs:
            setter(self, name, kwargs.pop(name))
            continue
        default = self._defaults.get(name, _MISSING)
        if default is _MISSING:
            raise TypeError(f"{type(self).__name__}() missing required argument: {name!r}")
        setter(self, name, default.make() if isinstance(default, _Factory) else default)
    if kwargs:
        raise TypeError(f"{type(self).__name__}() got unexpected arguments: {', '.join(kwargs)}")
    post = getattr(self, "__post_init__", None)
    if post is not None:
        post()


def _eq(self, other):
    if type(other) is not type(self):
        return NotImplemented
    return all(getattr(self, n) == getattr(other, n) for n in self._fields)


def _repr(self):
    return f"{type(self).__name__}(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in self._fields) + ")"


def _frozen_setattr(self, name, value):
    raise AttributeError(f"cannot assign to field {name!r} of a frozen record")


def _hash(self):
    return hash(tuple(getattr(self, n) for n in self._fields))


def as_dict(obj):
    """Records (nested in lists, tuples and dicts too) as plain dicts, like dataclasses.asdict."""
    if hasattr(type(obj), "_fields"):
        return {n: as_dict(getattr(obj, n)) for n in obj._fields}
    if isinstance(obj, (list, tuple)):
        return type(obj)(as_dict(v) for v in obj)
    if isinstance(obj, dict):
        return {k: as_dict(v) for k, v in obj.items()}
    return obj
