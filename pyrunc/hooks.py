"""OCI hooks: each gets the container state JSON on stdin; createContainer and
startContainer hooks run in the container's namespaces, the others in the runtime's.

Hooks are started like every other process pyrunc starts: pyrunc-init runs a small
plan (join namespaces, set up stdio, exec), so no Python runs in the child.
"""
from __future__ import annotations

import json
import os
import select
import signal
import socket
import struct

from pyrunc import plan as P
from pyrunc.errors import PyruncError


def run_all(hooks: list[dict], state: dict, stage: str, *, ns_pid: int = 0, warn_only: bool = False) -> None:
    """Run hooks in order; the first failure raises (or is logged when warn_only)."""
    data = json.dumps(state).encode()
    for i, hook in enumerate(hooks):
        try:
            _run_one(hook, data, ns_pid)
        except PyruncError as e:
            msg = f"error running {stage} hook #{i}: {e}"
            if not warn_only:
                raise PyruncError(msg) from None
            from pyrunc import log
            log.warning(msg)


def _namespace_ops(plan: P.Plan, ns_pid: int) -> bool:
    """Join every namespace of `ns_pid` that differs from ours; True when the plan forks."""
    from pyrunc import ns
    forks = False
    for t in ns.JOIN_ORDER:
        name = ns.proc_name(t)
        theirs = f"/proc/{ns_pid}/ns/{name}"
        try:
            if os.stat(theirs).st_ino == os.stat(f"/proc/self/ns/{name}").st_ino:
                continue
        except FileNotFoundError:
            continue
        plan.add(P.OP_SETNS, (ns.flag(t),), (theirs,), what=f"join {t} namespace of pid {ns_pid}")
        forks |= t in ("pid", "time")
    if forks:
        plan.add(P.OP_FORK, what="fork into the pid namespace")
    return forks


def _run_one(hook: dict, state_json: bytes, ns_pid: int) -> None:
    from pyrunc._native import spawn_init

    path = hook["path"]
    args = hook.get("args") or [path]
    env = hook.get("env") or []
    timeout = hook.get("timeout")
    plan = P.Plan()
    if ns_pid:
        _namespace_ops(plan, ns_pid)
    stdin_r, stdin_w = os.pipe2(os.O_CLOEXEC)
    out = os.memfd_create("hook-output", os.MFD_CLOEXEC)
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    plan.add(P.OP_DUP2, (stdin_r, 0), what="set up stdin")
    plan.add(P.OP_DUP2, (out, 1), what="set up stdout")
    plan.add(P.OP_DUP2, (out, 2), what="set up stderr")
    plan.add(P.OP_CLOSE_FDS, (3,), what="close file descriptors")
    plan.add(P.OP_LOOKUP, (), (path, ""), what=f"exec: {path!r}")
    plan.add(P.OP_EXEC, (len(args),), (*args, *env), what=f"exec {path}")
    plan_fd = plan.to_memfd()
    child_fd = child.detach()
    pids: list[int] = []
    try:
        pid, pidfd = spawn_init(child_fd, plan_fd, [child_fd, plan_fd, stdin_r, out], 0)
        pids.append(pid)
        os.close(pidfd)
        os.close(child_fd)
        child_fd = -1
        os.close(stdin_r)
        stdin_r = -1
        try:
            os.write(stdin_w, state_json)
        except BrokenPipeError:
            pass
        os.close(stdin_w)
        stdin_w = -1
        target = _follow(parent, plan, pid)
        if target != pid:
            pids.append(target)
        status = _wait(target, timeout, path)
        pids.clear()
        if status != 0:
            os.lseek(out, 0, os.SEEK_SET)
            text = os.read(out, 4096).decode(errors="replace").strip()
            reason = (f"exit status {os.waitstatus_to_exitcode(status)}" if os.WIFEXITED(status)
                      else f"killed by signal {os.WTERMSIG(status)}")
            raise PyruncError(f"{path}: {reason}" + (f", output: {text}" if text else ""))
    finally:
        for pid in pids:  # a failure above: don't leave a hook running
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except OSError:
                pass
        for fd in (stdin_r, stdin_w, child_fd, plan_fd, out):
            if fd >= 0:
                os.close(fd)
        parent.close()


def _follow(sock: socket.socket, plan: P.Plan, pid: int) -> int:
    """Read the init's messages until exec (EOF); returns the pid that runs the hook."""
    target = pid
    while True:
        data = sock.recv(P.MSG_SIZE)
        if not data:
            return target
        kind, op, err, value = struct.unpack("<iiii", data)
        if kind == P.MSG_PID:
            os.waitpid(pid, 0)  # the intermediate; the hook is reparented to us
            target = value
        elif kind == P.MSG_ERROR:
            raise PyruncError(plan.describe(op, err))


def _wait(pid: int, timeout, path: str) -> int:
    if timeout:
        fd = os.pidfd_open(pid)
        try:
            ready, _, _ = select.select([fd], [], [], timeout)
        finally:
            os.close(fd)
        if not ready:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise PyruncError(f"{path}: hook ran past specified timeout of {float(timeout):.1f}s")
    return os.waitpid(pid, 0)[1]
