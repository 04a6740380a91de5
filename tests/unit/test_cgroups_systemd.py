"""The systemd cgroup driver's pure parts: cgroupsPath and slice names, the
org.systemd.property.* annotations, and the unit properties derived from
linux.resources (compared with what runc's libcontainer/cgroups/systemd sends).
The driver itself runs against a real systemd in tests/vm/guest_systemd.py."""
from __future__ import annotations

import pytest

from pyrunc.cgroups import _resources
from pyrunc.cgroups.controllers import blkio, cpu, devices
from pyrunc.cgroups.systemd import (annotation_properties, device_properties, expand_slice,
                                    parse_cgroups_path, parse_gvariant, range_to_bits,
                                    resource_properties)
from pyrunc.errors import PyruncError

INFINITY = (1 << 64) - 1


@pytest.mark.parametrize("path, expected", [
    ("", ("system.slice", "runc-abc.scope")),
    ("system.slice:docker:abc", ("system.slice", "docker-abc.scope")),
    (":crio:xyz", ("system.slice", "crio-xyz.scope")),
    ("kubepods-besteffort.slice:cri-containerd:1", ("kubepods-besteffort.slice", "cri-containerd-1.scope")),
    ("machine.slice:x:pod.slice", ("machine.slice", "pod.slice")),
])
def test_cgroups_path_to_slice_and_unit(path, expected):
    assert parse_cgroups_path(path, "abc") == expected


@pytest.mark.parametrize("path", ["/machine/abc", "a:b", "a:b:c:d", "abc"])
def test_cgroups_path_not_of_the_systemd_form(path):
    with pytest.raises(PyruncError, match='expected cgroupsPath to be of format "slice:prefix:name" '
                                          f'for systemd cgroups, got "{path}" instead'):
        parse_cgroups_path(path, "abc")


@pytest.mark.parametrize("slice_, path", [
    ("system.slice", "/system.slice"),
    ("-.slice", "/"),
    ("test-a-b.slice", "/test.slice/test-a.slice/test-a-b.slice"),
    ("kubepods-burstable-pod1.slice", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice"),
])
def test_expand_slice(slice_, path):
    assert expand_slice(slice_) == path


@pytest.mark.parametrize("slice_", ["foo", ".slice", "a/b.slice", "a--b.slice", "-a.slice", "a-.slice"])
def test_invalid_slice_names(slice_):
    with pytest.raises(PyruncError, match=f"invalid slice name: {slice_}$"):
        expand_slice(slice_)


@pytest.mark.parametrize("text, variant", [
    ("true", ("b", True)), ("false", ("b", False)),
    ("42", ("i", 42)), ("-3", ("i", -3)), ("uint64 1024", ("t", 1024)), ("@t 7", ("t", 7)),
    ("uint32 5", ("u", 5)), ("1.5", ("d", 1.5)), ("'idle'", ("s", "idle")), ('"x y"', ("s", "x y")),
    ("['a.service', 'b.service']", ("as", ["a.service", "b.service"])),
])
def test_gvariant_text(text, variant):
    assert parse_gvariant(text) == variant


@pytest.mark.parametrize("text", ["", "yes", "'open", "uint8 3", "byte 300", "[1, 'a']", "1 2"])
def test_gvariant_text_errors(text):
    with pytest.raises(ValueError):
        parse_gvariant(text)


def test_annotation_properties_as_runc():
    props = annotation_properties({
        "org.systemd.property.CollectMode": "'inactive-or-failed'",
        "org.systemd.property.TimeoutStopSec": "uint64 3",
        "org.systemd.property.RuntimeMaxUSec": "uint64 5000000",
        "org.other": "ignored",
    })
    assert props == [("CollectMode", ("s", "inactive-or-failed")),
                     ("RuntimeMaxUSec", ("t", 5000000)),
                     ("TimeoutStopUSec", ("t", 3000000))]


@pytest.mark.parametrize("key, value, message", [
    ("org.systemd.property.Ab", "1", "name incorrect: too short"),
    ("org.systemd.property.Memory_Max", "1", "name incorrect: contains non-alphabetic character"),
    ("org.systemd.property.MemoryMax", "lots", "value parse error"),
    ("org.systemd.property.TimeoutStopSec", "'ten'", "value parse error: not a number"),
])
def test_annotation_errors(key, value, message):
    with pytest.raises(PyruncError, match=f"annotation {key}.*{message}"):
        annotation_properties({key: value})


def test_range_to_bits():
    assert range_to_bits("0", "f") == b"\x01"
    assert range_to_bits("0-2,5", "f") == b"\x27"
    assert range_to_bits("9", "f") == b"\x00\x02"
    with pytest.raises(PyruncError, match="conversion error"):
        range_to_bits("3-1", "f")


def _props(raw, cgroup_version=2, version=252, devices=None):
    r = _resources.normalize(raw)
    return dict(resource_properties(r, devices, cgroup_version, version))


def test_v2_resource_properties():
    props = _props({"memory": {"limit": 64 << 20, "reservation": 32 << 20, "swap": 128 << 20},
                    "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0-1", "mems": "0"},
                    "pids": {"limit": 100}, "blockIO": {"weight": 500}})
    assert props["MemoryMax"] == ("t", 64 << 20)
    assert props["MemoryLow"] == ("t", 32 << 20)
    assert props["MemorySwapMax"] == ("t", 64 << 20)  # memory+swap minus memory
    assert props["CPUWeight"] == ("t", cpu.shares_to_weight(1024))
    assert props["CPUQuotaPeriodUSec"] == ("t", 100000)
    assert props["CPUQuotaPerSecUSec"] == ("t", 500000)
    assert props["TasksMax"] == ("t", 100)
    assert props["AllowedCPUs"] == ("ay", b"\x03")
    assert props["AllowedMemoryNodes"] == ("ay", b"\x01")
    assert props["IOWeight"] == ("t", blkio.blkio_weight_to_io_weight(500))


def test_v1_resource_properties():
    props = _props({"memory": {"limit": 64 << 20}, "cpu": {"shares": 512}, "blockIO": {"weight": 300},
                    "pids": {"limit": -1}}, cgroup_version=1)
    assert props["MemoryLimit"] == ("t", 64 << 20)
    assert props["CPUShares"] == ("t", 512)
    assert props["BlockIOWeight"] == ("t", 300)
    assert props["TasksMax"] == ("t", INFINITY)
    assert "MemoryMax" not in props and "CPUWeight" not in props


def test_cpu_quota_rounded_up_to_a_percent_and_old_systemd():
    assert _props({"cpu": {"quota": 12345, "period": 100000}})["CPUQuotaPerSecUSec"] == ("t", 130000)
    old = _props({"cpu": {"quota": 50000, "period": 50000, "cpus": "0"}}, version=241)
    assert "CPUQuotaPeriodUSec" not in old and "AllowedCPUs" not in old
    assert old["CPUQuotaPerSecUSec"] == ("t", 1000000)


def test_unlimited_cpu_quota_is_infinity():
    assert _props({"cpu": {"quota": -1}})["CPUQuotaPerSecUSec"] == ("t", INFINITY)
    assert "CPUQuotaPerSecUSec" not in _props({"cpu": {"shares": 2}})


def test_unified_keys_with_a_systemd_property():
    props = _props({"unified": {"memory.high": "1048576", "pids.max": "max", "cpu.max": "max 20000",
                                "cpu.weight": "50", "io.weight": "100"}})
    assert props["MemoryHigh"] == ("t", 1 << 20)
    assert props["TasksMax"] == ("t", INFINITY)
    assert props["CPUQuotaPeriodUSec"] == ("t", 20000)
    assert props["CPUQuotaPerSecUSec"] == ("t", INFINITY)
    assert props["CPUWeight"] == ("t", 50)


def test_device_properties_default_rules():
    rules = devices.device_rules([devices.rule(False, "a", -1, -1, "rwm")])
    props = device_properties(rules, 252)
    assert props[0] == ("DevicePolicy", ("s", "strict"))
    assert props[1] == ("DeviceAllow", ("a(ss)", []))
    allowed = dict(props[2][1][1])
    assert allowed["char-*"] == "m" and allowed["block-*"] == "m"
    assert allowed["/dev/char/1:3"] == "rwm"
    assert allowed["char-pts"] == "rwm"  # the /proc/devices group, as runc 1.1 names it


def test_device_properties_allow_all_and_blacklist():
    allow_all = [devices.rule(True, "a", -1, -1, "rwm")]
    assert device_properties(allow_all, 252) == [("DevicePolicy", ("s", "auto")), ("DeviceAllow", ("a(ss)", []))]
    blacklist = allow_all + [devices.rule(False, "c", 1, 3, "w")]
    assert device_properties(blacklist, 252) == [("DevicePolicy", ("s", "strict")), ("DeviceAllow", ("a(ss)", []))]
    revoked = [devices.rule(True, "c", 1, 3, "rwm"), devices.rule(False, "c", 1, 3, "w")]
    assert device_properties(revoked, 252)[2] == ("DeviceAllow", ("a(ss)", [("/dev/char/1:3", "rm")]))
