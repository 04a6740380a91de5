"""Reading a small host file (procfs, sysfs, cgroupfs, securityfs) that may be missing:
a leaf, imported by facilities that must not import each other (cgroup stats, LSM)."""
from __future__ import annotations


def read_or_none(path: str) -> str | None:
    """The file's text, or None when it cannot be read (missing, no permission ...)."""
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None
