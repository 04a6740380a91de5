"""The shims' fork server: a resident process (one per containerd address and namespace)
that has imported protobuf and pyrunc's modules once, and forks each new shim from that
state on request from `start`.

A new shim then costs a fork instead of an interpreter start and ~70 ms of imports, and the
shims of a node share their code and module pages copy-on-write (gc.freeze keeps the
collector from writing to the inherited objects), which is what makes one shim per pod
cheap in memory. The fork server is single-threaded (it forks), serves one request at a
time, reaps its shims, and exits once it has had none for IDLE_EXIT seconds; `start` falls
back to forking the shim itself whenever the fork server cannot be reached."""
from __future__ import annotations

import os

IDLE_EXIT = 3.0
CLIENT_MAGIC = b"pyrunc-shim-client\0"  # a request of bin/containerd-shim-pyrunc-v2.c
# process names (comm), to tell the shims from their fork server in ps and /proc
SHIM_COMM = b"pyrunc-shim"
FORK_SERVER_COMM = b"pyrunc-forksrv"
# what pyrunc's create/exec/delete/stats import lazily: loaded before the first fork
PRELOAD = (
    "pyrunc.shim.server", "pyrunc.shim.metrics", "pyrunc.spec", "pyrunc.launch", "pyrunc.initproc",
    "pyrunc.plan", "pyrunc.cgroups", "pyrunc.cgroups._v1", "pyrunc.cgroups._v2", "pyrunc.cgroups._resources",
    "pyrunc.cgroups._paths", "pyrunc.cgroups._stats", "pyrunc.seccomp", "pyrunc.seccomp.notify",
    "pyrunc.hooks", "pyrunc.fds", "pyrunc.lsm", "pyrunc.caps", "pyrunc.rootfs", "pyrunc.ns", "pyrunc.record",
    "pyrunc.fastjson", "pyrunc.unixsock", "pyrunc.console", "pyrunc.rlimits", "pyrunc.log",
    "pyrunc._native", "fcntl", "termios", "ctypes", "urllib.parse", "itertools", "queue",
)


def request(path: str, listener, flags) -> int:
    """Ask the fork server at `path` for a shim serving `listener` (a socket of the C
    module, as `start` uses); its pid, or 0 when no fork server answers."""
    import _socket
    import array
    from pyrunc.log import go_json
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        sock.settimeout(10)
        sock.connect(path)
        message = go_json({"namespace": flags.namespace, "socket": listener.getsockname(),
                           "ttrpc_address": os.environ.get("TTRPC_ADDRESS", "")}).encode()
        sock.sendmsg([message], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS,
                                  array.array("i", [listener.fileno()]))])
        reply = sock.recv(64)
        return int(reply) if reply.strip().isdigit() else 0
    except OSError:
        return 0
    finally:
        sock.close()


class _Flags:
    __slots__ = ("namespace",)

    def __init__(self, namespace: str):
        self.namespace = namespace


def set_comm(name: bytes) -> None:
    import ctypes
    ctypes.CDLL(None).prctl(15, name, 0, 0, 0)  # PR_SET_NAME


def _fork_shim(listener, socket_file: str, namespace: str, ttrpc_address: str,
               close: list) -> int:
    """Fork a shim serving `listener`; `close`: the sockets and fds it must not keep."""
    pid = os.fork()
    if pid:
        return pid
    try:
        os.setsid()
        set_comm(SHIM_COMM)
        for item in close:
            if isinstance(item, int):
                os.close(item)
            else:
                item.close()
        os.environ["NAMESPACE"] = namespace
        if ttrpc_address:
            os.environ["TTRPC_ADDRESS"] = ttrpc_address
        from pyrunc.shim.server import serve
        serve(listener, socket_file, _Flags(namespace))
    finally:
        os._exit(0)


def run(path: str, start_listener, socket_file: str, flags, report_fd: int) -> None:
    """The cold start (in the process `start` forked): load everything, fork the first
    shim, write its pid to `report_fd`, then become the fork server at `path` (or, when
    another process holds that address, just end: the shim is served)."""
    import importlib
    import socket
    listener = socket.socket(fileno=start_listener.detach())
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    from pyrunc.shim.ttrpc import listen
    try:
        server = listen(path)
    except OSError:
        server = None
    import gc
    gc.collect()
    gc.freeze()
    pid = _fork_shim(listener, socket_file, flags.namespace, os.environ.get("TTRPC_ADDRESS", ""),
                     [report_fd, server] if server else [report_fd])
    listener.close()
    os.write(report_fd, str(pid).encode())
    os.close(report_fd)
    if server is not None:
        set_comm(FORK_SERVER_COMM)
        _serve(server, path)


def _answer_client(conn, message: bytes, server) -> int:
    """A `start` or `delete` of the C front (bin/containerd-shim-pyrunc-v2.c, which
    describes the request): done here, with everything loaded, instead of in a new Python.
    The number of children it forked (a shim, or the process that deletes)."""
    import socket
    from pyrunc.shim import main
    while chunk := conn.recv(65536):
        message += chunk
    fields = [os.fsdecode(f) for f in message.split(b"\0")[1:-1]]
    cwd, argv0, ttrpc_address, grpc_address, namespace, grouping, *argv = fields
    env = {"TTRPC_ADDRESS": ttrpc_address, "GRPC_ADDRESS": grpc_address, "NAMESPACE": namespace,
           main.GROUPING_ENV: grouping}
    try:
        flags = main.Flags(argv, env)
    except SystemExit:
        return 0  # the Python command reports bad flags itself
    flags.bundle = os.path.join(cwd, flags.bundle or ".")
    if flags.action == "delete":
        # in a child: deleting a container may wait (its processes, hooks), this loop must not
        pid = os.fork()
        if pid == 0:
            try:
                server.close()
                try:
                    reply = b"0" + main.delete_response(flags)
                except BaseException as error:
                    reply = f"1delete {flags.id}: {error}".encode()
                conn.sendall(reply)
            finally:
                os._exit(0)
        return 1
    if flags.action != "start" or not flags.namespace:
        return 0
    pid = 0
    try:
        path = main.socket_path(flags.address, flags.namespace,
                                main.group_key(flags, main.grouping_mode(argv0, env)))
        bound = main.bind_group(path)
        if bound is not None:
            listener = socket.socket(fileno=bound.detach())  # what ttrpc.Server serves
            try:
                pid = _fork_shim(listener, path, flags.namespace, ttrpc_address, [server, conn])
            finally:
                listener.close()
        main.record_shim(flags.bundle, "unix://" + path, pid)
    except OSError as error:
        conn.sendall(f"1start {flags.id}: {error}".encode())
        return 1 if pid else 0
    conn.sendall(b"0unix://" + path.encode())
    conn.shutdown(socket.SHUT_RDWR)  # the end, although the new shim still holds it a while
    return 1 if pid else 0


def _serve(server, path: str) -> None:
    import json
    import select
    import socket
    import time
    children = 1
    idle_since = None
    try:
        while True:
            while children:
                try:
                    pid, _status = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    children = 0
                    break
                if not pid:
                    break
                children -= 1
            if children:
                idle_since = None
            elif idle_since is None:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > IDLE_EXIT:
                return
            if not select.select([server], [], [], 0.2)[0]:
                continue
            conn, _ = server.accept()
            with conn:
                try:
                    conn.settimeout(5)
                    message, fds, _flags, _addr = socket.recv_fds(conn, 65536, 1)
                    if not fds and message.startswith(CLIENT_MAGIC):
                        children += _answer_client(conn, message, server)
                        continue
                    if not fds:
                        continue
                    request = json.loads(message)
                    listener = socket.socket(fileno=fds[0])
                    try:
                        pid = _fork_shim(listener, request["socket"], request["namespace"],
                                         request.get("ttrpc_address", ""), [server, conn])
                    finally:
                        listener.close()
                    children += 1
                    conn.sendall(str(pid).encode())
                except (OSError, ValueError, KeyError):
                    continue
    finally:
        # gone before it stops answering: a late `start` then forks its shim itself
        for name in (path, path + ".lock"):
            try:
                os.unlink(name)
            except FileNotFoundError:
                pass
        server.close()
