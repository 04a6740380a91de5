"""The plan: an ordered list of ops that pyrunc-init executes between clone and exec.

Python decides everything (order, flags, resolved paths, masks); the C side only
performs the ops.  The wire format is described in pyrunc/_native/plan.h.  Every op
carries a description so that a failure reported as (op index, errno) becomes
`mount proc on /b/rootfs/proc: permission denied`.
"""
from __future__ import annotations

import os
import struct

# op codes: keep in step with pyrunc/_native/plan.h
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
OP_WAIT_START = 27
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

TARGET_HOST, TARGET_IN_ROOT = 0, 1
MKDIR_NONE, MKDIR_DIR, MKDIR_FILE = 0, 1, 2
SOURCE_LITERAL, SOURCE_HOST, SOURCE_IN_ROOT = 0, 1, 2

# messages from the init (struct init_msg)
MSG_SYNC, MSG_PID, MSG_ERROR, MSG_READY, MSG_SECCOMP_FD = 1, 2, 3, 4, 5
MSG_SIZE = 16

_U64 = (1 << 64) - 1


def _b(s: str | bytes) -> bytes:
    return s if isinstance(s, bytes) else s.encode()


class Plan:
    def __init__(self) -> None:
        self._ops: list[bytes] = []
        self._descriptions: list[str] = []
        self.codes: list[int] = []

    def add(self, code: int, ints: tuple | list = (), strs: tuple | list = (), what: str = "") -> int:
        """Append an op; returns its index.  `what` names the step for error messages."""
        parts = [struct.pack("<IHH", code, len(ints), len(strs))]
        for v in ints:
            # masks above 2**63 travel as their two's complement
            parts.append(struct.pack("<q", v - (1 << 64) if v > (1 << 63) - 1 else v))
        for s in strs:
            data = _b(s)
            parts.append(struct.pack("<I", len(data)))
            parts.append(data)
            parts.append(b"\0")
        self._ops.append(b"".join(parts))
        self._descriptions.append(what)
        self.codes.append(code)
        return len(self._ops) - 1

    def __len__(self) -> int:
        return len(self._ops)

    def encode(self) -> bytes:
        return b"PYRP" + struct.pack("<II", 1, len(self._ops)) + b"".join(self._ops)

    def to_memfd(self) -> int:
        fd = os.memfd_create("pyrunc-plan", os.MFD_CLOEXEC)
        data = self.encode()
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        return fd

    def describe(self, index: int, errno_value: int) -> str:
        """The one-line error for op `index` failing with `errno_value`."""
        reason = os.strerror(errno_value).lower() if errno_value else "failed"
        if 0 <= index < len(self._descriptions) and self.codes[index] == OP_LOOKUP and errno_value == 2:
            # runc's wording: a name searched in $PATH, or a path that stat() missed
            what = self._descriptions[index]
            program = what.split('"')[1] if what.count('"') >= 2 else ""
            reason = (f"stat {program}: no such file or directory" if "/" in program
                      else "executable file not found in $PATH")
        if 0 <= index < len(self._descriptions):
            return f"{self._descriptions[index]}: {reason}"
        return f"container init: {reason}"


# sync points at which the init stops for the runtime (OP_SYNC ids)
SYNC_PLACED = 1   # the runtime has joined the init to its cgroups (it starts right after the
                  # spawn, while the init works; the init stops here only before what must
                  # happen inside the cgroup: a cgroup namespace, a fork, hooks, pivot_root)
SYNC_USERNS = 2   # a user namespace made by unshare: write its id maps
SYNC_HOOKS = 3    # mounts done, before pivot_root: prestart/createRuntime/createContainer hooks

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ContainerPlan:
    """A Plan for a container's init plus what the runtime must do at its sync points."""

    def __init__(self) -> None:
        self.plan = Plan()
        self.clone_flags = 0
        self._placed = False

    def wait_placed(self) -> None:
        """Stop the init until the runtime has joined it to its cgroups (once)."""
        if not self._placed:
            self.plan.add(OP_SYNC, (SYNC_PLACED,), what="wait for the runtime to place the init")
            self._placed = True
        self.forks = False            # the init forks: its pid arrives as MSG_PID


def namespace_ops(cp: ContainerPlan, linux, *, for_exec: bool = False) -> None:
    """Namespaces: made by the clone where possible, else joined/unshared by ops.

    With a user namespace nothing is made at clone time: the clone's child execs
    pyrunc-init at once, and an exec by a uid the new namespace does not map (yet)
    drops every capability.  So the init unshares the user namespace itself, waits for
    its id maps, becomes root in it, and only then makes the namespaces it should own.
    Joins need the host's privileges and come first.
    """
    from pyrunc import ns

    plan = cp.plan
    joined = {n.type: n.path for n in linux.namespaces if n.path}
    new = [n.type for n in linux.namespaces if not n.path]
    at_clone = "user" not in joined and "user" not in new
    late = {"cgroup", "time"}  # after the cgroup join; time needs offsets before a fork
    if "time" in new:
        late.add("pid")  # the forked child must be pid 1 in the new pid namespace
    if at_clone:
        for t in new:
            if t not in late:
                cp.clone_flags |= ns.flag(t)
    for t in ns.JOIN_ORDER:
        if t in joined:
            plan.add(OP_SETNS, (ns.flag(t),), (joined[t],), what=f"join {t} namespace {joined[t]}")
            if t == "user":
                plan.add(OP_SETRESID, (0, 0), what="become root in the joined user namespace")
    if "user" in new:
        plan.add(OP_UNSHARE, (ns.CLONE_NEWUSER,), what="create user namespace")
        plan.add(OP_SYNC, (SYNC_USERNS,), what="wait for the id maps")
        plan.add(OP_SETRESID, (0, 0), what="become root in the user namespace")
    rest = 0
    for t in new:
        if t != "user" and t not in ("cgroup", "time") and not (cp.clone_flags & ns.flag(t)) and t != "pid":
            rest |= ns.flag(t)
    if rest:
        plan.add(OP_UNSHARE, (rest,), what="create namespaces")
    if "cgroup" in new:
        cp.wait_placed()  # the namespace's root is the cgroup the init is in now
        plan.add(OP_UNSHARE, (ns.CLONE_NEWCGROUP,), what="create cgroup namespace")
    pid_unshare = "pid" in new and not (cp.clone_flags & ns.CLONE_NEWPID)
    if pid_unshare:
        plan.add(OP_UNSHARE, (ns.CLONE_NEWPID,), what="create pid namespace")
    if "time" in new:
        plan.add(OP_UNSHARE, (ns.CLONE_NEWTIME,), what="create time namespace")
        if linux.time_offsets:
            text = "".join(f"{clock} {s} {n}\n" for clock, (s, n) in linux.time_offsets.items())
            plan.add(OP_WRITE_FILE, (), ("/proc/self/timens_offsets", text), what="write time namespace offsets")
    if pid_unshare or "pid" in joined or "time" in new:
        cp.wait_placed()  # the child must be born in the cgroup
        plan.add(OP_FORK, what="fork into the pid namespace")
        cp.forks = True
    if "network" in new and not for_exec:
        plan.add(OP_LOOPBACK_UP, what="bring up lo")


def join_namespaces_of(plan: Plan, pid: int) -> bool:
    """Join every namespace of `pid` that differs from ours (the user namespace first);
    True when the plan forks (a pid or time namespace applies to children only)."""
    from pyrunc import ns
    forks = False
    for t in ns.JOIN_ORDER:
        name = ns.proc_name(t)
        theirs = f"/proc/{pid}/ns/{name}"
        try:
            if os.stat(theirs).st_ino == os.stat(f"/proc/self/ns/{name}").st_ino:
                continue
        except FileNotFoundError:
            continue
        plan.add(OP_SETNS, (ns.flag(t),), (theirs,), what=f"join {t} namespace of pid {pid}")
        forks |= t in ("pid", "time")
    if forks:
        plan.add(OP_FORK, what="fork into the pid namespace")
    return forks


def process_ops(cp: ContainerPlan, process, *, seccomp_bpf: bytes | None, seccomp_flags: int,
                first_closed_fd: int, wait_fd: int, env: list[str]) -> None:
    """The process part, after the filesystem: rlimits, user, capabilities, seccomp, exec.

    seccomp goes as late as possible: right before execve when no_new_privileges lets an
    unprivileged process load it, else before the capabilities are dropped (runc).
    """
    from pyrunc import caps, rlimits
    from pyrunc.spec.model import Capabilities

    plan = cp.plan
    # runc's nsexec makes every container process (init and exec) a session leader; CRIU
    # refuses to dump a tree whose session leader is outside it
    plan.add(OP_SETSID, what="create a session")
    for rl in process.rlimits:
        plan.add(OP_RLIMIT, (rlimits.rlimit_number(rl.type), rl.soft, rl.hard), what=f"set {rl.type}")
    # runc's default umask when process.user.umask is absent
    umask = process.user.umask if process.user.umask is not None else 0o022
    plan.add(OP_UMASK, (umask,), what="set umask")
    plan.add(OP_CHDIR, (), (process.cwd,), what=f"chdir to cwd ({process.cwd!r})")
    # LSM labels for the execve, set while still root and before any seccomp filter (runc)
    if process.apparmor_profile:
        add_lsm_attr(plan, "apparmor", process.apparmor_profile)
    if process.selinux_label:
        add_lsm_attr(plan, "exec", process.selinux_label)
    if seccomp_bpf is not None and not process.no_new_privileges:
        plan.add(OP_SECCOMP, (seccomp_flags,), (seccomp_bpf,), what="load seccomp filter")
    # no capabilities object means empty sets, as in runc
    c = process.capabilities if process.capabilities is not None else Capabilities()
    plan.add(OP_BOUNDING, (caps.mask(caps.split_by_kernel(c.bounding)[0]), caps.last_cap()),
             what="drop capabilities from the bounding set")
    user = process.user
    plan.add(OP_USER, (user.uid, user.gid, 1, *user.additional_gids),
             what=f"set user to {user.uid}:{user.gid}")
    known = {k: caps.mask(caps.split_by_kernel(getattr(c, k))[0])
             for k in ("effective", "permitted", "inheritable", "ambient")}
    # ambient capabilities must be permitted and inheritable (runc drops the rest)
    ambient = known["ambient"] & known["permitted"] & known["inheritable"]
    plan.add(OP_CAPSET, (known["effective"], known["permitted"], known["inheritable"], ambient),
             what="set capabilities")
    if process.no_new_privileges:
        plan.add(OP_NO_NEW_PRIVS, what="set no_new_privs")
    path = next((e[5:] for e in env if e.startswith("PATH=")), DEFAULT_PATH)
    plan.add(OP_LOOKUP, (), (process.args[0], path), what=f'exec: "{process.args[0]}"')
    plan.add(OP_CLOSE_FDS, (first_closed_fd,), what="close inherited file descriptors")
    if wait_fd >= 0:
        plan.add(OP_READY, what="report the container created")
        plan.add(OP_WAIT_START, (wait_fd,), what="wait for start")
    if seccomp_bpf is not None and process.no_new_privileges:
        plan.add(OP_SECCOMP, (seccomp_flags,), (seccomp_bpf,), what="load seccomp filter")
    plan.add(OP_EXEC, (len(process.args), process.user.uid), (*process.args, *dedupe_env(env)),
             what=f"exec {process.args[0]}")


def add_lsm_attr(plan: Plan, kind: str, value: str) -> None:
    """Write an LSM attribute of the init through the container's /proc: "apparmor" (the
    profile for the execve), "exec" (the SELinux label for it), "keycreate" (SELinux's
    label for keyrings made from now on)."""
    from pyrunc import lsm
    if kind == "apparmor":
        plan.add(OP_PROC_ATTR, (), (f"exec {value}", *lsm.APPARMOR_EXEC_ATTRS),
                 what=f'apply apparmor profile "{value}": write /proc/{lsm.APPARMOR_EXEC_ATTRS[0]}')
    else:
        attrs = lsm.SELINUX_EXEC_ATTRS if kind == "exec" else lsm.SELINUX_KEYCREATE_ATTRS
        plan.add(OP_PROC_ATTR, (), (value, *attrs), what=f'set selinux label "{value}": write /proc/{attrs[0]}')


def dedupe_env(env: list[str]) -> list[str]:
    """One entry per name: the first position, the last value (runc)."""
    values: dict[str, str] = {}
    for entry in env:
        values[entry.partition("=")[0]] = entry
    return list(values.values())
