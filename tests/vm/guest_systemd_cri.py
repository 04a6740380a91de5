"""A pod through CRI with containerd's `SystemdCgroup = true` and pyrunc as the handler's
BinaryName (and the same through pyrunc's own shim), run INSIDE the systemd guest (tests/vm/test_systemd_guest.py): what a
Kubernetes node with the systemd cgroup driver does. containerd passes --systemd-cgroup
and "<pod slice>:cri-containerd:<id>" cgroupsPaths; each container of the pod must be a
running transient scope in the pod's slice, and removing the pod must leave no unit.
The CRI harness is tests/cri/cri_support.py (containerd in private namespaces)."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

if not os.path.isdir("/run/systemd/system"):
    if os.environ.get("PYRUNC_IN_VM") == "1":
        raise RuntimeError("the guest should run systemd as pid 1")
    pytest.skip("needs systemd as pid 1 (run by tests/vm/test_systemd_guest.py)", allow_module_level=True)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "cri"))

from cri_support import (CriEngine, Pod, compile_cri_api, cri_images,  # noqa: E402,F401
                         pyrunc_binary, require, unique_name, CONTAINERD, CTR, SHIM)

POD_SLICE = "pyrunccri.slice"


def _show(unit: str, *names: str) -> dict[str, str]:
    out = subprocess.run(["systemctl", "show", unit, *(f"--property={n}" for n in names)],
                         capture_output=True, text=True, check=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


@pytest.mark.parametrize("handler", ["pyrunc", "pyrunc-shim-options"])
def test_pod_with_systemd_cgroup_driver(tmp_path, cri_images, handler):
    """handler pyrunc: io.containerd.runc.v2 with pyrunc as BinaryName and SystemdCgroup =
    true; pyrunc-shim-options: pyrunc's own shim, SystemdCgroup = true in the file its
    ConfigPath names (containerd 1.6's CRI passes runc's options table to runc's shim only)."""
    require(CONTAINERD, CTR, SHIM)
    messages, stubs = compile_cri_api(tmp_path / "cri-api")
    directory = Path(tempfile.mkdtemp(prefix="pcri-", dir="/tmp"))
    engine = CriEngine(directory, pyrunc_binary(), POD_SLICE, systemd_cgroup=True)
    pod = None
    try:
        engine.start(messages, stubs)
        for archive in cri_images:
            engine.ctr("images", "import", str(archive), timeout=180)
        (directory / "pyrunc-shim-options.toml").write_text("SystemdCgroup = true\n")
        pod = Pod(engine, handler, unique_name("pod-sd"))
        pod.run()
        app = pod.run_container("app", ["sleep", "3600"])
        units = {i: f"cri-containerd-{i}.scope" for i in (pod.id, app)}
        for container_id, unit in units.items():
            shown = _show(unit, "ActiveState", "Slice", "Delegate", "ControlGroup")
            assert shown == {"ActiveState": "active", "Slice": POD_SLICE, "Delegate": "yes",
                             "ControlGroup": f"/{POD_SLICE}/{unit}"}, (unit, shown, engine.diagnose(container_id))
        # the container's init is in its scope, and the runtime that made it is pyrunc
        pid = pod.container_pid(app)
        assert f"/{POD_SLICE}/{units[app]}" in open(f"/proc/{pid}/cgroup").read()
        log = (engine.bundle(app) / "config.json").read_text()
        assert f'"{POD_SLICE}:cri-containerd:{app}"' in log
        assert pod.sh(app, "echo hello") == "hello\n"
        pod.remove()
        pod = None
        for unit in units.values():
            assert _show(unit, "LoadState")["LoadState"] == "not-found", unit
    finally:
        if pod is not None:
            try:
                pod.remove()
            except AssertionError:
                pass
        engine.stop()
