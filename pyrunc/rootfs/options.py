"""OCI mount options → mount(2) flags, propagation and data, as runc parses them."""
from __future__ import annotations

from pyrunc.record import Record, field

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOSYMFOLLOW = 0x100
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
    "nosymfollow": (False, MS_NOSYMFOLLOW),  # kernel 5.10
    "rbind": (False, MS_BIND | MS_REC),
    "relatime": (False, MS_RELATIME),
    "remount": (False, MS_REMOUNT),
    "ro": (False, MS_RDONLY),
    "rw": (True, MS_RDONLY),
    "silent": (False, MS_SILENT),
    "strictatime": (False, MS_STRICTATIME),
    "suid": (True, MS_NOSUID),
    "symfollow": (True, MS_NOSYMFOLLOW),
    "sync": (False, MS_SYNCHRONOUS),
}

# mount_setattr(2) attributes
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
MOUNT_ATTR__ATIME = 0x70      # the access-time setting is an enum inside this field
MOUNT_ATTR_RELATIME = 0x0
MOUNT_ATTR_NOATIME = 0x10
MOUNT_ATTR_STRICTATIME = 0x20
MOUNT_ATTR_NODIRATIME = 0x80
MOUNT_ATTR_IDMAP = 0x100000
MOUNT_ATTR_NOSYMFOLLOW = 0x200000  # kernel 5.14

# the recursive options (runc's recAttrFlags), applied to the mount and every mount
# below it with mount_setattr(AT_RECURSIVE) once it is in place: option -> (clear?, attr)
REC_ATTRS: dict[str, tuple[bool, int]] = {
    "rro": (False, MOUNT_ATTR_RDONLY),
    "rrw": (True, MOUNT_ATTR_RDONLY),
    "rnosuid": (False, MOUNT_ATTR_NOSUID),
    "rsuid": (True, MOUNT_ATTR_NOSUID),
    "rnodev": (False, MOUNT_ATTR_NODEV),
    "rdev": (True, MOUNT_ATTR_NODEV),
    "rnoexec": (False, MOUNT_ATTR_NOEXEC),
    "rexec": (True, MOUNT_ATTR_NOEXEC),
    "rnodiratime": (False, MOUNT_ATTR_NODIRATIME),
    "rdiratime": (True, MOUNT_ATTR_NODIRATIME),
    "rrelatime": (False, MOUNT_ATTR_RELATIME),
    "rnorelatime": (True, MOUNT_ATTR_RELATIME),
    "rnoatime": (False, MOUNT_ATTR_NOATIME),
    "ratime": (True, MOUNT_ATTR_NOATIME),
    "rstrictatime": (False, MOUNT_ATTR_STRICTATIME),
    "rnostrictatime": (True, MOUNT_ATTR_STRICTATIME),
    "rnosymfollow": (False, MOUNT_ATTR_NOSYMFOLLOW),
    "rsymfollow": (True, MOUNT_ATTR_NOSYMFOLLOW),
}

# id-mapped bind mounts: option -> whether the mounts below the bind are mapped too
IDMAP: dict[str, bool] = {"idmap": False, "ridmap": True}

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


class MountOptions(Record):
    flags: int = 0
    propagation: list[int] = field(default_factory=list)
    data: list[str] = field(default_factory=list)
    extensions: set[str] = field(default_factory=set)
    rec_attr_set: int = 0   # mount_setattr attr_set/attr_clr of the recursive options
    rec_attr_clr: int = 0
    idmap: bool | None = None  # "idmap" (False), "ridmap" (True), None: neither

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
        elif opt in REC_ATTRS:
            _add_rec_attr(result, *REC_ATTRS[opt])
        elif opt in EXTENSIONS:
            result.extensions.add(opt)
        elif opt in IDMAP:
            result.idmap = IDMAP[opt]
        else:
            result.data.append(opt)
    return result


def _add_rec_attr(result: MountOptions, clear: bool, attr: int) -> None:
    if attr & MOUNT_ATTR__ATIME == attr:
        # the access time is one value of the _ATIME field: the kernel takes a new one
        # only with the whole field in attr_clr (mount_setattr(2)), and refuses a part of
        # it there; clearing noatime or strictatime leaves the default, relatime
        # (runc 1.1-1.4 put the bare bit in attr_clr, which the kernel refuses);
        # rnorelatime names no value and changes nothing, as in runc
        if clear and attr == MOUNT_ATTR_RELATIME:
            return
        result.rec_attr_set &= ~MOUNT_ATTR__ATIME
        if not clear:
            result.rec_attr_set |= attr
        result.rec_attr_clr |= MOUNT_ATTR__ATIME
    elif clear:
        result.rec_attr_clr |= attr
        result.rec_attr_set &= ~attr
    else:
        result.rec_attr_set |= attr
        result.rec_attr_clr &= ~attr


def propagation_flags(name: str) -> int:
    """rootfsPropagation value → flags; raises KeyError for unknown names."""
    return PROPAGATION[name]
