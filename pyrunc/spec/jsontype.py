"""The one vocabulary of config.json type errors and the one implementation of its JSON
type checks, shared by every validator of a config (the spec parser, the seccomp
profile, the cgroup controllers): "<json path>: expected an integer, got a string".

As Go's encoding/json in runc: `null` is the same as an absent field (the zero value:
{}, [], "", False), integers are integral JSON numbers within a range.  Tiny and
import-free: it is loaded on every `create`."""
from __future__ import annotations

if False:  # annotations only: importing typing costs ~3 ms on the create path
    from typing import Any, NoReturn, Optional


def kind(value) -> str:
    """How a JSON value is named in type errors."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, float):
        return f"the number {value!r}"
    if isinstance(value, int):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def wrong_type(expected: str, value) -> str:
    """The message for `value` where `expected` ("an integer") belongs."""
    return f"expected {expected}, got {kind(value)}"


class Reader:
    """The JSON type checks.  A validator subclasses it and says, in `fail`, how an error
    at a JSON path is raised (its exception type and the prefix of its messages)."""

    __slots__ = ()

    def fail(self, path: str, message: str) -> NoReturn:  # pragma: no cover - interface
        raise NotImplementedError

    def wrong_type(self, path: str, expected: str, value: Any) -> NoReturn:
        self.fail(path, wrong_type(expected, value))

    def missing(self, path: str) -> NoReturn:
        self.fail(path, "required field is missing")

    def obj(self, value: Any, path: str) -> dict:
        """An object; null or absent is {}."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.wrong_type(path, "an object", value)
        return value

    def array(self, value: Any, path: str) -> list:
        """An array; null or absent is []."""
        if value is None:
            return []
        if not isinstance(value, list):
            self.wrong_type(path, "an array", value)
        return value

    def string(self, value: Any, path: str, *, nul_ok: bool = False) -> str:
        """A string; null or absent is "". NUL bytes are refused unless `nul_ok`: most
        strings end up as C strings (paths, argv, env) where NUL would silently truncate."""
        if value is None:
            return ""
        if not isinstance(value, str):
            self.wrong_type(path, "a string", value)
        if not nul_ok and "\0" in value:
            self.fail(path, "must not contain a NUL byte")
        return value

    def req_string(self, value: Any, path: str) -> str:
        """A string that must be given and not be empty."""
        text = self.string(value, path)
        if not text:
            self.missing(path)
        return text

    def boolean(self, value: Any, path: str) -> bool:
        """A boolean; null or absent is False."""
        if value is None:
            return False
        if not isinstance(value, bool):
            self.wrong_type(path, "a boolean", value)
        return value

    def integer(self, value: Any, path: str, low: int, high: int) -> int:
        """An integer within [low, high]; the caller handles null/absent."""
        # bool is an int subclass in Python but not a number in JSON.
        if type(value) is not int:
            self.wrong_type(path, "an integer", value)
        if not low <= value <= high:
            self.fail(path, f"{value} is out of range [{low}, {high}]")
        return value

    def opt_integer(self, value: Any, path: str, low: int, high: int) -> Optional[int]:
        return None if value is None else self.integer(value, path, low, high)

    def req_integer(self, value: Any, path: str, low: int, high: int) -> int:
        if value is None:
            self.missing(path)
        return self.integer(value, path, low, high)

    def string_list(self, value: Any, path: str, *, nul_ok: bool = False) -> list[str]:
        """An array of strings (a copy); null or absent is []."""
        items = self.array(value, path)
        # one pass over the (sometimes hundreds of) items; the per-item walk only to name the bad one
        if not set(map(type, items)) <= {str} or (not nul_ok and "\0" in "".join(items)):
            for i, item in enumerate(items):
                if not isinstance(item, str):
                    self.wrong_type(f"{path}[{i}]", "a string", item)
                if not nul_ok and "\0" in item:
                    self.fail(f"{path}[{i}]", "must not contain a NUL byte")
        return list(items)

    def string_map(self, value: Any, path: str, *, nul_ok: bool = False) -> dict[str, str]:
        """An object of strings (a copy); null or absent is {}."""
        mapping = self.obj(value, path)
        for key, item in mapping.items():
            if not isinstance(item, str):
                self.wrong_type(f'{path}["{key}"]', "a string", item)
            if not nul_ok and "\0" in item:
                self.fail(f'{path}["{key}"]', "must not contain a NUL byte")
        return dict(mapping)
