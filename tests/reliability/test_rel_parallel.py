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
        assert messages == ["", "container with given ID already exists"], messages
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


def test_list_and_state_during_churn(pyrunc_bin, state_root, bundle, tmp_path):
    """`list` and `state` while containers are created and deleted around them: always
    exit 0 (list) or a documented error (state), never a traceback or half a container."""
    import threading
    prefix = f"churn{uuid.uuid4().hex[:8]}"
    sleeper = bundle(args=["sleep", "60"])
    stop = threading.Event()
    problems: list[str] = []

    def churn(n: int) -> None:
        i = 0
        while not stop.is_set():
            cid = f"{prefix}-{n}-{i}"
            run_pyrunc(pyrunc_bin, state_root, "run", "-d", "-b", sleeper, cid)
            run_pyrunc(pyrunc_bin, state_root, "delete", "--force", cid)
            i += 1

    workers = [threading.Thread(target=churn, args=(n,)) for n in range(3)]
    for w in workers:
        w.start()
    try:
        deadline = time.monotonic() + 5
        rounds = 0
        while time.monotonic() < deadline:
            listed = run_pyrunc(pyrunc_bin, state_root, "list", "--format", "json")
            if listed.returncode != 0 or "Traceback" in listed.stderr:
                problems.append(f"list: exit {listed.returncode}: {listed.stderr.strip()}")
                continue
            for c in json.loads(listed.stdout or "null") or []:
                if c["status"] not in ("creating", "created", "running", "stopped", "paused"):
                    problems.append(f"list: bad status {c}")
                result = run_pyrunc(pyrunc_bin, state_root, "state", c["id"])
                try:
                    assert_documented(result, f"state {c['id']}")
                except AssertionError as e:
                    problems.append(str(e))
            rounds += 1
    finally:
        stop.set()
        for w in workers:
            w.join(timeout=60)
    print(f"\nchurn: {rounds} list rounds")
    assert not problems, problems[:5]
    assert rounds > 3


def test_concurrent_execs_into_one_container(pyrunc_bin, state_root, bundle, tmp_path):
    """Many execs at once into one container (exec takes no lock): each one's own output
    and exit code, then a clean delete."""
    cid = f"mexec{uuid.uuid4().hex[:8]}"
    before = Snapshot(cid, state_root, [str(tmp_path)])
    result = run_pyrunc(pyrunc_bin, state_root, "run", "-d", "-b", bundle(args=["sleep", "60"]), cid)
    assert result.returncode == 0, result.stderr
    n = count(20, 50)
    with ThreadPoolExecutor(max_workers=n) as pool:
        results = list(pool.map(lambda i: run_pyrunc(pyrunc_bin, state_root, "exec", cid, "sh", "-c",
                                                     f"echo exec-{i}; exit {i % 5}", timeout=60), range(n)))
    for i, r in enumerate(results):
        assert (r.returncode, r.stdout) == (i % 5, f"exec-{i}\n"), (i, r)
    assert truthful_state(pyrunc_bin, state_root, cid) == "running"
    assert run_pyrunc(pyrunc_bin, state_root, "delete", "--force", cid).returncode == 0
    after = settle(cid, state_root, [str(tmp_path)])
    assert_same(before, after, f"{n} concurrent execs")


def test_delete_force_during_slow_create_is_bounded(pyrunc_bin, state_root, bundle, tmp_path):
    """An engine's `delete --force` while create is stuck (here: a createRuntime hook that
    sleeps) must answer within a bounded time (runc answers at once), not wait for the
    create to finish; afterwards nothing is left."""
    import subprocess
    cid = f"slow{uuid.uuid4().hex[:8]}"
    b = bundle(lambda c: c.update(hooks={"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "8"]}]}),
               args=["sleep", "60"])
    before = Snapshot(cid, state_root, [str(tmp_path)])
    with ThreadPoolExecutor(max_workers=1) as pool:
        create = pool.submit(run_pyrunc, pyrunc_bin, state_root, "create", "-b", b, cid, timeout=60)
        deadline = time.monotonic() + 10
        while not (state_root / cid / "state.json").exists():
            assert time.monotonic() < deadline, "create never reserved its state dir"
            time.sleep(0.01)
        assert truthful_state(pyrunc_bin, state_root, cid) == "creating"
        started = time.monotonic()
        try:
            result = run_pyrunc(pyrunc_bin, state_root, "delete", "--force", cid, timeout=5)
            waited = time.monotonic() - started
        except subprocess.TimeoutExpired:
            result, waited = None, time.monotonic() - started
        create.result(timeout=60)
    run_pyrunc(pyrunc_bin, state_root, "delete", "--force", cid)
    after = settle(cid, state_root, [str(tmp_path)])
    assert result is not None, (f"delete --force blocked for {waited:.1f} s behind a create in progress "
                                "(runc answers at once)")
    assert_documented(result, "delete --force during create")
    assert_same(before, after, "delete --force during a slow create")
