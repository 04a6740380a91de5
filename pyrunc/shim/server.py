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
from pyrunc.shim import shim_pb2 as pb
from pyrunc.shim import ttrpc
from pyrunc.shim.ttrpc import Error

TASK_SERVICE = "containerd.task.v2.Task"
EVENTS_SERVICE = "containerd.services.events.ttrpc.v1.Events"
METRICS_V1 = "io.containerd.cgroups.v1.Metrics"
METRICS_V2 = "io.containerd.cgroups.v2.Metrics"
# how long a process's exit waits for its terminal output to be copied out
IO_DRAIN_TIMEOUT = 5.0


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
def _open_output(uri: str, what: str) -> int:
    """The container's stdout/stderr: a FIFO containerd reads (handed over as it is, so
    nothing is lost at exit: there is no copy to drain), a file:// log, or nothing."""
    if not uri:
        return os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
    if "://" not in uri:
        # O_RDWR: opening a FIFO write-only blocks until a reader comes
        return os.open(uri, os.O_RDWR | os.O_CLOEXEC)
    scheme, _, rest = uri.partition("://")
    if scheme == "file":
        from urllib.parse import unquote, urlsplit
        path = unquote(urlsplit(uri).path)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
    raise Error(ttrpc.UNIMPLEMENTED, f"{what} {uri!r}: only FIFO paths and file:// URIs are supported "
                                     f"(no {scheme}:// logging in pyrunc's shim)")


class StdinPump:
    """Copies containerd's stdin FIFO into the container's stdin (a pipe, or the pty
    master) until CloseIO: the shim holds the FIFO open read-write, so a client that
    detaches and re-attaches never sends the container a premature EOF."""

    def __init__(self, fifo_path: str):
        self.fifo = os.open(fifo_path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
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
        self.output_copied: threading.Event | None = None

    def timestamp(self, field) -> None:
        if self.exited_at:
            field.FromNanoseconds(self.exited_at)


class Task:
    def __init__(self, container_id: str, bundle: str, namespace: str):
        self.id = container_id
        self.bundle = bundle
        self.namespace = namespace
        self.init: Process | None = None
        self.execs: dict[str, Process] = {}
        self.oom_watch = None
        self.rootfs_mounted = False
        self.group = ""  # the socket it was created through


def _release_io(proc: Process) -> None:
    """Stop the stdin copy and close the pty master of a process being deleted."""
    if proc.pump is not None:
        proc.pump.close()
        if proc.pump.thread.is_alive():
            proc.pump.thread.join(1)
    if proc.master >= 0:
        if proc.output_copied is not None:
            proc.output_copied.wait(IO_DRAIN_TIMEOUT)
        os.close(proc.master)
        proc.master = -1


def _exit_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


class Service:
    def __init__(self, namespace: str, work_dir: str):
        self.namespace = namespace
        self.globals = operations.Globals(root=os.path.join("/run/containerd/runc", namespace))
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
        """No group left to serve: this process may end."""
        with self.lock:
            return not self.groups and not self.tasks

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
        proc.exit_status = code
        proc.exited_at = time.time_ns()
        if proc.pump is not None:
            proc.pump.close()
        if proc.output_copied is not None:
            # a pty's last output is still in the master: publish the exit after it
            threading.Thread(target=self._publish_exit, args=(proc, True), daemon=True).start()
        else:
            self._publish_exit(proc, False)

    def _publish_exit(self, proc: Process, drain: bool) -> None:
        if drain:
            proc.output_copied.wait(IO_DRAIN_TIMEOUT)
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
        try:
            if proc.terminal:
                # short: sun_path holds 108 bytes and the work dir's name is a sha256
                console_path = os.path.join(self.work_dir, f"c{next(self.serial)}")
                console = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
                console.bind(console_path)
                console.listen(1)
            if proc.stdin:
                proc.pump = StdinPump(proc.stdin)
            if not proc.terminal:
                stdio = [proc.pump.read_end if proc.pump else self.null,
                         _open_output(proc.stdout, "stdout"), _open_output(proc.stderr, "stderr")]
            with self.spawning:
                self.stdio.fds = stdio
                try:
                    proc.pid = run(console_path)
                finally:
                    self.stdio.fds = ()
                with self.lock:
                    self.by_pid[proc.pid] = proc
            self.children.set()
            if console is not None:
                conn, _ = console.accept()
                with conn:
                    _msg, fds, _flags, _addr = socket.recv_fds(conn, 4096, 1)
                proc.master = fds[0]
                self._copy_console(proc)
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
            raise
        finally:
            for fd in stdio[1:]:
                os.close(fd)
            if proc.pump is not None and proc.pump.read_end >= 0:
                os.close(proc.pump.read_end)
                proc.pump.read_end = -2  # the container has it now
            if console is not None:
                console.close()
                os.unlink(console_path)

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

    def _copy_console(self, proc: Process) -> None:
        out = _open_output(proc.stdout, "stdout")
        proc.output_copied = threading.Event()

        def copy() -> None:
            try:
                while True:
                    try:
                        data = os.read(proc.master, 65536)
                    except OSError:  # EIO: every slave end is closed
                        return
                    if not data:
                        return
                    view = memoryview(data)
                    while view:
                        view = view[os.write(out, view):]
            except OSError:
                return
            finally:
                os.close(out)
                proc.output_copied.set()
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
        from pyrunc import cgroups
        cgroups.warm_up_migration()  # its grace period passes while the rootfs is mounted
        task = Task(r.id, r.bundle, self.namespace)
        task.group = group
        with self.lock:
            if r.id in self.tasks:
                raise Error(ttrpc.ALREADY_EXISTS, f"task {r.id}: already exists")
            self.tasks[r.id] = task
        try:
            if r.rootfs:
                mount_rootfs(r.bundle, r.rootfs)
                task.rootfs_mounted = True
            task.init = Process(task, "", r.stdin, r.stdout, r.stderr, r.terminal)

            def run(console_socket: str) -> int:
                operations.create(self.globals, r.id, r.bundle, console_socket=console_socket)
                return operations.state(self.globals, r.id)["pid"]
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
        if not r.exec_id:
            with self.spawning:  # start hooks are pyrunc's children
                operations.start(self.globals, r.id)
            proc.started = True
            self.publish("/tasks/start", pb.TaskStart(container_id=r.id, pid=proc.pid))
            return pb.StartResponse(pid=proc.pid)
        spec_file = os.path.join(self.work_dir, f"exec-{next(self.serial)}.json")
        pid_file = spec_file[:-5] + ".pid"

        def run(console_socket: str) -> int:
            with open(spec_file, "wb") as f:
                f.write(proc.spec)
            try:
                operations.exec_process(self.globals, r.id, process_file=spec_file, detach=True,
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
        out = pb.StateResponse(id=r.exec_id or r.id, exec_id=r.exec_id, bundle=proc.task.bundle,
                               pid=proc.pid, stdin=proc.stdin, stdout=proc.stdout, stderr=proc.stderr,
                               terminal=proc.terminal)
        if proc.exited.is_set():
            out.status = pb.STOPPED
            out.exit_status = proc.exit_status
            proc.timestamp(out.exited_at)
        elif r.exec_id:
            out.status = pb.RUNNING if proc.started else pb.CREATED
        else:
            status = operations.state(self.globals, r.id)["status"]
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
            operations.delete(self.globals, r.id, force=proc.started is False)
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
        if proc.exited.is_set() or not proc.pid:
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
            operations.kill(self.globals, r.id, r.signal, all_processes=r.all)
        return pb.Empty()

    def pids(self, r: pb.PidsRequest) -> pb.PidsResponse:
        self.task(r.id)
        out = pb.PidsResponse()
        for pid in operations.ps_pids(self.globals, r.id):
            out.processes.add(pid=pid)
        return out

    def pause(self, r: pb.PauseRequest) -> pb.Empty:
        self.task(r.id)
        operations.pause(self.globals, r.id)
        self.publish("/tasks/paused", pb.TaskPaused(container_id=r.id))
        return pb.Empty()

    def resume(self, r: pb.ResumeRequest) -> pb.Empty:
        self.task(r.id)
        operations.resume(self.globals, r.id)
        self.publish("/tasks/resumed", pb.TaskResumed(container_id=r.id))
        return pb.Empty()

    def checkpoint(self, r: pb.CheckpointTaskRequest) -> pb.Empty:
        raise Error(ttrpc.UNIMPLEMENTED, "checkpoint/restore is not supported by pyrunc's shim")

    def resizepty(self, r: pb.ResizePtyRequest) -> pb.Empty:
        proc = self.process(r.id, r.exec_id)
        if proc.master < 0:
            raise Error(ttrpc.FAILED_PRECONDITION, f"process {r.exec_id or r.id}: no terminal")
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
        self.task(r.id)
        try:
            resources = json.loads(r.resources.value or b"{}")
        except ValueError as error:
            raise Error(ttrpc.INVALID_ARGUMENT, f"resources: invalid JSON: {error}") from None
        operations.update(self.globals, r.id, resources)
        return pb.Empty()

    def wait(self, r: pb.WaitRequest) -> ttrpc.Deferred:
        # answered at the exit, with no thread blocked meanwhile (≈ 20 kB each: a task
        # has one Wait outstanding all its life)
        return self.process(r.id, r.exec_id).waited

    def stats(self, r: pb.StatsRequest) -> pb.StatsResponse:
        self.task(r.id)
        from pyrunc.shim.metrics import metrics_any
        data = next(operations.events(self.globals, r.id, stats=True))["data"]
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

    # ---------------------------------------------------------------- OOM
    def _watch_oom(self, task: Task) -> None:
        cgroup = _cgroup_state(self.globals, task.id)
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


def _cgroup_state(g, container_id: str):
    from pyrunc.state import Container
    return Container.load(g.root, container_id, lock=False).state.cgroup
