"""linux.resources.rdma: the rdma controller, per device (runc fs/rdma.go,
fs2/rdma.go)."""

from __future__ import annotations

from pyrunc.cgroups.controllers.common import FIELD, UINT32_MAX, Write, fail, integer, obj

SECTION, CONTROLLERS, ON_V2 = "rdma", ("rdma",), True
_F = f"{FIELD}.rdma"


def validate(raw, path: str) -> dict:
    out = {}
    for name, x in obj(raw, path).items():
        xp = f"{path}.{name}"
        if not name or any(ch.isspace() for ch in name):
            fail(xp, "invalid rdma device name")
        x = obj(x, xp)
        out[name] = {key: None if x.get(key) is None else integer(x.get(key), f"{xp}.{key}", 0, UINT32_MAX)
                     for key in ("hcaHandles", "hcaObjects")}
    return out


def merge(old: dict, new: dict) -> dict:
    # per device and per limit: the kernel keeps a limit rdma.max is not given, so the
    # saved resources do too
    out = {dev: dict(limits) for dev, limits in (old or {}).items()}
    for dev, limits in (new or {}).items():
        out.setdefault(dev, dict(limits)).update({k: v for k, v in limits.items() if v is not None})
    return out


def ignored(r: dict, version: int) -> list[str]:
    return []


def _line(name: str, x: dict) -> str:
    parts = [name]
    if x["hcaHandles"] is not None:
        parts.append(f"hca_handle={x['hcaHandles']}")
    if x["hcaObjects"] is not None:
        parts.append(f"hca_object={x['hcaObjects']}")
    return " ".join(parts)


def _writes(r: dict, controller: str) -> list[Write]:
    return [Write(controller, "rdma.max", _line(name, x), f"{_F}.{name}") for name, x in r["rdma"].items()]


def v1(r: dict, probe) -> list[Write]:
    return _writes(r, "rdma")


def v2(r: dict, probe) -> list[Write]:
    return _writes(r, "")


def v2_controllers(r: dict) -> list[str]:
    return ["rdma"] if r["rdma"] else []


def stats_v1(s: dict, v1: dict[str, str], unified: str | None) -> None:
    """runc's events have no rdma statistics."""


def stats_v2(s: dict, d: str) -> None:
    """As stats_v1."""
