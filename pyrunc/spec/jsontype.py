"""The one vocabulary of config.json type errors, shared by every validator of a config
(the spec parser, the seccomp profile, the cgroup controllers): "<json path>: expected
an integer, got a string". Tiny and import-free: it is loaded on every `create`."""
from __future__ import annotations


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
