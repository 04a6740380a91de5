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
    CPUAffinity,
    Device,
    Hook,
    Hooks,
    IDMapping,
    IntelRdt,
    IOPriority,
    Linux,
    MemoryPolicy,
    Mount,
    Namespace,
    Personality,
    Process,
    Rlimit,
    Root,
    Scheduler,
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
INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1

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
            scheduler=self.scheduler(raw.get("scheduler"), _at(path, "scheduler")),
            io_priority=self.io_priority(raw.get("ioPriority"), _at(path, "ioPriority")),
            exec_cpu_affinity=self.cpu_affinity(raw.get("execCPUAffinity"), _at(path, "execCPUAffinity")),
        )

    def name_in(self, value: Any, path: str, names, unknown: str) -> str:
        """A required string that is one of `names` (the kernel's constant names); another
        is refused as `<unknown> "<name>"`."""
        name = self.req_string(value, path)
        if name not in names:
            self.fail(path, f'{unknown} "{name}"')
        return name

    def names_in(self, value: Any, path: str, names, unknown: str) -> list[str]:
        """An array of strings each one of `names` (as name_in)."""
        items = self.string_list(value, path)
        for i, name in enumerate(items):
            if name not in names:
                self.fail(f"{path}[{i}]", f'{unknown} "{name}"')
        return items

    def scheduler(self, raw: Any, path: str) -> Optional[Scheduler]:
        """process.scheduler: runc 1.4's validation (policy required, nice in [-20, 19],
        priority only for SCHED_FIFO/SCHED_RR, runtime/deadline/period only for
        SCHED_DEADLINE), plus what sched_setattr(2) would refuse later: a policy Linux
        lacks, a realtime priority outside [1, 99]."""
        if raw is None:
            return None
        from pyrunc import process_attrs as pa
        raw = self.obj(raw, path)
        policy_path = _at(path, "policy")
        policy = self.name_in(raw.get("policy"), policy_path, pa.SCHED_POLICIES, "unknown scheduler policy")
        if policy in pa.UNSUPPORTED_POLICIES:
            self.fail(policy_path, f"{policy} is not supported by Linux")
        nice = self.opt_integer(raw.get("nice"), _at(path, "nice"), INT32_MIN, INT32_MAX) or 0
        if not -20 <= nice <= 19:
            self.fail(_at(path, "nice"), f"{nice} is out of range [-20, 19]")
        priority_path = _at(path, "priority")
        priority = self.opt_integer(raw.get("priority"), priority_path, INT32_MIN, INT32_MAX) or 0
        if policy in pa.REALTIME_POLICIES:
            if not 1 <= priority <= 99:
                self.fail(priority_path, f"{priority} is out of range [1, 99] for {policy}")
        elif priority:
            self.fail(priority_path, "can only be specified for SCHED_FIFO or SCHED_RR policy")
        times = {}
        for name in ("runtime", "deadline", "period"):
            times[name] = self.opt_integer(raw.get(name), _at(path, name), 0, UINT64_MAX) or 0
            if times[name] and policy != "SCHED_DEADLINE":
                self.fail(_at(path, name), "can only be specified for SCHED_DEADLINE policy")
        if policy == "SCHED_DEADLINE":
            # sched_setattr(2): 0 < runtime <= deadline <= period (period 0: = deadline)
            period = times["period"] or times["deadline"]
            if not 0 < times["runtime"] <= times["deadline"] <= period:
                self.fail(path, "SCHED_DEADLINE needs 0 < runtime <= deadline <= period")
        flags_path = _at(path, "flags")
        flags = self.names_in(raw.get("flags"), flags_path, pa.SCHED_FLAGS, "unknown scheduler flag")
        for i, flag in enumerate(flags):
            if flag in pa.UNVALUED_SCHED_FLAGS:
                self.fail(f"{flags_path}[{i}]", f"{flag} is not supported: the spec gives no clamp value")
        return Scheduler(policy=policy, nice=nice, priority=priority, flags=flags, **times)

    def io_priority(self, raw: Any, path: str) -> Optional[IOPriority]:
        if raw is None:
            return None
        from pyrunc import process_attrs as pa
        raw = self.obj(raw, path)
        io_class = self.name_in(raw.get("class"), _at(path, "class"), pa.IOPRIO_CLASSES,
                               "unknown I/O priority class")
        priority = self.opt_integer(raw.get("priority"), _at(path, "priority"), INT64_MIN, INT64_MAX) or 0
        if not 0 <= priority <= 7:
            self.fail(_at(path, "priority"), f"{priority} is out of range [0, 7]")
        return IOPriority(io_class=io_class, priority=priority)

    def cpu_list(self, value: Any, path: str) -> str:
        """A CPU or node list as written ("0-3,7"), checked with runc's rules; "" absent."""
        from pyrunc import process_attrs as pa
        text = self.string(value, path)
        if text:
            try:
                pa.parse_cpu_list(text)
            except ValueError as e:
                self.fail(path, f'invalid list "{text}": {e}')
        return text

    def cpu_affinity(self, raw: Any, path: str) -> Optional[CPUAffinity]:
        if raw is None:
            return None
        raw = self.obj(raw, path)
        return CPUAffinity(initial=self.cpu_list(raw.get("initial"), _at(path, "initial")),
                           final=self.cpu_list(raw.get("final"), _at(path, "final")))

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
            mount = Mount(destination=destination, type=mount_type, source=source, options=options)
            if item.get("uidMappings") is not None or item.get("gidMappings") is not None:
                mount.uid_mappings = self.mount_id_mappings(item.get("uidMappings"), _at(item_path, "uidMappings"))
                mount.gid_mappings = self.mount_id_mappings(item.get("gidMappings"), _at(item_path, "gidMappings"))
            mounts.append(mount)
        return mounts

    def mount_id_mappings(self, raw: Any, path: str) -> list[IDMapping]:
        """An id-mapped mount's mappings: written to a user namespace's maps, whose
        ranges may not overlap on either side (the kernel refuses the write)."""
        mappings = self.id_mappings(raw, path)
        for side in ("container_id", "host_id"):
            ranges = sorted((getattr(m, side), i) for i, m in enumerate(mappings))
            for (start, i), (next_start, j) in zip(ranges, ranges[1:]):
                if start + mappings[i].size > next_start:
                    json_name = "containerID" if side == "container_id" else "hostID"
                    self.fail(f"{path}[{j}].{json_name}", f"{next_start} overlaps the range of {path}[{i}]")
        return mappings

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
        policy = raw.get("memoryPolicy")
        if policy is not None:
            linux.memory_policy = self.memory_policy(policy, _at(path, "memoryPolicy"))
        rdt = raw.get("intelRdt")
        if rdt is not None:
            linux.intel_rdt = self.intel_rdt(rdt, _at(path, "intelRdt"))
        net_devices = raw.get("netDevices")
        if net_devices is not None:
            linux.net_devices = self.net_devices(net_devices, _at(path, "netDevices"))
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
        from pyrunc.process_attrs import PERSONALITY_DOMAINS
        raw = self.obj(raw, path)
        domain_path = _at(path, "domain")
        domain = self.string(raw.get("domain"), domain_path)
        if domain not in PERSONALITY_DOMAINS:
            # runc >= 1.2's words
            self.fail(domain_path, f"invalid personality domain {domain}")
        flags = self.string_list(raw.get("flags"), _at(path, "flags"))
        if flags:
            self.warn(_at(path, "flags"), f"ignoring unsupported personality flags {flags} (as runc)")
        return Personality(domain=domain, flags=flags)

    def memory_policy(self, raw: Any, path: str) -> MemoryPolicy:
        """linux.memoryPolicy: runc 1.4's names (its "invalid memory policy mode/flag"
        words), plus what set_mempolicy(2) refuses for any host: nodes with a mode that
        takes none or none with one that needs them, static and relative nodes together."""
        from pyrunc import process_attrs as pa
        raw = self.obj(raw, path)
        mode = self.name_in(raw.get("mode"), _at(path, "mode"), pa.MPOL_MODES, "invalid memory policy mode")
        nodes_path = _at(path, "nodes")
        nodes = self.cpu_list(raw.get("nodes"), nodes_path)
        flags_path = _at(path, "flags")
        flags = self.names_in(raw.get("flags"), flags_path, pa.MPOL_FLAGS, "invalid memory policy flag")
        if nodes and mode in pa.MPOL_NO_NODES:
            self.fail(nodes_path, f"{mode} takes no nodes")
        if not nodes and mode in pa.MPOL_NEED_NODES:
            self.fail(nodes_path, f"{mode} needs nodes")
        if "MPOL_F_STATIC_NODES" in flags and "MPOL_F_RELATIVE_NODES" in flags:
            self.fail(flags_path, "MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES are mutually exclusive")
        return MemoryPolicy(mode=mode, nodes=nodes, flags=flags)

    def intel_rdt(self, raw: Any, path: str) -> IntelRdt:
        raw = self.obj(raw, path)
        clos_id = self.string(raw.get("closID"), _at(path, "closID"))
        if clos_id in (".", "..") or "/" in clos_id:
            self.fail(_at(path, "closID"), f'invalid intelRdt.ClosID "{clos_id}"')
        for flag in ("enableCMT", "enableMBM"):
            self.boolean(raw.get(flag), _at(path, flag))
        schemata_path = _at(path, "schemata")
        schemata = self.string_list(raw.get("schemata"), schemata_path)
        for i, line in enumerate(schemata):
            # one line each: the schemata file takes a line per resource
            if "\n" in line:
                self.fail(f"{schemata_path}[{i}]", "must be a single line")
        return IntelRdt(clos_id=clos_id,
                        l3_cache_schema=self.string(raw.get("l3CacheSchema"), _at(path, "l3CacheSchema")),
                        mem_bw_schema=self.string(raw.get("memBwSchema"), _at(path, "memBwSchema")),
                        schemata=schemata,
                        enable_monitoring=self.boolean(raw.get("enableMonitoring"), _at(path, "enableMonitoring")))

    def net_devices(self, raw: Any, path: str) -> dict[str, str]:
        devices = {}
        for host_name, device in self.obj(raw, path).items():
            device = self.obj(device, _at(path, host_name))
            devices[host_name] = self.string(device.get("name"), _at(_at(path, host_name), "name"))
        from pyrunc.netdev import check_names
        problem = check_names(devices)
        if problem is not None:
            self.fail(_at(path, problem[0]), problem[1])
        return devices

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

    def check_idmapped_mounts(self, spec: Spec, user_ns) -> None:
        """runc 1.2+'s rules (configs/validate checkIDMapMounts): only a bind is id-mapped;
        it needs both mappings, or `idmap`/`ridmap` with the container's user namespace
        (whose mappings it then uses)."""
        from pyrunc.rootfs import options as mount_options
        for i, m in enumerate(spec.mounts):
            flag = next((o for o in m.options if o in mount_options.IDMAP), None)
            mapped = bool(m.uid_mappings or m.gid_mappings)
            if not (flag or mapped):
                continue
            path = f"mounts[{i}]"
            field_path = f"{path}.uidMappings" if mapped else f"{path}.options"
            is_bind = m.type == "bind" or any(o in ("bind", "rbind") for o in m.options)
            if not is_bind:
                self.fail(field_path, "id-mapped mounts are only supported for bind mounts")
            if mapped and not (m.uid_mappings and m.gid_mappings):
                missing = "gidMappings" if m.uid_mappings else "uidMappings"
                self.fail(f"{path}.{missing}", "id-mapped mounts must have both uid and gid mappings specified")
            if not mapped and user_ns is None:
                self.fail(field_path, f'"{flag}" needs {path}.uidMappings and gidMappings, '
                                      "or a user namespace whose mappings it uses")

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

        self.check_idmapped_mounts(spec, user_ns)

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

        if linux.net_devices and "network" not in ns_types:
            # runc: "unable to move network devices without a NET namespace"
            self.fail("linux.netDevices", "unable to move network devices without a network namespace")

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
