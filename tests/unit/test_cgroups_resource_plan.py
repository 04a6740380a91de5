"""linux.resources validation and translation into cgroup v1 and v2 file writes (pure: a
fake Probe stands in for the host), runc's conversions, the update merge, the eBPF
device program's encoding, and runc update's flag parsing."""
from __future__ import annotations

import struct

import pytest

from pyrunc.cgroups import _bpf
from pyrunc.cgroups import _resources as R
from pyrunc.cgroups.controllers import blkio as blkio_controller
from pyrunc.cgroups.controllers import cpu, devices, memory
from pyrunc.cgroups._paths import CgroupError

MiB = 1 << 20


class FakeProbe(R.Probe):
    def __init__(self, files=(), ints=None):
        self.files = set(files)
        self.ints = ints or {}

    def exists(self, controller, name):
        return (controller, name) in self.files

    def read_int(self, controller, name):
        return self.ints.get((controller, name), 0)


def writes(plan):
    return [(w.controller, w.name, w.value) for w in plan]


# ---- conversions (runc's formulas) -------------------------------------------------

@pytest.mark.parametrize("shares, weight", [(0, 0), (2, 1), (1024, 39), (262144, 10000), (512, 20)])
def test_shares_to_weight_as_runc(shares, weight):
    assert cpu.shares_to_weight(shares) == weight


@pytest.mark.parametrize("blkio, io", [(0, 0), (10, 1), (1000, 10000), (500, 4950)])
def test_blkio_weight_to_io_weight(blkio, io):
    assert blkio_controller.blkio_weight_to_io_weight(blkio) == io


@pytest.mark.parametrize("swap, limit, expected", [
    (0, -1, -1), (-1, 100, -1), (0, 100, 0), (300, 100, 200), (100, 100, 0)])
def test_swap_to_v2(swap, limit, expected):
    assert memory.swap_to_v2(swap, limit) == expected


def test_swap_to_v2_errors_name_the_field():
    with pytest.raises(CgroupError, match=r"memory\.swap: unable to set swap limit without memory limit"):
        memory.swap_to_v2(100, 0)
    with pytest.raises(CgroupError, match=r"memory\.swap: memory\+swap limit \(50\) should be >= memory limit"):
        memory.swap_to_v2(50, 100)


# ---- validation ----------------------------------------------------------------------------

@pytest.mark.parametrize("raw, field", [
    ({"memory": {"limit": -2}}, "linux.resources.memory.limit"),
    ({"memory": {"swappiness": 101}}, "linux.resources.memory.swappiness"),
    ({"memory": {"limit": "1g"}}, "linux.resources.memory.limit"),
    ({"cpu": {"cpus": "0-"}}, "linux.resources.cpu.cpus"),
    ({"cpu": {"cpus": "3-1"}}, "linux.resources.cpu.cpus"),
    ({"cpu": {"mems": "a"}}, "linux.resources.cpu.mems"),
    ({"cpu": {"shares": -5}}, "linux.resources.cpu.shares"),
    ({"cpu": {"quota": -2}}, "linux.resources.cpu.quota"),
    ({"cpu": {"idle": 2}}, "linux.resources.cpu.idle"),
    ({"pids": {"limit": True}}, "linux.resources.pids.limit"),
    ({"blockIO": {"weight": -1}}, "linux.resources.blockIO.weight"),
    ({"blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": -1}]}},
     "linux.resources.blockIO.throttleReadBpsDevice[0].rate"),
    ({"hugepageLimits": [{"pageSize": "2M", "limit": 1}]}, "linux.resources.hugepageLimits[0].pageSize"),
    ({"unified": {"memory/max": "1"}}, "linux.resources.unified['memory/max']"),
    ({"unified": {"nodot": "1"}}, "linux.resources.unified['nodot']"),
    ({"unified": {"memory.max": 5}}, "linux.resources.unified['memory.max']"),
    ({"devices": [{"type": "c"}]}, "linux.resources.devices[0].allow"),
    # runc 1.1.5: no access at all, or none of the letters r, w, m (other letters are ignored)
    ({"devices": [{"allow": True, "type": "c", "access": "x"}]}, "linux.resources.devices[0].access"),
    ({"devices": [{"allow": True, "type": "c", "access": ""}]}, "linux.resources.devices[0].access"),
    ({"devices": [{"allow": True, "type": "c"}]}, "linux.resources.devices[0].access"),
    ({"network": {"priorities": [{"name": "eth 0", "priority": 1}]}},
     "linux.resources.network.priorities[0].name"),
    ([], "linux.resources"),
])
def test_invalid_values_name_the_field(raw, field):
    with pytest.raises(CgroupError) as info:
        R.normalize(raw)
    assert str(info.value).startswith(field + ":"), str(info.value)


def test_normalize_is_idempotent_and_fills_defaults():
    raw = {"memory": {"limit": 5 * MiB, "swappiness": -1}, "cpu": {"cpus": "0-1,3"},
           "devices": [{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 1,
                                                            "minor": 3, "access": "wr"}],
           "rdma": {"mlx5_0": {"hcaHandles": 3}}}
    once = R.normalize(raw)
    assert once["memory"]["swappiness"] is None      # -1 means unset, as in runc
    assert once["devices"][0] == {"allow": False, "type": "a", "major": -1, "minor": -1, "access": "rwm"}
    assert once["devices"][1]["access"] == "rw"
    assert once["pids"]["limit"] == 0 and once["unified"] == {}
    assert R.normalize(once) == once


def test_merge_keeps_unset_fields():
    old = R.normalize({"memory": {"limit": 64 * MiB, "swap": 128 * MiB}, "pids": {"limit": 10},
                       "unified": {"a.b": "1"}})
    new = R.normalize({"memory": {"limit": 32 * MiB, "reservation": 0}, "cpu": {"shares": 300},
                       "unified": {"c.d": "2"}})
    merged = R.merge(old, new)
    assert merged["memory"]["limit"] == 32 * MiB and merged["memory"]["swap"] == 128 * MiB
    assert merged["pids"]["limit"] == 10 and merged["cpu"]["shares"] == 300
    assert merged["unified"] == {"a.b": "1", "c.d": "2"}


def test_merge_unlimited_memory_lifts_swap_as_runc_update_does():
    old = R.normalize({"memory": {"limit": 100 * MiB, "swap": 200 * MiB}})
    merged = R.merge(old, R.normalize({"memory": {"limit": -1}}))
    assert (merged["memory"]["limit"], merged["memory"]["swap"]) == (-1, -1)
    merged = R.merge(old, R.normalize({"memory": {"limit": -1, "swap": 300 * MiB}}))
    assert merged["memory"]["swap"] == 300 * MiB


def test_merge_rdma_per_device_and_limit():
    # rdma.max keeps a limit a write does not name, so the saved resources must too
    old = R.normalize({"rdma": {"rxe0": {"hcaHandles": 3, "hcaObjects": 10}, "mlx5_0": {"hcaHandles": 1}}})
    new = R.normalize({"rdma": {"rxe0": {"hcaHandles": 5}, "mlx5_1": {"hcaObjects": 7}}})
    assert R.merge(old, new)["rdma"] == {
        "rxe0": {"hcaHandles": 5, "hcaObjects": 10},
        "mlx5_0": {"hcaHandles": 1, "hcaObjects": None},
        "mlx5_1": {"hcaHandles": None, "hcaObjects": 7}}
    assert R.normalize(R.merge(old, new)) == R.merge(old, new)


# ---- v1 plan ---------------------------------------------------------------------------------

def test_v1_memory_and_swap_order_depends_on_direction():
    r = R.normalize({"memory": {"limit": 256 * MiB, "swap": 512 * MiB}})
    up = R.v1_plan(r, FakeProbe(ints={("memory", "memory.limit_in_bytes"): 64 * MiB}))
    assert [w.name for w in up][:2] == ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes"]
    r = R.normalize({"memory": {"limit": 32 * MiB, "swap": 48 * MiB}})
    down = R.v1_plan(r, FakeProbe(ints={("memory", "memory.limit_in_bytes"): 256 * MiB}))
    assert [w.name for w in down][:2] == ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]


def test_v1_memory_unlimited_also_unlimits_swap_when_accounted():
    r = R.normalize({"memory": {"limit": -1}})
    plan = R.v1_plan(r, FakeProbe(files={("memory", "memory.memsw.limit_in_bytes")}))
    assert writes(plan) == [("memory", "memory.memsw.limit_in_bytes", "-1"),
                            ("memory", "memory.limit_in_bytes", "-1")]
    assert writes(R.v1_plan(r, FakeProbe())) == [("memory", "memory.limit_in_bytes", "-1")]


def test_v1_full_translation():
    r = R.normalize({
        "memory": {"reservation": 10, "swappiness": 0, "disableOOMKiller": True, "kernel": 5},
        "cpu": {"shares": 512, "quota": 20000, "period": 100000, "burst": 1000, "idle": 1,
                "realtimeRuntime": 100, "realtimePeriod": 1000, "cpus": "0-1", "mems": "0"},
        "pids": {"limit": -1},
        "blockIO": {"weight": 300, "leafWeight": 200,
                    "weightDevice": [{"major": 8, "minor": 0, "weight": 100, "leafWeight": 50}],
                    "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 30}]},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 4 * MiB}],
        "network": {"classID": 0x100001, "priorities": [{"name": "eth0", "priority": 5}]},
        "rdma": {"mlx5_0": {"hcaHandles": 3, "hcaObjects": 100}},
    })
    plan = R.v1_plan(r, FakeProbe(files={("blkio", "blkio.weight"), ("hugetlb", "")}))
    assert writes(plan) == [
        ("memory", "memory.soft_limit_in_bytes", "10"),
        ("memory", "memory.oom_control", "1"),
        ("memory", "memory.swappiness", "0"),
        ("cpu", "cpu.rt_period_us", "1000"),
        ("cpu", "cpu.rt_runtime_us", "100"),
        ("cpu", "cpu.shares", "512"),
        ("cpu", "cpu.cfs_period_us", "100000"),
        ("cpu", "cpu.cfs_quota_us", "20000"),
        ("cpu", "cpu.cfs_burst_us", "1000"),
        ("cpu", "cpu.idle", "1"),
        ("cpuset", "cpuset.cpus", "0-1"),
        ("cpuset", "cpuset.mems", "0"),
        ("pids", "pids.max", "max"),
        ("blkio", "blkio.weight", "300"),
        ("blkio", "blkio.leaf_weight", "200"),
        ("blkio", "blkio.weight_device", "8:0 100"),
        ("blkio", "blkio.leaf_weight_device", "8:0 50"),
        ("blkio", "blkio.throttle.write_iops_device", "8:0 30"),
        ("hugetlb", "hugetlb.2MB.limit_in_bytes", str(4 * MiB)),
        ("net_cls", "net_cls.classid", str(0x100001)),
        ("net_prio", "net_prio.ifpriomap", "eth0 5"),
        ("rdma", "rdma.max", "mlx5_0 hca_handle=3 hca_object=100"),
    ]
    assert R.ignored_fields(r, 1) == ["linux.resources.memory.kernel"]


def test_v1_blkio_without_cfq_uses_bfq_names_and_hugetlb_falls_back_to_cgroup2():
    r = R.normalize({"blockIO": {"weight": 300}, "hugepageLimits": [{"pageSize": "1GB", "limit": 0}]})
    assert writes(R.v1_plan(r, FakeProbe())) == [("blkio", "blkio.bfq.weight", "300"),
                                                 ("", "hugetlb.1GB.max", "0")]


def test_v1_devices_deny_all_then_rules_in_order():
    rules = devices.device_rules(R.normalize({"devices": [{"allow": False, "access": "rwm"}]})["devices"],
                           [{"type": "b", "major": 7, "minor": 0}, {"type": "p", "major": 0, "minor": 0}])
    plan = devices.v1_device_writes(rules)
    assert writes(plan)[:4] == [("devices", "devices.deny", "a"), ("devices", "devices.deny", "a"),
                                ("devices", "devices.allow", "c *:* m"), ("devices", "devices.allow", "b *:* m")]
    texts = [w.value for w in plan]
    assert "c 1:3 rwm" in texts and "c 136:* rwm" in texts and "c 10:200 rwm" in texts
    assert texts[-1] == "c 10:200 rwm"   # linux.devices get no rule: only the rules allow
    assert R.v1_plan(R.normalize({}), FakeProbe(), devices=None) == []


# ---- v2 plan ----------------------------------------------------------------------------------

def test_v2_full_translation():
    r = R.normalize({
        "memory": {"limit": 64 * MiB, "swap": 96 * MiB, "reservation": 16 * MiB, "swappiness": 5},
        "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "burst": 500, "cpus": "0", "mems": "0"},
        "pids": {"limit": 20},
        "blockIO": {"weight": 500, "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1000}],
                    "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 0}]},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 4 * MiB}],
        "rdma": {"mlx5_0": {"hcaObjects": 7}},
        "unified": {"memory.high": "50000000", "cpu.max": "max 100000"},
    })
    assert writes(R.v2_plan(r, FakeProbe())) == [
        ("", "memory.swap.max", str(32 * MiB)),
        ("", "memory.max", str(64 * MiB)),
        ("", "memory.low", str(16 * MiB)),
        ("", "cpu.weight", "39"),
        ("", "cpu.max", "50000 100000"),
        ("", "cpu.max.burst", "500"),
        ("", "cpuset.cpus", "0"),
        ("", "cpuset.mems", "0"),
        ("", "pids.max", "20"),
        ("", "io.weight", "4950"),
        ("", "io.max", "8:0 rbps=1000"),
        ("", "io.max", "8:0 wiops=max"),
        ("", "hugetlb.2MB.max", str(4 * MiB)),
        ("", "rdma.max", "mlx5_0 hca_object=7"),
        ("", "memory.high", "50000000"),     # unified last: it overrides
        ("", "cpu.max", "max 100000"),
    ]
    assert R.ignored_fields(r, 2) == ["linux.resources.memory.swappiness"]
    assert R.v2_controllers(r) == ["memory", "cpu", "cpuset", "pids", "io", "hugetlb", "rdma"]


def test_v2_memory_edge_cases():
    def mem(**m):
        return writes(R.v2_plan(R.normalize({"memory": m}), FakeProbe()))
    assert mem(limit=-1) == [("", "memory.swap.max", "max"), ("", "memory.max", "max")]
    assert mem(limit=100, swap=100) == [("", "memory.swap.max", "0"), ("", "memory.max", "100")]
    assert mem(limit=100) == [("", "memory.max", "100")]
    plan = R.v2_plan(R.normalize({"memory": {"limit": -1}}), FakeProbe())
    assert plan[0].ignore_missing   # no swap accounting: runc tolerates max/0


def test_v2_cpu_quota_forms_idle_bfq_and_unsupported():
    def cpu(probe=None, **c):
        return writes(R.v2_plan(R.normalize({"cpu": c}), probe or FakeProbe()))
    assert cpu(quota=-1) == [("", "cpu.max", "max")]
    assert cpu(period=20000) == [("", "cpu.max", "max 20000")]
    assert cpu(idle=1, shares=1024) == [("", "cpu.idle", "1")]   # idle overrides the weight
    bfq = FakeProbe(files={("", "io.bfq.weight")})
    r = R.normalize({"blockIO": {"weight": 300, "weightDevice": [{"major": 8, "minor": 0, "weight": 20}]}})
    assert writes(R.v2_plan(r, bfq)) == [("", "io.bfq.weight", "300"), ("", "io.bfq.weight", "8:0 20")]
    with pytest.raises(CgroupError, match=r"^linux\.resources\.blockIO\.weightDevice\[0\]: .*bfq"):
        R.v2_plan(r, FakeProbe())
    with pytest.raises(CgroupError, match=r"^linux\.resources\.cpu\.realtimeRuntime: "):
        cpu(realtimeRuntime=10)


def test_v2_ignores_network_like_runc():
    # runc's fs2 manager has no net_cls/net_prio step: accepted, nothing written, and
    # named as ignored (debug log)
    r = R.normalize({"network": {"classID": 1, "priorities": [{"name": "lo", "priority": 2}]}})
    assert R.v2_plan(r, FakeProbe()) == [] and R.v2_controllers(r) == []
    assert R.ignored_fields(r, 2) == ["linux.resources.network.classID",
                                      "linux.resources.network.priorities"]
    assert R.ignored_fields(r, 1) == []


# ---- eBPF device program ------------------------------------------------------------------

def _decode(code: bytes):
    return [struct.unpack("<BBhi", code[i:i + 8]) for i in range(0, len(code), 8)]


def test_bpf_program_shape():
    prog = _decode(_bpf.assemble([devices.rule(True, "c", 1, 3, "rwm")]))
    # prologue (6), one rule (type, major, minor checks, r0 = 1, exit), default deny (2)
    assert len(prog) == 6 + 5 + 2
    assert prog[-2] == (0xB4, 0, 0, 0) and prog[-1][0] == 0x95   # default: r0 = 0; exit
    # "if type != char goto next rule": jumps over major, minor, verdict and exit
    assert prog[6] == (0x55, 2, 4, _bpf.DEV_CHAR)
    assert prog[7] == (0x55, 4, 3, 1) and prog[8] == (0x55, 5, 2, 3)
    assert prog[9] == (0xB4, 0, 0, 1)
    # every jump lands inside the program
    for index, (code, _regs, off, _imm) in enumerate(prog):
        if code in (0x55, 0x5D, 0x15):
            assert 0 < index + 1 + off < len(prog)


def test_bpf_last_rule_wins_and_unconditional_rule_ends_program():
    prog = _decode(_bpf.assemble([devices.rule(True, "a", -1, -1, "rwm"), devices.rule(False, "c", 1, 5, "r")]))
    # checked last-first: the deny for c 1:5 r comes before the allow-all, which ends the
    # program (the verifier rejects unreachable instructions)
    assert prog[-1][0] == 0x95 and prog[-2] == (0xB4, 0, 0, 1)
    # deny matches on any overlap: r1 = r3 & READ; if r1 == 0 goto next rule
    assert prog[6][0] == 0xBF and prog[7] == (0x54, 1, 0, _bpf.ACC_READ)
    assert prog[9][0] == 0x15 and prog[9][1] == 1 and prog[9][3] == 0


def test_device_rules_order_and_tty_defaults():
    rules = devices.device_rules([], [])
    assert rules == list(devices.DEFAULT_ALLOWED_DEVICES)
    # runc drops a default whose path linux.devices redefines, and allows nothing for them
    kmsg = {"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11}
    zero = {"path": "/dev/zero", "type": "c", "major": 1, "minor": 5}
    assert devices.device_rules([], [kmsg]) == rules
    assert devices.device_rules([], [zero, kmsg]) == [r for r in rules if (r["major"], r["minor"]) != (1, 5)]


def test_device_access_letters_as_runc_reads_them():
    for access, canonical in (("rwa", "rw"), ("wrr", "rw"), ("m w", "wm"), ("rwmrwm", "rwm")):
        rule = {"allow": True, "type": "c", "major": 1, "minor": 11, "access": access}
        assert R.normalize({"devices": [rule]})["devices"][0]["access"] == canonical
    assert R.normalize({"devices": [{"allow": False, "access": "x"}]})["devices"][0]["access"] == "rwm"
    assert devices.v1_rule_text(devices.rule(True, "c", 136, -1, "rwm")) == "c 136:* rwm"
    assert devices.v1_rule_text(devices.rule(True, "a", -1, -1, "rwm")) == "a"


# ---- update flags ------------------------------------------------------------------------------

@pytest.mark.parametrize("text, value", [("64m", 64 * MiB), ("1g", 1 << 30), ("1024", 1024),
                                         ("2KiB", 2048), ("1.5k", 1536), ("12x", None), ("", None)])
def test_ram_in_bytes(text, value):
    from pyrunc.gocompat import ram_in_bytes
    assert ram_in_bytes(text) == value


@pytest.mark.parametrize("text, seconds", [("5s", 5.0), ("100ms", 0.1), ("1m30s", 90.0), ("5", None),
                                           ("1.5h", 5400.0), ("s", None)])
def test_go_duration(text, seconds):
    from pyrunc.gocompat import go_duration
    assert go_duration(text) == seconds


def test_update_flags_to_resources():
    from pyrunc.cli.commands import update_flags_to_resources
    from pyrunc.errors import PyruncError
    opts = {"memory": "64m", "memory_swap": "-1", "cpu_quota": "-1", "cpu_share": "512",
            "cpuset_cpus": "0", "pids_limit": 5, "blkio_weight": 0}
    r = update_flags_to_resources(opts)
    assert r["memory"] == {"limit": 64 * MiB, "swap": -1}
    assert r["cpu"] == {"quota": -1, "shares": 512, "cpus": "0"}
    assert r["pids"] == {"limit": 5}
    with pytest.raises(PyruncError, match="invalid value for cpu-share: -3"):
        update_flags_to_resources({"cpu_share": "-3"})
