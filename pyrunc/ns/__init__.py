"""The namespace facility: the kinds (OCI type, clone flag, /proc name), the order in
which a plan joins and makes them (`namespace_ops` for a container's init, `join_ops`
for a process joining one), and the user namespace's id maps."""
from __future__ import annotations

import os

from pyrunc import plan as P

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


def namespace_ops(cp: P.ContainerPlan, linux) -> None:
    """Namespaces: made by the clone where possible, else joined/unshared by ops.

    With a user namespace nothing is made at clone time: the clone's child execs
    pyrunc-init at once, and an exec by a uid the new namespace does not map (yet)
    drops every capability.  So the init unshares the user namespace itself, waits for
    its id maps, becomes root in it, and only then makes the namespaces it should own.
    Joins need the host's privileges and come first.
    """
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
                cp.clone_flags |= flag(t)
    for t in JOIN_ORDER:
        if t in joined:
            plan.setns(flag(t), joined[t], what=f"join {t} namespace {joined[t]}")
            if t == "user":
                plan.setresid(0, 0, what="become root in the joined user namespace")
    if "user" in new:
        plan.unshare(CLONE_NEWUSER, what="create user namespace")
        # the runtime opens /proc/<init>/{uid,gid}_map, which a non-dumpable process's
        # owner (root) keeps from a rootless runtime: dumpable for that while only (runc)
        plan.dumpable(True, what="let the runtime write the id maps")
        plan.sync(P.SYNC_USERNS, what="wait for the id maps")
        plan.dumpable(False, what="not dumpable again")
        plan.setresid(0, 0, what="become root in the user namespace")
    rest = 0
    for t in new:
        if t != "user" and t not in ("cgroup", "time") and not (cp.clone_flags & flag(t)) and t != "pid":
            rest |= flag(t)
    if rest:
        plan.unshare(rest, what=f"create namespaces: {describe(rest)}")
    if "cgroup" in new:
        cp.wait_placed()  # the namespace's root is the cgroup the init is in now
        plan.unshare(CLONE_NEWCGROUP, what="create cgroup namespace")
    pid_unshare = "pid" in new and not (cp.clone_flags & CLONE_NEWPID)
    if pid_unshare:
        plan.unshare(CLONE_NEWPID, what="create pid namespace")
    if "time" in new:
        plan.unshare(CLONE_NEWTIME, what="create time namespace")
        if linux.time_offsets:
            text = "".join(f"{clock} {s} {n}\n" for clock, (s, n) in linux.time_offsets.items())
            plan.write_file("/proc/self/timens_offsets", text, what="write time namespace offsets")
    if pid_unshare or "pid" in joined or "time" in new:
        cp.wait_placed()  # the child must be born in the cgroup
        plan.fork(what="fork into the pid namespace")
        cp.forks = True
    if "network" in new:
        plan.loopback_up(what="bring up lo")


def open_namespaces_of(pid: int, floor: int = 3) -> list[tuple[str, int]]:
    """[(type, fd)] of every namespace of `pid` that differs from ours, in join order (the
    user namespace first); fds >= floor, close-on-exec, for `join_ops`.

    Opened by the runtime because once the child is in a user namespace it may no longer
    open the files of a process that is not dumpable, as pyrunc-init waiting for `start`
    is (its createContainer and startContainer hooks join it).  The spawned process must
    keep the fds open and the caller close them after the spawn."""
    import fcntl

    out: list[tuple[str, int]] = []
    try:
        for t in JOIN_ORDER:
            name = proc_name(t)
            try:
                fd = os.open(f"/proc/{pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                if os.fstat(fd).st_ino == os.stat(f"/proc/self/ns/{name}").st_ino:
                    continue
                out.append((t, fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, floor)))
            finally:
                os.close(fd)
    except BaseException:
        for _, fd in out:
            os.close(fd)
        raise
    return out


def join_ops(plan: P.Plan, namespaces: list[tuple[str, int]], pid: int) -> None:
    """Join the namespaces `open_namespaces_of(pid)` opened; a pid or time namespace
    takes effect in a child: fork."""
    for t, fd in namespaces:
        plan.setns(flag(t), f"/proc/self/fd/{fd}", what=f"join {t} namespace of pid {pid}")
    if any(t in ("pid", "time") for t, _ in namespaces):
        plan.fork(what="fork into the pid namespace")


def in_user_namespace() -> bool:
    """This process is not in the host's user namespace (runc's RunningInUserNS)."""
    try:
        with open("/proc/self/uid_map") as f:
            return f.read().split() != ["0", "0", "4294967295"]
    except OSError:
        return False


def format_id_map(mappings) -> bytes:
    return "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in mappings).encode()


def write_id_maps(pid: int, uid_mappings, gid_mappings) -> None:
    """Write /proc/<pid>/{uid,gid}_map from the runtime, as the user namespace's parent.

    Each map is written in one write(2) as the kernel requires.
    """
    rootless = os.geteuid() != 0
    if rootless and _own_id_only(gid_mappings, os.getegid()):
        # an unprivileged writer may map its own gid only once setgroups is denied
        # (runc); with more, newgidmap decides and setgroups stays allowed
        _write_proc(pid, "setgroups", b"deny")
    for name, mappings in (("uid_map", uid_mappings), ("gid_map", gid_mappings)):
        if not mappings:
            continue
        try:
            _write_proc(pid, name, format_id_map(mappings))
        except PermissionError:
            if not rootless:
                raise
            # more than this user's own id: the setuid helpers map what /etc/subuid and
            # /etc/subgid grant it (runc: newuidmap/newgidmap on EPERM)
            _run_mapping_tool("newuidmap" if name == "uid_map" else "newgidmap", pid, mappings)


def _own_id_only(mappings, own: int) -> bool:
    return len(mappings) == 1 and mappings[0].host_id == own and mappings[0].size == 1


def _write_proc(pid: int, name: str, data: bytes) -> None:
    fd = os.open(f"/proc/{pid}/{name}", os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _run_mapping_tool(tool: str, pid: int, mappings) -> None:
    import shutil
    import subprocess
    from pyrunc.errors import PyruncError
    path = shutil.which(tool)
    if path is None:
        raise PyruncError(f"{tool} not found: mapping more than the user's own id needs it "
                          "(Debian: apt install uidmap)")
    args = [path, str(pid)] + [str(v) for m in mappings for v in (m.container_id, m.host_id, m.size)]
    done = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if done.returncode != 0:
        detail = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise PyruncError(f"{tool} {pid}: {detail}")
