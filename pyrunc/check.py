"""`pyrunc check -b BUNDLE`: what would stop this bundle from running HERE, found before
anything runs.

The spec parser rejects an invalid config.json (it stops at the first error); the checks
below then look at the host: namespaces this kernel offers, the cgroup mode and the
controllers the requested resources need, seccomp and LSM availability, rlimits above
the current hard limits (raising one needs CAP_SYS_RESOURCE), and paths that do not
exist (rootfs, bind-mount sources, hook programs, namespace paths, overlay lowers, the
seccomp listener socket). Each problem is one line naming the field; `check_bundle`
returns them all, in config order, and the CLI exits 1 when there is any.

The host checks read the raw JSON defensively (a field of the wrong shape is skipped:
the parser's message already covers it), so one bad field does not hide the others.
"""
from __future__ import annotations

import os

_CAP_SYS_RESOURCE = 24
_RLIM_INFINITY_JSON = (1 << 64) - 1


def check_bundle(bundle: str) -> list[str]:
    """Every problem that would stop `create` of `bundle` on this host, one line each."""
    import json

    from pyrunc.errors import ConfigError

    bundle = os.path.abspath(bundle or ".")
    config_path = os.path.join(bundle, "config.json")
    if not os.path.isdir(bundle):
        return [f"bundle {bundle}: not a directory" if os.path.exists(bundle)
                else f"bundle {bundle}: no such file or directory"]
    try:
        with open(config_path, "rb") as f:
            raw = json.loads(f.read())
    except OSError as e:
        return [f"config.json: open {config_path}: {os.strerror(e.errno).lower()}"]
    except (ValueError, RecursionError) as e:
        return [f"config.json: invalid JSON: {str(e).splitlines()[0] if str(e) else type(e).__name__}"]

    problems: list[str] = []
    from pyrunc import spec as specmod
    try:
        # creating=False: the filesystem checks below report every missing path, not
        # just the first
        specmod.parse(raw, bundle, creating=False)
    except ConfigError as e:
        problems.append(str(e))
    except RecursionError:
        problems.append("config.json: nested too deeply")
    if not isinstance(raw, dict):
        return problems or ["config.json: must be an object"]

    host = _Host()
    for check in (_check_root, _check_process, _check_namespaces, _check_cgroups,
                  _check_intel_rdt, _check_seccomp, _check_lsm, _check_mounts, _check_hooks,
                  _check_sysctl, _check_overlay):
        try:
            problems.extend(check(raw, bundle, host))
        except (TypeError, AttributeError, ValueError, KeyError):
            # a field of an unexpected shape: the parser's message covers it
            continue
    # keep the order, drop exact repeats (parser and host check may agree)
    seen: set[str] = set()
    return [p for p in problems if not (p in seen or seen.add(p))]


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


def _resolve(path: str, bundle: str) -> str:
    return path if os.path.isabs(path) else os.path.join(bundle, path)


def _linux(raw: dict) -> dict:
    linux = raw.get("linux")
    return linux if isinstance(linux, dict) else {}


def _rootfs(raw: dict, bundle: str) -> str | None:
    root = raw.get("root")
    if isinstance(root, dict) and isinstance(root.get("path"), str) and root["path"]:
        return _resolve(root["path"], bundle)
    return None


# --------------------------------------------------------------------------- checks
def _check_root(raw: dict, bundle: str, host: _Host) -> list[str]:
    rootfs = _rootfs(raw, bundle)
    if rootfs is None:
        return ["root.path: required (the container's root filesystem)"]
    if not os.path.exists(rootfs):
        return [f"root.path: {rootfs} does not exist"]
    if not os.path.isdir(rootfs):
        return [f"root.path: {rootfs} is not a directory"]
    return []


def _check_process(raw: dict, bundle: str, host: _Host) -> list[str]:
    process = raw.get("process")
    if process is None:
        return ["process: required (create needs a process to run)"]
    if not isinstance(process, dict):
        return []
    out = []
    args = process.get("args")
    rootfs = _rootfs(raw, bundle)
    if isinstance(args, list) and args and isinstance(args[0], str) and args[0].startswith("/") \
            and rootfs and os.path.isdir(rootfs) and not _overlays(raw).get("run.pyrunc.overlay.lowerdirs"):
        # only the rootfs is looked at: a program on a mount added later is not seen
        target = os.path.join(rootfs, args[0].lstrip("/"))
        if not os.path.lexists(target) and not _under_mount(raw, args[0]):
            out.append(f"process.args[0]: {args[0]} does not exist in the rootfs {rootfs}")
    import resource
    can_raise = host.has_cap(_CAP_SYS_RESOURCE)
    for i, rl in enumerate(process.get("rlimits") or []):
        if not isinstance(rl, dict):
            continue
        name, hard = rl.get("type"), rl.get("hard")
        from pyrunc.rlimits import RLIMITS
        if name not in RLIMITS or not isinstance(hard, int) or isinstance(hard, bool):
            continue
        _soft, current_hard = resource.getrlimit(RLIMITS[name])
        wanted = -1 if hard == _RLIM_INFINITY_JSON else hard
        above = (current_hard != resource.RLIM_INFINITY
                 and (wanted == -1 or wanted > current_hard))
        if above and not can_raise:
            shown = "unlimited" if wanted == -1 else str(hard)
            out.append(f"process.rlimits[{i}] ({name}): hard limit {shown} is above this host's "
                       f"current hard limit {current_hard} and raising it needs CAP_SYS_RESOURCE")
    return out


def _overlays(raw: dict) -> dict:
    ann = raw.get("annotations")
    return ann if isinstance(ann, dict) else {}


def _under_mount(raw: dict, path: str) -> bool:
    for m in raw.get("mounts") or []:
        dest = m.get("destination") if isinstance(m, dict) else None
        if isinstance(dest, str) and dest and (path == dest or path.startswith(dest.rstrip("/") + "/")):
            return True
    return False


def _check_namespaces(raw: dict, bundle: str, host: _Host) -> list[str]:
    from pyrunc import ns
    supported = set(ns.supported())
    out = []
    namespaces = _linux(raw).get("namespaces") or []
    types = set()
    for i, n in enumerate(namespaces):
        if not isinstance(n, dict):
            continue
        kind, path = n.get("type"), n.get("path") or ""
        types.add(kind)
        if kind in ns.KINDS and kind not in supported:
            out.append(f"linux.namespaces[{i}] ({kind}): this kernel has no {kind} namespace")
        if path and isinstance(path, str):
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
    if "user" in types and not any(isinstance(n, dict) and n.get("path") for n in namespaces
                                   if isinstance(n, dict) and n.get("type") == "user"):
        try:
            with open("/proc/sys/user/max_user_namespaces") as f:
                if int(f.read()) == 0:
                    out.append("linux.namespaces: a new user namespace is requested but "
                               "/proc/sys/user/max_user_namespaces is 0")
        except OSError:
            pass
    return out


def _check_cgroups(raw: dict, bundle: str, host: _Host) -> list[str]:
    linux = _linux(raw)
    out = []
    mode = host.cgroup_mode()
    if mode == "none":
        return ["linux.cgroupsPath: no cgroup filesystem is mounted on this host"]
    path = linux.get("cgroupsPath")
    if isinstance(path, str) and path:
        from pyrunc.cgroups._paths import clean_cgroups_path
        from pyrunc.errors import PyruncError
        try:
            clean_cgroups_path(path, "check")
        except PyruncError as e:
            out.append(str(e))
    resources = linux.get("resources")
    if not isinstance(resources, dict):
        return out
    from pyrunc.errors import PyruncError
    try:
        from pyrunc.cgroups import _resources
        _resources.normalize(resources)
    except PyruncError as e:
        out.append(str(e))
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


def _check_intel_rdt(raw: dict, bundle: str, host: _Host) -> list[str]:
    rdt = _linux(raw).get("intelRdt")
    if not isinstance(rdt, dict):
        return []
    from pyrunc import intelrdt
    from pyrunc.errors import PyruncError
    from pyrunc.spec.model import IntelRdt
    schemata = {key: rdt.get(field) for key, field in (("l3_cache_schema", "l3CacheSchema"),
                                                         ("mem_bw_schema", "memBwSchema"))}
    try:
        intelrdt.check(IntelRdt(**{k: v for k, v in schemata.items() if isinstance(v, str)}))
    except PyruncError as e:
        return [str(e)]
    return []


def _check_seccomp(raw: dict, bundle: str, host: _Host) -> list[str]:
    seccomp = _linux(raw).get("seccomp")
    if not isinstance(seccomp, dict):
        return []
    out = []
    if "Seccomp" not in host.status():
        out.append("linux.seccomp: this kernel has no seccomp support (CONFIG_SECCOMP)")
    elif "Seccomp_filters" not in host.status() and not os.path.exists("/proc/sys/kernel/seccomp/actions_avail"):
        out.append("linux.seccomp: this kernel has no seccomp filter support (CONFIG_SECCOMP_FILTER)")
    listener = seccomp.get("listenerPath")
    if isinstance(listener, str) and listener:
        import stat
        try:
            if not stat.S_ISSOCK(os.stat(listener).st_mode):
                out.append(f"linux.seccomp.listenerPath: {listener} is not a socket")
        except OSError as e:
            out.append(f"linux.seccomp.listenerPath: {listener}: {os.strerror(e.errno).lower()}")
    return out


def _check_lsm(raw: dict, bundle: str, host: _Host) -> list[str]:
    from pyrunc import lsm
    process = raw.get("process") if isinstance(raw.get("process"), dict) else {}
    out = []
    for field, kwargs in (
            ("process.apparmorProfile", {"apparmor_profile": process.get("apparmorProfile")}),
            ("process.selinuxLabel", {"selinux_label": process.get("selinuxLabel")}),
            ("linux.mountLabel", {"mount_label": _linux(raw).get("mountLabel")})):
        value = next(iter(kwargs.values()))
        if not isinstance(value, str) or not value:
            continue
        try:
            lsm.check(**kwargs)
        except lsm.LsmError as e:
            out.append(f"{field}: {e}")
    return out


def _check_mounts(raw: dict, bundle: str, host: _Host) -> list[str]:
    out = []
    for i, m in enumerate(raw.get("mounts") or []):
        if not isinstance(m, dict):
            continue
        options = m.get("options") or []
        is_bind = m.get("type") == "bind" or any(o in ("bind", "rbind") for o in options
                                                  if isinstance(o, str))
        source = m.get("source")
        if is_bind and isinstance(source, str) and source:
            path = _resolve(source, bundle)
            if not os.path.exists(path):
                out.append(f"mounts[{i}].source: {path} does not exist (bind mount onto "
                           f"{m.get('destination')})")
    return out


def _check_hooks(raw: dict, bundle: str, host: _Host) -> list[str]:
    hooks = raw.get("hooks")
    if not isinstance(hooks, dict):
        return []
    out = []
    for kind, entries in hooks.items():
        if not isinstance(entries, list):
            continue
        for i, h in enumerate(entries):
            path = h.get("path") if isinstance(h, dict) else None
            if not isinstance(path, str) or not path:
                continue
            # createContainer/startContainer hooks run in the container's mount namespace
            where = "the container" if kind in ("createContainer", "startContainer") else "the host"
            target = path
            if where == "the container":
                rootfs = _rootfs(raw, bundle)
                if rootfs is None or _under_mount(raw, path):
                    continue
                target = os.path.join(rootfs, path.lstrip("/"))
            if not os.path.exists(target):
                out.append(f"hooks.{kind}[{i}].path: {path} does not exist in {where}")
            elif not os.access(target, os.X_OK) or os.path.isdir(target):
                out.append(f"hooks.{kind}[{i}].path: {path} is not an executable file")
    return out


def _check_sysctl(raw: dict, bundle: str, host: _Host) -> list[str]:
    sysctl = _linux(raw).get("sysctl")
    if not isinstance(sysctl, dict):
        return []
    out = []
    for key in sysctl:
        if isinstance(key, str) and key and not os.path.exists("/proc/sys/" + key.replace(".", "/")):
            out.append(f"linux.sysctl.{key}: this kernel has no such sysctl (/proc/sys/{key.replace('.', '/')})")
    return out


def _check_overlay(raw: dict, bundle: str, host: _Host) -> list[str]:
    from pyrunc.rootfs import OVERLAY_ANNOTATION, OVERLAY_LOWER_ANNOTATION
    ann = _overlays(raw)
    if str(ann.get(OVERLAY_ANNOTATION, "")).lower() not in ("1", "true", "yes"):
        return []
    out = []
    with open("/proc/filesystems") as f:
        if not any(line.split()[-1:] == ["overlay"] for line in f):
            out.append(f"annotations.{OVERLAY_ANNOTATION}: this kernel has no overlay filesystem")
    namespaces = _linux(raw).get("namespaces") or []
    if not any(isinstance(n, dict) and n.get("type") == "mount" for n in namespaces):
        out.append(f"annotations.{OVERLAY_ANNOTATION}: an overlay rootfs needs a mount namespace")
    for path in filter(None, str(ann.get(OVERLAY_LOWER_ANNOTATION, "")).split(":")):
        full = _resolve(path, bundle)
        if not os.path.isdir(full):
            out.append(f"annotations.{OVERLAY_LOWER_ANNOTATION}: {full} is not a directory")
    return out
