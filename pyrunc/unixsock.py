"""AF_UNIX bind/connect for paths longer than sun_path's 108 bytes.

docker's state root is `<exec-root>/runtime-runc/moby/<64 hex>`, so a socket in a state
directory easily exceeds the limit; going through /proc/self/fd/<dir fd>/<name> keeps
the address short and still names the same file.
"""
from __future__ import annotations

import os

# The C module: `socket` itself imports enum and selectors (~8 ms for every create/start).
import _socket

_SUN_PATH_MAX = 107  # 108 bytes with the terminating NUL
STREAM = _socket.SOCK_STREAM
SEQPACKET = _socket.SOCK_SEQPACKET


def socket(kind: int) -> _socket.socket:
    """A close-on-exec AF_UNIX socket of `kind` (STREAM or SEQPACKET)."""
    return _socket.socket(_socket.AF_UNIX, kind | _socket.SOCK_CLOEXEC)


def socketpair(kind: int) -> tuple[_socket.socket, _socket.socket]:
    return _socket.socketpair(_socket.AF_UNIX, kind | _socket.SOCK_CLOEXEC)


def send_fd(sock: _socket.socket, data: bytes, fd: int) -> None:
    """One message carrying `data` and a copy of `fd` (SCM_RIGHTS)."""
    import struct
    sock.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, struct.pack("i", fd))])


def _call(method, path: str) -> None:
    if len(os.fsencode(path)) <= _SUN_PATH_MAX:
        method(path)
        return
    parent, name = os.path.split(path)
    fd = os.open(parent or ".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        method(f"/proc/self/fd/{fd}/{name}")
    finally:
        os.close(fd)


def bind(sock: _socket.socket, path: str) -> None:
    _call(sock.bind, path)


def connect(sock: _socket.socket, path: str) -> None:
    _call(sock.connect, path)


def connect_stream(path: str, what: str) -> _socket.socket:
    """A STREAM socket connected to `path` (a console or pidfd socket an engine listens
    on); PyruncError "connect <what> <path>: <reason>" when nothing answers there."""
    sock = socket(STREAM)
    try:
        connect(sock, path)
    except OSError as e:
        sock.close()
        from pyrunc.errors import PyruncError
        raise PyruncError(f"connect {what} {path}: {os.strerror(e.errno).lower()}") from None
    return sock
