"""Container statistics in runc's `events` shape (runc 1.1 types/events.go, after
convertLibcontainerStats) and OOM notification, from cgroup v1 and cgroup2 files. Each
controller module (pyrunc.cgroups.controllers) reads its own files with the tolerant
readers below; a file that is missing or unreadable counts as zero.

Field presence follows Go's encoding/json: `omitempty` fields are dropped when zero,
struct-valued fields never are."""

from __future__ import annotations

import os

from pyrunc.cgroups._paths import UNIFIED_KEY
from pyrunc.textfile import read_or_none as read  # the controllers' tolerant read

NS_PER_USEC = 1000


def read_int(path: str) -> int:
    text = read(path)
    if text is None:
        return 0
    text = text.strip()
    if text == "max":
        return 0
    try:
        return int(text.split()[0])
    except (ValueError, IndexError):
        return 0


def kv(path: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in (read(path) or "").splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                pass
    return out


def omit(d: dict, *keep: str) -> dict:
    """Drop zero/empty values (omitempty) except the keys in `keep`."""
    return {k: v for k, v in d.items() if k in keep or v not in (0, None, [], "", {})}


def cpu_list(text: str | None) -> list[int]:
    out: list[int] = []
    for part in (text or "").strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def mem_entry(limit: int, usage: int, max_usage: int, failcnt: int) -> dict:
    return omit({"limit": limit, "usage": usage, "max": max_usage, "failcnt": failcnt},
                 "limit", "failcnt")


def collect(mgr) -> dict:
    """runc's events "stats" data object, each controller module filling its part."""
    from pyrunc.cgroups import controllers
    s = _empty()
    unified = mgr.unified_path
    if mgr.mode == "unified":
        if unified is not None:
            for m in controllers.all_modules():
                m.stats_v2(s, unified)
        return s
    v1 = {name: path for key, path in mgr.paths.items() if key != UNIFIED_KEY for name in key.split(",")}
    for m in controllers.all_modules():
        m.stats_v1(s, v1, unified)
    return s


def _empty() -> dict:
    return {"cpu": {"usage": {"kernel": 0, "user": 0}, "throttling": {}}, "cpuset": {},
            "memory": {"usage": {"limit": 0, "failcnt": 0}, "swap": {"limit": 0, "failcnt": 0},
                       "kernel": {"limit": 0, "failcnt": 0}, "kernelTCP": {"limit": 0, "failcnt": 0}},
            "pids": {}, "blkio": {}, "hugetlb": {}, "intel_rdt": {}, "network_interfaces": None}


class OomWatch:
    """OOM notification for one container.

    v1: an eventfd registered through cgroup.event_control on memory.oom_control; it
    becomes readable on every OOM, and also when the cgroup is removed. cgroup2:
    memory.events' oom_kill counter, re-read by check() (poll it periodically).
    """

    def __init__(self, mgr) -> None:
        self.fd = -1
        self._events_file: str | None = None
        self._seen = 0
        self._memory_dir: str | None = None
        mem = mgr.v1_dir("memory") if mgr.mode != "unified" else None
        if mem is not None:
            efd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
            ofd = os.open(mem + "/memory.oom_control", os.O_RDONLY | os.O_CLOEXEC)
            try:
                control = os.open(mem + "/cgroup.event_control", os.O_WRONLY | os.O_CLOEXEC)
                try:
                    os.write(control, f"{efd} {ofd}".encode())
                finally:
                    os.close(control)
            except OSError:
                os.close(efd)
                raise
            finally:
                os.close(ofd)
            self.fd = efd
            self._memory_dir = mem
        elif mgr.unified_path is not None:
            self._events_file = mgr.unified_path + "/memory.events"
            self._seen = kv(self._events_file).get("oom_kill", 0)

    def fileno(self) -> int:
        return self.fd

    def check(self) -> int:
        """New OOM kills since the last call."""
        if self.fd >= 0:
            try:
                count = os.eventfd_read(self.fd)
            except OSError:  # BlockingIOError: nothing happened
                return 0
            # the eventfd also fires when the cgroup is removed: that is no OOM
            return count if os.path.exists(self._memory_dir + "/memory.oom_control") else 0
        if self._events_file is not None:
            count = kv(self._events_file).get("oom_kill", 0)
            new, self._seen = max(0, count - self._seen), count
            return new
        return 0

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
