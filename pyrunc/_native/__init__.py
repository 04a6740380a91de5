"""The only C in pyrunc: `spawn` (cffi, in-process) and `pyrunc-init` (a static executable).

`spawn_init` starts a child that execs a sealed memfd copy of pyrunc-init at once; the
init then runs a plan (see pyrunc/plan.py and plan.h).
"""
from __future__ import annotations

import _thread  # builtin: costs no file lookup
import os

INIT_BINARY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pyrunc-init")

_F_ADD_SEALS = 1033
_SEALS = 0x0001 | 0x0002 | 0x0004 | 0x0008  # SEAL, SHRINK, GROW, WRITE

# Set by a resident caller (the containerd shim, which spawns for every container): the
# sealed copy of pyrunc-init is made once per process and every spawn executes it (it is
# sealed, so no spawn can change what the next one runs), instead of one copy per spawn.
reuse_sealed_init = False
_reused = {"pid": 0, "fd": -1}
_reused_lock = _thread.allocate_lock()


def sealed_init_fd() -> int:
    """A sealed, close-on-exec memfd holding pyrunc-init.

    Executing a sealed in-memory copy means a container process that reaches
    /proc/<init>/exe can never write through it to a binary on the host (CVE-2019-5736).
    """
    src = os.open(INIT_BINARY, os.O_RDONLY | os.O_CLOEXEC)
    try:
        size = os.fstat(src).st_size
        fd = os.memfd_create("pyrunc-init", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        offset = 0
        while offset < size:
            sent = os.sendfile(fd, src, offset, size - offset)
            if sent == 0:
                break
            offset += sent
    finally:
        os.close(src)
    import fcntl
    fcntl.fcntl(fd, _F_ADD_SEALS, _SEALS)
    return fd


def spawn_init(sync_fd: int, plan_fd: int, keep_fds: list[int], clone_flags: int,
               cgroup_fd: int = -1) -> tuple[int, int]:
    """Clone (CLONE_VM|CLONE_VFORK, plus the namespace flags) and exec pyrunc-init; with
    a cgroup2 directory fd the child starts in that cgroup (clone3 CLONE_INTO_CGROUP).

    Returns (pid, pidfd).  `keep_fds` lose close-on-exec in the child only.
    """
    from pyrunc._native._lib import ffi, lib

    exec_fd = _reused_init_fd() if reuse_sealed_init else sealed_init_fd()
    try:
        args = [ffi.new("char[]", a) for a in (b"pyrunc-init", str(sync_fd).encode(), str(plan_fd).encode())]
        argv = ffi.new("char *[]", args + [ffi.NULL])
        envp = ffi.new("char *[]", [ffi.NULL])
        keep = ffi.new("int[]", keep_fds or [0])
        pidfd = ffi.new("int *")
        pid = lib.pyrunc_spawn(exec_fd, argv, envp, keep, len(keep_fds), clone_flags, cgroup_fd, pidfd)
    finally:
        if not reuse_sealed_init:
            os.close(exec_fd)
    if pid < 0:
        raise OSError(-pid, os.strerror(-pid))
    return pid, pidfd[0]


def _reused_init_fd() -> int:
    with _reused_lock:
        if _reused["pid"] != os.getpid():  # none yet in this process (a fork's is its parent's)
            _reused["fd"], _reused["pid"] = sealed_init_fd(), os.getpid()
        return _reused["fd"]


_PR_SET_CHILD_SUBREAPER = 36


def set_subreaper() -> None:
    """Orphaned descendants (an init or hook whose intermediate exited after forking into
    a pid namespace) are reparented to us, so we can wait for them."""
    from pyrunc._native._lib import lib
    lib.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
