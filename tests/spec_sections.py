"""One bad value for every section of config.json, and the JSON path its error must name.

Shared by tests/unit/test_spec_sections.py (spec.parse, no root) and
tests/integration/test_spec_refusal.py (`pyrunc create` refuses it before touching the
host). Each entry: (name, JSON path to set as a list of keys, bad value, field the
one-line error names). Values are chosen so that only the field's own validation can
refuse them (the rest of the template config stays valid)."""

BAD_SECTIONS = [
    ("ociVersion", ["ociVersion"], 5, "ociVersion"),
    ("root", ["root", "path"], 7, "root.path"),
    ("process", ["process"], [], "process"),
    ("process.args", ["process", "args"], [], "process.args"),
    ("process.cwd", ["process", "cwd"], "relative", "process.cwd"),
    ("process.env", ["process", "env"], ["NO_EQUALS_SIGN"], "process.env[0]"),
    ("process.terminal", ["process", "terminal"], "no", "process.terminal"),
    ("process.consoleSize", ["process", "consoleSize"], {"height": -1, "width": 80},
     "process.consoleSize.height"),
    ("process.user", ["process", "user", "uid"], "0", "process.user.uid"),
    ("process.user.additionalGids", ["process", "user", "additionalGids"], [1, "x"],
     "process.user.additionalGids[1]"),
    ("process.capabilities", ["process", "capabilities", "bounding"], "CAP_KILL",
     "process.capabilities.bounding"),
    ("process.rlimits", ["process", "rlimits"], [{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}],
     "process.rlimits[0].type"),
    ("process.noNewPrivileges", ["process", "noNewPrivileges"], 1, "process.noNewPrivileges"),
    ("process.oomScoreAdj", ["process", "oomScoreAdj"], 5000, "process.oomScoreAdj"),
    ("process.apparmorProfile", ["process", "apparmorProfile"], 1, "process.apparmorProfile"),
    ("process.selinuxLabel", ["process", "selinuxLabel"], 1, "process.selinuxLabel"),
    ("process.scheduler", ["process", "scheduler"], {"policy": "SCHED_OTHER", "nice": 99},
     "process.scheduler.nice"),
    ("process.ioPriority", ["process", "ioPriority"], {"class": "IOPRIO_CLASS_BE", "priority": 9},
     "process.ioPriority.priority"),
    ("process.execCPUAffinity", ["process", "execCPUAffinity"], {"final": "2-1"},
     "process.execCPUAffinity.final"),
    ("mounts", ["mounts"], [{"destination": 5}], "mounts[0].destination"),
    ("mounts.options", ["mounts"], [{"destination": "/x", "options": "ro"}], "mounts[0].options"),
    ("mounts.uidMappings", ["mounts"], [{"destination": "/x", "type": "tmpfs", "source": "tmpfs",
                                         "uidMappings": [{"containerID": 0, "hostID": 1, "size": 1}],
                                         "gidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]}],
     "mounts[0].uidMappings"),
    ("mounts.gidMappings", ["mounts"], [{"destination": "/x", "type": "bind", "source": "/tmp", "options": ["bind"],
                                         "uidMappings": [{"containerID": 0, "hostID": 1, "size": 1}],
                                         "gidMappings": [{"containerID": 0, "hostID": 1, "size": 0}]}],
     "mounts[0].gidMappings[0].size"),
    ("hooks", ["hooks"], [], "hooks"),
    ("hooks.prestart", ["hooks", "prestart"], [{"path": "relative"}], "hooks.prestart[0].path"),
    ("hooks.createRuntime", ["hooks", "createRuntime"], [{"path": "/bin/true", "timeout": 0}],
     "hooks.createRuntime[0].timeout"),
    ("hooks.poststop", ["hooks", "poststop"], [{"path": "/bin/true", "args": [1]}],
     "hooks.poststop[0].args[0]"),
    ("annotations", ["annotations"], {"key": 1}, 'annotations["key"]'),
    ("hostname", ["hostname"], 5, "hostname"),
    ("domainname", ["domainname"], 5, "domainname"),
    ("linux", ["linux"], [], "linux"),
    ("linux.namespaces", ["linux", "namespaces"], [{"type": "bogus"}], "linux.namespaces[0].type"),
    ("linux.uidMappings", ["linux", "uidMappings"], [{"containerID": 0, "hostID": 0, "size": 0}],
     "linux.uidMappings[0].size"),
    ("linux.gidMappings", ["linux", "gidMappings"], [{"containerID": 0, "hostID": "0", "size": 1}],
     "linux.gidMappings[0].hostID"),
    ("linux.timeOffsets", ["linux", "timeOffsets"], {"realtime": {"secs": 1}},
     "linux.timeOffsets.realtime"),
    ("linux.devices", ["linux", "devices"], [{"type": "x", "path": "/dev/x"}], "linux.devices[0].type"),
    ("linux.cgroupsPath", ["linux", "cgroupsPath"], 5, "linux.cgroupsPath"),
    ("linux.resources", ["linux", "resources"], [], "linux.resources"),
    ("linux.resources.memory", ["linux", "resources", "memory"], {"limit": "1G"},
     "linux.resources.memory.limit"),
    ("linux.resources.cpu", ["linux", "resources", "cpu"], {"shares": "x"}, "linux.resources.cpu.shares"),
    ("linux.resources.cpu.cpus", ["linux", "resources", "cpu"], {"cpus": "a-b"},
     "linux.resources.cpu.cpus"),
    ("linux.resources.pids", ["linux", "resources", "pids"], {"limit": "x"}, "linux.resources.pids.limit"),
    ("linux.resources.blockIO", ["linux", "resources", "blockIO"], {"weight": "x"},
     "linux.resources.blockIO.weight"),
    ("linux.resources.hugepageLimits", ["linux", "resources", "hugepageLimits"],
     [{"pageSize": "2XB", "limit": 1}], "linux.resources.hugepageLimits[0].pageSize"),
    ("linux.resources.network", ["linux", "resources", "network"], {"classID": "x"},
     "linux.resources.network.classID"),
    ("linux.resources.rdma", ["linux", "resources", "rdma"], {"mlx5_0": {"hcaHandles": "x"}},
     "linux.resources.rdma.mlx5_0.hcaHandles"),
    ("linux.resources.devices", ["linux", "resources", "devices"],
     [{"allow": True, "type": "c", "major": 1, "minor": 3, "access": "x"}],
     "linux.resources.devices[0].access"),
    ("linux.resources.unified", ["linux", "resources", "unified"], {"a/b": "1"},
     "linux.resources.unified"),
    ("linux.rootfsPropagation", ["linux", "rootfsPropagation"], "sideways", "linux.rootfsPropagation"),
    ("linux.maskedPaths", ["linux", "maskedPaths"], "/proc/kcore", "linux.maskedPaths"),
    ("linux.readonlyPaths", ["linux", "readonlyPaths"], [1], "linux.readonlyPaths[0]"),
    ("linux.sysctl", ["linux", "sysctl"], {"kernel.pid_max": 1}, 'linux.sysctl["kernel.pid_max"]'),
    ("linux.seccomp", ["linux", "seccomp"], {"defaultAction": "SCMP_ACT_BOGUS"},
     "linux.seccomp.defaultAction"),
    ("linux.seccomp.syscalls", ["linux", "seccomp"],
     {"defaultAction": "SCMP_ACT_ALLOW",
      "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO",
                    "args": [{"index": 9, "value": 0, "op": "SCMP_CMP_EQ"}]}]},
     "linux.seccomp.syscalls[0].args[0].index"),
    ("linux.mountLabel", ["linux", "mountLabel"], 5, "linux.mountLabel"),
    ("linux.personality", ["linux", "personality"], {"domain": 5}, "linux.personality.domain"),
    ("linux.personality.domain", ["linux", "personality"], {"domain": "LINUX64"}, "linux.personality.domain"),
    ("linux.memoryPolicy", ["linux", "memoryPolicy"], {"mode": "MPOL_BIND", "nodes": "x"},
     "linux.memoryPolicy.nodes"),
    ("linux.personality.flags", ["linux", "personality"], {"domain": "LINUX", "flags": "x"},
     "linux.personality.flags"),
    ("linux.intelRdt", ["linux", "intelRdt"], {"closID": "a/b"}, "linux.intelRdt.closID"),
    ("linux.netDevices", ["linux", "netDevices"], {"eth0": {"name": "a/b"}}, "linux.netDevices.eth0"),
]


def set_path(config: dict, keys: list, value) -> None:
    """config[k0][k1]... = value, creating the objects on the way."""
    for key in keys[:-1]:
        if not isinstance(config.get(key), dict):
            config[key] = {}
        config = config[key]
    config[keys[-1]] = value


def error_names(message: str, field: str) -> bool:
    """`message` is one line naming `field` as the JSON path of the error."""
    return "\n" not in message.strip() and (f"{field}: " in message or f"{field}[" in message
                                            or f"{field}." in message)
