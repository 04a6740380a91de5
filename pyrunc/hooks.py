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

from pyrunc import ns
from pyrunc import plan as P
from pyrunc.errors import PyruncError


def run_all(hooks: list[dict], state: dict, stage: str, *, ns_pid: int = 0, warn_only: bool = False,
            cwd: str = "", env: list[str] | None = None, as_process=None) -> None:
    """Run hooks in order; the first failure raises (or is logged when warn_only).

    As runc: the working directory is the bundle (`cwd` overrides it: the rootfs for
    createContainer); a hook without `env` gets `env`, the container's process
    environment for createContainer (runc runs it from its init), else the runtime's own.
    as_process: (the container's Process, seccomp BPF or None, filter flags): the hook
    runs as that process would, in its cwd, as its user, with its capabilities, rlimits,
    no_new_privs and seccomp filter, environment included when it has none of its own:
    runc runs startContainer hooks from its init right before the execve.
    """
    if ns_pid:
        from pyrunc._native import set_subreaper
        set_subreaper()
        # hooks in the container's namespaces see the pid as the container does
        state = dict(state, pid=_pid_in_namespace(ns_pid))
    data = json.dumps(state, separators=(",", ":")).encode()
    cwd = cwd or state.get("bundle") or "/"
    default_env = [f"{k}={v}" for k, v in os.environ.items()] if env is None else env
    for i, hook in enumerate(hooks):
        try:
            _run_one(hook, data, ns_pid, cwd, default_env, as_process)
        except PyruncError as e:
            msg = f"error running {stage} hook #{i}: {e}"
            if not warn_only:
                raise PyruncError(msg) from None
            from pyrunc import log
            log.warning(msg)


def _pid_in_namespace(pid: int) -> int:
    """The last NSpid field: `pid` as its own (innermost) pid namespace numbers it."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return int(line.split()[-1])
    except OSError:
        pass
    return pid


def _run_one(hook: dict, state_json: bytes, ns_pid: int, cwd: str, default_env: list[str], as_process) -> None:
    from pyrunc.initproc import InitProcess

    path = hook["path"]
    args = hook.get("args") or [path]
    # absent: inherited (runc passes its environ); an empty list is an empty environment
    env = hook.get("env")
    timeout = hook.get("timeout")
    cp = P.ContainerPlan()
    plan = cp.plan
    namespaces = ns.open_namespaces_of(ns_pid) if ns_pid else []
    ns_fds = [fd for _, fd in namespaces]
    ns.join_ops(plan, namespaces, ns_pid)
    stdin_r, stdin_w = os.pipe2(os.O_CLOEXEC)
    out = os.memfd_create("hook-output", os.MFD_CLOEXEC)
    plan.dup2(stdin_r, 0, what="set up stdin")
    plan.dup2(out, 1, what="set up stdout")
    plan.dup2(out, 2, what="set up stderr")
    if as_process is not None:
        import copy

        from pyrunc.caps import last_cap
        from pyrunc.process import process_ops
        from pyrunc.seccomp import FLAG_NEW_LISTENER, FLAG_TSYNC_ESRCH
        process, bpf, flags = as_process
        process = copy.copy(process)
        process.args = list(args)
        # the filter without a listener of its own: a notified call gets ENOSYS
        process_ops(cp, process, last_cap=last_cap(), seccomp_bpf=bpf,
                    seccomp_flags=flags & ~(FLAG_NEW_LISTENER | FLAG_TSYNC_ESRCH),
                    first_closed_fd=3, exec_fifo_fd=None, env=process.env if env is None else env,
                    program=path, home=env is None)
    else:
        plan.close_fds(3, None, what="close file descriptors")
        plan.chdir(cwd, what=f"chdir to {cwd}")
        plan.lookup(path, "", None, what=f"exec: {path!r}")
        plan.exec(args, default_env if env is None else env, what=f"exec {path}")
    proc = None
    try:
        proc = InitProcess.spawn(plan, keep=[stdin_r, out, *ns_fds])
        os.close(stdin_r)
        stdin_r = -1
        try:
            os.write(stdin_w, state_json)
        except BrokenPipeError:
            pass
        os.close(stdin_w)
        stdin_w = -1
        proc.follow()
        status = _wait(proc.pid, timeout, path)
        proc.close()
        proc = None
        if status != 0:
            os.lseek(out, 0, os.SEEK_SET)
            text = os.read(out, 4096).decode(errors="replace").strip()
            # Go's wording, as runc reports it: "signal: bad system call"
            reason = (f"exit status {os.waitstatus_to_exitcode(status)}" if os.WIFEXITED(status)
                      else f"signal: {_signal_name(os.WTERMSIG(status))}")
            raise PyruncError(f"{path}: {reason}" + (f", output: {text}" if text else ""))
    finally:
        if proc is not None:  # a failure above: don't leave a hook running
            proc.kill()
        for fd in (stdin_r, stdin_w, out, *ns_fds):
            if fd >= 0:
                os.close(fd)


def _signal_name(number: int) -> str:
    return (signal.strsignal(number) or f"signal {number}").lower()


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
