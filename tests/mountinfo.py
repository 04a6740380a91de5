"""Mount helpers shared by the integration tests: mount(2)/umount2(2) through ctypes for
the test process's own (private) mount namespace, and a parser for /proc/<pid>/mountinfo
together with the sh wrapper that prints it from inside a container after a marker."""
from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from pathlib import Path

MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MS_SHARED = 1 << 20
MNT_DETACH = 2

_libc = ctypes.CDLL(None, use_errno=True)


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    """mount(2) in the test process's (private) mount namespace."""
    enc = lambda s: s.encode() if s is not None else None  # noqa: E731
    if _libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"mount {source} on {target}: {os.strerror(errno)}")


def umount(target: str) -> None:
    """Lazy umount2(2), so a busy mount does not fail a test's clean-up."""
    if _libc.umount2(target.encode(), MNT_DETACH) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"umount {target}: {os.strerror(errno)}")


@dataclass
class Mount:
    mount_id: int
    parent_id: int
    root: str
    mountpoint: str
    options: set[str]
    optional: list[str]
    fstype: str
    source: str
    super_options: set[str]

    def tag(self, name: str) -> str | None:
        """The value of optional field `name` ("shared", "master"), or None."""
        for field in self.optional:
            key, _, value = field.partition(":")
            if key == name:
                return value
        return None


def parse_mountinfo(text: str) -> list[Mount]:
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 10 or "-" not in fields:
            continue
        sep = fields.index("-")
        mounts.append(Mount(
            mount_id=int(fields[0]),
            parent_id=int(fields[1]),
            root=fields[3],
            mountpoint=fields[4].replace("\\040", " "),
            options=set(fields[5].split(",")),
            optional=fields[6:sep],
            fstype=fields[sep + 1],
            source=fields[sep + 2],
            super_options=set(fields[sep + 3].split(",")),
        ))
    return mounts


def mount_at(mounts: list[Mount], mountpoint: str) -> Mount:
    """The topmost (last) mount at `mountpoint`."""
    found = [m for m in mounts if m.mountpoint == mountpoint]
    assert found, f"nothing mounted at {mountpoint}: {[m.mountpoint for m in mounts]}"
    return found[-1]


MOUNTINFO_MARK = "=====MOUNTINFO====="


def script_with_mountinfo(script: str) -> list[str]:
    """sh args running `script` (stderr into stdout), then the mountinfo after a marker."""
    return ["sh", "-c", f"exec 2>&1\n{script}\necho {MOUNTINFO_MARK}; cat /proc/self/mountinfo"]


def split_output(stdout: str) -> tuple[str, list[Mount]]:
    """The output of a script_with_mountinfo() script: what it printed, and the mounts."""
    before, mark, after = stdout.partition(MOUNTINFO_MARK + "\n")
    assert mark, f"no mountinfo in output: {stdout!r}"
    return before, parse_mountinfo(after)


def run_inside(runner, b: Path, container_id: str, *extra: str, cwd=None) -> str:
    """`run` the bundle `b` (with `extra` run options), assert it exited 0, return its stdout."""
    result = runner("run", *extra, "-b", str(b), container_id, cwd=cwd)
    assert result.returncode == 0, f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return result.stdout
