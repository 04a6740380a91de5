#!/usr/bin/env python3
"""Build a minimal busybox root filesystem, offline, from Debian's busybox-static.

    python3 bundles/build_rootfs.py [DEST]      (default: bundles/busybox/rootfs)

Also imported by the tests (tests/conftest.py loads this file by path), so it stays
stdlib-only and has one entry point, `build_rootfs(dest)`. It is idempotent and cheap on
a tree that is already built: busybox is the only file copied, every applet is a
relative symlink to it, and nothing that is already right is rewritten.
"""
from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys

DEFAULT_BUSYBOX = "/bin/busybox"
DEFAULT_DEST = os.path.join(os.path.dirname(os.path.abspath(__file__)), "busybox", "rootfs")

# (path, mode): modes are set explicitly because the caller's umask must not matter.
DIRECTORIES: list[tuple[str, int]] = [
    ("bin", 0o755),
    ("sbin", 0o755),
    ("usr", 0o755),
    ("usr/bin", 0o755),
    ("usr/sbin", 0o755),
    ("usr/local", 0o755),
    ("usr/local/bin", 0o755),
    ("etc", 0o755),
    ("proc", 0o755),
    ("sys", 0o755),
    ("dev", 0o755),
    ("tmp", 0o1777),
    ("run", 0o755),
    ("root", 0o700),
    ("home", 0o755),
    ("home/user", 0o755),
    ("var", 0o755),
    ("var/tmp", 0o1777),
    ("var/log", 0o755),
    ("mnt", 0o755),
    ("opt", 0o755),
]

# uid 1000 is an unprivileged user for tests of process.user; 65534 is the usual nobody.
PASSWD = """\
root:x:0:0:root:/root:/bin/sh
user:x:1000:1000:user:/home/user:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
"""

# gid 5 (tty) is what the default devpts mount option gid=5 refers to.
GROUP = """\
root:x:0:
tty:x:5:
users:x:100:user
user:x:1000:
nogroup:x:65534:
"""

FILES: list[tuple[str, str, int]] = [
    ("etc/passwd", PASSWD, 0o644),
    ("etc/group", GROUP, 0o644),
]

PT_INTERP = 3


class RootfsError(Exception):
    """The rootfs could not be built; str() is one lowercase line naming the path."""


def _is_static_elf(path: str) -> bool:
    """True if `path` is an ELF executable without a program interpreter (PT_INTERP).

    The dynamic `busybox` package also installs /bin/busybox; copied alone into a rootfs
    it cannot run, so refuse it early with a clear message.
    """
    with open(path, "rb") as f:
        header = f.read(64)
        if len(header) < 52 or header[:4] != b"\x7fELF":
            return False
        is_64 = header[4] == 2
        endian = "<" if header[5] == 1 else ">"
        if is_64:
            (phoff,) = struct.unpack_from(endian + "Q", header, 32)
            phentsize, phnum = struct.unpack_from(endian + "HH", header, 54)
        else:
            (phoff,) = struct.unpack_from(endian + "I", header, 28)
            phentsize, phnum = struct.unpack_from(endian + "HH", header, 42)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    for index in range(phnum):
        (p_type,) = struct.unpack_from(endian + "I", table, index * phentsize)
        if p_type == PT_INTERP:
            return False
    return True


def applet_paths(busybox: str = DEFAULT_BUSYBOX) -> list[str]:
    """Paths relative to the rootfs of every applet this busybox provides (`--list-full`)."""
    result = subprocess.run([busybox, "--list-full"], capture_output=True, text=True)
    if result.returncode != 0:
        raise RootfsError(f"{busybox} --list-full: exit status {result.returncode}")
    return [line.strip().lstrip("/") for line in result.stdout.splitlines() if line.strip()]


def _ensure_dir(path: str, mode: int) -> None:
    os.makedirs(path, exist_ok=True)
    if os.path.islink(path) or not os.path.isdir(path):
        raise RootfsError(f"{path}: exists and is not a directory")
    if os.stat(path).st_mode & 0o7777 != mode:
        os.chmod(path, mode)


def _ensure_file(path: str, content: str, mode: int) -> None:
    data = content.encode()
    try:
        with open(path, "rb") as f:
            current = f.read()
    except FileNotFoundError:
        current = None
    if current != data:
        temporary = path + ".tmp"
        with open(temporary, "wb") as f:
            f.write(data)
        os.replace(temporary, path)
    if os.stat(path).st_mode & 0o7777 != mode:
        os.chmod(path, mode)


def _ensure_copy(source: str, destination: str) -> None:
    """Copy `source` unless `destination` already has its size and mtime (copy2 keeps mtime)."""
    source_stat = os.stat(source)
    try:
        destination_stat = os.lstat(destination)
        if (
            not os.path.islink(destination)
            and destination_stat.st_size == source_stat.st_size
            and destination_stat.st_mtime_ns == source_stat.st_mtime_ns
        ):
            return
    except FileNotFoundError:
        pass
    # Write beside and rename: a container may be running the old inode right now.
    temporary = destination + ".tmp"
    shutil.copy2(source, temporary)
    os.chmod(temporary, 0o755)
    os.replace(temporary, destination)


def _ensure_symlink(path: str, target: str) -> None:
    try:
        if os.readlink(path) == target:
            return
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError:
        # Not a symlink: a regular file is replaced, a directory is a conflict.
        if os.path.isdir(path):
            raise RootfsError(f"{path}: is a directory, expected an applet symlink") from None
        os.unlink(path)
    os.symlink(target, path)


def build_rootfs(dest: str, busybox: str = DEFAULT_BUSYBOX) -> None:
    """Create (or bring up to date) a busybox rootfs at `dest`.

    Layout: the usual top-level directories, /bin/busybox (a copy of `busybox`), one
    relative symlink per applet at the path `busybox --list-full` names, and /etc/passwd
    and /etc/group with root (0), user (1000) and nobody (65534).
    """
    if not os.path.exists(busybox):
        raise RootfsError(f"{busybox}: not found (apt-get install busybox-static)")
    if not _is_static_elf(busybox):
        raise RootfsError(f"{busybox}: not a statically linked executable (apt-get install busybox-static)")
    dest = os.path.abspath(dest)
    _ensure_dir(dest, 0o755)
    for relative, mode in DIRECTORIES:
        _ensure_dir(os.path.join(dest, relative), mode)
    home = os.path.join(dest, "home/user")
    home_stat = os.stat(home)
    if (home_stat.st_uid, home_stat.st_gid) != (1000, 1000):
        os.chown(home, 1000, 1000)

    busybox_in_rootfs = os.path.join(dest, "bin/busybox")
    _ensure_copy(busybox, busybox_in_rootfs)
    for relative in applet_paths(busybox):
        link = os.path.join(dest, relative)
        parent = os.path.dirname(link)
        if not os.path.isdir(parent):
            _ensure_dir(parent, 0o755)
        if link == busybox_in_rootfs:
            continue
        _ensure_symlink(link, os.path.relpath(busybox_in_rootfs, parent))

    for relative, content, mode in FILES:
        _ensure_file(os.path.join(dest, relative), content, mode)


def main(argv: list[str]) -> int:
    if len(argv) > 2 or (len(argv) == 2 and argv[1].startswith("-")):
        print(f"usage: {argv[0]} [DEST]   (default: {DEFAULT_DEST})", file=sys.stderr)
        return 2
    dest = argv[1] if len(argv) == 2 else DEFAULT_DEST
    try:
        build_rootfs(dest)
    except (RootfsError, OSError) as error:
        print(f"build_rootfs: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
