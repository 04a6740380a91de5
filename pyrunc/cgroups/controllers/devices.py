"""linux.resources.devices: which device nodes the container may open or create (runc
1.1.5 specconv and fs/devices.go). The rules are applied at create only (update leaves
them alone, as runc does): on cgroup v1 by the devices controller's allow/deny lists
(v1_device_writes), on cgroup2 by an eBPF program (pyrunc.cgroups._bpf); the resource
plans themselves carry no device writes."""

from __future__ import annotations

from pyrunc.cgroups.controllers.common import (
    FIELD, UINT32_MAX, Write, array, boolean, fail, integer, merge_list, obj, string)

SECTION, CONTROLLERS, ON_V2 = "devices", (), True   # checked on its own (pyrunc.check): v1 needs the devices hierarchy
_F = f"{FIELD}.devices"


def rule(allow: bool, dtype: str, major: int, minor: int, access: str) -> dict:
    # access in canonical r,w,m order so rules compare and print stably
    return {"allow": allow, "type": dtype, "major": major, "minor": minor,
            "access": "".join(ch for ch in "rwm" if ch in access)}


def _device_number(value, path: str) -> int:
    """A device rule's major/minor: absent, null or -1 means the wildcard "*"."""
    if value is None:
        return -1
    return integer(value, path, -1, UINT32_MAX)


def validate(raw, path: str) -> list[dict]:
    out = []
    for i, d in enumerate(array(raw, path)):
        dp = f"{path}[{i}]"
        d = obj(d, dp)
        if "allow" not in d:
            fail(dp + ".allow", "required field is missing")
        dtype = string(d.get("type"), dp + ".type") or "a"
        if dtype not in ("a", "b", "c"):
            fail(dp + ".type", f"invalid device type {dtype!r} (expected a, b or c)")
        access = string(d.get("access"), dp + ".access")
        # runc 1.1.5: an empty access is refused; otherwise only the letters r, w and m
        # count, in any order, repeated or not, other characters are ignored ("rwa" = rw);
        # a device rule left with none of them fails there ("resulting devices cgroup
        # doesn't precisely match target"), a type "a" rule ignores its access
        if not access:
            fail(dp + ".access", f"device access at {i} field cannot be empty")
        if not set(access) & set("rwm"):
            if dtype != "a":
                fail(dp + ".access", f"invalid access {access!r}: none of r, w, m")
            access = "rwm"
        out.append(rule(boolean(d.get("allow"), dp + ".allow"), dtype,
                        _device_number(d.get("major"), dp + ".major"),
                        _device_number(d.get("minor"), dp + ".minor"), access))
    return out


merge = merge_list


def ignored(r: dict, version: int) -> list[str]:
    return []


def v1(r: dict, probe) -> list[Write]:
    return []   # create only, with linux.devices: v1_device_writes(device_rules(...))


def v2(r: dict, probe) -> list[Write]:
    return []   # an eBPF program, not a file write


def v2_controllers(r: dict) -> list[str]:
    return []   # device programs attach to any cgroup2 directory


def stats_v1(s: dict, v1: dict[str, str], unified: str | None) -> None:
    """Devices have no statistics."""


def stats_v2(s: dict, d: str) -> None:
    """As stats_v1."""


# runc 1.1.5 specconv.AllowedDevices: mknod of anything, the standard character devices,
# ptys and tun/tap. Appended after the spec's own rules (so they cannot be denied away,
# exactly as in runc).
DEFAULT_ALLOWED_DEVICES = (
    rule(True, "c", -1, -1, "m"),
    rule(True, "b", -1, -1, "m"),
    rule(True, "c", 1, 3, "rwm"),    # /dev/null
    rule(True, "c", 1, 8, "rwm"),    # /dev/random
    rule(True, "c", 1, 7, "rwm"),    # /dev/full
    rule(True, "c", 5, 0, "rwm"),    # /dev/tty
    rule(True, "c", 1, 5, "rwm"),    # /dev/zero
    rule(True, "c", 1, 9, "rwm"),    # /dev/urandom
    rule(True, "c", 136, -1, "rwm"),  # /dev/pts/*
    rule(True, "c", 5, 2, "rwm"),    # /dev/ptmx
    rule(True, "c", 10, 200, "rwm"),  # /dev/net/tun
)
# The defaults runc knows by path: a linux.devices entry with that path drops the rule.
_DEFAULT_DEVICE_PATHS = {"/dev/null": (1, 3), "/dev/random": (1, 8), "/dev/full": (1, 7),
                         "/dev/tty": (5, 0), "/dev/zero": (1, 5), "/dev/urandom": (1, 9)}


def device_rules(spec_rules: list[dict], spec_devices=()) -> list[dict]:
    """The full ordered rule list runc 1.1.5 derives (specconv createDevices and
    CreateCgroupConfig): linux.resources.devices, then the default allowed devices
    except those whose path linux.devices redefines. linux.devices themselves get no
    rule: they are created in the container, but only the rules decide whether they can
    be used. Evaluated on a deny-all base; a later rule overrides an earlier one."""
    dropped = set()
    for dev in spec_devices:
        path = dev.get("path") if isinstance(dev, dict) else getattr(dev, "path", None)
        if path in _DEFAULT_DEVICE_PATHS:
            dropped.add(_DEFAULT_DEVICE_PATHS[path])
    return list(spec_rules) + [r for r in DEFAULT_ALLOWED_DEVICES
                               if r["type"] != "c" or (r["major"], r["minor"]) not in dropped]


def v1_rule_text(r: dict) -> str:
    if r["type"] == "a":
        return "a"
    major = "*" if r["major"] < 0 else str(r["major"])
    minor = "*" if r["minor"] < 0 else str(r["minor"])
    return f"{r['type']} {major}:{minor} {r['access']}"


def v1_device_writes(rules: list[dict]) -> list[Write]:
    """Deny everything, then replay the rules in order (devices.allow/devices.deny are
    "last one wins" in the kernel's exception list). A type-"a" allow switches to
    allow-all, as writing "a" to devices.allow does."""
    out = [Write("devices", "devices.deny", "a", _F)]
    for i, r in enumerate(rules):
        name = "devices.allow" if r["allow"] else "devices.deny"
        out.append(Write("devices", name, v1_rule_text(r), f"{_F}[{i}]"))
    return out
