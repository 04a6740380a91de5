"""linux.netDevices (runtime-spec 1.3, runc 1.3+): a host interface moved into the
container's network namespace before its process starts, renamed, its permanent global
addresses kept, up; nothing moved out on delete (the spec forbids it: the kernel destroys
a virtual device with the namespace that holds it, the owner of a joined namespace
decides).

The runtime's "host" here is a network namespace each test makes (`unshare -n`), where
it creates a veth pair: pyrunc runs in it through `nsenter --net`, and the machine's own
interfaces are never touched. runc 1.1.5 predates the field (it ignores it), so nothing
here is compared with it.
"""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from support import run_with_files

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="moving interfaces needs root")


class Netns:
    """A network namespace held by a `sleep` of ours; `run` runs a command in it."""

    def __init__(self):
        self.holder = subprocess.Popen(["unshare", "--net", "sleep", "600"])
        self.path = f"/proc/{self.holder.pid}/ns/net"
        # unshare execs sleep once the namespace exists: wait for that
        for _ in range(200):
            if os.readlink(self.path) != os.readlink("/proc/self/ns/net"):
                break
            subprocess.run(["sleep", "0.01"])

    def run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["nsenter", f"--net={self.path}", *cmd], capture_output=True, text=True,
                              check=check, timeout=60)

    def links(self) -> str:
        return self.run("ip", "-o", "link").stdout

    def close(self) -> None:
        self.holder.kill()
        self.holder.wait()


@pytest.fixture
def netns():
    made = []

    def make() -> Netns:
        ns = Netns()
        made.append(ns)
        return ns
    yield make
    for ns in made:
        ns.close()


@pytest.fixture
def host(netns):
    """The runtime's network namespace, with a veth pair vh0/vp0: vh0 has a global and a
    host-scoped address (runc keeps only the global one)."""
    ns = netns()
    ns.run("ip", "link", "add", "vh0", "type", "veth", "peer", "name", "vp0")
    ns.run("ip", "addr", "add", "10.99.0.2/24", "dev", "vh0")
    ns.run("ip", "addr", "add", "127.0.0.99/8", "scope", "host", "dev", "vh0")
    ns.run("ip", "link", "set", "vh0", "mtu", "1400")
    return ns


@pytest.fixture
def pyrunc_in(_pyrunc_runtime):
    """Run pyrunc with the test's state root inside a network namespace."""
    def run(ns: Netns, *args: str) -> subprocess.CompletedProcess:
        words = [str(a) for a in args]
        _pyrunc_runtime.seen_ids.update(w for w in words if w.startswith("pt"))
        return run_with_files(["nsenter", f"--net={ns.path}", _pyrunc_runtime.binary,
                               "--root", str(_pyrunc_runtime.root), *words], timeout=60)
    return run


def _with_devices(devices: dict, *, netns_path: str = ""):
    def edit(config):
        config["linux"]["netDevices"] = devices
        for ns in config["linux"]["namespaces"]:
            if ns["type"] == "network" and netns_path:
                ns["path"] = netns_path
    return edit


def _pid(pyrunc_in, ns, container_id) -> int:
    result = pyrunc_in(ns, "state", container_id)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["pid"]


def _assert_veth_peer_gone(host, timeout: float = 10.0) -> None:
    """vh0's peer vp0 goes with the container's network namespace: the kernel destroys a
    namespace (and the veth pairs in it) in a workqueue after its last reference is gone,
    a moment after the container's processes, longer on a loaded machine."""
    import time
    deadline = time.monotonic() + timeout
    while "vp0" in host.links():
        assert time.monotonic() < deadline, f"vp0 still there {timeout} s after the container ended"
        time.sleep(0.05)


def test_moved_renamed_up_with_its_global_address(pyrunc_in, host, bundle, container_id, state_root,
                                                   assert_no_residue):
    """`ip` in the container sees vh0 as ctr0, up, mtu kept, 10.99.0.2/24 kept, the
    host-scoped address dropped; the runtime's namespace no longer has it; once the
    container's namespace is gone the veth pair is gone too (the kernel's doing)."""
    b = bundle(_with_devices({"vh0": {"name": "ctr0"}}), args=["sh", "-c", "ip -o link; ip -o addr"])
    result = pyrunc_in(host, "run", "-b", b, container_id)
    assert result.returncode == 0, result.stderr
    link = next(line for line in result.stdout.splitlines() if "ctr0" in line and "link/" in line)
    assert ",UP" in link and "mtu 1400" in link
    assert "inet 10.99.0.2/24" in result.stdout
    assert "127.0.0.99" not in result.stdout
    assert "vh0" not in result.stdout
    assert "vh0" not in host.links() and "ctr0" not in host.links()
    _assert_veth_peer_gone(host)
    assert_no_residue(state_root, [container_id])


def test_moved_before_start_and_gone_after_delete_force(pyrunc_in, host, bundle, container_id, state_root,
                                                        assert_no_residue):
    b = bundle(_with_devices({"vh0": {}}), args=["sleep", "60"])
    result = pyrunc_in(host, "create", "-b", b, container_id)
    assert result.returncode == 0, result.stderr
    assert "vh0" not in host.links()
    inside = subprocess.run(["nsenter", f"--net=/proc/{_pid(pyrunc_in, host, container_id)}/ns/net",
                             "ip", "-o", "addr", "show", "dev", "vh0"], capture_output=True, text=True)
    assert "inet 10.99.0.2/24" in inside.stdout, inside.stderr
    result = pyrunc_in(host, "delete", "--force", container_id)
    assert result.returncode == 0, result.stderr
    assert_no_residue(state_root, [container_id])
    assert "vh0" not in host.links()
    _assert_veth_peer_gone(host)


def test_joined_namespace_keeps_the_device_after_delete(pyrunc_in, host, netns, bundle, container_id, state_root,
                                                        assert_no_residue):
    """runc's "restore it back" case: the namespace's owner, not the runtime, moves it
    back (with its original name), after `delete --force`."""
    owned = netns()
    b = bundle(_with_devices({"vh0": {"name": "ctr0"}}, netns_path=owned.path), args=["sleep", "60"])
    result = pyrunc_in(host, "create", "-b", b, container_id)
    assert result.returncode == 0, result.stderr
    assert "ctr0" in owned.links()
    result = pyrunc_in(host, "delete", "--force", container_id)
    assert result.returncode == 0, result.stderr
    assert_no_residue(state_root, [container_id])
    assert "ctr0" in owned.links()
    owned.run("ip", "link", "set", "ctr0", "netns", str(host.holder.pid), "name", "vh0")
    assert "vh0" in host.links()


def test_failed_move_fails_create_and_leaves_nothing(pyrunc_in, host, netns, bundle, container_id, state_root,
                                                      assert_no_residue):
    """A name taken in the (joined) container namespace: create fails naming the field,
    before the move (the kernel would move the device, then fail the rename); vh0 is
    still in the runtime's namespace with its address."""
    owned = netns()
    owned.run("ip", "link", "add", "taken0", "type", "veth", "peer", "name", "taken1")
    b = bundle(_with_devices({"vh0": {"name": "taken0"}}, netns_path=owned.path), args=["sleep", "60"])
    result = pyrunc_in(host, "create", "-b", b, container_id)
    assert result.returncode == 1
    assert "linux.netDevices: move network device vh0 to taken0" in result.stderr
    assert "already has a device named taken0" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert_no_residue(state_root, [container_id])
    assert "vh0" in host.links()
    assert "inet 10.99.0.2/24" in host.run("ip", "-o", "addr", "show", "dev", "vh0").stdout


def test_template_name_is_resolved_by_the_kernel(pyrunc_in, host, bundle, container_id, state_root,
                                                 assert_no_residue):
    """The spec's "%d" template: the kernel picks the name, the address still follows."""
    b = bundle(_with_devices({"vh0": {"name": "ctr%d"}}), args=["ip", "-o", "addr", "show", "dev", "ctr0"])
    result = pyrunc_in(host, "run", "-b", b, container_id)
    assert result.returncode == 0, result.stderr
    assert "inet 10.99.0.2/24" in result.stdout
    assert_no_residue(state_root, [container_id])


def test_missing_device_is_refused_before_anything(pyrunc_in, host, bundle, container_id, state_root,
                                                   assert_no_residue):
    b = bundle(_with_devices({"vh0": {}, "nosuch0": {}}))
    result = pyrunc_in(host, "run", "-b", b, container_id)
    assert result.returncode == 1
    assert ("linux.netDevices: link not found for interface nosuch0 on runtime namespace: Link not found"
            in result.stderr)
    assert_no_residue(state_root, [container_id])
    assert "vh0" in host.links()
    assert "inet 10.99.0.2/24" in host.run("ip", "-o", "addr", "show", "dev", "vh0").stdout


@pytest.mark.parametrize("edit, expected", [
    (lambda c: c["linux"].update(namespaces=[n for n in c["linux"]["namespaces"] if n["type"] != "network"],
                                 netDevices={"vh0": {}}),
     "config.json: linux.netDevices: unable to move network devices without a network namespace"),
    (lambda c: c["linux"].update(netDevices={"vh0": {"name": "a/b"}}),
     'config.json: linux.netDevices.vh0: invalid network device name "a/b"'),
    (lambda c: c["linux"].update(netDevices={"vh0": {"name": "x"}, "vp0": {"name": "x"}}),
     'config.json: linux.netDevices.vp0: "vh0" and "vp0" are both named "x" in the container'),
])
def test_bad_config_is_refused(pyrunc_in, host, bundle, container_id, state_root, assert_no_residue,
                               edit, expected):
    result = pyrunc_in(host, "run", "-b", bundle(edit), container_id)
    assert result.returncode == 1
    assert expected in result.stderr.replace('\\"', '"')
    assert_no_residue(state_root, [container_id])
    assert "vh0" in host.links() and "vp0" in host.links()


def test_moved_into_the_network_namespace_of_a_user_namespace(pyrunc_in, host, bundle, userns_rootfs, container_id,
                                                               state_root, assert_no_residue):
    """The container's network namespace belongs to its user namespace: the runtime
    (root on the host) still moves the device in, with its address."""
    mapping = [{"containerID": 0, "hostID": 100000, "size": 65536}]

    def edit(config):
        config["root"]["path"] = userns_rootfs
        config["linux"]["namespaces"].append({"type": "user"})
        config["linux"].update(uidMappings=mapping, gidMappings=mapping, netDevices={"vh0": {"name": "eth0"}})
    b = bundle(edit, args=["ip", "-o", "addr", "show", "dev", "eth0"])
    result = pyrunc_in(host, "run", "-b", b, container_id)
    assert result.returncode == 0, result.stderr
    assert "inet 10.99.0.2/24" in result.stdout
    assert_no_residue(state_root, [container_id])
    assert "vh0" not in host.links()
