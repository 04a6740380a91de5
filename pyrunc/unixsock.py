"""AF_UNIX bind/connect for paths longer than sun_path's 108 bytes.

docker's state root is `<exec-root>/runtime-runc/moby/<64 hex>`, so a socket in a state
directory easily exceeds the limit; going through /proc/self/fd/<dir fd>/<name> keeps
the address short and still names the same file.
"""
from __future__ import annotations

import os
import socket

_SUN_PATH_MAX = 107  # 108 bytes with the terminating NUL


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


def bind(sock: socket.socket, path: str) -> None:
    _call(sock.bind, path)


def connect(sock: socket.socket, path: str) -> None:
    _call(sock.connect, path)
