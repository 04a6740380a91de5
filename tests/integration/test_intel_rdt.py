"""linux.intelRdt on a host without resctrl (this one): what runs here is the refusal.
The group itself (schemata, tasks, monitoring, delete, update) is tested against a fake
resctrl tree in tests/unit/test_intelrdt.py."""
from __future__ import annotations

import os
import re

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")


def _resctrl_mounted() -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(" - resctrl " in line for line in f)


@pytest.fixture(autouse=True)
def _no_resctrl():
    if _resctrl_mounted():
        pytest.skip("this host has resctrl mounted")


def message(stderr: str) -> str:
    found = re.findall(r'level=error msg="((?:[^"\\]|\\.)*)"', stderr)
    assert found, stderr
    return found[-1].replace('\\"', '"')


@pytest.mark.parametrize("rdt, expected", [
    ({"schemata": ["L3:0=f"]},
     "intelRdt.schemata is specified in config, but Intel RDT is not supported or enabled"),
    ({"closID": "c1", "enableMonitoring": True},
     "intelRdt.enableMonitoring is specified in config, but Intel RDT is not supported or enabled"),
])
def test_spec_1_3_fields_refused_without_resctrl(pyrunc_cmd, bundle, container_id, state_root, assert_no_residue,
                                                 rdt, expected):
    """Deliberately stricter than runc 1.1.5, which predates these fields and ignores
    them: runc 1.4 refuses any intelRdt on such a host (issue 15: never silently)."""
    def edit(config):
        config["linux"]["intelRdt"] = rdt
    result = pyrunc_cmd("run", "-b", bundle(edit, args=["true"]), container_id)
    assert result.returncode == 1
    assert message(result.stderr) == expected
    assert_no_residue(state_root, [container_id])


@pytest.mark.parametrize("flag, expected", [
    ("--l3-cache-schema=L3:0=f", "Intel RDT/CAT: l3 cache schema is not enabled"),
    ("--mem-bw-schema=MB:0=50", "Intel RDT/MBA: memory bandwidth schema is not enabled"),
])
def test_update_schema_without_resctrl_as_runc(pyrunc_cmd, runc_cmd, bundle, container_id, flag, expected):
    b = bundle(args=["sleep", "60"])
    for run, cid in ((runc_cmd, container_id + "-runc"), (pyrunc_cmd, container_id)):
        created = run("create", "-b", b, cid)
        assert created.returncode == 0, created.stderr
        try:
            result = run("update", flag, cid)
            assert result.returncode == 1
            assert message(result.stderr) == expected
        finally:
            run("delete", "--force", cid)


def test_features_list_intel_rdt_and_net_devices(pyrunc_cmd):
    """runtime-spec 1.3 features: support compiled in, whatever this host mounts."""
    import json
    result = pyrunc_cmd("features")
    assert result.returncode == 0, result.stderr
    linux = json.loads(result.stdout)["linux"]
    assert linux["intelRdt"] == {"enabled": True, "schemata": True, "monitoring": True}
    assert linux["netDevices"] == {"enabled": True}
