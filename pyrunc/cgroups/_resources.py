"""linux.resources as a whole: validation, the `update` merge and the v1/v2 write plans
are each controller module's (pyrunc.cgroups.controllers), combined here in runc's
order; apply() writes a plan into a Manager's directories.

Everything but apply() is pure except for the small Probe interface the translations use
to ask about the host (which files exist, current memory limit), so the translation is
unit-testable without cgroups. Semantics follow runc 1.1 (libcontainer/cgroups/fs and
fs2): a zero value means "leave unchanged" (that is how engines send `update` requests),
-1 means unlimited where the kernel has such a value.
"""

from __future__ import annotations

import os

from pyrunc.cgroups import controllers, fs
from pyrunc.cgroups._paths import CgroupError
from pyrunc.cgroups.controllers import devices as _devices
from pyrunc.cgroups.controllers.common import FIELD, Probe, Write, obj

__all__ = ["FIELD", "Probe", "Resources", "Write", "apply", "ignored_fields", "merge", "normalize",
           "v1_plan", "v2_controllers", "v2_plan"]


class Resources(dict):
    """Normalized linux.resources: {section: value} for the sections given. A section
    that was not given reads as its defaults (nothing set), computed on first access:
    its controller module is imported only then, so that create loads only the
    controllers its config uses."""

    __slots__ = ()

    def __missing__(self, section: str):
        if section not in controllers.SECTIONS:
            raise KeyError(section)
        self.update(normalize({section: None}))
        return self[section]


def _combine(values) -> Resources:
    """Resources from (module, value) pairs; modules sharing a section (cpu and cpuset
    share "cpu") each contribute their own fields."""
    out = Resources()
    for module, value in values:
        if module.SECTION in out:
            out[module.SECTION].update(value)
        else:
            out[module.SECTION] = value
    return out


def normalize(raw: dict | None) -> Resources:
    """Validate LinuxResources `raw` (as in config.json) and return its sections with
    every field present and typed (0/""/[]/None = not set; absent sections read as
    such). Raises CgroupError naming the field. Idempotent: normalized input passes
    through (a Resources, as pyrunc.spec.parse made it, as it is)."""
    if isinstance(raw, Resources):
        return raw
    r = obj(raw, FIELD)
    return _combine((m, m.validate(r.get(m.SECTION), f"{FIELD}.{m.SECTION}")) for m in controllers.of(r))


def merge(old: dict, new: dict) -> Resources:
    """runc update: a field of `new` that is set (non-zero, non-empty) replaces the one in
    `old`; both are normalize()d."""
    old, new = Resources(old), Resources(new)
    return _combine((m, m.merge(old[m.SECTION], new[m.SECTION])) for m in controllers.of(set(old) | set(new)))


def ignored_fields(r: dict, version: int) -> list[str]:
    """Fields set in `r` that runc 1.1 accepts and ignores (debug-logged by apply)."""
    return [field for m in controllers.of(r) for field in m.ignored(r, version)]


def v1_plan(r: dict, probe: Probe, *, devices: list[dict] | None = None) -> list[Write]:
    """Writes for cgroup v1, in runc's order. `devices`: the full device rule list
    (controllers.devices.device_rules()), or None to leave the devices cgroup alone
    (update)."""
    w = [write for m in controllers.of(r) for write in m.v1(r, probe)]
    if devices is not None:
        w += _devices.v1_device_writes(devices)
    return w


def v2_plan(r: dict, probe: Probe) -> list[Write]:
    """Writes for the cgroup2 directory (fs2), the unified map last so it overrides."""
    return [write for m in controllers.of(r) for write in m.v2(r, probe)]


def v2_controllers(r: dict) -> list[str]:
    """cgroup2 controllers the resources need enabled in the ancestors' subtree_control."""
    return list(dict.fromkeys(c for m in controllers.of(r) for c in m.v2_controllers(r)))


# ------------------------------------------------------------------------- applying

class _DirProbe(Probe):
    """The Probe on a manager's real directories."""

    def __init__(self, mgr):
        self._mgr = mgr

    def dir(self, controller: str) -> str | None:
        if controller == "":
            return self._mgr.unified_path
        return self._mgr.v1_dir(controller)

    def exists(self, controller: str, name: str) -> bool:
        directory = self.dir(controller)
        return directory is not None and os.path.exists(os.path.join(directory, name) if name else directory)

    def read_int(self, controller: str, name: str) -> int:
        directory = self.dir(controller)
        try:
            return int(fs.read(f"{directory}/{name}").split()[0])
        except (OSError, ValueError, IndexError, TypeError):
            return 0


def apply(mgr, resources: dict | None, *, devices=(), update: bool = False) -> dict:
    """Apply linux.resources `resources` (raw config.json form or already normalized) to
    the Manager `mgr`'s directories; returns the normalized resources (persist them for
    `update`). `devices`: linux.devices, which decide which default device rules stay.
    update=True: zero values leave the current setting alone and devices are not
    rewritten."""
    from pyrunc import log

    r = normalize(resources)
    version = 2 if mgr.mode == "unified" else 1
    for field in ignored_fields(r, version):
        log.debug(f"{field} is ignored (as runc 1.1 does)")
    probe = _DirProbe(mgr)
    unified = mgr.unified_path
    bpf_fallback = False
    rules = None
    if not update and not mgr.rootless:
        # rootless: no device rules, as runc (the user can make no device node anyway,
        # and loading a cgroup2 device program needs privilege)
        rules = _devices.device_rules(r["devices"], devices)
    if version == 2:
        writes = v2_plan(r, probe)
        needed = v2_controllers(r)
    else:
        bpf_fallback = rules is not None and mgr.v1_dir("devices") is None
        writes = v1_plan(r, probe, devices=None if bpf_fallback else rules)
        if bpf_fallback:
            # No v1 devices hierarchy (for_container() already refused the case where
            # one exists but is unmounted): the kernel still enforces a cgroup2 device
            # program, so use that when cgroup2 is there.
            if unified is None:
                log.warning("no devices cgroup: device access of the container is not restricted")
                rules = None
        if r.get("unified"):
            if any(w.controller not in ("", "devices") for w in writes):
                # runc refuses unified on v1 outright; pyrunc writes it on a hybrid host
                # only where nothing goes to the v1 hierarchies (see _hybrid_unified_writes)
                raise CgroupError("linux.resources.unified: invalid configuration: cannot use unified "
                                  "on cgroup v1 (together with limits for the v1 hierarchies)")
            writes += _hybrid_unified_writes(mgr, r)
        needed = [w.name.split(".", 1)[0] for w in writes if w.controller == ""]
    needed = [c for c in needed if c != "cgroup"]
    if needed and unified is not None:
        from pyrunc.cgroups import _v2
        mount = mgr.unified_mount.rstrip("/")
        available = set(fs.read(mount + "/cgroup.controllers").split())
        for controller in needed:
            if controller not in available:
                field = next((w.field for w in writes if w.controller == ""
                              and w.name.startswith(controller + ".")), FIELD)
                raise CgroupError(f"{field}: cgroup controller {controller} is not available "
                                  f"(not in {mount}/cgroup.controllers)")
        _v2.enable_controllers(mgr.unified_mount, unified, needed, strict=True)
    for w in writes:
        directory = probe.dir(w.controller)
        if directory is None:
            ctrl = w.controller or "cgroup2"
            if any(ctrl in key.split(",") or (ctrl == "cgroup2" and not key) for key in mgr.unpermitted):
                raise CgroupError(f"{w.field}: cannot set the limit: container could not join or create "
                                  f"cgroup (rootless: no permission in the {ctrl} hierarchy)")
            raise CgroupError(f"{w.field}: cgroup controller {ctrl} is not mounted on this host")
        _write_resource(directory, w)
    if (version == 2 or bpf_fallback) and rules is not None and unified is not None:
        from pyrunc.cgroups import _bpf
        _bpf.apply(unified, rules)
    return r


def _hybrid_unified_writes(mgr, r: dict) -> list[Write]:
    """linux.resources.unified on a hybrid host: runc refuses it outright ("cannot use
    unified on cgroup v1"); pyrunc writes keys whose controller the cgroup2 hierarchy
    offers there (hugetlb on this project's host) and refuses the others by name."""
    from pyrunc.cgroups.controllers import unified as unified_controller
    if mgr.unified_path is None:
        raise CgroupError("linux.resources.unified: cannot use unified on cgroup v1 (no cgroup2 mounted)")
    available = set(fs.read(mgr.unified_mount.rstrip("/") + "/cgroup.controllers").split())
    for key in r["unified"]:
        controller = key.split(".", 1)[0]
        if controller != "cgroup" and controller not in available:
            raise CgroupError(f"linux.resources.unified[{key!r}]: controller {controller!r} "
                              "is not available in cgroup2 on this hybrid host")
    return unified_controller.writes(r)


def _write_resource(directory: str, w: Write) -> None:
    path = f"{directory}/{w.name}"
    try:
        fs.write(path, w.value)
    except OSError as e:
        if e.errno == 2 and w.ignore_missing:
            return
        detail = fs.describe(e)
        if e.errno in (2, 13) and w.field.startswith("linux.resources.unified"):
            detail = f"unknown cgroup file {w.name} ({detail})"
        elif e.errno == 19 and w.name == "rdma.max":  # ENODEV
            detail = f"no RDMA device named {w.value.split()[0]!r} (see /sys/class/infiniband)"
        elif e.errno == 19 and w.name == "net_prio.ifpriomap":
            detail = (f"no network interface named {w.value.split()[0]!r} in the host's "
                      "network namespace (net_prio names interfaces there)")
        elif e.errno == 16 and w.name in ("memory.limit_in_bytes", "memory.max"):
            usage = fs.read_first_int(directory, ("memory.usage_in_bytes", "memory.current"))
            detail = f"unable to set memory limit to {w.value} (current usage: {usage})"
        raise CgroupError(f"{w.field}: write {w.value!r} to {path}: {detail}") from None
    if w.name == "cpu.shares":
        # the kernel clamps silently; runc reads back and reports the bound
        got = fs.read_first_int(directory, ("cpu.shares",))
        if got != int(w.value):
            kind = "maximum" if int(w.value) > got else "minimum"
            raise CgroupError(f"{w.field}: the {kind} allowed cpu-shares is {got}")
