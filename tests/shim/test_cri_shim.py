"""Kubernetes' path with pyrunc as the shim: a CRI client → containerd's CRI plugin →
containerd-shim-pyrunc-v2 (RuntimeClass handlers `pyrunc-shim`, runtime_type
io.containerd.pyrunc.v2, `pyrunc-node`, io.containerd.pyrunc-node.v2, and
`pyrunc-shim-options`, whose options table names a ConfigPath; see
tests/cri/cri_support.py). No containerd-shim-runc-v2 and no pyrunc process is involved."""
from __future__ import annotations

import json
import os

from cri_support import (  # noqa: F401  (fixtures are found by name)
    Pod,
    cri,
    cri_cgroup_parent,
    cri_images,
    processes_mentioning,
    residue_of,
    unique_name,
    wait_until,
)

SHIM = "containerd-shim-pyrunc-v2"
NODE_SHIM = "containerd-shim-pyrunc-node-v2"


def in_namespace_of(cri, entry: str) -> bool:
    """Whether the process of a processes_mentioning() entry is in containerd's mount
    namespace (other sessions on the machine run their containerds in their own)."""
    try:
        return os.readlink(f"/proc/{entry.split()[0]}/ns/mnt") == os.readlink(f"/proc/{cri.pid}/ns/mnt")
    except OSError:
        return False


def shims(cri, name: str) -> list[int]:
    """Pids of the resident shim processes started as `name` in containerd's namespace
    (named pyrunc-shim; forked from a `start`, whose argv they keep)."""
    found = []
    for entry in processes_mentioning(f"/{name} "):
        pid = int(entry.split()[0])
        try:
            comm = open(f"/proc/{pid}/comm").read().strip()
        except OSError:
            continue
        if comm == "pyrunc-shim" and in_namespace_of(cri, entry):
            found.append(pid)
    return found


def netns_of(pod: Pod) -> str:
    spec = pod.info()["runtimeSpec"]
    return next((n.get("path", "") for n in spec["linux"]["namespaces"] if n["type"] == "network"), "")


def assert_pod_gone(cri, pod: Pod, netns: str) -> None:
    """Nothing of the removed pod is left, and its shim has ended."""
    problems = residue_of(pod, netns)
    assert not problems, problems
    wait_until(lambda: not shims(cri, SHIM), 10, "the pod's shim to exit")


def test_pod_lifecycle_one_shim_per_pod(cri):
    pod = Pod(cri, "pyrunc-shim", unique_name("shim-pod"))
    netns = ""
    try:
        pod.run()
        netns = netns_of(pod)
        app = pod.run_container("app", ["sh", "-c", "trap 'exit 0' TERM; echo hello-log; "
                                               "while true; do sleep 0.1; done"])
        other = pod.run_container("other", ["sleep", "3600"])
        # the pod's sandbox and both containers are served by one shim
        assert len(shims(cri, SHIM)) == 1, processes_mentioning(SHIM)
        assert not [p for p in processes_mentioning("containerd-shim-runc-v2") if in_namespace_of(cri, p)]
        for container_id in (pod.id, app, other):
            with open(os.path.join(cri.runtime_root(), container_id, "state.json")) as f:
                assert "pid" in json.load(f)  # pyrunc's state layout
        response = pod.exec(app, ["sh", "-c", "echo out; echo err >&2; exit 3"])
        assert (response.exit_code, response.stdout, response.stderr) == (3, b"out\n", b"err\n")
        wait_until(lambda: "hello-log" in pod.container_log("app"), 10, "the container's log")
        assert pod.stop_container(app, timeout=10) < 5  # SIGTERM, its trap, the exit event
        status = pod.container_status(app).status
        assert (status.state, status.exit_code) == (pod.pb.CONTAINER_EXITED, 0)
        pod.remove_container(app)
    finally:
        if pod.id:
            pod.remove()
    assert_pod_gone(cri, pod, netns)


def test_node_wide_shim_serves_every_pod(cri):
    pods = [Pod(cri, "pyrunc-node", unique_name(f"node-pod{i}")) for i in range(2)]
    try:
        for pod in pods:
            pod.run()
            pod.run_container("app", ["sleep", "3600"])
        assert len(shims(cri, NODE_SHIM)) == 1, processes_mentioning(NODE_SHIM)
        for pod in pods:
            assert pod.sh(pod.container_ids[0], "echo alive") == "alive\n"
    finally:
        for pod in pods:
            if pod.id:
                pod.remove()
    for pod in pods:
        problems = residue_of(pod)
        assert not problems, problems
    wait_until(lambda: not shims(cri, NODE_SHIM), 10, "the node's shim to exit")


def test_handler_options_from_config_path(cri):
    """A handler's `ConfigPath` (what containerd 1.6's CRI sends a runtime other than
    io.containerd.runc.v2: runtimeoptions.v1.Options) names a file of runc's options,
    applied to every container of the pod as runc's shim applies its options table."""
    (cri.directory / "pyrunc-shim-options.toml").write_text("NoNewKeyring = true\nIoGid = 4321\n")
    pod = Pod(cri, "pyrunc-shim-options", unique_name("shim-opts"))
    netns = ""
    try:
        pod.run()
        netns = netns_of(pod)
        app = pod.run_container("app", ["sleep", "3600"])
        for container_id in (pod.id, app):
            with open(os.path.join(cri.runtime_root(), container_id, "state.json")) as f:
                assert json.load(f)["no_new_keyring"] is True, container_id
            assert json.loads((cri.bundle(container_id) / "options.json").read_text()) == \
                {"no_new_keyring": True, "io_gid": 4321}
        # the container's stdio are pipes of group IoGid (containerd's FIFOs are root's)
        assert pod.sh(app, "stat -L -c %g /proc/1/fd/1") == "4321\n"
    finally:
        if pod.id:
            pod.remove()
    assert_pod_gone(cri, pod, netns)
