"""linux.resources.hugepageLimits: the hugetlb controller (runc fs/hugetlb.go,
fs2/hugetlb.go). On hybrid hosts where hugetlb lives only in cgroup2 (like this
project's CI host), its cgroup2 files in the unified directory."""

from __future__ import annotations

from pyrunc.cgroups.controllers.common import (
    FIELD, UINT64_MAX, Write, array, fail, integer, is_number, merge_list, obj, string)

SECTION, CONTROLLERS, ON_V2 = "hugepageLimits", ("hugetlb",), True
_F = f"{FIELD}.hugepageLimits"


def validate(raw, path: str) -> list[dict]:
    out = []
    for i, h in enumerate(array(raw, path)):
        hp = f"{path}[{i}]"
        h = obj(h, hp)
        size = string(h.get("pageSize"), hp + ".pageSize")
        if not (len(size) > 2 and size[-2:] in ("KB", "MB", "GB", "TB") and is_number(size[:-2])):
            fail(hp + ".pageSize", f"invalid page size {size!r} (expected e.g. \"2MB\")")
        out.append({"pageSize": size, "limit": integer(h.get("limit"), hp + ".limit", 0, UINT64_MAX)})
    return out


merge = merge_list


def ignored(r: dict, version: int) -> list[str]:
    return []


def v1(r: dict, probe) -> list[Write]:
    v1_hierarchy = probe.exists("hugetlb", "")
    return [Write("hugetlb", f"hugetlb.{h['pageSize']}.limit_in_bytes", str(h["limit"]), f"{_F}[{i}]")
            if v1_hierarchy else Write("", f"hugetlb.{h['pageSize']}.max", str(h["limit"]), f"{_F}[{i}]")
            for i, h in enumerate(r["hugepageLimits"])]


def v2(r: dict, probe) -> list[Write]:
    return [Write("", f"hugetlb.{h['pageSize']}.max", str(h["limit"]), f"{_F}[{i}]")
            for i, h in enumerate(r["hugepageLimits"])]


def v2_controllers(r: dict) -> list[str]:
    return ["hugetlb"] if r["hugepageLimits"] else []


def _page_sizes() -> list[str]:
    """Kernel page size dirs (hugepages-2048kB) in cgroup naming (2MB)."""
    import os
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


def _v2_entry(directory: str, size: str) -> dict:
    from pyrunc.cgroups._stats import kv, omit, read_int
    base = f"{directory}/hugetlb.{size}"
    return omit({"usage": read_int(base + ".current"), "max": read_int(base + ".max"),
                 "failcnt": kv(base + ".events").get("max", 0)}, "failcnt")


def stats_v1(s: dict, v1: dict[str, str], unified: str | None) -> None:
    import os

    from pyrunc.cgroups._stats import omit, read_int
    huge = v1.get("hugetlb")
    for size in _page_sizes():
        if huge:
            base = f"{huge}/hugetlb.{size}"
            s["hugetlb"][size] = omit({"usage": read_int(base + ".usage_in_bytes"),
                                       "max": read_int(base + ".max_usage_in_bytes"),
                                       "failcnt": read_int(base + ".failcnt")}, "failcnt")
        elif unified and os.path.exists(f"{unified}/hugetlb.{size}.current"):
            s["hugetlb"][size] = _v2_entry(unified, size)


def stats_v2(s: dict, d: str) -> None:
    import os
    for size in _page_sizes():
        if os.path.exists(f"{d}/hugetlb.{size}.current"):
            s["hugetlb"][size] = _v2_entry(d, size)
