"""The spec model: parsing runc's default config, every validation error naming its field,
and `default_spec` against the output of the installed runc."""
import json
import os
import shutil
import subprocess

import pytest

import pyrunc.spec as spec_api
from pyrunc.errors import ConfigError
from pyrunc.spec.default import default_spec, render

RUNC = shutil.which("runc") or ("/usr/sbin/runc" if os.path.exists("/usr/sbin/runc") else None)


@pytest.fixture
def bundle(tmp_path):
    (tmp_path / "rootfs").mkdir()
    return tmp_path


def write_config(bundle, config):
    (bundle / "config.json").write_text(json.dumps(config))


def parse_error(raw, bundle_dir, **kwargs) -> str:
    with pytest.raises(ConfigError) as info:
        spec_api.parse(raw, str(bundle_dir), **kwargs)
    message = str(info.value)
    assert "\n" not in message and not message.endswith(".")
    return message


# -- default spec ---------------------------------------------------------------------------


def runc_spec(tmp_path, rootless: bool) -> str:
    if RUNC is None:
        pytest.skip("runc is not installed: cannot compare with `runc spec` output")
    out = tmp_path / ("rootless" if rootless else "root")
    out.mkdir()
    argv = [RUNC, "spec"] + (["--rootless"] if rootless else [])
    subprocess.run(argv, cwd=out, check=True, capture_output=True)
    return (out / "config.json").read_text()


@pytest.mark.parametrize("rootless", [False, True])
def test_default_spec_matches_runc(tmp_path, rootless):
    expected = runc_spec(tmp_path, rootless)
    ours = default_spec(rootless=rootless)
    assert ours == json.loads(expected)
    assert render(ours) == expected  # byte for byte, key order and tabs included
    assert spec_api.default_spec(rootless) == ours


def test_default_spec_is_a_fresh_copy():
    first = default_spec()
    first["process"]["capabilities"]["bounding"].append("CAP_SYS_ADMIN")
    assert "CAP_SYS_ADMIN" not in default_spec()["process"]["capabilities"]["bounding"]


def test_render_escapes_like_go():
    assert render({"a": "<&>\u2028é"}) == '{\n\t"a": "\\u003c\\u0026\\u003e\\u2028é"\n}'


@pytest.mark.parametrize("rootless", [False, True])
def test_default_spec_parses(bundle, rootless):
    write_config(bundle, default_spec(rootless=rootless))
    spec = spec_api.load(str(bundle))
    assert spec.oci_version == "1.0.2-dev"
    assert spec.bundle == str(bundle)
    assert spec.root.path == str(bundle / "rootfs") and spec.root.readonly
    assert spec.process.args == ["sh"] and spec.process.terminal and spec.process.cwd == "/"
    assert spec.process.capabilities.bounding == ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    assert spec.process.capabilities.inheritable == []
    assert spec.process.rlimits[0].type == "RLIMIT_NOFILE"
    assert (spec.process.rlimits[0].soft, spec.process.rlimits[0].hard) == (1024, 1024)
    assert spec.process.no_new_privileges
    assert spec.hostname == "runc"
    assert [m.destination for m in spec.mounts][:3] == ["/proc", "/dev", "/dev/pts"]
    assert spec.linux.namespace("mount") is not None
    assert spec.linux.namespace("time") is None
    assert len(spec.linux.masked_paths) == 10 and len(spec.linux.readonly_paths) == 5
    assert spec.warnings == []
    if rootless:
        assert spec.linux.uid_mappings[0].host_id == os.geteuid()
        assert spec.linux.resources == {}
    else:
        assert spec.linux.resources == {"devices": [{"allow": False, "access": "rwm"}]}


def test_import_is_lazy():
    code = "import sys, pyrunc.spec; print(sorted(m for m in sys.modules if m.startswith('pyrunc')))"
    out = subprocess.run(
        [os.sys.executable, "-c", code],
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert out.strip() == "['pyrunc', 'pyrunc.spec']"


# -- full config: every field -----------------------------------------------------------------


def full_config():
    config = default_spec()
    config["ociVersion"] = "1.1.0-rc.1"
    process = config["process"]
    process["consoleSize"] = {"height": 24, "width": 80}
    process["user"] = {"uid": 1000, "gid": 1000, "umask": 0o22, "additionalGids": [5, 6]}
    process["oomScoreAdj"] = -500
    process["apparmorProfile"] = "docker-default"
    process["rlimits"].append({"type": "RLIMIT_NPROC", "soft": 10, "hard": 2**64 - 1})
    config["domainname"] = "example.org"
    config["annotations"] = {"org.example.key": "value"}
    config["hooks"] = {
        "prestart": [{"path": "/bin/true", "args": ["true"], "env": ["A=1"], "timeout": 5}],
        "createRuntime": [{"path": "/bin/true"}],
        "poststop": [{"path": "/bin/false"}],
    }
    linux = config["linux"]
    linux["namespaces"].append({"type": "time"})
    linux["namespaces"].append({"type": "user"})
    linux["namespaces"].append({"type": "cgroup", "path": "/proc/self/ns/cgroup"})
    linux["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    linux["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    linux["timeOffsets"] = {"monotonic": {"secs": -5, "nanosecs": 1}, "boottime": {"secs": 86400}}
    linux["devices"] = [
        {"type": "c", "path": "/dev/fuse", "major": 10, "minor": 229, "fileMode": 0o666, "uid": 0, "gid": 0},
        {"type": "p", "path": "/dev/fifo"},
    ]
    linux["cgroupsPath"] = "/pyrunc/test"
    linux["rootfsPropagation"] = "rslave"
    linux["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.shmmax": "1000", "kernel.domainname": "x"}
    linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW"}
    linux["mountLabel"] = ""
    config["mounts"].append({"destination": "/data", "type": "bind", "source": "data", "options": ["rbind"]})
    config["unknownExtension"] = {"ignored": True}
    return config


def test_full_config(bundle):
    spec = spec_api.parse(full_config(), str(bundle))
    process = spec.process
    assert (process.console_size.height, process.console_size.width) == (24, 80)
    assert process.user.uid == 1000 and process.user.umask == 0o22 and process.user.additional_gids == [5, 6]
    assert process.oom_score_adj == -500 and process.apparmor_profile == "docker-default"
    assert process.rlimits[1].hard == 2**64 - 1
    assert spec.hooks.prestart[0].timeout == 5 and spec.hooks.prestart[0].env == ["A=1"]
    assert spec.hooks.create_runtime[0].path == "/bin/true" and spec.hooks.poststop[0].path == "/bin/false"
    assert spec.annotations == {"org.example.key": "value"}
    linux = spec.linux
    assert linux.namespace("cgroup").path == "/proc/self/ns/cgroup"
    assert linux.uid_mappings[0].host_id == 100000 and linux.gid_mappings[0].size == 65536
    assert linux.time_offsets == {"monotonic": (-5, 1), "boottime": (86400, 0)}
    assert linux.devices[0].file_mode == 0o666 and linux.devices[1].major == 0
    assert linux.rootfs_propagation == "rslave"
    assert linux.seccomp == {"defaultAction": "SCMP_ACT_ALLOW"}
    assert linux.sysctl["kernel.shmmax"] == "1000"
    assert spec.mounts[-1].source == os.path.join(os.path.realpath(bundle), "data")


def test_null_is_absent(bundle):
    config = default_spec()
    config["hostname"] = None
    config["mounts"] = None
    config["process"]["capabilities"] = None
    config["process"]["rlimits"] = None
    config["linux"]["seccomp"] = None
    config["linux"]["resources"] = None
    spec = spec_api.parse(config, str(bundle))
    assert spec.hostname == "" and spec.mounts == []
    assert spec.process.capabilities is None and spec.process.rlimits == []
    assert spec.linux.seccomp is None and spec.linux.resources == {}


def test_not_creating_allows_missing_process_and_root(tmp_path):
    config = default_spec()
    del config["process"]
    config["root"]["path"] = "does-not-exist"
    spec = spec_api.parse(config, str(tmp_path), creating=False)
    assert spec.process is None and spec.root.path == str(tmp_path / "does-not-exist")
    del config["root"]
    assert spec_api.parse(config, str(tmp_path), creating=False).root.path == ""


# -- one error per field ------------------------------------------------------------------------


def mutate(path, value):
    """A function setting config[path...] = value (or deleting it when value is DELETE)."""

    def apply(config):
        node = config
        for key in path[:-1]:
            node = node[key]
        if value is DELETE:
            del node[path[-1]]
        else:
            node[path[-1]] = value

    return apply


DELETE = object()
NS = [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]

ERROR_CASES = [
    # (id, change, expected message after "config.json: ")
    ("no-ociVersion", mutate(["ociVersion"], DELETE), "ociVersion: required field is missing"),
    ("ociVersion-2", mutate(["ociVersion"], "2.0.0"), 'ociVersion: unsupported major version "2.0.0"'),
    ("ociVersion-0", mutate(["ociVersion"], "0.9.0"), 'ociVersion: unsupported major version "0.9.0"'),
    ("ociVersion-junk", mutate(["ociVersion"], "banana"), 'ociVersion: invalid version "banana"'),
    ("ociVersion-int", mutate(["ociVersion"], 1), "ociVersion: expected a string, got a number"),
    ("no-root", mutate(["root"], DELETE), "root: required field is missing"),
    ("no-root-path", mutate(["root", "path"], ""), "root.path: required field is missing"),
    ("root-readonly-str", mutate(["root", "readonly"], "yes"), "root.readonly: expected a boolean, got a string"),
    ("no-process", mutate(["process"], DELETE), "process: required field is missing"),
    ("process-array", mutate(["process"], []), "process: expected an object, got an array"),
    ("no-args", mutate(["process", "args"], []), "process.args: must not be empty"),
    ("args-missing", mutate(["process", "args"], DELETE), "process.args: must not be empty"),
    ("args-int", mutate(["process", "args"], ["sh", 1]), "process.args[1]: expected a string, got a number"),
    ("args-nul", mutate(["process", "args"], ["s\0h"]), "process.args[0]: must not contain a NUL byte"),
    ("no-cwd", mutate(["process", "cwd"], ""), "process.cwd: required field is missing"),
    ("cwd-relative", mutate(["process", "cwd"], "tmp"), 'process.cwd: "tmp" is not an absolute path'),
    ("env-no-equals", mutate(["process", "env"], ["A=1", "FOO"]),
     'process.env[1]: invalid environment variable "FOO": missing "="'),
    ("env-no-name", mutate(["process", "env"], ["=x"]), 'process.env[0]: invalid environment variable "=x": empty name'),
    ("terminal-int", mutate(["process", "terminal"], 1), "process.terminal: expected a boolean, got a number"),
    ("uid-string", mutate(["process", "user", "uid"], "0"), "process.user.uid: expected an integer, got a string"),
    ("uid-float", mutate(["process", "user", "uid"], 1.0), "process.user.uid: expected an integer, got the number 1.0"),
    ("uid-bool", mutate(["process", "user", "uid"], True), "process.user.uid: expected an integer, got a boolean"),
    ("uid-negative", mutate(["process", "user", "uid"], -1), "process.user.uid: -1 is out of range [0, 4294967295]"),
    ("gid-big", mutate(["process", "user", "gid"], 2**32), "process.user.gid: 4294967296 is out of range [0, 4294967295]"),
    ("umask-string", mutate(["process", "user", "umask"], "022"), "process.user.umask: expected an integer, got a string"),
    ("umask-big", mutate(["process", "user", "umask"], 0o1000), "process.user.umask: 512 is out of range [0, 511]"),
    ("gids-string", mutate(["process", "user", "additionalGids"], [1, "2"]),
     "process.user.additionalGids[1]: expected an integer, got a string"),
    ("console-no-width", mutate(["process", "consoleSize"], {"height": 1}),
     "process.consoleSize.width: required field is missing"),
    ("console-negative", mutate(["process", "consoleSize"], {"height": -1, "width": 1}),
     "process.consoleSize.height: -1 is out of range [0, 4294967295]"),
    ("cap-string", mutate(["process", "capabilities", "effective"], "CAP_KILL"),
     "process.capabilities.effective: expected an array, got a string"),
    ("rlimit-unknown", mutate(["process", "rlimits"], [{"type": "RLIMIT_FOO", "soft": 1, "hard": 1}]),
     'process.rlimits[0].type: unknown rlimit "RLIMIT_FOO"'),
    ("rlimit-soft-gt-hard", mutate(["process", "rlimits"], [{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 1}]),
     "process.rlimits[0].soft: soft limit 10 exceeds hard limit 1"),
    ("rlimit-duplicate", mutate(["process", "rlimits"], [{"type": "RLIMIT_CORE", "soft": 0, "hard": 0}] * 2),
     'process.rlimits[1].type: duplicate rlimit "RLIMIT_CORE"'),
    ("rlimit-no-hard", mutate(["process", "rlimits"], [{"type": "RLIMIT_CORE", "soft": 0}]),
     "process.rlimits[0].hard: required field is missing"),
    ("rlimit-too-big", mutate(["process", "rlimits"], [{"type": "RLIMIT_CORE", "soft": 0, "hard": 2**64}]),
     "process.rlimits[0].hard: 18446744073709551616 is out of range [0, 18446744073709551615]"),
    ("oom-score", mutate(["process", "oomScoreAdj"], 1001), "process.oomScoreAdj: 1001 is out of range [-1000, 1000]"),
    ("hostname-int", mutate(["hostname"], 5), "hostname: expected a string, got a number"),
    ("ns-unknown", mutate(["linux", "namespaces"], NS[:3] + [{"type": "foo"}]),
     'linux.namespaces[3].type: unknown namespace type "foo"'),
    ("ns-duplicate", mutate(["linux", "namespaces"], NS + [{"type": "pid"}]),
     'linux.namespaces[5].type: duplicate namespace type "pid"'),
    ("ns-no-type", mutate(["linux", "namespaces"], NS + [{"path": "/proc/1/ns/net"}]),
     "linux.namespaces[5].type: required field is missing"),
    ("ns-relative-path", mutate(["linux", "namespaces"], NS[:4] + [{"type": "mount", "path": "proc/1/ns/mnt"}]),
     'linux.namespaces[4].path: "proc/1/ns/mnt" is not an absolute path'),
    ("uidmap-without-userns", mutate(["linux", "uidMappings"], [{"containerID": 0, "hostID": 0, "size": 1}]),
     "linux.uidMappings: id mappings specified, but linux.namespaces has no user namespace"),
    ("gidmap-without-userns", mutate(["linux", "gidMappings"], [{"containerID": 0, "hostID": 0, "size": 1}]),
     "linux.gidMappings: id mappings specified, but linux.namespaces has no user namespace"),
    ("userns-without-maps", mutate(["linux", "namespaces"], NS + [{"type": "user"}]),
     "linux.uidMappings: a new user namespace needs uid mappings"),
    ("idmap-size-zero", mutate(["linux", "uidMappings"], [{"containerID": 0, "hostID": 0, "size": 0}]),
     "linux.uidMappings[0].size: 0 is out of range [1, 4294967295]"),
    ("idmap-missing-host", mutate(["linux", "gidMappings"], [{"containerID": 0, "size": 1}]),
     "linux.gidMappings[0].hostID: required field is missing"),
    ("mount-no-destination", mutate(["mounts"], [{"type": "tmpfs", "source": "tmpfs"}]),
     "mounts[0].destination: required field is missing"),
    ("mount-options-string", mutate(["mounts"], [{"destination": "/x", "options": "ro"}]),
     "mounts[0].options: expected an array, got a string"),
    ("device-type", mutate(["linux", "devices"], [{"type": "x", "path": "/dev/foo", "major": 1, "minor": 3}]),
     'linux.devices[0].type: invalid device type "x" (expected c, b, u or p)'),
    ("device-no-path", mutate(["linux", "devices"], [{"type": "c", "major": 1, "minor": 3}]),
     "linux.devices[0].path: required field is missing"),
    ("device-no-major", mutate(["linux", "devices"], [{"type": "b", "path": "/dev/sda", "minor": 3}]),
     "linux.devices[0].major: required field is missing"),
    ("time-offsets-clock", mutate(["linux", "timeOffsets"], {"realtime": {"secs": 1}}),
     'linux.timeOffsets.realtime: unknown clock "realtime" (expected "monotonic" or "boottime")'),
    ("time-offsets-nanosecs", mutate(["linux", "timeOffsets"], {"boottime": {"nanosecs": 10**9}}),
     "linux.timeOffsets.boottime.nanosecs: 1000000000 is out of range [0, 999999999]"),
    ("time-offsets-secs-string", mutate(["linux", "timeOffsets"], {"monotonic": {"secs": "1"}}),
     "linux.timeOffsets.monotonic.secs: expected an integer, got a string"),
    ("time-offsets-without-timens", mutate(["linux", "timeOffsets"], {"monotonic": {"secs": 1}}),
     "linux.timeOffsets: time offsets specified, but linux.namespaces has no time namespace"),
    ("sysctl-int", mutate(["linux", "sysctl"], {"kernel.shmmax": 5}),
     'linux.sysctl["kernel.shmmax"]: expected a string, got a number'),
    ("sysctl-not-namespaced", mutate(["linux", "sysctl"], {"kernel.foo": "1"}),
     'linux.sysctl["kernel.foo"]: not in a separate kernel namespace'),
    ("sysctl-hostname", mutate(["linux", "sysctl"], {"kernel.hostname": "x"}),
     'linux.sysctl["kernel.hostname"]: not allowed: it conflicts with the "hostname" field'),
    ("sysctl-ipc-without-ipcns", lambda c: (mutate(["linux", "namespaces"], [NS[0], NS[1], NS[3], NS[4]])(c),
                                            mutate(["linux", "sysctl"], {"fs.mqueue.msg_max": "10"})(c)),
     'linux.sysctl["fs.mqueue.msg_max"]: not allowed in the host\'s ipc namespace'),
    ("sysctl-net-without-netns", lambda c: (mutate(["linux", "namespaces"], [NS[0], NS[2], NS[3], NS[4]])(c),
                                            mutate(["linux", "sysctl"], {"net.ipv4.ip_forward": "1"})(c)),
     'linux.sysctl["net.ipv4.ip_forward"]: not allowed in the host\'s network namespace'),
    ("sysctl-net-joining-own-netns", lambda c: (
        mutate(["linux", "namespaces"], [NS[0], {"type": "network", "path": "/proc/self/ns/net"}] + NS[2:])(c),
        mutate(["linux", "sysctl"], {"net.core.somaxconn": "1"})(c)),
     'linux.sysctl["net.core.somaxconn"]: not allowed in the host\'s network namespace'),
    ("hostname-without-uts", mutate(["linux", "namespaces"], [NS[0], NS[1], NS[2], NS[4]]),
     "hostname: unable to set hostname without a private uts namespace"),
    ("masked-without-mountns", mutate(["linux", "namespaces"], NS[:4]),
     "linux.maskedPaths: unable to restrict paths without a private mount namespace"),
    ("propagation", mutate(["linux", "rootfsPropagation"], "bogus"),
     'linux.rootfsPropagation: unsupported propagation "bogus"'),
    ("resources-array", mutate(["linux", "resources"], []), "linux.resources: expected an object, got an array"),
    ("seccomp-string", mutate(["linux", "seccomp"], "default"), "linux.seccomp: expected an object, got a string"),
    ("linux-array", mutate(["linux"], []), "linux: expected an object, got an array"),
    ("hook-relative", mutate(["hooks"], {"prestart": [{"path": "bin/true"}]}),
     'hooks.prestart[0].path: "bin/true" is not an absolute path'),
    ("hook-no-path", mutate(["hooks"], {"poststart": [{"args": ["x"]}]}),
     "hooks.poststart[0].path: required field is missing"),
    ("hook-timeout-zero", mutate(["hooks"], {"createContainer": [{"path": "/bin/true", "timeout": 0}]}),
     "hooks.createContainer[0].timeout: must be greater than zero, got 0"),
    ("hook-timeout-negative", mutate(["hooks"], {"startContainer": [{"path": "/bin/true", "timeout": -3}]}),
     "hooks.startContainer[0].timeout: must be greater than zero, got -3"),
    ("hooks-array", mutate(["hooks"], []), "hooks: expected an object, got an array"),
    ("annotations-int", mutate(["annotations"], {"a": 1}), 'annotations["a"]: expected a string, got a number'),
    ("annotations-array", mutate(["annotations"], ["a"]), "annotations: expected an object, got an array"),
    # runc 1.1.5's validator: a closID that is not one path component
    ("intelrdt-closid", mutate(["linux", "intelRdt"], {"closID": "../x"}),
     'linux.intelRdt.closID: invalid intelRdt.ClosID "../x"'),
    ("intelrdt-schema-int", mutate(["linux", "intelRdt"], {"l3CacheSchema": 5}),
     "linux.intelRdt.l3CacheSchema: expected a string, got a number"),
]


@pytest.mark.parametrize("change,expected", [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES])
def test_error_names_field(bundle, change, expected):
    config = default_spec()
    change(config)
    assert parse_error(config, bundle) == f"config.json: {expected}"


def test_error_cases_are_each_the_only_problem(bundle):
    # Guard against a case passing for the wrong reason: the unchanged config is valid.
    spec_api.parse(default_spec(), str(bundle))


def test_top_level_must_be_object(bundle):
    assert parse_error([], bundle) == "config.json: expected a JSON object, got an array"


def test_accepted_versions(bundle):
    for version in ("1.0.0", "1.0.2-dev", "1.1.0-rc.3", "1.2.0", "1.0.0-rc5-dev", "1.2.0+dev"):
        config = default_spec()
        config["ociVersion"] = version
        assert spec_api.parse(config, str(bundle)).oci_version == version


def test_joined_net_namespace_allows_net_sysctls(bundle, tmp_path):
    # A network namespace that is not ours (here: a new one held by `unshare`).
    if shutil.which("unshare") is None:
        pytest.skip("unshare(1) missing")
    holder = subprocess.Popen(["unshare", "--net", "sleep", "30"])
    try:
        path = f"/proc/{holder.pid}/ns/net"
        for _ in range(100):
            if os.readlink(path) != os.readlink("/proc/self/ns/net"):
                break
            import time

            time.sleep(0.01)
        config = default_spec()
        config["linux"]["namespaces"][1] = {"type": "network", "path": path}
        config["linux"]["sysctl"] = {"net.core.somaxconn": "1"}
        spec = spec_api.parse(config, str(bundle))
        assert spec.linux.namespace("network").path == path
    finally:
        holder.kill()
        holder.wait()


def test_relative_mount_destination_warns(bundle):
    config = default_spec()
    config["mounts"].append({"destination": "mnt/./x", "type": "tmpfs", "source": "tmpfs"})
    spec = spec_api.parse(config, str(bundle))
    assert spec.mounts[-1].destination == "/mnt/x"
    assert spec.warnings == ['config.json: mounts[7].destination: "mnt/./x" is not absolute, taken as "/mnt/x"']


def test_bind_sources(bundle):
    config = default_spec()
    config["mounts"] += [
        {"destination": "/a", "source": "data", "options": ["bind", "ro"]},
        {"destination": "/b", "source": "/abs", "options": ["rbind"]},
        {"destination": "/c", "type": "tmpfs", "source": "tmpfs"},
    ]
    mounts = spec_api.parse(config, str(bundle)).mounts
    assert mounts[-3].source == os.path.join(os.path.realpath(bundle), "data")
    assert mounts[-2].source == "/abs"
    assert mounts[-1].source == "tmpfs"  # not a path: left alone


def test_time_offsets_with_joined_time_namespace(bundle):
    config = default_spec()
    config["linux"]["namespaces"].append({"type": "time", "path": "/proc/self/ns/time"})
    config["linux"]["timeOffsets"] = {"boottime": {"secs": 1}}
    assert parse_error(config, bundle) == (
        "config.json: linux.timeOffsets: time offsets cannot be set when joining an existing time namespace"
    )


def test_joined_user_namespace_needs_no_maps(bundle):
    config = default_spec()
    config["linux"]["namespaces"].append({"type": "user", "path": "/proc/self/ns/user"})
    assert spec_api.parse(config, str(bundle)).linux.namespace("user").path == "/proc/self/ns/user"


def test_unknown_fields_ignored(bundle):
    config = default_spec()
    config["vm"] = {"hypervisor": {}}
    config["process"]["ioPriority"] = {"class": "IOPRIO_CLASS_IDLE"}
    config["linux"]["intelRdt"] = {"closID": "x"}
    spec_api.parse(config, str(bundle))


# -- rootfs ---------------------------------------------------------------------------------------


def test_rootfs_relative_absolute_and_errors(tmp_path):
    config = default_spec()
    message = parse_error(config, tmp_path)
    assert message == f'config.json: root.path: rootfs "{tmp_path}/rootfs" does not exist'

    (tmp_path / "rootfs").write_text("")
    message = parse_error(config, tmp_path)
    assert message == f'config.json: root.path: rootfs "{tmp_path}/rootfs" is not a directory'

    (tmp_path / "rootfs").unlink()
    (tmp_path / "real").mkdir()
    (tmp_path / "rootfs").symlink_to("real")
    message = parse_error(config, tmp_path)
    assert message == (
        f'config.json: root.path: rootfs "{tmp_path}/rootfs" goes through a symlink (resolves to "{tmp_path}/real")'
    )

    config["root"]["path"] = str(tmp_path / "real")
    assert spec_api.parse(config, str(tmp_path)).root.path == str(tmp_path / "real")
    config["root"]["path"] = "sub/../real/"
    assert spec_api.parse(config, str(tmp_path)).root.path == str(tmp_path / "real")


def test_bundle_through_symlink_resolves_rootfs(tmp_path):
    # runc resolves a relative root.path against getcwd() after chdir(bundle): the real path.
    (tmp_path / "real" / "rootfs").mkdir(parents=True)
    (tmp_path / "link").symlink_to("real")
    spec = spec_api.parse(default_spec(), str(tmp_path / "link"))
    assert spec.root.path == str(tmp_path / "real" / "rootfs")
    assert spec.bundle == str(tmp_path / "link")


# -- load --------------------------------------------------------------------------------------------


def test_load_missing_config(tmp_path):
    with pytest.raises(ConfigError) as info:
        spec_api.load(str(tmp_path))
    assert str(info.value) == f"config.json: open {tmp_path}/config.json: no such file or directory"


def test_load_missing_bundle(tmp_path):
    with pytest.raises(ConfigError) as info:
        spec_api.load(str(tmp_path / "nope"))
    assert str(info.value) == f"bundle {tmp_path}/nope: no such file or directory"
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError) as info:
        spec_api.load(str(tmp_path / "file"))
    assert str(info.value) == f"bundle {tmp_path}/file: not a directory"


def test_load_invalid_json(bundle):
    (bundle / "config.json").write_text('{\n  "ociVersion": "1.0.2",\n}\n')
    with pytest.raises(ConfigError) as info:
        spec_api.load(str(bundle))
    assert str(info.value) == "config.json: invalid JSON: Expecting property name enclosed in double quotes (line 3 column 1)"
    (bundle / "config.json").write_text('{"a":\n\n')
    with pytest.raises(ConfigError) as info:
        spec_api.load(str(bundle))
    assert str(info.value) == "config.json: invalid JSON: Expecting value (line 3 column 1)"
    (bundle / "config.json").write_bytes(b'{"a": "\xff"}')
    with pytest.raises(ConfigError) as info:
        spec_api.load(str(bundle))
    assert str(info.value).startswith("config.json: invalid JSON: ")


def test_load_relative_bundle(bundle, monkeypatch):
    write_config(bundle, default_spec())
    monkeypatch.chdir(bundle.parent)
    spec = spec_api.load(bundle.name)
    assert spec.bundle == str(bundle) and spec.root.path == str(bundle / "rootfs")


def test_load_is_not_creating_when_asked(tmp_path):
    config = default_spec()
    del config["process"]
    write_config(tmp_path, config)
    spec = spec_api.load(str(tmp_path), creating=False)
    assert spec.process is None


# -- parse_process (exec --process) --------------------------------------------------------------------


def test_parse_process():
    raw = {
        "terminal": True,
        "args": ["sh", "-c", "id"],
        "env": ["PATH=/bin"],
        "cwd": "/tmp",
        "user": {"uid": 5, "gid": 6, "additionalGids": [7]},
        "capabilities": {"bounding": ["CAP_KILL"]},
        "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1, "hard": 2}],
        "noNewPrivileges": True,
        "oomScoreAdj": 3,
    }
    process = spec_api.parse_process(raw)
    assert process.args == ["sh", "-c", "id"] and process.cwd == "/tmp" and process.terminal
    assert process.user.additional_gids == [7] and process.capabilities.bounding == ["CAP_KILL"]
    assert process.capabilities.permitted == [] and process.oom_score_adj == 3
    assert process.rlimits[0].hard == 2 and process.no_new_privileges


def test_parse_process_errors():
    with pytest.raises(ConfigError) as info:
        spec_api.parse_process({"args": [], "cwd": "/"})
    assert str(info.value) == "process.args: must not be empty"
    with pytest.raises(ConfigError) as info:
        spec_api.parse_process({"args": ["x"]}, where="", source="/tmp/p.json")
    assert str(info.value) == "/tmp/p.json: cwd: required field is missing"
    # unknown capability names are kept, to be ignored with a warning (runc)
    process = spec_api.parse_process({"args": ["x"], "cwd": "/", "capabilities": {"ambient": ["CAP_X"]}})
    assert process.capabilities.ambient == ["CAP_X"]
    with pytest.raises(ConfigError) as info:
        spec_api.parse_process("not an object")
    assert str(info.value) == "process: expected an object, got a string"


# --- process attributes (runtime-spec 1.2-1.3), runc 1.4's rules

def test_cpu_list_syntax_is_runcs():
    from pyrunc.process_attrs import parse_cpu_list
    assert parse_cpu_list("0") == [0]
    assert parse_cpu_list("0,1,2-3") == [0, 1, 2, 3]
    assert parse_cpu_list("    , 1   , 3  ,  5-7,    ") == [1, 3, 5, 6, 7]
    assert parse_cpu_list("65536") == [65536]
    for bad in ("-", "1-", "-3", ",", " ", "54-53", "1 - 2", "65537", "0-65537"):
        with pytest.raises(ValueError):
            parse_cpu_list(bad)


def test_personality_flags_warned_not_applied(bundle):
    raw = default_spec()
    raw["linux"]["personality"] = {"domain": "LINUX", "flags": ["X"]}
    spec = spec_api.parse(raw, str(bundle))
    assert spec.linux.personality.domain == "LINUX"
    assert any("linux.personality.flags" in w for w in spec.warnings)


def test_process_attributes_parsed(bundle):
    raw = default_spec()
    raw["process"]["scheduler"] = {"policy": "SCHED_DEADLINE", "runtime": 1, "deadline": 2}
    raw["process"]["ioPriority"] = {"class": "IOPRIO_CLASS_IDLE"}
    raw["process"]["execCPUAffinity"] = {"final": "0-1"}
    raw["linux"]["memoryPolicy"] = {"mode": "MPOL_PREFERRED_MANY", "nodes": "0",
                                    "flags": ["MPOL_F_NUMA_BALANCING"]}
    spec = spec_api.parse(raw, str(bundle))
    assert (spec.process.scheduler.policy, spec.process.scheduler.deadline) == ("SCHED_DEADLINE", 2)
    assert (spec.process.io_priority.io_class, spec.process.io_priority.priority) == ("IOPRIO_CLASS_IDLE", 0)
    assert spec.process.exec_cpu_affinity.final == "0-1"
    assert spec.linux.memory_policy.flags == ["MPOL_F_NUMA_BALANCING"]
