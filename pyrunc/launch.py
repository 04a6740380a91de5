"""Launching a container's init: build its plan, spawn pyrunc-init, answer its sync
points (id maps, cgroup placement, hooks) and turn a reported (op, errno) into an error.
"""
from __future__ import annotations

import os

from pyrunc import plan as P
from pyrunc.errors import PyruncError, SpawnError
from pyrunc.faults import point as _fault
from pyrunc.state import EXEC_FIFO, Container, proc_stat


def cgroup_hierarchies(mgr):
    """The container's cgroup directories as the cgroup mount should show them."""
    from pyrunc.rootfs import CgroupHierarchy
    st = mgr.to_state()
    out = []
    for key, host_dir in st["dirs"].items():
        mountpoint = st["mounts"][key]
        if key == "":
            # on a hybrid host the cgroup2 half is not shown, as runc does
            if st["mode"] == "unified":
                out.append(CgroupHierarchy("", "cgroup2", "", host_dir))
        else:
            out.append(CgroupHierarchy(os.path.basename(mountpoint), "cgroup", key, host_dir))
    return out


class Launch:
    def __init__(self, s, c: Container, mgr, *, no_pivot: bool, preserve_fds: int,
                 console_socket: str, console_fd: int, no_new_keyring: bool = False,
                 inherited: list[int] = ()):
        self.spec = s
        self.container = c
        self.mgr = mgr
        self.no_pivot = no_pivot
        self.no_new_keyring = no_new_keyring
        self.inherited = list(inherited)  # the caller's fds 3.. that go to the container
        self.preserve_fds = preserve_fds
        self.console_socket = console_socket
        self.console_fd = console_fd
        self.init = None  # InitProcess once spawned

    # ---------------------------------------------------------------- plan
    def _env(self) -> tuple[list[str], int]:
        """process.env plus systemd socket activation fds (runc's LISTEN_FDS handling)."""
        env = list(self.spec.process.env)
        extra = listen_fds()
        if extra:
            env = [e for e in env if not e.startswith(("LISTEN_FDS=", "LISTEN_PID="))]
            env += [f"LISTEN_FDS={extra}", "LISTEN_PID=1"]
        return env, extra

    def build(self, fds: dict[str, int], first_closed_fd: int, overlay_dirs) -> P.ContainerPlan:
        from pyrunc import planner
        s = self.spec
        host = planner.probe_host(s, cgroup_hierarchies(self.mgr), no_pivot=self.no_pivot,
                                  cgroup_dirs_before_placement=getattr(self.mgr, "dirs_before_join", True))
        bpf, flags = compile_seccomp(s.linux.seccomp, self.container.root, s.linux.seccomp_profile)
        opts = planner.PlanOptions(
            container_id=self.container.id, env=self._env()[0], exec_fifo_fd=fds["exec_fifo"],
            first_closed_fd=first_closed_fd, console_fd=fds.get("console", -1), no_pivot=self.no_pivot,
            no_new_keyring=self.no_new_keyring, overlay_dirs=overlay_dirs, seccomp_bpf=bpf, seccomp_flags=flags)
        return planner.container_plan(s, host, opts)

    # ---------------------------------------------------------------- run
    def run(self) -> tuple[int, int]:
        """Spawn the init and drive it until it waits for start; returns (pid, start time)."""
        from pyrunc.initproc import InitProcess, dup_above
        _env, listen_fds = self._env()
        keep_low = self.preserve_fds + listen_fds
        floor = 3 + keep_low
        fds: dict[str, int] = {}
        # the exec fifo: the init waits for `start` by opening it for writing (see
        # operations.start); it gets an O_PATH fd, which opens nothing yet
        fifo = self.container.path(EXEC_FIFO)
        os.mkfifo(fifo, 0o622)
        os.chmod(fifo, 0o622)  # whatever the umask: the container's user writes it
        fifo_path_fd = os.open(fifo, os.O_PATH | os.O_CLOEXEC)
        try:
            fds["exec_fifo"] = dup_above(fifo_path_fd, floor)
            console = console_above(self.console_fd, self.console_socket, floor)
            if console >= 0:
                fds["console"] = console
            cp = self.build(fds, floor, self._overlay_dirs())
            # the caller's fds 3.. that go to the container (--preserve-fds, LISTEN_FDS)
            keep = self.inherited + list(fds.values())
            self.init = InitProcess.spawn(cp.plan, clone_flags=cp.clone_flags, floor=floor, keep=keep,
                                          cgroup=self.mgr.unified_path)
            _fault("launch.spawned")
            _fault("launch.before-placed")
            set_initial_affinity(self.init.pid, self.spec.process)
            place(self.init, self.mgr, self.spec.process.oom_score_adj, fault_point="launch.placed")
            if self.container.state.intel_rdt:
                from pyrunc import intelrdt
                intelrdt.apply(self.container.state.intel_rdt, self.spec.linux.intel_rdt, self.init.pid)
        finally:
            os.close(fifo_path_fd)
            for fd in fds.values():
                os.close(fd)
        self.init.follow(self._on_sync, until_ready=True, on_listener=self._on_listener)
        _fault("launch.ready")
        st = proc_stat(self.init.pid)
        if st is None:
            raise SpawnError("container init exited before it was created")
        return self.init.pid, st[2]

    def _overlay_dirs(self):
        from pyrunc.rootfs import overlay_layers
        if overlay_layers(self.spec) is None:
            return None
        upper, work = self.container.path("overlay/upper"), self.container.path("overlay/work")
        os.makedirs(upper, 0o755)
        os.makedirs(work, 0o700)
        return upper, work

    def _on_sync(self, sync_id: int) -> None:
        from pyrunc import ns
        linux = self.spec.linux
        pid = self.init.pid
        if sync_id == P.SYNC_PLACED:
            # place() ran right after the spawn; the init's network namespace is made
            # or joined by now, and no hook has run yet (runc moves devices then too)
            if linux.net_devices:
                from pyrunc import netdev
                netdev.move_in(pid, linux.net_devices)
        elif sync_id == P.SYNC_USERNS:
            ns.write_id_maps(pid, linux.uid_mappings, linux.gid_mappings)
        elif sync_id == P.SYNC_HOOKS:
            from pyrunc import hooks
            state = self._creating_state()
            h = self.spec.hooks
            hooks.run_all(_as_dicts(h.prestart), state, "prestart")
            hooks.run_all(_as_dicts(h.create_runtime), state, "createRuntime")
            # runc runs these from its init: in the rootfs before pivot_root, with the
            # process's environment
            from pyrunc.process import dedupe_env
            hooks.run_all(_as_dicts(h.create_container), state, "createContainer", ns_pid=pid,
                          cwd=self.spec.root.path, env=dedupe_env(self.spec.process.env))

    def _on_listener(self, pidfd: int, fd: int) -> None:
        hand_over_listener(self.spec.linux.seccomp, pidfd, fd, self._creating_state())

    def _creating_state(self) -> dict:
        return dict(self.container.oci_state(), pid=self.init.pid, status="creating")

    def abort(self) -> None:
        """Kill whatever was spawned (called on any failure of create)."""
        if self.init is not None:
            self.init.kill()

    def close(self) -> None:
        if self.init is not None:
            self.init.close()


def _as_dicts(hooks) -> list[dict]:
    from pyrunc.record import as_dict as asdict
    return [asdict(h) for h in hooks]


def place(proc, mgr, oom_score_adj: int | None, *, fault_point: str) -> None:
    """The placement step of every container process (create's init, exec's process),
    right after the spawn: join the container's cgroups (those CLONE_INTO_CGROUP has not
    joined it to; `mgr` None: the container has none) and set process.oomScoreAdj.  The
    init goes on meanwhile (with its mounts, for create) and waits only at its
    SYNC_PLACED point, which its runtime answers once this has returned."""
    if mgr is not None:
        mgr.join(proc.pid, unified_done=proc.placed)
    _fault(fault_point)
    if oom_score_adj is not None:
        _write_oom_score_adj(proc.pid, oom_score_adj)


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


def set_initial_affinity(pid: int, process) -> None:
    """process.execCPUAffinity.initial: the CPUs of the process the runtime just spawned,
    before it joins the cgroups (runc 1.2); the init sets the final ones before exec."""
    if process.exec_cpu_affinity is None:
        return
    from pyrunc.process_attrs import initial_cpus
    cpus = initial_cpus(process)
    if cpus is None:
        return
    try:
        os.sched_setaffinity(pid, cpus)
    except OSError as e:
        raise PyruncError(f"set CPU affinity {process.exec_cpu_affinity.initial} "
                          f"(process.execCPUAffinity.initial): {os.strerror(e.errno).lower()}") from None


def listen_fds() -> int:
    """How many systemd socket-activation fds (3...) the runtime was given: LISTEN_FDS,
    honoured only when LISTEN_PID names this process (systemd's rule, runc's too)."""
    listen = os.environ.get("LISTEN_FDS", "")
    if listen.isdigit() and os.environ.get("LISTEN_PID") == str(os.getpid()):
        return int(listen)
    return 0


def console_above(console_fd: int, console_socket: str, floor: int) -> int:
    """The console socket for the init, numbered >= floor (close-on-exec): a copy of
    `console_fd` (foreground run with a tty) or a connection to `console_socket`; -1 when
    there is neither."""
    from pyrunc.initproc import dup_above
    if console_fd >= 0:
        return dup_above(console_fd, floor)
    if not console_socket:
        return -1
    from pyrunc import unixsock
    s = unixsock.connect_stream(console_socket, "console socket")
    try:
        return dup_above(s.fileno(), floor)
    finally:
        s.close()


def compile_seccomp(seccomp, state_root: str, profile=None) -> tuple[bytes | None, int]:
    """(BPF program, filter flags) of a linux.seccomp profile, (None, 0) without one.
    `profile`: the parsed profile when the caller has it (create: the Spec's)."""
    if not seccomp:
        return None, 0
    from pyrunc.seccomp import compile_filter
    from pyrunc.state import cache_dir
    return compile_filter(seccomp, cache_dir(state_root, "seccomp"), profile)


def hand_over_listener(seccomp, pidfd: int, fd: int, state: dict) -> None:
    """Send the seccomp listener fd `fd` of the process behind `pidfd` to the agent at
    the profile's listenerPath, if it names one."""
    from pyrunc.seccomp.notify import listener_of, send_to_listener
    listener = listener_of(seccomp)
    if listener:
        send_to_listener(pidfd, fd, listener["path"], listener["metadata"], state)


def exec_in(c: Container, process, *, seccomp: dict | None, linux=None, console_socket: str, console_fd: int,
            preserve_fds: int, cgroup_mgr, detach: bool, inherited: list[int]):
    """Start `process` inside the running container `c` (runc exec): join every namespace
    of its init, its cgroup, then the same process setup as the init's.  Returns once
    the program runs (the runtime's end of the sync socket closes on exec)."""
    from pyrunc.initproc import InitProcess
    from pyrunc._native import set_subreaper

    from pyrunc import ns, planner
    from pyrunc.caps import last_cap
    floor = 3 + preserve_fds
    fds: list[int] = []
    try:
        namespaces = ns.open_namespaces_of(c.pid, floor)
        fds += [fd for _, fd in namespaces]
        console = console_above(console_fd, console_socket, floor)
        if console >= 0:
            fds.append(console)
        bpf, flags = compile_seccomp(seccomp, c.root)
        cp = planner.exec_plan(process, namespaces, c.pid, last_cap=last_cap(), console_fd=console,
                               seccomp_bpf=bpf, seccomp_flags=flags, first_closed_fd=floor, linux=linux)
        if not detach:
            set_subreaper()  # a process forked into the pid namespace is reparented to us
        proc = InitProcess.spawn(cp.plan, floor=floor, keep=[*inherited, *fds],
                                 cgroup=cgroup_mgr.unified_path if cgroup_mgr is not None else None)
        _fault("exec.spawned")
    finally:
        for fd in fds:
            os.close(fd)

    def on_listener(pidfd: int, fd: int) -> None:
        hand_over_listener(seccomp, pidfd, fd, c.oci_state())

    def on_placed(_sync_id: int) -> None:
        # at the plan's first op (SYNC_PLACED), the only sync point of exec: the process
        # is pyrunc-init and not dumpable by then, so a frozen (paused) cgroup it joins
        # never holds it in the moment between its execve and its first prctl
        place(proc, cgroup_mgr, process.oom_score_adj, fault_point="exec.placed")
        if c.state.intel_rdt:
            from pyrunc import intelrdt
            intelrdt.join(c.state.intel_rdt, proc.pid)
    try:
        set_initial_affinity(proc.pid, process)
        proc.follow(on_placed, on_listener=on_listener)
    except BaseException:
        proc.kill()
        raise
    return proc
