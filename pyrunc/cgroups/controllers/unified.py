"""linux.resources.unified: cgroup2 files written verbatim (runc fs2), after every other
controller's so they override. On a hybrid host pyrunc goes beyond runc (which refuses
the section on any v1 host): see pyrunc.cgroups._resources.apply."""

from __future__ import annotations

from pyrunc.cgroups.controllers.common import FIELD, Write, fail, obj, string

SECTION, CONTROLLERS, ON_V2 = "unified", (), True   # checked on its own (pyrunc.check): needs cgroup2
_F = f"{FIELD}.unified"


def validate(raw, path: str) -> dict:
    out = {}
    for key, value in obj(raw, path).items():
        kp = f"{path}[{key!r}]"
        if not key or "/" in key or key in (".", ".."):
            fail(kp, "must be a file name (no slashes)")
        if "." not in key.strip("."):
            fail(kp, "must be in the form CONTROLLER.PARAMETER")
        out[key] = string(value, kp)
    return out


def merge(old: dict, new: dict) -> dict:
    return {**(old or {}), **(new or {})}


def ignored(r: dict, version: int) -> list[str]:
    return []


def writes(r: dict) -> list[Write]:
    return [Write("", key, value, f"{_F}[{key!r}]") for key, value in r["unified"].items()]


def v1(r: dict, probe) -> list[Write]:
    return []   # cgroup2 only; a hybrid host's cgroup2 half is _resources.apply's call


def v2(r: dict, probe) -> list[Write]:
    return writes(r)


def v2_controllers(r: dict) -> list[str]:
    return [key.split(".", 1)[0] for key in r["unified"] if key.split(".", 1)[0] != "cgroup"]


def stats_v1(s: dict, v1: dict[str, str], unified: str | None) -> None:
    """Statistics come from the controllers the keys belong to."""


def stats_v2(s: dict, d: str) -> None:
    """As stats_v1."""
