"""linux.resources against the real kernel on this hybrid host (v1 controllers, cgroup2
with only hugetlb): each limit applied at create and read back from the host's cgroup
files and from inside the container, enforcement (pids, memory/OOM, devices), the v2
eBPF device program on a real cgroup2 directory, hugetlb on the unified hierarchy, bad
input, and cleanup. Containers use the fixture's relative cgroupsPath (beneath our own
cgroup)."""
from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")

MiB = 1 << 20


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def _dirs(state_root: Path, cid: str) -> dict[str, str]:
    """{controller: host directory} of a container, from its state.json."""
    state = json.loads((state_root / cid / "state.json").read_text())
    out = {}
    for key, path in state["cgroup"]["dirs"].items():
        for name in (key.split(",") if key else ["unified"]):
            out[name] = path
    return out


def _bundle(bundle, resources: dict, args: list[str], **extra_linux):
    def edit(config):
        config["linux"]["resources"] = resources
        config["linux"].update(extra_linux)
    return bundle(edit, args=args)


def _v1(controller: str) -> bool:
    return os.path.isdir(f"/sys/fs/cgroup/{controller}") and not os.path.exists(
        f"/sys/fs/cgroup/{controller}/cgroup.controllers")


def _block_device() -> tuple[int, int]:
    """A real block device of this host (throttle rules must name one)."""
    names = sorted(os.listdir("/sys/block"), key=lambda n: (n.startswith(("loop", "ram", "zram")), n))
    major, minor = _read(f"/sys/block/{names[0]}/dev").split(":")
    return int(major), int(minor)


def test_limits_applied_at_create_seen_on_host_and_inside(bundle, container_id, pyrunc_cmd, state_root):
    major, minor = _block_device()
    resources = {
        "memory": {"limit": 96 * MiB, "reservation": 32 * MiB, "swappiness": 10,
                   "kernel": 64 * MiB},  # kernel: ignored as runc 1.1 does
        "cpu": {"shares": 512, "quota": 25000, "period": 100000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 33},
        "blockIO": {"throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1048576}]},
    }
    inside = ("cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/cpu/cpu.cfs_quota_us "
              "/sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/cpuset/cpuset.cpus; sleep 30")
    b = _bundle(bundle, resources, ["sh", "-c", inside])
    r = pyrunc_cmd("run", "-d", "--bundle", b, container_id)
    assert r.returncode == 0, r.stderr
    d = _dirs(state_root, container_id)
    assert _read(d["memory"] + "/memory.limit_in_bytes") == str(96 * MiB)
    assert _read(d["memory"] + "/memory.soft_limit_in_bytes") == str(32 * MiB)
    assert _read(d["memory"] + "/memory.swappiness") == "10"
    assert _read(d["cpu"] + "/cpu.shares") == "512"
    assert _read(d["cpu"] + "/cpu.cfs_quota_us") == "25000"
    assert _read(d["cpu"] + "/cpu.cfs_period_us") == "100000"
    assert _read(d["cpuset"] + "/cpuset.cpus") == "0"
    assert _read(d["pids"] + "/pids.max") == "33"
    assert f"{major}:{minor} 1048576" in _read(d["blkio"] + "/blkio.throttle.read_bps_device")
    # the container's processes are in those cgroups, the runtime is not
    pid = json.loads(pyrunc_cmd("state", container_id, check=True).stdout)["pid"]
    assert str(pid) in _read(d["memory"] + "/cgroup.procs").split()
    assert str(os.getpid()) not in _read(d["memory"] + "/cgroup.procs").split()
    r = pyrunc_cmd("exec", container_id, "sh", "-c",
                   "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max "
                   "/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(96 * MiB), "33", "25000"]


def test_update_up_and_down_and_persisted(bundle, container_id, pyrunc_cmd, state_root):
    b = _bundle(bundle, {"memory": {"limit": 64 * MiB, "swap": 64 * MiB}, "pids": {"limit": 50}},
                ["sleep", "30"])
    assert pyrunc_cmd("run", "-d", "--bundle", b, container_id).returncode == 0
    d = _dirs(state_root, container_id)
    mem = d["memory"]
    has_memsw = os.path.exists(mem + "/memory.memsw.limit_in_bytes")
    # raise memory and memory+swap together (memsw must be raised first)
    r = pyrunc_cmd("update", "-r", "-", container_id, input=json.dumps(
        {"memory": {"limit": 256 * MiB, "reservation": 0, "swap": 512 * MiB, "kernel": 0},
         "cpu": {"shares": 0, "quota": 50000, "period": 100000}, "pids": {"limit": 77},
         "blockIO": {"weight": 0}}))
    assert r.returncode == 0, r.stderr
    assert _read(mem + "/memory.limit_in_bytes") == str(256 * MiB)
    if has_memsw:
        assert _read(mem + "/memory.memsw.limit_in_bytes") == str(512 * MiB)
    assert _read(d["pids"] + "/pids.max") == "77"
    assert _read(d["cpu"] + "/cpu.cfs_quota_us") == "50000"
    # lower both (memory first) through the flags, with a unit
    r = pyrunc_cmd("update", "--memory", "32m", "--memory-swap", "48m", "--pids-limit", "20",
                   "--cpu-quota", "-1", "--cpuset-cpus", "0", container_id)
    assert r.returncode == 0, r.stderr
    assert _read(mem + "/memory.limit_in_bytes") == str(32 * MiB)
    if has_memsw:
        assert _read(mem + "/memory.memsw.limit_in_bytes") == str(48 * MiB)
    assert _read(d["pids"] + "/pids.max") == "20"
    assert _read(d["cpu"] + "/cpu.cfs_quota_us") == "-1"
    assert _read(d["cpuset"] + "/cpuset.cpus") == "0"
    # a later update of one field keeps the others (merged with the saved resources)
    r = pyrunc_cmd("update", "--cpu-share", "300", container_id)
    assert r.returncode == 0, r.stderr
    assert _read(d["cpu"] + "/cpu.shares") == "300"
    assert _read(mem + "/memory.limit_in_bytes") == str(32 * MiB)
    saved = json.loads((state_root / container_id / "state.json").read_text())["resources"]
    assert saved["memory"]["limit"] == 32 * MiB and saved["cpu"]["shares"] == 300
    # bad update input names the field and changes nothing
    r = pyrunc_cmd("update", "--cpuset-cpus", "0-", container_id)
    assert r.returncode == 1 and "linux.resources.cpu.cpus" in r.stderr
    r = pyrunc_cmd("update", "--memory", "12x", container_id)
    assert r.returncode == 1 and "invalid value for memory: 12x" in r.stderr
    assert _read(d["cpuset"] + "/cpuset.cpus") == "0"


def test_pids_limit_enforced(bundle, container_id, pyrunc_cmd):
    # sh is one pid, so three sleeps fit in pids.max 4 and the fourth fork fails
    # (busybox sh then gives up: a failed fork is fatal for a non-interactive shell)
    script = ("sleep 2 & sleep 2 & sleep 2 & read n < /sys/fs/cgroup/pids/pids.current; "
              "echo procs=$n; sleep 2 & echo not-reached; wait")
    b = _bundle(bundle, {"pids": {"limit": 4}}, ["sh", "-c", script])
    r = pyrunc_cmd("run", "--bundle", b, container_id, timeout=30)
    assert "procs=4" in r.stdout and "not-reached" not in r.stdout, (r.stdout, r.stderr)
    assert "can't fork" in r.stderr or "Resource temporarily unavailable" in r.stderr, r.stderr


def test_memory_limit_oom_kill_and_oom_event(bundle, container_id, pyrunc_cmd, state_root):
    limit = 16 * MiB
    b = _bundle(bundle, {"memory": {"limit": limit, "swap": limit}},
                ["sh", "-c", "read x < /dev/null; sleep 1.5; tail /dev/zero; echo tail=$?; sleep 30"])
    assert pyrunc_cmd("run", "-d", "--bundle", b, container_id).returncode == 0
    binary = pyrunc_cmd.__self__.binary
    events = subprocess.Popen([binary, "--root", str(state_root), "events", "--interval", "1s", container_id],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        seen = []
        for line in events.stdout:
            seen.append(json.loads(line))
            if seen[-1]["type"] == "oom":
                break
        assert any(e["type"] == "stats" for e in seen)
        assert seen[-1] == {"type": "oom", "id": container_id}
    finally:
        events.kill()
        events.wait()
    d = _dirs(state_root, container_id)
    assert int(_read(d["memory"] + "/memory.failcnt")) > 0
    assert "oom_kill 1" in _read(d["memory"] + "/memory.oom_control")
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
    assert len(data["cpu"]["usage"]["percpu"]) == os.cpu_count()
    assert data["memory"]["usage"]["limit"] == 64 * MiB and data["memory"]["usage"]["usage"] > 0
    assert "rss" in data["memory"]["raw"] or "anon" in data["memory"]["raw"]
    assert data["pids"] == {"current": 1, "limit": 10}
    assert data["cpuset"]["cpus"] == list(range(os.cpu_count()))
    assert data["network_interfaces"] is None


def test_devices_allow_and_deny_seen_inside(bundle, container_id, pyrunc_cmd):
    if not _v1("devices"):
        pytest.skip("no v1 devices hierarchy")
    script = ("echo hi > /dev/null && echo null-ok; "
              "mknod /tmp/mem c 1 1 && echo mknod-ok; "
              "head -c1 /tmp/mem >/dev/null 2>/tmp/err; cat /tmp/err; "
              "mknod /tmp/full c 1 7 && head -c1 /tmp/full >/dev/null && echo full-ok; "
              "cat /sys/fs/cgroup/devices/devices.list")

    def edit(config):
        config["root"]["readonly"] = False
        config["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                                 "options": ["nosuid"]})
        config["process"]["capabilities"] = {k: ["CAP_MKNOD", "CAP_DAC_OVERRIDE"] for k in
                                             ("bounding", "effective", "permitted")}
        config["linux"]["resources"] = {"devices": [
            {"allow": False, "access": "rwm"},
            {"allow": False, "type": "c", "major": 1, "minor": 7, "access": "rw"}]}

    r = pyrunc_cmd("run", "--bundle", bundle(edit, args=["sh", "-c", script]), container_id, timeout=30)
    out = r.stdout + r.stderr
    assert "null-ok" in out and "mknod-ok" in out, out
    assert "Operation not permitted" in out, out   # /dev/mem (1:1) was never allowed
    assert "full-ok" in out   # 1:7 denied by the spec, but runc's defaults come after it
    assert "c 1:3 rwm" in out and "c 136:* rwm" in out and "a *:* rwm" not in out


def _own_unified_dir() -> str:
    own = [line.split(":", 2)[2] for line in _read("/proc/self/cgroup").splitlines()
           if line.startswith("0::")]
    return "/sys/fs/cgroup/unified" + own[0].rstrip("/") if own else ""


@pytest.fixture
def unified_cgroup():
    """A fresh cgroup2 directory beneath our own, removed afterwards."""
    base = _own_unified_dir()
    if not base or not os.path.exists(base + "/cgroup.procs"):
        pytest.skip("no cgroup2 hierarchy at /sys/fs/cgroup/unified")
    path = f"{base}/pyrunc-test-{uuid.uuid4().hex[:10]}"
    os.mkdir(path)
    yield path
    for _ in range(100):
        try:
            os.rmdir(path)
            break
        except OSError:
            import time
            time.sleep(0.02)


def _open_in_cgroup(cgroup: str, *paths: str) -> str:
    def enter():
        with open(cgroup + "/cgroup.procs", "w") as f:
            f.write(str(os.getpid()))
    script = "; ".join(f"head -c1 {p} >/dev/null && echo {os.path.basename(p)}-ok" for p in paths)
    return subprocess.run(["sh", "-c", script], preexec_fn=enter, capture_output=True,
                          text=True, timeout=10).stdout


def test_v2_ebpf_device_program_attach_and_replace(unified_cgroup):
    from pyrunc.cgroups import _bpf, _resources

    rules = _resources.device_rules([_resources.rule(False, "a", -1, -1, "rwm")])
    without_full = [r for r in rules if (r["major"], r["minor"]) != (1, 7)]
    _bpf.apply(unified_cgroup, without_full)
    assert _open_in_cgroup(unified_cgroup, "/dev/zero", "/dev/full").split() == ["zero-ok"]
    fd = os.open(unified_cgroup, os.O_RDONLY)
    try:
        first = _bpf.attached(fd)
        assert len(first) == 1
        # replace atomically: still exactly one program, a new one
        _bpf.apply(unified_cgroup, without_full + [_resources.rule(True, "c", 1, 7, "rw")])
        second = _bpf.attached(fd)
        assert len(second) == 1 and second != first
    finally:
        os.close(fd)
    assert _open_in_cgroup(unified_cgroup, "/dev/zero", "/dev/full").split() == ["zero-ok", "full-ok"]
    # allow-all then one read deny: the last matching rule wins
    _bpf.apply(unified_cgroup, [_resources.rule(True, "a", -1, -1, "rwm"),
                                _resources.rule(False, "c", 1, 5, "r")])
    assert _open_in_cgroup(unified_cgroup, "/dev/zero", "/dev/full").split() == ["full-ok"]


def _hugepage_size() -> str | None:
    try:
        names = sorted(os.listdir("/sys/kernel/mm/hugepages"))
    except OSError:
        return None
    for name in names:
        kb = int(name[len("hugepages-"):-2])
        return f"{kb // 1024}MB" if kb < (1 << 20) else f"{kb >> 20}GB"
    return None


def test_hugetlb_on_unified_hierarchy_and_unified_map(bundle, container_id, pyrunc_cmd, state_root):
    size = _hugepage_size()
    ctrl = "/sys/fs/cgroup/unified/cgroup.controllers"
    if size is None or not os.path.exists(ctrl) or "hugetlb" not in _read(ctrl).split():
        pytest.skip("no hugepages or no hugetlb controller in cgroup2")
    if _v1("hugetlb"):
        pytest.skip("hugetlb is a v1 hierarchy here")
    b = _bundle(bundle, {"hugepageLimits": [{"pageSize": size, "limit": 4 * MiB if size == "2MB" else 0}],
                         "unified": {f"hugetlb.{size}.rsvd.max": str(8 * MiB)}}, ["sleep", "30"])
    r = pyrunc_cmd("run", "-d", "--bundle", b, container_id)
    assert r.returncode == 0, r.stderr
    d = _dirs(state_root, container_id)
    assert _read(f"{d['unified']}/hugetlb.{size}.max") == str(4 * MiB if size == "2MB" else 0)
    assert _read(f"{d['unified']}/hugetlb.{size}.rsvd.max") == str(8 * MiB)
    stats = json.loads(pyrunc_cmd("events", "--stats", container_id, check=True).stdout)["data"]
    assert size in stats["hugetlb"]


@pytest.mark.parametrize("resources, field", [
    ({"memory": {"limit": -5}}, "linux.resources.memory.limit"),
    ({"cpu": {"cpus": "0-"}}, "linux.resources.cpu.cpus"),
    ({"cpu": {"shares": -1}}, "linux.resources.cpu.shares"),
    ({"pids": {"limit": "many"}}, "linux.resources.pids.limit"),
    ({"unified": {"nosuchctl.max": "1"}}, "linux.resources.unified['nosuchctl.max']"),
    ({"unified": {"hugetlb.nosuchfile": "1"}}, "linux.resources.unified['hugetlb.nosuchfile']"),
    ({"network": {"classID": 5}}, "linux.resources.network.classID"),
    ({"blockIO": {"weight": 500}}, "linux.resources.blockIO.weight"),
    ({"devices": [{"allow": True, "type": "x"}]}, "linux.resources.devices[0].type"),
    ({"memory": {"swappiness": 101}}, "linux.resources.memory.swappiness"),
])
def test_bad_input_names_field_and_leaves_nothing(bundle, container_id, pyrunc_cmd, state_root,
                                                  assert_no_residue, resources, field):
    if field.endswith("blockIO.weight") and (os.path.exists("/sys/fs/cgroup/blkio/blkio.weight")
                                             or os.path.exists("/sys/fs/cgroup/blkio/blkio.bfq.weight")):
        pytest.skip("this host has a blkio weight file")
    if field.endswith("network.classID") and os.path.isdir("/sys/fs/cgroup/net_cls"):
        pytest.skip("net_cls is mounted here")
    r = pyrunc_cmd("create", "--bundle", _bundle(bundle, resources, ["true"]), container_id)
    assert r.returncode == 1
    assert field in r.stderr, r.stderr
    assert not (state_root / container_id).exists()
    assert_no_residue(state_root, [container_id])
