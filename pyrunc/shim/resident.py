"""The resident shim process: one per containerd address and namespace, it has imported
protobuf and pyrunc's modules once and serves every group's socket (each pod's, or the
node's) on its own threads, as if each group had its own shim (pyrunc/shim/server.py).

One process instead of one per pod: a forked Python shim dirties ~5 MB of its own (object
reference counts, thread stacks, allocator arenas), twenty pods a hundred MB, while every
group served here costs a listening socket and a thread. The price is the blast radius:
when this process dies, every group it served loses its shim (docs/shim.md).

Besides the groups' sockets it listens on a control socket (main.resident_path), where
`start` and `delete` ask it to do their work: the C front (pyrunc/_native/shim_front.c)
sends its argv and environment, the Python `start` a bound group socket over SCM_RIGHTS.
It ends once it has had no group and no task for IDLE_EXIT seconds."""
from __future__ import annotations

import os

IDLE_EXIT = 3.0
RELEASE_AFTER = 0.3  # seconds without a new request after which memory is given back
SHIM_COMM = b"pyrunc-shim"  # the process name (comm), for ps and /proc
CLIENT_MAGIC = b"pyrunc-shim-client\0"  # a request of pyrunc/_native/shim_front.c
# What the Task service's paths (create, start, exec, pids, stats, pause, resume, update,
# state, kill, wait, delete) import lazily beyond what this process has loaded anyway,
# loaded before the first group is served; tests/shim/test_resident.py derives it (a
# create then imports nothing, and nothing listed goes unused). Not listed, loaded on
# first use: what only some configs need (a terminal, hooks, LSM labels, file:// logs,
# a seccomp listener, cgroup v2 on a unified host) and the seccomp compiler with
# libseccomp (a cache miss: the first container of each profile on the node).
PRELOAD = (
    "_cffi_backend", "_sha256", "gc", "pyrunc._native", "pyrunc._native._lib",
    "pyrunc._native._lib.lib", "pyrunc.caps", "pyrunc.cgroups", "pyrunc.cgroups._paths",
    "pyrunc.cgroups._resources", "pyrunc.cgroups._stats", "pyrunc.cgroups._v1",
    "pyrunc.cgroups.controllers", "pyrunc.cgroups.controllers.blkio",
    "pyrunc.cgroups.controllers.common", "pyrunc.cgroups.controllers.cpu",
    "pyrunc.cgroups.controllers.cpuset", "pyrunc.cgroups.controllers.devices",
    "pyrunc.cgroups.controllers.hugetlb", "pyrunc.cgroups.controllers.memory",
    "pyrunc.cgroups.controllers.network", "pyrunc.cgroups.controllers.pids",
    "pyrunc.cgroups.controllers.rdma", "pyrunc.cgroups.controllers.unified",
    "pyrunc.cgroups.fs", "pyrunc.cgroups.manager", "pyrunc.fds", "pyrunc.initproc",
    "pyrunc.launch", "pyrunc.log", "pyrunc.ns", "pyrunc.plan", "pyrunc.planner",
    "pyrunc.process", "pyrunc.record", "pyrunc.rlimits", "pyrunc.rootfs",
    "pyrunc.rootfs.options", "pyrunc.seccomp", "pyrunc.seccomp.cache",
    "pyrunc.seccomp.profile", "pyrunc.shim.metrics", "pyrunc.spec", "pyrunc.spec.jsontype",
    "pyrunc.spec.model", "pyrunc.spec.parser", "pyrunc.textfile", "pyrunc.unixsock",
)


def preload() -> None:
    """PRELOAD: a pyrunc module that does not import is a bug (raised); the interpreter's
    own modules vary by version (3.12 renamed _sha256), and their users fall back."""
    import importlib
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            if name.startswith("pyrunc."):
                raise


def request(path: str, listener, flags) -> int:
    """Ask the resident process at `path` to serve `listener` (a bound group socket of the
    C module, as `start` uses); its pid, or 0 when none answers."""
    import _socket
    import array
    from pyrunc.log import go_json
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        sock.settimeout(10)
        sock.connect(path)
        message = go_json({"socket": listener.getsockname()}).encode()
        sock.sendmsg([message], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS,
                                  array.array("i", [listener.fileno()]))])
        reply = sock.recv(64)
        return int(reply) if reply.strip().isdigit() else 0
    except OSError:
        return 0
    finally:
        sock.close()


def set_comm(name: bytes) -> None:
    import ctypes
    ctypes.CDLL(None).prctl(15, name, 0, 0, 0)  # PR_SET_NAME


def one_malloc_arena() -> None:
    """Before any thread starts: glibc gives threads malloc arenas of their own (up to 8
    per CPU, each a 64 MB reservation whose touched pages stay resident); with the GIL only
    one thread runs Python at a time, so one arena is hardly ever contended."""
    import ctypes
    ctypes.CDLL(None).mallopt(-8, 1)  # M_ARENA_MAX


def release_memory() -> None:
    """After a burst of requests: collect what the burst left in cycles (the frozen
    objects loaded at start are skipped) and give the allocator's free pages back."""
    import ctypes
    import gc
    gc.collect()
    ctypes.CDLL(None).malloc_trim(0)


def run(path: str, start_listener, socket_file: str, flags, report_fd: int) -> None:
    """The cold start (in the process `start` forked): load everything, serve the first
    group, write this pid to `report_fd`, then answer on the control socket `path` (when
    another process holds it, serve the group alone until it shuts down)."""
    import gc
    import socket
    listener = socket.socket(fileno=start_listener.detach())
    preload()
    from pyrunc import _native
    from pyrunc.shim.server import Service
    from pyrunc.shim.ttrpc import listen
    _native.reuse_sealed_init = True  # one sealed copy of pyrunc-init for every spawn
    try:
        control = listen(path)
    except OSError:
        control = None
    gc.collect()
    gc.freeze()  # what is loaded stays put: the collector then walks only new objects
    set_comm(SHIM_COMM)
    one_malloc_arena()
    work_dir = (path if control is not None else socket_file) + ".d"
    service = Service(flags.namespace, work_dir)
    service.start_threads()
    service.add_group(listener, socket_file)
    os.write(report_fd, str(os.getpid()).encode())
    os.close(report_fd)
    try:
        _serve(control, service)
    finally:
        service.remove_work_dir()
        service.remove_group_sockets()  # an exit with groups left: SIGTERM
        if control is not None:
            # gone before it stops answering: a late `start` then makes a new one
            for name in (path, path + ".lock"):
                try:
                    os.unlink(name)
                except FileNotFoundError:
                    pass
            control.close()
        os._exit(0)


def _serve(control, service) -> None:
    """Answer on the control socket (one request at a time, each quick) until idle."""
    import select
    import socket
    import time

    from pyrunc.shim.ttrpc import WORKERS
    idle_since = None
    released_at = 0.0
    while True:
        if WORKERS.last_call > released_at and time.monotonic() - WORKERS.last_call > RELEASE_AFTER:
            release_memory()
            released_at = time.monotonic()
        if not service.idle():
            idle_since = None
        elif idle_since is None:
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since > IDLE_EXIT:
            return
        if control is None or not select.select([control], [], [], 0.2)[0]:
            if control is None:
                time.sleep(0.2)
            continue
        conn, _ = control.accept()
        try:
            conn.settimeout(5)
            message, fds, _flags, _addr = socket.recv_fds(conn, 65536, 1)
            if not fds and message.startswith(CLIENT_MAGIC):
                if _answer_client(conn, message, service):
                    conn = None  # a thread answers (and closes it)
                continue
            if not fds:
                continue
            import json
            listener = socket.socket(fileno=fds[0])
            service.add_group(listener, json.loads(message)["socket"])
            conn.sendall(str(os.getpid()).encode())
        except (OSError, ValueError, KeyError):
            continue
        finally:
            if conn is not None:
                conn.close()


def _answer_client(conn, message: bytes, service) -> bool:
    """A `start` or `delete` of the C front (pyrunc/_native/shim_front.c, which
    describes the request), done here with everything loaded instead of in a new Python.
    True when a thread took `conn` over to answer."""
    import socket
    import threading
    from pyrunc.shim import main
    while chunk := conn.recv(65536):
        message += chunk
    fields = [os.fsdecode(f) for f in message.split(b"\0")[1:-1]]
    cwd, argv0, _ttrpc_address, grpc_address, namespace, grouping, *argv = fields
    env = {"GRPC_ADDRESS": grpc_address, "NAMESPACE": namespace, main.GROUPING_ENV: grouping}
    try:
        flags = main.Flags(argv, env)
    except SystemExit:
        return False  # the Python command reports bad flags itself
    flags.bundle = os.path.join(cwd, flags.bundle or ".")
    if flags.action == "delete":
        # on a thread: deleting a container may wait (its processes, hooks). The spawn gate
        # is held until the answer is sent: poststop hooks are children the reaper must
        # leave, and this process does not end meanwhile (Service.idle)
        service.spawning.__enter__()
        threading.Thread(target=_answer_delete, args=(conn, flags, service), daemon=True).start()
        return True
    if flags.action != "start" or not flags.namespace:
        return False
    # the container's Create follows within milliseconds: its cgroup mkdirs wait for the
    # migration's grace period unless it has started by then (cgroups.warm_up_migration)
    from pyrunc import cgroups
    cgroups.warm_up_migration()
    try:
        path = main.socket_path(flags.address, flags.namespace,
                                main.group_key(flags, main.grouping_mode(argv0, env)))
        # the pod's next container: its group is served here (no connect to find out,
        # which the group's server would accept and serve on a thread of its own)
        bound = None if service.serves(path) else main.bind_group(path)
        if bound is not None:
            service.add_group(socket.socket(fileno=bound.detach()), path)
        main.record_shim(flags.bundle, "unix://" + path, os.getpid() if bound is not None else 0)
    except OSError as error:
        conn.sendall(f"1start {flags.id}: {error}".encode())
        return False
    conn.sendall(b"0unix://" + path.encode())
    return False


def _answer_delete(conn, flags, service) -> None:
    from pyrunc.shim import main
    try:
        try:
            reply = b"0" + main.delete_response(flags)
        except Exception as error:
            reply = f"1delete {flags.id}: {error}".encode()
        conn.sendall(reply)
    except OSError:
        pass
    finally:
        conn.close()
        service.spawning.__exit__(None, None, None)
