"""Linux capabilities: the name <-> number table and bit-mask helpers.

Names are exact (`CAP_KILL`, case-sensitive, as in the OCI spec and runc). In a config, a
name missing from this table or one the running kernel does not know (number >
/proc/sys/kernel/cap_last_cap) is dropped with a warning, as runc does (runtime-spec 1.1:
"MUST log a warning ... SHOULD NOT fail"): `split_by_kernel()` separates the two groups,
`warn_ignored()` logs runc's warning.
"""
from __future__ import annotations

from pyrunc.errors import UnknownName

# Numbers from linux/capability.h; CAP_CHECKPOINT_RESTORE (40) is the last as of Linux 6.x.
CAPABILITIES: dict[str, int] = {
    "CAP_CHOWN": 0,
    "CAP_DAC_OVERRIDE": 1,
    "CAP_DAC_READ_SEARCH": 2,
    "CAP_FOWNER": 3,
    "CAP_FSETID": 4,
    "CAP_KILL": 5,
    "CAP_SETGID": 6,
    "CAP_SETUID": 7,
    "CAP_SETPCAP": 8,
    "CAP_LINUX_IMMUTABLE": 9,
    "CAP_NET_BIND_SERVICE": 10,
    "CAP_NET_BROADCAST": 11,
    "CAP_NET_ADMIN": 12,
    "CAP_NET_RAW": 13,
    "CAP_IPC_LOCK": 14,
    "CAP_IPC_OWNER": 15,
    "CAP_SYS_MODULE": 16,
    "CAP_SYS_RAWIO": 17,
    "CAP_SYS_CHROOT": 18,
    "CAP_SYS_PTRACE": 19,
    "CAP_SYS_PACCT": 20,
    "CAP_SYS_ADMIN": 21,
    "CAP_SYS_BOOT": 22,
    "CAP_SYS_NICE": 23,
    "CAP_SYS_RESOURCE": 24,
    "CAP_SYS_TIME": 25,
    "CAP_SYS_TTY_CONFIG": 26,
    "CAP_MKNOD": 27,
    "CAP_LEASE": 28,
    "CAP_AUDIT_WRITE": 29,
    "CAP_AUDIT_CONTROL": 30,
    "CAP_SETFCAP": 31,
    "CAP_MAC_OVERRIDE": 32,
    "CAP_MAC_ADMIN": 33,
    "CAP_SYSLOG": 34,
    "CAP_WAKE_ALARM": 35,
    "CAP_BLOCK_SUSPEND": 36,
    "CAP_AUDIT_READ": 37,
    "CAP_PERFMON": 38,
    "CAP_BPF": 39,
    "CAP_CHECKPOINT_RESTORE": 40,
}

_NAMES_BY_NUMBER: dict[int, str] = {number: name for name, number in CAPABILITIES.items()}

# The highest number in the table; the fallback for last_cap() when /proc is unreadable.
TABLE_LAST_CAP = max(CAPABILITIES.values())

_last_cap: int | None = None


class UnknownCapability(UnknownName):
    """A capability name that is not in the table."""
    what = "capability"


def cap_number(name: str) -> int:
    """The number of capability `name` (e.g. "CAP_KILL" -> 5); raises UnknownCapability."""
    return UnknownCapability.lookup(CAPABILITIES, name)


def last_cap() -> int:
    """The highest capability number the running kernel knows (cached for the process)."""
    global _last_cap
    if _last_cap is None:
        try:
            with open("/proc/sys/kernel/cap_last_cap", "rb") as f:
                _last_cap = int(f.read().strip())
        except (OSError, ValueError):
            # Without /proc (early in an init, odd sandboxes) trust the table: every
            # kernel this runtime supports (>= 5.x) knows at least up to CAP_BPF anyway.
            _last_cap = TABLE_LAST_CAP
    return _last_cap


def mask(names) -> int:
    """The bit mask (bit n = capability n) of an iterable of names; raises UnknownCapability."""
    bits = 0
    for name in names:
        bits |= 1 << cap_number(name)
    return bits


def names_from_mask(bits: int) -> list[str]:
    """The names of the bits set in `bits`, in ascending number order.

    Bits above the table (capabilities newer than this runtime) have no name and are
    left out, so mask(names_from_mask(m)) == m only for masks of known capabilities.
    """
    names = []
    number = 0
    while bits and number <= TABLE_LAST_CAP:
        if bits & 1:
            names.append(_NAMES_BY_NUMBER[number])
        bits >>= 1
        number += 1
    return names


def split_by_kernel(names, limit: int | None = None) -> tuple[list[str], list[str]]:
    """(names the kernel supports, names unknown to this table or the kernel), order
    kept; `limit` is the kernel's last capability (default: the running kernel's,
    last_cap()).  runc drops the second group with a warning (see warn_ignored)."""
    if limit is None:
        limit = last_cap()
    supported: list[str] = []
    unsupported: list[str] = []
    for name in names:
        number = CAPABILITIES.get(name) if isinstance(name, str) else None
        (supported if number is not None and number <= limit else unsupported).append(name)
    return supported, unsupported


def warn_ignored(capabilities) -> None:
    """runc's one warning for the names of every set that are dropped (sorted, once each)."""
    if capabilities is None:
        return
    ignored = set()
    for kind in ("bounding", "effective", "inheritable", "permitted", "ambient"):
        ignored.update(split_by_kernel(getattr(capabilities, kind))[1])
    if ignored:
        from pyrunc import log
        log.warning(f"ignoring unknown or unavailable capabilities: [{' '.join(sorted(ignored))}]")
