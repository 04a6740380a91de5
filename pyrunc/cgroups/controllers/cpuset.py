"""linux.resources.cpu.cpus and .mems: the cpuset controller (runc fs/cpuset.go,
fs2/cpuset.go). Filling empty v1 cpusets on the way to the container is placement
(pyrunc.cgroups._v1.fill_cpusets)."""

from __future__ import annotations

from pyrunc.cgroups.controllers.common import FIELD, Write, fail, is_number, merge_fields, obj, string

SECTION, CONTROLLERS, ON_V2 = "cpu", ("cpuset",), True
_F = f"{FIELD}.cpu"


def _is_cpu_range(part: str) -> bool:
    """"N" or "N-M" (decimal digits only)."""
    lo, dash, hi = part.partition("-")
    return is_number(lo) and (not dash or is_number(hi))


def _cpu_list(value, path: str) -> str:
    text = string(value, path).strip()
    if text and not all(_is_cpu_range(part) for part in text.split(",")):
        fail(path, f"invalid cpu/memory-node list {text!r} (expected e.g. \"0-3,5\")")
    for part in text.split(",") if text else ():
        lo, _, hi = part.partition("-")
        if hi and int(hi) < int(lo):
            fail(path, f"invalid range {part!r} in {text!r}")
    return text


def validate(raw, path: str) -> dict:
    c = obj(raw, path)
    return {"cpus": _cpu_list(c.get("cpus"), path + ".cpus"), "mems": _cpu_list(c.get("mems"), path + ".mems")}


merge = merge_fields


def ignored(r: dict, version: int) -> list[str]:
    return []


def _writes(r: dict, controller: str) -> list[Write]:
    cpu = r["cpu"]
    return [Write(controller, f"cpuset.{key}", cpu[key], f"{_F}.{key}") for key in ("cpus", "mems") if cpu[key]]


def v1(r: dict, probe) -> list[Write]:
    return _writes(r, "cpuset")


def v2(r: dict, probe) -> list[Write]:
    return _writes(r, "")


def v2_controllers(r: dict) -> list[str]:
    return ["cpuset"] if r["cpu"]["cpus"] or r["cpu"]["mems"] else []


def stats_v1(s: dict, v1: dict[str, str], unified: str | None) -> None:
    from pyrunc.cgroups._stats import cpu_list, omit, read, read_int
    cpuset = v1.get("cpuset")
    if not cpuset:
        return
    flags = ("cpu_exclusive", "mem_hardwall", "mem_exclusive", "memory_migrate", "memory_spread_page",
             "memory_spread_slab", "memory_pressure", "sched_load_balance", "sched_relax_domain_level")
    values = {"cpus": cpu_list(read(cpuset + "/cpuset.cpus")), "cpu_exclusive": 0,
              "mems": cpu_list(read(cpuset + "/cpuset.mems"))}
    values.update((flag, read_int(f"{cpuset}/cpuset.{flag}")) for flag in flags)
    s["cpuset"] = omit(values, *flags)


def stats_v2(s: dict, d: str) -> None:
    import os

    from pyrunc.cgroups._stats import cpu_list, read
    if os.path.exists(d + "/cpuset.cpus.effective"):
        s["cpuset"] = {"cpus": cpu_list(read(d + "/cpuset.cpus.effective")), "cpu_exclusive": 0,
                       "mems": cpu_list(read(d + "/cpuset.mems.effective")), "mem_hardwall": 0,
                       "mem_exclusive": 0, "memory_migrate": 0, "memory_spread_page": 0,
                       "memory_spread_slab": 0, "memory_pressure": 0, "sched_load_balance": 0,
                       "sched_relax_domain_level": 0}
