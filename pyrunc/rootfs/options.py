"""OCI mount options → mount(2) flags, propagation and data, as runc parses them."""
from __future__ import annotations

from pyrunc.record import field, record as dataclass

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_SILENT = 0x8000
MS_UNBINDABLE = 0x20000
MS_PRIVATE = 0x40000
MS_SLAVE = 0x80000
MS_SHARED = 0x100000
MS_RELATIME = 0x200000
MS_STRICTATIME = 0x1000000

# option -> (clear?, flag)
FLAGS: dict[str, tuple[bool, int]] = {
    "acl": (False, 0x10000),  # MS_POSIXACL
    "async": (True, MS_SYNCHRONOUS),
    "atime": (True, MS_NOATIME),
    "bind": (False, MS_BIND),
    "defaults": (False, 0),
    "dev": (True, MS_NODEV),
    "diratime": (True, MS_NODIRATIME),
    "dirsync": (False, MS_DIRSYNC),
    "exec": (True, MS_NOEXEC),
    "iversion": (False, 0x800000),
    "lazytime": (False, 0x2000000),
    "loud": (True, MS_SILENT),
    "mand": (False, MS_MANDLOCK),
    "noacl": (True, 0x10000),
    "noatime": (False, MS_NOATIME),
    "nodev": (False, MS_NODEV),
    "nodiratime": (False, MS_NODIRATIME),
    "noexec": (False, MS_NOEXEC),
    "noiversion": (True, 0x800000),
    "nolazytime": (True, 0x2000000),
    "nomand": (True, MS_MANDLOCK),
    "norelatime": (True, MS_RELATIME),
    "nostrictatime": (True, MS_STRICTATIME),
    "nosuid": (False, MS_NOSUID),
    "rbind": (False, MS_BIND | MS_REC),
    "relatime": (False, MS_RELATIME),
    "remount": (False, MS_REMOUNT),
    "ro": (False, MS_RDONLY),
    "rw": (True, MS_RDONLY),
    "silent": (False, MS_SILENT),
    "strictatime": (False, MS_STRICTATIME),
    "suid": (True, MS_NOSUID),
    "sync": (False, MS_SYNCHRONOUS),
}

PROPAGATION: dict[str, int] = {
    "private": MS_PRIVATE,
    "rprivate": MS_PRIVATE | MS_REC,
    "shared": MS_SHARED,
    "rshared": MS_SHARED | MS_REC,
    "slave": MS_SLAVE,
    "rslave": MS_SLAVE | MS_REC,
    "unbindable": MS_UNBINDABLE,
    "runbindable": MS_UNBINDABLE | MS_REC,
}

# runtime extensions that are not mount(2) options
EXTENSIONS = {"tmpcopyup"}


@dataclass
class MountOptions:
    flags: int = 0
    propagation: list[int] = field(default_factory=list)
    data: list[str] = field(default_factory=list)
    extensions: set[str] = field(default_factory=set)

    @property
    def is_bind(self) -> bool:
        return bool(self.flags & MS_BIND)


def parse(options: list[str]) -> MountOptions:
    """Unknown options become filesystem data, as in runc (e.g. `mode=755`, `size=64k`)."""
    result = MountOptions()
    for opt in options:
        if opt in FLAGS:
            clear, bit = FLAGS[opt]
            result.flags = result.flags & ~bit if clear else result.flags | bit
        elif opt in PROPAGATION:
            result.propagation.append(PROPAGATION[opt])
        elif opt in EXTENSIONS:
            result.extensions.add(opt)
        else:
            result.data.append(opt)
    return result


def propagation_flags(name: str) -> int:
    """rootfsPropagation value → flags; raises KeyError for unknown names."""
    return PROPAGATION[name]
