"""cgroup behaviours of runc 1.1.5 that suites written by others check (issue 13, items 10,
11, 19-23, 30), each run under /usr/sbin/runc and pyrunc on the same bundle: exit code,
wording and effect must agree. Containers live beneath this process's own cgroups (a
relative cgroupsPath); the directories a test makes itself it removes itself."""
from __future__ import annotations

import json
import os
import re
import subprocess
import time

import pytest

from pyrunc.cgroups import mode
from support import cgroup_hierarchies, read_stripped, remove_cgroup_tree, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")

MiB = 1 << 20
KMSG = {"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11}
DENY_ALL = {"allow": False, "access": "rwm"}
# opens /dev/kmsg for writing and writes nothing: the device cgroup decides at open
OPEN_KMSG = "true > /dev/kmsg && echo kmsg-opened"


def message(stderr: str) -> str:
    """The msg of the last logrus text line, without runc's "runc run failed: " prefix."""
    found = re.findall(r'level=error msg="((?:[^"\\]|\\.)*)"', stderr)
    assert found, stderr
    return found[-1].removeprefix("runc run failed: ").removeprefix("runc create failed: ")


def both(pyrunc_cmd, runc_cmd, container_id, *args, **kw):
    """The same command under runc (id + "-runc") and pyrunc: (runc result, pyrunc result)."""
    return (runc_cmd(*args, container_id + "-runc", **kw), pyrunc_cmd(*args, container_id, **kw))


def _devices_bundle(bundle, rules, args):
    def edit(config):
        config["linux"]["devices"] = [KMSG]
        config["linux"]["resources"] = {"devices": rules}
    return bundle(edit, args=args)


# ---- item 10: linux.devices are created, but only the rules allow them --------------------

def test_spec_device_is_not_allowed_unless_rules_allow_it(pyrunc_cmd, runc_cmd, bundle, container_id):
    b = _devices_bundle(bundle, [DENY_ALL], ["sh", "-c", f"ls /dev/kmsg; {OPEN_KMSG}; sleep 30"])
    reference, ours = both(pyrunc_cmd, runc_cmd, container_id, "run", "-d", "-b", b)
    assert (reference.returncode, ours.returncode) == (0, 0), (reference.stderr, ours.stderr)
    for runtime, cid in ((runc_cmd, container_id + "-runc"), (pyrunc_cmd, container_id)):
        r = runtime("exec", cid, "sh", "-c", f"ls /dev/kmsg; {OPEN_KMSG}")
        assert r.returncode != 0
        # the node exists, opening it is denied (in exec as in the init)
        assert r.stdout == "/dev/kmsg\n" and "Operation not permitted" in r.stderr, (r.stdout, r.stderr)
        assert "kmsg-opened" not in r.stdout


def test_spec_device_in_init_is_denied_like_runc(pyrunc_cmd, runc_cmd, bundle, container_id):
    b = _devices_bundle(bundle, [DENY_ALL], ["sh", "-c", OPEN_KMSG])
    reference, ours = both(pyrunc_cmd, runc_cmd, container_id, "run", "-b", b)
    assert ours.returncode == reference.returncode != 0
    assert ours.stdout == reference.stdout == ""
    assert "Operation not permitted" in reference.stderr and "Operation not permitted" in ours.stderr


def test_spec_device_redefining_a_default_drops_its_default_rule(pyrunc_cmd, runc_cmd, bundle, container_id):
    """runc removes a default allowed device whose path linux.devices lists (specconv
    createDevices): /dev/zero from linux.devices is then not allowed either."""
    if mode() == "unified":
        pytest.skip("reads the v1 devices.list")

    def edit(config):
        config["linux"]["devices"] = [{"path": "/dev/zero", "type": "c", "major": 1, "minor": 5}]
        config["linux"]["resources"] = {"devices": [DENY_ALL]}
    b = bundle(edit, args=["cat", "/sys/fs/cgroup/devices/devices.list"])
    reference, ours = both(pyrunc_cmd, runc_cmd, container_id, "run", "-b", b)
    assert (reference.returncode, ours.returncode) == (0, 0), (reference.stderr, ours.stderr)
    assert sorted(ours.stdout.split("\n")) == sorted(reference.stdout.split("\n"))
    assert "c 1:5 rwm" not in ours.stdout and "c 1:3 rwm" in ours.stdout


# ---- item 11: access strings as runc reads them ----------------------------------------------

@pytest.mark.parametrize("access, listed", [("rwa", "c 1:11 rw"), ("wrr", "c 1:11 rw"), ("m w", "c 1:11 wm")])
def test_device_access_letters_as_runc_reads_them(pyrunc_cmd, runc_cmd, bundle, container_id, access, listed):
    if mode() == "unified":
        pytest.skip("reads the v1 devices.list")
    rules = [DENY_ALL, {"allow": True, "type": "c", "major": 1, "minor": 11, "access": access}]
    b = _devices_bundle(bundle, rules, ["sh", "-c", "grep '^c 1:11 ' /sys/fs/cgroup/devices/devices.list"])
    reference, ours = both(pyrunc_cmd, runc_cmd, container_id, "run", "-b", b)
    assert (reference.returncode, ours.returncode) == (0, 0), (reference.stderr, ours.stderr)
    assert ours.stdout == reference.stdout == listed + "\n"


@pytest.mark.parametrize("rule", [{"allow": True, "type": "c", "major": 1, "minor": 11, "access": ""},
                                  {"allow": True, "type": "c", "major": 1, "minor": 11}])
def test_empty_device_access_is_refused_like_runc(pyrunc_cmd, runc_cmd, bundle, container_id, state_root,
                                                  assert_no_residue, rule):
    b = _devices_bundle(bundle, [DENY_ALL, rule], ["true"])
    reference, ours = both(pyrunc_cmd, runc_cmd, container_id, "run", "-b", b)
    assert ours.returncode == reference.returncode == 1
    assert message(reference.stderr) == "device access at 1 field cannot be empty"
    # refused by spec.parse, before anything is created: a config error, named as every other
    assert message(ours.stderr) == ("config.json: linux.resources.devices[1].access: "
                                    "device access at 1 field cannot be empty")
    assert_no_residue(state_root, [container_id])


def test_device_access_without_r_w_or_m_is_refused(pyrunc_cmd, runc_cmd, bundle, container_id, state_root,
                                                   assert_no_residue):
    # runc fails only once the cgroup is written ("resulting devices cgroup doesn't
    # precisely match target"); pyrunc refuses the field before creating anything
    rule = {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "x"}
    reference, ours = both(pyrunc_cmd, runc_cmd, container_id, "run", "-b",
                           _devices_bundle(bundle, [DENY_ALL, rule], ["true"]))
    assert ours.returncode == reference.returncode == 1
    assert message(ours.stderr).startswith("config.json: linux.resources.devices[1].access: ")
    assert_no_residue(state_root, [container_id])


# ---- item 19: update --memory -1 lifts memory+swap too ---------------------------------------

def _memory_dir(cgroup: str) -> str:
    """Where both runtimes put a relative cgroupsPath: below our own cgroup, on a pure
    cgroup2 host below its parent (runc's fs2 rule)."""
    for mountpoint, own in cgroup_hierarchies().items():
        if mode() == "unified":
            return f"{mountpoint}{os.path.dirname(own.rstrip('/')).rstrip('/')}/{cgroup}"
        if os.path.exists(f"{mountpoint}/memory.limit_in_bytes"):
            return f"{mountpoint}{own.rstrip('/')}/{cgroup}"
    pytest.skip("no memory cgroup")


def test_update_memory_unlimited_lifts_memsw(pyrunc_cmd, runc_cmd, bundle, container_id):
    swap_file = "memory.swap.max" if mode() == "unified" else "memory.memsw.limit_in_bytes"
    limit_file = "memory.max" if mode() == "unified" else "memory.limit_in_bytes"
    if not os.path.exists(f"{_memory_dir('')}/{swap_file}"):
        pytest.skip(f"no swap accounting on this host ({swap_file} is missing)")

    def edit(config):
        config["linux"]["resources"] = {"memory": {"limit": 100 * MiB, "swap": 200 * MiB}}
    reference, ours = both(pyrunc_cmd, runc_cmd, container_id, "run", "-d", "-b", bundle(edit, args=["sleep", "30"]))
    assert (reference.returncode, ours.returncode) == (0, 0), (reference.stderr, ours.stderr)
    reference, ours = both(pyrunc_cmd, runc_cmd, container_id, "update", "--memory", "-1")
    assert (reference.returncode, ours.returncode) == (0, 0), (reference.stderr, ours.stderr)
    values = {cid: [read_stripped(f"{_memory_dir(cid)}/{name}") for name in (limit_file, swap_file)]
              for cid in (container_id, container_id + "-runc")}
    assert values[container_id] == values[container_id + "-runc"]
    assert str(100 * MiB) not in values[container_id] and str(200 * MiB) not in values[container_id]
    # a later memory limit leaves memory+swap unlimited, as in runc
    reference, ours = both(pyrunc_cmd, runc_cmd, container_id, "update", "--memory", "50M")
    assert (reference.returncode, ours.returncode) == (0, 0), (reference.stderr, ours.stderr)
    assert [read_stripped(f"{_memory_dir(container_id)}/{n}") for n in (limit_file, swap_file)] == \
        [read_stripped(f"{_memory_dir(container_id + '-runc')}/{n}") for n in (limit_file, swap_file)]


# ---- items 20-22: a cgroup (or parent) that exists before create ------------------------------

@pytest.fixture
def premade():
    """premade(name) makes <own cgroup>/<name> in every hierarchy (as another tool would
    have), returns {mountpoint: directory}; all of it is removed afterwards. A v1 cpuset
    starts empty (nothing can join it): fill_cpuset copies the parent's cpus and mems."""
    if mode() == "unified":
        pytest.skip("on a pure cgroup2 host a relative cgroupsPath lands beside our own cgroup, "
                    "where tests may not make cgroups")
    made: list[str] = []

    def make(name: str, fill_cpuset: bool = True) -> dict[str, str]:
        dirs = {}
        for mountpoint, own in cgroup_hierarchies().items():
            path = f"{mountpoint}{own.rstrip('/')}/{name}"
            os.makedirs(path, exist_ok=True)
            if fill_cpuset and os.path.exists(path + "/cpuset.cpus"):
                for key in ("cpuset.cpus", "cpuset.mems"):
                    with open(f"{path}/{key}", "w") as f:
                        f.write(read_stripped(f"{os.path.dirname(path)}/{key}"))
            made.append(f"{mountpoint}{own.rstrip('/')}/{name.split('/')[0]}")
            dirs[mountpoint] = path
        return dirs

    yield make
    for top in sorted(set(made), key=len, reverse=True):
        for _ in range(50):
            remove_cgroup_tree(top)
            if not os.path.isdir(top):
                break
            time.sleep(0.05)


def _cpuset_mount() -> str:
    for mountpoint in cgroup_hierarchies():
        if os.path.exists(f"{mountpoint}/cpuset.cpus") and not os.path.exists(f"{mountpoint}/cgroup.controllers"):
            return mountpoint
    pytest.skip("no cgroup v1 cpuset hierarchy (cgroup2 cpusets inherit their parent's)")


def test_empty_cpuset_parents_are_filled(pyrunc_cmd, runc_cmd, bundle, container_id, premade):
    cpuset = _cpuset_mount()
    parents = {cid: premade(f"{cid}-parent", fill_cpuset=False)[cpuset] for cid in (container_id, container_id + "-runc")}
    assert read_stripped(parents[container_id] + "/cpuset.cpus") == ""   # a fresh v1 cpuset is empty
    results = []
    for runtime, cid in ((runc_cmd, container_id + "-runc"), (pyrunc_cmd, container_id)):
        def edit(config, cid=cid):
            config["linux"]["cgroupsPath"] = f"{cid}-parent/{cid}"
        results.append(runtime("run", "-b", bundle(edit, args=["true"]), cid))
    assert [r.returncode for r in results] == [0, 0], [r.stderr for r in results]
    own_cpus = read_stripped(os.path.dirname(parents[container_id]) + "/cpuset.cpus")
    for cid, parent in parents.items():
        assert read_stripped(parent + "/cpuset.cpus") == own_cpus
        assert read_stripped(parent + "/cpuset.mems") != ""


def _freeze(directory: str) -> None:
    if os.path.exists(directory + "/freezer.state"):
        with open(directory + "/freezer.state", "w") as f:
            f.write("FROZEN")
        assert wait_for(lambda: read_stripped(directory + "/freezer.state") == "FROZEN")
    else:
        with open(directory + "/cgroup.freeze", "w") as f:
            f.write("1")


def _thaw(directory: str) -> None:
    if not os.path.isdir(directory):
        return   # runc removes the cgroup it failed to use, pre-existing or not
    name = "freezer.state" if os.path.exists(directory + "/freezer.state") else "cgroup.freeze"
    with open(f"{directory}/{name}", "w") as f:
        f.write("THAWED" if name == "freezer.state" else "0")


def _freezer_dir(dirs: dict[str, str]) -> str:
    """The directory among `dirs` (premade()) whose freezer the runtimes read."""
    for path in dirs.values():
        if os.path.exists(path + "/freezer.state"):
            return path
    for path in dirs.values():
        if mode() == "unified" and os.path.exists(path + "/cgroup.freeze"):
            return path
    pytest.skip("no freezer on this host")


def test_frozen_preexisting_cgroup_is_refused(pyrunc_cmd, runc_cmd, bundle, container_id, premade,
                                              state_root, assert_no_residue):
    frozen = []
    try:
        results = []
        for runtime, cid in ((runc_cmd, container_id + "-runc"), (pyrunc_cmd, container_id)):
            freezer = _freezer_dir(premade(cid))
            _freeze(freezer)
            frozen.append(freezer)
            results.append(runtime("run", "-d", "-b", bundle(args=["true"]), cid, timeout=20))
        reference, ours = results
        assert ours.returncode == reference.returncode == 1
        assert message(ours.stderr) == message(reference.stderr) == "container's cgroup unexpectedly frozen"
        assert not (state_root / container_id).exists()
    finally:
        for directory in frozen:
            _thaw(directory)
    assert_no_residue(state_root, [container_id])


def test_non_empty_preexisting_cgroup_warns_like_runc(pyrunc_cmd, runc_cmd, bundle, container_id, premade,
                                                       tmp_path):
    """runc warns and goes on. The warnings are compared in the --log file: without one
    runc also prints them on stderr, where pyrunc drops warnings (pyrunc.log: engines
    read create's stderr as the container's)."""
    sleepers = []
    try:
        logs = []
        for runtime, cid in ((runc_cmd, container_id + "-runc"), (pyrunc_cmd, container_id)):
            sleeper = subprocess.Popen(["sleep", "60"])
            sleepers.append(sleeper)
            for directory in premade(cid).values():
                with open(directory + "/cgroup.procs", "w") as f:
                    f.write(str(sleeper.pid))
            log = tmp_path / f"{cid}.log"
            r = runtime("--log", str(log), "create", "-b", bundle(args=["true"]), cid)
            assert r.returncode == 0, r.stderr
            logs.append(re.findall(r'level=warning msg="([^"]*)"', log.read_text()))
            runtime("delete", "-f", cid)
        assert logs[0] == logs[1] == [
            "container's cgroup is not empty: 1 process(es) found",
            "DEPRECATED: running container in a non-empty cgroup won't be supported in runc 1.2; "
            "https://github.com/opencontainers/runc/issues/3132"]
    finally:
        for sleeper in sleepers:
            sleeper.kill()
            sleeper.wait()


# ---- item 23: unified entries with v1 limits on a hybrid host ---------------------------------

def test_unified_with_v1_limits_is_refused_on_hybrid(pyrunc_cmd, runc_cmd, bundle, container_id, state_root,
                                                     assert_no_residue):
    if mode() != "hybrid":
        pytest.skip(f"needs a hybrid cgroup host, this one is {mode()}")

    def edit(config):
        config["linux"]["resources"] = {"memory": {"limit": 100 * MiB}, "unified": {"pids.max": "10"}}
    reference, ours = both(pyrunc_cmd, runc_cmd, container_id, "run", "-b", bundle(edit, args=["true"]))
    assert ours.returncode == reference.returncode == 1
    assert message(reference.stderr) == "invalid configuration: cannot use unified on cgroup v1"
    assert "invalid configuration: cannot use unified on cgroup v1" in message(ours.stderr)
    assert message(ours.stderr).startswith("linux.resources.unified: ")
    assert_no_residue(state_root, [container_id])


# ---- item 30: linux.intelRdt without resctrl ----------------------------------------------------

def _resctrl_mounted() -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(" - resctrl " in line for line in f)


@pytest.mark.parametrize("rdt, expected", [
    ({"l3CacheSchema": "L3:0=f"}, "intelRdt.l3CacheSchema is specified in config, but Intel RDT/CAT is not enabled"),
    ({"closID": "c1", "memBwSchema": "MB:0=50"},
     "intelRdt.memBwSchema is specified in config, but Intel RDT/MBA is not enabled"),
    ({"closID": "c1", "enableCMT": True}, None),   # nothing asked of the host: accepted by both
])
def test_intel_rdt_without_resctrl(pyrunc_cmd, runc_cmd, bundle, container_id, state_root, assert_no_residue,
                                   rdt, expected):
    if _resctrl_mounted():
        pytest.skip("this host has resctrl mounted")

    def edit(config):
        config["linux"]["intelRdt"] = rdt
    reference, ours = both(pyrunc_cmd, runc_cmd, container_id, "run", "-b", bundle(edit, args=["true"]))
    if expected is None:
        assert (reference.returncode, ours.returncode) == (0, 0), (reference.stderr, ours.stderr)
        return
    assert ours.returncode == reference.returncode == 1
    assert message(ours.stderr) == message(reference.stderr) == expected
    assert_no_residue(state_root, [container_id])
