"""Soak: many mixed lifecycles in a row leave nothing behind.

Cycle kinds (round robin): plain create/start/kill/delete, detached run + delete --force,
exec (foreground and detached), pause/resume, tty through a console socket, overlay rootfs
(run.pyrunc.overlay), foreground run with an exit code, and the in-process operations API
(which also shows fd leaks in the caller). Before/after numbers are printed; CI runs
count(30), PYRUNC_FULL=1 runs 1000 (docs/reliability.md has the figures).
"""
from __future__ import annotations

import os
import select
import time
import uuid

import pytest

from rel_support import Snapshot, assert_same, count, reap_zombie_children, run_pyrunc, settle

CYCLES = int(os.environ.get("PYRUNC_SOAK_COUNT", "0")) or count(30, 1000)


def _ok(result, what: str) -> str:
    assert result.returncode == 0, f"{what}: exit {result.returncode}: {result.stderr.strip()}"
    return result.stdout


def _status(binary, root, cid) -> str:
    import json
    return json.loads(_ok(run_pyrunc(binary, root, "state", cid), f"state {cid}"))["status"]


def _wait_status(binary, root, cid, wanted: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while True:
        status = _status(binary, root, cid)
        if status == wanted:
            return
        assert time.monotonic() < deadline, f"{cid}: status {status}, expected {wanted}"
        time.sleep(0.01)


def _read_until(fd: int, needle: bytes, timeout: float = 10) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    while needle not in data:
        left = deadline - time.monotonic()
        assert left > 0, f"pty: {needle!r} not seen in {data!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            data += chunk
    assert needle in data, f"pty: {needle!r} not seen in {data!r}"
    return data


@pytest.mark.timeout(120 + 2 * CYCLES)
def test_soak_mixed_lifecycles(pyrunc_bin, state_root, bundle, console_receiver, tmp_path):
    from pyrunc import operations

    prefix = f"soak{uuid.uuid4().hex[:8]}"
    root = state_root
    sleeper = bundle(args=["sleep", "60"])
    tty = bundle(lambda c: c["process"].update(terminal=True), args=["sh", "-c", "echo tty-ok; sleep 60"])
    overlay_rootfs = bundle.template()["root"]["path"]
    lower_before = sorted(os.listdir(overlay_rootfs))

    def overlay_edit(c):
        c.setdefault("annotations", {})["run.pyrunc.overlay"] = "true"
        c["root"]["readonly"] = False

    overlay = bundle(overlay_edit, args=["sh", "-c", "echo written > /soak-probe && cat /soak-probe"])
    exit_code = bundle(args=["sh", "-c", "exit 7"])
    markers = [str(tmp_path), console_receiver.path]
    g = operations.Globals(root=str(root))

    def plain(cid):
        _ok(run_pyrunc(pyrunc_bin, root, "create", "-b", sleeper, cid), "create")
        assert _status(pyrunc_bin, root, cid) == "created"
        _ok(run_pyrunc(pyrunc_bin, root, "start", cid), "start")
        assert _status(pyrunc_bin, root, cid) == "running"
        _ok(run_pyrunc(pyrunc_bin, root, "kill", cid, "KILL"), "kill")
        _wait_status(pyrunc_bin, root, cid, "stopped")
        _ok(run_pyrunc(pyrunc_bin, root, "delete", cid), "delete")

    def detached(cid):
        _ok(run_pyrunc(pyrunc_bin, root, "run", "-d", "-b", sleeper, cid), "run -d")
        assert _status(pyrunc_bin, root, cid) == "running"
        _ok(run_pyrunc(pyrunc_bin, root, "delete", "--force", cid), "delete --force")

    def exec_(cid):
        _ok(run_pyrunc(pyrunc_bin, root, "run", "-d", "-b", sleeper, cid), "run -d")
        out = _ok(run_pyrunc(pyrunc_bin, root, "exec", cid, "sh", "-c", f"echo exec-{cid}"), "exec")
        assert out == f"exec-{cid}\n"
        _ok(run_pyrunc(pyrunc_bin, root, "exec", "-d", cid, "sleep", "60"), "exec -d")
        rc = run_pyrunc(pyrunc_bin, root, "exec", cid, "sh", "-c", "exit 3")
        assert rc.returncode == 3, rc
        _ok(run_pyrunc(pyrunc_bin, root, "kill", "--all", cid, "KILL"), "kill --all")
        _wait_status(pyrunc_bin, root, cid, "stopped")
        _ok(run_pyrunc(pyrunc_bin, root, "delete", cid), "delete")

    def pause(cid):
        _ok(run_pyrunc(pyrunc_bin, root, "run", "-d", "-b", sleeper, cid), "run -d")
        _ok(run_pyrunc(pyrunc_bin, root, "pause", cid), "pause")
        assert _status(pyrunc_bin, root, cid) == "paused"
        _ok(run_pyrunc(pyrunc_bin, root, "resume", cid), "resume")
        assert _status(pyrunc_bin, root, cid) == "running"
        _ok(run_pyrunc(pyrunc_bin, root, "pause", cid), "pause again")
        # a paused container is deleted with --force (it is thawed so SIGKILL lands)
        _ok(run_pyrunc(pyrunc_bin, root, "delete", "--force", cid), "delete --force paused")

    def tty_(cid):
        n = len(console_receiver.masters) + 1
        _ok(run_pyrunc(pyrunc_bin, root, "create", "-b", tty, "--console-socket", console_receiver.path, cid),
            "create tty")
        master = console_receiver.wait_master(n)
        _ok(run_pyrunc(pyrunc_bin, root, "start", cid), "start tty")
        _read_until(master, b"tty-ok")
        _ok(run_pyrunc(pyrunc_bin, root, "delete", "--force", cid), "delete --force tty")
        console_receiver.close_masters()

    def overlay_(cid):
        out = _ok(run_pyrunc(pyrunc_bin, root, "run", "-b", overlay, cid), "run overlay")
        assert out == "written\n"

    def foreground(cid):
        result = run_pyrunc(pyrunc_bin, root, "run", "-b", exit_code, cid)
        assert result.returncode == 7, result

    def api(cid):
        operations.create(g, cid, str(sleeper))
        assert operations.state(g, cid)["status"] == "created"
        operations.start(g, cid)
        assert operations.state(g, cid)["status"] == "running"
        operations.kill(g, cid, 9)
        deadline = time.monotonic() + 10
        while operations.state(g, cid)["status"] != "stopped":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        operations.delete(g, cid)

    kinds = [plain, detached, exec_, pause, tty_, overlay_, foreground, api]
    before = Snapshot(prefix, root, markers)
    started = time.monotonic()
    for i in range(CYCLES):
        kind = kinds[i % len(kinds)]
        cid = f"{prefix}-{i}"
        try:
            kind(cid)
        except BaseException:
            run_pyrunc(pyrunc_bin, root, "delete", "--force", cid)
            reap_zombie_children()
            raise
        if (i + 1) % 100 == 0:
            # growth over time shows a slow leak before the end does
            print(f"\nsoak after {i + 1} cycles ({time.monotonic() - started:.0f} s): "
                  f"{Snapshot(prefix, root, markers).numbers()}", flush=True)
    elapsed = time.monotonic() - started
    after = settle(prefix, root, markers)
    try:
        _report(before, after, elapsed, kinds)
    finally:
        reap_zombie_children()
    assert sorted(os.listdir(overlay_rootfs)) == lower_before, "the overlay's lower dir was written"


def _report(before, after, elapsed, kinds):
    print(f"\nsoak: {CYCLES} cycles ({', '.join(k.__name__.strip('_') for k in kinds)}) "
          f"in {elapsed:.1f} s ({CYCLES / elapsed:.1f} cycles/s)")
    assert_same(before, after, f"soak x{CYCLES}")
