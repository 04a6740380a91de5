"""The systemd cgroup driver (`--systemd-cgroup`) against a real systemd: run INSIDE the
guest that tests/vm/guest.py boots with systemd as pid 1 (tests/vm/test_systemd_guest.py
boots it unified, then hybrid). Not named test_*.py: on a host without systemd as pid 1
it is collected only when named, and then skips.

Each test checks the unit through systemd (`systemctl show`) and the cgroup through
cgroupfs, and where runc does the same thing, runs runc 1.1.5 on the same bundle and
compares."""
from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from pyrunc.cgroups import mode

IN_GUEST = os.environ.get("PYRUNC_IN_VM") == "1"

if not os.path.isdir("/run/systemd/system"):
    if IN_GUEST:
        raise RuntimeError("the guest should run systemd as pid 1")
    pytest.skip("needs systemd as pid 1 (run by tests/vm/test_systemd_guest.py)", allow_module_level=True)

UNIFIED = mode() == "unified"
MEMORY = 64 << 20


def _show(unit: str, *names: str) -> dict[str, str]:
    out = subprocess.run(["systemctl", "show", unit, *(f"--property={n}" for n in names)],
                         capture_output=True, text=True, check=True).stdout
    shown: dict[str, list[str]] = {}
    for line in out.splitlines():
        if "=" in line:
            name, value = line.split("=", 1)
            shown.setdefault(name, []).append(value)
    # a list property (DeviceAllow) is one line per item, in no particular order
    return {name: "; ".join(sorted(values)) for name, values in shown.items()}


def _unit_gone(unit: str) -> bool:
    return _show(unit, "LoadState")["LoadState"] == "not-found"


def _wait_unit_gone(unit: str, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not _unit_gone(unit):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def _state(pyrunc_cmd, container_id: str) -> dict:
    result = pyrunc_cmd("state", container_id)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _cgroup_lines(pid: int) -> dict[str, str]:
    return {line.split(":", 2)[1]: line.split(":", 2)[2] for line in _read(f"/proc/{pid}/cgroup").splitlines()}


def _controller_dir(controller: str, cgroup: str) -> str:
    """The directory of `cgroup` (a /proc/<pid>/cgroup path) for a controller's files."""
    if UNIFIED:
        return "/sys/fs/cgroup" + cgroup
    return f"/sys/fs/cgroup/{controller}{cgroup}"


def _limits_config(config: dict, cgroups_path: str) -> None:
    config["linux"]["cgroupsPath"] = cgroups_path
    config["linux"]["resources"] = {
        "memory": {"limit": MEMORY},
        "pids": {"limit": 50},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0"},
        "devices": [{"allow": False, "access": "rwm"}],
    }


def _one_line_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


def test_run_in_a_transient_scope_then_gone(pyrunc_cmd, bundle, container_id):
    unit = f"pyrunc-{container_id}.scope"
    bundle_dir = bundle(lambda c: c["linux"].__setitem__("cgroupsPath", f"system.slice:pyrunc:{container_id}"),
                        args=["sh", "-c", "cat /proc/self/cgroup; exit 3"])
    result = pyrunc_cmd("--systemd-cgroup", "run", "-b", bundle_dir, container_id, timeout=120)
    assert result.returncode == 3, result.stderr
    assert result.stdout.strip().splitlines()[-1].endswith(f":/system.slice/{unit}"), result.stdout
    assert _wait_unit_gone(unit), _show(unit, "ActiveState", "LoadState")
    assert not os.path.exists(f"/sys/fs/cgroup/unified/system.slice/{unit}")
    assert not os.path.exists(f"/sys/fs/cgroup/system.slice/{unit}")


def test_default_cgroups_path_is_runc_scope_in_system_slice(pyrunc_cmd, bundle, container_id):
    bundle_dir = bundle(args=["sleep", "60"])
    pyrunc_cmd("--systemd-cgroup", "create", "-b", bundle_dir, container_id, check=True, timeout=120)
    unit = f"runc-{container_id}.scope"
    try:
        pid = _state(pyrunc_cmd, container_id)["pid"]
        props = _show(unit, "ActiveState", "Slice", "Delegate", "ControlGroup")
        assert props == {"ActiveState": "active", "Slice": "system.slice", "Delegate": "yes",
                         "ControlGroup": f"/system.slice/{unit}"}, props
        assert f"/system.slice/{unit}" in _cgroup_lines(pid).values()
    finally:
        pyrunc_cmd("delete", "--force", container_id, check=True)
    assert _unit_gone(unit)


def test_nested_slice(pyrunc_cmd, bundle, container_id):
    bundle_dir = bundle(lambda c: c["linux"].__setitem__("cgroupsPath", f"pyrunctest-nested.slice:pfx:{container_id}"),
                        args=["sleep", "60"])
    pyrunc_cmd("--systemd-cgroup", "create", "-b", bundle_dir, container_id, check=True, timeout=120)
    unit = f"pfx-{container_id}.scope"
    try:
        pid = _state(pyrunc_cmd, container_id)["pid"]
        expected = f"/pyrunctest.slice/pyrunctest-nested.slice/{unit}"
        assert _show(unit, "ControlGroup")["ControlGroup"] == expected
        assert expected in _cgroup_lines(pid).values()
    finally:
        pyrunc_cmd("delete", "--force", container_id, check=True)
    assert _unit_gone(unit)


def test_lifecycle_limits_update_delete(pyrunc_cmd, bundle, container_id):
    unit = f"pyrunc-{container_id}.scope"
    bundle_dir = bundle(lambda c: _limits_config(c, f"system.slice:pyrunc:{container_id}"),
                        args=["sh", "-c", "echo ok > /dev/null && sleep 600"])
    pyrunc_cmd("--systemd-cgroup", "create", "-b", bundle_dir, container_id, check=True, timeout=120)
    try:
        pid = _state(pyrunc_cmd, container_id)["pid"]
        cgroup = f"/system.slice/{unit}"
        if UNIFIED:
            props = _show(unit, "MemoryMax", "TasksMax", "CPUQuotaPerSecUSec", "CPUQuotaPeriodUSec",
                          "CPUWeight", "AllowedCPUs", "DevicePolicy", "Delegate")
            assert props == {"MemoryMax": str(MEMORY), "TasksMax": "50", "CPUQuotaPerSecUSec": "500ms",
                             "CPUQuotaPeriodUSec": "100ms", "CPUWeight": "20", "AllowedCPUs": "0",
                             "DevicePolicy": "strict", "Delegate": "yes"}, props
            directory = _controller_dir("", cgroup)
            assert _read(f"{directory}/memory.max") == str(MEMORY)
            assert _read(f"{directory}/pids.max") == "50"
            assert _read(f"{directory}/cpu.max") == "50000 100000"
            assert _read(f"{directory}/cpuset.cpus") == "0"
        else:
            props = _show(unit, "MemoryLimit", "TasksMax", "CPUQuotaPerSecUSec", "CPUShares", "DevicePolicy")
            assert props == {"MemoryLimit": str(MEMORY), "TasksMax": "50", "CPUQuotaPerSecUSec": "500ms",
                             "CPUShares": "512", "DevicePolicy": "strict"}, props
            assert _read(_controller_dir("memory", cgroup) + "/memory.limit_in_bytes") == str(MEMORY)
            assert _read(_controller_dir("pids", cgroup) + "/pids.max") == "50"
            assert _read(_controller_dir("cpu,cpuacct", cgroup) + "/cpu.shares") == "512"
            assert _read(_controller_dir("cpuset", cgroup) + "/cpuset.cpus") == "0"
        # every hierarchy, the ones systemd does not manage on hybrid included
        assert all(path == cgroup for path in _cgroup_lines(pid).values()), _cgroup_lines(pid)

        pyrunc_cmd("start", container_id, check=True)
        assert _state(pyrunc_cmd, container_id)["status"] == "running"
        # exec joins the same scope (through the state, no D-Bus)
        seen = pyrunc_cmd("exec", container_id, "cat", "/proc/self/cgroup", check=True).stdout
        assert all(line.endswith(":" + cgroup) for line in seen.split()), seen
        pyrunc_cmd("pause", container_id, check=True)
        assert _state(pyrunc_cmd, container_id)["status"] == "paused"
        pyrunc_cmd("resume", container_id, check=True)
        assert _state(pyrunc_cmd, container_id)["status"] == "running"

        pyrunc_cmd("update", "--memory", str(2 * MEMORY), "--pids-limit", "70", container_id, check=True)
        if UNIFIED:
            assert _show(unit, "MemoryMax", "TasksMax") == {"MemoryMax": str(2 * MEMORY), "TasksMax": "70"}
            assert _read(_controller_dir("", cgroup) + "/memory.max") == str(2 * MEMORY)
        else:
            assert _show(unit, "MemoryLimit", "TasksMax") == {"MemoryLimit": str(2 * MEMORY), "TasksMax": "70"}
            assert _read(_controller_dir("memory", cgroup) + "/memory.limit_in_bytes") == str(2 * MEMORY)
        assert _read(_controller_dir("pids", cgroup) + "/pids.max") == "70"

        stats = json.loads(pyrunc_cmd("events", "--stats", container_id, check=True).stdout)
        assert stats["data"]["pids"]["current"] >= 1
        assert stats["data"]["memory"]["usage"]["limit"] == 2 * MEMORY

        pyrunc_cmd("kill", container_id, "KILL", check=True)
        deadline = time.monotonic() + 10
        while _state(pyrunc_cmd, container_id)["status"] != "stopped" and time.monotonic() < deadline:
            time.sleep(0.05)
        pyrunc_cmd("delete", container_id, check=True)
    finally:
        pyrunc_cmd("delete", "--force", container_id)
    assert _unit_gone(unit)
    for controller in ("", "memory", "pids", "cpuset") if not UNIFIED else ("",):
        assert not os.path.exists(_controller_dir(controller, cgroup)), controller


def test_delete_force_of_a_running_container_stops_the_unit(pyrunc_cmd, bundle, container_id):
    unit = f"pyrunc-{container_id}.scope"
    bundle_dir = bundle(lambda c: c["linux"].__setitem__("cgroupsPath", f":pyrunc:{container_id}"),
                        args=["sleep", "600"])
    pyrunc_cmd("--systemd-cgroup", "run", "-d", "-b", bundle_dir, container_id, check=True, timeout=120)
    assert _show(unit, "ActiveState")["ActiveState"] == "active"
    pyrunc_cmd("delete", "--force", container_id, check=True)
    assert _unit_gone(unit)


def test_annotations_become_unit_properties(pyrunc_cmd, bundle, container_id):
    unit = f"pyrunc-{container_id}.scope"

    def edit(config):
        config["linux"]["cgroupsPath"] = f"system.slice:pyrunc:{container_id}"
        config["annotations"] = {"org.systemd.property.TimeoutStopSec": "uint64 7",
                                 "org.systemd.property.CollectMode": "'inactive-or-failed'"}
    bundle_dir = bundle(edit, args=["sleep", "60"])
    pyrunc_cmd("--systemd-cgroup", "create", "-b", bundle_dir, container_id, check=True, timeout=120)
    try:
        assert _show(unit, "TimeoutStopUSec", "CollectMode") == {"TimeoutStopUSec": "7s",
                                                                 "CollectMode": "inactive-or-failed"}
    finally:
        pyrunc_cmd("delete", "--force", container_id, check=True)


@pytest.mark.parametrize("name, value", [("Ab", "1"), ("MemoryMax", "lots")])
def test_bad_annotation_as_runc(pyrunc_cmd, runc_cmd, bundle, container_id, state_root, assert_no_residue,
                                name, value):
    key = f"org.systemd.property.{name}"

    def edit(config):
        config["linux"]["cgroupsPath"] = f"system.slice:pyrunc:{container_id}"
        config["annotations"] = {key: value}
    bundle_dir = bundle(edit, args=["true"])
    ours = pyrunc_cmd("--systemd-cgroup", "run", "-b", bundle_dir, container_id)
    theirs = runc_cmd("--systemd-cgroup", "run", "-b", bundle_dir, container_id)
    assert ours.returncode == theirs.returncode == 1, (ours.stderr, theirs.stderr)
    assert f"annotation {key}" in _one_line_error(ours.stderr)
    assert f"nnotation {key}" in theirs.stderr
    assert _unit_gone(f"pyrunc-{container_id}.scope")
    assert_no_residue(state_root, [container_id])


@pytest.mark.parametrize("cgroups_path, message", [
    ("foo:b:{id}", "invalid slice name: foo"),
    ("a/b.slice:p:{id}", None),
    ("a:b", 'expected cgroupsPath to be of format \\"slice:prefix:name\\"'),
    ("/machine/{id}", 'expected cgroupsPath to be of format \\"slice:prefix:name\\"'),
])
def test_bad_cgroups_path_as_runc(pyrunc_cmd, runc_cmd, bundle, container_id, state_root, assert_no_residue,
                                  cgroups_path, message):
    path = cgroups_path.format(id=container_id)
    bundle_dir = bundle(lambda c: c["linux"].__setitem__("cgroupsPath", path), args=["true"])
    ours = pyrunc_cmd("--systemd-cgroup", "run", "-b", bundle_dir, container_id)
    theirs = runc_cmd("--systemd-cgroup", "run", "-b", bundle_dir, container_id + "r")
    assert ours.returncode == theirs.returncode == 1, (ours.stderr, theirs.stderr)
    line = _one_line_error(ours.stderr)
    if message is not None:
        assert message in line
        assert message in theirs.stderr
    assert_no_residue(state_root, [container_id])
    for prefix in ("b", "p"):
        assert _unit_gone(f"{prefix}-{container_id}.scope")


def test_unit_properties_match_runc(pyrunc_cmd, runc_cmd, bundle, container_id):
    """The same bundle under runc 1.1.5 and pyrunc: the resource properties systemd
    reports for the two scopes are the same."""
    names = ["MemoryMax", "MemoryLimit", "TasksMax", "CPUQuotaPerSecUSec", "CPUWeight", "CPUShares",
             "AllowedCPUs", "DevicePolicy", "DeviceAllow", "Delegate", "Slice", "MemoryAccounting",
             "TasksAccounting", "DefaultDependencies"]
    shown = {}
    for name, run in (("pyrunc", pyrunc_cmd), ("runc", runc_cmd)):
        cid = f"{container_id}{name[0]}"
        bundle_dir = bundle(lambda c: _limits_config(c, f"system.slice:{name}:{cid}"), args=["sleep", "60"])
        run("--systemd-cgroup", "create", "-b", bundle_dir, cid, check=True, timeout=120)
        try:
            shown[name] = _show(f"{name}-{cid}.scope", *names)
        finally:
            run("delete", "--force", cid)
    # runc 1.1.5 allows /dev/net/tun (c 10:200) in the devices cgroup (see devices.list
    # with its cgroupfs driver) but leaves it out of DeviceAllow; pyrunc lists it in both
    ours = shown["pyrunc"]["DeviceAllow"].split("; ")
    assert "/dev/char/10:200 rwm" in ours
    shown["pyrunc"]["DeviceAllow"] = "; ".join(e for e in ours if e != "/dev/char/10:200 rwm")
    assert shown["pyrunc"] == shown["runc"]
