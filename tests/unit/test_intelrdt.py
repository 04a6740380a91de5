"""pyrunc.intelrdt against a fake resctrl tree in a tmpdir (this host has no resctrl):
the group's place, its schemata, tasks and monitoring group, update, delete; and the
refusals of what the host's resctrl lacks."""
import os

import pytest

import pyrunc.spec as spec_api
from pyrunc import intelrdt
from pyrunc.errors import ConfigError, PyruncError
from pyrunc.spec.default import default_spec
from pyrunc.spec.model import IntelRdt


@pytest.fixture
def resctrl(tmp_path):
    """A resctrl root as the kernel lays it out, with CAT, MBA and monitoring."""
    root = tmp_path / "resctrl"
    for feature in ("L3", "MB", "L3_MON"):
        (root / "info" / feature).mkdir(parents=True)
    (root / "info" / "last_cmd_status").write_text("ok\n")
    (root / "schemata").write_text("L3:0=fffff\nMB:0=100\n")
    (root / "tasks").write_text("")
    return root


def read(path) -> str:
    with open(path) as f:
        return f.read()


def test_own_group_gets_schemata_tasks_and_goes_on_delete(resctrl):
    rdt = IntelRdt(l3_cache_schema="L3:0=f", mem_bw_schema="MB:0=50", schemata=["L3:0=ff0", "MB:0=70"])
    group = intelrdt.plan(str(resctrl), "c1", rdt)
    assert group == {"path": f"{resctrl}/c1", "remove": True, "monitor": ""}
    intelrdt.apply(group, rdt, 4242)
    # the spec's order: the old fields, then schemata (a later line for a resource wins)
    assert read(resctrl / "c1" / "schemata") == "L3:0=f\nMB:0=50\nL3:0=ff0\nMB:0=70\n"
    assert read(resctrl / "c1" / "tasks") == "4242"
    intelrdt.destroy(group)
    assert not (resctrl / "c1").exists()
    intelrdt.destroy(group)  # already gone: fine


def test_closid_group_is_shared_and_kept(resctrl):
    """A closID names a group someone else may manage: it must exist when no schemata
    come with it, the container joins it, and delete leaves it."""
    rdt = IntelRdt(clos_id="gold")
    group = intelrdt.plan(str(resctrl), "c1", rdt)
    assert group == {"path": f"{resctrl}/gold", "remove": False, "monitor": ""}
    with pytest.raises(PyruncError, match=r"^intelRdt.closID: clos dir .*/gold not accessible"):
        intelrdt.apply(group, rdt, 4242)
    assert not (resctrl / "gold").exists()
    (resctrl / "gold").mkdir()
    intelrdt.apply(group, rdt, 4242)
    assert read(resctrl / "gold" / "tasks") == "4242"
    assert not (resctrl / "gold" / "schemata").exists()  # nothing written to a shared group
    intelrdt.destroy(group)
    assert (resctrl / "gold").is_dir()


def test_closid_with_schemata_is_made(resctrl):
    rdt = IntelRdt(clos_id="silver", schemata=["L3:0=3"])
    group = intelrdt.plan(str(resctrl), "c1", rdt)
    intelrdt.apply(group, rdt, 7)
    assert read(resctrl / "silver" / "schemata") == "L3:0=3\n"


def test_monitoring_group_per_container(resctrl):
    """enableMonitoring: mon_groups/<container id> in the CLOS group, for the init and
    each exec'd process; delete removes it, and the shared CLOS group stays."""
    (resctrl / "gold").mkdir()
    rdt = IntelRdt(clos_id="gold", enable_monitoring=True)
    group = intelrdt.plan(str(resctrl), "c1", rdt)
    assert group["monitor"] == f"{resctrl}/gold/mon_groups/c1"
    intelrdt.apply(group, rdt, 10)
    assert read(resctrl / "gold" / "mon_groups" / "c1" / "tasks") == "10"
    intelrdt.join(group, 11)  # exec
    assert read(resctrl / "gold" / "tasks") == "11"
    assert read(resctrl / "gold" / "mon_groups" / "c1" / "tasks") == "11"
    intelrdt.destroy(group)
    assert not (resctrl / "gold" / "mon_groups" / "c1").exists()
    assert (resctrl / "gold").is_dir()


def test_update_writes_the_schemata(resctrl):
    rdt = IntelRdt(l3_cache_schema="L3:0=f")
    group = intelrdt.plan(str(resctrl), "c1", rdt)
    intelrdt.apply(group, rdt, 1)
    intelrdt.set_schemata(group, "L3:0=ff", "MB:0=30")
    assert read(resctrl / "c1" / "schemata") == "L3:0=ff\nMB:0=30\n"


def test_a_refused_write_says_what_resctrl_said(resctrl):
    rdt = IntelRdt(schemata=["L3:0=0"])
    group = intelrdt.plan(str(resctrl), "c1", rdt)
    (resctrl / "c1" / "schemata").mkdir(parents=True)  # a write that fails
    (resctrl / "info" / "last_cmd_status").write_text("Mask out of range\n")
    with pytest.raises(PyruncError) as info:
        intelrdt.apply(group, rdt, 1)
    assert str(info.value) == (f"intelRdt: write {resctrl}/c1/schemata: is a directory, "
                               "last_cmd_status: Mask out of range")


@pytest.mark.parametrize("rdt, missing, expected", [
    (IntelRdt(l3_cache_schema="L3:0=f"), "L3",
     "intelRdt.l3CacheSchema is specified in config, but Intel RDT/CAT is not enabled"),
    (IntelRdt(mem_bw_schema="MB:0=5"), "MB",
     "intelRdt.memBwSchema is specified in config, but Intel RDT/MBA is not enabled"),
    (IntelRdt(enable_monitoring=True), "L3_MON",
     "intelRdt.enableMonitoring is specified in config, but Intel RDT monitoring is not enabled"),
])
def test_what_the_host_lacks_is_refused(resctrl, rdt, missing, expected):
    intelrdt.check(rdt, str(resctrl))
    os.rmdir(resctrl / "info" / missing)
    with pytest.raises(PyruncError) as info:
        intelrdt.check(rdt, str(resctrl))
    assert str(info.value) == expected


def _parse_rdt(tmp_path, rdt):
    (tmp_path / "rootfs").mkdir(exist_ok=True)
    config = default_spec()
    config["linux"]["intelRdt"] = rdt
    return spec_api.parse(config, str(tmp_path)).linux.intel_rdt


def test_parsed(tmp_path):
    rdt = _parse_rdt(tmp_path, {"closID": "gold", "schemata": ["L3:0=f", "MB:0=5"], "enableMonitoring": True})
    assert (rdt.clos_id, rdt.schemata, rdt.enable_monitoring) == ("gold", ["L3:0=f", "MB:0=5"], True)


@pytest.mark.parametrize("rdt, expected", [
    ({"schemata": "L3:0=f"}, "linux.intelRdt.schemata: expected an array, got a string"),
    ({"schemata": [5]}, "linux.intelRdt.schemata[0]: expected a string, got a number"),
    ({"schemata": ["L3:0=f\nMB:0=5"]}, "linux.intelRdt.schemata[0]: must be a single line"),
    ({"enableMonitoring": "yes"}, "linux.intelRdt.enableMonitoring: expected a boolean, got a string"),
])
def test_refused_naming_the_field(tmp_path, rdt, expected):
    with pytest.raises(ConfigError) as info:
        _parse_rdt(tmp_path, rdt)
    assert str(info.value) == f"config.json: {expected}"
