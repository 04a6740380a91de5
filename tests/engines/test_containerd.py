"""containerd through `ctr` and containerd-shim-runc-v2, with pyrunc picked by
`ctr run --runc-binary` (= the runc option BinaryName) and runc as the control."""
from __future__ import annotations

import os
import re
import time

import pytest

from engine_support import (
    IMAGE_REF,
    PROBE_SCRIPT,
    assert_cgroups_empty,
    probe_differences,
    state_dirs,
    wait_until,
)


@pytest.fixture
def ctr(containerd_engine, runtime, engine_cgroup_parent):
    """The engine, with a per-test check that nothing of the test's containers is left:
    no container or task in containerd, no runtime state dir, no cgroup."""
    ids: list[str] = []
    containerd_engine.test_ids = ids
    yield containerd_engine
    problems = []
    listed = set(containerd_engine.ctr("containers", "list", "--quiet").stdout.split())
    for container_id in ids:
        if container_id in listed:
            problems.append(f"container {container_id} left in containerd")
            remove_quietly(containerd_engine, container_id, settle=0.5)
    left_state = [d for d in state_dirs(containerd_engine.runtime_root()) if d in ids]
    if left_state:
        problems.append(f"runtime state dirs left: {left_state}")
    try:
        assert_cgroups_empty(engine_cgroup_parent)
    except AssertionError as error:
        problems.append(str(error))
    assert not problems, "; ".join(problems)


def remove_quietly(ctr, name: str, settle: float = 0) -> None:
    """SIGKILL the task, then delete it and the container, ignoring what is not there;
    `settle` seconds between the kill and the deletes."""
    ctr.ctr("tasks", "kill", "--signal", "SIGKILL", name, check=False)
    if settle:
        time.sleep(settle)
    ctr.ctr("tasks", "delete", "--force", name, check=False)
    ctr.ctr("containers", "delete", name, check=False)


def new_id(ctr, name: str) -> str:
    ctr.test_ids.append(name)
    return name


def run(ctr, runtime, name, *command, flags=(), **kwargs):
    return ctr.ctr(
        "run", *ctr.run_args(runtime, name), *flags, IMAGE_REF, name, *command, **kwargs
    )


def test_one_shot_exit_code_and_stdout(ctr, runtime, engine_name):
    name = new_id(ctr, engine_name)
    result = run(ctr, runtime, name, "sh", "-c", "echo hi; echo oops >&2; exit 3",
                 flags=["--rm"], check=False)
    assert result.returncode == 3, result
    assert result.stdout == "hi\n"
    assert "oops" in result.stderr


def test_env_cwd_readonly(ctr, runtime, engine_name):
    name = new_id(ctr, engine_name)
    result = run(
        ctr, runtime, name, "sh", "-c",
        'echo "$GREETING"; pwd; touch /probe 2>/dev/null && echo writable || echo readonly',
        flags=["--rm", "--env", "GREETING=hello there", "--cwd", "/tmp", "--read-only"],
    )
    assert result.stdout.splitlines() == ["hello there", "/tmp", "readonly"]


def test_stdin(ctr, runtime, engine_name):
    name = new_id(ctr, engine_name)
    result = run(ctr, runtime, name, "sh", "-c", "read line; echo got:$line",
                 flags=["--rm"], input="from stdin\n")
    assert result.stdout == "got:from stdin\n"


def test_memory_limit_in_cgroup(ctr, runtime, engine_name, engine_cgroup_parent):
    name = new_id(ctr, engine_name)
    result = run(ctr, runtime, name, "sh", "-c", "cat /proc/self/cgroup",
                 flags=["--rm", "--memory-limit", str(64 << 20)])
    memory_line = next(l for l in result.stdout.splitlines() if ":memory:" in l)
    assert memory_line.endswith(f"{engine_cgroup_parent}/{name}")
    # While it runs, the host sees the limit in that cgroup: run a long one to look.
    name2 = new_id(ctr, engine_name + "-b")
    run(ctr, runtime, name2, "sleep", "30",
        flags=["-d", "--null-io", "--memory-limit", str(64 << 20)])
    try:
        limit_file = f"/sys/fs/cgroup/memory{engine_cgroup_parent}/{name2}/memory.limit_in_bytes"
        assert open(limit_file).read().strip() == str(64 << 20)
        metrics = ctr.ctr("tasks", "metrics", name2).stdout
        assert "memory.usage_in_bytes" in metrics, metrics
    finally:
        ctr.ctr("tasks", "kill", "--signal", "SIGKILL", name2, check=False)
        wait_stopped(ctr, name2)
        ctr.ctr("tasks", "delete", name2, check=False)
        ctr.ctr("containers", "delete", name2)


def task_status(ctr, name) -> str:
    for line in ctr.ctr("tasks", "list").stdout.splitlines()[1:]:
        words = line.split()
        if words and words[0] == name:
            return words[-1]
    return ""


def delete_task(ctr, name) -> int:
    """`ctr tasks delete` and the task's exit status, which ctr 1.6 only reports as a
    warning ("exit with non-zero exit code N") while itself exiting 0."""
    result = ctr.ctr("tasks", "delete", name)
    found = re.search(r"exit with non-zero exit code (\d+)", result.stderr)
    return int(found.group(1)) if found else 0


def wait_stopped(ctr, name, timeout=15):
    wait_until(lambda: task_status(ctr, name) in ("STOPPED", ""), timeout, f"{name} to stop")


def test_detached_logs_exec_ps_pause_kill(ctr, runtime, engine_name, tmp_path):
    name = new_id(ctr, engine_name)
    log = tmp_path / "out.log"
    run(ctr, runtime, name, "sh", "-c",
        "trap 'echo got-usr1; exit 7' USR1; echo started; while true; do sleep 0.1; done",
        flags=["-d", "--log-uri", f"file://{log}"])
    try:
        wait_until(lambda: log.exists() and "started" in log.read_text(), 15, "container log")
        assert task_status(ctr, name) == "RUNNING"

        result = ctr.ctr("tasks", "exec", "--exec-id", "e1", name, "sh", "-c", "echo in-exec; exit 5",
                         check=False)
        assert result.returncode == 5, result
        assert result.stdout == "in-exec\n"
        result = ctr.ctr("tasks", "exec", "--exec-id", "e2", "--cwd", "/tmp", "--user", "1000",
                         name, "sh", "-c", "pwd; id -u")
        assert result.stdout.splitlines() == ["/tmp", "1000"]
        result = ctr.ctr("tasks", "exec", "--exec-id", "e3", name, "sh", "-c", "cat",
                         input="exec stdin\n")
        assert result.stdout == "exec stdin\n"

        processes = ctr.ctr("tasks", "ps", name).stdout.splitlines()
        assert processes[0].split()[0] == "PID"
        pids = [int(line.split()[0]) for line in processes[1:]]
        assert pids, processes
        task_pid = int(ctr.ctr("tasks", "list").stdout.split(name, 1)[1].split()[0])
        assert task_pid in pids

        ctr.ctr("tasks", "pause", name)
        assert task_status(ctr, name) == "PAUSED"
        freezer = f"/sys/fs/cgroup/freezer{ctr.cgroup_parent}/{name}/freezer.state"
        assert open(freezer).read().strip() == "FROZEN"
        ctr.ctr("tasks", "resume", name)
        assert task_status(ctr, name) == "RUNNING"
        assert open(freezer).read().strip() == "THAWED"

        ctr.ctr("tasks", "kill", "--signal", "SIGUSR1", name)
        wait_stopped(ctr, name)
        wait_until(lambda: "got-usr1" in log.read_text(), 10, "the trap's output")
        assert delete_task(ctr, name) == 7
    finally:
        remove_quietly(ctr, name)


def test_sigkill_137_and_same_id_again(ctr, runtime, engine_name):
    name = new_id(ctr, engine_name)
    for attempt in range(2):
        # A container ignoring SIGTERM: kill 15 does nothing, kill 9 gives 137.
        run(ctr, runtime, name, "sh", "-c", "trap '' TERM; echo up; while true; do sleep 0.1; done",
            flags=["-d", "--null-io"])
        try:
            ctr.ctr("tasks", "kill", "--signal", "SIGTERM", name)
            time.sleep(0.5)
            assert task_status(ctr, name) == "RUNNING"
            ctr.ctr("tasks", "kill", "--signal", "SIGKILL", name)
            wait_stopped(ctr, name)
            assert delete_task(ctr, name) == 137
        finally:
            remove_quietly(ctr, name)


def test_force_delete_running(ctr, runtime, engine_name):
    name = new_id(ctr, engine_name)
    run(ctr, runtime, name, "sleep", "60", flags=["-d", "--null-io"])
    pid = int(ctr.ctr("tasks", "list").stdout.split(name, 1)[1].split()[0])
    # The residue checks look in the right place: the state dir is there while it runs.
    assert name in state_dirs(ctr.runtime_root())
    ctr.ctr("tasks", "delete", "--force", name)
    ctr.ctr("containers", "delete", name)
    wait_until(lambda: not os.path.exists(f"/proc/{pid}"), 10, f"pid {pid} to go")


@pytest.mark.parametrize("variant", ["default", "read-only-privileged"])
def test_process_matches_runc(containerd_engine, engine_name, engine_cgroup_parent, variant):
    """What ctr's process sees (ids, caps, rlimits, fds, mounts, env, ...) is the same
    under pyrunc as under runc."""
    flags = {"default": [], "read-only-privileged": ["--read-only", "--privileged"]}[variant]
    outputs = {}
    try:
        for runtime in ("runc", "pyrunc"):
            name = f"{engine_name}-{runtime}"
            result = containerd_engine.ctr(
                "run", "--rm", *containerd_engine.run_args(runtime, name), *flags,
                IMAGE_REF, name, "sh", "-c", PROBE_SCRIPT, check=False,
            )
            assert result.returncode == 0, (runtime, result.stdout, result.stderr)
            # ctr leaves the hostname unset: the host's, the same for both.
            outputs[runtime] = result.stdout
    finally:
        for runtime in ("runc", "pyrunc"):
            containerd_engine.ctr("containers", "delete", f"{engine_name}-{runtime}", check=False)
        assert_cgroups_empty(engine_cgroup_parent)
    differences = probe_differences(outputs)
    assert not differences, "\n".join(differences)
