"""A minimal busybox root filesystem, built offline from the host's static busybox
(Debian: busybox-static), for the pytest plugin and quick experiments.

    build_busybox_rootfs("/tmp/rootfs")   # bin/busybox + one symlink per applet

The same shape as bundles/build_rootfs.py in the source tree (which the package does not
ship): directories with explicit modes, /etc/passwd and /etc/group with root, user 1000
and nobody, and /www/index.html for a loopback httpd.
"""
from __future__ import annotations

import os
import shutil
import subprocess

from pyrunc.errors import PyruncError

BUSYBOX = "/bin/busybox"
DIRECTORIES = [("bin", 0o755), ("sbin", 0o755), ("usr", 0o755), ("usr/bin", 0o755), ("usr/sbin", 0o755),
               ("etc", 0o755), ("proc", 0o755), ("sys", 0o755), ("dev", 0o755), ("tmp", 0o1777),
               ("run", 0o755), ("root", 0o700), ("home", 0o755), ("home/user", 0o755), ("var", 0o755),
               ("var/tmp", 0o1777), ("mnt", 0o755), ("www", 0o755)]
FILES = [
    ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n"
                   "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n", 0o644),
    ("etc/group", "root:x:0:\ntty:x:5:\nusers:x:100:user\nuser:x:1000:\nnogroup:x:65534:\n", 0o644),
    ("www/index.html", "hello from pyrunc\n", 0o644),
]


def _is_static(path: str) -> bool:
    import struct
    with open(path, "rb") as f:
        header = f.read(64)
        if header[:4] != b"\x7fELF" or header[4] != 2:
            return False
        phoff, = struct.unpack_from("<Q", header, 32)
        phentsize, phnum = struct.unpack_from("<HH", header, 54)
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            if struct.unpack("<I", f.read(4))[0] == 3:  # PT_INTERP
                return False
    return True


def build_busybox_rootfs(dest: str | os.PathLike, busybox: str = BUSYBOX) -> str:
    """Build (or bring up to date) a busybox rootfs at `dest`; returns its path."""
    dest = os.path.abspath(os.fspath(dest))
    if not os.path.exists(busybox):
        raise PyruncError(f"{busybox}: missing (install busybox-static)")
    if not _is_static(busybox):
        raise PyruncError(f"{busybox}: not a static executable (install busybox-static)")
    for path, mode in [("", 0o755)] + DIRECTORIES:
        full = os.path.join(dest, path)
        os.makedirs(full, exist_ok=True)
        os.chmod(full, mode)
    target = os.path.join(dest, "bin", "busybox")
    if not os.path.exists(target) or os.path.getsize(target) != os.path.getsize(busybox):
        shutil.copy2(busybox, target + ".tmp")
        os.replace(target + ".tmp", target)
    os.chmod(target, 0o755)
    applets = subprocess.run([busybox, "--list-full"], capture_output=True, text=True, check=True).stdout.split()
    for applet in applets:
        link = os.path.join(dest, applet)
        if os.path.lexists(link) or applet == "bin/busybox":
            continue
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(os.path.relpath(target, os.path.dirname(link)), link)
    for path, text, mode in FILES:
        full = os.path.join(dest, path)
        with open(full, "w") as f:
            f.write(text)
        os.chmod(full, mode)
    return dest
