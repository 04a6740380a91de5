"""What every controller module shares: the linux.resources validation helpers (the
config's one vocabulary and type checks, pyrunc.spec.jsontype.Reader: "<field>: expected
an integer, got a string"), the Write a translation produces, the Probe a translation
may ask about the host, and runc's update merge of one section.

Pure: no file access here (the Probe is implemented on real directories by
pyrunc.cgroups._resources and by a dict in the unit tests)."""

from __future__ import annotations

from pyrunc.cgroups._paths import CgroupError
from pyrunc.spec.jsontype import Reader

FIELD = "linux.resources"

UINT32_MAX = (1 << 32) - 1
UINT64_MAX = (1 << 64) - 1
INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1


# ------------------------------------------------------------------------- validation

class _Resources(Reader):
    """linux.resources errors: a CgroupError "<field>: <problem>" (spec.parse prefixes
    "config.json: "; `pyrunc update` reports it as it is)."""
    __slots__ = ()

    def fail(self, path: str, message: str) -> None:
        raise CgroupError(f"{path}: {message}")


_READER = _Resources()
fail = _READER.fail
obj = _READER.obj
array = _READER.array
boolean = _READER.boolean


def integer(value, path: str, lo: int, hi: int) -> int:
    """An integer in [lo, hi]; absent or null is 0 (runc's "not set")."""
    return 0 if value is None else _READER.integer(value, path, lo, hi)


def string(value, path: str) -> str:
    """A string; absent or null is "" (written to cgroupfs as it is: NUL not refused here)."""
    return _READER.string(value, path, nul_ok=True)


def integers(section: dict, path: str, ranges: dict[str, tuple[int, int]]) -> dict[str, int]:
    """integer() of each field named in `ranges` (field -> (lo, hi)) of `section`."""
    return {key: integer(section.get(key), f"{path}.{key}", lo, hi) for key, (lo, hi) in ranges.items()}


# Plain string checks, not `re`: importing it costs ~5 ms on every create.
def is_number(text: str) -> bool:
    return text.isascii() and text.isdigit()


# ------------------------------------------------------------------------- update merge

def is_set(value) -> bool:
    """runc update's notion of a given value: zero values mean "unchanged"."""
    return value not in (0, "", None, [], False)


def merge_fields(old: dict, new: dict) -> dict:
    """A section of scalar fields: each field `new` sets replaces the one in `old`."""
    return {k: (new[k] if is_set(new.get(k)) else old.get(k)) for k in set(old) | set(new)}


def merge_list(old: list, new: list) -> list:
    """A list section: replaced as a whole when `new` has one."""
    return new if new else old


# ------------------------------------------------------------------------- translation

class Probe:
    """What the translations need to know about the host; `controller` names the
    directory ("" = the cgroup2 one), `name` a file in it ("" = the directory)."""

    def exists(self, controller: str, name: str) -> bool:  # pragma: no cover - interface
        raise NotImplementedError

    def read_int(self, controller: str, name: str) -> int:  # pragma: no cover - interface
        raise NotImplementedError


class Write:
    """One cgroup file write: `controller` picks the directory ("" = cgroup2)."""
    __slots__ = ("controller", "name", "value", "field", "ignore_missing")

    def __init__(self, controller: str, name: str, value: str, field: str,
                 ignore_missing: bool = False):
        self.controller, self.name, self.value, self.field = controller, name, value, field
        self.ignore_missing = ignore_missing

    def __repr__(self) -> str:
        return f"Write({self.controller!r}, {self.name!r}, {self.value!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Write) and (self.controller, self.name, self.value) == (
            other.controller, other.name, other.value)


def max_or_number(value: int) -> str:
    """cgroup2's spelling of a limit: "" for 0 (not set), "max" for -1."""
    return "" if value == 0 else ("max" if value == -1 else str(value))
