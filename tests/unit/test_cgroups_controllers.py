"""Each controller module of pyrunc.cgroups.controllers on its own (no root, no cgroups):
its validate() names the field, its v1()/v2() translation of a section, the cgroup2
controllers it asks for, and the interface every module must offer so that a new
controller is one new file."""
from __future__ import annotations

import pytest

from pyrunc.cgroups import _resources as R
from pyrunc.cgroups import controllers
from pyrunc.cgroups.controllers import blkio, cpu, cpuset, devices, hugetlb, memory, network, pids, rdma, unified
from pyrunc.cgroups._paths import CgroupError
from pyrunc.cgroups.controllers.common import FIELD, Probe

MiB = 1 << 20
API = ("validate", "merge", "ignored", "v1", "v2", "v2_controllers", "stats_v1", "stats_v2")


class FakeProbe(Probe):
    def __init__(self, files=()):
        self.files = set(files)

    def exists(self, controller, name):
        return (controller, name) in self.files

    def read_int(self, controller, name):
        return 0


def writes(plan):
    return [(w.controller, w.name, w.value) for w in plan]


@pytest.mark.parametrize("module", controllers.all_modules(), ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_every_controller_offers_the_whole_interface(module):
    assert isinstance(module.SECTION, str) and isinstance(module.CONTROLLERS, tuple)
    assert isinstance(module.ON_V2, bool)
    for name in API:
        assert callable(getattr(module, name)), name
    # an absent section validates to "nothing set": no writes, nothing to enable
    empty = R.normalize({})
    assert module.v1(empty, FakeProbe()) == [] and module.v2(empty, FakeProbe()) == []
    assert module.v2_controllers(empty) == [] and module.ignored(empty, 1) == module.ignored(empty, 2) == []


def test_registry_covers_every_section_once_in_runc_order():
    sections = [m.SECTION for m in controllers.all_modules()]
    assert sections == ["memory", "cpu", "cpu", "pids", "blockIO", "hugepageLimits", "network", "rdma",
                        "devices", "unified"]
    assert list(controllers.SECTIONS) == list(dict.fromkeys(sections))
    for section, names in controllers.SECTIONS.items():
        assert [m.SECTION for m in controllers.of([section])] == [section] * len(names)


def test_normalize_loads_only_the_sections_given():
    r = R.normalize({"pids": {"limit": 3}})
    assert list(r) == ["pids"]
    # a section not given reads as nothing set
    assert r["memory"]["limit"] == 0 and r["unified"] == {} and r["hugepageLimits"] == []
    with pytest.raises(KeyError):
        r["nosuchsection"]
    merged = R.merge(R.normalize({"pids": {"limit": 3}}), R.normalize({"cpu": {"cpus": "0"}}))
    assert merged["pids"]["limit"] == 3 and merged["cpu"]["cpus"] == "0"


# (module, raw section, v1 writes, v2 writes, v2 controllers)
CASES = [
    (memory, {"limit": 64 * MiB, "reservation": 32 * MiB, "swappiness": 5},
     [("memory", "memory.limit_in_bytes", str(64 * MiB)), ("memory", "memory.soft_limit_in_bytes", str(32 * MiB)),
      ("memory", "memory.swappiness", "5")],
     [("", "memory.max", str(64 * MiB)), ("", "memory.low", str(32 * MiB))], ["memory"]),
    (cpu, {"shares": 1024, "quota": 50000, "period": 100000},
     [("cpu", "cpu.shares", "1024"), ("cpu", "cpu.cfs_period_us", "100000"), ("cpu", "cpu.cfs_quota_us", "50000")],
     [("", "cpu.weight", "39"), ("", "cpu.max", "50000 100000")], ["cpu"]),
    (cpuset, {"cpus": "0-1", "mems": "0"},
     [("cpuset", "cpuset.cpus", "0-1"), ("cpuset", "cpuset.mems", "0")],
     [("", "cpuset.cpus", "0-1"), ("", "cpuset.mems", "0")], ["cpuset"]),
    (pids, {"limit": -1}, [("pids", "pids.max", "max")], [("", "pids.max", "max")], ["pids"]),
    (blkio, {"throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 7}]},
     [("blkio", "blkio.throttle.write_iops_device", "8:0 7")], [("", "io.max", "8:0 wiops=7")], ["io"]),
    (hugetlb, [{"pageSize": "2MB", "limit": 4 * MiB}],
     [("", "hugetlb.2MB.max", str(4 * MiB))],   # no v1 hugetlb hierarchy in FakeProbe
     [("", "hugetlb.2MB.max", str(4 * MiB))], ["hugetlb"]),
    (network, {"classID": 16, "priorities": [{"name": "lo", "priority": 3}]},
     [("net_cls", "net_cls.classid", "16"), ("net_prio", "net_prio.ifpriomap", "lo 3")], [], []),
    (rdma, {"mlx5_0": {"hcaObjects": 9}},
     [("rdma", "rdma.max", "mlx5_0 hca_object=9")], [("", "rdma.max", "mlx5_0 hca_object=9")], ["rdma"]),
    (devices, [{"allow": False, "access": "rwm"}], [], [], []),
    (unified, {"memory.high": "1000", "cgroup.max.depth": "2"},
     [], [("", "memory.high", "1000"), ("", "cgroup.max.depth", "2")], ["memory"]),
]


@pytest.mark.parametrize("module, raw, v1, v2, needs", CASES, ids=lambda x: getattr(x, "__name__", "").rsplit(".", 1)[-1])
def test_controller_translation(module, raw, v1, v2, needs):
    r = R.normalize({module.SECTION: raw})
    assert writes(module.v1(r, FakeProbe())) == v1
    assert writes(module.v2(r, FakeProbe())) == v2
    assert module.v2_controllers(r) == needs
    # every write names the field it comes from
    for w in module.v1(r, FakeProbe()) + module.v2(r, FakeProbe()):
        assert w.field.startswith(f"{FIELD}.{module.SECTION}")


@pytest.mark.parametrize("module, raw, field", [
    (memory, {"reservation": "1"}, "linux.resources.memory.reservation"),
    (cpu, {"idle": 2}, "linux.resources.cpu.idle"),
    (cpuset, {"mems": "1-0"}, "linux.resources.cpu.mems"),
    (pids, [], "linux.resources.pids"),
    (blkio, {"weightDevice": [{"major": -1}]}, "linux.resources.blockIO.weightDevice[0].major"),
    (hugetlb, [{"pageSize": "2mb"}], "linux.resources.hugepageLimits[0].pageSize"),
    (network, {"priorities": [{"name": "a/b"}]}, "linux.resources.network.priorities[0].name"),
    (rdma, {"mlx": {"hcaHandles": -1}}, "linux.resources.rdma.mlx.hcaHandles"),
    (devices, [{"allow": True, "type": "u"}], "linux.resources.devices[0].type"),
    (unified, {"../x": "1"}, "linux.resources.unified['../x']"),
])
def test_controller_validate_names_the_field(module, raw, field):
    with pytest.raises(CgroupError) as info:
        module.validate(raw, f"{FIELD}.{module.SECTION}")
    assert str(info.value).startswith(field + ":"), str(info.value)


def test_controller_merge_and_ignored():
    old = R.normalize({"cpu": {"shares": 100, "cpus": "0"}, "unified": {"a.b": "1"}})
    new = R.normalize({"cpu": {"cpus": "1"}, "unified": {"c.d": "2"}})
    assert cpu.merge(old["cpu"], new["cpu"])["shares"] == 100
    assert cpuset.merge(old["cpu"], new["cpu"])["cpus"] == "1"
    assert unified.merge(old["unified"], new["unified"]) == {"a.b": "1", "c.d": "2"}
    r = R.normalize({"network": {"classID": 1}, "blockIO": {"leafWeight": 10}})
    assert network.ignored(r, 1) == [] and network.ignored(r, 2) == ["linux.resources.network.classID"]
    assert blkio.ignored(r, 2) == ["linux.resources.blockIO.leafWeight"]


def test_memory_v2_check_before_update_refuses_a_limit_below_usage():
    class Busy(FakeProbe):
        def read_int(self, controller, name):
            return 10 * MiB if name == "memory.current" else 0

    r = R.normalize({"memory": {"limit": MiB, "checkBeforeUpdate": True}})
    with pytest.raises(CgroupError, match=r"^linux\.resources\.memory\.limit: rejecting memory limit"):
        memory.v2(r, Busy())
    assert writes(memory.v2(r, FakeProbe())) == [("", "memory.max", str(MiB))]
