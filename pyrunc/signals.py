"""Signal arguments of `kill`, parsed as runc 1.1.5 parses them.

runc: a decimal integer is taken as is (even 0, negative or > 64: kill(2) answers
EINVAL later); otherwise the upper-cased name, with "SIG" prefixed when missing, is
looked up among the 31 classic Linux names (golang.org/x/sys/unix's table). Real-time
names such as RTMIN+3 and aliases such as IOT, CLD, POLL are unknown to runc, so they
are unknown here too; RT signals are reachable by number.
"""
from __future__ import annotations

from pyrunc.errors import PyruncError

SIGNALS: dict[str, int] = {
    "SIGHUP": 1, "SIGINT": 2, "SIGQUIT": 3, "SIGILL": 4, "SIGTRAP": 5, "SIGABRT": 6,
    "SIGBUS": 7, "SIGFPE": 8, "SIGKILL": 9, "SIGUSR1": 10, "SIGSEGV": 11, "SIGUSR2": 12,
    "SIGPIPE": 13, "SIGALRM": 14, "SIGTERM": 15, "SIGSTKFLT": 16, "SIGCHLD": 17,
    "SIGCONT": 18, "SIGSTOP": 19, "SIGTSTP": 20, "SIGTTIN": 21, "SIGTTOU": 22,
    "SIGURG": 23, "SIGXCPU": 24, "SIGXFSZ": 25, "SIGVTALRM": 26, "SIGPROF": 27,
    "SIGWINCH": 28, "SIGIO": 29, "SIGPWR": 30, "SIGSYS": 31,
}

_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_DIGITS = frozenset("0123456789")


class SignalError(PyruncError):
    """The signal argument names no signal."""


def parse_signal(raw: str) -> int:
    """"9" -> 9, "KILL"/"SIGKILL"/"sigkill"/"Kill" -> 9; else SignalError
    `unknown signal "FOO"`."""
    number = _go_atoi(raw)
    if number is not None:
        return number
    name = raw.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return SIGNALS[name]
    except KeyError:
        # Imported here: pyrunc.log is only needed on this error path.
        from pyrunc.log import go_quote
        raise SignalError(f"unknown signal {go_quote(raw)}") from None


def signal_name(number: int) -> str:
    """"SIGKILL" for 9; "signal 40" for numbers without a classic name."""
    for name, value in SIGNALS.items():
        if value == number:
            return name
    return f"signal {number}"


def _go_atoi(text: str) -> int | None:
    # strconv.Atoi: optional sign, ASCII digits only (no spaces, no underscores, no
    # 0x), within int64; Python's int() is laxer on every one of those points.
    digits = text[1:] if text[:1] in ("+", "-") else text
    if not digits or not set(digits) <= _DIGITS:
        return None
    value = int(text)
    if not _INT64_MIN <= value <= _INT64_MAX:
        return None
    return value
