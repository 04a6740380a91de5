"""Concurrency: many lifecycles at once on distinct ids, and racing operations on one id.

Every call must end (bounded by a timeout), exit 0 or 1 with exactly one runc-shaped error
line naming a documented condition, and leave state that `state`/`list` read truthfully;
afterwards `delete --force` leaves a clean host.
"""
from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from rel_support import Snapshot, assert_documented, assert_same, count, run_pyrunc, settle, truthful_state

DISTINCT = count(20, 50)
RACES = 20

def test_parallel_distinct_lifecycles(pyrunc_bin, state_root, bundle, tmp_path):
    prefix = f"par{uuid.uuid4().hex[:8]}"
    sleeper = bundle(args=["sleep", "60"])
    before = Snapshot(prefix, state_root, [str(tmp_path)])

    def lifecycle(i: int) -> list[str]:
        cid = f"{prefix}-{i}"
        steps = [("create", "-b", sleeper, cid), ("start", cid), ("exec", cid, "echo", f"in-{i}"),
                 ("kill", cid, "KILL")]
        out = []
        for step in steps:
            result = run_pyrunc(pyrunc_bin, state_root, *step, timeout=60)
            assert result.returncode == 0, f"{step}: {result.stderr}"
            out.append(result.stdout)
        deadline = time.monotonic() + 20
        while json.loads(run_pyrunc(pyrunc_bin, state_root, "state", cid).stdout)["status"] != "stopped":
            assert time.monotonic() < deadline, f"{cid} not stopped after SIGKILL"
            time.sleep(0.02)
        result = run_pyrunc(pyrunc_bin, state_root, "delete", cid)
        assert result.returncode == 0, result.stderr
        return out

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=DISTINCT) as pool:
        outputs = list(pool.map(lifecycle, range(DISTINCT), timeout=300))
    elapsed = time.monotonic() - started
    assert [o[2] for o in outputs] == [f"in-{i}\n" for i in range(DISTINCT)]
    after = settle(prefix, state_root, [str(tmp_path)])
    print(f"\nparallel: {DISTINCT} lifecycles at once in {elapsed:.1f} s")
    assert_same(before, after, f"parallel x{DISTINCT}")


def _race(binary, root, *calls):
    """Start every call at once; all must finish within the timeout."""
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = [pool.submit(run_pyrunc, binary, root, *call, timeout=60) for call in calls]
        return [f.result(timeout=90) for f in futures]


RACE_KINDS = ["create-vs-delete", "create-vs-delete-force", "kill-vs-delete", "start-twice",
              "pause-vs-kill", "create-twice", "delete-twice", "pause-vs-delete"]


@pytest.mark.parametrize("round_", range(RACES))
def test_race_same_id(pyrunc_bin, state_root, bundle, tmp_path, round_):
    kind = RACE_KINDS[round_ % len(RACE_KINDS)]
    cid = f"race{uuid.uuid4().hex[:8]}"
    sleeper = bundle(args=["sleep", "60"])
    before = Snapshot(cid, state_root, [str(tmp_path)])

    def setup(*steps):
        for step in steps:
            result = run_pyrunc(pyrunc_bin, state_root, *step)
            assert result.returncode == 0, f"{step}: {result.stderr}"

    if kind == "create-vs-delete":
        create, delete = _race(pyrunc_bin, state_root, ("create", "-b", sleeper, cid), ("delete", cid))
        create_msg = assert_documented(create, "create")
        msg = assert_documented(delete, "delete")
        # runc deletes a *created* container without --force (it kills the init), so
        # delete either came first (nothing there), or after create (deleted it)
        assert msg in ("", "container does not exist") or msg.startswith("cannot delete container"), msg
        status = truthful_state(pyrunc_bin, state_root, cid)
        if msg == "" or create_msg:
            assert status is None, (create_msg, msg, status)
        else:
            assert create_msg == "" and status == "created", (create_msg, msg, status)
    elif kind == "create-vs-delete-force":
        create, delete = _race(pyrunc_bin, state_root, ("create", "-b", sleeper, cid), ("delete", "--force", cid))
        create_msg = assert_documented(create, "create")
        assert assert_documented(delete, "delete --force") == ""
        status = truthful_state(pyrunc_bin, state_root, cid)
        # a container whose create succeeded exists unless delete ran after it
        assert status in (None, "created"), status
        if create_msg:
            assert status is None
    elif kind == "kill-vs-delete":
        setup(("run", "-d", "-b", sleeper, cid))
        kill, delete = _race(pyrunc_bin, state_root, ("kill", cid, "KILL"), ("delete", "--force", cid))
        assert assert_documented(kill, "kill") in ("", "container does not exist", "container not running",
                                                   "no such process")
        assert assert_documented(delete, "delete --force") == ""
        assert truthful_state(pyrunc_bin, state_root, cid) is None
    elif kind == "start-twice":
        setup(("create", "-b", sleeper, cid))
        first, second = _race(pyrunc_bin, state_root, ("start", cid), ("start", cid))
        messages = sorted([assert_documented(first, "start 1"), assert_documented(second, "start 2")])
        assert messages[0] == "", f"neither start succeeded: {messages}"
        assert messages[1] == "cannot start an already running container", messages
        assert truthful_state(pyrunc_bin, state_root, cid) == "running"
    elif kind == "pause-vs-kill":
        setup(("run", "-d", "-b", sleeper, cid))
        pause, kill = _race(pyrunc_bin, state_root, ("pause", cid), ("kill", cid, "KILL"))
        assert assert_documented(pause, "pause") in ("", "container not running")
        assert assert_documented(kill, "kill") in ("", "container not running", "no such process")
        status = truthful_state(pyrunc_bin, state_root, cid)
        assert status in ("paused", "stopped"), status
    elif kind == "create-twice":
        first, second = _race(pyrunc_bin, state_root, ("create", "-b", sleeper, cid), ("create", "-b", sleeper, cid))
        messages = sorted([assert_documented(first, "create 1"), assert_documented(second, "create 2")])
        assert messages == ["", f"container with id exists: {cid}"], messages
        assert truthful_state(pyrunc_bin, state_root, cid) == "created"
    elif kind == "delete-twice":
        setup(("run", "-d", "-b", sleeper, cid))
        first, second = _race(pyrunc_bin, state_root, ("delete", "--force", cid), ("delete", "--force", cid))
        assert assert_documented(first, "delete 1") == ""
        assert assert_documented(second, "delete 2") == ""
        assert truthful_state(pyrunc_bin, state_root, cid) is None
    elif kind == "pause-vs-delete":
        setup(("run", "-d", "-b", sleeper, cid))
        pause, delete = _race(pyrunc_bin, state_root, ("pause", cid), ("delete", "--force", cid))
        assert assert_documented(pause, "pause") in ("", "container does not exist", "container not running")
        assert assert_documented(delete, "delete --force") == ""
        assert truthful_state(pyrunc_bin, state_root, cid) is None

    result = run_pyrunc(pyrunc_bin, state_root, "delete", "--force", cid)
    assert_documented(result, "final delete --force")
    assert result.returncode == 0
    after = settle(cid, state_root, [str(tmp_path)])
    assert_same(before, after, f"race {kind}")
