"""Container statistics in runc's `events` shape (runc 1.1 types/events.go, after
convertLibcontainerStats) and OOM notification, from cgroup v1 and cgroup2 files.

Field presence follows Go's encoding/json: `omitempty` fields are dropped when zero,
struct-valued fields never are."""

from __future__ import annotations

import os

from pyrunc.cgroups._paths import UNIFIED_KEY

_NS_PER_USEC = 1000


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _int(path: str) -> int:
    text = _read(path)
    if text is None:
        return 0
    text = text.strip()
    if text == "max":
        return 0
    try:
        return int(text.split()[0])
    except (ValueError, IndexError):
        return 0


def _kv(path: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in (_read(path) or "").splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                pass
    return out


def _omit(d: dict, *keep: str) -> dict:
    """Drop zero/empty values (omitempty) except the keys in `keep`."""
    return {k: v for k, v in d.items() if k in keep or v not in (0, None, [], "", {})}


def _cpu_list(text: str | None) -> list[int]:
    out: list[int] = []
    for part in (text or "").strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def _mem_entry(limit: int, usage: int, max_usage: int, failcnt: int) -> dict:
    return _omit({"limit": limit, "usage": usage, "max": max_usage, "failcnt": failcnt},
                 "limit", "failcnt")


def _blkio_entries(path: str) -> list[dict]:
    out = []
    for line in (_read(path) or "").splitlines():
        parts = line.split()
        if len(parts) == 3 and ":" in parts[0]:
            major, _, minor = parts[0].partition(":")
            out.append(_omit({"major": int(major), "minor": int(minor), "op": parts[1],
                              "value": int(parts[2])}))
        elif len(parts) == 2 and ":" in parts[0]:
            major, _, minor = parts[0].partition(":")
            out.append(_omit({"major": int(major), "minor": int(minor), "op": "", "value": int(parts[1])}))
    return out


def _hugepage_sizes() -> list[str]:
    """Kernel page size dirs (hugepages-2048kB) in cgroup naming (2MB)."""
    sizes = []
    try:
        names = os.listdir("/sys/kernel/mm/hugepages")
    except OSError:
        return sizes
    for name in names:
        kb = int(name[len("hugepages-"):-len("kB")])
        for unit, factor in (("GB", 1 << 20), ("MB", 1 << 10), ("KB", 1)):
            if kb % factor == 0:
                sizes.append(f"{kb // factor}{unit}")
                break
    return sorted(sizes)


def collect(mgr) -> dict:
    dirs = mgr.paths
    v1 = {}
    for key, path in dirs.items():
        if key != UNIFIED_KEY:
            for name in key.split(","):
                v1[name] = path
    unified = dirs.get(UNIFIED_KEY)
    if mgr.mode == "unified":
        return _collect_v2(unified)
    return _collect_v1(v1, unified)


def _empty() -> dict:
    return {"cpu": {"usage": {"kernel": 0, "user": 0}, "throttling": {}}, "cpuset": {},
            "memory": {"usage": {"limit": 0, "failcnt": 0}, "swap": {"limit": 0, "failcnt": 0},
                       "kernel": {"limit": 0, "failcnt": 0}, "kernelTCP": {"limit": 0, "failcnt": 0}},
            "pids": {}, "blkio": {}, "hugetlb": {}, "intel_rdt": {}, "network_interfaces": None}


def _collect_v1(v1: dict[str, str], unified: str | None) -> dict:
    s = _empty()
    acct = v1.get("cpuacct")
    if acct:
        ticks = os.sysconf("SC_CLK_TCK")
        stat = _kv(acct + "/cpuacct.stat")
        s["cpu"]["usage"] = _omit({
            "total": _int(acct + "/cpuacct.usage"),
            "percpu": [int(x) for x in (_read(acct + "/cpuacct.usage_percpu") or "").split()],
            "percpu_kernel": [int(x) for x in (_read(acct + "/cpuacct.usage_percpu_sys") or "").split()],
            "percpu_user": [int(x) for x in (_read(acct + "/cpuacct.usage_percpu_user") or "").split()],
            "kernel": stat.get("system", 0) * 1_000_000_000 // ticks,
            "user": stat.get("user", 0) * 1_000_000_000 // ticks}, "kernel", "user")
    cpu = v1.get("cpu")
    if cpu:
        st = _kv(cpu + "/cpu.stat")
        s["cpu"]["throttling"] = _omit({"periods": st.get("nr_periods", 0),
                                        "throttledPeriods": st.get("nr_throttled", 0),
                                        "throttledTime": st.get("throttled_time", 0)})
    cpuset = v1.get("cpuset")
    if cpuset:
        s["cpuset"] = _omit({
            "cpus": _cpu_list(_read(cpuset + "/cpuset.cpus")),
            "cpu_exclusive": _int(cpuset + "/cpuset.cpu_exclusive"),
            "mems": _cpu_list(_read(cpuset + "/cpuset.mems")),
            "mem_hardwall": _int(cpuset + "/cpuset.mem_hardwall"),
            "mem_exclusive": _int(cpuset + "/cpuset.mem_exclusive"),
            "memory_migrate": _int(cpuset + "/cpuset.memory_migrate"),
            "memory_spread_page": _int(cpuset + "/cpuset.memory_spread_page"),
            "memory_spread_slab": _int(cpuset + "/cpuset.memory_spread_slab"),
            "memory_pressure": _int(cpuset + "/cpuset.memory_pressure"),
            "sched_load_balance": _int(cpuset + "/cpuset.sched_load_balance"),
            "sched_relax_domain_level": _int(cpuset + "/cpuset.sched_relax_domain_level")},
            "cpu_exclusive", "mem_hardwall", "mem_exclusive", "memory_migrate", "memory_spread_page",
            "memory_spread_slab", "memory_pressure", "sched_load_balance", "sched_relax_domain_level")
    mem = v1.get("memory")
    if mem:
        raw = dict(sorted(_kv(mem + "/memory.stat").items()))  # Go marshals maps sorted

        def entry(prefix: str) -> dict:
            return _mem_entry(_int(f"{mem}/{prefix}.limit_in_bytes"), _int(f"{mem}/{prefix}.usage_in_bytes"),
                              _int(f"{mem}/{prefix}.max_usage_in_bytes"), _int(f"{mem}/{prefix}.failcnt"))

        s["memory"] = _omit({"cache": raw.get("cache", 0), "usage": entry("memory"),
                             "swap": entry("memory.memsw"), "kernel": entry("memory.kmem"),
                             "kernelTCP": entry("memory.kmem.tcp"), "raw": raw},
                            "usage", "swap", "kernel", "kernelTCP")
    pids = v1.get("pids")
    if pids:
        s["pids"] = _omit({"current": _int(pids + "/pids.current"), "limit": _int(pids + "/pids.max")})
    blkio = v1.get("blkio")
    if blkio:
        # CFQ's recursive stats when present, else the throttle ones (runc's fallback)
        prefix = "blkio" if os.path.exists(blkio + "/blkio.io_service_bytes_recursive") else "blkio.throttle"
        s["blkio"] = _omit({
            "ioServiceBytesRecursive": _blkio_entries(f"{blkio}/{prefix}.io_service_bytes_recursive"),
            "ioServicedRecursive": _blkio_entries(f"{blkio}/{prefix}.io_serviced_recursive"),
            "ioQueueRecursive": _blkio_entries(f"{blkio}/blkio.io_queued_recursive"),
            "ioServiceTimeRecursive": _blkio_entries(f"{blkio}/blkio.io_service_time_recursive"),
            "ioWaitTimeRecursive": _blkio_entries(f"{blkio}/blkio.io_wait_time_recursive"),
            "ioMergedRecursive": _blkio_entries(f"{blkio}/blkio.io_merged_recursive"),
            "ioTimeRecursive": _blkio_entries(f"{blkio}/blkio.time_recursive"),
            "sectorsRecursive": _blkio_entries(f"{blkio}/blkio.sectors_recursive")})
    huge = v1.get("hugetlb")
    for size in _hugepage_sizes():
        if huge:
            base = f"{huge}/hugetlb.{size}"
            s["hugetlb"][size] = _omit({"usage": _int(base + ".usage_in_bytes"),
                                        "max": _int(base + ".max_usage_in_bytes"),
                                        "failcnt": _int(base + ".failcnt")}, "failcnt")
        elif unified and os.path.exists(f"{unified}/hugetlb.{size}.current"):
            s["hugetlb"][size] = _v2_hugetlb(unified, size)
    return s


def _v2_hugetlb(directory: str, size: str) -> dict:
    base = f"{directory}/hugetlb.{size}"
    return _omit({"usage": _int(base + ".current"), "max": _int(base + ".max"),
                  "failcnt": _kv(base + ".events").get("max", 0)}, "failcnt")


def _collect_v2(d: str | None) -> dict:
    s = _empty()
    if d is None:
        return s
    st = _kv(d + "/cpu.stat")
    s["cpu"]["usage"] = _omit({"total": st.get("usage_usec", 0) * _NS_PER_USEC,
                               "kernel": st.get("system_usec", 0) * _NS_PER_USEC,
                               "user": st.get("user_usec", 0) * _NS_PER_USEC}, "kernel", "user")
    s["cpu"]["throttling"] = _omit({"periods": st.get("nr_periods", 0),
                                    "throttledPeriods": st.get("nr_throttled", 0),
                                    "throttledTime": st.get("throttled_usec", 0) * _NS_PER_USEC})
    if os.path.exists(d + "/cpuset.cpus.effective"):
        s["cpuset"] = {"cpus": _cpu_list(_read(d + "/cpuset.cpus.effective")), "cpu_exclusive": 0,
                       "mems": _cpu_list(_read(d + "/cpuset.mems.effective")), "mem_hardwall": 0,
                       "mem_exclusive": 0, "memory_migrate": 0, "memory_spread_page": 0,
                       "memory_spread_slab": 0, "memory_pressure": 0, "sched_load_balance": 0,
                       "sched_relax_domain_level": 0}
    if os.path.exists(d + "/memory.current"):
        raw = dict(sorted(_kv(d + "/memory.stat").items()))
        events = _kv(d + "/memory.events")
        max_text = (_read(d + "/memory.max") or "").strip()
        limit = (1 << 64) - 1 if max_text == "max" else _int(d + "/memory.max")
        swap_max_text = (_read(d + "/memory.swap.max") or "").strip()
        swap_limit = (1 << 64) - 1 if swap_max_text == "max" else _int(d + "/memory.swap.max")
        usage = _int(d + "/memory.current")
        s["memory"] = _omit({
            "cache": raw.get("file", 0),
            "usage": _mem_entry(limit, usage, _int(d + "/memory.peak"), events.get("max", 0)),
            # runc reports swap as memory+swap on v2 as well, for v1 compatibility
            "swap": _mem_entry(swap_limit, usage + _int(d + "/memory.swap.current"), 0, 0),
            "kernel": {"limit": 0, "failcnt": 0}, "kernelTCP": {"limit": 0, "failcnt": 0},
            "raw": raw}, "usage", "swap", "kernel", "kernelTCP")
    if os.path.exists(d + "/pids.current"):
        s["pids"] = _omit({"current": _int(d + "/pids.current"), "limit": _int(d + "/pids.max")})
    if os.path.exists(d + "/io.stat"):
        by_bytes, by_ops = [], []
        for line in (_read(d + "/io.stat") or "").splitlines():
            parts = line.split()
            if not parts or ":" not in parts[0]:
                continue
            major, _, minor = parts[0].partition(":")
            kv = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
            for key, op, target in (("rbytes", "Read", by_bytes), ("wbytes", "Write", by_bytes),
                                    ("rios", "Read", by_ops), ("wios", "Write", by_ops)):
                target.append(_omit({"major": int(major), "minor": int(minor), "op": op,
                                     "value": int(kv.get(key, 0))}))
        s["blkio"] = _omit({"ioServiceBytesRecursive": by_bytes, "ioServicedRecursive": by_ops})
    for size in _hugepage_sizes():
        if os.path.exists(f"{d}/hugetlb.{size}.current"):
            s["hugetlb"][size] = _v2_hugetlb(d, size)
    return s


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
        mem = mgr._v1_dir("memory") if mgr.mode != "unified" else None
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
            self._seen = _kv(self._events_file).get("oom_kill", 0)

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
            count = _kv(self._events_file).get("oom_kill", 0)
            new, self._seen = max(0, count - self._seen), count
            return new
        return 0

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
