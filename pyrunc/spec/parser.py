"""config.json -> `pyrunc.spec.model`, validating as it goes.

Every error is a `ConfigError` naming the field path, e.g.
`config.json: process.rlimits[0].type: unknown rlimit "RLIMIT_FOO"`.

Semantics follow Go's encoding/json as runc uses it: `null` is the same as an absent field,
unknown fields are ignored, integers must be integral JSON numbers within the Go type's
range. Beyond runc 1.1.5 this rejects, early and with the field named, things runc would
accept or fail on later (unknown rlimit names, soft > hard, an ociVersion
with a major other than 1, relative hook paths, id mappings without a user namespace).
The config-only checks of runc 1.1.5's specconv and configs/validate are kept: namespace
types and duplicates, hostname/maskedPaths vs. namespaces, sysctls, rootfs propagation,
a rootfs that is a directory not reached through a symlink.

Plain functions and isinstance checks only: this runs on every `create`.
"""
from __future__ import annotations

import os

if False:  # annotations only: importing typing costs ~3 ms on the create path
    from typing import Any, NoReturn, Optional

from pyrunc.errors import ConfigError
from pyrunc.spec.jsontype import Reader
from pyrunc.ns import KINDS
from pyrunc.spec.model import (
    Capabilities,
    ConsoleSize,
    Device,
    Hook,
    Hooks,
    IDMapping,
    IntelRdt,
    Linux,
    Mount,
    Namespace,
    Personality,
    Process,
    Rlimit,
    Root,
    Spec,
    User,
)

CONFIG_NAME = "config.json"

NAMESPACE_TYPES = frozenset(KINDS)  # pyrunc.ns owns the namespace kinds
TIME_CLOCKS = frozenset(("monotonic", "boottime"))
DEVICE_TYPES = frozenset(("c", "b", "u", "p"))
# runc's mountPropagationMapping keys ("" = leave the runtime default, rslave for runc).
ROOTFS_PROPAGATIONS = frozenset(
    ("", "private", "rprivate", "slave", "rslave", "shared", "rshared", "unbindable", "runbindable")
)
HOOK_KINDS = (
    ("prestart", "prestart"),
    ("createRuntime", "create_runtime"),
    ("createContainer", "create_container"),
    ("startContainer", "start_container"),
    ("poststart", "poststart"),
    ("poststop", "poststop"),
)
CAPABILITY_SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")
# sysctls that the ipc namespace isolates (runc's validSysctlMap, plus fs.mqueue.*).
IPC_SYSCTLS = frozenset(
    (
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    )
)

UINT32_MAX = (1 << 32) - 1
UINT64_MAX = (1 << 64) - 1
INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1

_VERSION_SUFFIX_CHARS = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz.+~-")


def _major_of(version: str) -> str | None:
    """The major number of MAJOR.MINOR[.PATCH][(-|+|~)SUFFIX], else None (without `re`)."""
    core, suffix = version, ""
    for i, ch in enumerate(version):
        if ch in "-+~":
            core, suffix = version[:i], version[i + 1:]
            break
    if not all(ch in _VERSION_SUFFIX_CHARS for ch in suffix):
        return None
    parts = core.split(".")
    if len(parts) not in (2, 3) or not all(p.isascii() and p.isdigit() for p in parts):
        return None
    return parts[0]


def _at(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


class _Parser(Reader):
    """The config's sections over the JSON type checks of `Reader`; holds the message
    prefix ("config.json: ") and collects warnings."""

    __slots__ = ("prefix", "warnings")

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.warnings: list[str] = []

    def fail(self, path: str, message: str) -> NoReturn:
        where = f"{path}: " if path else ""
        raise ConfigError(f"{self.prefix}{where}{message}")

    def warn(self, path: str, message: str) -> None:
        self.warnings.append(f"{self.prefix}{path}: {message}")

    def typed_items(self, raw: Any, path: str, known, what: str):
        """The objects of an array keyed by their "type", each of a `known` type and none
        twice (process.rlimits, linux.namespaces): (item, its path, its type) in order."""
        seen: set[str] = set()
        for i, item in enumerate(self.array(raw, path)):
            item_path = f"{path}[{i}]"
            item = self.obj(item, item_path)
            type_path = _at(item_path, "type")
            kind = self.req_string(item.get("type"), type_path)
            if kind not in known:
                self.fail(type_path, f'unknown {what} "{kind}"')
            if kind in seen:
                self.fail(type_path, f'duplicate {what} "{kind}"')
            seen.add(kind)
            yield item, item_path, kind

    def container_path(self, value: Any, path: str) -> str:
        """A required path inside the container (a mount's destination, a device node).
        runc 1.1 takes a relative one from the container's / (securejoin): say so and
        normalise it."""
        container_path = self.req_string(value, path)
        if not container_path.startswith("/"):
            absolute = os.path.normpath("/" + container_path)
            self.warn(path, f'"{container_path}" is not absolute, taken as "{absolute}"')
            container_path = absolute
        return container_path

    # -- sections -------------------------------------------------------------------------

    def oci_version(self, raw: dict) -> str:
        value = raw.get("ociVersion")
        if value is None:
            self.missing("ociVersion")
        version = self.string(value, "ociVersion")
        major = _major_of(version)
        if major is None:
            self.fail("ociVersion", f'invalid version "{version}"')
        if major != "1":
            self.fail("ociVersion", f'unsupported major version "{version}"')
        return version

    def process(self, raw: Any, path: str) -> Process:
        raw = self.obj(raw, path)

        args_path = _at(path, "args")
        args = self.string_list(raw.get("args"), args_path)
        if not args:
            self.fail(args_path, "must not be empty")

        cwd_path = _at(path, "cwd")
        cwd = self.req_string(raw.get("cwd"), cwd_path)
        if not cwd.startswith("/"):
            self.fail(cwd_path, f'"{cwd}" is not an absolute path')

        env_path = _at(path, "env")
        env = self.string_list(raw.get("env"), env_path)
        for i, entry in enumerate(env):
            # The same rules runc's init applies before exec (populateProcessEnvironment).
            name, sep, _ = entry.partition("=")
            if not sep:
                self.fail(f"{env_path}[{i}]", f'invalid environment variable "{entry}": missing "="')
            if not name:
                self.fail(f"{env_path}[{i}]", f'invalid environment variable "{entry}": empty name')

        console_size = None
        size_raw = raw.get("consoleSize")
        if size_raw is not None:
            size_path = _at(path, "consoleSize")
            size = self.obj(size_raw, size_path)
            console_size = ConsoleSize(
                height=self.req_integer(size.get("height"), _at(size_path, "height"), 0, UINT32_MAX),
                width=self.req_integer(size.get("width"), _at(size_path, "width"), 0, UINT32_MAX),
            )

        capabilities = None
        caps_raw = raw.get("capabilities")
        if caps_raw is not None:
            capabilities = self.capabilities(caps_raw, _at(path, "capabilities"))

        oom_path = _at(path, "oomScoreAdj")
        return Process(
            args=args,
            cwd=cwd,
            env=env,
            terminal=self.boolean(raw.get("terminal"), _at(path, "terminal")),
            console_size=console_size,
            user=self.user(raw.get("user"), _at(path, "user")),
            capabilities=capabilities,
            rlimits=self.rlimits(raw.get("rlimits"), _at(path, "rlimits")),
            no_new_privileges=self.boolean(raw.get("noNewPrivileges"), _at(path, "noNewPrivileges")),
            # The kernel's OOM_SCORE_ADJ_MIN/MAX: refuse here rather than at the write.
            oom_score_adj=self.opt_integer(raw.get("oomScoreAdj"), oom_path, -1000, 1000),
            apparmor_profile=self.string(raw.get("apparmorProfile"), _at(path, "apparmorProfile")),
            selinux_label=self.string(raw.get("selinuxLabel"), _at(path, "selinuxLabel")),
        )

    def user(self, raw: Any, path: str) -> User:
        raw = self.obj(raw, path)
        gids_path = _at(path, "additionalGids")
        gids = [
            self.integer(gid, f"{gids_path}[{i}]", 0, UINT32_MAX)
            for i, gid in enumerate(self.array(raw.get("additionalGids"), gids_path))
        ]
        uid = raw.get("uid")
        gid = raw.get("gid")
        return User(
            uid=0 if uid is None else self.integer(uid, _at(path, "uid"), 0, UINT32_MAX),
            gid=0 if gid is None else self.integer(gid, _at(path, "gid"), 0, UINT32_MAX),
            # umask(2) keeps only the permission bits: a larger value is a mistake, not a mask.
            umask=self.opt_integer(raw.get("umask"), _at(path, "umask"), 0, 0o777),
            additional_gids=gids,
        )

    def capabilities(self, raw: Any, path: str) -> Capabilities:
        # names unknown to this runtime or kernel are kept: the runtime ignores them with
        # a warning (runtime-spec >= 1.1, runc; see pyrunc.caps.warn_ignored)
        raw = self.obj(raw, path)
        sets = {}
        for set_name in CAPABILITY_SETS:
            sets[set_name] = self.string_list(raw.get(set_name), _at(path, set_name))
        return Capabilities(**sets)

    def rlimits(self, raw: Any, path: str) -> list[Rlimit]:
        from pyrunc.rlimits import RLIMITS

        limits = []
        for item, item_path, rtype in self.typed_items(raw, path, RLIMITS, "rlimit"):
            soft = self.req_integer(item.get("soft"), _at(item_path, "soft"), 0, UINT64_MAX)
            hard = self.req_integer(item.get("hard"), _at(item_path, "hard"), 0, UINT64_MAX)
            if soft > hard:
                self.fail(_at(item_path, "soft"), f"soft limit {soft} exceeds hard limit {hard}")
            limits.append(Rlimit(type=rtype, soft=soft, hard=hard))
        return limits

    def mounts(self, raw: Any, path: str, bundle_real: "_BundleReal") -> list[Mount]:
        mounts = []
        for i, item in enumerate(self.array(raw, path)):
            item_path = f"{path}[{i}]"
            item = self.obj(item, item_path)
            destination = self.container_path(item.get("destination"), _at(item_path, "destination"))
            mount_type = self.string(item.get("type"), _at(item_path, "type"))
            source = self.string(item.get("source"), _at(item_path, "source"))
            options = self.string_list(item.get("options"), _at(item_path, "options"))
            if source and not source.startswith("/") and (
                "bind" in options or "rbind" in options or mount_type == "bind"
            ):
                # As runc: a bind source is a host path, relative to the bundle.
                source = os.path.join(bundle_real.get(), source)
            mounts.append(Mount(destination=destination, type=mount_type, source=source, options=options))
        return mounts

    def hooks(self, raw: Any, path: str) -> Hooks:
        raw = self.obj(raw, path)
        hooks = Hooks()
        for json_name, attr in HOOK_KINDS:
            kind_path = _at(path, json_name)
            entries = []
            for i, item in enumerate(self.array(raw.get(json_name), kind_path)):
                item_path = f"{kind_path}[{i}]"
                item = self.obj(item, item_path)
                hook_path = _at(item_path, "path")
                executable = self.req_string(item.get("path"), hook_path)
                if not executable.startswith("/"):
                    self.fail(hook_path, f'"{executable}" is not an absolute path')
                timeout_path = _at(item_path, "timeout")
                timeout = self.opt_integer(item.get("timeout"), timeout_path, INT64_MIN, INT64_MAX)
                if timeout is not None and timeout <= 0:
                    self.fail(timeout_path, f"must be greater than zero, got {timeout}")
                entries.append(
                    Hook(
                        path=executable,
                        args=self.string_list(item.get("args"), _at(item_path, "args")),
                        # absent and empty differ: absent inherits the runtime's environment
                        env=None if item.get("env") is None else self.string_list(item["env"], _at(item_path, "env")),
                        timeout=timeout,
                    )
                )
            setattr(hooks, attr, entries)
        return hooks

    def linux(self, raw: Any, path: str) -> Linux:
        raw = self.obj(raw, path)
        linux = Linux()

        ns_path = _at(path, "namespaces")
        for item, item_path, ns_type in self.typed_items(raw.get("namespaces"), ns_path, NAMESPACE_TYPES,
                                                         "namespace type"):
            ns_file = self.string(item.get("path"), _at(item_path, "path"))
            if ns_file and not ns_file.startswith("/"):
                self.fail(_at(item_path, "path"), f'"{ns_file}" is not an absolute path')
            linux.namespaces.append(Namespace(type=ns_type, path=ns_file))

        linux.uid_mappings = self.id_mappings(raw.get("uidMappings"), _at(path, "uidMappings"))
        linux.gid_mappings = self.id_mappings(raw.get("gidMappings"), _at(path, "gidMappings"))

        offsets_path = _at(path, "timeOffsets")
        for clock, offset in self.obj(raw.get("timeOffsets"), offsets_path).items():
            clock_path = _at(offsets_path, clock)
            if clock not in TIME_CLOCKS:
                self.fail(clock_path, f'unknown clock "{clock}" (expected "monotonic" or "boottime")')
            offset = self.obj(offset, clock_path)
            secs = self.opt_integer(offset.get("secs"), _at(clock_path, "secs"), INT64_MIN, INT64_MAX)
            # timens_offsets(5): 0 <= nanoseconds < NSEC_PER_SEC.
            nanosecs = self.opt_integer(offset.get("nanosecs"), _at(clock_path, "nanosecs"), 0, 999_999_999)
            linux.time_offsets[clock] = (secs or 0, nanosecs or 0)

        dev_path = _at(path, "devices")
        for i, item in enumerate(self.array(raw.get("devices"), dev_path)):
            linux.devices.append(self.device(item, f"{dev_path}[{i}]"))

        linux.cgroups_path = self.string(raw.get("cgroupsPath"), _at(path, "cgroupsPath"))
        linux.resources, linux.cgroup_resources = self.resources(raw.get("resources"), _at(path, "resources"))

        prop_path = _at(path, "rootfsPropagation")
        linux.rootfs_propagation = self.string(raw.get("rootfsPropagation"), prop_path)
        if linux.rootfs_propagation not in ROOTFS_PROPAGATIONS:
            self.fail(prop_path, f'unsupported propagation "{linux.rootfs_propagation}"')

        linux.masked_paths = self.string_list(raw.get("maskedPaths"), _at(path, "maskedPaths"))
        linux.readonly_paths = self.string_list(raw.get("readonlyPaths"), _at(path, "readonlyPaths"))
        linux.sysctl = self.string_map(raw.get("sysctl"), _at(path, "sysctl"))

        seccomp = raw.get("seccomp")
        if seccomp is not None:
            linux.seccomp = self.obj(seccomp, _at(path, "seccomp"))
            linux.seccomp_profile = self.seccomp(linux.seccomp)
        linux.mount_label = self.string(raw.get("mountLabel"), _at(path, "mountLabel"))
        personality = raw.get("personality")
        if personality is not None:
            linux.personality = self.personality(personality, _at(path, "personality"))
        rdt = raw.get("intelRdt")
        if rdt is not None:
            linux.intel_rdt = self.intel_rdt(rdt, _at(path, "intelRdt"))
        return linux

    def resources(self, raw: Any, path: str) -> tuple[dict, dict]:
        """linux.resources as written and normalized; each controller module validates
        its own section (pyrunc.cgroups.controllers), in the same vocabulary: its
        "linux.resources.<field>: <problem>" gets this parser's "config.json: " prefix."""
        raw = self.obj(raw, path)
        from pyrunc.cgroups import _resources
        from pyrunc.cgroups._paths import CgroupError
        try:
            return raw, _resources.normalize(raw)
        except CgroupError as e:
            raise ConfigError(f"{self.prefix}{e}") from None

    def seccomp(self, raw: dict) -> Any:
        """The Profile to load, validated by pyrunc.seccomp.profile (its messages are
        this parser's: "config.json: linux.seccomp.<field>: ..."); None without
        defaultAction and syscalls (runc loads no filter then)."""
        if not raw.get("defaultAction") and not raw.get("syscalls"):
            return None
        from pyrunc.seccomp.profile import parse as parse_profile
        return parse_profile(raw)

    def personality(self, raw: Any, path: str) -> Personality:
        raw = self.obj(raw, path)
        return Personality(domain=self.string(raw.get("domain"), _at(path, "domain")),
                           flags=self.string_list(raw.get("flags"), _at(path, "flags")))

    def intel_rdt(self, raw: Any, path: str) -> IntelRdt:
        raw = self.obj(raw, path)
        clos_id = self.string(raw.get("closID"), _at(path, "closID"))
        if clos_id in (".", "..") or "/" in clos_id:
            self.fail(_at(path, "closID"), f'invalid intelRdt.ClosID "{clos_id}"')
        for flag in ("enableCMT", "enableMBM"):
            self.boolean(raw.get(flag), _at(path, flag))
        return IntelRdt(clos_id=clos_id,
                        l3_cache_schema=self.string(raw.get("l3CacheSchema"), _at(path, "l3CacheSchema")),
                        mem_bw_schema=self.string(raw.get("memBwSchema"), _at(path, "memBwSchema")))

    def id_mappings(self, raw: Any, path: str) -> list[IDMapping]:
        mappings = []
        for i, item in enumerate(self.array(raw, path)):
            item_path = f"{path}[{i}]"
            item = self.obj(item, item_path)
            mappings.append(
                IDMapping(
                    container_id=self.req_integer(item.get("containerID"), _at(item_path, "containerID"), 0, UINT32_MAX),
                    host_id=self.req_integer(item.get("hostID"), _at(item_path, "hostID"), 0, UINT32_MAX),
                    # A zero-length range is rejected by the kernel's uid_map parser.
                    size=self.req_integer(item.get("size"), _at(item_path, "size"), 1, UINT32_MAX),
                )
            )
        return mappings

    def device(self, raw: Any, path: str) -> Device:
        raw = self.obj(raw, path)
        type_path = _at(path, "type")
        dev_type = self.req_string(raw.get("type"), type_path)
        if dev_type not in DEVICE_TYPES:
            self.fail(type_path, f'invalid device type "{dev_type}" (expected c, b, u or p)')
        node = self.container_path(raw.get("path"), _at(path, "path"))
        if dev_type == "p":
            # A fifo has no device number; the spec lets major/minor be omitted.
            major = self.opt_integer(raw.get("major"), _at(path, "major"), INT64_MIN, INT64_MAX) or 0
            minor = self.opt_integer(raw.get("minor"), _at(path, "minor"), INT64_MIN, INT64_MAX) or 0
        else:
            # major/minor are int64 in the spec; makedev() takes 32-bit unsigned halves.
            major = self.req_integer(raw.get("major"), _at(path, "major"), 0, UINT32_MAX)
            minor = self.req_integer(raw.get("minor"), _at(path, "minor"), 0, UINT32_MAX)
        return Device(
            type=dev_type,
            path=node,
            major=major,
            minor=minor,
            file_mode=self.opt_integer(raw.get("fileMode"), _at(path, "fileMode"), 0, UINT32_MAX),
            uid=self.opt_integer(raw.get("uid"), _at(path, "uid"), 0, UINT32_MAX),
            gid=self.opt_integer(raw.get("gid"), _at(path, "gid"), 0, UINT32_MAX),
        )

    # -- checks across sections (runc's configs/validate) ---------------------------------

    def cross_check(self, spec: Spec) -> None:
        linux = spec.linux
        ns_types = {ns.type for ns in linux.namespaces}

        user_ns = linux.namespace("user")
        if user_ns is None:
            if linux.uid_mappings or linux.gid_mappings:
                which = "linux.uidMappings" if linux.uid_mappings else "linux.gidMappings"
                self.fail(which, "id mappings specified, but linux.namespaces has no user namespace")
        elif not user_ns.path:
            # A new user namespace without maps would leave every id unmapped (runc:
            # "User namespaces enabled, but no uid mappings found.").
            if not linux.uid_mappings:
                self.fail("linux.uidMappings", "a new user namespace needs uid mappings")
            if not linux.gid_mappings:
                self.fail("linux.gidMappings", "a new user namespace needs gid mappings")

        if linux.time_offsets:
            time_ns = linux.namespace("time")
            if time_ns is None:
                self.fail("linux.timeOffsets", "time offsets specified, but linux.namespaces has no time namespace")
            if time_ns.path:
                self.fail("linux.timeOffsets", "time offsets cannot be set when joining an existing time namespace")

        if spec.hostname and "uts" not in ns_types:
            self.fail("hostname", "unable to set hostname without a private uts namespace")
        if spec.domainname and "uts" not in ns_types:
            self.fail("domainname", "unable to set domainname without a private uts namespace")

        # Masking /proc paths without a mount namespace would mask them on the host.
        if "mount" not in ns_types:
            if linux.masked_paths:
                self.fail("linux.maskedPaths", "unable to restrict paths without a private mount namespace")
            if linux.readonly_paths:
                self.fail("linux.readonlyPaths", "unable to restrict paths without a private mount namespace")

        if linux.sysctl:
            self.check_sysctls(linux, ns_types)

    def check_sysctls(self, linux: Linux, ns_types: set[str]) -> None:
        """/proc/sys is only partly namespaced: allow what the container's own namespaces
        isolate, as runc's validator does."""
        host_net: Optional[bool] = None
        for name in linux.sysctl:
            path = f'linux.sysctl["{name}"]'
            if name in IPC_SYSCTLS or name.startswith("fs.mqueue."):
                if "ipc" not in ns_types:
                    self.fail(path, "not allowed in the host's ipc namespace")
                continue
            if name.startswith("net."):
                if host_net is None:
                    host_net = self.is_host_net(linux)
                if host_net:
                    self.fail(path, "not allowed in the host's network namespace")
                continue
            if "uts" in ns_types:
                if name == "kernel.domainname":
                    continue
                if name == "kernel.hostname":
                    self.fail(path, 'not allowed: it conflicts with the "hostname" field')
            self.fail(path, "not in a separate kernel namespace")

    def is_host_net(self, linux: Linux) -> bool:
        net_ns = linux.namespace("network")
        if net_ns is None:
            return True
        if not net_ns.path:
            return False
        # Joining a path that is our own network namespace is still the host's.
        index = linux.namespaces.index(net_ns)
        try:
            theirs = os.stat(net_ns.path)
        except OSError as e:
            self.fail(f"linux.namespaces[{index}].path", f"stat {net_ns.path}: {_strerror(e)}")
        try:
            ours = os.stat("/proc/self/ns/net")
        except OSError:
            return False
        return (theirs.st_dev, theirs.st_ino) == (ours.st_dev, ours.st_ino)


class _BundleReal:
    """The bundle directory with symlinks resolved, computed once and only when needed
    (runc resolves relative paths against getcwd() after chdir(bundle): the physical path)."""

    __slots__ = ("bundle", "_real")

    def __init__(self, bundle: str):
        self.bundle = bundle
        self._real: Optional[str] = None

    def get(self) -> str:
        if self._real is None:
            self._real = os.path.realpath(self.bundle)
        return self._real


def _strerror(error: OSError) -> str:
    """Go-style lowercase errno text: "no such file or directory"."""
    text = os.strerror(error.errno) if error.errno else str(error)
    return text[:1].lower() + text[1:]


def _root(parser: _Parser, raw: Any, bundle_real: _BundleReal, creating: bool) -> Root:
    if raw is None:
        if creating:
            parser.missing("root")
        return Root(path="")
    raw = parser.obj(raw, "root")
    path = parser.string(raw.get("path"), "root.path")
    readonly = parser.boolean(raw.get("readonly"), "root.readonly")
    if not path:
        if creating:
            parser.missing("root.path")
        return Root(path="", readonly=readonly)
    rootfs = os.path.normpath(path if path.startswith("/") else os.path.join(bundle_real.get(), path))
    if creating:
        try:
            st = os.stat(rootfs)
        except FileNotFoundError:
            parser.fail("root.path", f'rootfs "{rootfs}" does not exist')
        except OSError as e:
            parser.fail("root.path", f'rootfs "{rootfs}": {_strerror(e)}')
        import stat

        if not stat.S_ISDIR(st.st_mode):
            parser.fail("root.path", f'rootfs "{rootfs}" is not a directory')
        # As runc's validator: the rootfs must be its own canonical path, so that every
        # later lookup (pivot_root, state.rootfs, hooks) names the same directory.
        real = os.path.realpath(rootfs)
        if real != rootfs:
            parser.fail("root.path", f'rootfs "{rootfs}" goes through a symlink (resolves to "{real}")')
    return Root(path=rootfs, readonly=readonly)


def parse_spec(raw: Any, bundle_dir: str, *, creating: bool = True, source: str = CONFIG_NAME) -> Spec:
    """Validate a decoded config.json and build the Spec.

    `creating` (the default, for create/run) requires what runc requires at create:
    `process` and `root.path`, and checks that the rootfs is an existing directory that
    is not reached through a symlink. With creating=False those are optional and the
    filesystem is not touched (reading back a config saved for an existing container).
    """
    parser = _Parser(f"{source}: " if source else "")
    if not isinstance(raw, dict):
        parser.wrong_type("", "a JSON object", raw)
    bundle = os.path.abspath(bundle_dir)
    bundle_real = _BundleReal(bundle)

    oci_version = parser.oci_version(raw)
    root = _root(parser, raw.get("root"), bundle_real, creating)

    process = None
    process_raw = raw.get("process")
    if process_raw is not None:
        process = parser.process(process_raw, "process")
    elif creating:
        parser.missing("process")

    spec = Spec(
        oci_version=oci_version,
        root=root,
        process=process,
        hostname=parser.string(raw.get("hostname"), "hostname"),
        domainname=parser.string(raw.get("domainname"), "domainname"),
        mounts=parser.mounts(raw.get("mounts"), "mounts", bundle_real),
        hooks=parser.hooks(raw.get("hooks"), "hooks"),
        # Annotations are opaque to the runtime: any string, NUL included, is kept.
        annotations=parser.string_map(raw.get("annotations"), "annotations", nul_ok=True),
        linux=parser.linux(raw.get("linux"), "linux"),
        bundle=bundle,
        process_json=process_raw,
    )
    parser.cross_check(spec)
    spec.warnings = parser.warnings
    return spec


def parse_process(raw: Any, where: str = "process", source: str = "") -> Process:
    """Validate a process object (config.json's `process`, or the file of `exec --process`).

    Field paths in errors start with `where` ("process.args: must not be empty"; pass
    where="" for bare "args: ..."), prefixed with "`source`: " when given.
    """
    parser = _Parser(f"{source}: " if source else "")
    return parser.process(raw, where)


def load_spec(bundle_dir: str, *, creating: bool = True) -> Spec:
    """Read and parse `<bundle_dir>/config.json`."""

    bundle = os.path.abspath(bundle_dir)
    config_path = os.path.join(bundle, CONFIG_NAME)
    try:
        with open(config_path, "rb") as f:
            data = f.read()
    except OSError as e:
        # Only on failure look at the bundle itself, to say which of the two is missing.
        try:
            st = os.stat(bundle)
        except OSError as bundle_error:
            raise ConfigError(f"bundle {bundle}: {_strerror(bundle_error)}") from None
        import stat

        if not stat.S_ISDIR(st.st_mode):
            raise ConfigError(f"bundle {bundle}: not a directory") from None
        raise ConfigError(f"{CONFIG_NAME}: open {config_path}: {_strerror(e)}") from None
    from pyrunc import fastjson
    try:
        raw = fastjson.loads(data)
    except UnicodeDecodeError as e:
        raise ConfigError(f"{CONFIG_NAME}: invalid JSON: not valid UTF-8 at byte {e.start}") from None
    except RecursionError:
        raise ConfigError(f"{CONFIG_NAME}: invalid JSON: nested too deeply") from None
    except ValueError as e:  # json.JSONDecodeError
        raise ConfigError(
            f"{CONFIG_NAME}: invalid JSON: {e.msg} (line {e.lineno} column {e.colno})"
        ) from None
    return parse_spec(raw, bundle, creating=creating)
