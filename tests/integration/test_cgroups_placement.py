"""cgroup placement against the real kernel (root only).

Every cgroup made here lies beneath this process's own cgroup in each hierarchy and
carries a unique "pyrunc-test-<uuid>" name; fixtures kill the children they started (by
pid) and remove whatever is left, even when a test fails."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from pyrunc import plan as P
from pyrunc.cgroups import CgroupError, Manager, mode
from pyrunc.cgroups._paths import parse_cgroup_mounts, parse_proc_cgroup
from pyrunc.errors import PyruncError
from pyrunc.initproc import InitProcess

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for cgroupfs writes")


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _own_cgroups() -> dict[str, str]:
    return parse_proc_cgroup(_read("/proc/self/cgroup"))


def _mount_roots() -> dict[str, str]:
    """mountpoint → mountinfo root, for mapping a directory back to a /proc/pid/cgroup path."""
    return {mnt: root for _, mnt, root, _ in parse_cgroup_mounts(_read("/proc/self/mountinfo"))}


def _cgroup_path_of(manager: Manager, key: str) -> str:
    """What /proc/<pid>/cgroup must show for a member of the container dir in `key`."""
    directory = manager.paths[key]
    mnt = manager.to_state()["mounts"][key]
    root = _mount_roots()[mnt].rstrip("/")
    return root + directory[len(mnt):]


def _wait_until(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def _alive(proc: subprocess.Popen) -> bool:
    return proc.poll() is None


def _proc_state(pid: int) -> str:
    for line in _read(f"/proc/{pid}/status").splitlines():
        if line.startswith("State:"):
            return line.split()[1]
    raise AssertionError(f"no State line for pid {pid}")


@pytest.fixture
def unique_name() -> str:
    return f"pyrunc-test-{uuid.uuid4().hex[:12]}"


class Spawner:
    """Starts children and kills each of them by pid (SIGKILL, after thawing whatever
    froze them is the managers fixture's job) and reaps it."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen] = []

    def __call__(self, *argv: str, **popen_kwargs) -> subprocess.Popen:
        proc = subprocess.Popen(list(argv) or ["sleep", "30"], **popen_kwargs)
        self.started.append(proc)
        return proc

    def kill_children(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                try:
                    os.kill(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for proc in self.started:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass


@pytest.fixture
def spawn():
    spawner = Spawner()
    yield spawner
    spawner.kill_children()


@pytest.fixture
def managers(spawn, unique_name):
    """Factory for managers; teardown thaws, kills, destroys, then rmdirs anything with the
    test's unique name that is still below our own cgroups (safety net for failures)."""
    made: list[Manager] = []

    def make(path: str, container_id: str = "ctr") -> Manager:
        m = Manager.for_container(path, container_id)
        made.append(m)
        return m

    yield make
    for m in made:
        try:
            m.thaw()
        except CgroupError:
            pass
    # Our own children first, by pid, so cleanup does not depend on kill_all() working.
    spawn.kill_children()
    for m in made:
        try:
            m.kill_all(signal.SIGKILL)
            _wait_until(lambda: not m.pids())
        except CgroupError:
            pass
        try:
            m.destroy()
        except CgroupError:
            pass
    # Safety net: remove what is left of the test's uniquely named tree, deepest first.
    for m in made:
        for key, directory in m.paths.items():
            mnt = m.to_state()["mounts"][key]
            top = directory
            while os.path.dirname(top) != mnt and unique_name in os.path.dirname(top):
                top = os.path.dirname(top)
            if unique_name not in top or not os.path.isdir(top):
                continue
            for dirpath, _, _ in os.walk(top, topdown=False):
                try:
                    os.rmdir(dirpath)
                except OSError:
                    pass


# ---- path semantics -------------------------------------------------------------------------


def test_mode_matches_mount_table():
    fstypes = {}
    for line in _read("/proc/mounts").splitlines():
        fields = line.split()
        fstypes[fields[1]] = fields[2]
    expected = ("unified" if fstypes.get("/sys/fs/cgroup") == "cgroup2"
                else "hybrid" if "cgroup2" in fstypes.values()
                else "legacy")
    assert mode() == expected


def test_relative_path_lands_below_own_cgroup_in_each_hierarchy(managers, unique_name):
    m = managers(f"{unique_name}/leaf")
    own = _own_cgroups()
    roots = _mount_roots()
    for key, directory in m.paths.items():
        mnt = m.to_state()["mounts"][key]
        own_rel = own[key][len(roots[mnt].rstrip("/")):].strip("/")
        base = mnt + ("/" + own_rel if own_rel else "")
        assert directory == f"{base}/{unique_name}/leaf", key


def test_empty_path_uses_container_id(managers, unique_name):
    m = managers("", unique_name)
    own = _own_cgroups()
    roots = _mount_roots()
    for key, directory in m.paths.items():
        mnt = m.to_state()["mounts"][key]
        own_rel = own[key][len(roots[mnt].rstrip("/")):].strip("/")
        assert directory == "/".join(p for p in (mnt, own_rel, unique_name) if p), key


def _absolute_base_below_own() -> str | None:
    """An absolute cgroup path that is at or below our own cgroup in EVERY hierarchy (our
    deepest own cgroup, when all the others are its ancestors), or None."""
    own = _own_cgroups()
    deepest = max(own.values(), key=lambda p: p.rstrip("/").count("/"))
    for path in own.values():
        if not (path == "/" or deepest == path or deepest.startswith(path.rstrip("/") + "/")):
            return None
    return deepest.rstrip("/")


def test_absolute_path_is_below_hierarchy_root(managers, unique_name):
    base = _absolute_base_below_own()
    if base is None:
        pytest.skip("own cgroups differ so no absolute path is below all of them")
    m = managers(f"{base}/{unique_name}")
    mounts = m.to_state()["mounts"]
    for key, directory in m.paths.items():
        assert directory == f"{mounts[key]}{base}/{unique_name}", key
    # Exercise it for real: the parts of the path that already existed must be left
    # alone, exactly the missing ones are created and destroyed.
    missing, existing = [], []
    for key, directory in m.paths.items():
        current = directory
        while current != mounts[key]:
            (existing if os.path.exists(current) else missing).append(current)
            current = os.path.dirname(current)
    m.create()
    assert sorted(m.created) == sorted(missing)
    m.destroy()
    for path in missing:
        assert not os.path.exists(path), path
    for path in existing:
        assert os.path.isdir(path), path


@pytest.mark.parametrize("path", ["system.slice:pyrunc:abc", ":pyrunc:abc"])
def test_systemd_form_rejected(path):
    with pytest.raises(PyruncError, match="needs --systemd-cgroup"):
        Manager.for_container(path, "abc")


def test_systemd_flag_needs_a_systemd_path(unique_name):
    # runc checks the form before anything else
    with pytest.raises(PyruncError, match='expected cgroupsPath to be of format "slice:prefix:name"'):
        Manager.for_container(unique_name, "abc", systemd=True)


@pytest.mark.parametrize("path", ["../escape", "a/../../escape", "/../escape", "/", "."])
def test_escaping_or_empty_paths_rejected(path):
    with pytest.raises(CgroupError, match="linux.cgroupsPath"):
        Manager.for_container(path, "abc")


# ---- placement ----------------------------------------------------------------------------


def test_create_join_places_child_in_every_hierarchy(managers, spawn, unique_name):
    m = managers(unique_name)
    m.create()
    for directory in m.paths.values():
        assert os.path.isdir(directory)
    child = spawn("sleep", "30")
    m.join(child.pid)
    shown = parse_proc_cgroup(_read(f"/proc/{child.pid}/cgroup"))
    for key in m.paths:
        assert shown[key] == _cgroup_path_of(m, key), key
    # Every hierarchy the child is in is covered, except named ones runc leaves alone
    # (and the cgroup2 line on a legacy host, where cgroup2 is not mounted).
    for key in shown:
        if key in m.paths:
            continue
        names = key.split(",") if key else []
        assert (names and all(n.startswith("name=") for n in names)) or (key == "" and mode() == "legacy"), key
    if mode() != "unified":
        assert "name=systemd" in m.paths or "name=systemd" not in shown
    assert m.pids() == [child.pid]


def test_cpuset_values_copied_into_new_levels(managers, unique_name):
    m = managers(f"{unique_name}/inner")
    cpuset = m.paths.get("cpuset") or next((d for k, d in m.paths.items() if "cpuset" in k.split(",")), None)
    if cpuset is None:
        pytest.skip("no cgroup v1 cpuset hierarchy")
    m.create()
    parent = os.path.dirname(os.path.dirname(cpuset))
    for name in ("cpuset.cpus", "cpuset.mems"):
        want = _read(f"{parent}/{name}").strip()
        assert want
        assert _read(f"{os.path.dirname(cpuset)}/{name}").strip() == want
        assert _read(f"{cpuset}/{name}").strip() == want


def test_pids_is_recursive(managers, spawn, unique_name):
    m = managers(unique_name)
    m.create()
    first = spawn("sleep", "30")
    second = spawn("sleep", "30")
    m.join(first.pid)
    m.join(second.pid)
    # The container made a sub-cgroup of its own (like systemd inside a container).
    key, directory = next(iter(m.paths.items()))
    sub = directory + "/nested"
    os.mkdir(sub)
    if key and "cpuset" in key.split(","):
        for name in ("cpuset.cpus", "cpuset.mems"):
            with open(f"{sub}/{name}", "w") as f:
                f.write(_read(f"{directory}/{name}"))
    with open(f"{sub}/cgroup.procs", "w") as f:
        f.write(str(second.pid))
    assert m.pids() == sorted([first.pid, second.pid])
    m.kill_all(signal.SIGKILL)
    assert _wait_until(lambda: not _alive(first) and not _alive(second))
    assert _wait_until(lambda: not m.pids())
    m.destroy()
    assert not os.path.exists(sub)
    assert not os.path.exists(directory)


# ---- freezer ----------------------------------------------------------------------------------


def _assert_frozen_in_kernel(m: Manager, pid: int, want: bool) -> None:
    freezer = next((d for k, d in m.paths.items() if k and "freezer" in k.split(",")), None)
    if freezer is not None:
        assert _read(f"{freezer}/freezer.state").strip() == ("FROZEN" if want else "THAWED")
        # A v1-frozen task sits in the refrigerator, reported as uninterruptible sleep.
        if want:
            assert _proc_state(pid) == "D"
        else:
            assert _wait_until(lambda: _proc_state(pid) in ("S", "R"))
    else:
        events = _read(f"{m.unified_path}/cgroup.events")
        assert f"frozen {1 if want else 0}" in events


def test_freeze_and_thaw(managers, spawn, unique_name):
    m = managers(unique_name)
    m.create()
    child = spawn("sleep", "30")
    m.join(child.pid)
    assert not m.frozen()
    m.freeze()
    assert m.frozen()
    _assert_frozen_in_kernel(m, child.pid, True)
    m.thaw()
    assert not m.frozen()
    _assert_frozen_in_kernel(m, child.pid, False)
    assert _alive(child)


# ---- kill_all ----------------------------------------------------------------------------------


def test_kill_all_sigkill_reaches_forked_children(managers, spawn, unique_name):
    m = managers(unique_name)
    m.create()
    # The shell is joined before it forks, so its children start inside the cgroup.
    shell = spawn("sh", "-c", "read go; sleep 30 & sleep 30 & wait", stdin=subprocess.PIPE)
    m.join(shell.pid)
    shell.stdin.write(b"go\n")
    shell.stdin.close()
    assert _wait_until(lambda: len(m.pids()) == 3)
    m.kill_all(signal.SIGKILL)
    assert _wait_until(lambda: not m.pids())
    assert shell.wait(timeout=5) == -signal.SIGKILL


def test_kill_all_sigterm_signals_each_process_and_leaves_thawed(managers, spawn, unique_name):
    m = managers(unique_name)
    m.create()
    first = spawn("sleep", "30")
    second = spawn("sleep", "30")
    m.join(first.pid)
    m.join(second.pid)
    m.kill_all(signal.SIGTERM)
    assert first.wait(timeout=5) == -signal.SIGTERM
    assert second.wait(timeout=5) == -signal.SIGTERM
    assert not m.frozen()


def test_kill_all_keeps_paused_container_paused(managers, spawn, unique_name):
    m = managers(unique_name)
    m.create()
    child = spawn("sleep", "30")
    m.join(child.pid)
    m.freeze()
    m.kill_all(signal.SIGTERM)
    assert m.frozen()
    if m.mode != "unified":
        # v1 freezer: the signal waits for resume.  (cgroup2 lets a fatal signal kill a
        # frozen task at once: the kernel's semantics, seen in the v2 guest.)
        time.sleep(0.1)
        assert _alive(child)
        m.thaw()
    assert child.wait(timeout=5) == -signal.SIGTERM


def test_kill_all_sigkill_on_paused_container(managers, spawn, unique_name):
    m = managers(unique_name)
    m.create()
    child = spawn("sleep", "30")
    m.join(child.pid)
    m.freeze()
    m.kill_all(signal.SIGKILL)
    assert child.wait(timeout=5) == -signal.SIGKILL
    assert not m.frozen()


def _without_unified(m: Manager) -> Manager:
    """The same container seen as on a legacy (v1-only) host: no cgroup.kill, no
    cgroup.freeze, so kill_all() must take the freeze-and-signal path."""
    state = m.to_state()
    if "" not in state["dirs"]:
        return Manager.from_state(state)
    state["mode"] = "legacy"
    del state["dirs"][""], state["mounts"][""]
    state["created"] = [p for p in state["created"] if not p.startswith(m.to_state()["mounts"][""] + "/")]
    return Manager.from_state(state)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_kill_all_by_pid_on_paused_container(managers, spawn, unique_name, sig):
    m = managers(unique_name)
    m.create()
    legacy_view = _without_unified(m)
    if legacy_view._freezer() is None:
        pytest.skip("no cgroup v1 freezer")
    child = spawn("sleep", "30")
    m.join(child.pid)
    legacy_view.freeze()
    legacy_view.kill_all(sig)
    if sig == signal.SIGKILL:
        # v1-frozen tasks cannot act on SIGKILL, so kill_all must have thawed them.
        assert child.wait(timeout=5) == -signal.SIGKILL
        assert not legacy_view.frozen()
    else:
        assert legacy_view.frozen()
        time.sleep(0.1)
        assert _alive(child)
        legacy_view.thaw()
        assert child.wait(timeout=5) == -signal.SIGTERM


def test_kill_all_sigkill_without_cgroup_kill_reaches_forked_children(managers, spawn, unique_name):
    m = managers(unique_name)
    m.create()
    legacy_view = _without_unified(m)
    if not legacy_view.paths:
        pytest.skip("pure cgroup2 host: there is no v1 view without cgroup.kill to test")
    shell = spawn("sh", "-c", "read go; i=0; while [ $i -lt 300 ]; do sleep 30 & i=$((i+1)); done; wait", stdin=subprocess.PIPE)
    m.join(shell.pid)
    shell.stdin.write(b"go\n")
    shell.stdin.close()
    assert _wait_until(lambda: len(m.pids()) > 20)
    legacy_view.kill_all(signal.SIGKILL)
    assert _wait_until(lambda: not m.pids())
    assert shell.wait(timeout=5) == -signal.SIGKILL


# ---- destroy ----------------------------------------------------------------------------------


def test_destroy_removes_exactly_what_create_made(managers, unique_name):
    probe = Manager.for_container(unique_name, "x")  # only to learn the directories
    parents = list(probe.paths.values())
    try:
        for parent in parents:
            os.mkdir(parent)
            if "/cpuset/" in parent:
                for name in ("cpuset.cpus", "cpuset.mems"):
                    with open(f"{parent}/{name}", "w") as f:
                        f.write(_read(f"{os.path.dirname(parent)}/{name}"))
        m = managers(f"{unique_name}/mid/leaf")
        m.create()
        assert sorted(m.created) == sorted(
            [p + "/mid" for p in parents] + [p + "/mid/leaf" for p in parents])
        state = json.loads(json.dumps(m.to_state()))
        Manager.from_state(state).destroy()
        for parent in parents:
            assert os.path.isdir(parent), parent
            assert not os.path.exists(parent + "/mid"), parent
    finally:
        for parent in parents:
            for path in (parent + "/mid/leaf", parent + "/mid", parent):
                try:
                    os.rmdir(path)
                except FileNotFoundError:
                    pass


def test_destroy_keeps_preexisting_container_dir(managers, unique_name):
    first = managers(unique_name)
    first.create()
    second = managers(unique_name)
    second.create()
    assert second.created == []
    second.destroy()
    for directory in first.paths.values():
        assert os.path.isdir(directory)
    first.destroy()
    for directory in first.paths.values():
        assert not os.path.exists(directory)


def test_destroy_busy_cgroup_fails_and_keeps_record(managers, spawn, unique_name):
    m = managers(unique_name)
    m.create()
    child = spawn("sleep", "30")
    m.join(child.pid)
    created = list(m.created)
    with pytest.raises(CgroupError, match="remove cgroup .*: device or resource busy"):
        m.destroy()
    assert sorted(m.created) == sorted(created)
    for directory in m.paths.values():
        assert os.path.isdir(directory)
    m.kill_all(signal.SIGKILL)
    child.wait(timeout=5)
    m.destroy()
    assert m.created == []
    for directory in m.paths.values():
        assert not os.path.exists(directory)


def test_shared_created_ancestor_is_left_for_its_other_user(managers, unique_name):
    one = managers(f"{unique_name}/one")
    one.create()
    two = managers(f"{unique_name}/two")
    two.create()
    one.destroy()
    for directory in two.paths.values():
        assert os.path.isdir(directory)
    two.destroy()
    for directory in two.paths.values():
        assert not os.path.exists(directory)


def test_create_with_controllers_absent_from_cgroup2_on_hybrid(managers, unique_name):
    if mode() != "hybrid":
        pytest.skip("hybrid only: v1 controllers are not enabled in the cgroup2 tree")
    m = managers(f"{unique_name}/leaf")
    root = m.to_state()["mounts"][""]
    before = _read(f"{root}/cgroup.subtree_control")
    offered = _read(f"{root}/cgroup.controllers").split()
    v1_only = next(c for c in ("memory", "pids", "cpu", "io") if c not in offered)
    m.create(controllers=(v1_only,))
    assert _read(f"{root}/cgroup.subtree_control") == before
    assert v1_only not in _read(f"{m.unified_path}/cgroup.controllers").split()


# ---- born in the cgroup: clone3 CLONE_INTO_CGROUP ---------------------------------------------


def _spawn_true(cgroup: str | None, on_sync) -> InitProcess:
    """pyrunc-init on a two-op plan (wait for the runtime's placement, exec /bin/true),
    started in `cgroup`; `on_sync(pid)` runs at the placement point."""
    plan = P.Plan()
    plan.sync(P.SYNC_PLACED, what="wait for placement")
    plan.exec(["/bin/true"], ["PATH=/usr/bin:/bin"], what="exec /bin/true")
    proc = InitProcess.spawn(plan, cgroup=cgroup)
    try:
        proc.follow(lambda _sync_id: on_sync(proc.pid))
    finally:
        os.waitpid(proc.pid, 0)
        proc.close()
    return proc


def test_init_is_born_in_the_cgroup2_directory(managers, unique_name):
    """The spawn itself puts the init into the container's cgroup2 directory: at the
    first point where the runtime could write cgroup.procs it is there already, while
    the v1 hierarchies (hybrid) still show the runtime's own cgroups until join()."""
    m = managers(f"{unique_name}/ctr")
    m.create()
    assert m.unified_path, "every mode this suite runs in has a cgroup2 hierarchy"
    own = _own_cgroups()
    seen: dict[str, str] = {}
    proc = _spawn_true(m.unified_path, lambda pid: seen.update(parse_proc_cgroup(_read(f"/proc/{pid}/cgroup"))))
    assert proc.placed
    assert seen[""] == _cgroup_path_of(m, "")
    for key in m.paths:
        if key != "":
            assert seen[key] == own[key], f"{key}: only join() moves a process in a v1 hierarchy"


def test_spawn_falls_back_when_the_directory_is_no_cgroup(tmp_path):
    """A directory CLONE_INTO_CGROUP refuses (here: not a cgroup at all) costs nothing
    but the retry: the init starts without it, in the runtime's own cgroup."""
    own = _own_cgroups()
    seen: dict[str, str] = {}
    proc = _spawn_true(str(tmp_path), lambda pid: seen.update(parse_proc_cgroup(_read(f"/proc/{pid}/cgroup"))))
    assert not proc.placed
    assert seen == own


def test_warm_up_migration_one_thread_per_process_extended_by_each_call():
    """A resident caller (the containerd shim) warms up for every create: the calls extend
    one thread's deadline (`seconds` after the latest) instead of starting a thread each
    (a 20-pod burst started 40 threads writing cgroup.procs every 3 ms)."""
    import _thread

    from pyrunc import cgroups

    if mode() == "unified":
        pytest.skip("cgroup v2 needs no warm-up (CLONE_INTO_CGROUP)")
    threads = _thread._count()
    started = time.monotonic()
    for _ in range(5):
        cgroups.warm_up_migration(0.3)
    assert _wait_until(lambda: _thread._count() == threads + 1, timeout=1.0), "no thread started"
    time.sleep(0.05)
    assert _thread._count() == threads + 1, "one warm-up thread for all the calls"
    time.sleep(0.15)
    cgroups.warm_up_migration(0.3)  # extends it: alive until ~0.5 s after the first calls
    time.sleep(0.2)
    assert _thread._count() == threads + 1, "the later call's deadline was not kept"
    assert _wait_until(lambda: _thread._count() == threads, timeout=5.0), "the thread did not end"
    assert time.monotonic() - started >= 0.45


def test_warm_up_migration_leaves_this_process_where_it_is():
    """The warm-up thread re-migrates this process into its own v1 cgroup for 100 ms (to
    keep the rwsem's grace period open for the real placement): it must start on a v1
    host, end on its own, and never move the process anywhere."""
    import _thread

    from pyrunc import cgroups

    before = _own_cgroups()
    threads = _thread._count()
    cgroups.warm_up_migration()
    if mode() == "unified":
        time.sleep(0.05)
        assert _thread._count() == threads, "cgroup v2 needs no warm-up (CLONE_INTO_CGROUP)"
    else:
        assert _wait_until(lambda: _thread._count() == threads + 1, timeout=1.0), "no thread started"
    assert _wait_until(lambda: _thread._count() == threads, timeout=5.0), "the thread did not end"
    assert _own_cgroups() == before


MOVE_SELF_SCRIPT = """
import os, sys, time
from pyrunc import cgroups
from pyrunc.cgroups import manager
cgroups.warm_up_migration(0.5)
time.sleep(0.05)                        # the warm-up thread is writing every 3 ms
procs = manager._own_v1_procs()
child = os.path.join(os.path.dirname(procs), sys.argv[1])
os.mkdir(child)
print(child, flush=True)
cgroups.move_self(lambda: open(os.path.join(child, "cgroup.procs"), "w").write(str(os.getpid())))
time.sleep(0.2)                         # ~60 more warm-up writes
moved = manager._own_v1_procs() == os.path.join(child, "cgroup.procs")
print("moved" if moved else "moved back", flush=True)
"""


def test_move_self_is_not_undone_by_the_warm_up():
    """The shim's ShimCgroup join moves the resident process while the migration warm-up
    keeps writing its pid into its own v1 cgroup: a write of the old path landing after
    the move put the process back (tests/shim's ShimCgroup test saw it)."""
    if mode() == "unified":
        pytest.skip("cgroup v2 needs no warm-up (CLONE_INTO_CGROUP)")
    name = f"pyrunc-moveself-{os.getpid()}"
    result = subprocess.run([sys.executable, "-c", MOVE_SELF_SCRIPT, name], capture_output=True,
                            text=True, timeout=30)
    lines = result.stdout.split()
    try:
        assert result.returncode == 0, result.stderr
        assert lines[1] == "moved", "the warm-up moved the process back into its old cgroup"
    finally:
        if lines:
            os.rmdir(lines[0])  # its only process has exited


def test_end_warm_up_ends_the_thread_at_once():
    """`run` ends the warm-up once its init is placed: the thread stops at its next write
    instead of writing every 3 ms for the rest of its time."""
    import _thread

    from pyrunc import cgroups

    if mode() == "unified":
        pytest.skip("cgroup v2 needs no warm-up (CLONE_INTO_CGROUP)")
    threads = _thread._count()
    cgroups.warm_up_migration(5.0)
    assert _wait_until(lambda: _thread._count() == threads + 1, timeout=1.0), "no thread started"
    cgroups.end_warm_up()
    assert _wait_until(lambda: _thread._count() == threads, timeout=0.5), "the thread kept writing"
