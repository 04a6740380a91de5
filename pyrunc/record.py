"""A small stand-in for `dataclasses` on the hot path.

`import dataclasses` plus generating each class's methods costs ~15 ms per process for
pyrunc's model, paid by every `create`.  A `Record` subclass is a slotted class whose
fields are its annotations, with one generic __init__, __eq__ and __repr__ inherited
from `Record`, without generating code.  The metaclass builds the slots before the class
exists, so each class is made once (a decorator adding __slots__ has to make it twice:
~7 µs more per class, ~0.2 ms of a `create`).

    class X(Record):                 # class X(Record, frozen=True): immutable, hashable
        a: int
        b: list = field(default_factory=list)
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


class _RecordType(type):
    def __new__(mcls, name, bases, namespace, frozen: bool = False):
        names = tuple(namespace.get("__annotations__", {}))
        # a default stays out of the class dict: a slot and a class attribute cannot share a name
        namespace["_defaults"] = {n: namespace.pop(n) for n in names if n in namespace}
        namespace["__slots__"] = names
        namespace["_fields"] = names
        if frozen:
            namespace["__setattr__"] = _frozen_setattr
            namespace["__hash__"] = _hash
        elif "__hash__" not in namespace:
            namespace["__hash__"] = None  # mutable and compared by value: unhashable
        return super().__new__(mcls, name, bases, namespace)


class Record(metaclass=_RecordType):
    def __init__(self, *args, **kwargs):
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

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self._fields)

    def __repr__(self):
        return f"{type(self).__name__}(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in self._fields) + ")"


def _frozen_setattr(self, name, value):
    raise AttributeError(f"cannot assign to field {name!r} of a frozen record")


def _hash(self):
    return hash(tuple(getattr(self, n) for n in self._fields))


def as_dict(obj):
    """Records (nested in lists, tuples and dicts too) as plain dicts, like dataclasses.asdict."""
    if isinstance(obj, Record):
        return {n: as_dict(getattr(obj, n)) for n in obj._fields}
    if isinstance(obj, (list, tuple)):
        return type(obj)(as_dict(v) for v in obj)
    if isinstance(obj, dict):
        return {k: as_dict(v) for k, v in obj.items()}
    return obj
