"""Compiled seccomp programs loaded into the real kernel.

Each case forks a child that sets no_new_privs, loads the program with
seccomp(SECCOMP_SET_MODE_FILTER, flags) exactly as pyrunc-init does, makes raw syscalls
through libc's syscall(), reports (return value, errno) of each on a pipe with write(2),
and leaves with exit_group(2).  The parent reads the results and the wait status.
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import resource
import signal
import struct

from pyrunc._native._seccomp import ffi, lib  # the binding compile_filter uses, for its test helpers
from pyrunc.seccomp import FLAG_LOG, FLAG_NEW_LISTENER, compile_filter

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
libc.prctl.restype = ctypes.c_int

PR_SET_NO_NEW_PRIVS = 38
PR_SET_DUMPABLE = 4
AT_FDCWD = -100
RESULT = struct.Struct("=qi")

# what the child itself needs after the filter is in place (allocation, reporting, exit)
CHILD_NEEDS = ["write", "exit_group", "exit", "brk", "mmap", "munmap", "mremap", "madvise",
               "rt_sigreturn", "rt_sigprocmask", "futex"]


def nr(name: str) -> int:
    number = lib.seccomp_syscall_resolve_name(name.encode())
    assert number >= 0, f"{name} is not a syscall of this architecture"
    return number


def profile(*rules: dict, default: str = "SCMP_ACT_ERRNO", **extra) -> dict:
    return {"defaultAction": default, **extra,
            "syscalls": [{"names": CHILD_NEEDS, "action": "SCMP_ACT_ALLOW"}, *rules]}


def run_filtered(seccomp: dict, calls: list[tuple[str | int, tuple]]):
    """Load the compiled `seccomp` in a child, make `calls`; returns (wait status, results)
    where results holds (return value, errno) per call made before the child ended."""
    program, flags = compile_filter(seccomp, None)
    buffer = ffi.from_buffer(program)
    numbers = [(nr(call) if isinstance(call, str) else call,
                tuple(ctypes.c_long(a) if a < (1 << 63) else ctypes.c_ulong(a) for a in args))
               for call, args in calls]
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: nothing but raw syscalls from here on
        try:
            os.close(read_end)
            signal.signal(signal.SIGSYS, signal.SIG_DFL)
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)  # SIGSYS must not leave a core file
            if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
                os._exit(90)
            rc = lib.pyrunc_seccomp_load(buffer, len(program), flags)
            if rc < 0:
                os.write(write_end, RESULT.pack(rc, -rc))
                os._exit(91)
            for number, args in numbers:
                ret = libc.syscall(ctypes.c_long(number), *args)
                os.write(write_end, RESULT.pack(ret, ctypes.get_errno() if ret == -1 else 0))
            os._exit(0)
        except BaseException:
            os._exit(92)
    os.close(write_end)
    data = b""
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    results = [RESULT.unpack_from(data, offset) for offset in range(0, len(data), RESULT.size)]
    return status, results


def exited_ok(status: int) -> bool:
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def test_errno_with_errno_ret_and_default(tmp_path):
    target = tmp_path / "made"
    path = ctypes.create_string_buffer(bytes(target))
    status, results = run_filtered(
        profile({"names": ["mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EROFS},
                {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},
                defaultErrnoRet=errno.ENOTSUP),
        [("mkdirat", (AT_FDCWD, ctypes.addressof(path), 0o755)),
         ("getpid", ()),
         ("getppid", ())])
    assert exited_ok(status), status
    (mkdir_ret, mkdir_errno), (pid_ret, _), (ppid_ret, ppid_errno) = results
    assert (mkdir_ret, mkdir_errno) == (-1, errno.EROFS)
    assert not target.exists()
    assert pid_ret > 0
    assert (ppid_ret, ppid_errno) == (-1, errno.ENOTSUP)


def test_errno_default_is_eperm():
    status, results = run_filtered(profile({"names": ["getppid"], "action": "SCMP_ACT_ERRNO"}),
                                   [("getppid", ()), ("getuid", ())])
    assert exited_ok(status)
    assert results == [(-1, errno.EPERM), (-1, errno.EPERM)]


def test_kill_process_ends_the_child_with_sigsys():
    status, results = run_filtered(profile({"names": ["getppid"], "action": "SCMP_ACT_KILL_PROCESS"},
                                           {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"}),
                                   [("getpid", ()), ("getppid", ()), ("getpid", ())])
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSYS, status
    assert len(results) == 1 and results[0][0] > 0  # nothing ran after the killing call


def test_kill_default_ends_the_child_with_sigsys():
    status, results = run_filtered(profile(default="SCMP_ACT_KILL"), [("getppid", ())])
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSYS, status
    assert results == []


def test_trap_sends_sigsys():
    status, results = run_filtered(profile({"names": ["getppid"], "action": "SCMP_ACT_TRAP"}),
                                   [("getppid", ())])
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSYS, status
    assert results == []


def test_trace_without_a_tracer_is_enosys():
    status, results = run_filtered(profile({"names": ["getppid"], "action": "SCMP_ACT_TRACE"}),
                                   [("getppid", ())])
    assert exited_ok(status)
    assert results == [(-1, errno.ENOSYS)]


def test_log_allows():
    status, results = run_filtered(profile({"names": ["getppid"], "action": "SCMP_ACT_LOG"},
                                           flags=["SECCOMP_FILTER_FLAG_LOG"]),
                                   [("getppid", ())])
    assert compile_filter(profile(flags=["SECCOMP_FILTER_FLAG_LOG"]), None)[1] == FLAG_LOG
    assert exited_ok(status)
    assert results == [(os.getpid(), 0)]


def test_argument_conditions():
    status, results = run_filtered(
        profile(
            # kill(pid, sig): allowed only for signal 0 with a pid above 1 (two args: AND)
            {"names": ["kill"], "action": "SCMP_ACT_ALLOW", "args": [
                {"index": 0, "value": 1, "op": "SCMP_CMP_GT"},
                {"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}]},
            # umask(mask): allowed when (mask & 0o077) == 0o022
            {"names": ["umask"], "action": "SCMP_ACT_ALLOW", "args": [
                {"index": 0, "value": 0o077, "valueTwo": 0o022, "op": "SCMP_CMP_MASKED_EQ"}]},
            # getpriority(which, who): which is 0 or 2 (one index twice: OR)
            {"names": ["getpriority"], "action": "SCMP_ACT_ALLOW", "args": [
                {"index": 0, "value": 0, "op": "SCMP_CMP_EQ"},
                {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}]},
            # a 64-bit comparison: the upper half decides
            {"names": ["getpgid"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.E2BIG, "args": [
                {"index": 0, "value": 1 << 40, "op": "SCMP_CMP_GE"}]},
            {"names": ["getpgid"], "action": "SCMP_ACT_ALLOW", "args": [
                {"index": 0, "value": 1 << 40, "op": "SCMP_CMP_LT"}]},
        ),
        [("kill", (os.getpid(), 0)), ("kill", (os.getpid(), signal.SIGCONT)), ("kill", (1, 0)),
         ("umask", (0o7022,)), ("umask", (0o027,)),
         ("getpriority", (0, 0)), ("getpriority", (2, 0)), ("getpriority", (1, 0)),
         ("getpgid", (0,)), ("getpgid", ((1 << 40) + 5,))])
    assert exited_ok(status), status
    assert results[0] == (0, 0)
    assert results[1] == (-1, errno.EPERM)
    assert results[2] == (-1, errno.EPERM)
    assert results[3][1] == 0  # returns the old mask
    assert results[4] == (-1, errno.EPERM)
    assert results[5][1] == 0 and results[6][1] == 0
    assert results[7] == (-1, errno.EPERM)
    assert results[8][0] > 0
    assert results[9] == (-1, errno.E2BIG)


def test_newer_syscall_numbers_get_enosys():
    # the profile's highest syscall number on this arch, from libseccomp
    seccomp = profile({"names": ["getpid"], "action": "SCMP_ACT_ALLOW"})
    names = [name for rule in seccomp["syscalls"] for name in rule["names"]]
    highest = max(nr(name) for name in names)
    assert nr("getppid") < highest  # known and unlisted, below: the default action
    assert nr("pidfd_open") > highest  # known and unlisted, above: newer than the profile
    status, results = run_filtered(seccomp, [(1000, ()), ("pidfd_open", (os.getpid(), 0)), ("getppid", ()),
                                             ("getpid", ())])
    assert exited_ok(status), status
    assert results[0] == (-1, errno.ENOSYS)
    assert results[1] == (-1, errno.ENOSYS)
    assert results[2] == (-1, errno.EPERM)
    assert results[3][0] > 0


def test_clone3_falls_back_for_glibc():
    # the reason for the stub: clone3 is newer than this profile, so ENOSYS, not EPERM
    status, results = run_filtered(profile(), [("clone3", (0, 0))])
    assert exited_ok(status)
    assert results == [(-1, errno.ENOSYS)]


def test_no_enosys_stub_with_allow_default():
    status, results = run_filtered(profile({"names": ["getppid"], "action": "SCMP_ACT_ERRNO"},
                                           default="SCMP_ACT_ALLOW"),
                                   [("getppid", ()), ("getpid", ()), (1000, ())])
    assert exited_ok(status)
    assert results[0] == (-1, errno.EPERM)
    assert results[1][0] > 0
    assert results[2] == (-1, errno.ENOSYS)  # the kernel's own answer, not the filter's


# ------------------------------------------------------------------ SCMP_ACT_NOTIFY

SECCOMP_IOCTL_NOTIF_RECV = 0xC0502100  # _IOWR('!', 0, struct seccomp_notif): 80 bytes
SECCOMP_IOCTL_NOTIF_SEND = 0xC0182101  # _IOWR('!', 1, struct seccomp_notif_resp): 24 bytes
NOTIF = struct.Struct("=QII" "iIQ6Q")  # id, pid, flags, seccomp_data
NOTIF_RESP = struct.Struct("=QqiI")  # id, val, error, flags


def test_notify_listener_answers_for_the_child():
    seccomp = profile({"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"},
                      {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},
                      listenerPath="/run/test-agent.sock")
    program, flags = compile_filter(seccomp, None)
    assert flags & FLAG_NEW_LISTENER
    buffer = ffi.from_buffer(program)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
            listener = lib.pyrunc_seccomp_load(buffer, len(program), flags)
            os.write(write_end, RESULT.pack(listener, 0))
            ret = libc.syscall(ctypes.c_long(nr("getppid")))
            os.write(write_end, RESULT.pack(ret, ctypes.get_errno() if ret == -1 else 0))
            os._exit(0)
        except BaseException:
            os._exit(92)
    os.close(write_end)
    pidfd = listener = -1
    try:
        listener_in_child, _ = RESULT.unpack(os.read(read_end, RESULT.size))
        assert listener_in_child >= 0, os.strerror(-listener_in_child)
        pidfd = os.pidfd_open(pid)
        # what the runtime will do: take the listener out of the init with pidfd_getfd
        listener = libc.syscall(ctypes.c_long(nr("pidfd_getfd")), pidfd, listener_in_child, 0)
        assert listener >= 0, os.strerror(ctypes.get_errno())
        request = bytearray(NOTIF.size)
        fcntl.ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, request)
        notif_id, notif_pid, _, call_nr, *_ = NOTIF.unpack(request)
        assert (notif_pid, call_nr) == (pid, nr("getppid"))
        fcntl.ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, bytearray(NOTIF_RESP.pack(notif_id, 0, -errno.ENOMSG, 0)))
        assert RESULT.unpack(os.read(read_end, RESULT.size)) == (-1, errno.ENOMSG)
    finally:
        for fd in (read_end, pidfd, listener):
            if fd >= 0:
                os.close(fd)
        _, status = os.waitpid(pid, 0)
    assert exited_ok(status), status
