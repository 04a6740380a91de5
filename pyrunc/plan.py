"""The plan: an ordered list of ops that pyrunc-init executes between clone and exec.

Python decides everything (order, flags, resolved paths, masks); the C side only
performs the ops.  The wire format is described in pyrunc/_native/plan.h.  Every op
carries a description so that a failure reported as (op index, errno) becomes
`mount proc on /b/rootfs/proc: permission denied`.
"""
from __future__ import annotations

import errno
import os
import struct

# The wire format's version, magic and op codes: the same as pyrunc/_native/plan.h
# (tests/unit/test_plan.py parses plan.h and compares).  Bump PLAN_VERSION with any change
# of an op's arguments: the init refuses a plan of another version.
PLAN_MAGIC = b"PYRP"
PLAN_VERSION = 1

OP_SYNC = 1
OP_SETNS = 2
OP_UNSHARE = 3
OP_SETRESID = 4
OP_FORK = 5
OP_WRITE_FILE = 6
OP_ROOT = 7
OP_MOUNT = 8
OP_MKNOD = 9
OP_SYMLINK = 10
OP_PIVOT_ROOT = 11
OP_MOVE_ROOT = 12
OP_MASK = 13
OP_READONLY = 14
OP_SYSCTL = 15
OP_HOSTNAME = 16
OP_DOMAINNAME = 17
OP_RLIMIT = 18
OP_CONSOLE = 19
OP_CHDIR = 20
OP_NO_NEW_PRIVS = 21
OP_BOUNDING = 22
OP_USER = 23
OP_CAPSET = 24
OP_SECCOMP = 25
OP_CLOSE_FDS = 26
OP_EXEC = 28
OP_UMASK = 29
OP_SETSID = 30
OP_READY = 31
OP_LOOPBACK_UP = 32
OP_DUP2 = 33
OP_REOPEN_DEV_NULL = 34
OP_CHROOT = 35
OP_LOOKUP = 36
OP_KEYRING = 37
OP_PRIVATE_IF_SHARED = 38
OP_MKDIR = 39
OP_PROC_ATTR = 40
OP_SETXATTR = 41
OP_OPEN_TREE = 42
OP_HIDE_MOUNT = 43
# id-mapped and recursive-attribute mounts (50-54)
OP_USERNS_FD = 50
OP_IDMAP_TREE = 51
OP_MOUNT_SETATTR = 52
# process attributes set just before exec (pyrunc.process_attrs)
OP_PERSONALITY = 55
OP_SCHED_SETATTR = 56
OP_IOPRIO_SET = 57
OP_SET_MEMPOLICY = 58
OP_SCHED_AFFINITY = 59
OP_WAIT_EXEC_FIFO = 65
OP_DUMPABLE = 66
OP_OPEN_PROC_FDS = 67

TARGET_HOST, TARGET_IN_ROOT = 0, 1
MKDIR_NONE, MKDIR_DIR, MKDIR_FILE, MKDIR_ORDINARY_DIR = 0, 1, 2, 3
SOURCE_LITERAL, SOURCE_HOST, SOURCE_IN_ROOT, SOURCE_TREE = 0, 1, 2, 3

# messages from the init (struct init_msg)
MSG_SYNC, MSG_PID, MSG_ERROR, MSG_READY, MSG_SECCOMP_FD = 1, 2, 3, 4, 5
MSG_SIZE = 16


def unpack_msg(data: bytes) -> tuple[int, int, int, int]:
    """A struct init_msg from the init: (type, op index, errno, value).  The one decoder
    of the init's messages (the sync socket's and the start socket's)."""
    return struct.unpack("<iiii", data)

_TWO64, _I64_MAX = 1 << 64, (1 << 63) - 1
# an op's head (code, nints, nstrs) and its ints, compiled on first use per count of ints
_HEADS: dict[int, struct.Struct] = {}


class Plan:
    """An ordered list of encoded ops.  Facility modules append through the typed
    builders below (one per op code, arguments in plan.h's order); `what` names the step
    for error messages, `reasons` words particular errnos of the op (runc's wording for a
    refusal the init can only report as an errno)."""

    def __init__(self) -> None:
        self._ops: list[bytes] = []
        self._descriptions: list[str] = []
        self._reasons: dict[int, dict[int, str]] = {}
        self.codes: list[int] = []

    def _add(self, code: int, ints: tuple | list = (), strs: tuple | list = (), what: str = "",
             reasons: dict[int, str] | None = None) -> int:
        """Append an op; returns its index."""
        if ints and max(ints) > _I64_MAX:
            # masks above 2**63 travel as their two's complement
            ints = [v - _TWO64 if v > _I64_MAX else v for v in ints]
        n = len(ints)
        head = _HEADS.get(n) or _HEADS.setdefault(n, struct.Struct(f"<IHH{n}q"))
        parts = [head.pack(code, n, len(strs), *ints)]
        for s in strs:
            data = s if isinstance(s, bytes) else s.encode()
            parts += (len(data).to_bytes(4, "little"), data, b"\0")
        self._ops.append(b"".join(parts))
        self._descriptions.append(what)
        self.codes.append(code)
        if reasons:
            self._reasons[len(self._ops) - 1] = reasons
        return len(self._ops) - 1

    # ------------------------------------------------------------ typed builders
    # control and namespaces
    def sync(self, sync_id: int, what: str) -> None:
        self._add(OP_SYNC, (sync_id,), what=what)

    def open_proc_fds(self, what: str) -> None:
        self._add(OP_OPEN_PROC_FDS, what=what)

    def dumpable(self, on: bool, what: str) -> None:
        self._add(OP_DUMPABLE, (int(on),), what=what)

    def setns(self, nstype: int, path: str, what: str) -> None:
        self._add(OP_SETNS, (nstype,), (path,), what=what)

    def unshare(self, flags: int, what: str) -> None:
        self._add(OP_UNSHARE, (flags,), what=what)

    def setresid(self, uid: int, gid: int, what: str) -> None:
        self._add(OP_SETRESID, (uid, gid), what=what)

    def fork(self, what: str) -> None:
        self._add(OP_FORK, what=what)

    def write_file(self, path: str, content: str, what: str) -> None:
        self._add(OP_WRITE_FILE, (), (path, content), what=what)

    def loopback_up(self, what: str) -> None:
        self._add(OP_LOOPBACK_UP, what=what)

    def keyring(self, name: str, what: str) -> None:
        self._add(OP_KEYRING, (), (name,), what=what)

    def proc_attr(self, value: str, paths: tuple[str, ...], what: str) -> None:
        self._add(OP_PROC_ATTR, (), (value, *paths), what=what)

    # the filesystem
    def root(self, path: str, what: str) -> None:
        self._add(OP_ROOT, (), (path,), what=what)

    def mount(self, source: str, target: str, fstype: str = "", data: str = "", *, flags: int,
              target_kind: int = TARGET_IN_ROOT, mkdir: int = MKDIR_NONE, source_kind: int = SOURCE_LITERAL,
              tree_slot: int | None = None, not_on_procfs: bool | None = None, what: str,
              reasons: dict[int, str] | None = None) -> None:
        """tree_slot: the OP_OPEN_TREE slot of a SOURCE_TREE bind; not_on_procfs: refuse a
        target that resolves onto procfs (both only for binds, which always send them)."""
        ints: tuple = (flags, target_kind, mkdir, source_kind)
        if tree_slot is not None or not_on_procfs is not None:
            ints += (tree_slot or 0, int(bool(not_on_procfs)))
        self._add(OP_MOUNT, ints, (source, target, fstype, data), what=what, reasons=reasons)

    def open_tree(self, slot: int, recursive: bool, source: str, what: str) -> None:
        self._add(OP_OPEN_TREE, (slot, int(recursive)), (source,), what=what)

    def userns_fd(self, slot: int, uid_map: str, gid_map: str, ns_path: str, what: str,
                  reasons: dict[int, str] | None = None) -> None:
        """A user namespace for an id-mapped mount, kept in `slot`: the one at ns_path,
        or (ns_path "") a new one with these maps, made by a child that then exits."""
        self._add(OP_USERNS_FD, (slot,), (uid_map, gid_map, ns_path), what=what, reasons=reasons)

    def idmap_tree(self, tree_slot: int, userns_slot: int, recursive: bool, what: str,
                   reasons: dict[int, str] | None = None) -> None:
        """The detached mount of an OP_OPEN_TREE slot id-mapped through a userns_fd slot."""
        self._add(OP_IDMAP_TREE, (tree_slot, userns_slot, int(recursive)), what=what, reasons=reasons)

    def mount_setattr(self, path: str, attr_set: int, attr_clr: int, what: str,
                      reasons: dict[int, str] | None = None) -> None:
        """mount_setattr(AT_RECURSIVE) on the mount at an in-root path and every mount below it."""
        self._add(OP_MOUNT_SETATTR, (attr_set, attr_clr), (path,), what=what, reasons=reasons)

    def private_if_shared(self, escaped_point: str, path: str, what: str) -> None:
        self._add(OP_PRIVATE_IF_SHARED, (), (escaped_point, path), what=what)

    def mknod(self, path: str, mode: int, dev: int, uid: int, gid: int, what: str) -> None:
        self._add(OP_MKNOD, (mode, dev, uid, gid), (path,), what=what)

    def symlink(self, target: str, link: str, what: str) -> None:
        self._add(OP_SYMLINK, (), (target, link), what=what)

    def mkdir(self, path: str, what: str) -> None:
        self._add(OP_MKDIR, (), (path,), what=what)

    def setxattr(self, path: str, name: str, value: str, what: str) -> None:
        self._add(OP_SETXATTR, (), (path, name, value), what=what)

    def pivot_root(self, what: str) -> None:
        self._add(OP_PIVOT_ROOT, what=what)

    def move_root(self, what: str) -> None:
        self._add(OP_MOVE_ROOT, what=what)

    def hide_mount(self, point: str, what: str) -> None:
        self._add(OP_HIDE_MOUNT, (), (point,), what=what)

    def chroot(self, what: str) -> None:
        self._add(OP_CHROOT, what=what)

    def reopen_dev_null(self, what: str) -> None:
        self._add(OP_REOPEN_DEV_NULL, what=what)

    def mask(self, path: str, tmpfs_data: str, what: str) -> None:
        self._add(OP_MASK, (), (path, tmpfs_data), what=what)

    def readonly(self, path: str, what: str) -> None:
        self._add(OP_READONLY, (), (path,), what=what)

    def sysctl(self, path: str, value: str, what: str, reasons: dict[int, str] | None = None) -> None:
        self._add(OP_SYSCTL, (), (path, value), what=what, reasons=reasons)

    def hostname(self, name: str, what: str) -> None:
        self._add(OP_HOSTNAME, (), (name,), what=what)

    def domainname(self, name: str, what: str) -> None:
        self._add(OP_DOMAINNAME, (), (name,), what=what)

    # the process
    def console(self, socket_fd: int, rows: int, cols: int, bind_console: bool, owner_uid: int, what: str,
                reasons: dict[int, str] | None = None) -> None:
        self._add(OP_CONSOLE, (socket_fd, rows, cols, int(bind_console), owner_uid), what=what, reasons=reasons)

    def setsid(self, what: str) -> None:
        self._add(OP_SETSID, what=what)

    def dup2(self, from_fd: int, to_fd: int, what: str) -> None:
        self._add(OP_DUP2, (from_fd, to_fd), what=what)

    def rlimit(self, resource: int, soft: int, hard: int, what: str) -> None:
        self._add(OP_RLIMIT, (resource, soft, hard), what=what)

    def umask(self, mask: int, what: str) -> None:
        self._add(OP_UMASK, (mask,), what=what)

    def chdir(self, path: str, what: str) -> None:
        self._add(OP_CHDIR, (), (path,), what=what)

    def close_fds(self, first_fd: int, stdio_owner_uid: int | None, what: str) -> None:
        self._add(OP_CLOSE_FDS, (first_fd,) if stdio_owner_uid is None else (first_fd, stdio_owner_uid), what=what)

    def seccomp(self, flags: int, bpf: bytes, what: str) -> None:
        self._add(OP_SECCOMP, (flags,), (bpf,), what=what)

    def bounding(self, keep_mask: int, last_cap: int, what: str) -> None:
        self._add(OP_BOUNDING, (keep_mask, last_cap), what=what)

    def user(self, uid: int, gid: int, additional_gids: list[int], what: str) -> None:
        self._add(OP_USER, (uid, gid, 1, *additional_gids), what=what)

    def capset(self, effective: int, permitted: int, inheritable: int, ambient: int, what: str) -> None:
        self._add(OP_CAPSET, (effective, permitted, inheritable, ambient), what=what)

    def no_new_privs(self, what: str) -> None:
        self._add(OP_NO_NEW_PRIVS, what=what)

    def lookup(self, program: str, path: str, home_uid: int | None, what: str) -> None:
        self._add(OP_LOOKUP, () if home_uid is None else (home_uid,), (program, path), what=what)

    def ready(self, what: str) -> None:
        self._add(OP_READY, what=what)

    def wait_exec_fifo(self, fd: int, what: str) -> None:
        self._add(OP_WAIT_EXEC_FIFO, (fd,), what=what)

    def personality(self, persona: int, what: str) -> None:
        self._add(OP_PERSONALITY, (persona,), what=what)

    def sched_setattr(self, policy: int, flags: int, nice: int, priority: int, runtime: int,
                      deadline: int, period: int, what: str, reasons: dict[int, str] | None = None) -> None:
        self._add(OP_SCHED_SETATTR, (policy, flags, nice, priority, runtime, deadline, period), what=what,
                  reasons=reasons)

    def ioprio_set(self, ioprio: int, what: str) -> None:
        self._add(OP_IOPRIO_SET, (ioprio,), what=what)

    def set_mempolicy(self, mode: int, nodemask: bytes, what: str, reasons: dict[int, str] | None = None) -> None:
        self._add(OP_SET_MEMPOLICY, (mode,), (nodemask,), what=what, reasons=reasons)

    def sched_affinity(self, cpumask: bytes, what: str) -> None:
        self._add(OP_SCHED_AFFINITY, (), (cpumask,), what=what)

    def exec(self, args: list[str], env: list[str], what: str) -> None:
        self._add(OP_EXEC, (len(args),), (*args, *env), what=what)

    # ------------------------------------------------------------ output
    def __len__(self) -> int:
        return len(self._ops)

    def encode(self) -> bytes:
        return PLAN_MAGIC + struct.pack("<II", PLAN_VERSION, len(self._ops)) + b"".join(self._ops)

    def to_memfd(self) -> int:
        fd = os.memfd_create("pyrunc-plan", os.MFD_CLOEXEC)
        data = self.encode()
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        return fd

    def step(self, index: int) -> str:
        """What op `index` does, for debug lines."""
        return self._descriptions[index] or f"op {self.codes[index]}"

    def describe(self, index: int, errno_value: int) -> str:
        """The one-line error for op `index` failing with `errno_value`."""
        reason = os.strerror(errno_value).lower() if errno_value else "failed"
        reason = self._reasons.get(index, {}).get(errno_value, reason)
        if 0 <= index < len(self._descriptions) and self.codes[index] == OP_LOOKUP and errno_value == 2:
            # runc's wording: a name searched in $PATH, or a path that stat() missed
            what = self._descriptions[index]
            program = what.split('"')[1] if what.count('"') >= 2 else ""
            reason = (f"stat {program}: no such file or directory" if "/" in program
                      else "executable file not found in $PATH")
        if 0 <= index < len(self._descriptions):
            return f"{self._descriptions[index]}: {reason}"
        if errno_value == errno.EPROTONOSUPPORT:
            return f"container init: plan version {PLAN_VERSION} refused: pyrunc-init is not this pyrunc's"
        return f"container init: {reason}"


# ops whose strings are binary (a BPF program, CPU and node bitmaps)
_BINARY_STRS = frozenset((OP_SECCOMP, OP_SET_MEMPOLICY, OP_SCHED_AFFINITY))


def decode(data: bytes) -> list[tuple[str, tuple, tuple]]:
    """An encoded plan as data: [(op name, ints, strs)], e.g. ("mount", (flags, ...),
    (source, target, fstype, data)) -- for tests and debugging."""
    names = {v: k[3:].lower() for k, v in globals().items() if k.startswith("OP_")}
    magic, (version, count) = data[:4], struct.unpack_from("<II", data, 4)
    if magic != PLAN_MAGIC or version != PLAN_VERSION:
        raise ValueError("not a plan of this version")
    ops, pos = [], 12
    for _ in range(count):
        code, nints, nstrs = struct.unpack_from("<IHH", data, pos)
        pos += 8
        ints = struct.unpack_from(f"<{nints}q", data, pos)
        pos += 8 * nints
        strs = []
        for _ in range(nstrs):
            (size,) = struct.unpack_from("<I", data, pos)
            raw = data[pos + 4:pos + 4 + size]
            strs.append(raw if code in _BINARY_STRS else raw.decode())
            pos += 4 + size + 1
        ops.append((names[code], ints, tuple(strs)))
    return ops


# sync points at which the init stops for the runtime (OP_SYNC ids)
SYNC_PLACED = 1   # the runtime has joined the init to its cgroups (it starts right after the
                  # spawn, while the init works; the init stops here only before what must
                  # happen inside the cgroup: a cgroup namespace, a fork, hooks, pivot_root)
SYNC_USERNS = 2   # a user namespace made by unshare: write its id maps
SYNC_HOOKS = 3    # mounts done, before pivot_root: prestart/createRuntime/createContainer hooks


class ContainerPlan:
    """A Plan for a container's init plus what the runtime must do at its sync points."""

    def __init__(self) -> None:
        self.plan = Plan()
        self.clone_flags = 0
        self._placed = False
        self.forks = False            # the init forks: its pid arrives as MSG_PID

    def wait_placed(self) -> None:
        """Stop the init until the runtime has joined it to its cgroups (once)."""
        if not self._placed:
            self.plan.sync(SYNC_PLACED, what="wait for the runtime to place the init")
            self._placed = True
