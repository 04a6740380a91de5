"""linux.resources.network: net_cls and net_prio on cgroup v1 (runc fs/net_cls.go,
fs/net_prio.go). cgroup2 has neither: runc's fs2 manager ignores the section, and so
does pyrunc there."""

from __future__ import annotations

from pyrunc.cgroups.controllers.common import (
    FIELD, UINT32_MAX, Write, array, fail, integer, merge_fields, obj, string)

SECTION, CONTROLLERS, ON_V2 = "network", ("net_cls", "net_prio"), False
_F = f"{FIELD}.network"


def validate(raw, path: str) -> dict:
    n = obj(raw, path)
    prios = []
    for i, x in enumerate(array(n.get("priorities"), path + ".priorities")):
        xp = f"{path}.priorities[{i}]"
        x = obj(x, xp)
        name = string(x.get("name"), xp + ".name")
        if not name or any(ch.isspace() for ch in name) or "/" in name:
            fail(xp + ".name", f"invalid interface name {name!r}")
        prios.append({"name": name, "priority": integer(x.get("priority"), xp + ".priority", 0, UINT32_MAX)})
    return {"classID": integer(n.get("classID"), path + ".classID", 0, UINT32_MAX), "priorities": prios}


merge = merge_fields


def ignored(r: dict, version: int) -> list[str]:
    net = r["network"]
    if version != 2:
        return []
    return [f"{_F}.{key}" for key in ("classID", "priorities") if net[key]]


def v1(r: dict, probe) -> list[Write]:
    net = r["network"]
    w = []
    if net["classID"]:
        w.append(Write("net_cls", "net_cls.classid", str(net["classID"]), _F + ".classID"))
    for i, x in enumerate(net["priorities"]):
        w.append(Write("net_prio", "net_prio.ifpriomap", f"{x['name']} {x['priority']}", _F + f".priorities[{i}]"))
    return w


def v2(r: dict, probe) -> list[Write]:
    return []


def v2_controllers(r: dict) -> list[str]:
    return []


def stats_v1(s: dict, v1: dict[str, str], unified: str | None) -> None:
    """runc's events have no network statistics (network_interfaces is always null)."""


def stats_v2(s: dict, d: str) -> None:
    """As stats_v1."""
