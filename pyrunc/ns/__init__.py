"""Linux namespaces: kinds, clone flags, /proc names, and id maps."""
from __future__ import annotations

import os

CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# OCI namespace type -> (clone flag, name under /proc/<pid>/ns/)
KINDS: dict[str, tuple[int, str]] = {
    "user": (CLONE_NEWUSER, "user"),
    "pid": (CLONE_NEWPID, "pid"),
    "network": (CLONE_NEWNET, "net"),
    "mount": (CLONE_NEWNS, "mnt"),
    "ipc": (CLONE_NEWIPC, "ipc"),
    "uts": (CLONE_NEWUTS, "uts"),
    "cgroup": (CLONE_NEWCGROUP, "cgroup"),
    "time": (CLONE_NEWTIME, "time"),
}

# Join order: the user namespace first (the others may be owned by it), the mount
# namespace last (joining it changes how later paths resolve).
JOIN_ORDER = ("user", "ipc", "uts", "network", "pid", "cgroup", "time", "mount")


def flag(ns_type: str) -> int:
    return KINDS[ns_type][0]


def proc_name(ns_type: str) -> str:
    return KINDS[ns_type][1]


def describe(clone_flags: int) -> str:
    """The namespace types in `clone_flags`, for log lines: "mount, uts, ipc"."""
    return ", ".join(t for t, (bit, _) in KINDS.items() if clone_flags & bit) or "none"


def supported() -> list[str]:
    """The namespace types this kernel offers (per /proc/self/ns)."""
    present = set(os.listdir("/proc/self/ns"))
    return [t for t, (_, name) in KINDS.items() if name in present]


def format_id_map(mappings) -> bytes:
    return "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in mappings).encode()


def write_id_maps(pid: int, uid_mappings, gid_mappings) -> None:
    """Write /proc/<pid>/{uid,gid}_map from the runtime, as the user namespace's parent.

    Each map is written in one write(2) as the kernel requires.
    """
    for name, mappings in (("uid_map", uid_mappings), ("gid_map", gid_mappings)):
        if not mappings:
            continue
        fd = os.open(f"/proc/{pid}/{name}", os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, format_id_map(mappings))
        finally:
            os.close(fd)
