"""linux.resources.memory: the memory controller (runc fs/memory.go, fs2/memory.go)."""

from __future__ import annotations

from pyrunc.cgroups._paths import CgroupError
from pyrunc.cgroups.controllers.common import (
    FIELD, INT64_MAX, UINT64_MAX, Write, boolean, integer, integers, max_or_number, merge_fields, obj)

SECTION, CONTROLLERS, ON_V2 = "memory", ("memory",), True
_F = f"{FIELD}.memory"


def validate(raw, path: str) -> dict:
    m = obj(raw, path)
    out = integers(m, path, {key: (-1, INT64_MAX) for key in ("limit", "reservation", "swap", "kernel", "kernelTCP")})
    swappiness = m.get("swappiness")
    # runc treats -1 (what docker sends for "unset", as uint64 wrap-around too) as unset
    out["swappiness"] = (None if swappiness is None or swappiness in (-1, UINT64_MAX)
                         else integer(swappiness, path + ".swappiness", 0, 100))
    for key in ("disableOOMKiller", "useHierarchy", "checkBeforeUpdate"):
        out[key] = boolean(m.get(key), f"{path}.{key}")
    return out


def merge(old: dict, new: dict) -> dict:
    if new.get("limit") == -1 and not new.get("swap") and old.get("swap"):
        # runc update sends only the flags given, and an unlimited memory without a swap
        # value lifts memory+swap too (fs/memory.go setMemoryAndSwap): keeping the old
        # memsw below an unlimited memory is what the kernel refuses
        new = dict(new, swap=-1)
    return merge_fields(old, new)


def ignored(r: dict, version: int) -> list[str]:
    """Fields runc 1.1 accepts and ignores."""
    mem = r["memory"]
    out = [f"{_F}.{key}" for key in ("kernel", "kernelTCP") if mem[key]]
    if version == 2:
        if mem["swappiness"] is not None:
            out.append(f"{_F}.swappiness")
        if mem["disableOOMKiller"]:
            out.append(f"{_F}.disableOOMKiller")
    return out


def v1(r: dict, probe) -> list[Write]:
    # memsw (limit+swap) must stay >= limit at every step, so the order depends on the
    # direction (runc fs/memory.go setMemoryAndSwap)
    mem = r["memory"]
    w: list[Write] = []
    limit, swap = mem["limit"], mem["swap"]
    if limit == -1 and swap == 0 and probe.exists("memory", "memory.memsw.limit_in_bytes"):
        swap = -1
    limit_w = Write("memory", "memory.limit_in_bytes", str(limit), _F + ".limit")
    swap_w = Write("memory", "memory.memsw.limit_in_bytes", str(swap), _F + ".swap")
    if limit and swap:
        current = probe.read_int("memory", "memory.limit_in_bytes")
        if swap == -1 or current < swap:
            w += [swap_w, limit_w]
        else:
            w += [limit_w, swap_w]
    else:
        if limit:
            w.append(limit_w)
        if swap:
            w.append(swap_w)
    if mem["reservation"]:
        w.append(Write("memory", "memory.soft_limit_in_bytes", str(mem["reservation"]), _F + ".reservation"))
    if mem["disableOOMKiller"]:
        w.append(Write("memory", "memory.oom_control", "1", _F + ".disableOOMKiller"))
    if mem["swappiness"] is not None:
        w.append(Write("memory", "memory.swappiness", str(mem["swappiness"]), _F + ".swappiness"))
    return w


def swap_to_v2(swap: int, limit: int) -> int:
    """runc's ConvertMemorySwapToCgroupV2Value: OCI swap is memory+swap (v1 memsw);
    memory.swap.max is swap alone. -1 = unlimited, 0 = unset."""
    if limit == -1 and swap == 0:
        return -1
    if swap in (-1, 0):
        return swap
    if limit in (0, -1):
        raise CgroupError(f"{_F}.swap: unable to set swap limit without memory limit")
    if swap < limit:
        raise CgroupError(f"{_F}.swap: memory+swap limit ({swap}) should be >= memory limit ({limit})")
    return swap - limit


def v2(r: dict, probe) -> list[Write]:
    mem = r["memory"]
    w: list[Write] = []
    swap = swap_to_v2(mem["swap"], mem["limit"])
    swap_text = max_or_number(swap)
    if swap_text == "" and swap == 0 and mem["swap"] > 0:
        swap_text = "0"  # memory == memory+swap: no swap at all
    if swap_text:
        # without swap accounting the file is missing; runc tolerates that for max/0
        w.append(Write("", "memory.swap.max", swap_text, _F + ".swap", ignore_missing=swap_text in ("max", "0")))
    if mem["limit"]:
        if mem["checkBeforeUpdate"] and mem["limit"] > 0:
            usage = probe.read_int("", "memory.current")
            if usage > mem["limit"]:
                raise CgroupError(f"{_F}.limit: rejecting memory limit {mem['limit']} below usage {usage}")
        w.append(Write("", "memory.max", max_or_number(mem["limit"]), _F + ".limit"))
    if mem["reservation"]:
        w.append(Write("", "memory.low", max_or_number(mem["reservation"]), _F + ".reservation"))
    return w


def v2_controllers(r: dict) -> list[str]:
    return ["memory"] if any(r["memory"][k] for k in ("limit", "reservation", "swap")) else []


def stats_v1(s: dict, v1: dict[str, str], unified: str | None) -> None:
    from pyrunc.cgroups._stats import kv, mem_entry, omit, read_int
    mem = v1.get("memory")
    if not mem:
        return
    raw = dict(sorted(kv(mem + "/memory.stat").items()))  # Go marshals maps sorted

    def entry(prefix: str) -> dict:
        return mem_entry(read_int(f"{mem}/{prefix}.limit_in_bytes"), read_int(f"{mem}/{prefix}.usage_in_bytes"),
                         read_int(f"{mem}/{prefix}.max_usage_in_bytes"), read_int(f"{mem}/{prefix}.failcnt"))

    s["memory"] = omit({"cache": raw.get("cache", 0), "usage": entry("memory"),
                        "swap": entry("memory.memsw"), "kernel": entry("memory.kmem"),
                        "kernelTCP": entry("memory.kmem.tcp"), "raw": raw},
                       "usage", "swap", "kernel", "kernelTCP")


def stats_v2(s: dict, d: str) -> None:
    import os

    from pyrunc.cgroups._stats import kv, mem_entry, omit, read, read_int
    if not os.path.exists(d + "/memory.current"):
        return
    raw = dict(sorted(kv(d + "/memory.stat").items()))
    events = kv(d + "/memory.events")

    def limit(name: str) -> int:
        return UINT64_MAX if (read(f"{d}/{name}") or "").strip() == "max" else read_int(f"{d}/{name}")

    usage = read_int(d + "/memory.current")
    s["memory"] = omit({
        "cache": raw.get("file", 0),
        "usage": mem_entry(limit("memory.max"), usage, read_int(d + "/memory.peak"), events.get("max", 0)),
        # runc reports swap as memory+swap on v2 as well, for v1 compatibility
        "swap": mem_entry(limit("memory.swap.max"), usage + read_int(d + "/memory.swap.current"), 0, 0),
        "kernel": {"limit": 0, "failcnt": 0}, "kernelTCP": {"limit": 0, "failcnt": 0},
        "raw": raw}, "usage", "swap", "kernel", "kernelTCP")
