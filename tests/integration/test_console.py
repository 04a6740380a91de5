"""process.terminal: the pty master handed over --console-socket (one fd, SCM_RIGHTS),
console size, the container's view of its terminal (/dev/console is a bind of the pty
slave, `tty` names /dev/pts/0 as under runc), stdin typed into the master, the error
cases of create, and foreground `run` proxying the caller's own terminal.

Everything the container prints is read back from the pty master, so each assertion is
about what the container itself saw.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import termios
import time
from pathlib import Path
from typing import Callable, Optional

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")

CONSOLE_HEIGHT, CONSOLE_WIDTH = 40, 100
TIOCGPTN = 0x80045430  # _IOR('T', 0x30, unsigned int); Python's termios lacks it


# ---------------------------------------------------------------------------------------
# Helpers


def _runtime_binary(command: Callable) -> str:
    """The binary behind a pyrunc_cmd/runc_cmd fixture (a bound _Runtime.run)."""
    return command.__self__.binary


def _terminal_bundle(bundle, args: list[str], *, console_size: bool = True) -> Path:
    def edit(config: dict) -> None:
        config["process"]["terminal"] = True
        if console_size:
            config["process"]["consoleSize"] = {"height": CONSOLE_HEIGHT, "width": CONSOLE_WIDTH}
        else:
            config["process"].pop("consoleSize", None)

    return bundle(edit, args=args)


class ConsoleListener:
    """A test-side AF_UNIX SOCK_STREAM listener the runtime connects to."""

    def __init__(self) -> None:
        # A short directory of our own: sun_path holds 108 bytes, tmp_path is often longer.
        self.directory = tempfile.mkdtemp(prefix="pyrunc-cs-", dir="/tmp")
        self.path = os.path.join(self.directory, "console.sock")
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(self.path)
        self.server.listen(1)

    def receive(self, timeout: float = 10.0) -> tuple[bytes, list[int]]:
        """Accept one connection and read everything sent on it: (data, every fd received)."""
        self.server.settimeout(timeout)
        connection, _ = self.server.accept()
        data, fds = b"", []
        deadline = time.monotonic() + timeout
        with connection:
            connection.settimeout(max(0.1, deadline - time.monotonic()))
            while True:
                message, received, _flags, _addr = socket.recv_fds(connection, 4096, 16)
                fds.extend(received)
                if not message and not received:
                    break  # the runtime closed its end
                data += message
        return data, fds

    def close(self) -> None:
        self.server.close()
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture
def listener():
    created = ConsoleListener()
    try:
        yield created
    finally:
        created.close()


def _window_size(fd: int) -> tuple[int, int]:
    rows, columns, _x, _y = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    return rows, columns


def _set_window_size(fd: int, rows: int, columns: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))


class MasterReader:
    """Reads what a pty master delivers; EIO (no slave left open) counts as end of file."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.data = b""
        self.closed = False

    def read_until(self, predicate: Callable[[bytes], bool], timeout: float = 10.0) -> bytes:
        deadline = time.monotonic() + timeout
        while not predicate(self.data) and not self.closed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out after {timeout}s; the pty delivered {self.data!r}")
            ready, _, _ = select.select([self.fd], [], [], remaining)
            if not ready:
                continue
            try:
                chunk = os.read(self.fd, 4096)
            except OSError:  # EIO: every slave end is closed
                chunk = b""
            if not chunk:
                self.closed = True
            self.data += chunk
        return self.data

    def read_to_end(self, timeout: float = 10.0) -> bytes:
        return self.read_until(lambda _data: self.closed, timeout)

    def lines(self) -> list[str]:
        return self.data.decode(errors="replace").replace("\r\n", "\n").splitlines()


def _create_with_console(pyrunc_cmd, listener: ConsoleListener, bundle_dir: Path, container_id: str):
    """`create --console-socket`; returns (create result, data sent, fds received)."""
    result = pyrunc_cmd("create", "--console-socket", listener.path, "-b", str(bundle_dir), container_id)
    assert result.returncode == 0, result.stderr
    data, fds = listener.receive()
    return result, data, fds


@contextlib.contextmanager
def _started_on_console(pyrunc_cmd, listener: ConsoleListener, bundle_dir: Path, container_id: str):
    """`create --console-socket`, then `start`; yields (pty master fd, a MasterReader on
    it) and closes the master on the way out."""
    _result, _data, fds = _create_with_console(pyrunc_cmd, listener, bundle_dir, container_id)
    master = fds[0]
    try:
        pyrunc_cmd("start", container_id, check=True)
        yield master, MasterReader(master)
    finally:
        os.close(master)


def _wait_for_status(pyrunc_cmd, container_id: str, wanted: str, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        result = pyrunc_cmd("state", container_id)
        assert result.returncode == 0, result.stderr
        state = json.loads(result.stdout)
        if state["status"] == wanted or time.monotonic() >= deadline:
            assert state["status"] == wanted, state
            return state
        time.sleep(0.05)


# ---------------------------------------------------------------------------------------
# create --console-socket


def test_console_socket_receives_exactly_one_pty_master(bundle, container_id, pyrunc_cmd, listener):
    bundle_dir = _terminal_bundle(bundle, ["true"])
    _result, _data, fds = _create_with_console(pyrunc_cmd, listener, bundle_dir, container_id)
    try:
        assert len(fds) == 1, f"expected one fd over SCM_RIGHTS, got {fds}"
        master = fds[0]
        assert os.isatty(master)
        # A pty master specifically: TIOCGPTN (the slave's number) only works on a master.
        slave_number = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, b"\0" * 4))[0]
        assert slave_number == 0, "the container's devpts instance is new: its first pty is 0"
        attributes = termios.tcgetattr(master)
        assert len(attributes) == 7
        # consoleSize is applied at create, before anything runs in the container.
        assert _window_size(master) == (CONSOLE_HEIGHT, CONSOLE_WIDTH)
        state = json.loads(pyrunc_cmd("state", container_id, check=True).stdout)
        assert state["status"] == "created"
    finally:
        for fd in fds:
            os.close(fd)


def test_container_output_comes_through_the_master(bundle, container_id, pyrunc_cmd, listener):
    bundle_dir = _terminal_bundle(bundle, ["sh", "-c", "tty; stty size; echo hi"])
    with _started_on_console(pyrunc_cmd, listener, bundle_dir, container_id) as (_master, reader):
        reader.read_until(lambda data: b"hi\r\n" in data)
        # runc 1.1 prints the same three lines for this bundle.
        assert reader.lines()[:3] == ["/dev/pts/0", f"{CONSOLE_HEIGHT} {CONSOLE_WIDTH}", "hi"]
        _wait_for_status(pyrunc_cmd, container_id, "stopped")


def test_stdin_typed_into_the_master_reaches_the_container(bundle, container_id, pyrunc_cmd, listener):
    script = 'echo ready; read line; echo "got:$line"; read -r second; echo "second:$second"'
    bundle_dir = _terminal_bundle(bundle, ["sh", "-c", script])
    with _started_on_console(pyrunc_cmd, listener, bundle_dir, container_id) as (master, reader):
        reader.read_until(lambda data: b"ready\r\n" in data)
        os.write(master, b"typed words\n")
        reader.read_until(lambda data: b"got:" in data and data.endswith(b"\n"))
        os.write(master, b"x y\n")
        reader.read_until(lambda data: b"second:x y\r\n" in data)
        lines = reader.lines()
        # The pty echoes what is typed (the line discipline is in cooked mode).
        assert "got:typed words" in lines, lines
        assert "second:x y" in lines, lines
        _wait_for_status(pyrunc_cmd, container_id, "stopped")


def test_dev_console_is_a_bind_of_the_pty_slave(bundle, container_id, pyrunc_cmd, listener):
    script = (
        'stat -c "%t:%T" /dev/console /dev/pts/0 "$(tty)";'
        " grep ' /dev/console ' /proc/self/mountinfo; echo end"
    )
    bundle_dir = _terminal_bundle(bundle, ["sh", "-c", script])
    with _started_on_console(pyrunc_cmd, listener, bundle_dir, container_id) as (_master, reader):
        reader.read_until(lambda data: b"end\r\n" in data)
        lines = reader.lines()
    # 0x88 = 136, the first Unix98 pty major; all three name the same device.
    assert lines[:3] == ["88:0", "88:0", "88:0"], lines
    mount_lines = [line for line in lines if " /dev/console " in line]
    assert len(mount_lines) == 1, lines
    fields = mount_lines[0].split()
    separator = fields.index("-")
    # root "/0" of a devpts mount: a bind of pts/0 of the container's devpts instance
    assert (fields[3], fields[separator + 1]) == ("/0", "devpts"), mount_lines[0]


def test_terminal_without_console_socket_is_refused(bundle, container_id, pyrunc_cmd, state_root):
    bundle_dir = _terminal_bundle(bundle, ["true"])
    result = pyrunc_cmd("create", "-b", str(bundle_dir), container_id)
    assert result.returncode != 0
    assert "cannot allocate tty if runc will detach without setting console socket" in result.stderr
    assert not (state_root / container_id).exists()
    # `run --detach` detaches too: the same rule.
    result = pyrunc_cmd("run", "--detach", "-b", str(bundle_dir), container_id)
    assert result.returncode != 0
    assert "cannot allocate tty if runc will detach without setting console socket" in result.stderr
    assert pyrunc_cmd("state", container_id).returncode != 0


def test_console_socket_without_terminal_is_refused(bundle, container_id, pyrunc_cmd, state_root, listener):
    bundle_dir = bundle(args=["true"])  # terminal false
    result = pyrunc_cmd("create", "--console-socket", listener.path, "-b", str(bundle_dir), container_id)
    assert result.returncode != 0
    assert "cannot use console socket if runc will not detach or allocate tty" in result.stderr
    assert not (state_root / container_id).exists()
    # Nothing was sent: the refusal comes before any connection.
    listener.server.settimeout(0.2)
    with pytest.raises(socket.timeout):
        listener.server.accept()


def test_missing_console_socket_names_the_path(bundle, container_id, pyrunc_cmd, state_root, listener):
    bundle_dir = _terminal_bundle(bundle, ["true"])
    missing = os.path.join(listener.directory, "absent.sock")
    result = pyrunc_cmd("create", "--console-socket", missing, "-b", str(bundle_dir), container_id)
    assert result.returncode != 0
    assert missing in result.stderr
    assert not (state_root / container_id).exists()


# ---------------------------------------------------------------------------------------
# Foreground run on the caller's own terminal


def _run_on_a_pty(
    binary: str,
    state_root: Path,
    bundle_dir: Path,
    container_id: str,
    interact: Callable[[int, MasterReader], None],
    rows: int = 33,
    columns: int = 77,
    timeout: float = 20.0,
) -> tuple[int, MasterReader, list, list]:
    """`run` with stdin/stdout/stderr on a fresh pty (as in an interactive shell): returns
    (exit code, what the pty showed, the slave's termios before, and after)."""
    return _on_a_pty([binary, "--root", str(state_root), "run", "-b", str(bundle_dir), container_id],
                     interact, rows, columns, timeout)


def _on_a_pty(
    command: list[str],
    interact: Callable[[int, MasterReader], None],
    rows: int = 33,
    columns: int = 77,
    timeout: float = 20.0,
) -> tuple[int, MasterReader, list, list]:
    """`command` with stdin/stdout/stderr on a fresh pty; see _run_on_a_pty."""
    master, slave = os.openpty()
    reader = MasterReader(master)
    process: Optional[subprocess.Popen] = None
    try:
        _set_window_size(slave, rows, columns)
        before = termios.tcgetattr(slave)
        process = subprocess.Popen(
            command,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,  # its own session: the pty may become its terminal
        )
        interact(master, reader)
        code = process.wait(timeout=timeout)
        after = termios.tcgetattr(slave)
        os.close(slave)
        slave = -1
        reader.read_to_end(timeout=5)
        return code, reader, before, after
    finally:
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        if slave >= 0:
            os.close(slave)
        os.close(master)


def test_foreground_run_proxies_the_callers_terminal(bundle, container_id, pyrunc_cmd, state_root):
    script = 'tty; stty size; echo ready; read line; echo "got:$line"; exit 5'
    bundle_dir = _terminal_bundle(bundle, ["sh", "-c", script], console_size=False)

    def interact(master: int, reader: MasterReader) -> None:
        reader.read_until(lambda data: b"ready\r\n" in data)
        os.write(master, b"over the pty\r")  # raw mode on our side: Enter sends CR

    code, reader, before, after = _run_on_a_pty(
        _runtime_binary(pyrunc_cmd), state_root, bundle_dir, container_id, interact
    )
    reader.read_until(lambda data: b"got:" in data, timeout=1)
    lines = reader.lines()
    assert code == 5, lines
    assert lines[0] == "/dev/pts/0", lines
    # The container's pty takes the size of the caller's terminal (33x77 here).
    assert lines[1] == "33 77", lines
    assert "got:over the pty" in lines, lines
    # The caller's terminal went raw while proxying and is restored afterwards.
    assert after == before
    assert not (state_root / container_id).exists()


def test_foreground_run_exit_status_of_a_signalled_container(bundle, container_id, pyrunc_cmd, state_root):
    bundle_dir = _terminal_bundle(bundle, ["sh", "-c", "echo ready; exec sleep 30"], console_size=False)

    def interact(master: int, reader: MasterReader) -> None:
        reader.read_until(lambda data: b"ready" in data)
        # From outside: pid 1 of a pid namespace ignores SIGKILL sent from inside it.
        pyrunc_cmd("kill", container_id, "KILL", check=True)

    code, reader, _before, _after = _run_on_a_pty(
        _runtime_binary(pyrunc_cmd), state_root, bundle_dir, container_id, interact
    )
    # Like runc: a container killed by signal N makes `run` exit with 128 + N.
    assert code == 128 + signal.SIGKILL, reader.lines()


# ---------------------------------------------------------------------------------------
# Who owns the terminal: the process's user, as under runc


TERMINAL_OWNER_SCRIPT = "stat -c '%u %g %a' $(tty); ls -ln /dev/pts | grep -v '^total' | awk '{print $1, $3, $4, $NF}'"


def _no_output(_master: int, _reader: MasterReader) -> None:
    pass


@pytest.mark.parametrize("userns", [False, True], ids=["no-userns", "userns"])
def test_run_terminal_belongs_to_a_non_root_user_like_runc(userns, bundle, userns_rootfs, container_id, pyrunc_cmd,
                                                           runc_cmd, state_root, runc_root):
    """runc gives the process's uid the pty (the tty group stays): a non-root process may
    then reopen and change its own terminal; pyrunc left it root's (0:5)."""
    def edit(config: dict) -> None:
        config["root"] = {"path": userns_rootfs, "readonly": True}
        config["process"]["terminal"] = True
        config["process"]["user"] = {"uid": 1000, "gid": 1000}
        if userns:
            mapping = [{"containerID": 0, "hostID": 100000, "size": 65536}]
            config["linux"]["namespaces"].append({"type": "user"})
            config["linux"]["uidMappings"] = mapping
            config["linux"]["gidMappings"] = mapping

    bundle_dir = bundle(edit, args=["sh", "-c", TERMINAL_OWNER_SCRIPT])
    seen = {}
    for name, command, root in (("pyrunc", pyrunc_cmd, state_root), ("runc", runc_cmd, runc_root)):
        code, reader, _before, _after = _run_on_a_pty(_runtime_binary(command), root, bundle_dir, container_id,
                                                      _no_output)
        assert code == 0, (name, reader.lines())
        seen[name] = reader.lines()
    assert seen["pyrunc"] == seen["runc"]
    assert seen["pyrunc"][0] == "1000 5 620", seen


def test_exec_terminal_belongs_to_a_non_root_user_like_runc(bundle, userns_rootfs, container_id, pyrunc_cmd,
                                                            runc_cmd):
    def edit(config: dict) -> None:
        config["root"] = {"path": userns_rootfs, "readonly": True}

    bundle_dir = bundle(edit, args=["sleep", "30"])
    seen = {}
    for name, command in (("pyrunc", pyrunc_cmd), ("runc", runc_cmd)):
        command("run", "-d", "-b", str(bundle_dir), container_id, check=True)
        try:
            runtime = command.__self__
            code, reader, _before, _after = _on_a_pty(
                [runtime.binary, "--root", str(runtime.root), "exec", "-t", "-u", "1000:1000", container_id,
                 "sh", "-c", "stat -c '%u %g %a' $(tty)"], _no_output)
            assert code == 0, (name, reader.lines())
            seen[name] = reader.lines()
        finally:
            command("delete", "--force", container_id)
    assert seen["pyrunc"] == seen["runc"] == ["1000 5 620"]


def test_stdio_pipes_belong_to_a_non_root_user_like_runc(bundle, userns_rootfs, container_id, pyrunc_cmd,
                                                         runc_cmd):
    """Without a terminal, runc gives the process's uid its stdio too, so that a non-root
    program can reopen /dev/stdout (nginx-like images log there; an engine's shim hands
    pipes).  pyrunc does it for pipes and sockets only: the caller's files and devices
    (here stdin, the host's /dev/null, which runc replaces with a pipe) are never
    chowned."""
    def edit(config: dict) -> None:
        config["root"] = {"path": userns_rootfs, "readonly": True}
        config["process"]["user"] = {"uid": 1000, "gid": 1000}

    script = "stat -L -c '%u %F' /proc/self/fd/1 /proc/self/fd/2; echo reopened > /dev/stdout"
    bundle_dir = bundle(edit, args=["sh", "-c", script])
    seen = {}
    for name, command in (("pyrunc", pyrunc_cmd), ("runc", runc_cmd)):
        runtime = command.__self__
        runtime.seen_ids.add(container_id)
        # pipes (not the fixture's files): the foreground run ends with the container
        result = subprocess.run([runtime.binary, "--root", str(runtime.root), "run", "-b", str(bundle_dir),
                                 container_id], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 0, (name, result.stderr)
        seen[name] = result.stdout
    assert seen["pyrunc"] == seen["runc"] == "1000 fifo\n1000 fifo\nreopened\n"
