"""Container lifecycle operations. The CLI and the Python API call these; they raise
`pyrunc.errors.PyruncError` subclasses with a one-line message and never print."""
from __future__ import annotations

import os
from pyrunc.errors import ContainerNotExist, PyruncError, SpawnError, WrongState
from pyrunc.faults import point as _fault
from pyrunc.state import EXEC_FIFO, Container


class Globals:
    """runc's global flags (a plain class: importing dataclasses costs ~7 ms on every
    state/kill/delete)."""
    __slots__ = ("root", "log_path", "log_format", "debug", "systemd_cgroup", "criu", "rootless")

    def __init__(self, root: str = "/run/pyrunc", log_path: str = "", log_format: str = "text",
                 debug: bool = False, systemd_cgroup: bool = False, criu: str = "criu",
                 rootless: str = "auto"):
        self.root = root
        self.log_path = log_path
        self.log_format = log_format
        self.debug = debug
        self.systemd_cgroup = systemd_cgroup
        self.criu = criu  # the criu binary (checkpoint/restore)
        self.rootless = rootless  # --rootless: a Go bool or "auto"

    def rootless_cgroups(self) -> bool:
        """runc's --rootless: cgroups this user may not make are left out ("auto": when
        not root, or root of a user namespace other than the host's)."""
        if self.rootless != "auto":
            if self.rootless in ("1", "t", "T", "TRUE", "true", "True"):
                return True
            if self.rootless in ("0", "f", "F", "FALSE", "false", "False"):
                return False
            raise PyruncError(f'strconv.ParseBool: parsing "{self.rootless}": invalid syntax')
        from pyrunc.ns import in_user_namespace
        return os.geteuid() != 0 or in_user_namespace()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Globals) and all(
            getattr(self, k) == getattr(other, k) for k in self.__slots__)

    def __repr__(self) -> str:
        return "Globals(" + ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__) + ")"


# --------------------------------------------------------------------------- create
def create(g: Globals, container_id: str, bundle: str, *, pid_file: str = "",
           console_socket: str = "", pidfd_socket: str = "", no_pivot: bool = False,
           no_new_keyring: bool = False, preserve_fds: int = 0, console_fd: int = -1,
           inherited: list[int] | None = None, loaded=None) -> None:
    """Create a container whose init waits for `start`.

    pidfd_socket: an AF_UNIX socket that receives a pidfd of the init once it is created
    (runc >= 1.2's --pidfd-socket).
    console_fd: an already connected console socket (foreground `run` with a tty).
    inherited: the caller's fds to pass (default: the open ones among the preserved
    range, looked up now, before this process opens anything).
    loaded: the bundle's spec when the caller (run) has parsed it already.
    """
    from pyrunc import fds
    from pyrunc.launch import listen_fds
    if inherited is None:
        inherited = fds.preserved(listen_fds(), preserve_fds)
    from pyrunc import spec as specmod
    from pyrunc.state import now_rfc3339, proc_stat

    from pyrunc import cgroups
    cgroups.warm_up_migration()
    bundle = os.path.abspath(bundle or ".")
    s = loaded if loaded is not None else specmod.load(bundle)
    if s.process is None:
        raise PyruncError("config.json: process: required")
    if s.process.terminal and not console_socket and console_fd < 0:
        raise PyruncError("cannot allocate tty if runc will detach without setting console socket")
    if not s.process.terminal and (console_socket or console_fd >= 0):
        raise PyruncError("cannot use console socket if runc will not detach or allocate tty")
    if preserve_fds < 0:
        raise PyruncError("--preserve-fds: must not be negative")
    _log_spec_warnings(s)
    if s.process.apparmor_profile or s.process.selinux_label or s.linux.mount_label:
        from pyrunc import lsm  # only for a config that asks for a label
        lsm.check(apparmor_profile=s.process.apparmor_profile, selinux_label=s.process.selinux_label,
                  mount_label=s.linux.mount_label)
    if s.linux.intel_rdt is not None:
        from pyrunc import intelrdt
        intelrdt.check(s.linux.intel_rdt)
    if s.linux.net_devices:
        from pyrunc import netdev
        netdev.check_host(s.linux.net_devices)

    # connected before anything exists: a bad socket path leaves nothing behind
    pidfd_conn = _connect_pidfd_socket(pidfd_socket)
    try:
        c = Container.reserve(g.root, container_id)
    except BaseException:
        if pidfd_conn is not None:
            pidfd_conn.close()
        raise
    _fault("create.reserved")
    mgr = None
    launch = None
    try:
        me = proc_stat(os.getpid())
        st = c.state
        st.oci_version, st.id, st.pid = s.oci_version, container_id, 0
        st.bundle, st.rootfs, st.created = bundle, s.root.path, now_rfc3339()
        st.annotations, st.creator = s.annotations, [os.getpid(), me[2] if me else 0]
        st.no_new_keyring, st.args0 = no_new_keyring, s.process.args[0]
        from pyrunc import cgroups
        st.exec_defaults = _exec_defaults(s)
        mgr = cgroups.Manager.for_container(s.linux.cgroups_path, container_id, g.systemd_cgroup,
                                            annotations=s.annotations)
        # recorded before they exist: a create killed half-way through mkdir still leaves
        # `delete --force` the container's own directories to remove
        st.cgroup = dict(mgr.to_state(), created=sorted(set(mgr.paths.values())))
        if s.linux.intel_rdt is not None:
            _plan_intel_rdt(st, container_id, s.linux.intel_rdt)
        c.save()
        _fault("create.state-saved")
        # cgroupsPath named: its cgroup must be made, rootless or not (runc)
        mgr.create(rootless=g.rootless_cgroups() and not s.linux.cgroups_path)
        _fault("create.cgroup-created")
        st.resources = mgr.apply(s.linux.cgroup_resources, devices=s.linux.devices)
        st.cgroup = mgr.to_state()
        c.save()
        _fault("create.cgroup-saved")
        from pyrunc.launch import Launch
        launch = Launch(s, c, mgr, no_pivot=no_pivot, preserve_fds=preserve_fds,
                        console_socket=console_socket, console_fd=console_fd,
                        no_new_keyring=no_new_keyring, inherited=inherited)
        pid, pid_start = launch.run()
        _fault("create.launched")
        st.pid, st.pid_start, st.hooks = pid, pid_start, _hooks_state(s)
        del st.creator
        if pid_file:
            _write_pid_file(pid_file, pid)
        if pidfd_conn is not None:
            _send_pidfd(pidfd_conn, pid, b"standard")
        c.save()
        _fault("create.saved")
        launch.close()
    except BaseException:
        if launch is not None:
            launch.abort()
        _destroy(c, mgr)
        if s.hooks.poststop and launch is not None:
            # the spec's lifecycle: a failed create still ends with the poststop hooks
            from pyrunc import hooks as hookmod
            from pyrunc.record import as_dict
            state = dict(c.oci_state(), status="stopped", pid=0)
            hookmod.run_all([as_dict(h) for h in s.hooks.poststop], state, "poststop", warn_only=True)
        raise
    finally:
        c.unlock()
        if pidfd_conn is not None:
            pidfd_conn.close()


def _connect_pidfd_socket(path: str):
    """A connection to --pidfd-socket, None without one."""
    if not path:
        return None
    from pyrunc import unixsock
    return unixsock.connect_stream(path, "pidfd socket")


def _send_pidfd(conn, pid: int, kind: bytes) -> None:
    """A pidfd of `pid` over the --pidfd-socket connection, as runc's setupPidfd sends it:
    one message whose data is the init type ("standard" for a container's init, "setns"
    for an exec'd process) with the fd as SCM_RIGHTS."""
    from pyrunc import unixsock
    try:
        pidfd = os.pidfd_open(pid)
    except OSError as e:
        raise PyruncError(f"pidfd_open {pid}: {os.strerror(e.errno).lower()}") from None
    try:
        unixsock.send_fd(conn, kind, pidfd)
    except OSError as e:
        raise PyruncError(f"send pidfd on socket: {os.strerror(e.errno).lower()}") from None
    finally:
        os.close(pidfd)


def _plan_intel_rdt(st, container_id: str, rdt) -> None:
    """Record the resctrl group before it exists (delete removes it); nothing where
    resctrl is not mounted (intelrdt.check let only a bare closID through then)."""
    from pyrunc import intelrdt
    root = intelrdt.resctrl_root()
    if root is not None:
        st.intel_rdt = intelrdt.plan(root, container_id, rdt)


def _exec_defaults(s) -> dict:
    """What `exec` inherits from the container's config (runc keeps the whole config in
    its state): the process (env, user, caps, rlimits...) and the seccomp profile, as
    written in config.json (the spec keeps them; the file is not read again)."""
    defaults = {"process": s.process_json, "seccomp": s.linux.seccomp}
    # the container-wide attributes every exec'd process gets too (runc's setns init)
    from pyrunc.record import as_dict
    if s.linux.personality is not None:
        defaults["personality"] = as_dict(s.linux.personality)
    if s.linux.memory_policy is not None:
        defaults["memory_policy"] = as_dict(s.linux.memory_policy)
    return defaults


def _exec_linux(defaults: dict):
    """The container's linux.personality and linux.memoryPolicy, as an exec applies them."""
    from pyrunc.spec.model import Linux, MemoryPolicy, Personality
    linux = Linux()
    if defaults.get("personality"):
        linux.personality = Personality(**defaults["personality"])
    if defaults.get("memory_policy"):
        linux.memory_policy = MemoryPolicy(**defaults["memory_policy"])
    return linux


def _log_spec_warnings(s) -> None:
    from pyrunc import log
    for w in s.warnings:
        log.warning(w)
    c = s.process.capabilities
    if c is not None:
        from pyrunc import caps
        caps.warn_ignored(c)
        for name in c.ambient:
            if name not in c.permitted or name not in c.inheritable:
                log.debug(f"ambient capability {name} ignored: not in the permitted and inheritable sets")


def _hooks_state(s) -> dict:
    """The hooks later commands run (start, delete), kept in state.json so that they do
    not depend on the bundle still being there."""
    from pyrunc.record import as_dict as asdict
    h = s.hooks
    return {k: [asdict(x) for x in getattr(h, k)] for k in ("start_container", "poststart", "poststop")
            if getattr(h, k)}


def _write_pid_file(path: str, pid: int) -> None:
    # engines parse it with strconv.Atoi: no trailing newline; written atomically, through
    # runc's temporary name (its errors name that file)
    path = os.path.abspath(path)
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}")
    try:
        with open(tmp, "w") as f:
            f.write(str(pid))
        os.replace(tmp, path)
    except OSError as e:
        raise PyruncError(f"open {tmp}: {os.strerror(e.errno).lower()}") from None


def _destroy(c: Container, mgr) -> None:
    """Remove everything create made: processes in the cgroup, the cgroup, the state dir."""
    if mgr is not None:
        if not mgr.remove_if_empty():
            _kill_cgroup_and_wait(mgr)
        _fault("destroy.cgroup-emptied")
        try:
            mgr.destroy()
        except (PyruncError, OSError):
            pass
        _fault("destroy.cgroup-removed")
    if c.state.intel_rdt:
        from pyrunc import intelrdt
        intelrdt.destroy(c.state.intel_rdt)
    # the overlay (if any) is mounted only in the container's mount namespace, so its
    # upper/work dirs in the state dir go with it
    c.remove()


def _kill_cgroup_and_wait(mgr, timeout: float = 5.0) -> None:
    import time
    try:
        mgr.kill_all(9)
    except (PyruncError, OSError):
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if not mgr.pids():
                return
        except OSError:
            return
        time.sleep(0.005)


# --------------------------------------------------------------------------- start
def start(g: Globals, container_id: str) -> None:
    c = Container.load(g.root, container_id)
    try:
        status = c.status()
        if status == "stopped":
            raise WrongState("cannot start a container that has stopped")
        if status != "created":
            raise WrongState(f"cannot start an already {status} container")
        hooks = c.state.hooks or {}
        state = c.oci_state()
        if hooks.get("start_container"):
            from pyrunc import hooks as hookmod
            try:
                hookmod.run_all(hooks["start_container"], state, "startContainer", ns_pid=c.pid,
                                **_start_container_hook_context(c))
            except PyruncError:
                # the user's process must not run: the container goes to stopped
                _signal_init(c, 9)
                raise
        try:
            if c.state.start_fd >= 0 and not os.path.exists(c.path(EXEC_FIFO)):
                _start_through_socket(c)
            else:
                _start_through_fifo(c)
            from pyrunc import log
            log.debug(f"init[{c.pid}]: released by start: exec {c.state.args0}")
        except OSError as e:
            raise WrongState(f"cannot start container: {os.strerror(e.errno).lower()}") from None
        _fault("start.done")
        if hooks.get("poststart"):
            from pyrunc import hooks as hookmod
            # the process was started: the state says so even when it has exited already
            poststart_state = dict(c.oci_state(), status="running", pid=c.pid)
            hookmod.run_all(hooks["poststart"], poststart_state, "poststart", warn_only=True)
    finally:
        c.unlock()


def _start_container_hook_context(c: Container) -> dict:
    """runc runs startContainer hooks from its init right before the execve: as the
    container's process (user, capabilities, cwd, environment, seccomp filter)."""
    from pyrunc import spec as specmod
    defaults = c.state.exec_defaults or {}
    process = specmod.parse_process(defaults.get("process") or {})
    from pyrunc.launch import compile_seccomp
    bpf, flags = compile_seccomp(defaults.get("seccomp"), c.root)
    return {"as_process": (process, bpf, flags)}


def _start_through_fifo(c: Container) -> None:
    """Release the init waiting in open(2) for writing of the exec fifo (runc's exec
    fifo: no privilege over the init is needed, so a rootless `start` can do it), then
    read until EOF: the init's end is close-on-exec, so EOF after its one byte means the
    user's program runs; an exec error arrives as a record before it.  The init is
    watched through a pidfd meanwhile: one that died without opening the fifo would
    leave a reader waiting forever."""
    import select
    path = c.path(EXEC_FIFO)
    try:
        pidfd = os.pidfd_open(c.pid)
    except OSError:
        raise WrongState("cannot start a container that has stopped") from None
    try:
        # the pidfd pins the process: re-check it is still the container's waiting init
        # (before the open below releases it)
        if not c.init_alive():
            raise WrongState("cannot start a container that has stopped")
        _fault("start.connected")
        # O_NONBLOCK: the open returns at once (and wakes the init's); the reads are polled
        fifo = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            _fault("start.sent")
            got = _read_fifo_until_eof(fifo, pidfd, select)
        finally:
            os.close(fifo)
    finally:
        os.close(pidfd)
    try:
        os.unlink(path)  # as runc: a started container has no exec fifo
    except FileNotFoundError:
        pass
    if not got:
        raise WrongState("cannot start a container that has stopped")
    _raise_exec_error(c, got[1:])


def _read_fifo_until_eof(fifo: int, pidfd: int, select) -> bytes:
    """Everything the init writes on the fifo; b"" when it died before opening it."""
    got = b""
    poller = select.poll()
    poller.register(fifo, select.POLLIN)
    poller.register(pidfd, select.POLLIN)
    while True:
        events = dict(poller.poll())
        if events.get(fifo):
            # a fifo opened before any writer reads EOF at once: only read once it polls
            # readable (data, or POLLHUP once the writer has come and gone)
            chunk = os.read(fifo, 4096)
            if not chunk:
                return got
            got += chunk
        elif events.get(pidfd):
            # the init exited; what it wrote before is still in the fifo
            try:
                return got + os.read(fifo, 4096)
            except BlockingIOError:
                return got


def _start_through_socket(c: Container) -> None:
    """A container created by an earlier pyrunc, whose init waits on a start socket."""
    conn = _start_socket(c)
    try:
        os.write(conn, b"\0")
        from pyrunc import plan as P
        _raise_exec_error(c, os.read(conn, P.MSG_SIZE))
    finally:
        os.close(conn)


def _raise_exec_error(c: Container, record: bytes) -> None:
    """The init's report of a failed execve (struct init_msg), if any."""
    if record:
        from pyrunc import plan as P
        err = P.unpack_msg(record[:P.MSG_SIZE])[2]
        raise SpawnError(f'exec "{c.state.args0}": {os.strerror(err).lower()}')


def _start_socket(c: Container) -> int:
    """Our copy of the start socket's peer end, taken from the waiting init (an earlier
    pyrunc's init waits with a read(2) on its end)."""
    from pyrunc._native._lib import lib
    try:
        pidfd = os.pidfd_open(c.pid)
    except OSError as e:
        raise WrongState(f"cannot start container: {os.strerror(e.errno).lower()}") from None
    try:
        # the pidfd pins the process: re-check it is still the container's waiting init
        if not c.init_alive():
            raise WrongState("cannot start a container that has stopped")
        fd = lib.pyrunc_pidfd_getfd(pidfd, c.state.start_fd)
    finally:
        os.close(pidfd)
    if fd < 0:
        raise WrongState(f"cannot start container: {os.strerror(-fd).lower()}")
    return fd


# --------------------------------------------------------------------------- run
def run(g: Globals, container_id: str, bundle: str, *, pid_file: str = "",
        console_socket: str = "", pidfd_socket: str = "", no_pivot: bool = False,
        no_new_keyring: bool = False,
        preserve_fds: int = 0, detach: bool = False, keep: bool = False) -> int:
    """Create and start; in the foreground wait, forwarding signals, and return the
    container's exit code (128+N when killed by signal N); detached: return 0."""
    from pyrunc import fds
    from pyrunc.launch import listen_fds
    inherited = fds.preserved(listen_fds(), preserve_fds)
    console = None
    console_fd = -1
    loaded = None
    if not detach:
        from pyrunc._native import set_subreaper
        set_subreaper()
        if not console_socket:
            from pyrunc import spec as specmod
            s = loaded = specmod.load(os.path.abspath(bundle or "."))
            if s.process is not None and s.process.terminal:
                from pyrunc.console import ForegroundConsole
                console = ForegroundConsole()
                console_fd = console.runtime_end()
    try:
        create(g, container_id, bundle, pid_file=pid_file, console_socket=console_socket,
               pidfd_socket=pidfd_socket, no_pivot=no_pivot, no_new_keyring=no_new_keyring, preserve_fds=preserve_fds,
               console_fd=console_fd, inherited=inherited, loaded=loaded)
    except BaseException:
        if console:
            console.close()
        raise
    from pyrunc import cgroups
    cgroups.end_warm_up()  # the init is placed: ~33 more writes would only cost CPU
    try:
        if console:
            console.receive_master()
        start(g, container_id)
    except BaseException:
        if console:
            console.close()
        _quiet_delete(g, container_id)
        raise
    if detach:
        return 0
    c = Container.load(g.root, container_id, lock=False)
    code = _wait_foreground(c.pid, console)
    if not keep:
        _quiet_delete(g, container_id)
    return code


def _quiet_delete(g: Globals, container_id: str) -> None:
    try:
        delete(g, container_id, force=True)
    except PyruncError:
        pass


def _collect_from_now_on(gc) -> None:
    """Turn the cyclic collector back on for a command that stays, when the launcher
    turned it off (a command that ends in milliseconds has no use for it). What exists
    now is frozen first: otherwise the first allocation would start a full collection
    over every object the imports made (~3 ms)."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def _wait_foreground(pid: int, console) -> int:
    """Forward signals to the init and wait for it; the exit code as a shell reports it."""
    import _signal as signal  # the C module: `signal` builds its enums at import
    import gc

    def forward(signum, _frame):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    skip = {signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD, signal.SIGWINCH if console else 0}
    for sig in signal.valid_signals():
        if sig in skip or sig >= signal.SIGRTMIN:
            continue
        try:
            signal.signal(sig, forward)
        except (OSError, ValueError):
            pass
    collecting = gc.isenabled()
    _collect_from_now_on(gc)  # this wait may last days
    if console:
        console.proxy_until_exit(pid)
    while True:
        wpid, status = os.waitpid(-1, 0)
        if wpid == pid:
            break
    if not collecting:
        gc.disable()
    if console:
        console.close()
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


# --------------------------------------------------------------------------- state
def state(g: Globals, container_id: str) -> dict:
    """runc's state JSON object."""
    c = Container.load(g.root, container_id, lock=False)
    return c.oci_state()


def list_containers(g: Globals) -> list[dict]:
    """State objects of every container under g.root, `owner` = user name."""
    from pyrunc.state import list_ids
    out = []
    for cid in list_ids(g.root):
        try:
            c = Container.load(g.root, cid, lock=False)
        except PyruncError:
            continue
        st = c.oci_state()
        try:
            import pwd
            st["owner"] = pwd.getpwuid(os.stat(c.dir).st_uid).pw_name
        except (KeyError, OSError):
            st["owner"] = "#0"
        out.append(st)
    return out


# --------------------------------------------------------------------------- kill
def kill(g: Globals, container_id: str, sig: int, all_processes: bool = False) -> None:
    c = Container.load(g.root, container_id, lock=False)
    if all_processes:
        mgr = c.cgroup_manager()
        if mgr is not None and not mgr.paths:
            # rootless without a cgroup it could make: the processes of the container's
            # pid namespace (runc fails: "lstat : no such file or directory")
            for pid in _pid_namespace_members(c.pid) if c.init_alive() else ():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            return
        if mgr is not None:
            try:
                mgr.kill_all(sig)
            except OSError:
                pass
        if c.status() == "stopped" or mgr is None:
            return
        return
    if c.status() == "stopped":
        raise WrongState("container not running")
    _signal_init(c, sig)


def _signal_init(c: Container, sig: int) -> None:
    # _signal, not signal: the latter builds its enums (~4 ms on every kill)
    from _signal import pidfd_send_signal
    try:
        pidfd = os.pidfd_open(c.pid)
    except ProcessLookupError:
        raise WrongState("container not running") from None
    try:
        # the pidfd pins the process: re-check it is still the container's init
        if not c.init_alive():
            raise WrongState("container not running")
        pidfd_send_signal(pidfd, sig)
    except ProcessLookupError:
        raise WrongState("no such process") from None
    finally:
        os.close(pidfd)


# --------------------------------------------------------------------------- delete
def delete(g: Globals, container_id: str, force: bool = False) -> None:
    from pyrunc.state import Busy
    try:
        c = Container.load(g.root, container_id, timeout=0.2)
    except ContainerNotExist:
        if force:
            return
        raise
    except Busy:
        # most likely a create in progress (it holds the lock through its hooks): runc
        # answers at once; --force stops the creator so the container can go
        c = Container.load(g.root, container_id, lock=False)
        if c.status() != "creating":
            c = Container.load(g.root, container_id)
        elif not force:
            raise WrongState(f"cannot delete container {container_id} that is not stopped: creating") from None
        else:
            _stop_creator(c)
            try:
                c = Container.load(g.root, container_id)
            except ContainerNotExist:
                return
    try:
        status = c.status()
        if status in ("running", "paused") and not force:
            raise WrongState(f"cannot delete container {container_id} that is not stopped: {status}")
        if status == "creating" and not force:
            raise WrongState(f"cannot delete container {container_id} that is not stopped: creating")
        mgr = c.cgroup_manager()
        if status != "stopped" and c.pid:
            try:
                _signal_init(c, 9)
            except WrongState:
                pass
        if mgr is not None and status == "paused":
            try:
                mgr.thaw()
            except (PyruncError, OSError):
                pass
        _fault("delete.killed")
        _wait_init_gone(c)
        state = c.oci_state()
        poststop = (c.state.hooks or {}).get("poststop")
        _destroy(c, mgr)
        if poststop:
            from pyrunc import hooks as hookmod
            hookmod.run_all(poststop, state, "poststop", warn_only=True)
    finally:
        c.unlock()


def _stop_creator(c: Container) -> None:
    """SIGKILL the `create` still working on `c` and whatever it placed in the cgroup; its
    lock is released when it dies."""
    from _signal import pidfd_send_signal
    from pyrunc.state import proc_stat
    creator = c.state.creator
    if creator:
        try:
            pidfd = os.pidfd_open(creator[0])
        except OSError:
            pidfd = -1
        if pidfd >= 0:
            try:
                st = proc_stat(creator[0])
                if st and st[2] == creator[1]:
                    pidfd_send_signal(pidfd, 9)
            except OSError:
                pass
            finally:
                os.close(pidfd)
    if c.cgroup_manager() is not None:
        _kill_cgroup_and_wait(c.cgroup_manager())


def _wait_init_gone(c: Container, timeout: float = 10.0) -> None:
    import time
    deadline = time.monotonic() + timeout
    while c.init_alive():
        if time.monotonic() > deadline:
            raise PyruncError(f"container {c.id} init (pid {c.pid}) did not exit after SIGKILL")
        time.sleep(0.002)
    _reap_if_ours(c.pid)


def _reap_if_ours(pid: int) -> None:
    """When the init is this process's own child (the Python API created it in-process),
    reap it: nobody else can, and it would stay a zombie."""
    if pid > 0:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass


# --------------------------------------------------------------------------- exec
def exec_process(g: Globals, container_id: str, *, process_file: str = "", args: tuple = (),
                 cwd: str = "", env: tuple = (), user: str = "", additional_gids: tuple = (),
                 caps: tuple = (), no_new_privs: bool = False, tty: bool = False,
                 detach: bool = False, pid_file: str = "", console_socket: str = "",
                 pidfd_socket: str = "", preserve_fds: int = 0, ignore_paused: bool = False, cgroup: tuple = (),
                 apparmor: str = "", process_label: str = "") -> int:
    """runc exec: run a new process in a container; foreground returns its exit code."""
    from pyrunc import fds
    from pyrunc.launch import exec_in
    inherited = fds.preserved(0, preserve_fds)

    c = Container.load(g.root, container_id, lock=False)
    status = c.status()
    if status in ("stopped", "creating"):
        raise WrongState("cannot exec in a stopped container" if status == "stopped"
                         else "cannot exec in a container that is being created")
    if status == "paused" and not ignore_paused:
        raise WrongState("cannot exec in a paused container (use --ignore-paused to override)")
    if c.state.cgroup:
        from pyrunc import cgroups
        cgroups.warm_up_migration()
    defaults = c.state.exec_defaults or {}
    process = _exec_process_spec(defaults.get("process") or {}, process_file, args, cwd, env, user,
                                 additional_gids, caps, no_new_privs, tty)
    # runc: the flags override the container's profile and label, a --process file
    # replaces both (and ignores the flags); without one the container's apply
    if not process_file:
        process.apparmor_profile = apparmor or process.apparmor_profile
        process.selinux_label = process_label or process.selinux_label
    from pyrunc import caps as capsmod
    capsmod.warn_ignored(process.capabilities)
    base = defaults.get("process") or {}
    process.apparmor_profile = process.apparmor_profile or base.get("apparmorProfile") or ""
    process.selinux_label = process.selinux_label or base.get("selinuxLabel") or ""
    if process.apparmor_profile or process.selinux_label:
        from pyrunc import lsm  # only for a process that asks for a label
        lsm.check(apparmor_profile=process.apparmor_profile, selinux_label=process.selinux_label)
    if process.terminal and detach and not console_socket:
        raise PyruncError("cannot allocate tty if runc will detach without setting console socket")
    if not process.terminal and console_socket:
        raise PyruncError("cannot use console socket if runc will not detach or allocate tty")
    mgr = c.cgroup_manager()
    if mgr is not None:
        if cgroup:
            mgr = _exec_sub_cgroup(mgr, cgroup)
    console = None
    console_fd = -1
    pidfd_conn = _connect_pidfd_socket(pidfd_socket)
    if process.terminal and not console_socket:
        from pyrunc.console import ForegroundConsole
        console = ForegroundConsole()
        console_fd = console.runtime_end()
    try:
        # runc gives every exec'd process the container's oomScoreAdj unless it names one
        if process.oom_score_adj is None:
            process.oom_score_adj = (defaults.get("process") or {}).get("oomScoreAdj")
        proc = exec_in(c, process, seccomp=defaults.get("seccomp"), linux=_exec_linux(defaults),
                       console_socket=console_socket,
                       console_fd=console_fd, preserve_fds=preserve_fds, cgroup_mgr=mgr, detach=detach,
                       inherited=inherited)
        if console:
            console.receive_master()
    except BaseException:
        if console:
            console.close()
        if pidfd_conn is not None:
            pidfd_conn.close()
        raise
    _fault("exec.started")
    if pid_file or pidfd_conn is not None:
        try:
            if pid_file:
                _write_pid_file(pid_file, proc.pid)
            if pidfd_conn is not None:
                _send_pidfd(pidfd_conn, proc.pid, b"setns")
        except BaseException:
            # as runc: no process outlives a failed exec
            proc.kill()
            if console:
                console.close()
            raise
        finally:
            if pidfd_conn is not None:
                pidfd_conn.close()
    pid = proc.pid
    proc.close()
    if detach:
        return 0
    return _wait_foreground(pid, console)


def _exec_sub_cgroup(mgr, specs: tuple):
    """runc exec --cgroup [<controller>[,<controller>...]:]<path> (repeatable): runc's
    checks and messages, then a manager that joins the existing sub-cgroup(s)."""
    paths: dict[str, str] = {}  # controller -> path; "" = every hierarchy
    for spec in specs:
        parts = spec.split(":", 2)
        if len(parts) > 2:
            raise PyruncError(f"invalid --cgroup argument: {spec}")
        if len(parts) == 1:
            if len(specs) != 1:
                raise PyruncError(f"invalid --cgroup argument: {spec} (missing <controller>: prefix)")
            paths[""] = spec
            continue
        for controller in parts[0].split(","):
            paths[controller] = parts[1]  # runc 1.1.5: a repeated controller's last path
    if "" in paths:
        return _joined_sub_cgroup(mgr, "", paths[""])
    known = mgr.runc_cgroup_paths()  # runc's names: controllers, "name=systemd", "" (cgroup2)
    for controller, sub in paths.items():
        if controller not in known:
            raise PyruncError("unable to create new parent process: unknown controller "
                              f"{controller} in SubCgroupPaths")
        mgr = _joined_sub_cgroup(mgr, controller, sub)
    return mgr


def _joined_sub_cgroup(mgr, controller: str, sub: str):
    # runc joins with path.Join: an absolute <path> is still below the container's cgroup
    relative = os.path.normpath("./" + sub)
    if relative == ".." or relative.startswith("../"):
        raise PyruncError(f"unable to create new parent process: {sub} is not a sub cgroup path")
    if relative == ".":
        return mgr
    return mgr.sub_cgroup(f"{controller}:{relative}" if controller else relative)


def _exec_process_spec(base: dict, process_file: str, args, cwd, env, user, additional_gids, caps,
                       no_new_privs, tty):
    """The process to exec: --process FILE, or the container's process with runc exec's
    command-line overrides."""
    import copy
    from pyrunc import fastjson
    from pyrunc import spec as specmod

    if process_file:
        try:
            with open(process_file, "rb") as f:
                raw = fastjson.loads(f.read())
        except OSError as e:
            raise PyruncError(f"open {process_file}: {os.strerror(e.errno).lower()}") from None
        except ValueError as e:
            raise PyruncError(f"{process_file}: invalid JSON: {e}") from None
        return specmod.parse_process(raw, where="", source=process_file)
    if not args:
        raise PyruncError("process args cannot be empty")
    raw = copy.deepcopy(base)
    raw["args"] = list(args)
    raw["terminal"] = bool(tty)
    raw.pop("consoleSize", None)
    if cwd:
        raw["cwd"] = cwd
    if env:
        raw["env"] = list(raw.get("env") or []) + list(env)
    if user:
        uid, _, gid = user.partition(":")
        try:
            raw["user"] = {"uid": int(uid), "gid": int(gid) if gid else 0}
        except ValueError:
            raise PyruncError(f"invalid user {user!r}: uid[:gid] must be numbers") from None
    if additional_gids:
        raw.setdefault("user", {})["additionalGids"] = [int(x) for x in additional_gids]
    if caps:
        sets = raw.setdefault("capabilities", {})
        for kind in ("bounding", "effective", "permitted"):
            sets[kind] = list(sets.get(kind) or []) + list(caps)
    if no_new_privs:
        raw["noNewPrivileges"] = True
    return specmod.parse_process(raw)


# --------------------------------------------------------------------------- pause, ps
def _manager(c: Container):
    mgr = c.cgroup_manager()
    if mgr is None:
        raise PyruncError(f"container {c.id} has no cgroup")
    return mgr


def pause(g: Globals, container_id: str) -> None:
    c = Container.load(g.root, container_id)
    try:
        status = c.status()
        if status not in ("running", "created"):
            raise WrongState("container not running" if status == "stopped"
                             else f"container {container_id} is {status}, not running")
        _manager(c).freeze()
    finally:
        c.unlock()


def resume(g: Globals, container_id: str) -> None:
    c = Container.load(g.root, container_id)
    try:
        if c.status() != "paused":
            raise WrongState("container not paused")
        _manager(c).thaw()
    finally:
        c.unlock()


def ps_pids(g: Globals, container_id: str) -> list[int]:
    """Host pids of every process in the container's cgroup (runc ps --format json); a
    stopped container's cgroup may still hold some, or none (runc lists them too)."""
    c = Container.load(g.root, container_id, lock=False)
    mgr = c.cgroup_manager()
    if mgr is not None and not mgr.paths and c.init_alive():
        # rootless without a cgroup it could make: the processes of the container's pid
        # namespace (runc fails here: "unable to get all container pids")
        return _pid_namespace_members(c.pid)
    return sorted(_manager(c).pids())


def _pid_namespace_members(init_pid: int) -> list[int]:
    """Host pids of the processes in `init_pid`'s pid namespace (none when that is this
    process's own: a container without one has no members of its own to tell apart)."""
    def pid_ns(pid) -> str:
        try:
            return os.readlink(f"/proc/{pid}/ns/pid")
        except OSError:
            return ""
    ns = pid_ns(init_pid)
    if not ns or ns == pid_ns("self"):
        return [init_pid] if ns else []
    return sorted(int(p) for p in os.listdir("/proc") if p.isdigit() and pid_ns(p) == ns)


# --------------------------------------------------------------------------- update, events
def update(g: Globals, container_id: str, resources: dict, *, l3_cache_schema: str = "",
           mem_bw_schema: str = "") -> None:
    """runc update: `resources` is a LinuxResources object whose zero values mean
    "unchanged"; it is merged into the resources saved at create (or the last update)
    and the result applied and saved, as runc does. Devices are not updated (runc
    ignores them here too). The Intel RDT schemata go to the container's resctrl group
    (made now if create made none, as runc)."""
    from pyrunc.cgroups import _resources

    c = Container.load(g.root, container_id)
    try:
        if c.status() == "stopped":
            raise WrongState("container not running")
        if l3_cache_schema or mem_bw_schema:
            _update_intel_rdt(c, l3_cache_schema, mem_bw_schema)
        mgr = _manager(c)
        new = _resources.normalize({k: v for k, v in (resources or {}).items() if k != "devices"})
        old = _resources.normalize(c.state.resources)
        merged = _resources.merge(old, new)
        merged["devices"] = old["devices"]
        c.state.resources = mgr.apply(merged, update=True)
        c.save()
    finally:
        c.unlock()


def _update_intel_rdt(c: Container, l3_cache_schema: str, mem_bw_schema: str) -> None:
    from pyrunc import intelrdt
    from pyrunc.spec.model import IntelRdt
    root = intelrdt.resctrl_root()
    # runc 1.1.5's words (update.go)
    for value, feature, words in ((l3_cache_schema, "L3", "Intel RDT/CAT: l3 cache schema is not enabled"),
                                  (mem_bw_schema, "MB", "Intel RDT/MBA: memory bandwidth schema is not enabled")):
        if value and (root is None or not os.path.isdir(f"{root}/info/{feature}")):
            raise PyruncError(words)
    if not c.state.intel_rdt:
        c.state.intel_rdt = intelrdt.plan(root, c.id, IntelRdt())
        c.save()
        intelrdt.apply(c.state.intel_rdt, IntelRdt(), c.pid)
    intelrdt.set_schemata(c.state.intel_rdt, l3_cache_schema, mem_bw_schema)


def events(g: Globals, container_id: str, *, stats: bool = False, interval: float = 5.0):
    """runc events: with stats=True one {"type":"stats",...} event; otherwise stats every
    `interval` seconds plus {"type":"oom","id":...} when the kernel OOM-kills in the
    container, until the container stops. Yields plain dicts."""
    import gc
    import select
    import time

    _collect_from_now_on(gc)  # events may run for days
    c = Container.load(g.root, container_id, lock=False)
    if c.status() == "stopped":
        raise WrongState(f"container with id {container_id} is not running")
    if interval <= 0:
        raise PyruncError("duration interval must be greater than 0")
    mgr = _manager(c)
    if stats:
        yield {"type": "stats", "id": container_id, "data": mgr.stats()}
        return
    try:
        watch = mgr.oom_watch()
    except OSError:
        watch = None  # no memory cgroup: stats only
    try:
        next_stats = time.monotonic()
        while True:
            now = time.monotonic()
            if now >= next_stats:
                try:
                    yield {"type": "stats", "id": container_id, "data": mgr.stats()}
                except OSError:
                    pass
                next_stats += interval
                if next_stats < now:
                    next_stats = now + interval
            wait = max(0.0, min(0.1, next_stats - time.monotonic()))
            if watch is not None and watch.fileno() >= 0:
                select.select([watch.fileno()], [], [], wait)
            else:
                time.sleep(wait)
            for _ in range(watch.check() if watch is not None else 0):
                yield {"type": "oom", "id": container_id}
            if not c.init_alive():
                for _ in range(watch.check() if watch is not None else 0):
                    yield {"type": "oom", "id": container_id}
                return
    finally:
        if watch is not None:
            watch.close()
