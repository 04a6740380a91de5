"""Lifecycle smoke for a pure cgroup v2 host, run INSIDE the guest by tests/vm/guest.py
(the file name does not match test_*.py on purpose: on the hybrid host it is collected
only when named explicitly, and then it skips).

What a unified-only host changes for a container's lifecycle: the container must land in
exactly one cgroup (a single "0::" line), where runc's fs2 driver puts a relative path, with
the root's controllers available; pause/resume go through cgroup.freeze; delete removes the
cgroup; a limit must not leave the caller's own cgroup unusable."""
from __future__ import annotations

import json
import os
import time

import pytest

from pyrunc.cgroups import mode

IN_GUEST = os.environ.get("PYRUNC_IN_VM") == "1"

if mode() != "unified":
    if IN_GUEST:
        raise RuntimeError(f"the guest should be unified-only, but pyrunc sees {mode()!r}")
    pytest.skip("pure cgroup v2 only (run by tests/vm/guest.py)", allow_module_level=True)

CGROUP_ROOT = "/sys/fs/cgroup"


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _own_cgroup() -> str:
    (line,) = _read("/proc/self/cgroup").splitlines()
    assert line.startswith("0::"), line
    return line[3:]


def _cgroup_of(pid: int) -> str:
    lines = _read(f"/proc/{pid}/cgroup").splitlines()
    assert len(lines) == 1 and lines[0].startswith("0::"), lines
    return lines[0][3:]


def _state(pyrunc_cmd, container_id: str) -> dict:
    result = pyrunc_cmd("state", container_id)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_run_sees_one_unified_cgroup_and_returns_the_exit_code(pyrunc_cmd, bundle, container_id):
    bundle_dir = bundle(args=["sh", "-c", "cat /proc/self/cgroup; exit 3"])
    result = pyrunc_cmd("run", "-b", bundle_dir, container_id, timeout=120)
    assert result.returncode == 3, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("0::"), result.stdout


def test_create_start_pause_resume_kill_delete(pyrunc_cmd, bundle, container_id):
    bundle_dir = bundle(args=["sleep", "600"])
    pyrunc_cmd("create", "-b", bundle_dir, container_id, check=True, timeout=120)
    init_pid = _state(pyrunc_cmd, container_id)["pid"]

    # The default (relative) cgroupsPath on pure v2, as runc's fs2 driver: <id> below the
    # PARENT of the caller's own cgroup (which holds the caller, so could not hand out
    # controllers); in the root cgroup that is the root itself. One directory, in cgroup2.
    cgroup = _cgroup_of(init_pid)
    own = _own_cgroup()
    assert cgroup == os.path.join(os.path.dirname(own), container_id), (cgroup, own)
    directory = CGROUP_ROOT + cgroup
    assert init_pid in [int(p) for p in _read(f"{directory}/cgroup.procs").split()]
    # Every controller the root hands out reaches the container's directory.
    parent = os.path.dirname(directory)
    assert set(_read(f"{directory}/cgroup.controllers").split()) == set(
        _read(f"{parent}/cgroup.subtree_control").split()
    )

    pyrunc_cmd("start", container_id, check=True)
    assert _state(pyrunc_cmd, container_id)["status"] == "running"

    pyrunc_cmd("pause", container_id, check=True)
    assert _state(pyrunc_cmd, container_id)["status"] == "paused"
    assert _read(f"{directory}/cgroup.freeze").strip() == "1"
    assert "frozen 1" in _read(f"{directory}/cgroup.events").splitlines()

    pyrunc_cmd("resume", container_id, check=True)
    assert _state(pyrunc_cmd, container_id)["status"] == "running"
    assert _read(f"{directory}/cgroup.freeze").strip() == "0"

    pyrunc_cmd("kill", container_id, "KILL", check=True)
    deadline = time.monotonic() + 10
    while _state(pyrunc_cmd, container_id)["status"] != "stopped":
        assert time.monotonic() < deadline, "container did not stop after SIGKILL"
        time.sleep(0.05)
    pyrunc_cmd("delete", container_id, check=True)
    assert not os.path.exists(directory), f"{directory} left after delete"


def test_threaded_controller_limit_leaves_the_callers_cgroup_usable(pyrunc_cmd, bundle, container_id):
    """pids (like cpu and cpuset) is a threaded controller: the kernel lets it be enabled in a
    cgroup that has member processes, which turns that cgroup into a thread root and every
    new child into "domain invalid" (joining it fails with EOPNOTSUPP). A runtime run from a
    populated cgroup (a service, a shell's session scope) may fail such a container, but must
    not leave its caller's cgroup like that."""
    own = _own_cgroup()
    own_dir = CGROUP_ROOT + own.rstrip("/")
    type_before = _read(f"{own_dir}/cgroup.type").strip() if own != "/" else None

    def limit_pids(config: dict) -> None:
        config.setdefault("linux", {}).setdefault("resources", {})["pids"] = {"limit": 50}

    limited = pyrunc_cmd("run", "-b", bundle(limit_pids, args=["true"]), container_id, timeout=120)
    assert limited.returncode == 0 or "cgroup" in limited.stderr, limited.stderr
    if own != "/":
        assert _read(f"{own_dir}/cgroup.type").strip() == type_before, (
            f"{own_dir} turned {_read(f'{own_dir}/cgroup.type').strip()!r} "
            f"(subtree_control: {_read(f'{own_dir}/cgroup.subtree_control').strip()!r})"
        )
    plain = pyrunc_cmd("run", "-b", bundle(args=["true"]), f"{container_id}-plain", timeout=120)
    assert plain.returncode == 0, plain.stderr
