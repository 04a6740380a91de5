"""Which of the caller's fds 3.. may go to a container (--preserve-fds, LISTEN_FDS).

Only fds the caller handed us count: anything the runtime opens itself (its --log file,
a lock, a socket) may land in that range too and must never reach the container.  The
CLI takes a snapshot before it opens anything; later look-ups use it.
"""
from __future__ import annotations

import fcntl

_SNAPSHOT_LIMIT = 3 + 64
_snapshot: set[int] | None = None


def _is_open(fd: int) -> bool:
    try:
        fcntl.fcntl(fd, fcntl.F_GETFD)
        return True
    except OSError:
        return False


def snapshot() -> None:
    """Remember the open fds among 3..66, before this process opens any of its own."""
    global _snapshot
    _snapshot = {fd for fd in range(3, _SNAPSHOT_LIMIT) if _is_open(fd)}


def _was_open(fd: int) -> bool:
    return fd in _snapshot if _snapshot is not None and fd < _SNAPSHOT_LIMIT else _is_open(fd)


def inherited(count: int) -> list[int]:
    """The caller's open fds among 3..3+count-1."""
    return [fd for fd in range(3, 3 + max(count, 0)) if _was_open(fd)]


def preserved(listen: int, count: int) -> list[int]:
    """The fds a container gets: the caller's open ones among the `listen` socket-activation
    fds from 3 on, then the `count` of --preserve-fds after them, each of which must be
    open: runc stats them before it creates anything, and so does this."""
    base = 3 + max(listen, 0)
    for fd in range(base, base + count):
        if not _was_open(fd):
            from pyrunc.errors import PyruncError
            raise PyruncError(f"unable to stat preserved-fd {fd - base} (of {count}): "
                              f"stat /proc/self/fd/{fd}: no such file or directory")
    return inherited(base + max(count, 0) - 3)
