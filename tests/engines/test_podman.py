"""podman 4.3 with conmon: `podman --runtime pyrunc` (a name from containers.conf
[engine.runtimes], listed in runtime_supports_json) and runc as the control."""
from __future__ import annotations

import json
import os
import time

import pytest

from engine_support import (
    assert_cgroup_mounts_match_runc,
    IMAGE_REF,
    PROBE_SCRIPT,
    assert_cgroups_empty,
    probe_differences,
    remove_left_containers,
    state_dirs,
    wait_until,
)


@pytest.fixture
def podman(podman_engine, runtime, engine_cgroup_parent):
    """The engine bound to `runtime`, with a per-test check that nothing is left."""
    podman_engine.current_runtime = runtime
    yield podman_engine
    problems = remove_left_containers(podman_engine.podman, "podman")
    root = podman_engine.runtime_root(runtime)
    left_state = state_dirs(root)
    if left_state:
        problems.append(f"runtime state dirs left in {root}: {left_state}")
    try:
        assert_cgroups_empty(engine_cgroup_parent)
    except AssertionError as error:
        problems.append(str(error))
    assert not problems, "; ".join(problems)


def pm(podman, *args, **kwargs):
    return podman.podman(*args, runtime=podman.current_runtime, **kwargs)


def run_flags(podman) -> list[str]:
    return ["--network", "none", "--cgroup-parent", podman.cgroup_parent]


def inspect(podman, name: str, template: str) -> str:
    return pm(podman, "inspect", "-f", template, name).stdout.strip()


def start_detached(podman, name, *command, flags=()):
    pm(podman, "run", "-d", "--name", name, *run_flags(podman), *flags, IMAGE_REF, *command)
    return inspect(podman, name, "{{.Id}}")


def test_one_shot_exit_code_and_output(podman):
    result = pm(podman, "run", "--rm", *run_flags(podman), IMAGE_REF,
                "sh", "-c", "echo hi; echo oops >&2; exit 3", check=False)
    assert result.returncode == 3, result
    assert result.stdout == "hi\n"
    assert result.stderr == "oops\n"


def test_runtime_is_the_one_asked_for(podman, engine_name):
    try:
        start_detached(podman, engine_name, "sleep", "60")
        assert inspect(podman, engine_name, "{{.OCIRuntime}}") == podman.current_runtime
        # podman passes no --root: the container's state is in the runtime's default root.
        full_id = inspect(podman, engine_name, "{{.Id}}")
        assert full_id in state_dirs(podman.runtime_root(podman.current_runtime))
    finally:
        pm(podman, "rm", "-f", "-t", "0", engine_name, check=False)


def test_env_cwd_user_hostname_readonly(podman):
    result = pm(
        podman, "run", "--rm", *run_flags(podman),
        "-e", "GREETING=hello there", "-w", "/tmp", "-u", "1000:1000",
        "--hostname", "engine-test", "--read-only", "--read-only-tmpfs=false", IMAGE_REF,
        "sh", "-c",
        'echo "$GREETING"; pwd; id -u; id -g; hostname;'
        " touch /probe 2>/dev/null && echo writable || echo readonly",
    )
    assert result.stdout.splitlines() == ["hello there", "/tmp", "1000", "1000", "engine-test", "readonly"]


def test_tty(podman, engine_name):
    result = pm(podman, "run", "--rm", "-t", *run_flags(podman), IMAGE_REF,
                "sh", "-c", "tty; test -t 0 && test -t 1 && echo both-tty")
    # A tty turns \n into \r\n on output.
    assert result.stdout.replace("\r\n", "\n").splitlines() == ["/dev/pts/0", "both-tty"]
    try:
        start_detached(podman, engine_name, "sleep", "60")
        result = pm(podman, "exec", "-t", engine_name, "sh", "-c", "test -t 1 && echo exec-tty")
        assert result.stdout.replace("\r\n", "\n") == "exec-tty\n"
    finally:
        pm(podman, "rm", "-f", "-t", "0", engine_name, check=False)


def test_stdin(podman):
    result = pm(podman, "run", "--rm", "-i", *run_flags(podman), IMAGE_REF,
                "sh", "-c", "read line; echo got:$line", input="from stdin\n")
    assert result.stdout == "got:from stdin\n"


def test_detached_logs_exec_top_pause_kill(podman, engine_name, engine_cgroup_parent):
    try:
        full_id = start_detached(
            podman, engine_name, "sh", "-c",
            "trap 'echo got-usr1; exit 7' USR1; echo started; while true; do sleep 0.1; done",
        )
        wait_until(lambda: "started" in pm(podman, "logs", engine_name).stdout, 15, "logs")
        assert inspect(podman, engine_name, "{{.State.Status}}") == "running"

        result = pm(podman, "exec", engine_name, "sh", "-c", "echo in-exec; exit 5", check=False)
        assert result.returncode == 5, result
        assert result.stdout == "in-exec\n"
        result = pm(podman, "exec", "-e", "EXECVAR=x1", "-w", "/tmp", "-u", "1000",
                    engine_name, "sh", "-c", "echo $EXECVAR; pwd; id -u")
        assert result.stdout.splitlines() == ["x1", "/tmp", "1000"]
        result = pm(podman, "exec", "-i", engine_name, "cat", input="exec stdin\n")
        assert result.stdout == "exec stdin\n"

        top = pm(podman, "top", engine_name, "pid", "args").stdout.splitlines()
        assert top[0].split()[0] == "PID"
        assert any("while true" in line for line in top[1:]), top

        pm(podman, "pause", engine_name)
        assert inspect(podman, engine_name, "{{.State.Status}}") == "paused"
        freezer = f"/sys/fs/cgroup/freezer{engine_cgroup_parent}/libpod-{full_id}/freezer.state"
        assert open(freezer).read().strip() == "FROZEN"
        pm(podman, "unpause", engine_name)
        assert inspect(podman, engine_name, "{{.State.Status}}") == "running"
        assert open(freezer).read().strip() == "THAWED"

        pm(podman, "kill", "--signal", "USR1", engine_name)
        assert pm(podman, "wait", engine_name).stdout.strip() == "7"
        assert "got-usr1" in pm(podman, "logs", engine_name).stdout
    finally:
        pm(podman, "rm", "-f", "-t", "0", engine_name, check=False)


def test_stop_timeout_137_restart_and_start_again(podman, engine_name):
    try:
        start_detached(podman, engine_name, "sh", "-c",
                       "trap '' TERM; echo up; while true; do sleep 0.1; done")
        started = time.monotonic()
        pm(podman, "stop", "-t", "1", engine_name)
        assert time.monotonic() - started >= 1
        assert inspect(podman, engine_name, "{{.State.ExitCode}}") == "137"

        pm(podman, "start", engine_name)
        assert inspect(podman, engine_name, "{{.State.Status}}") == "running"
        first_pid = inspect(podman, engine_name, "{{.State.Pid}}")
        pm(podman, "restart", "-t", "1", engine_name)
        assert inspect(podman, engine_name, "{{.State.Status}}") == "running"
        assert inspect(podman, engine_name, "{{.State.Pid}}") != first_pid
        assert pm(podman, "logs", engine_name).stdout.count("up") == 3
    finally:
        pm(podman, "rm", "-f", "-t", "0", engine_name, check=False)


def test_rm_force_running(podman, engine_name):
    try:
        start_detached(podman, engine_name, "sleep", "60")
        pid = int(inspect(podman, engine_name, "{{.State.Pid}}"))
    finally:
        pm(podman, "rm", "-f", "-t", "1", engine_name)
    wait_until(lambda: not os.path.exists(f"/proc/{pid}"), 10, f"pid {pid} to go")
    assert pm(podman, "ps", "-aq").stdout.split() == []


def test_kill_and_rm_while_paused(podman, engine_name):
    try:
        start_detached(podman, engine_name, "sleep", "60")
        pm(podman, "pause", engine_name)
        pid = int(inspect(podman, engine_name, "{{.State.Pid}}"))
    finally:
        pm(podman, "rm", "-f", "-t", "0", engine_name, check=False)
    wait_until(lambda: not os.path.exists(f"/proc/{pid}"), 10, f"pid {pid} to go")
    assert pm(podman, "ps", "-aq").stdout.split() == []


def test_bad_command_error_reaches_podman(podman):
    result = pm(podman, "run", "--rm", *run_flags(podman), IMAGE_REF, "/no/such/binary",
                check=False)
    # runc fails `create` ("executable file not found"), which podman maps to 127.
    assert result.returncode == 127, (result.returncode, result.stderr)
    assert "/no/such/binary" in result.stderr, result.stderr


# Resource limits, stats and update: need pyrunc's cgroup resources (a colleague's work).


def test_memory_limit_and_stats(podman, engine_name, engine_cgroup_parent):
    try:
        full_id = start_detached(podman, engine_name, "sleep", "60",
                                 flags=["--memory", "64m", "--pids-limit", "50"])
        base = f"{engine_cgroup_parent}/libpod-{full_id}"
        assert open(f"/sys/fs/cgroup/memory{base}/memory.limit_in_bytes").read().strip() == str(64 << 20)
        assert open(f"/sys/fs/cgroup/pids{base}/pids.max").read().strip() == "50"
        stats = json.loads(pm(podman, "stats", "--no-stream", "--format", "json", engine_name).stdout)
        assert stats[0]["name"] == engine_name, stats
        assert stats[0]["mem_usage"].split("/")[1].strip().lower() in ("67.11mb", "64mib"), stats
    finally:
        pm(podman, "rm", "-f", "-t", "0", engine_name, check=False)


@pytest.mark.parametrize("variant", ["default", "user-caps", "userns"])
def test_process_matches_runc(podman_engine, variant):
    """What podman's process sees is the same under pyrunc as under runc."""
    import resource

    nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], 4096)
    flags = {
        "default": [],
        "user-caps": ["-u", "1000:1000", "--cap-drop", "ALL", "--cap-add", "NET_RAW",
                      "--security-opt", "no-new-privileges", "--ulimit", "nofile=512:1024",
                      # --ulimit replaces containers.conf default_ulimits: podman's own
                      # nproc default for root is above this sandbox's hard limit.
                      "--ulimit", f"nproc={nproc}:{nproc}",
                      "--oom-score-adj", "300", "-w", "/home/user"],
        "userns": ["--uidmap", "0:200000:65536", "--gidmap", "0:200000:65536"],
    }[variant]
    outputs = {}
    for runtime in ("runc", "pyrunc"):
        result = podman_engine.podman(
            "run", "--rm", "--network", "none", "--cgroup-parent", podman_engine.cgroup_parent,
            "--hostname", "probe", *flags, IMAGE_REF, "sh", "-c", PROBE_SCRIPT,
            runtime=runtime, check=False,
        )
        assert result.returncode == 0, (runtime, result.stdout, result.stderr)
        outputs[runtime] = result.stdout
    differences = probe_differences(outputs)
    assert not differences, "\n".join(differences)


def test_update(podman, engine_name, engine_cgroup_parent):
    try:
        full_id = start_detached(podman, engine_name, "sleep", "60",
                                 flags=["--memory", "64m", "--memory-swap", "128m"])
        base = f"/sys/fs/cgroup/memory{engine_cgroup_parent}/libpod-{full_id}"
        pm(podman, "update", "--memory", "96m", "--memory-swap", "192m", "--cpus", "0.5", engine_name)
        assert open(f"{base}/memory.limit_in_bytes").read().strip() == str(96 << 20)
        cpu = f"/sys/fs/cgroup/cpu{engine_cgroup_parent}/libpod-{full_id}"
        assert open(f"{cpu}/cpu.cfs_quota_us").read().strip() == "50000"
    finally:
        pm(podman, "rm", "-f", "-t", "0", engine_name, check=False)


def test_cgroup_mount_matches_runc(podman_engine):
    outputs = {
        runtime: podman_engine.podman(
            "run", "--rm", "--network", "none", "--cgroup-parent", podman_engine.cgroup_parent,
            IMAGE_REF, "sh", "-c", PROBE_SCRIPT, runtime=runtime,
        ).stdout
        for runtime in ("runc", "pyrunc")
    }
    assert_cgroup_mounts_match_runc(outputs)


def test_exec_process_matches_runc(podman_engine, engine_name):
    """What a `podman exec` process sees is the same under pyrunc as under runc."""
    outputs = {}
    for runtime in ("runc", "pyrunc"):
        name = f"{engine_name}-{runtime}"
        try:
            podman_engine.podman(
                "run", "-d", "--name", name, "--hostname", "probe", "--network", "none",
                "--cgroup-parent", podman_engine.cgroup_parent, IMAGE_REF, "sleep", "60",
                runtime=runtime,
            )
            result = podman_engine.podman("exec", "-u", "1000:1000", "-w", "/home/user", name,
                                          "sh", "-c", PROBE_SCRIPT, check=False)
            assert result.returncode == 0, (runtime, result.stdout, result.stderr)
            outputs[runtime] = result.stdout
        finally:
            podman_engine.podman("rm", "-f", "-t", "0", name, check=False)
    differences = probe_differences(outputs)
    assert not differences, "\n".join(differences)


# The stages run in the runtime's namespaces (createContainer and startContainer run in
# the container's mount namespace, where the output dir does not exist).
STAGES = ("prestart", "createRuntime", "poststart", "poststop")


def hook_states(podman_engine, engine_name, tmp_path) -> dict:
    """(runtime, stage) -> (status, has pid) of the state JSON each hook got on stdin,
    for a `podman run` with hooks of every stage from a --hooks-dir."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    seen = {}
    for runtime in ("runc", "pyrunc"):
        hooks_dir = tmp_path / f"hooks-{runtime}.d"
        hooks_dir.mkdir()
        for stage in STAGES:
            (hooks_dir / f"{stage}.json").write_text(json.dumps({
                "version": "1.0.0",
                "hook": {"path": "/bin/sh",
                         "args": ["sh", "-c", f'cat >> "{out_dir}/{runtime}-{stage}.json"']},
                "when": {"always": True},
                "stages": [stage],
            }))
        name = f"{engine_name}-{runtime}"
        try:
            result = podman_engine.podman(
                "--hooks-dir", str(hooks_dir), "run", "--rm", "--name", name, "--network", "none",
                "--cgroup-parent", podman_engine.cgroup_parent, IMAGE_REF, "echo", "hooked",
                runtime=runtime,
            )
            assert result.stdout == "hooked\n"
        finally:
            podman_engine.podman("rm", "-f", "-t", "0", name, check=False)
        for stage in STAGES:
            path = out_dir / f"{runtime}-{stage}.json"
            wait_until(path.exists, 10, f"{runtime} {stage} hook output")
            text = path.read_text()
            assert text.count('"ociVersion"') == 1, (runtime, stage, text)
            state = json.loads(text)
            assert state["id"] and state["bundle"], (runtime, stage, state)
            seen[(runtime, stage)] = (state["status"], bool(state.get("pid")))
    return seen


def test_oci_hooks_like_runc(podman_engine, engine_name, tmp_path):
    """Hooks of each stage run once, with the state JSON on stdin, and see the status
    runc's hooks see."""
    seen = hook_states(podman_engine, engine_name, tmp_path)
    for stage in ("prestart", "createRuntime", "poststop"):
        assert seen[("pyrunc", stage)] == seen[("runc", stage)], (stage, sorted(seen.items()))
    # runc 1.1 runs poststart hooks at the end of `create` (status "created"); the spec
    # and pyrunc run them once the process was started, so it is running or, this one
    # being short, possibly gone already.
    assert seen[("runc", "poststart")] == ("created", True)
    assert seen[("pyrunc", "poststart")] in (("running", True), ("stopped", False))



@pytest.fixture(scope="module")
def working_criu() -> None:
    """(Before podman's fixtures, so the skip costs nothing.) CRIU must pass `criu check` (it fails on this host's kernel; tests/vm/test_criu_guest.py
    runs this test in the qemu guest, where it works once lo is up)."""
    import shutil
    import subprocess
    if shutil.which("criu") is None:
        pytest.skip("criu is not installed (./setup.sh installs it)")
    if os.environ.get("PYRUNC_IN_VM") == "1":
        # CRIU's kernel probe opens a TCP socket on lo; the guest boots with lo down
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    result = subprocess.run(["criu", "check"], capture_output=True, text=True)
    if result.returncode != 0:
        errors = [line for line in result.stderr.splitlines() if "Error" in line]
        pytest.skip(f"criu cannot work on this kernel ({errors[0] if errors else 'criu check failed'}); "
                    "tests/vm/test_criu_guest.py runs this test in the qemu guest")


def test_container_checkpoint_and_restore(working_criu, podman, engine_name):
    """podman container checkpoint/restore: the runtime's `checkpoint --image-path
    --work-path` and, through conmon, `restore --detach --bundle --pid-file` with conmon's
    stdio pipes. The restored shell's count goes on in the same log: 1, 2, ... without a
    gap or a second 1."""

    def counted() -> list[int]:
        return [int(line) for line in pm(podman, "logs", engine_name).stdout.split()]
    try:
        start_detached(podman, engine_name, "sh", "-c", "i=0; while :; do i=$((i+1)); echo $i; sleep 0.1; done")
        wait_until(lambda: len(counted()) >= 3, 30, "the first counts")
        pm(podman, "container", "checkpoint", engine_name, timeout=120)
        assert inspect(podman, engine_name, "{{.State.Status}}") == "exited"
        before = counted()
        pm(podman, "container", "restore", engine_name, timeout=120)
        assert inspect(podman, engine_name, "{{.State.Status}}") == "running"
        wait_until(lambda: len(counted()) >= len(before) + 3, 30, "counts after the restore")
        after = counted()
        assert after == list(range(1, len(after) + 1)), after
    finally:
        pm(podman, "rm", "-f", "-t", "0", engine_name, check=False)
