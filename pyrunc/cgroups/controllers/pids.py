"""linux.resources.pids: the pids controller (runc fs/pids.go, fs2/pids.go). The model
of a controller module: what the section accepts, what it writes on cgroup v1 and v2,
which cgroup2 controller it needs, and its statistics."""

from __future__ import annotations

from pyrunc.cgroups.controllers.common import FIELD, INT64_MAX, INT64_MIN, Write, integers, merge_fields, obj

SECTION, CONTROLLERS, ON_V2 = "pids", ("pids",), True
_F = f"{FIELD}.pids"


def validate(raw, path: str) -> dict:
    return integers(obj(raw, path), path, {"limit": (INT64_MIN, INT64_MAX)})


merge = merge_fields


def ignored(r: dict, version: int) -> list[str]:
    return []


def _writes(r: dict, controller: str) -> list[Write]:
    limit = r["pids"]["limit"]
    if not limit:
        return []
    return [Write(controller, "pids.max", str(limit) if limit > 0 else "max", _F + ".limit")]


def v1(r: dict, probe) -> list[Write]:
    return _writes(r, "pids")


def v2(r: dict, probe) -> list[Write]:
    return _writes(r, "")


def v2_controllers(r: dict) -> list[str]:
    return ["pids"] if r["pids"]["limit"] else []


def _stats(s: dict, directory: str | None) -> None:
    import os

    from pyrunc.cgroups._stats import omit, read_int
    if directory and os.path.exists(directory + "/pids.current"):
        s["pids"] = omit({"current": read_int(directory + "/pids.current"),
                          "limit": read_int(directory + "/pids.max")})


def stats_v1(s: dict, v1: dict[str, str], unified: str | None) -> None:
    _stats(s, v1.get("pids"))


def stats_v2(s: dict, d: str) -> None:
    _stats(s, d)
