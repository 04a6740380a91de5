"""Resource limits: OCI `RLIMIT_*` names -> Linux resource numbers (asm-generic/resource.h,
the same on every architecture Linux supports except the historic alpha/mips/sparc ones)."""
from __future__ import annotations

from pyrunc.errors import UnknownName

RLIMITS: dict[str, int] = {
    "RLIMIT_CPU": 0,
    "RLIMIT_FSIZE": 1,
    "RLIMIT_DATA": 2,
    "RLIMIT_STACK": 3,
    "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5,
    "RLIMIT_NPROC": 6,
    "RLIMIT_NOFILE": 7,
    "RLIMIT_MEMLOCK": 8,
    "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10,
    "RLIMIT_SIGPENDING": 11,
    "RLIMIT_MSGQUEUE": 12,
    "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14,
    "RLIMIT_RTTIME": 15,
}

# RLIM_INFINITY as written in config.json (a uint64 with all bits set).
RLIM_INFINITY = (1 << 64) - 1


class UnknownRlimit(UnknownName):
    """An rlimit type that is not in the table."""
    what = "rlimit"


def rlimit_number(name: str) -> int:
    """The resource number of `name` (e.g. "RLIMIT_NOFILE" -> 7); raises UnknownRlimit."""
    return UnknownRlimit.lookup(RLIMITS, name)
