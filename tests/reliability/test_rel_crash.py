"""Crash safety: pyrunc SIGKILLed at every named fault point (pyrunc/faults.py, selected
with PYRUNC_FAULT) of create, start, exec and delete; then `state` must tell the truth and
`delete --force` must restore a clean host. Also: a killed or stopped init, a deleted
bundle, a vanished state dir, a full state root.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import uuid

import pytest

from rel_support import Snapshot, assert_documented, assert_same, run_pyrunc, settle, truthful_state

CREATE_POINTS = ["create.reserved", "create.state-saved", "create.cgroup-created", "create.cgroup-saved",
                 "launch.spawned", "launch.before-placed", "launch.placed", "launch.ready",
                 "create.launched", "create.saved"]
START_POINTS = ["start.connected", "start.sent", "start.done"]
EXEC_POINTS = ["exec.spawned", "exec.placed", "exec.started"]
DELETE_POINTS = ["delete.killed", "destroy.cgroup-emptied", "destroy.cgroup-removed"]


def _ok(result, what):
    assert result.returncode == 0, f"{what}: exit {result.returncode}: {result.stderr.strip()}"
    return result.stdout


def _crash(binary, root, point, *args):
    result = run_pyrunc(binary, root, *args, env_extra={"PYRUNC_FAULT": point}, timeout=30)
    assert result.returncode == -signal.SIGKILL, (
        f"{point}: pyrunc {' '.join(map(str, args))} was not killed at the fault point "
        f"(exit {result.returncode}, stderr {result.stderr.strip()!r})")
    return result


def _settled_state(binary, root, cid, timeout=5.0):
    """`state` once the orphaned init had a moment to notice its runtime died."""
    deadline = time.monotonic() + timeout
    while True:
        status = truthful_state(binary, root, cid)
        if status not in ("creating",) or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


def _clean(binary, root, cid, before, tmp_path):
    result = run_pyrunc(binary, root, "delete", "--force", cid, timeout=30)
    assert_documented(result, "delete --force")
    assert result.returncode == 0, result.stderr
    assert truthful_state(binary, root, cid) is None
    after = settle(cid, root, [str(tmp_path)])
    assert_same(before, after, f"after delete --force ({cid})")


@pytest.fixture
def sleeper(bundle):
    return bundle(args=["sleep", "60"])


@pytest.fixture
def cid():
    return f"crash{uuid.uuid4().hex[:8]}"


def _overlay(c):
    c.setdefault("annotations", {})["run.pyrunc.overlay"] = "true"
    c["root"]["readonly"] = False


@pytest.mark.parametrize("point", CREATE_POINTS)
@pytest.mark.parametrize("rootfs", ["plain", "overlay"])
def test_crash_in_create(pyrunc_bin, state_root, bundle, sleeper, cid, tmp_path, point, rootfs):
    if rootfs == "overlay":
        sleeper = bundle(_overlay, args=["sleep", "60"])
    before = Snapshot(cid, state_root, [str(tmp_path)])
    _crash(pyrunc_bin, state_root, point, "create", "-b", sleeper, cid)
    status = _settled_state(pyrunc_bin, state_root, cid)
    if point in ("create.saved",):
        # everything was saved: the container exists and waits for start
        assert status == "created", status
        _ok(run_pyrunc(pyrunc_bin, state_root, "start", cid), "start after a crash past the last save")
        assert truthful_state(pyrunc_bin, state_root, cid) == "running"
    else:
        # create never finished: the container must not claim to be usable
        assert status in ("stopped", None), f"{point}: state says {status}"
        result = run_pyrunc(pyrunc_bin, state_root, "start", cid)
        assert result.returncode == 1
        assert assert_documented(result, "start") in ("cannot start a container that has stopped",
                                                      "container does not exist")
    _clean(pyrunc_bin, state_root, cid, before, tmp_path)


@pytest.mark.parametrize("point", START_POINTS)
def test_crash_in_start(pyrunc_bin, state_root, sleeper, cid, tmp_path, point):
    before = Snapshot(cid, state_root, [str(tmp_path)])
    _ok(run_pyrunc(pyrunc_bin, state_root, "create", "-b", sleeper, cid), "create")
    _crash(pyrunc_bin, state_root, point, "start", cid)
    status = _settled_state(pyrunc_bin, state_root, cid)
    assert status in ("created", "running", "stopped"), status
    if point != "start.connected":
        assert status == "running", f"{point}: the go byte was sent, yet state says {status}"
    if status == "created":
        # still waiting: a second start must work
        _ok(run_pyrunc(pyrunc_bin, state_root, "start", cid), "start again")
        assert truthful_state(pyrunc_bin, state_root, cid) == "running"
    _clean(pyrunc_bin, state_root, cid, before, tmp_path)


@pytest.mark.parametrize("point", EXEC_POINTS)
def test_crash_in_exec(pyrunc_bin, state_root, sleeper, cid, tmp_path, point):
    before = Snapshot(cid, state_root, [str(tmp_path)])
    _ok(run_pyrunc(pyrunc_bin, state_root, "run", "-d", "-b", sleeper, cid), "run -d")
    _crash(pyrunc_bin, state_root, point, "exec", cid, "sleep", "60")
    assert _settled_state(pyrunc_bin, state_root, cid) == "running"
    # the container still works
    assert _ok(run_pyrunc(pyrunc_bin, state_root, "exec", cid, "echo", "alive"), "exec after crash") == "alive\n"
    _clean(pyrunc_bin, state_root, cid, before, tmp_path)


@pytest.mark.parametrize("point", DELETE_POINTS)
@pytest.mark.parametrize("how", ["force-running", "stopped"])
def test_crash_in_delete(pyrunc_bin, state_root, sleeper, cid, tmp_path, point, how):
    before = Snapshot(cid, state_root, [str(tmp_path)])
    _ok(run_pyrunc(pyrunc_bin, state_root, "run", "-d", "-b", sleeper, cid), "run -d")
    if how == "stopped":
        _ok(run_pyrunc(pyrunc_bin, state_root, "kill", cid, "KILL"), "kill")
        deadline = time.monotonic() + 10
        while truthful_state(pyrunc_bin, state_root, cid) != "stopped":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        _crash(pyrunc_bin, state_root, point, "delete", cid)
    else:
        _crash(pyrunc_bin, state_root, point, "delete", "--force", cid)
    status = _settled_state(pyrunc_bin, state_root, cid)
    assert status in ("stopped", None), f"{point}: the init was SIGKILLed, yet state says {status}"
    _clean(pyrunc_bin, state_root, cid, before, tmp_path)


# ----------------------------------------------------------------- the world changes
def _init_pid(binary, root, cid) -> int:
    return json.loads(_ok(run_pyrunc(binary, root, "state", cid), "state"))["pid"]


def test_killed_init(pyrunc_bin, state_root, sleeper, cid, tmp_path):
    before = Snapshot(cid, state_root, [str(tmp_path)])
    _ok(run_pyrunc(pyrunc_bin, state_root, "run", "-d", "-b", sleeper, cid), "run -d")
    os.kill(_init_pid(pyrunc_bin, state_root, cid), signal.SIGKILL)
    deadline = time.monotonic() + 10
    while truthful_state(pyrunc_bin, state_root, cid) != "stopped":
        assert time.monotonic() < deadline, "state never said stopped after the init was killed"
        time.sleep(0.02)
    for args, message in ((("kill", cid, "TERM"), "container not running"),
                          (("start", cid), "cannot start a container that has stopped"),
                          (("exec", cid, "true"), "cannot exec in a stopped container"),
                          (("pause", cid), "container not running")):
        result = run_pyrunc(pyrunc_bin, state_root, *args)
        # runc exec's failures exit 255 (issue 13, item 24)
        code = 255 if args[0] == "exec" else 1
        assert result.returncode == code and message in result.stderr, (args, result.stderr)
    _ok(run_pyrunc(pyrunc_bin, state_root, "delete", cid), "delete (no --force) of a stopped container")
    after = settle(cid, state_root, [str(tmp_path)])
    assert_same(before, after, "killed init")


@pytest.mark.parametrize("phase", ["created", "running"])
def test_stopped_init(pyrunc_bin, state_root, sleeper, cid, tmp_path, phase):
    """An init stopped with SIGSTOP is still alive: its status is unchanged, and delete
    --force (SIGKILL works on stopped tasks) must not hang."""
    before = Snapshot(cid, state_root, [str(tmp_path)])
    _ok(run_pyrunc(pyrunc_bin, state_root, "create", "-b", sleeper, cid), "create")
    if phase == "running":
        _ok(run_pyrunc(pyrunc_bin, state_root, "start", cid), "start")
    pid = _init_pid(pyrunc_bin, state_root, cid)
    os.kill(pid, signal.SIGSTOP)
    try:
        assert truthful_state(pyrunc_bin, state_root, cid) == phase
        started = time.monotonic()
        _ok(run_pyrunc(pyrunc_bin, state_root, "delete", "--force", cid, timeout=20), "delete --force")
        assert time.monotonic() - started < 10
    finally:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
    after = settle(cid, state_root, [str(tmp_path)])
    assert_same(before, after, "stopped init")


def test_deleted_bundle_after_create(pyrunc_bin, state_root, bundle, cid, tmp_path):
    """The state keeps what later commands need: removing the bundle dir after create
    must not break start, exec, state or delete."""
    b = bundle(args=["sleep", "60"], name="doomed")
    before = Snapshot(cid, state_root, [str(tmp_path)])
    _ok(run_pyrunc(pyrunc_bin, state_root, "create", "-b", b, cid), "create")
    shutil.rmtree(b)
    _ok(run_pyrunc(pyrunc_bin, state_root, "start", cid), "start without the bundle")
    assert truthful_state(pyrunc_bin, state_root, cid) == "running"
    assert _ok(run_pyrunc(pyrunc_bin, state_root, "exec", cid, "echo", "ok"), "exec without the bundle") == "ok\n"
    _ok(run_pyrunc(pyrunc_bin, state_root, "delete", "--force", cid), "delete without the bundle")
    after = settle(cid, state_root, [str(tmp_path)])
    assert_same(before, after, "deleted bundle")


def test_vanished_state_dir(pyrunc_bin, state_root, sleeper, cid, tmp_path):
    """Someone removed the state dir: every command says the container does not exist
    (one line, exit 1); delete --force succeeds (nothing to do); the orphaned init and
    cgroup are then the test's to clean."""
    _ok(run_pyrunc(pyrunc_bin, state_root, "run", "-d", "-b", sleeper, cid), "run -d")
    pid = _init_pid(pyrunc_bin, state_root, cid)
    shutil.rmtree(state_root / cid)
    try:
        for args in (("state", cid), ("start", cid), ("kill", cid, "KILL"), ("pause", cid),
                     ("exec", cid, "true"), ("delete", cid)):
            result = run_pyrunc(pyrunc_bin, state_root, *args)
            assert assert_documented(result, " ".join(args)) == "container does not exist", result.stderr
        assert run_pyrunc(pyrunc_bin, state_root, "delete", "--force", cid).returncode == 0
        listed = run_pyrunc(pyrunc_bin, state_root, "list", "-q")
        assert listed.returncode == 0 and cid not in listed.stdout
    finally:
        os.kill(pid, signal.SIGKILL)
        from rel_support import cgroups_named
        deadline = time.monotonic() + 5
        for d in cgroups_named(cid):
            while True:
                try:
                    os.rmdir(d)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.05)


def test_read_only_state_root(pyrunc_bin, sleeper, cid, tmp_path):
    """--root on a read-only filesystem: one clear line, nothing left behind."""
    root = tmp_path / "rorun"
    root.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "rorun", str(root)], check=True)
    try:
        before = Snapshot(cid, root, [str(tmp_path)])
        result = run_pyrunc(pyrunc_bin, root, "create", "-b", sleeper, cid)
        assert result.returncode == 1, result
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "read-only file system" in lines[0], lines
        after = settle(cid, root, [str(tmp_path)])
        assert_same(before, after, "read-only root")
    finally:
        subprocess.run(["umount", "-l", str(root)], check=False)


@pytest.mark.parametrize("exhaust", ["blocks", "inodes"])
def test_full_state_root(pyrunc_bin, sleeper, cid, tmp_path, exhaust):
    """--root on a full tmpfs: create fails with one clear line (no space left on device)
    and leaves no process, cgroup or half-written state behind."""
    root = tmp_path / "run"
    root.mkdir()
    options = "size=64k,nr_inodes=1000000" if exhaust == "blocks" else "size=4m,nr_inodes=8"
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tinyrun", str(root)], check=True)
    try:
        if exhaust == "blocks":
            fd = os.open(root / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                while True:
                    os.write(fd, b"\0" * 4096)
            except OSError:
                pass
            finally:
                os.close(fd)
        else:
            i = 0
            try:
                while True:
                    (root / f"f{i}").touch()
                    i += 1
            except OSError:
                pass
        before = Snapshot(cid, root, [str(tmp_path)])
        result = run_pyrunc(pyrunc_bin, root, "create", "-b", sleeper, cid)
        assert result.returncode == 1, result
        assert "Traceback" not in result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "no space left on device" in lines[0], lines
        assert truthful_state(pyrunc_bin, root, cid) is None
        after = settle(cid, root, [str(tmp_path)])
        assert_same(before, after, f"full root ({exhaust})")
    finally:
        run_pyrunc(pyrunc_bin, root, "delete", "--force", cid)
        subprocess.run(["umount", "-l", str(root)], check=False)
