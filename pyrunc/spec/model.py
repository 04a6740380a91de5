"""The typed OCI runtime-spec model: the one conversion boundary from raw config.json.

`pyrunc.spec.parse` validates every field of config.json, the facility-owned sections
included (linux.resources by each cgroup controller's `validate`, linux.seccomp by
`pyrunc.seccomp.profile`), before anything touches the host; afterwards config.json is
not read again. Field names are the OCI names in snake_case. Two sections also keep
the object as written, validated, because it is what is persisted or hashed:
`linux.resources` (runc's state records it) and `linux.seccomp` (the key of the
compiled-filter cache, and what `exec` inherits); `Spec.process_json` likewise.
"""
from __future__ import annotations

from pyrunc.record import Record, field

if False:  # annotations only: importing the seccomp package is not needed to build a Spec
    from pyrunc.seccomp.profile import Profile


class Root(Record):
    path: str  # absolute, resolved against the bundle directory
    readonly: bool = False


class User(Record):
    uid: int = 0
    gid: int = 0
    umask: int | None = None
    additional_gids: list[int] = field(default_factory=list)


class Capabilities(Record):
    """Each set is a list of capability names as written (CAP_CHOWN ...), validated."""
    bounding: list[str] = field(default_factory=list)
    effective: list[str] = field(default_factory=list)
    inheritable: list[str] = field(default_factory=list)
    permitted: list[str] = field(default_factory=list)
    ambient: list[str] = field(default_factory=list)


class Rlimit(Record):
    type: str  # RLIMIT_NOFILE ...
    soft: int
    hard: int


class ConsoleSize(Record):
    height: int
    width: int


class Scheduler(Record):
    """process.scheduler (runtime-spec 1.2): sched_setattr(2) just before exec."""
    policy: str  # SCHED_OTHER, SCHED_FIFO, SCHED_RR, SCHED_BATCH, SCHED_IDLE, SCHED_DEADLINE
    nice: int = 0
    priority: int = 0
    flags: list[str] = field(default_factory=list)
    runtime: int = 0   # SCHED_DEADLINE only, nanoseconds
    deadline: int = 0
    period: int = 0


class IOPriority(Record):
    """process.ioPriority (runtime-spec 1.2): ioprio_set(2) of the process."""
    io_class: str  # IOPRIO_CLASS_RT, IOPRIO_CLASS_BE, IOPRIO_CLASS_IDLE
    priority: int = 0


class CPUAffinity(Record):
    """process.execCPUAffinity (runtime-spec 1.2): CPU lists as written ("0-3,7"),
    validated; "" when absent."""
    initial: str = ""  # while the runtime sets the process up, before it joins the cgroup
    final: str = ""    # right before execve


class Process(Record):
    args: list[str]
    cwd: str = "/"
    env: list[str] = field(default_factory=list)
    terminal: bool = False
    console_size: ConsoleSize | None = None
    user: User = field(default_factory=User)
    capabilities: Capabilities | None = None  # None: keep the runtime's (runc: empty sets)
    rlimits: list[Rlimit] = field(default_factory=list)
    no_new_privileges: bool = False
    oom_score_adj: int | None = None
    apparmor_profile: str = ""
    selinux_label: str = ""
    scheduler: Scheduler | None = None
    io_priority: IOPriority | None = None
    exec_cpu_affinity: CPUAffinity | None = None


class Mount(Record):
    destination: str  # absolute (a relative one is taken relative to /, with a warning, as runc)
    type: str = ""
    source: str = ""  # a relative source of a bind mount is resolved against the bundle directory
    options: list[str] = field(default_factory=list)
    # an id-mapped bind (runtime-spec 1.2): the ids of the source as the mount shows them
    uid_mappings: list["IDMapping"] = field(default_factory=list)
    gid_mappings: list["IDMapping"] = field(default_factory=list)


class Hook(Record):
    path: str
    args: list[str] = field(default_factory=list)
    env: list[str] | None = None  # None: inherit (runc passes its own environment)
    timeout: int | None = None


class Hooks(Record):
    prestart: list[Hook] = field(default_factory=list)
    create_runtime: list[Hook] = field(default_factory=list)
    create_container: list[Hook] = field(default_factory=list)
    start_container: list[Hook] = field(default_factory=list)
    poststart: list[Hook] = field(default_factory=list)
    poststop: list[Hook] = field(default_factory=list)


class Namespace(Record):
    type: str  # pid, network, mount, ipc, uts, user, cgroup, time
    path: str = ""  # empty: create a new one


class IDMapping(Record):
    container_id: int
    host_id: int
    size: int


class Device(Record):
    type: str  # c, b, u, p
    path: str
    major: int = 0
    minor: int = 0
    file_mode: int | None = None
    uid: int | None = None
    gid: int | None = None


class Linux(Record):
    namespaces: list[Namespace] = field(default_factory=list)
    uid_mappings: list[IDMapping] = field(default_factory=list)
    gid_mappings: list[IDMapping] = field(default_factory=list)
    time_offsets: dict[str, tuple[int, int]] = field(default_factory=dict)  # clock -> (secs, nanosecs)
    devices: list[Device] = field(default_factory=list)
    cgroups_path: str = ""
    resources: dict = field(default_factory=dict)  # LinuxResources as written, validated
    # every controller's section normalized (pyrunc.cgroups._resources.Resources)
    cgroup_resources: dict = field(default_factory=dict)
    rootfs_propagation: str = ""
    masked_paths: list[str] = field(default_factory=list)
    readonly_paths: list[str] = field(default_factory=list)
    sysctl: dict[str, str] = field(default_factory=dict)
    seccomp: dict | None = None  # LinuxSeccomp as written, validated
    # the validated filter (pyrunc.seccomp.profile.Profile); None when there is none to
    # load: no linux.seccomp, or one without defaultAction and syscalls (runc: no filter)
    seccomp_profile: Profile | None = None
    mount_label: str = ""
    personality: Personality | None = None
    memory_policy: MemoryPolicy | None = None
    intel_rdt: IntelRdt | None = None
    # linux.netDevices: host interface name -> its name in the container ("" keeps it);
    # moved by pyrunc.netdev
    net_devices: dict[str, str] = field(default_factory=dict)

    def namespace(self, ns_type: str) -> Namespace | None:
        for ns in self.namespaces:
            if ns.type == ns_type:
                return ns
        return None


class Personality(Record):
    """linux.personality: personality(2) before exec (runc >= 1.2); its flags are not
    applied (runc ignores them too), with a warning."""
    domain: str = ""  # LINUX or LINUX32
    flags: list[str] = field(default_factory=list)


class MemoryPolicy(Record):
    """linux.memoryPolicy (runtime-spec 1.3): set_mempolicy(2) before exec."""
    mode: str                      # MPOL_DEFAULT, MPOL_BIND ...
    nodes: str = ""                # a node list as written ("0-1,3"), validated
    flags: list[str] = field(default_factory=list)  # MPOL_F_STATIC_NODES ...


class IntelRdt(Record):
    """linux.intelRdt, applied by pyrunc.intelrdt."""
    clos_id: str = ""
    l3_cache_schema: str = ""
    mem_bw_schema: str = ""
    schemata: list[str] = field(default_factory=list)  # runtime-spec 1.3: whole schemata lines
    enable_monitoring: bool = False


class Spec(Record):
    oci_version: str
    root: Root
    process: Process | None
    hostname: str = ""
    domainname: str = ""
    mounts: list[Mount] = field(default_factory=list)
    hooks: Hooks = field(default_factory=Hooks)
    annotations: dict[str, str] = field(default_factory=dict)
    linux: Linux = field(default_factory=Linux)
    bundle: str = ""  # absolute bundle directory
    # `process` as written (validated): what `exec` inherits, persisted in the state
    process_json: dict | None = None
    # Non-fatal findings (e.g. a relative mount destination), one lowercase line each,
    # for the caller to log at warning level: the model never prints.
    warnings: list[str] = field(default_factory=list)
