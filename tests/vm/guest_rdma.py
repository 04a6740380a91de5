"""linux.resources.rdma on a pure cgroup v2 host, run INSIDE the guest by tests/vm/guest.py
(the file name does not match test_*.py on purpose: elsewhere it is collected only when
named explicitly, and then it skips: it loads kernel modules).

rdma.max accepts only the names of registered RDMA devices, and the guest has no RDMA
hardware: the fixture loads Debian's soft-RoCE driver (rdma_rxe, from the host's
/lib/modules, which the guest sees over 9p) and adds rxe0 on the loopback interface with
iproute2's `rdma` tool (~0.5 s under TCG)."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from pyrunc.cgroups import mode
from support import cgroup_dirs, read_stripped

if os.environ.get("PYRUNC_IN_VM") != "1" or mode() != "unified":
    pytest.skip("loads kernel modules: only inside the throw-away cgroup v2 guest (tests/vm/guest.py)",
                allow_module_level=True)

DEVICE = "rxe0"


def _run(*argv: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"{' '.join(argv)}: {result.stderr}"


@pytest.fixture(scope="module")
def rdma_device():
    if "rdma_rxe.ko" not in read_stripped(f"/lib/modules/{os.uname().release}/modules.dep"):
        pytest.skip(f"kernel {os.uname().release} has no rdma_rxe module")
    _run("modprobe", "rdma_rxe")
    _run("rdma", "link", "add", DEVICE, "type", "rxe", "netdev", "lo")
    try:
        yield DEVICE
    finally:
        _run("rdma", "link", "delete", DEVICE)


def _limits(directory: str) -> str:
    return read_stripped(f"{directory}/rdma.max")


def test_rdma_limits_at_create_update_and_delete(rdma_device, bundle, container_id, pyrunc_cmd,
                                                 state_root, tmp_path):
    def edit(config):
        config["linux"]["resources"] = {"rdma": {rdma_device: {"hcaHandles": 3, "hcaObjects": 10}}}

    r = pyrunc_cmd("run", "-d", "--bundle", bundle(edit, args=["sleep", "60"]), container_id, timeout=120)
    assert r.returncode == 0, r.stderr
    directory = cgroup_dirs(state_root, container_id)["unified"]
    assert _limits(directory) == f"{rdma_device} hca_handle=3 hca_object=10"
    # the container sees its own limit through its cgroup2 mount
    r = pyrunc_cmd("exec", container_id, "cat", "/sys/fs/cgroup/rdma.max")
    assert r.returncode == 0 and r.stdout.strip() == f"{rdma_device} hca_handle=3 hca_object=10", r

    # update one limit: the kernel keeps the other, and so do the saved resources
    update = tmp_path / "update.json"
    update.write_text(json.dumps({"rdma": {rdma_device: {"hcaHandles": 5}}}))
    r = pyrunc_cmd("update", "-r", str(update), container_id)
    assert r.returncode == 0, r.stderr
    assert _limits(directory) == f"{rdma_device} hca_handle=5 hca_object=10"
    saved = json.loads((state_root / container_id / "state.json").read_text())["resources"]
    assert saved["rdma"] == {rdma_device: {"hcaHandles": 5, "hcaObjects": 10}}

    # a device the kernel does not know: refused by field, the limits stay
    update.write_text(json.dumps({"rdma": {"nodev0": {"hcaHandles": 1}}}))
    r = pyrunc_cmd("update", "-r", str(update), container_id)
    assert r.returncode == 1
    assert "linux.resources.rdma.nodev0: " in r.stderr and "no RDMA device named 'nodev0'" in r.stderr, r.stderr
    assert _limits(directory) == f"{rdma_device} hca_handle=5 hca_object=10"

    assert pyrunc_cmd("delete", "--force", container_id).returncode == 0
    assert not os.path.exists(directory)
