"""`pyrunc check -b BUNDLE`: what would stop this bundle from running HERE, found before
anything runs.

The bundle is read once, by `pyrunc.spec.load`, the same validation `create` runs: an
invalid config.json is reported as its one error (the parser stops at the first, naming
the field). The checks below then look at the host through the validated `Spec`:
namespaces this kernel offers, the cgroup mode and the controllers the requested
resources need, seccomp and LSM availability, rlimits above the current hard limits
(raising one needs CAP_SYS_RESOURCE), and paths that do not exist (rootfs, bind-mount
sources, hook programs, namespace paths, overlay lowers, the seccomp listener socket).
Each problem is one line naming the field; `check_bundle` returns them all, in config
order, and the CLI exits 1 when there is any.
"""
from __future__ import annotations

import os

_CAP_SYS_RESOURCE = 24
_RLIM_INFINITY_JSON = (1 << 64) - 1


def check_bundle(bundle: str) -> list[str]:
    """Every problem that would stop `create` of `bundle` on this host, one line each."""
    from pyrunc import spec as specmod
    from pyrunc.errors import ConfigError

    bundle = os.path.abspath(bundle or ".")
    if not os.path.isdir(bundle):
        return [f"bundle {bundle}: not a directory" if os.path.exists(bundle)
                else f"bundle {bundle}: no such file or directory"]
    try:
        # creating=False: the filesystem checks below report every missing path, not
        # just the first
        s = specmod.load(bundle, creating=False)
    except ConfigError as e:
        return [str(e)]

    host = _Host()
    problems: list[str] = []
    for check in (_check_root, _check_process, _check_namespaces, _check_cgroups,
                  _check_intel_rdt, _check_net_devices, _check_seccomp, _check_lsm, _check_mounts, _check_hooks,
                  _check_sysctl, _check_overlay):
        problems.extend(check(s, host))
    return problems


# --------------------------------------------------------------------------- host facts
class _Host:
    """What this host offers, read lazily and once."""

    def __init__(self) -> None:
        self._controllers: set[str] | None = None
        self._mode: str | None = None
        self._status: dict[str, str] | None = None

    def status(self) -> dict[str, str]:
        if self._status is None:
            self._status = {}
            with open("/proc/self/status") as f:
                for line in f:
                    key, _, value = line.partition(":")
                    self._status[key] = value.strip()
        return self._status

    def has_cap(self, cap: int) -> bool:
        return bool(int(self.status().get("CapEff", "0"), 16) >> cap & 1)

    def cgroup_mode(self) -> str:
        if self._mode is None:
            from pyrunc import cgroups
            from pyrunc.errors import PyruncError
            try:
                self._mode = cgroups.mode()
            except PyruncError:
                self._mode = "none"
        return self._mode

    def controllers(self) -> set[str]:
        """Controllers usable here: v1 hierarchies mounted, plus those cgroup2 enables."""
        if self._controllers is None:
            from pyrunc.cgroups._paths import parse_cgroup_mounts
            found: set[str] = set()
            with open("/proc/self/mountinfo") as f:
                mounts = parse_cgroup_mounts(f.read())
            for fstype, mountpoint, _root, superopts in mounts:
                if fstype == "cgroup":
                    found.update(superopts)
                else:
                    try:
                        with open(os.path.join(mountpoint, "cgroup.controllers")) as f:
                            found.update(f.read().split())
                    except OSError:
                        pass
            self._controllers = found
        return self._controllers


# --------------------------------------------------------------------------- checks
def _check_root(s, host: _Host) -> list[str]:
    rootfs = s.root.path
    if not rootfs:
        return ["root.path: required (the container's root filesystem)"]
    if not os.path.exists(rootfs):
        return [f"root.path: {rootfs} does not exist"]
    if not os.path.isdir(rootfs):
        return [f"root.path: {rootfs} is not a directory"]
    return []


def _check_process(s, host: _Host) -> list[str]:
    process = s.process
    if process is None:
        return ["process: required (create needs a process to run)"]
    out = []
    program = process.args[0]
    rootfs = s.root.path
    if program.startswith("/") and rootfs and os.path.isdir(rootfs) \
            and not s.annotations.get("run.pyrunc.overlay.lowerdirs"):
        # only the rootfs is looked at: a program on a mount added later is not seen
        target = os.path.join(rootfs, program.lstrip("/"))
        if not os.path.lexists(target) and not _under_mount(s, program):
            out.append(f"process.args[0]: {program} does not exist in the rootfs {rootfs}")
    import resource

    from pyrunc.rlimits import RLIMITS
    can_raise = host.has_cap(_CAP_SYS_RESOURCE)
    for i, rl in enumerate(process.rlimits):
        _soft, current_hard = resource.getrlimit(RLIMITS[rl.type])
        wanted = -1 if rl.hard == _RLIM_INFINITY_JSON else rl.hard
        above = (current_hard != resource.RLIM_INFINITY
                 and (wanted == -1 or wanted > current_hard))
        if above and not can_raise:
            shown = "unlimited" if wanted == -1 else str(rl.hard)
            out.append(f"process.rlimits[{i}] ({rl.type}): hard limit {shown} is above this host's "
                       f"current hard limit {current_hard} and raising it needs CAP_SYS_RESOURCE")
    return out


def _under_mount(s, path: str) -> bool:
    return any(path == m.destination or path.startswith(m.destination.rstrip("/") + "/")
               for m in s.mounts)


def _check_namespaces(s, host: _Host) -> list[str]:
    from pyrunc import ns
    supported = set(ns.supported())
    out = []
    for i, n in enumerate(s.linux.namespaces):
        kind, path = n.type, n.path
        if kind in ns.KINDS and kind not in supported:
            out.append(f"linux.namespaces[{i}] ({kind}): this kernel has no {kind} namespace")
        if path:
            if not os.path.exists(path):
                out.append(f"linux.namespaces[{i}] ({kind}): path {path} does not exist")
            elif kind in ns.KINDS:
                try:
                    same_kind = os.readlink(f"/proc/self/ns/{ns.proc_name(kind)}").split(":")[0]
                    fs_ok = os.stat(path).st_dev == os.stat(f"/proc/self/ns/{ns.proc_name(kind)}").st_dev
                except OSError:
                    fs_ok, same_kind = True, ""
                if not fs_ok:
                    out.append(f"linux.namespaces[{i}] ({kind}): path {path} is not a namespace "
                               f"file (expected a {same_kind} namespace, e.g. /proc/PID/ns/{ns.proc_name(kind)})")
    user_ns = s.linux.namespace("user")
    if user_ns is not None and not user_ns.path:
        try:
            with open("/proc/sys/user/max_user_namespaces") as f:
                if int(f.read()) == 0:
                    out.append("linux.namespaces: a new user namespace is requested but "
                               "/proc/sys/user/max_user_namespaces is 0")
        except OSError:
            pass
    return out


def _check_cgroups(s, host: _Host) -> list[str]:
    out = []
    mode = host.cgroup_mode()
    if mode == "none":
        return ["linux.cgroupsPath: no cgroup filesystem is mounted on this host"]
    if s.linux.cgroups_path:
        from pyrunc.cgroups._paths import clean_cgroups_path
        from pyrunc.errors import PyruncError
        try:
            clean_cgroups_path(s.linux.cgroups_path, "check")
        except PyruncError as e:
            out.append(str(e))
    resources = s.linux.resources  # as written: which sections the config sets
    available = host.controllers()
    from pyrunc.cgroups import controllers as modules
    needs: dict[str, list[str]] = {}   # section -> the controllers that can enforce it (any one will do)
    for m in modules.all_modules():
        if m.CONTROLLERS and (m.ON_V2 or mode != "unified"):  # e.g. network: ignored on v2, as by runc
            needs.setdefault(m.SECTION, []).extend(m.CONTROLLERS)
    for key, controllers in needs.items():
        if resources.get(key) and not any(c in available for c in controllers):
            out.append(f"linux.resources.{key}: needs the {' or '.join(controllers)} cgroup controller, "
                       f"which this host ({mode} cgroups) does not offer")
    if resources.get("unified") and mode == "legacy":
        out.append("linux.resources.unified: needs cgroup v2, but this host has cgroup v1 only")
    if resources.get("devices") and mode != "unified" and "devices" not in available:
        out.append("linux.resources.devices: the cgroup v1 devices controller is not mounted")
    return out


def _check_intel_rdt(s, host: _Host) -> list[str]:
    if s.linux.intel_rdt is None:
        return []
    from pyrunc import intelrdt
    from pyrunc.errors import PyruncError
    try:
        intelrdt.check(s.linux.intel_rdt)
    except PyruncError as e:
        return [str(e)]
    return []


def _check_net_devices(s, host: _Host) -> list[str]:
    if not s.linux.net_devices:
        return []
    from pyrunc import netdev
    from pyrunc.errors import PyruncError
    try:
        netdev.check_host(s.linux.net_devices)
    except PyruncError as e:
        return [str(e)]
    return []


def _check_seccomp(s, host: _Host) -> list[str]:
    if s.linux.seccomp is None:
        return []
    out = []
    if "Seccomp" not in host.status():
        out.append("linux.seccomp: this kernel has no seccomp support (CONFIG_SECCOMP)")
    elif "Seccomp_filters" not in host.status() and not os.path.exists("/proc/sys/kernel/seccomp/actions_avail"):
        out.append("linux.seccomp: this kernel has no seccomp filter support (CONFIG_SECCOMP_FILTER)")
    profile = s.linux.seccomp_profile
    listener = profile.listener_path if profile is not None else ""
    if listener:
        import stat
        try:
            if not stat.S_ISSOCK(os.stat(listener).st_mode):
                out.append(f"linux.seccomp.listenerPath: {listener} is not a socket")
        except OSError as e:
            out.append(f"linux.seccomp.listenerPath: {listener}: {os.strerror(e.errno).lower()}")
    return out


def _check_lsm(s, host: _Host) -> list[str]:
    from pyrunc import lsm
    process = s.process
    out = []
    for field, kwargs in (
            ("process.apparmorProfile", {"apparmor_profile": process.apparmor_profile if process else ""}),
            ("process.selinuxLabel", {"selinux_label": process.selinux_label if process else ""}),
            ("linux.mountLabel", {"mount_label": s.linux.mount_label})):
        if not next(iter(kwargs.values())):
            continue
        try:
            lsm.check(**kwargs)
        except lsm.LsmError as e:
            out.append(f"{field}: {e}")
    return out


def _check_mounts(s, host: _Host) -> list[str]:
    out = []
    for i, m in enumerate(s.mounts):
        is_bind = m.type == "bind" or "bind" in m.options or "rbind" in m.options
        # the parser resolved a relative bind source against the bundle
        if is_bind and m.source and not os.path.exists(m.source):
            out.append(f"mounts[{i}].source: {m.source} does not exist (bind mount onto {m.destination})")
    return out


def _check_hooks(s, host: _Host) -> list[str]:
    from pyrunc.spec.parser import HOOK_KINDS
    out = []
    for kind, attr in HOOK_KINDS:
        for i, h in enumerate(getattr(s.hooks, attr)):
            # createContainer/startContainer hooks run in the container's mount namespace
            where = "the container" if kind in ("createContainer", "startContainer") else "the host"
            target = h.path
            if where == "the container":
                if not s.root.path or _under_mount(s, h.path):
                    continue
                target = os.path.join(s.root.path, h.path.lstrip("/"))
            if not os.path.exists(target):
                out.append(f"hooks.{kind}[{i}].path: {h.path} does not exist in {where}")
            elif not os.access(target, os.X_OK) or os.path.isdir(target):
                out.append(f"hooks.{kind}[{i}].path: {h.path} is not an executable file")
    return out


def _check_sysctl(s, host: _Host) -> list[str]:
    out = []
    for key in s.linux.sysctl:
        if key and not os.path.exists("/proc/sys/" + key.replace(".", "/")):
            out.append(f"linux.sysctl.{key}: this kernel has no such sysctl (/proc/sys/{key.replace('.', '/')})")
    return out


def _check_overlay(s, host: _Host) -> list[str]:
    from pyrunc.rootfs import OVERLAY_ANNOTATION, OVERLAY_LOWER_ANNOTATION
    ann = s.annotations
    if ann.get(OVERLAY_ANNOTATION, "").lower() not in ("1", "true", "yes"):
        return []
    out = []
    with open("/proc/filesystems") as f:
        if not any(line.split()[-1:] == ["overlay"] for line in f):
            out.append(f"annotations.{OVERLAY_ANNOTATION}: this kernel has no overlay filesystem")
    if s.linux.namespace("mount") is None:
        out.append(f"annotations.{OVERLAY_ANNOTATION}: an overlay rootfs needs a mount namespace")
    for path in filter(None, ann.get(OVERLAY_LOWER_ANNOTATION, "").split(":")):
        full = path if os.path.isabs(path) else os.path.join(s.bundle, path)
        if not os.path.isdir(full):
            out.append(f"annotations.{OVERLAY_LOWER_ANNOTATION}: {full} is not a directory")
    return out
