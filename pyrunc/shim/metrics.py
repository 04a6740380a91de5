"""A container's cgroup statistics (pyrunc's runc-events shape, pyrunc.cgroups._stats) as
the Metrics messages containerd decodes: io.containerd.cgroups.v1.Metrics on a v1 or
hybrid host, io.containerd.cgroups.v2.Metrics on a pure cgroup2 one."""
from __future__ import annotations

from pyrunc.shim import shim_pb2 as pb

_V1_MEMORY_RAW = ("cache", "rss", "rss_huge", "mapped_file", "dirty", "writeback", "pgpgin", "pgpgout",
                  "pgfault", "pgmajfault", "inactive_anon", "active_anon", "inactive_file", "active_file",
                  "unevictable", "hierarchical_memory_limit", "hierarchical_memsw_limit")


def _entry(target, source: dict) -> None:
    target.limit = source.get("limit", 0)
    target.usage = source.get("usage", 0)
    target.max = source.get("max", 0)
    target.failcnt = source.get("failcnt", 0)


def _v1(data: dict) -> pb.MetricsV1:
    out = pb.MetricsV1()
    pids = data.get("pids") or {}
    out.pids.current, out.pids.limit = pids.get("current", 0), pids.get("limit", 0)
    usage = (data.get("cpu") or {}).get("usage") or {}
    out.cpu.usage.total = usage.get("total", 0)
    out.cpu.usage.kernel = usage.get("kernel", 0)
    out.cpu.usage.user = usage.get("user", 0)
    out.cpu.usage.per_cpu.extend(usage.get("percpu") or [])
    throttling = (data.get("cpu") or {}).get("throttling") or {}
    out.cpu.throttling.periods = throttling.get("periods", 0)
    out.cpu.throttling.throttled_periods = throttling.get("throttledPeriods", 0)
    out.cpu.throttling.throttled_time = throttling.get("throttledTime", 0)
    memory = data.get("memory") or {}
    raw = memory.get("raw") or {}
    names = [f.name for f in pb.MemoryStat.DESCRIPTOR.fields if f.type == f.TYPE_UINT64]
    for kernel_name, field in zip(_V1_MEMORY_RAW, names):
        setattr(out.memory, field, raw.get(kernel_name, 0))
        if kernel_name not in ("hierarchical_memory_limit", "hierarchical_memsw_limit"):
            setattr(out.memory, "total_" + field, raw.get("total_" + kernel_name, 0))
    for field, key in (("usage", "usage"), ("swap", "swap"), ("kernel", "kernel"), ("kernel_tcp", "kernelTCP")):
        _entry(getattr(out.memory, field), memory.get(key) or {})
    for size, stat in (data.get("hugetlb") or {}).items():
        out.hugetlb.add(pagesize=size, usage=stat.get("usage", 0), max=stat.get("max", 0),
                        failcnt=stat.get("failcnt", 0))
    blkio = data.get("blkio") or {}
    for field, key in (("io_service_bytes_recursive", "ioServiceBytesRecursive"),
                       ("io_serviced_recursive", "ioServicedRecursive"),
                       ("io_queued_recursive", "ioQueueRecursive"),
                       ("io_service_time_recursive", "ioServiceTimeRecursive"),
                       ("io_wait_time_recursive", "ioWaitTimeRecursive"),
                       ("io_merged_recursive", "ioMergedRecursive"),
                       ("io_time_recursive", "ioTimeRecursive"),
                       ("sectors_recursive", "sectorsRecursive")):
        for e in blkio.get(key) or []:
            getattr(out.blkio, field).add(op=e.get("op", ""), major=e.get("major", 0),
                                          minor=e.get("minor", 0), value=e.get("value", 0))
    return out


def _v2(data: dict) -> pb.MetricsV2:
    out = pb.MetricsV2()
    pids = data.get("pids") or {}
    out.pids.current, out.pids.limit = pids.get("current", 0), pids.get("limit", 0)
    usage = (data.get("cpu") or {}).get("usage") or {}
    out.cpu.usage_usec = usage.get("total", 0) // 1000
    out.cpu.user_usec = usage.get("user", 0) // 1000
    out.cpu.system_usec = usage.get("kernel", 0) // 1000
    throttling = (data.get("cpu") or {}).get("throttling") or {}
    out.cpu.nr_periods = throttling.get("periods", 0)
    out.cpu.nr_throttled = throttling.get("throttledPeriods", 0)
    out.cpu.throttled_usec = throttling.get("throttledTime", 0) // 1000
    memory = data.get("memory") or {}
    raw = memory.get("raw") or {}
    for field in pb.MemoryStatV2.DESCRIPTOR.fields:
        if field.name in raw:
            setattr(out.memory, field.name, raw[field.name])
    out.memory.usage = (memory.get("usage") or {}).get("usage", 0)
    out.memory.usage_limit = (memory.get("usage") or {}).get("limit", 0)
    out.memory.swap_usage = (memory.get("swap") or {}).get("usage", 0)
    out.memory.swap_limit = (memory.get("swap") or {}).get("limit", 0)
    return out


def metrics_any(data: dict, target) -> None:
    """Fill the Any `target` with the Metrics message of this host's cgroup mode."""
    from pyrunc import cgroups
    if cgroups.mode() == "unified":
        target.type_url, message = "io.containerd.cgroups.v2.Metrics", _v2(data)
    else:
        target.type_url, message = "io.containerd.cgroups.v1.Metrics", _v1(data)
    target.value = message.SerializeToString()
