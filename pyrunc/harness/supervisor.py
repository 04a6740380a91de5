"""A seccomp user-notification agent: the process at `linux.seccomp.listenerPath`.

The runtime connects to the socket once per filter it loads (the container's init, and
every `exec` with the same profile) and sends the listener fd with SCM_RIGHTS plus the
ContainerProcessState JSON (see pyrunc.seccomp.notify). The supervisor then answers every
notification with what `decide(notification)` returns:

- `CONTINUE`: SECCOMP_USER_NOTIF_FLAG_CONTINUE, the kernel runs the syscall as if no
  filter had asked (fine for recording; never a security boundary: the target may change
  pointed-to memory between our look and the kernel's);
- an errno (int > 0): the syscall fails with it, unexecuted.

It runs in a thread of the calling process; ioctl and poll release the GIL, so the
workload never waits on Python for long. A notification that `decide` fails on is
answered CONTINUE (a workload blocked forever helps nobody) and the error is kept.
"""
from __future__ import annotations

import errno as errnos
import fcntl
import json
import os
import select
import socket
import struct
import threading
from typing import Callable, NamedTuple

from pyrunc.errors import PyruncError

SECCOMP_IOCTL_NOTIF_RECV = 0xC0502100  # _IOWR('!', 0, struct seccomp_notif): 80 bytes
SECCOMP_IOCTL_NOTIF_SEND = 0xC0182101  # _IOWR('!', 1, struct seccomp_notif_resp): 24 bytes
SECCOMP_USER_NOTIF_FLAG_CONTINUE = 1
# struct seccomp_notif: u64 id, u32 pid, u32 flags, struct seccomp_data (int nr, u32 arch,
# u64 instruction_pointer, u64 args[6])
NOTIF = struct.Struct("=QII" "iIQ6Q")
NOTIF_DATA_OFFSET = 16  # where struct seccomp_data starts in struct seccomp_notif
NOTIF_RESP = struct.Struct("=QqiI")  # u64 id, s64 val, s32 error, u32 flags

CONTINUE = 0


class Notification(NamedTuple):
    pid: int  # as seen from our pid namespace
    nr: int
    arch: int  # AUDIT_ARCH_*
    ip: int
    args: tuple[int, ...]
    data: bytes  # the raw struct seccomp_data, for running a BPF program on it


Decide = Callable[[Notification], int]


class Supervisor:
    """Listen at `socket_path`; answer notifications with `decide` until stopped."""

    def __init__(self, socket_path: str, decide: Decide):
        self.socket_path = socket_path
        self.decide = decide
        self.states: list[dict] = []  # the ContainerProcessState of each connection
        self.errors: list[str] = []
        self.notifications = 0
        self._server: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop_read, self._stop_write = os.pipe2(os.O_CLOEXEC)
        self._listeners: list[int] = []

    def __enter__(self) -> "Supervisor":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            server.bind(self.socket_path)
            server.listen(16)
        except OSError as e:
            server.close()
            raise PyruncError(f"listen on {self.socket_path}: {os.strerror(e.errno).lower()}") from None
        self._server = server
        self._thread = threading.Thread(target=self._loop, name="pyrunc-seccomp-supervisor", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish once every filter's tasks are gone (or after `timeout`), then clean up."""
        if self._thread is not None:
            os.write(self._stop_write, b"x")
            self._thread.join(timeout)
            if self._thread.is_alive():
                self.errors.append("supervisor did not finish in time")
            self._thread = None
        for fd in self._listeners:
            os.close(fd)
        self._listeners = []
        if self._server is not None:
            self._server.close()
            self._server = None
            try:
                os.unlink(self.socket_path)
            except FileNotFoundError:
                pass
        for fd in (self._stop_read, self._stop_write):
            try:
                os.close(fd)
            except OSError:
                pass
        self._stop_read = self._stop_write = -1

    # ------------------------------------------------------------------ the thread
    def _loop(self) -> None:
        poller = select.poll()
        poller.register(self._server.fileno(), select.POLLIN)
        poller.register(self._stop_read, select.POLLIN)
        stopping = False
        while True:
            if stopping and not self._listeners:
                return
            # once asked to stop, wait only for listeners that still have live tasks
            events = poller.poll(200 if stopping else None)
            if stopping and not events:
                return  # nothing more within the grace period
            for fd, event in events:
                if fd == self._stop_read:
                    poller.unregister(self._stop_read)
                    stopping = True
                elif fd == self._server.fileno():
                    listener = self._accept()
                    if listener >= 0:
                        self._listeners.append(listener)
                        poller.register(listener, select.POLLIN)
                elif event & select.POLLIN:
                    self._answer(fd)
                elif event & (select.POLLHUP | select.POLLERR | select.POLLNVAL):
                    # every task that used this filter is gone
                    poller.unregister(fd)
                    if fd in self._listeners:  # stop() may have taken them after a timeout
                        self._listeners.remove(fd)
                        os.close(fd)

    def _accept(self) -> int:
        try:
            conn, _ = self._server.accept()
        except OSError as e:
            self.errors.append(f"accept: {os.strerror(e.errno).lower()}")
            return -1
        with conn:
            try:
                message, fds, _flags, _addr = socket.recv_fds(conn, 1 << 16, 4)
            except OSError as e:
                self.errors.append(f"receive seccomp fd: {os.strerror(e.errno).lower()}")
                return -1
        if not fds:
            self.errors.append("receive seccomp fd: the message carried no fd")
            return -1
        for extra in fds[1:]:
            os.close(extra)
        try:
            self.states.append(json.loads(message.decode()))
        except ValueError:
            self.errors.append("receive seccomp fd: the state is not JSON")
        os.set_inheritable(fds[0], False)
        return fds[0]

    def _answer(self, listener: int) -> None:
        request = bytearray(NOTIF.size)
        try:
            fcntl.ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, request)
        except OSError as e:
            # ENOENT: the task was killed before we got to it; EINTR: try again later
            if e.errno not in (errnos.ENOENT, errnos.EINTR):
                self.errors.append(f"SECCOMP_IOCTL_NOTIF_RECV: {os.strerror(e.errno).lower()}")
            return
        notif_id, pid, _flags, nr, arch, ip, *args = NOTIF.unpack(request)
        self.notifications += 1
        notification = Notification(pid=pid, nr=nr, arch=arch, ip=ip, args=tuple(args),
                                    data=bytes(request[NOTIF_DATA_OFFSET:]))
        try:
            answer = self.decide(notification)
        except Exception as e:  # noqa: BLE001 - the task must get an answer whatever happens
            self.errors.append(f"deciding syscall {nr}: {type(e).__name__}: {e}")
            answer = CONTINUE
        if answer == CONTINUE:
            response = NOTIF_RESP.pack(notif_id, 0, 0, SECCOMP_USER_NOTIF_FLAG_CONTINUE)
        else:
            response = NOTIF_RESP.pack(notif_id, 0, -answer, 0)
        try:
            fcntl.ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, bytearray(response))
        except OSError as e:
            if e.errno != errnos.ENOENT:  # the task died meanwhile
                self.errors.append(f"SECCOMP_IOCTL_NOTIF_SEND: {os.strerror(e.errno).lower()}")
