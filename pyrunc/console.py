"""Foreground `run` with process.terminal: the runtime plays console-socket receiver,
puts the caller's terminal in raw mode and copies bytes both ways until the init exits.
"""
from __future__ import annotations

import os
import select
import signal
import socket


class ForegroundConsole:
    def __init__(self) -> None:
        self._ours, self._theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self.master = -1
        self._saved = None

    def runtime_end(self) -> int:
        """The fd handed to the init as its console socket."""
        return self._theirs.fileno()

    def receive_master(self) -> None:
        """Take the pty master the init sent, then size it and go raw like runc."""
        _msg, fds, _flags, _addr = socket.recv_fds(self._ours, 1, 1)
        self._theirs.close()
        if not fds:
            raise OSError("console socket: no file descriptor received")
        self.master = fds[0]
        if os.isatty(0):
            import termios
            import tty
            self._saved = termios.tcgetattr(0)
            tty.setraw(0)
            self._resize()

    def _resize(self, *_args) -> None:
        if os.isatty(0) and self.master >= 0:
            import fcntl
            import termios
            size = fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8)
            fcntl.ioctl(self.master, termios.TIOCSWINSZ, size)

    def proxy_until_exit(self, pid: int) -> None:
        signal.signal(signal.SIGWINCH, self._resize)
        pidfd = os.pidfd_open(pid)
        readers = [0, self.master, pidfd]
        try:
            while True:
                try:
                    ready, _, _ = select.select(readers, [], [])
                except InterruptedError:
                    continue
                if self.master in ready:
                    try:
                        data = os.read(self.master, 65536)
                    except OSError:  # EIO: every slave end is closed
                        data = b""
                    if not data:
                        readers.remove(self.master)
                    else:
                        _write_all(1, data)
                if 0 in ready:
                    data = os.read(0, 65536)
                    if data:
                        _write_all(self.master, data)
                    else:
                        readers.remove(0)
                if pidfd in ready:
                    self._drain()
                    return
        finally:
            os.close(pidfd)

    def _drain(self) -> None:
        while True:
            r, _, _ = select.select([self.master], [], [], 0)
            if not r:
                return
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            if not data:
                return
            _write_all(1, data)

    def close(self) -> None:
        if self._saved is not None:
            import termios
            termios.tcsetattr(0, termios.TCSADRAIN, self._saved)
            self._saved = None
        if self.master >= 0:
            os.close(self.master)
            self.master = -1
        self._ours.close()
        self._theirs.close()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
