"""linux.resources.cpu scheduling fields: the cpu controller (runc fs/cpu.go,
fs2/cpu.go); its cpus/mems belong to controllers/cpuset.py. Statistics come from cpu
and, on v1, cpuacct."""

from __future__ import annotations

from pyrunc.cgroups._paths import CgroupError
from pyrunc.cgroups.controllers.common import (
    FIELD, INT64_MAX, UINT64_MAX, Write, integer, integers, merge_fields, obj)

SECTION, CONTROLLERS, ON_V2 = "cpu", ("cpu",), True
_F = f"{FIELD}.cpu"


def validate(raw, path: str) -> dict:
    c = obj(raw, path)
    out = integers(c, path, {"shares": (0, UINT64_MAX), "quota": (-1, INT64_MAX), "burst": (0, UINT64_MAX),
                             "period": (0, UINT64_MAX), "realtimeRuntime": (-1, INT64_MAX),
                             "realtimePeriod": (0, UINT64_MAX)})
    out["idle"] = None if c.get("idle") is None else integer(c["idle"], path + ".idle", -1, 1)
    return out


merge = merge_fields


def ignored(r: dict, version: int) -> list[str]:
    return []


def v1(r: dict, probe) -> list[Write]:
    # rt first is runc's Apply order; shares; period+quota
    cpu = r["cpu"]
    w: list[Write] = []
    for key, name in (("realtimePeriod", "cpu.rt_period_us"), ("realtimeRuntime", "cpu.rt_runtime_us"),
                      ("shares", "cpu.shares"), ("period", "cpu.cfs_period_us"),
                      ("quota", "cpu.cfs_quota_us"), ("burst", "cpu.cfs_burst_us")):
        if cpu[key]:
            w.append(Write("cpu", name, str(cpu[key]), f"{_F}.{key}"))
    if cpu["idle"] is not None:
        w.append(Write("cpu", "cpu.idle", str(cpu["idle"]), _F + ".idle"))
    return w


def shares_to_weight(shares: int) -> int:
    """runc's cgroups.ConvertCPUSharesToCgroupV2Value: [2, 262144] → [1, 10000]."""
    if shares == 0:
        return 0
    return 1 + ((shares - 2) * 9999) // 262142


def v2(r: dict, probe) -> list[Write]:
    cpu = r["cpu"]
    w: list[Write] = []
    if cpu["realtimePeriod"] or cpu["realtimeRuntime"]:
        raise CgroupError(f"{_F}.realtimeRuntime: realtime scheduling limits are not supported on cgroup v2")
    if cpu["idle"] is not None:
        w.append(Write("", "cpu.idle", str(cpu["idle"]), _F + ".idle"))
    if cpu["idle"] != 1:
        if cpu["shares"]:
            w.append(Write("", "cpu.weight", str(shares_to_weight(cpu["shares"])), _F + ".shares"))
        if cpu["quota"] or cpu["period"]:
            text = str(cpu["quota"]) if cpu["quota"] > 0 else "max"
            if cpu["period"]:
                text += f" {cpu['period']}"
            w.append(Write("", "cpu.max", text, _F + ".quota"))
        if cpu["burst"]:
            w.append(Write("", "cpu.max.burst", str(cpu["burst"]), _F + ".burst"))
    return w


def v2_controllers(r: dict) -> list[str]:
    cpu = r["cpu"]
    used = cpu["shares"] or cpu["quota"] or cpu["period"] or cpu["burst"] or cpu["idle"] is not None
    return ["cpu"] if used else []


def stats_v1(s: dict, v1: dict[str, str], unified: str | None) -> None:
    import os

    from pyrunc.cgroups._stats import kv, omit, read, read_int
    acct = v1.get("cpuacct")
    if acct:
        ticks = os.sysconf("SC_CLK_TCK")
        stat = kv(acct + "/cpuacct.stat")

        def per_cpu(name: str) -> list[int]:
            return [int(x) for x in (read(f"{acct}/{name}") or "").split()]

        s["cpu"]["usage"] = omit({
            "total": read_int(acct + "/cpuacct.usage"),
            "percpu": per_cpu("cpuacct.usage_percpu"),
            "percpu_kernel": per_cpu("cpuacct.usage_percpu_sys"),
            "percpu_user": per_cpu("cpuacct.usage_percpu_user"),
            "kernel": stat.get("system", 0) * 1_000_000_000 // ticks,
            "user": stat.get("user", 0) * 1_000_000_000 // ticks}, "kernel", "user")
    cpu = v1.get("cpu")
    if cpu:
        st = kv(cpu + "/cpu.stat")
        s["cpu"]["throttling"] = omit({"periods": st.get("nr_periods", 0),
                                       "throttledPeriods": st.get("nr_throttled", 0),
                                       "throttledTime": st.get("throttled_time", 0)})


def stats_v2(s: dict, d: str) -> None:
    from pyrunc.cgroups._stats import NS_PER_USEC, kv, omit
    st = kv(d + "/cpu.stat")
    s["cpu"]["usage"] = omit({"total": st.get("usage_usec", 0) * NS_PER_USEC,
                              "kernel": st.get("system_usec", 0) * NS_PER_USEC,
                              "user": st.get("user_usec", 0) * NS_PER_USEC}, "kernel", "user")
    s["cpu"]["throttling"] = omit({"periods": st.get("nr_periods", 0),
                                   "throttledPeriods": st.get("nr_throttled", 0),
                                   "throttledTime": st.get("throttled_usec", 0) * NS_PER_USEC})
