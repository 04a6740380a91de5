"""Run pyrunc-probe (pyrunc/_native/probe.c) in a container: one raw syscall, its errno.

    result = probe(config, "mkdir", "/x", 0o755)     # a new container, then deleted
    result = probe_in(container, "unshare", 0x10000000)  # exec in a running container
    assert result.errno == errno.EPERM

Syscall names are resolved to this machine's numbers with libseccomp, so any name works;
integer arguments are passed as numbers, strings as pointers to the text.
"""
from __future__ import annotations

import errno as errnos
import os
import re
from typing import Any, Mapping, Union

from pyrunc.harness.api import PROBE_IN_CONTAINER, Config, Container, HarnessError

_LINE = re.compile(r"^ret=(-?\d+) errno=(\d+)", re.MULTILINE)
_CAPS = re.compile(r"effective=([0-9a-f]+) permitted=([0-9a-f]+) inheritable=([0-9a-f]+)")


class ProbeResult:
    __slots__ = ("syscall", "ret", "errno", "exit_code", "stdout", "stderr")

    def __init__(self, syscall: str, ret: int, errno: int, exit_code: int | None, stdout: str, stderr: str):
        self.syscall, self.ret, self.errno = syscall, ret, errno
        self.exit_code, self.stdout, self.stderr = exit_code, stdout, stderr

    @property
    def errno_name(self) -> str:
        return errnos.errorcode.get(self.errno, str(self.errno)) if self.errno else "OK"

    @property
    def ok(self) -> bool:
        return self.errno == 0

    def __repr__(self) -> str:
        return f"ProbeResult({self.syscall} = {self.ret} {self.errno_name})"


def probe_argv(syscall: Union[str, int], *args: Any) -> list[str]:
    from pyrunc.harness import syscalls
    nr = syscall if isinstance(syscall, int) else syscalls.number_of(syscall)
    words = [PROBE_IN_CONTAINER, "syscall", str(nr)]
    for arg in args:
        words.append(str(int(arg)) if isinstance(arg, int) else f"s:{arg}")
    return words


def _parse(syscall: Union[str, int], exit_code: int | None, stdout: str, stderr: str) -> ProbeResult:
    for line in reversed(stdout.splitlines()):
        match = _LINE.match(line)
        if match:
            return ProbeResult(str(syscall), int(match.group(1)), int(match.group(2)), exit_code, stdout, stderr)
    raise HarnessError(f"probe {syscall}: no result (exit status {exit_code}): {stderr.strip()[-300:]}")


def probe(source: Union[Config, Mapping[str, Any], str, os.PathLike], syscall: Union[str, int], *args: Any,
          timeout: float = 60) -> ProbeResult:
    """Run the probe as the container's process (everything else of the config kept)."""
    config = Config.from_bundle(source) if isinstance(source, (str, os.PathLike)) else \
        (source.copy() if isinstance(source, Config) else Config(source))
    config.with_probe().args(probe_argv(syscall, *args))
    with Container(config) as container:
        result = container.run(timeout=timeout)
    return _parse(syscall, result.exit_code, result.stdout, result.stderr)


def probe_in(container: Container, syscall: Union[str, int], *args: Any, timeout: float = 60) -> ProbeResult:
    """Exec the probe in a running container created from a Config with with_probe()."""
    result = container.exec(probe_argv(syscall, *args), timeout=timeout)
    return _parse(syscall, result.exit_code, result.stdout, result.stderr)


def capabilities(source: Union[Config, Mapping[str, Any], str, os.PathLike], timeout: float = 60) -> dict[str, set[str]]:
    """The probe's capability sets ("effective", "permitted", "inheritable" -> names)."""
    from pyrunc import caps as capmod
    config = Config.from_bundle(source) if isinstance(source, (str, os.PathLike)) else \
        (source.copy() if isinstance(source, Config) else Config(source))
    config.with_probe().args(PROBE_IN_CONTAINER, "caps")
    with Container(config) as container:
        result = container.run(timeout=timeout)
    match = _CAPS.search(result.stdout)
    if not match:
        failed = _LINE.search(result.stdout)
        if failed and int(failed.group(2)):
            err = int(failed.group(2))
            raise HarnessError(f"probe caps: capget failed with {errnos.errorcode.get(err, err)} "
                               "(does the seccomp profile allow capget?)")
        raise HarnessError(f"probe caps: no result (exit status {result.exit_code}): {result.stderr.strip()[-300:]}")
    names = {number: name for name, number in capmod.CAPABILITIES.items()}
    sets = {}
    for kind, text in zip(("effective", "permitted", "inheritable"), match.groups()):
        mask = int(text, 16)
        sets[kind] = {names.get(bit, f"CAP_{bit}") for bit in range(64) if mask >> bit & 1}
    return sets
