"""A running pyrunc-init: spawn it with a plan and follow its messages.

Used for every process pyrunc starts: a container's init (create), a process joining a
container (exec) and a hook.  The init reports over a SOCK_SEQPACKET socket; the
runtime's end is closed on exec (close-on-exec), so EOF after the last op means the
program is running.
"""
from __future__ import annotations

import os

from pyrunc import plan as P
from pyrunc.errors import SpawnError

# Set by a resident caller whose threads spawn with different stdio (pyrunc/shim/server.py):
# a context manager factory entered around each clone alone, the one moment this process's
# fds 0-2 are the new process's.
around_clone = None


def dup_above(fd: int, floor: int) -> int:
    """A close-on-exec copy of fd numbered >= floor (fds below are the caller's to pass)."""
    import fcntl
    return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, floor)


def _spawn_placed(sync_fd: int, plan_fd: int, keep: list[int], clone_flags: int,
                  cgroup: str | None) -> tuple[int, int, bool]:
    from pyrunc._native import spawn_init
    if cgroup is not None:
        try:
            cgroup_fd = os.open(cgroup, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            cgroup_fd = -1
        if cgroup_fd >= 0:
            try:
                return (*spawn_init(sync_fd, plan_fd, keep, clone_flags, cgroup_fd), True)
            except OSError:
                pass  # retried below without it
            finally:
                os.close(cgroup_fd)
    try:
        return (*spawn_init(sync_fd, plan_fd, keep, clone_flags), False)
    except OSError as e:
        raise SpawnError(f"clone: {os.strerror(e.errno).lower()}") from None


class InitProcess:
    def __init__(self, plan: P.Plan, pid: int, pidfd: int, sock, placed: bool = False):
        self.plan = plan
        self.placed = placed     # born in the cgroup2 directory given to spawn()
        self.spawned_pid = pid   # the clone's child
        self.pid = pid           # the process that goes on (differs once the plan forks)
        self._pidfds = [pidfd]
        self._sock = sock
        # --debug: the init's steps are logged from the plan as its messages show them
        # done (the init itself writes nothing: its stderr is the container's)
        from pyrunc import log
        self._debug = log.debugging()
        self._logged = 0         # ops before this index are logged

    @classmethod
    def spawn(cls, plan: P.Plan, *, clone_flags: int = 0, floor: int = 3, keep: list[int] = (),
              cgroup: str | None = None) -> "InitProcess":
        """Start pyrunc-init on `plan`.  `keep` are fds (already >= floor) the init needs.
        `cgroup`: a cgroup2 directory to start it in (CLONE_INTO_CGROUP); `placed` says
        whether that worked (kernel < 5.7, or a cgroup that refuses the process: the
        caller's cgroup.procs write then places it, or reports why it cannot)."""
        from pyrunc import unixsock
        ours, theirs = unixsock.socketpair(unixsock.SEQPACKET)
        fds = []
        try:
            fds.append(dup_above(theirs.fileno(), floor))
            plan_fd = plan.to_memfd()
            try:
                fds.append(dup_above(plan_fd, floor))
            finally:
                os.close(plan_fd)
            if around_clone is None:
                pid, pidfd, placed = _spawn_placed(fds[0], fds[1], [*keep, *fds], clone_flags, cgroup)
            else:
                with around_clone():
                    pid, pidfd, placed = _spawn_placed(fds[0], fds[1], [*keep, *fds], clone_flags, cgroup)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
            for fd in fds:
                os.close(fd)
        init = cls(plan, pid, pidfd, ours, placed)
        if init._debug:
            from pyrunc import log, ns
            log.debug(f"init[{pid}]: started pyrunc-init with {len(plan)} steps, new namespaces "
                      f"at clone: {ns.describe(clone_flags)}"
                      + (", in its cgroup from birth" if placed else ""))
        return init

    def _log_steps(self, upto: int, note: str = "") -> None:
        """Log the plan's ops before index `upto` not logged yet (the init has done them),
        then `note` about op `upto`."""
        from pyrunc import log
        end = min(upto, len(self.plan))
        for index in range(self._logged, end):
            log.debug(f"init[{self.pid}]: {self.plan.step(index)}")
        self._logged = max(self._logged, end)
        if note:
            log.debug(f"init[{self.pid}]: {note}")

    def follow(self, on_sync=None, *, until_ready: bool = False, on_listener=None) -> None:
        """Answer sync points until READY (until_ready) or until the program runs (EOF).

        on_listener(pidfd, fd): the init loaded a seccomp filter with a user-notification
        listener, fd number `fd` in the process behind `pidfd`."""
        while True:
            data = self._sock.recv(P.MSG_SIZE)
            if not data:
                if until_ready:
                    raise SpawnError(self._died_message())
                if self._debug:
                    self._log_steps(len(self.plan), "the program runs: the init's steps are done")
                return
            kind, op, err, value = P.unpack_msg(data)
            if self._debug:
                self._log_message(kind, op)
            if kind == P.MSG_SYNC:
                try:
                    if on_sync is not None:
                        on_sync(value)
                except BaseException:
                    self._sock.send(b"\1")
                    raise
                self._sock.send(b"\0")
            elif kind == P.MSG_PID:
                self._adopt(value)
            elif kind == P.MSG_SECCOMP_FD:
                try:
                    if on_listener is not None:
                        on_listener(self._pidfds[-1], value)
                except BaseException:
                    self._sock.send(b"\1")
                    raise
                self._sock.send(b"\0")
            elif kind == P.MSG_ERROR:
                raise SpawnError(self.plan.describe(op, err))
            elif kind == P.MSG_READY and until_ready:
                return

    def _log_message(self, kind: int, op: int) -> None:
        if kind == P.MSG_SYNC:
            self._log_steps(op, f"{self.plan.step(op)} (sync point)")
            self._logged = op + 1
        elif kind == P.MSG_PID:
            self._log_steps(op + 1, "forked: the process in the pid namespace goes on")
        elif kind == P.MSG_READY:
            self._log_steps(op + 1, "created: waits for start")
        elif kind == P.MSG_ERROR:
            self._log_steps(op, f"failed: {self.plan.step(op)}" if 0 <= op < len(self.plan)
                            else "failed")

    def _adopt(self, pid: int) -> None:
        """The plan forked: `pid` goes on; reap the intermediate, which exits."""
        try:
            os.waitpid(self.spawned_pid, 0)
        except ChildProcessError:
            pass
        self.pid = pid
        try:
            self._pidfds.append(os.pidfd_open(pid))
        except OSError:
            pass

    def _died_message(self) -> str:
        try:
            wpid, status = os.waitpid(self.spawned_pid, os.WNOHANG)
        except ChildProcessError:
            return "container init exited unexpectedly"
        if wpid and os.WIFSIGNALED(status):
            return f"container init killed by signal {os.WTERMSIG(status)}"
        if wpid:
            return f"container init exited unexpectedly with status {os.WEXITSTATUS(status)}"
        return "container init closed its sync socket unexpectedly"

    def kill(self) -> None:
        """SIGKILL everything spawned and reap what is ours to reap."""
        from _signal import SIGKILL, pidfd_send_signal  # `signal` builds enums: slow import
        for fd in self._pidfds:
            try:
                pidfd_send_signal(fd, SIGKILL)
            except OSError:
                pass
        if not self._pidfds:  # closed already: our unreaped child can't have a reused pid
            for pid in {self.spawned_pid, self.pid}:
                try:
                    os.kill(pid, SIGKILL)
                except OSError:
                    pass
        for pid in {self.spawned_pid, self.pid}:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        self.close()

    def close(self) -> None:
        for fd in self._pidfds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._pidfds = []
        self._sock.close()
