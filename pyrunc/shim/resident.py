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
SHIM_COMM = b"pyrunc-shim"  # the process name (comm), for ps and /proc
CLIENT_MAGIC = b"pyrunc-shim-client\0"  # a request of pyrunc/_native/shim_front.c
# what pyrunc's create/exec/delete/stats import lazily: loaded before the first group
PRELOAD = (
    "pyrunc.shim.server", "pyrunc.shim.metrics", "pyrunc.spec", "pyrunc.launch", "pyrunc.initproc",
    "pyrunc.plan", "pyrunc.cgroups", "pyrunc.cgroups._v1", "pyrunc.cgroups._v2", "pyrunc.cgroups._resources",
    "pyrunc.cgroups._paths", "pyrunc.cgroups._stats", "pyrunc.seccomp", "pyrunc.seccomp.notify",
    "pyrunc.hooks", "pyrunc.fds", "pyrunc.lsm", "pyrunc.caps", "pyrunc.rootfs", "pyrunc.ns", "pyrunc.record",
    "pyrunc.fastjson", "pyrunc.unixsock", "pyrunc.console", "pyrunc.rlimits", "pyrunc.log",
    "pyrunc._native", "fcntl", "termios", "ctypes", "urllib.parse", "itertools", "queue",
)


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


def run(path: str, start_listener, socket_file: str, flags, report_fd: int) -> None:
    """The cold start (in the process `start` forked): load everything, serve the first
    group, write this pid to `report_fd`, then answer on the control socket `path` (when
    another process holds it, serve the group alone until it shuts down)."""
    import gc
    import importlib
    import socket
    listener = socket.socket(fileno=start_listener.detach())
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    from pyrunc.shim.server import Service
    from pyrunc.shim.ttrpc import listen
    try:
        control = listen(path)
    except OSError:
        control = None
    gc.collect()
    gc.freeze()  # what is loaded stays put: the collector then walks only new objects
    set_comm(SHIM_COMM)
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
    idle_since = None
    while True:
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
    try:
        path = main.socket_path(flags.address, flags.namespace,
                                main.group_key(flags, main.grouping_mode(argv0, env)))
        bound = main.bind_group(path)
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
