"""linux.intelRdt: pyrunc does not place containers in resctrl groups, so a config that
asks for cache or memory-bandwidth schemata is refused before anything is created, with
runc 1.1.5's words on a host without the facility (libcontainer/configs/validate). A
bare closID or the monitoring flags are accepted and have no effect, as runc accepts
them on such a host."""
from __future__ import annotations

from pyrunc.errors import PyruncError


def _resctrl_info(feature: str) -> bool:
    """Whether the resctrl filesystem is mounted and offers `feature` ("L3", "MB")."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            head, _, tail = line.partition(" - ")
            if tail.split(" ", 1)[0] == "resctrl":
                import os
                return os.path.isdir(f"{head.split()[4]}/info/{feature}")
    return False


def check(rdt) -> None:
    """Refuse what `rdt` (spec.model.IntelRdt or None) asks of this host."""
    if rdt is None:
        return
    for value, feature, field, name in ((rdt.l3_cache_schema, "L3", "l3CacheSchema", "CAT"),
                                         (rdt.mem_bw_schema, "MB", "memBwSchema", "MBA")):
        if not value:
            continue
        if not _resctrl_info(feature):
            raise PyruncError(f"intelRdt.{field} is specified in config, but Intel RDT/{name} is not enabled")
        raise PyruncError(f"linux.intelRdt.{field}: Intel RDT is not supported by pyrunc")
