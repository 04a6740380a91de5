"""containerd-shim-pyrunc-v2: the command containerd runs for runtime_type
io.containerd.pyrunc.v2 (docs/shim.md).

    ... -namespace NS -address GRPC -publish-binary BIN -id ID [-bundle B] [-debug] start
        have the container's group served (its socket, in the resident shim process,
        pyrunc/shim/resident.py); print its address
    ... -namespace NS -id ID [-bundle B] delete
        clean up after a shim that died; print a DeleteResponse

The C front (pyrunc/_native/shim_front.c) hands both to the resident process when
there is one; this runs otherwise. `start` then imports nothing heavy: the process it forks
is the one that loads protobuf and pyrunc's operations, once."""
from __future__ import annotations

import os
import sys

SOCKET_DIR = "/run/containerd/s"
SANDBOX_ANNOTATION = "io.kubernetes.cri.sandbox-id"
# runc's shim's group label (containerd's runc v2 shim: groupLabels), before the sandbox's
GROUP_ANNOTATIONS = ("io.containerd.runc.v2.group", SANDBOX_ANNOTATION)
# PYRUNC_SHIM_GROUPING=node (or running as containerd-shim-pyrunc-node-v2, runtime_type
# io.containerd.pyrunc-node.v2): one shim per containerd namespace serves every container
GROUPING_ENV = "PYRUNC_SHIM_GROUPING"
NODE_GROUP = "pyrunc-node-shim"
STATE_ROOT = "/run/containerd/runc"


class Flags:
    __slots__ = ("namespace", "address", "publish_binary", "id", "bundle", "debug", "action")

    def __init__(self, argv: list[str], env=os.environ):
        self.namespace = env.get("NAMESPACE", "")
        self.address = env.get("GRPC_ADDRESS", "")
        self.publish_binary = ""
        self.id = ""
        self.bundle = ""
        self.debug = False
        self.action = ""
        names = {"namespace", "address", "publish-binary", "id", "bundle"}
        i = 0
        while i < len(argv):
            word = argv[i]
            name, eq, value = word.lstrip("-").partition("=")
            if word.startswith("-") and name == "debug":
                self.debug = True
            elif word.startswith("-") and name in names:
                if not eq:
                    i += 1
                    if i >= len(argv):
                        raise SystemExit(f"flag needs an argument: -{name}")
                    value = argv[i]
                setattr(self, name.replace("-", "_"), value)
            elif word.startswith("-") and name == "v":
                self.action = "version"
            elif word.startswith("-"):
                raise SystemExit(f"flag provided but not defined: -{name}")
            else:
                self.action = word
            i += 1


def grouping_mode(argv0: str, env=os.environ) -> str:
    mode = env.get(GROUPING_ENV, "")
    if mode:
        return mode
    return "node" if "-node-" in os.path.basename(argv0) else "pod"


def group_key(flags: Flags, mode: str) -> str:
    """The container's shim group: the node, or as runc's shim groups, its
    io.containerd.runc.v2.group annotation or CRI sandbox, or the container alone."""
    if mode == "node":
        return NODE_GROUP
    try:
        with open(os.path.join(flags.bundle or ".", "config.json"), "rb") as f:
            data = f.read()
    except OSError:
        return flags.id
    if not any(name.encode() in data for name in GROUP_ANNOTATIONS):
        return flags.id
    from pyrunc import fastjson  # `json` would import `re`: ~10 ms of every start
    try:
        annotations = fastjson.loads(data).get("annotations") or {}
    except ValueError:
        return flags.id
    return next((annotations[name] for name in GROUP_ANNOTATIONS if annotations.get(name)), flags.id)


def socket_path(grpc_address: str, namespace: str, key: str) -> str:
    """runc's shim's address scheme (containerd runtime/v2/shim SocketAddress): a hash of the
    containerd address, namespace and group, so containerd and the shim agree on it."""
    try:
        from _sha256 import sha256  # builtin: hashlib would load OpenSSL
    except ImportError:
        from hashlib import sha256
    digest = sha256(os.path.join(grpc_address, namespace, key).encode()).hexdigest()
    return os.path.join(SOCKET_DIR, digest)


def resident_path(grpc_address: str, namespace: str) -> str:
    """The control socket of the resident shim process (pyrunc/shim/resident.py), one per
    containerd address and namespace: FNV-1a (64 bit)
    of "address/namespace", which the C front (pyrunc/_native/shim_front.c) computes
    too; no cryptographic hash needed there, and none in C."""
    digest = 0xcbf29ce484222325
    for byte in f"{grpc_address}/{namespace}".encode():
        digest = ((digest ^ byte) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return os.path.join(SOCKET_DIR, f"pyrunc-shim-{digest:016x}")


def unix_socket():
    """A unix stream socket of the C module: `socket` imports enum and selectors, a third
    of a reuse-path `start`."""
    import _socket
    return _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)


def _connectable(path: str) -> bool:
    sock = unix_socket()
    try:
        sock.connect(path)
        return True
    except OSError:
        return False
    finally:
        sock.close()


def write_address(bundle: str, address: str) -> None:
    """bundle/address: how containerd finds the shim again after a restart."""
    path = os.path.join(bundle, "address")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(address)
    os.replace(tmp, path)


def bind_group(path: str):
    """The group's socket, bound and listening for its new shim; None when the group's
    shim is up (the container is served by it)."""
    import errno
    os.makedirs(SOCKET_DIR, mode=0o711, exist_ok=True)
    listener = unix_socket()
    for _attempt in range(2):
        try:
            listener.bind(path)
            break
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                listener.close()
                raise
            if _connectable(path):
                listener.close()
                return None
            os.unlink(path)  # a dead shim's socket
    os.chmod(path, 0o600)
    listener.listen(128)
    return listener


def record_shim(bundle: str, address: str, pid: int) -> None:
    """bundle/address, and bundle/shim.pid when a shim was started for this container."""
    write_address(bundle, address)
    if pid:
        with open(os.path.join(bundle, "shim.pid"), "w") as f:
            f.write(str(pid))


def start(flags: Flags, argv0: str) -> int:
    bundle = os.path.abspath(flags.bundle or ".")
    flags.bundle = bundle
    key = group_key(flags, grouping_mode(argv0))
    path = socket_path(flags.address, flags.namespace, key)
    address = "unix://" + path
    listener = bind_group(path)
    if listener is None:
        record_shim(bundle, address, 0)
        sys.stdout.write(address)
        return 0
    server_path = resident_path(flags.address, flags.namespace)
    from pyrunc.shim import resident
    pid = resident.request(server_path, listener, flags)
    if not pid:
        # one cold start at a time: the pods of a burst then are all served by one
        # resident process instead of each starting its own
        import fcntl
        lock = os.open(server_path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            pid = resident.request(server_path, listener, flags)
            if not pid:
                _remove_dead_resident(server_path)
                pid = _start_cold(listener, path, server_path, flags, lock)
        finally:
            os.close(lock)
    listener.close()
    record_shim(bundle, address, pid)
    sys.stdout.write(address)
    return 0


def _start_cold(listener, path: str, server_path: str, flags: Flags, lock: int) -> int:
    """No resident process yet: fork one from this process (no second interpreter start);
    it loads everything, serves the group and reports its pid. containerd reads our stdout to
    its end, so the forked process lets go of it before this one exits; and of the cold
    start `lock` (a flock belongs to the open file, which a fork shares)."""
    oom_score_adj = _shim_oom_score()
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        try:
            _set_oom_score(oom_score_adj)
            import signal
            # as runc's shim: SIGTERM and SIGINT end it cleanly (its sockets removed)
            for number in (signal.SIGTERM, signal.SIGINT):
                signal.signal(number, _exit_signalled)
            os.close(lock)
            os.close(read_end)
            os.setsid()
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            os.close(null)
            os.chdir("/")
            from pyrunc.shim import resident
            resident.run(server_path, listener, path, flags, write_end)
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as f:
        reply = f.read()
    if not reply.isdigit():
        raise SystemExit("containerd-shim-pyrunc-v2: the shim server did not start")
    return int(reply)


def _exit_signalled(number, _frame) -> None:
    raise SystemExit(128 + number)


def _shim_oom_score() -> int | None:
    """runc's shim's oom_score_adj (containerd's runtime/v2/shim AdjustOOMScore): its
    parent's, containerd's, plus one, so that the kernel's OOM killer picks the shim before
    containerd; capped at the maximum, 1000."""
    try:
        with open(f"/proc/{os.getppid()}/oom_score_adj") as f:
            return min(int(f.read()) + 1, 1000)
    except (OSError, ValueError):
        return None


def _set_oom_score(score: int | None) -> None:
    if score is None:
        return
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(score))
    except OSError:  # lowering it needs CAP_SYS_RESOURCE (a user namespace): keep the inherited one
        pass


def _remove_dead_resident(control: str) -> None:
    """A resident process that died without its clean-up (SIGKILL): its control socket,
    cold start lock and work dir. The caller holds the cold start lock, so this is no new
    resident's socket bound but not yet listening."""
    if os.path.exists(control) and not _connectable(control):
        _remove(control, control + ".d")


def delete(flags: Flags) -> int:
    sys.stdout.buffer.write(delete_response(flags))
    return 0


def delete_response(flags: Flags) -> bytes:
    """The shim of this container died (or, as containerd runs this whenever a shim's
    connection closes, ended cleanly): remove the container and its rootfs mount if still
    there, and tell containerd it was killed (137, as runc's shim reports)."""
    from pyrunc import operations
    from pyrunc.errors import PyruncError
    from pyrunc.shim import options
    from pyrunc.shim import server
    from pyrunc.shim import shim_pb2 as pb
    bundle = os.path.abspath(flags.bundle or ".")
    # read first: containerd may remove the bundle meanwhile (a `ctr task delete` of the
    # task whose shim died)
    group = _group_address(bundle)
    try:
        # the task's Root option, as runc's shim reads it back from <bundle>/options.json
        g = operations.Globals(root=os.path.join(options.read_root(bundle) or STATE_ROOT, flags.namespace))
        try:
            operations.delete(g, flags.id, force=True)
        except PyruncError as error:
            sys.stderr.write(f"delete {flags.id}: {error}\n")
        server.unmount_rootfs(bundle)
    finally:
        _remove_dead_sockets(flags, group)
    response = pb.DeleteResponse(exit_status=128 + 9)
    response.exited_at.GetCurrentTime()
    return response.SerializeToString()


def _group_address(bundle: str) -> str:
    try:
        with open(os.path.join(bundle, "address")) as f:
            return f.read().strip().removeprefix("unix://")
    except OSError:
        return ""


def _remove_dead_sockets(flags: Flags, group: str) -> None:
    """The group's socket (and the work dir of a resident process that served it alone),
    and a dead resident process's control socket, work dir and cold start lock (under that
    lock: a cold start in progress binds the control socket before it listens)."""
    if os.path.dirname(group) == SOCKET_DIR and not _connectable(group):
        _remove(group, group + ".d")
    control = resident_path(flags.address, flags.namespace)
    if not any(os.path.exists(control + suffix) for suffix in ("", ".d", ".lock")):
        return
    import fcntl
    lock = os.open(control + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _connectable(control):
            _remove(control, control + ".d", control + ".lock")
    finally:
        os.close(lock)


def _remove(*paths: str) -> None:
    import shutil
    for path in paths:
        if path.endswith(".d"):
            shutil.rmtree(path, ignore_errors=True)
            continue
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def main() -> None:
    argv0 = sys.argv[0]
    flags = Flags(sys.argv[1:])
    if flags.action == "version":
        from pyrunc import __version__
        print(f"{os.path.basename(argv0)}:\n  Version: pyrunc {__version__}")
        sys.exit(0)
    if not flags.namespace:
        sys.exit("shim namespace cannot be empty")
    if flags.action == "start":
        sys.exit(start(flags, argv0))
    if flags.action == "delete":
        sys.exit(delete(flags))
    sys.exit(f"unknown action {flags.action!r} (expected start or delete)")
