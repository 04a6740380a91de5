"""`update` and `events` through the installed CLI on this hybrid host: limits raised and
lowered (memory+swap in both directions, runc's write order), flag parsing, merging with
the saved resources, events --stats fields, the stats stream with an OOM event, and the
errors runc gives for stopped containers."""
from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from pyrunc.cgroups import mode
from support import cgroup_dirs, read_stripped, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")

MiB = 1 << 20
UNIFIED = mode() == "unified"


def _bundle(bundle, resources: dict, args: list[str]):
    def edit(config):
        config["linux"]["resources"] = resources
    return bundle(edit, args=args)


# (v1 controller, v1 file, cgroup2 file): the same checks run in the pure v2 guest (tests/vm)
FILES = {
    "memory": ("memory", "memory.limit_in_bytes", "memory.max"),
    "pids": ("pids", "pids.max", "pids.max"),
    "cpus": ("cpuset", "cpuset.cpus", "cpuset.cpus"),
    "period": ("cpu", "cpu.cfs_period_us", None),
}


def _value(d: dict[str, str], what: str) -> str:
    controller, v1_file, v2_file = FILES[what]
    return read_stripped(f"{d['unified']}/{v2_file}") if UNIFIED else read_stripped(f"{d[controller]}/{v1_file}")


def _quota(d: dict[str, str]) -> str:
    """The CFS quota as v1 writes it (-1 = unlimited)."""
    if UNIFIED:
        quota = read_stripped(d["unified"] + "/cpu.max").split()[0]
        return "-1" if quota == "max" else quota
    return read_stripped(d["cpu"] + "/cpu.cfs_quota_us")


def _memory_plus_swap(d: dict[str, str]) -> int | None:
    """memory+swap as the spec counts it, or None without swap accounting."""
    if UNIFIED:
        if not os.path.exists(d["unified"] + "/memory.swap.max"):
            return None
        return int(read_stripped(d["unified"] + "/memory.max")) + int(read_stripped(d["unified"] + "/memory.swap.max"))
    path = d["memory"] + "/memory.memsw.limit_in_bytes"
    return int(read_stripped(path)) if os.path.exists(path) else None


def _swap_accounting() -> bool:
    """Whether the kernel accounts swap per cgroup (memory.memsw.* on v1,
    memory.swap.max on cgroup2): a swap limit is an error where it does not."""
    if not UNIFIED:
        return os.path.exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
    own = [line[3:] for line in read_stripped("/proc/self/cgroup").splitlines() if line.startswith("0::")]
    path = "/sys/fs/cgroup" + (own[0].rstrip("/") if own else "")
    while path != "/sys/fs/cgroup":   # the root has no memory.swap.max
        if os.path.exists(path + "/memory.swap.max"):
            return True
        path = os.path.dirname(path)
    return False


def test_update_up_and_down_and_persisted(bundle, container_id, pyrunc_cmd, state_root):
    # without swap accounting the same steps run with no swap values
    swap_accounted = _swap_accounting()
    swap = (lambda value: {"swap": value}) if swap_accounted else (lambda value: {})
    b = _bundle(bundle, {"memory": {"limit": 64 * MiB, **swap(64 * MiB)}, "pids": {"limit": 50}},
                ["sleep", "30"])
    assert pyrunc_cmd("run", "-d", "--bundle", b, container_id).returncode == 0
    d = cgroup_dirs(state_root, container_id)
    # raise memory and memory+swap together (v1: memsw must be raised first)
    r = pyrunc_cmd("update", "-r", "-", container_id, input=json.dumps(
        {"memory": {"limit": 256 * MiB, "reservation": 0, **swap(512 * MiB), "kernel": 0},
         "cpu": {"shares": 0, "quota": 50000, "period": 100000}, "pids": {"limit": 77},
         "blockIO": {"weight": 0}}))
    assert r.returncode == 0, r.stderr
    assert _value(d, "memory") == str(256 * MiB)
    if swap_accounted:
        assert _memory_plus_swap(d) == 512 * MiB
    assert _value(d, "pids") == "77"
    assert _quota(d) == "50000"
    # lower both (v1: memory first) through the flags, with a unit
    swap_flag = ["--memory-swap", "48m"] if swap_accounted else []
    r = pyrunc_cmd("update", "--memory", "32m", *swap_flag, "--pids-limit", "20",
                   "--cpu-quota", "-1", "--cpuset-cpus", "0", container_id)
    assert r.returncode == 0, r.stderr
    assert _value(d, "memory") == str(32 * MiB)
    if swap_accounted:
        assert _memory_plus_swap(d) == 48 * MiB
    assert _value(d, "pids") == "20"
    assert _quota(d) == "-1"
    assert _value(d, "cpus") == "0"
    # a later update of one field keeps the others (merged with the saved resources)
    r = pyrunc_cmd("update", "--cpu-share", "300", container_id)
    assert r.returncode == 0, r.stderr
    if UNIFIED:
        from pyrunc.cgroups.controllers.cpu import shares_to_weight
        assert read_stripped(d["unified"] + "/cpu.weight") == str(shares_to_weight(300))
    else:
        assert read_stripped(d["cpu"] + "/cpu.shares") == "300"
    assert _value(d, "memory") == str(32 * MiB)
    saved = json.loads((state_root / container_id / "state.json").read_text())["resources"]
    assert saved["memory"]["limit"] == 32 * MiB and saved["cpu"]["shares"] == 300
    # bad update input names the field and changes nothing
    r = pyrunc_cmd("update", "--cpuset-cpus", "0-", container_id)
    assert r.returncode == 1 and "linux.resources.cpu.cpus" in r.stderr
    r = pyrunc_cmd("update", "--memory", "12x", container_id)
    assert r.returncode == 1 and "invalid value for memory: 12x" in r.stderr
    assert _value(d, "cpus") == "0"


def test_memory_limit_oom_kill_and_oom_event(bundle, container_id, pyrunc_cmd, state_root):
    limit = 16 * MiB
    swap_in_use = read_stripped("/proc/swaps").count("\n") > 0
    if not _swap_accounting() and swap_in_use:
        pytest.skip("no swap accounting while swap is on: the container would fill the host's swap "
                    "before its OOM kill")
    b = _bundle(bundle, {"memory": {"limit": limit, **({"swap": limit} if _swap_accounting() else {})}},
                ["sh", "-c", "tail /dev/zero; echo tail=$?; sleep 30"])
    assert pyrunc_cmd("create", "--bundle", b, container_id).returncode == 0
    binary = pyrunc_cmd.__self__.binary
    events = subprocess.Popen([binary, "--root", str(state_root), "events", "--interval", "1s", container_id],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # the first stats line comes once the OOM watch is in place: only then may the
        # container start to allocate (on a slow guest events can take seconds to start)
        seen = [json.loads(events.stdout.readline())]
        assert seen[0]["type"] == "stats", seen
        assert pyrunc_cmd("start", container_id).returncode == 0
        for line in events.stdout:
            seen.append(json.loads(line))
            if seen[-1]["type"] == "oom":
                break
        assert any(e["type"] == "stats" for e in seen)
        assert seen[-1] == {"type": "oom", "id": container_id}
    finally:
        events.kill()
        events.wait()
    d = cgroup_dirs(state_root, container_id)
    oom_file = d["unified"] + "/memory.events" if UNIFIED else d["memory"] + "/memory.oom_control"
    # v1's eventfd (like runc's) fires when the OOM starts, the kill is counted just after
    assert wait_for(lambda: "oom_kill 1" in read_stripped(oom_file).splitlines()), read_stripped(oom_file)
    # the container survives its OOM-killed child, and events stops with the container
    assert pyrunc_cmd("kill", container_id, "KILL").returncode == 0
    r = subprocess.run([binary, "--root", str(state_root), "events", "--interval", "1s", container_id],
                       capture_output=True, text=True, timeout=15)
    assert r.returncode == 1 and "is not running" in r.stderr


def test_events_stats_fields(bundle, container_id, pyrunc_cmd):
    b = _bundle(bundle, {"memory": {"limit": 64 * MiB}, "pids": {"limit": 10}}, ["sleep", "30"])
    assert pyrunc_cmd("run", "-d", "--bundle", b, container_id).returncode == 0
    r = pyrunc_cmd("events", "--stats", container_id)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 1
    ev = json.loads(lines[0])
    assert ev["type"] == "stats" and ev["id"] == container_id
    data = ev["data"]
    assert list(data) == ["cpu", "cpuset", "memory", "pids", "blkio", "hugetlb", "intel_rdt",
                          "network_interfaces"]
    assert data["cpu"]["usage"]["total"] > 0 and "kernel" in data["cpu"]["usage"]
    if not UNIFIED:  # cgroup2 has no per-cpu usage (runc leaves it out too)
        assert len(data["cpu"]["usage"]["percpu"]) == os.cpu_count()
        assert data["cpuset"]["cpus"] == list(range(os.cpu_count()))
    assert data["memory"]["usage"]["limit"] == 64 * MiB and data["memory"]["usage"]["usage"] > 0
    assert "rss" in data["memory"]["raw"] or "anon" in data["memory"]["raw"]
    assert data["pids"] == {"current": 1, "limit": 10}
    assert data["network_interfaces"] is None


def test_update_and_events_on_stopped_container_fail_like_runc(bundle, container_id, pyrunc_cmd):
    b = _bundle(bundle, {}, ["true"])
    assert pyrunc_cmd("create", "--bundle", b, container_id).returncode == 0
    assert pyrunc_cmd("start", container_id).returncode == 0
    for _ in range(100):
        if json.loads(pyrunc_cmd("state", container_id).stdout)["status"] == "stopped":
            break
        time.sleep(0.05)
    r = pyrunc_cmd("update", "--memory", "1m", container_id)
    assert r.returncode == 1 and "container not running" in r.stderr
    r = pyrunc_cmd("events", "--stats", container_id)
    assert r.returncode == 1 and f"container with id {container_id} is not running" in r.stderr
    r = pyrunc_cmd("events", "--interval", "5", container_id)
    assert r.returncode == 1 and 'for flag -interval: parse error' in r.stderr


def test_update_resources_file_and_pause_resume_still_work(bundle, container_id, pyrunc_cmd, state_root, tmp_path):
    b = _bundle(bundle, {"pids": {"limit": 10}}, ["sleep", "30"])
    assert pyrunc_cmd("run", "-d", "--bundle", b, container_id).returncode == 0
    d = cgroup_dirs(state_root, container_id)
    f = tmp_path / "r.json"
    f.write_text(json.dumps({"pids": {"limit": 12}, "cpu": {"period": 50000, "quota": 10000}}))
    # with -r the flags are ignored, as in runc
    r = pyrunc_cmd("update", "-r", str(f), "--pids-limit", "99", container_id)
    assert r.returncode == 0, r.stderr
    assert _value(d, "pids") == "12"
    if UNIFIED:
        assert read_stripped(d["unified"] + "/cpu.max") == "10000 50000"
    else:
        assert _value(d, "period") == "50000"
        assert _quota(d) == "10000"
    assert pyrunc_cmd("pause", container_id).returncode == 0
    assert json.loads(pyrunc_cmd("state", container_id).stdout)["status"] == "paused"
    r = pyrunc_cmd("update", "--pids-limit", "13", container_id)
    assert r.returncode == 0, r.stderr
    assert _value(d, "pids") == "13"
    assert pyrunc_cmd("resume", container_id).returncode == 0
    assert json.loads(pyrunc_cmd("state", container_id).stdout)["status"] == "running"


def test_events_stream_ends_when_the_container_stops(bundle, container_id, pyrunc_cmd, state_root):
    # long enough for `events` to start even in the slow emulated v2 guest
    b = _bundle(bundle, {}, ["sleep", "4"])
    assert pyrunc_cmd("run", "-d", "--bundle", b, container_id).returncode == 0
    binary = pyrunc_cmd.__self__.binary
    started = time.monotonic()
    r = subprocess.run([binary, "--root", str(state_root), "events", "--interval", "500ms", container_id],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - started < 12
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(lines) >= 2 and all(e["type"] == "stats" and e["id"] == container_id for e in lines)
