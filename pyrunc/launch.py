"""Launching a container's init: build its plan, spawn pyrunc-init, answer its sync
points (id maps, cgroup placement, hooks) and turn a reported (op, errno) into an error.
"""
from __future__ import annotations

import os
import socket
import struct

from pyrunc import plan as P
from pyrunc.errors import PyruncError, SpawnError
from pyrunc.state import START_SOCKET, Container, proc_stat


def cgroup_hierarchies(mgr):
    """The container's cgroup directories as the cgroup mount should show them."""
    from pyrunc.rootfs import CgroupHierarchy
    st = mgr.to_state()
    out = []
    for key, host_dir in st["dirs"].items():
        mountpoint = st["mounts"][key]
        if key == "":
            name = "" if st["mode"] == "unified" else os.path.basename(mountpoint)
            out.append(CgroupHierarchy(name, "cgroup2", "", host_dir))
        else:
            out.append(CgroupHierarchy(os.path.basename(mountpoint), "cgroup", key, host_dir))
    return out


class Launch:
    def __init__(self, s, c: Container, mgr, *, no_pivot: bool, preserve_fds: int,
                 console_socket: str, console_fd: int, no_new_keyring: bool = False):
        self.spec = s
        self.container = c
        self.mgr = mgr
        self.no_pivot = no_pivot
        self.no_new_keyring = no_new_keyring
        self.preserve_fds = preserve_fds
        self.console_socket = console_socket
        self.console_fd = console_fd
        self.spawned_pid = 0     # the process the clone made
        self.init_pid = 0        # the container's init (differs when the plan forks)
        self._pidfds: list[int] = []

    # ---------------------------------------------------------------- plan
    def _env(self) -> tuple[list[str], int]:
        """process.env plus systemd socket activation fds (runc's LISTEN_FDS handling)."""
        env = list(self.spec.process.env)
        extra = 0
        listen = os.environ.get("LISTEN_FDS", "")
        if listen.isdigit() and int(listen) > 0:
            extra = int(listen)
            env = [e for e in env if not e.startswith(("LISTEN_FDS=", "LISTEN_PID="))]
            env += [f"LISTEN_FDS={extra}", "LISTEN_PID=1"]
        return env, extra

    def build(self, fds: dict[str, int], first_closed_fd: int, overlay_dirs) -> P.ContainerPlan:
        from pyrunc import rootfs
        s = self.spec
        linux = s.linux
        cp = P.ContainerPlan()
        P.namespace_ops(cp, linux)
        plan = cp.plan
        if not self.no_new_keyring:
            plan.add(P.OP_KEYRING, (), (f"_ses.{self.container.id}",), what="join a new session keyring")
        types = {n.type: n.path for n in linux.namespaces}
        if "mount" in types:
            ctx = rootfs.RootfsContext(
                rootfs=s.root.path, bundle=s.bundle, userns="user" in types,
                netns_new="network" in types and not types["network"],
                cgroupns_new="cgroup" in types and not types["cgroup"],
                no_pivot=self.no_pivot, cgroups=cgroup_hierarchies(self.mgr))
            rootfs.add_prepare_ops(plan, s, ctx, overlay_dirs)
            if self._has_sync_hooks():
                plan.add(P.OP_SYNC, (P.SYNC_HOOKS,), what="run createRuntime and createContainer hooks")
            rootfs.add_pivot_ops(plan, ctx)
        else:
            # no mount namespace: nothing may be mounted (it would land on the host)
            plan.add(P.OP_ROOT, (), (s.root.path,), what=f"open rootfs {s.root.path}")
            if self._has_sync_hooks():
                plan.add(P.OP_SYNC, (P.SYNC_HOOKS,), what="run createRuntime and createContainer hooks")
            plan.add(P.OP_CHROOT, what=f"chroot into {s.root.path}")
            plan.add(P.OP_ROOT, (), ("/",), what="open /")
        if "mount" in types:
            rootfs.add_finish_ops(plan, s)
        for key, value in linux.sysctl.items():
            plan.add(P.OP_SYSCTL, (), (key.replace(".", "/"), value), what=f"write sysctl {key}")
        if s.hostname:
            plan.add(P.OP_HOSTNAME, (), (s.hostname,), what=f"set hostname {s.hostname!r}")
        if s.domainname:
            plan.add(P.OP_DOMAINNAME, (), (s.domainname,), what=f"set domainname {s.domainname!r}")
        if s.process.terminal:
            size = s.process.console_size
            plan.add(P.OP_CONSOLE, (fds["console"], size.height if size else 0, size.width if size else 0),
                     what="set up the console")
        if s.root.readonly and "mount" in types:
            rootfs.add_readonly_root(plan)
        env, _ = self._env()
        bpf, flags = self._seccomp()
        P.process_ops(cp, s.process, seccomp_bpf=bpf, seccomp_flags=flags,
                      first_closed_fd=first_closed_fd, wait_fd=fds["listen"], env=env)
        return cp

    def _seccomp(self) -> tuple[bytes | None, int]:
        if not self.spec.linux.seccomp:
            return None, 0
        from pyrunc.seccomp import compile_filter
        return compile_filter(self.spec.linux.seccomp, os.path.join(self.container.root, ".seccomp-cache"))

    def _has_sync_hooks(self) -> bool:
        h = self.spec.hooks
        return bool(h.prestart or h.create_runtime or h.create_container)

    # ---------------------------------------------------------------- run
    def run(self) -> tuple[int, int]:
        """Spawn the init and drive it until it waits for start; returns (pid, start time)."""
        env, listen_fds = self._env()
        keep_low = self.preserve_fds + listen_fds
        floor = 3 + keep_low
        fds: dict[str, int] = {}
        parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        to_close = [child_sock.detach(), listener.fileno()]
        try:
            listener.bind(self.container.path(START_SOCKET))
            os.chmod(self.container.path(START_SOCKET), 0o600)
            listener.listen(1)
            fds["sync"] = _dup_above(to_close[0], floor)
            fds["listen"] = _dup_above(listener.fileno(), floor)
            console = -1
            if self.console_fd >= 0:
                console = self.console_fd
            elif self.console_socket:
                console = _connect_console(self.console_socket)
                to_close.append(console)
            if console >= 0:
                fds["console"] = _dup_above(console, floor)
            overlay = self._overlay_dirs()
            cp = self.build(fds, floor, overlay)
            self.plan = cp.plan
            plan_fd = cp.plan.to_memfd()
            fds["plan"] = _dup_above(plan_fd, floor)
            os.close(plan_fd)
            keep = [fd for fd in range(3, 3 + keep_low) if _fd_open(fd)] + list(fds.values())
            from pyrunc._native import spawn_init
            try:
                pid, pidfd = spawn_init(fds["sync"], fds["plan"], keep, cp.clone_flags)
            except OSError as e:
                raise SpawnError(f"clone container init: {os.strerror(e.errno).lower()}") from None
            self.spawned_pid = self.init_pid = pid
            self._pidfds.append(pidfd)
        finally:
            for fd in to_close + list(fds.values()):
                try:
                    os.close(fd)
                except OSError:
                    pass
            listener.detach()
        with parent_sock:
            self._drive(parent_sock, cp)
        st = proc_stat(self.init_pid)
        if st is None:
            raise SpawnError("container init exited before it was created")
        return self.init_pid, st[2]

    def _overlay_dirs(self):
        from pyrunc.rootfs import overlay_layers
        if overlay_layers(self.spec) is None:
            return None
        upper, work = self.container.path("overlay/upper"), self.container.path("overlay/work")
        os.makedirs(upper, 0o755)
        os.makedirs(work, 0o700)
        return upper, work

    def _drive(self, sock: socket.socket, cp: P.ContainerPlan) -> None:
        while True:
            data = sock.recv(P.MSG_SIZE)
            if not data:
                raise SpawnError(self._died_message())
            kind, op, err, value = struct.unpack("<iiii", data)
            if kind == P.MSG_SYNC:
                try:
                    self._on_sync(value, cp)
                except BaseException:
                    sock.send(b"\1")
                    raise
                sock.send(b"\0")
            elif kind == P.MSG_PID:
                self._adopt(value)
            elif kind == P.MSG_ERROR:
                raise SpawnError(cp.plan.describe(op, err))
            elif kind == P.MSG_READY:
                return

    def _died_message(self) -> str:
        pid = self.spawned_pid
        try:
            wpid, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return "container init exited unexpectedly"
        if wpid and os.WIFSIGNALED(status):
            return f"container init killed by signal {os.WTERMSIG(status)}"
        if wpid:
            return f"container init exited unexpectedly with status {os.WEXITSTATUS(status)}"
        return "container init closed its sync socket unexpectedly"

    def _adopt(self, pid: int) -> None:
        """The plan forked: `pid` is the init; reap the intermediate."""
        try:
            os.waitpid(self.spawned_pid, 0)
        except ChildProcessError:
            pass
        self.init_pid = pid
        try:
            self._pidfds.append(os.pidfd_open(pid))
        except OSError:
            pass

    def _on_sync(self, sync_id: int, cp: P.ContainerPlan) -> None:
        from pyrunc import ns
        linux = self.spec.linux
        if sync_id == P.SYNC_PLACED:
            self.mgr.join(self.init_pid)
            adj = self.spec.process.oom_score_adj
            if adj is not None:
                _write_oom_score_adj(self.init_pid, adj)
        elif sync_id == P.SYNC_USERNS:
            ns.write_id_maps(self.init_pid, linux.uid_mappings, linux.gid_mappings)
        elif sync_id == P.SYNC_HOOKS:
            from pyrunc import hooks
            state = self.container.oci_state()
            state.update(pid=self.init_pid, status="creating")
            h = self.spec.hooks
            hooks.run_all(_as_dicts(h.prestart), state, "prestart")
            hooks.run_all(_as_dicts(h.create_runtime), state, "createRuntime")
            hooks.run_all(_as_dicts(h.create_container), state, "createContainer", ns_pid=self.init_pid)

    def abort(self) -> None:
        """Kill whatever was spawned (called on any failure of create)."""
        import signal
        for fd in self._pidfds:
            try:
                signal.pidfd_send_signal(fd, signal.SIGKILL)
            except OSError:
                pass
        for pid in {self.spawned_pid, self.init_pid}:
            if pid:
                try:
                    os.waitpid(pid, 0)
                except ChildProcessError:
                    pass
        self.close()

    def close(self) -> None:
        for fd in self._pidfds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._pidfds = []


def _as_dicts(hooks) -> list[dict]:
    from dataclasses import asdict
    return [asdict(h) for h in hooks]


def _write_oom_score_adj(pid: int, value: int) -> None:
    path = f"/proc/{pid}/oom_score_adj"
    try:
        with open(path, "w") as f:
            f.write(str(value))
    except PermissionError:
        # lowering needs CAP_SYS_RESOURCE; setting the value it already has is fine
        with open(path) as f:
            if int(f.read()) != value:
                raise PyruncError(f"write {path}: permission denied (lowering oom_score_adj needs CAP_SYS_RESOURCE)")


def _dup_above(fd: int, floor: int) -> int:
    import fcntl
    return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, floor)


def _fd_open(fd: int) -> bool:
    import fcntl
    try:
        fcntl.fcntl(fd, fcntl.F_GETFD)
        return True
    except OSError:
        return False


def _connect_console(path: str) -> int:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        s.connect(path)
    except OSError as e:
        s.close()
        raise PyruncError(f"connect console socket {path}: {os.strerror(e.errno).lower()}") from None
    return s.detach()
