"""The resident shim: containerd's Task service over ttrpc, with pyrunc's operations
called in-process (docs/shim.md). One process per containerd address and namespace serves
every group (a pod, a container, or the node): each group has its own socket and ttrpc
server, as if it had its own shim, and its own Shutdown.

Threads: a ttrpc server per group (one thread per connection, one per request), the
reaper (this process is the subreaper of every container and reaps every child), the
event publisher (one ordered queue to containerd's Events service) and the OOM watcher."""
from __future__ import annotations

import contextlib
import functools
import json
import os
import queue
import select
import shutil
import signal
import socket
import threading
import time

from pyrunc import operations
from pyrunc.errors import ContainerNotExist, PyruncError, WrongState
from pyrunc.shim import options as runtime_options
from pyrunc.shim import shim_pb2 as pb
from pyrunc.shim import ttrpc
from pyrunc.shim.ttrpc import Error

TASK_SERVICE = "containerd.task.v2.Task"
EVENTS_SERVICE = "containerd.services.events.ttrpc.v1.Events"
METRICS_V1 = "io.containerd.cgroups.v1.Metrics"
METRICS_V2 = "io.containerd.cgroups.v2.Metrics"
# how long a process's exit waits for its output to be copied out (a pty, IoUid's pipes)
IO_DRAIN_TIMEOUT = 5.0
# Go's zero time.Time (0001-01-01T00:00:00Z) as a Timestamp: runc's shim's exited_at of a
# process that has not exited (its gogo stdtime fields are never absent)
GO_ZERO_SECONDS = -62135596800
# how long Delete waits for a binary:// logger to exit after SIGTERM (runc's shim: 12 s)
LOGGER_TERM_TIMEOUT = 12.0


# --------------------------------------------------------------------------- mounts
_libc = None


def _mount_syscall(source: str, target: str, fstype: str, flags: int, data: str) -> None:
    global _libc
    import ctypes
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.mount(source.encode(), target.encode(), fstype.encode(), flags,
                   data.encode() if data else None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} on {target} ({fstype}): {os.strerror(err).lower()}")


def _umount(target: str) -> None:
    import ctypes
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    _libc.umount2(target.encode(), 2)  # MNT_DETACH; not mounted (EINVAL) is fine


_MOUNT_FLAGS = {"ro": 0x1, "nosuid": 0x2, "nodev": 0x4, "noexec": 0x8, "sync": 0x10,
                "dirsync": 0x80, "noatime": 0x400, "nodiratime": 0x800, "relatime": 0x200000,
                "strictatime": 0x1000000, "bind": 0x1000, "rbind": 0x1000 | 0x4000}
_CLEARED = {"rw", "suid", "dev", "exec", "async", "atime", "diratime", "defaults"}


def mount_rootfs(bundle: str, mounts) -> None:
    """containerd's rootfs mounts (an overlay or bind of the snapshot) on bundle/rootfs."""
    target = os.path.join(bundle, "rootfs")
    os.makedirs(target, mode=0o711, exist_ok=True)
    done = 0
    try:
        for m in mounts:
            flags, data = 0, []
            for option in m.options:
                if option in _MOUNT_FLAGS:
                    flags |= _MOUNT_FLAGS[option]
                elif option not in _CLEARED:
                    data.append(option)
            fstype = "" if flags & 0x1000 else m.type
            _mount_syscall(m.source, target, fstype, flags, ",".join(data))
            done += 1
            if flags & 0x1000 and flags & 0x1:  # a read-only bind needs its remount
                _mount_syscall("", target, "", flags | 0x20, "")
    except OSError as error:
        for _ in range(done):
            _umount(target)
        raise Error(ttrpc.INVALID_ARGUMENT, f"rootfs: {error.strerror}") from None


def unmount_rootfs(bundle: str) -> None:
    target = os.path.join(bundle, "rootfs")
    with open("/proc/self/mountinfo") as f:
        mounted = sum(1 for line in f if line.split()[4] == target)
    for _ in range(mounted):
        _umount(target)


# --------------------------------------------------------------------------- stdio
def _stdio_scheme(stdout: str) -> str:
    """The scheme of a process's stdout URI, which decides for stdout and stderr both (as
    in runc's shim, pkg/process/io.go): "" (FIFO paths), "file" or "binary"."""
    scheme, sep, _rest = stdout.partition("://")
    if not sep:
        return ""
    if scheme not in ("file", "binary"):
        raise Error(ttrpc.INVALID_ARGUMENT, f"stdout {stdout!r}: unknown STDIO scheme {scheme} (pyrunc's shim "
                                            "takes FIFO paths, file:// and binary:// URIs, as runc's shim)")
    return scheme


def _uri_path(uri: str) -> str:
    from urllib.parse import unquote, urlsplit
    return unquote(urlsplit(uri).path)


def _open_output(target: str) -> int:
    """A FIFO containerd reads (handed over as it is, so nothing is lost at exit: there is
    no copy to drain), another file to append to, or nothing."""
    if not target:
        return os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
    import stat
    if stat.S_ISFIFO(os.stat(target).st_mode):
        # O_RDWR: opening a FIFO write-only blocks until a reader comes
        return os.open(target, os.O_RDWR | os.O_CLOEXEC)
    return os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)


def _log_file(uri: str) -> str:
    """A file:// log, made as runc's shim makes it (directories 0755, the file 0644)."""
    path = _uri_path(uri)
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644))
    return path


def _logger_args(uri: str) -> tuple[str, list[str]]:
    """binary:///path?key=value&flag: the logger's path and arguments (runc's shim:
    each query key, then its first value)."""
    from urllib.parse import parse_qsl, urlsplit
    parts = urlsplit(uri)
    first: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        first.setdefault(key, value)
    return _uri_path(uri), [word for pair in first.items() for word in pair]


def _above_stdio(fd: int) -> int:
    """`fd` moved above 5, so that placing fds 3-5 of a new process cannot overwrite it."""
    if fd > 5:
        return fd
    import fcntl
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 6)
    os.close(fd)
    return moved


class StdinPump:
    """Copies containerd's stdin FIFO into the container's stdin (a pipe, or the pty
    master) until CloseIO, or until the FIFO's writers are gone (as runc's shim: `echo x |
    ctr run ... cat` ends). Opened read-only and non-blocking: a FIFO that no writer has
    opened yet is merely not ready (Linux reports a hang-up only after one came)."""

    def __init__(self, fifo_path: str):
        self.fifo = os.open(fifo_path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        self.read_end, self.target = os.pipe2(os.O_CLOEXEC)
        self.closing = threading.Event()
        # close() writes here so the copy ends at once: Delete waits for it, and a select
        # timeout would add up to its length to every Delete of a task with stdin
        self.wake_read, self.wake_write = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self.wake_lock = threading.Lock()  # a closed wake fd's number may be reused
        self.thread = threading.Thread(target=self._run, daemon=True)

    def redirect(self, target: int) -> None:
        """Write to `target` (a pty master, owned by the caller) instead of the pipe."""
        os.close(self.read_end)
        os.close(self.target)
        self.read_end = -1
        self.target = target

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        try:
            while True:
                ready, _, _ = select.select([self.fifo, self.wake_read], [], [])
                if self.fifo in ready:
                    try:
                        data = os.read(self.fifo, 65536)
                    except BlockingIOError:
                        data = None
                    if data:
                        self._write(data)
                        continue
                    if data == b"":  # the last writer closed it
                        return
                if self.closing.is_set():
                    return
        except OSError:
            return
        finally:
            os.close(self.fifo)
            self.close_wake()
            if self.read_end == -1:
                return
            os.close(self.target)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.target, view):]

    def close(self) -> None:
        """Stdin ends once what containerd wrote is copied."""
        self.closing.set()
        with self.wake_lock:
            if self.wake_write >= 0:
                try:
                    os.write(self.wake_write, b"x")
                except BlockingIOError:  # woken already
                    pass

    def close_wake(self) -> None:
        with self.wake_lock:
            if self.wake_write >= 0:
                os.close(self.wake_read)
                os.close(self.wake_write)
                self.wake_read = self.wake_write = -1


# --------------------------------------------------------------------------- processes
class SpawnGate:
    """Counts the spawns and hook runs in progress (`with gate:`); `with gate.quiet():`
    waits until there are none and keeps new ones out meanwhile."""

    def __init__(self):
        self.condition = threading.Condition()
        self.active = 0

    def __enter__(self):
        with self.condition:
            self.active += 1
        return self

    def __exit__(self, *exc) -> None:
        with self.condition:
            self.active -= 1
            if not self.active:
                self.condition.notify_all()

    @contextlib.contextmanager
    def quiet(self):
        with self.condition:
            self.condition.wait_for(lambda: not self.active)
            yield


class Process:
    """The init of a task, or one of its exec'd processes."""

    def __init__(self, task: "Task", exec_id: str, stdin: str, stdout: str, stderr: str,
                 terminal: bool, spec=None):
        self.task = task
        self.exec_id = exec_id
        self.stdin, self.stdout, self.stderr, self.terminal = stdin, stdout, stderr, terminal
        self.spec = spec  # an exec's process (JSON bytes), until it starts
        self.pid = 0
        self.exit_status = 0
        self.exited_at = 0
        self.exited = threading.Event()
        self.waited = ttrpc.Deferred()  # Wait's reply, resolved at the exit
        self.started = False
        self.pump: StdinPump | None = None
        self.master = -1
        # a copy of its output into containerd's FIFO or file (a pty's; IoUid's pipes): set
        # when it reaches the end
        self.copies: list[threading.Event] = []
        self.logger = -1  # a pidfd of its binary:// logging process

    def copies_done(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for copied in self.copies:
            copied.wait(max(0.0, deadline - time.monotonic()))

    def timestamp(self, field) -> None:
        """Its exit time, or Go's zero time until it exits (as runc's shim)."""
        if self.exited_at:
            field.FromNanoseconds(self.exited_at)
        else:
            field.seconds = GO_ZERO_SECONDS


class Task:
    def __init__(self, container_id: str, bundle: str, namespace: str, options, g: operations.Globals):
        self.id = container_id
        self.bundle = bundle
        self.namespace = namespace
        self.options = options  # its RuncOptions (pyrunc/shim/options.py)
        self.globals = g  # pyrunc's global flags for it: --root, --systemd-cgroup, --criu
        self.init: Process | None = None
        self.execs: dict[str, Process] = {}
        self.oom_watch = None
        self.rootfs_mounted = False
        self.group = ""  # the socket it was created through


def _release_io(proc: Process) -> None:
    """Stop the stdin copy, close the pty master and end the logger of a process being
    deleted."""
    if proc.pump is not None:
        proc.pump.close()
        if proc.pump.thread.is_alive():
            proc.pump.thread.join(1)
    proc.copies_done(IO_DRAIN_TIMEOUT)
    if proc.master >= 0:
        os.close(proc.master)
        proc.master = -1
    _stop_logger(proc)


def _stop_logger(proc: Process) -> None:
    """As runc's shim ends a binary:// logger: SIGTERM, so that it can flush, and SIGKILL
    when it has not exited 12 s later. It is this process's child; the reaper reaps it."""
    pidfd, proc.logger = proc.logger, -1
    if pidfd < 0:
        return
    try:
        signal.pidfd_send_signal(pidfd, signal.SIGTERM)
        if not select.select([pidfd], [], [], LOGGER_TERM_TIMEOUT)[0]:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    except ProcessLookupError:  # exited and reaped already
        pass
    finally:
        os.close(pidfd)


def _shares_pid_namespace(bundle: str) -> bool:
    """runc's shim's shouldKillAllOnExit: the container has no pid namespace of its own
    (none in its config, or one joined by path); False when its config is unreadable."""
    try:
        with open(os.path.join(bundle, "config.json"), "rb") as f:
            config = json.load(f)
    except (OSError, ValueError):
        return False
    namespaces = (config.get("linux") or {}).get("namespaces") or []
    return not any(ns.get("type") == "pid" and not ns.get("path") for ns in namespaces)


def _exit_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


class Service:
    def __init__(self, namespace: str, work_dir: str):
        self.namespace = namespace
        self.shim_cgroup = ""  # the ShimCgroup this process joined (under lock)
        self.work_dir = work_dir
        os.makedirs(self.work_dir, mode=0o700, exist_ok=True)
        self.tasks: dict[str, Task] = {}
        self.lock = threading.Lock()  # tasks, by_pid
        # Entered while pyrunc spawns or runs hooks (any number at once: the groups' creates,
        # starts and deletes): the reaper leaves unknown children to their owner until none
        # is in progress, and a new process is registered before it can be reaped.
        self.spawning = SpawnGate()
        # Held while this process's fds 0-2 are a new process's stdio, around the clone
        # alone (_clone_stdio): the one thing spawns must do one at a time
        self.stdio_lock = threading.Lock()
        self.stdio = threading.local()  # .fds: the stdio of this thread's spawn
        self.by_pid: dict[int, Process] = {}
        self.children = threading.Event()
        self.events: queue.Queue = queue.Queue()
        self.oom_lock = threading.Lock()  # checks and closes of the OOM watches
        self.groups: dict[str, ttrpc.Server] = {}  # socket path -> its server (under lock)
        self.null = os.open(os.devnull, os.O_RDWR)
        import itertools
        self.serial = itertools.count()
        # PYRUNC_SHIM_LOG=FILE: one line per request (time, method, ids, duration)
        log_path = os.environ.get("PYRUNC_SHIM_LOG")
        self.log = open(log_path, "a") if log_path else None

    # ---------------------------------------------------------------- plumbing
    def start_threads(self) -> None:
        from pyrunc import initproc
        from pyrunc._native import set_subreaper
        set_subreaper()
        initproc.around_clone = self._clone_stdio
        for target in (self._reaper, self._publisher, self._oom_watcher):
            threading.Thread(target=target, daemon=True).start()

    def add_group(self, listener: socket.socket, socket_file: str) -> None:
        """Serve the group whose socket is `listener` (bound at `socket_file`)."""
        server = ttrpc.Server(listener, self.handlers(socket_file))
        with self.lock:
            self.groups[socket_file] = server
        threading.Thread(target=server.serve_forever, daemon=True).start()

    def serves(self, socket_file: str) -> bool:
        """The group at `socket_file` is served here (and not shutting down)."""
        with self.lock:
            return socket_file in self.groups

    def idle(self) -> bool:
        """No group left to serve and no `delete` or hook running: this process may end."""
        with self.lock:
            return not self.groups and not self.tasks and not self.spawning.active

    def handlers(self, group: str) -> dict:
        table = {
            "State": pb.StateRequest, "Create": pb.CreateTaskRequest, "Start": pb.StartRequest,
            "Delete": pb.DeleteRequest, "Pids": pb.PidsRequest, "Pause": pb.PauseRequest,
            "Resume": pb.ResumeRequest, "Checkpoint": pb.CheckpointTaskRequest, "Kill": pb.KillRequest,
            "Exec": pb.ExecProcessRequest, "ResizePty": pb.ResizePtyRequest, "CloseIO": pb.CloseIORequest,
            "Update": pb.UpdateTaskRequest, "Wait": pb.WaitRequest, "Stats": pb.StatsRequest,
            "Connect": pb.ConnectRequest, "Shutdown": pb.ShutdownRequest,
        }
        def method(name: str):
            function = getattr(self, name.lower())
            if name in ("Create", "Shutdown"):  # the two that concern the group
                return functools.partial(function, group=group)
            return function
        return {(TASK_SERVICE, name): (request, self._guarded(method(name)))
                for name, request in table.items()}

    def _guarded(self, method):
        def call(request):
            started = time.monotonic()
            try:
                return method(request)
            except ContainerNotExist as error:
                raise Error(ttrpc.NOT_FOUND, str(error)) from None
            except WrongState as error:
                raise Error(ttrpc.FAILED_PRECONDITION, str(error)) from None
            except PyruncError as error:
                raise Error(ttrpc.UNKNOWN, str(error)) from None
            finally:
                if self.log is not None:
                    self.log.write(f"{time.time():.6f} {getattr(method, 'func', method).__name__} "
                                   f"{getattr(request, 'id', '')} "
                                   f"{getattr(request, 'exec_id', '')} {1000 * (time.monotonic() - started):.1f} ms\n")
                    self.log.flush()
        return call

    def _join_shim_cgroup(self, path: str) -> None:
        """ShimCgroup: runc's shim puts its shim process in that cgroup. This process is the
        shim of every pod of the containerd namespace, so it joins the first ShimCgroup a
        task names (the usual setting names one cgroup for all the node's shims) and refuses
        another by name rather than move the other pods' shim there too."""
        with self.lock:
            if self.shim_cgroup == path:
                return
            if self.shim_cgroup:
                raise Error(ttrpc.FAILED_PRECONDITION,
                            f"ShimCgroup {path!r}: this shim process serves every task of namespace "
                            f"{self.namespace} and is in ShimCgroup {self.shim_cgroup!r} already")
            from pyrunc import cgroups
            # not undone by the migration warm-up's writes into this process's cgroup
            cgroups.move_self(lambda: _join_cgroup(path, os.getpid()))
            self.shim_cgroup = path

    def publish(self, topic: str, event) -> None:
        self.events.put((time.time_ns(), topic, event))

    def _publisher(self) -> None:
        address = os.environ.get("TTRPC_ADDRESS", "")
        client = ttrpc.Client(address) if address else None
        while True:
            stamp, topic, event = self.events.get()
            if client is None:
                continue
            request = pb.ForwardRequest()
            envelope = request.envelope
            envelope.timestamp.FromNanoseconds(stamp)
            envelope.namespace = self.namespace
            envelope.topic = topic
            envelope.event.type_url = "containerd.events." + type(event).__name__
            envelope.event.value = event.SerializeToString()
            for attempt in range(5):
                try:
                    client.call(EVENTS_SERVICE, "Forward", request)
                    if self.log is not None:
                        self.log.write(f"{time.time():.6f} published {topic} "
                                       f"{(time.time_ns() - stamp) / 1e6:.1f} ms after\n")
                        self.log.flush()
                    break
                except (OSError, Error):
                    time.sleep(0.1 * (attempt + 1))

    def task(self, container_id: str) -> Task:
        with self.lock:
            found = self.tasks.get(container_id)
        if found is None:
            raise Error(ttrpc.NOT_FOUND, f"task {container_id}: not found")
        return found

    def process(self, container_id: str, exec_id: str) -> Process:
        task = self.task(container_id)
        if not exec_id:
            return task.init
        found = task.execs.get(exec_id)
        if found is None:
            raise Error(ttrpc.NOT_FOUND, f"process {exec_id} of task {container_id}: not found")
        return found

    # ---------------------------------------------------------------- reaping
    def _reaper(self) -> None:
        while True:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOWAIT)
            except ChildProcessError:
                self.children.wait(1.0)
                self.children.clear()
                continue
            except InterruptedError:
                continue
            if info is None:
                continue
            with self.lock:
                proc = self.by_pid.get(info.si_pid)
            if proc is None:
                with self.spawning.quiet():  # a spawn in progress registers its pid before this
                    with self.lock:
                        proc = self.by_pid.get(info.si_pid)
                    if proc is None:  # an orphan reparented to this subreaper
                        try:
                            os.waitpid(info.si_pid, 0)
                        except ChildProcessError:
                            pass
                        continue
            try:
                _pid, status = os.waitpid(info.si_pid, 0)
                code = _exit_code(status)
            except ChildProcessError:
                # reaped by pyrunc's delete of a task that never started: it SIGKILLs it
                code = 128 + signal.SIGKILL
            with self.lock:
                self.by_pid.pop(info.si_pid, None)
            self._exited(proc, code)

    def _exited(self, proc: Process, code: int) -> None:
        if proc is proc.task.init and _shares_pid_namespace(proc.task.bundle):
            # as runc's shim (shouldKillAllOnExit): no pid namespace of its own, so its
            # processes do not die with it; they are killed before the exit is reported
            try:
                operations.kill(proc.task.globals, proc.task.id, signal.SIGKILL, all_processes=True)
            except Exception:  # the reaper goes on whatever happens
                pass
        proc.exit_status = code
        proc.exited_at = time.time_ns()
        if proc.pump is not None:
            proc.pump.close()
        if proc.copies:
            # its last output may still be in a pty master or pipe: publish the exit after it
            threading.Thread(target=self._publish_exit, args=(proc, True), daemon=True).start()
        else:
            self._publish_exit(proc, False)

    def _publish_exit(self, proc: Process, drain: bool) -> None:
        if drain:
            proc.copies_done(IO_DRAIN_TIMEOUT)
        if proc is proc.task.init:
            self._check_oom(proc.task)  # an OOM kill usually ends the init: say so first
        event = pb.TaskExit(container_id=proc.task.id, id=proc.exec_id or proc.task.id, pid=proc.pid,
                            exit_status=proc.exit_status)
        proc.timestamp(event.exited_at)
        self.publish("/tasks/exit", event)
        proc.exited.set()
        out = pb.WaitResponse(exit_status=proc.exit_status)
        proc.timestamp(out.exited_at)
        proc.waited.resolve(out)

    # ---------------------------------------------------------------- spawning
    def _spawn(self, proc: Process, run) -> None:
        """Run `run(console_socket)` (a pyrunc create or exec) with the process's stdio as
        fds 0-2 at its clone (_clone_stdio), which the new process inherits, and take the pty
        master. Other groups' spawns run meanwhile: only their clones take turns."""
        console_path = ""
        console = None
        stdio = []
        outputs = []  # stdout, stderr; -1 once handed over
        try:
            if proc.terminal:
                # short: sun_path holds 108 bytes and the work dir's name is a sha256
                console_path = os.path.join(self.work_dir, f"c{next(self.serial)}")
                console = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
                console.bind(console_path)
                console.listen(1)
            if proc.stdin:
                proc.pump = StdinPump(proc.stdin)
                uid, gid = proc.task.options.io_uid, proc.task.options.io_gid
                if (uid or gid) and not proc.terminal:
                    os.fchown(proc.pump.read_end, uid, gid)
            outputs = self._outputs(proc)
            if not proc.terminal:
                stdio = [proc.pump.read_end if proc.pump else self.null, *outputs]
            with self.spawning:
                self.stdio.fds = stdio
                try:
                    proc.pid = run(console_path)
                finally:
                    self.stdio.fds = ()
                if console is not None:
                    conn, _ = console.accept()
                    with conn:
                        _msg, fds, _flags, _addr = socket.recv_fds(conn, 4096, 1)
                    proc.master = fds[0]
                    # the terminal's output goes where stdout goes (runc's shim: its
                    # platform's CopyConsole, to the FIFO, file or logger)
                    self._copy(proc, proc.master, outputs[0], own_source=False)
                    outputs[0] = -1
                # known to the reaper only now, with its copy registered: a process that
                # exits at once (`tty; echo`) then has its exit published after its output
                # is drained, not before the copy existed (still the gate's: unreaped)
                with self.lock:
                    self.by_pid[proc.pid] = proc
            self.children.set()
            if proc.pump is not None:
                if proc.master >= 0:
                    proc.pump.redirect(proc.master)
                proc.pump.start()
        except BaseException:
            if proc.pump is not None and not proc.pump.thread.is_alive():
                for fd in (proc.pump.fifo, proc.pump.read_end, proc.pump.target):
                    if fd >= 0 and fd != proc.master:
                        os.close(fd)
                proc.pump.close_wake()
                proc.pump = None
            if not proc.pid:
                _stop_logger(proc)
            raise
        finally:
            for fd in outputs:  # the container has them now (or a copy thread does)
                if fd >= 0:
                    os.close(fd)
            if proc.pump is not None and proc.pump.read_end >= 0:
                os.close(proc.pump.read_end)
                proc.pump.read_end = -2  # the container has it now
            if console is not None:
                console.close()
                os.unlink(console_path)

    def _outputs(self, proc: Process) -> list[int]:
        """The process's stdout and stderr as runc's shim makes them (pkg/process/io.go),
        the stdout URI's scheme deciding for both: containerd's FIFOs; a file:// log (both
        streams into the stdout URI's file); a binary:// logging process. With IoUid/IoGid
        set they are pipes owned by that user, copied to their FIFO or file, so that a
        container whose root is that user may reopen them (/dev/stdout), as runc's."""
        scheme = _stdio_scheme(proc.stdout)
        if scheme == "binary":
            return self._start_logger(proc)
        targets = [_log_file(proc.stdout)] * 2 if scheme == "file" else [proc.stdout, proc.stderr]
        outputs = []
        try:
            for target in targets:
                outputs.append(_open_output(target))
            uid, gid = proc.task.options.io_uid, proc.task.options.io_gid
            if (uid or gid) and not proc.terminal:
                for i, target in enumerate(targets):
                    if target:
                        read_end, write_end = os.pipe2(os.O_CLOEXEC)
                        try:
                            os.fchown(write_end, uid, gid)
                        except OSError:
                            os.close(read_end)
                            os.close(write_end)
                            raise
                        self._copy(proc, read_end, outputs[i], own_source=True)
                        outputs[i] = write_end
        except BaseException:
            for fd in outputs:
                os.close(fd)
            raise
        return outputs

    def _start_logger(self, proc: Process) -> list[int]:
        """binary:///path?args: runc's shim's logging process (pkg/process/io.go
        NewBinaryIO): the process's stdout and stderr are pipes whose read ends are the
        logger's fds 3 and 4; it writes (or closes) fd 5 when ready; its environment is
        CONTAINER_ID and CONTAINER_NAMESPACE alone. A child of this process, ended by
        Delete (_stop_logger)."""
        path, args = _logger_args(proc.stdout)
        out_read, out_write = os.pipe2(os.O_CLOEXEC)
        err_read, err_write = os.pipe2(os.O_CLOEXEC)
        ready_read, ready_write = os.pipe2(os.O_CLOEXEC)
        for_logger = [_above_stdio(fd) for fd in (out_read, err_read, ready_write)]
        actions = [(os.POSIX_SPAWN_OPEN, fd, os.devnull, flags, 0)
                   for fd, flags in ((0, os.O_RDONLY), (1, os.O_WRONLY), (2, os.O_WRONLY))]
        actions += [(os.POSIX_SPAWN_DUP2, fd, 3 + i) for i, fd in enumerate(for_logger)]
        try:
            with self.spawning:  # the reaper leaves it alone until its pidfd is open
                pid = os.posix_spawn(path, [path, *args], {"CONTAINER_ID": proc.task.id,
                                                           "CONTAINER_NAMESPACE": self.namespace},
                                     file_actions=actions)
                proc.logger = os.pidfd_open(pid)
            self.children.set()
        except OSError as error:
            for fd in (out_write, err_write, ready_read):
                os.close(fd)
            raise Error(ttrpc.UNKNOWN, f"stdout {proc.stdout!r}: failed to start binary process: "
                                       f"{error.strerror.lower()}") from None
        finally:
            for fd in for_logger:
                os.close(fd)
        try:
            os.read(ready_read, 1)  # its first byte, or EOF when it closed fd 5 or exited
        finally:
            os.close(ready_read)
        return [out_write, err_write]

    @contextlib.contextmanager
    def _clone_stdio(self):
        """Around each clone of pyrunc's spawns (initproc.around_clone): the stdio of the
        spawning thread's process as fds 0-2, /dev/null for its hooks and anyone else."""
        stdio = getattr(self.stdio, "fds", ())
        with self.stdio_lock:
            for fd, source in enumerate(stdio):
                os.dup2(source, fd)
            try:
                yield
            finally:
                for fd in range(len(stdio)):
                    os.dup2(self.null, fd)

    def _copy(self, proc: Process, source: int, target: int, own_source: bool) -> None:
        """Copy `source` (a pty master, a pipe) to `target` (containerd's FIFO or file, a
        logger's pipe) until its end, on a thread; `target` is the thread's to close,
        `source` too when `own_source`."""
        copied = threading.Event()
        proc.copies.append(copied)

        def copy() -> None:
            try:
                while True:
                    try:
                        data = os.read(source, 65536)
                    except OSError:  # a pty's EIO: every slave end is closed
                        return
                    if not data:
                        return
                    view = memoryview(data)
                    while view:
                        view = view[os.write(target, view):]
            except OSError:
                return
            finally:
                os.close(target)
                if own_source:
                    os.close(source)
                copied.set()
        threading.Thread(target=copy, daemon=True).start()

    # ---------------------------------------------------------------- the Task service
    def create(self, r: pb.CreateTaskRequest, group: str = "") -> pb.CreateTaskResponse:
        if r.checkpoint or r.parent_checkpoint:
            raise Error(ttrpc.UNIMPLEMENTED, "checkpoint/restore is not supported by pyrunc's shim")
        from pyrunc.state import validate_id
        try:
            validate_id(r.id)
        except PyruncError as error:
            raise Error(ttrpc.INVALID_ARGUMENT, str(error)) from None
        try:
            options = runtime_options.from_any(r.options)
        except runtime_options.OptionsError as error:
            raise Error(ttrpc.INVALID_ARGUMENT, str(error)) from None
        from pyrunc import cgroups
        cgroups.warm_up_migration()  # its grace period passes while the rootfs is mounted
        g = operations.Globals(root=runtime_options.state_root(options, self.namespace),
                               systemd_cgroup=options.systemd_cgroup, criu=options.criu_path or "criu")
        task = Task(r.id, r.bundle, self.namespace, options, g)
        task.group = group
        with self.lock:
            if r.id in self.tasks:
                raise Error(ttrpc.ALREADY_EXISTS, f"task {r.id}: already exists")
            self.tasks[r.id] = task
        try:
            if options.shim_cgroup:
                self._join_shim_cgroup(options.shim_cgroup)
            runtime_options.write(r.bundle, options)  # for `delete` after a crash: Root
            if r.rootfs:
                mount_rootfs(r.bundle, r.rootfs)
                task.rootfs_mounted = True
            task.init = Process(task, "", r.stdin, r.stdout, r.stderr, r.terminal)

            def run(console_socket: str) -> int:
                operations.create(g, r.id, r.bundle, console_socket=console_socket,
                                  no_pivot=options.no_pivot_root, no_new_keyring=options.no_new_keyring)
                return operations.state(g, r.id)["pid"]
            try:
                self._spawn(task.init, run)
            except PyruncError as error:
                raise Error(ttrpc.INVALID_ARGUMENT if "config.json" in str(error) else ttrpc.UNKNOWN,
                            str(error)) from None
        except BaseException:
            if task.rootfs_mounted:
                unmount_rootfs(r.bundle)
            with self.lock:
                del self.tasks[r.id]
            raise
        self._watch_oom(task)
        event = pb.TaskCreate(container_id=r.id, bundle=r.bundle, pid=task.init.pid,
                              checkpoint=r.checkpoint)
        event.rootfs.extend(r.rootfs)
        event.io.stdin, event.io.stdout, event.io.stderr = r.stdin, r.stdout, r.stderr
        event.io.terminal = r.terminal
        self.publish("/tasks/create", event)
        return pb.CreateTaskResponse(pid=task.init.pid)

    def start(self, r: pb.StartRequest) -> pb.StartResponse:
        proc = self.process(r.id, r.exec_id)
        if proc.started:
            raise Error(ttrpc.FAILED_PRECONDITION, f"process {r.exec_id or r.id}: already started")
        g = proc.task.globals
        if not r.exec_id:
            with self.spawning:  # start hooks are pyrunc's children
                operations.start(g, r.id)
            proc.started = True
            self.publish("/tasks/start", pb.TaskStart(container_id=r.id, pid=proc.pid))
            return pb.StartResponse(pid=proc.pid)
        spec_file = os.path.join(self.work_dir, f"exec-{next(self.serial)}.json")
        pid_file = spec_file[:-5] + ".pid"

        def run(console_socket: str) -> int:
            with open(spec_file, "wb") as f:
                f.write(proc.spec)
            try:
                operations.exec_process(g, r.id, process_file=spec_file, detach=True,
                                        pid_file=pid_file, console_socket=console_socket)
                with open(pid_file) as f:
                    return int(f.read())
            finally:
                for path in (spec_file, pid_file):
                    try:
                        os.unlink(path)
                    except FileNotFoundError:
                        pass
        self._spawn(proc, run)
        proc.started = True
        self.publish("/tasks/exec-started", pb.TaskExecStarted(container_id=r.id, exec_id=r.exec_id,
                                                               pid=proc.pid))
        return pb.StartResponse(pid=proc.pid)

    def exec(self, r: pb.ExecProcessRequest) -> pb.Empty:
        task = self.task(r.id)
        if task.init.exited.is_set():
            raise Error(ttrpc.FAILED_PRECONDITION, f"task {r.id}: cannot exec in a stopped container")
        if r.exec_id in task.execs:
            raise Error(ttrpc.ALREADY_EXISTS, f"exec process {r.exec_id}: already exists")
        try:
            json.loads(r.spec.value)
        except ValueError as error:
            raise Error(ttrpc.INVALID_ARGUMENT, f"exec process spec: invalid JSON: {error}") from None
        task.execs[r.exec_id] = Process(task, r.exec_id, r.stdin, r.stdout, r.stderr, r.terminal,
                                        spec=r.spec.value)
        self.publish("/tasks/exec-added", pb.TaskExecAdded(container_id=r.id, exec_id=r.exec_id))
        return pb.Empty()

    def state(self, r: pb.StateRequest) -> pb.StateResponse:
        proc = self.process(r.id, r.exec_id)
        # as runc's shim: the process's id (the exec id, or the task's), exec_id unset
        out = pb.StateResponse(id=r.exec_id or r.id, bundle=proc.task.bundle, pid=proc.pid, stdin=proc.stdin,
                               stdout=proc.stdout, stderr=proc.stderr, terminal=proc.terminal,
                               exit_status=proc.exit_status)
        proc.timestamp(out.exited_at)
        if proc.exited.is_set():
            out.status = pb.STOPPED
            return out
        status = operations.state(proc.task.globals, r.id)["status"]
        if r.exec_id and status not in ("paused", "pausing"):
            # a paused (or pausing) container's processes are too, its exec'd ones included
            out.status = pb.RUNNING if proc.started else pb.CREATED
            return out
        out.status = {"created": pb.CREATED, "running": pb.RUNNING, "paused": pb.PAUSED,
                      "pausing": pb.PAUSING}.get(status, pb.STOPPED if status == "stopped" else pb.UNKNOWN)
        if out.status == pb.STOPPED:  # exited, not reaped yet
            out.status = pb.RUNNING
        return out

    def delete(self, r: pb.DeleteRequest) -> pb.DeleteResponse:
        task = self.task(r.id)
        proc = self.process(r.id, r.exec_id)
        if r.exec_id:
            if proc.started and not proc.exited.is_set():
                raise Error(ttrpc.FAILED_PRECONDITION, f"exec process {r.exec_id}: still running")
            del task.execs[r.exec_id]
            _release_io(proc)
            out = pb.DeleteResponse(pid=proc.pid, exit_status=proc.exit_status)
            proc.timestamp(out.exited_at)
            return out
        with self.spawning:  # poststop hooks are pyrunc's children
            operations.delete(task.globals, r.id, force=proc.started is False)
        if not proc.exited.is_set():
            # a created task deleted before start: its init was killed, the reaper got it
            proc.exited.wait(5)
        for process in (proc, *task.execs.values()):
            _release_io(process)
        self._check_oom(task, close=True)
        if task.rootfs_mounted:
            unmount_rootfs(task.bundle)
        with self.lock:
            self.tasks.pop(r.id, None)
        event = pb.TaskDelete(container_id=r.id, pid=proc.pid, exit_status=proc.exit_status, id=r.id)
        proc.timestamp(event.exited_at)
        self.publish("/tasks/delete", event)
        out = pb.DeleteResponse(pid=proc.pid, exit_status=proc.exit_status)
        proc.timestamp(out.exited_at)
        return out

    def kill(self, r: pb.KillRequest) -> pb.Empty:
        proc = self.process(r.id, r.exec_id)
        if not proc.pid:  # an exec not started (runc's shim: errdefs.ErrFailedPrecondition)
            raise Error(ttrpc.FAILED_PRECONDITION, f"process {r.exec_id}: process not created")
        if proc.exited.is_set() and (r.exec_id or not r.all):
            # (runc's shim runs `runc kill --all` for an exited init too: what is left of
            # its processes in its cgroup)
            raise Error(ttrpc.NOT_FOUND, f"process {r.exec_id or r.id}: process already finished")
        if r.exec_id:
            try:
                pidfd = os.pidfd_open(proc.pid)
            except ProcessLookupError:
                raise Error(ttrpc.NOT_FOUND, f"process {r.exec_id}: process already finished") from None
            try:
                signal.pidfd_send_signal(pidfd, r.signal)
            finally:
                os.close(pidfd)
        else:
            operations.kill(proc.task.globals, r.id, r.signal, all_processes=r.all)
        return pb.Empty()

    def pids(self, r: pb.PidsRequest) -> pb.PidsResponse:
        task = self.task(r.id)
        # as runc's shim: an exec'd process is named by a containerd.runc.v1.ProcessDetails
        exec_ids = {p.pid: p.exec_id for p in list(task.execs.values()) if p.pid}
        out = pb.PidsResponse()
        for pid in operations.ps_pids(task.globals, r.id):
            info = out.processes.add(pid=pid)
            if pid in exec_ids:
                info.info.type_url = runtime_options.PROCESS_DETAILS
                info.info.value = pb.ProcessDetails(exec_id=exec_ids[pid]).SerializeToString()
        return out

    def pause(self, r: pb.PauseRequest) -> pb.Empty:
        operations.pause(self.task(r.id).globals, r.id)
        self.publish("/tasks/paused", pb.TaskPaused(container_id=r.id))
        return pb.Empty()

    def resume(self, r: pb.ResumeRequest) -> pb.Empty:
        operations.resume(self.task(r.id).globals, r.id)
        self.publish("/tasks/resumed", pb.TaskResumed(container_id=r.id))
        return pb.Empty()

    def checkpoint(self, r: pb.CheckpointTaskRequest) -> pb.Empty:
        raise Error(ttrpc.UNIMPLEMENTED, "checkpoint/restore is not supported by pyrunc's shim")

    def resizepty(self, r: pb.ResizePtyRequest) -> pb.Empty:
        proc = self.process(r.id, r.exec_id)
        if proc.master < 0:
            return pb.Empty()  # as runc's shim: nothing to resize without a terminal
        import fcntl
        import struct
        import termios
        fcntl.ioctl(proc.master, termios.TIOCSWINSZ, struct.pack("HHHH", r.height, r.width, 0, 0))
        return pb.Empty()

    def closeio(self, r: pb.CloseIORequest) -> pb.Empty:
        proc = self.process(r.id, r.exec_id)
        if r.stdin and proc.pump is not None:
            proc.pump.close()
        return pb.Empty()

    def update(self, r: pb.UpdateTaskRequest) -> pb.Empty:
        task = self.task(r.id)
        try:
            resources = json.loads(r.resources.value or b"{}")
        except ValueError as error:
            raise Error(ttrpc.INVALID_ARGUMENT, f"resources: invalid JSON: {error}") from None
        operations.update(task.globals, r.id, resources)
        return pb.Empty()

    def wait(self, r: pb.WaitRequest) -> ttrpc.Deferred:
        # answered at the exit, with no thread blocked meanwhile (≈ 20 kB each: a task
        # has one Wait outstanding all its life)
        return self.process(r.id, r.exec_id).waited

    def stats(self, r: pb.StatsRequest) -> pb.StatsResponse:
        task = self.task(r.id)
        from pyrunc.shim.metrics import metrics_any
        data = next(operations.events(task.globals, r.id, stats=True))["data"]
        out = pb.StatsResponse()
        metrics_any(data, out.stats)
        return out

    def connect(self, r: pb.ConnectRequest) -> pb.ConnectResponse:
        # as runc's shim: the shim's pid always, the task's when there is one
        with self.lock:
            task = self.tasks.get(r.id)
        return pb.ConnectResponse(shim_pid=os.getpid(), task_pid=task.init.pid if task else 0)

    def shutdown(self, r: pb.ShutdownRequest, group: str = "") -> pb.Empty:
        with self.lock:
            if not r.now and any(t.group == group for t in self.tasks.values()):
                return pb.Empty()  # the group's other containers still run here
            server = self.groups.pop(group, None)
        if server is not None:
            server.closing = True
            # after the reply is written: stop listening and remove the group's socket
            threading.Thread(target=self._close_group, args=(server, group), daemon=True).start()
        return pb.Empty()

    @staticmethod
    def _close_group(server: ttrpc.Server, socket_file: str) -> None:
        time.sleep(0.01)
        try:
            os.unlink(socket_file)
        except FileNotFoundError:
            pass
        try:
            server.listener.shutdown(socket.SHUT_RDWR)  # wakes its accept()
        except OSError:
            pass
        server.listener.close()

    def remove_work_dir(self) -> None:
        shutil.rmtree(self.work_dir, ignore_errors=True)

    def remove_group_sockets(self) -> None:
        with self.lock:
            sockets = list(self.groups)
        for socket_file in sockets:
            try:
                os.unlink(socket_file)
            except FileNotFoundError:
                pass

    # ---------------------------------------------------------------- OOM
    def _watch_oom(self, task: Task) -> None:
        cgroup = _cgroup_state(task.globals, task.id)
        if not cgroup:
            return
        from pyrunc.cgroups import Manager
        try:
            task.oom_watch = Manager.from_state(cgroup).oom_watch()
        except OSError:
            return

    def _check_oom(self, task: Task, close: bool = False) -> None:
        with self.oom_lock:
            watch = task.oom_watch
            if watch is None:
                return
            try:
                if watch.check():
                    self.publish("/tasks/oom", pb.TaskOOM(container_id=task.id))
            except OSError:
                pass
            if close:
                watch.close()
                task.oom_watch = None

    def _oom_watcher(self) -> None:
        while True:
            with self.lock:
                watched = [t for t in self.tasks.values() if t.oom_watch is not None]
            with self.oom_lock:
                fds = [t.oom_watch.fileno() for t in watched
                       if t.oom_watch is not None and t.oom_watch.fileno() >= 0]
            try:
                select.select(fds, [], [], 0.5)
            except (OSError, ValueError):  # a watch closed meanwhile
                time.sleep(0.05)
            for task in watched:
                self._check_oom(task)


def _join_cgroup(path: str, pid: int) -> None:
    """Move `pid` into the cgroup `path` as runc's shim moves itself into its ShimCgroup:
    cgroup2's, or each cgroup v1 hierarchy's where the path exists."""
    from pyrunc.cgroups import fs
    relative = path.lstrip("/")
    if fs.mode() == "unified":
        dirs = [os.path.join("/sys/fs/cgroup", relative)]
    else:
        dirs = sorted({os.path.join(mountpoint, relative)
                       for fstype, mountpoint, _root, _options in fs.cgroup_mounts() if fstype == "cgroup"})
    found = [d for d in dirs if os.path.isdir(d)]
    if not found:
        raise Error(ttrpc.INVALID_ARGUMENT, f"ShimCgroup {path!r}: failed to load cgroup: no such cgroup")
    for directory in found:
        try:
            fs.write(os.path.join(directory, "cgroup.procs"), str(pid))
        except OSError as error:
            raise Error(ttrpc.UNKNOWN, f"ShimCgroup {path!r}: failed to join cgroup {directory}: "
                                       f"{fs.describe(error)}") from None


def _cgroup_state(g, container_id: str):
    from pyrunc.state import Container
    return Container.load(g.root, container_id, lock=False).state.cgroup
