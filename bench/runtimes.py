"""The runtimes under test and how each is invoked.

Every command is started the same way (subprocess with a preexec hook, stdio on
/dev/null), so the spawn cost is equal for all three and only crun's hook does work
(joining its cgroup2 view, see namespaces.UnifiedCgroupView).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass, field
from typing import IO, Callable, Optional

RUNC = "/usr/sbin/runc"
CRUN = "/usr/bin/crun"


def run_command(argv: list[str], *, timeout: float, **popen_kwargs) -> int:
    """Run `argv` to its end and return its exit status, waking exactly at the exit.

    Not subprocess.run(timeout=...): its wait polls with doubling sleeps (0.5, 1, 2 ...
    50 ms), so a command's measured time rounds up to the next step of 7.5, 15.5, 31.5,
    63.5 ms.  A pidfd becomes readable at the exit; poll() on it keeps the timeout."""
    import select

    proc = subprocess.Popen(argv, **popen_kwargs)
    with proc:
        pidfd = os.pidfd_open(proc.pid)
        try:
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
            if not poller.poll(timeout * 1000):
                proc.kill()
                proc.wait()
                raise subprocess.TimeoutExpired(argv, timeout)
        finally:
            os.close(pidfd)
        return proc.wait()


def find_pyrunc() -> Optional[str]:
    """The installed console script, found as tests/support.py finds it: $PYRUNC_BIN,
    next to this interpreter, the interpreter's scripts dir, then PATH (last: a pyenv
    shim there would add its own start-up to every measurement)."""
    override = os.environ.get("PYRUNC_BIN")
    if override:
        return override
    for directory in (os.path.dirname(sys.executable), sysconfig.get_path("scripts")):
        candidate = os.path.join(directory, "pyrunc")
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("pyrunc")


def launcher_interpreter(script: str) -> str:
    """The interpreter a console script runs under: its `#!` line, or the path a
    `"exec" "<python>" ...` trampoline line names (pyrunc's launcher)."""
    try:
        with open(script, "rb") as f:
            head = f.read(4096).decode(errors="replace").splitlines()
    except OSError:
        return "?"
    for line in head[:3]:
        if line.startswith('"exec" '):
            return line.split('"')[3]
        launched = re.search(r'exec "([^"]+)" -I -S "\$0"', line)  # bin/pyrunc.in's shell line
        if launched:
            return launched.group(1)
    if head and head[0].startswith("#!"):
        return head[0][2:].strip()
    return "?"


@dataclass
class Runtime:
    name: str
    binary: str
    extra_global_args: list[str] = field(default_factory=list)
    preexec: Optional[Callable[[], None]] = None
    root: str = ""
    note: str = ""
    _stderr: Optional[IO[bytes]] = field(default=None, repr=False)

    def command(self, *args: str) -> list[str]:
        return [self.binary, "--root", self.root, *self.extra_global_args, *args]

    def run(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run one command (the timed path): stdout discarded, stderr kept in a reused
        file, read only when the command fails."""
        if self._stderr is None:
            self._stderr = tempfile.TemporaryFile()
        self._stderr.seek(0)
        self._stderr.truncate()
        argv = self.command(*args)
        result = subprocess.CompletedProcess(argv, run_command(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=self._stderr, preexec_fn=self.preexec or _nothing, timeout=timeout,
        ))
        if check and result.returncode != 0:
            self._stderr.seek(0)
            detail = self._stderr.read().decode(errors="replace").strip()
            raise RuntimeError(f"{self.name} {' '.join(args)}: exit status {result.returncode}: {detail}")
        return result

    def capture(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run one command with its output kept (files, not pipes: a created container
        holds the runtime's stdio open)."""
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            result = subprocess.run(
                self.command(*args), stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                preexec_fn=self.preexec or _nothing, timeout=timeout,
            )
            out.seek(0)
            err.seek(0)
            completed = subprocess.CompletedProcess(
                result.args, result.returncode, out.read().decode(errors="replace"),
                err.read().decode(errors="replace"))
        if check and completed.returncode != 0:
            raise RuntimeError(f"{self.name} {' '.join(args)}: exit status {completed.returncode}: "
                               f"{completed.stderr.strip()}")
        return completed

    def state(self, container_id: str) -> dict:
        return json.loads(self.capture("state", container_id).stdout)

    def version(self) -> str:
        # `--version` needs no root; the first line names the version.
        try:
            result = subprocess.run([self.binary, "--version"], capture_output=True, text=True,
                                    timeout=30, preexec_fn=self.preexec or _nothing)
        except (OSError, subprocess.TimeoutExpired):
            return "?"
        lines = (result.stdout or result.stderr).strip().splitlines()
        return lines[0] if lines else "?"

    def leftover_ids(self) -> list[str]:
        if not os.path.isdir(self.root):
            return []
        # Dot entries are the runtime's own files (pyrunc's .pyrunc-cache), not containers.
        return sorted(e for e in os.listdir(self.root)
                      if not e.startswith(".") and os.path.isdir(os.path.join(self.root, e)))

    def cleanup(self) -> list[str]:
        """`delete --force` every container left in this runtime's root; returns the ids
        that would not go away."""
        for container_id in self.leftover_ids():
            try:
                self.run("delete", "--force", container_id, check=False)
            except (OSError, subprocess.TimeoutExpired):
                pass
        return self.leftover_ids()


def _nothing() -> None:
    pass
