"""docker 20.10 (dockerd --add-runtime pyrunc=PATH, through containerd-shim-runc-v2), with
`docker run --runtime pyrunc` and the default runc as the control."""
from __future__ import annotations

import json
import os
import time

import pytest

from engine_support import (
    assert_cgroup_mounts_match_runc,
    CGROUP_MOUNT_LINES,
    DOCKER_DEFAULT_EXEC_ROOT_LENGTH,
    EXEC_OOM_LINES,
    IMAGE_REF,
    PROBE_SCRIPT,
    assert_cgroups_empty,
    probe_differences,
    remove_left_containers,
    started_docker,
    state_dirs,
    wait_until,
)


@pytest.fixture
def docker(docker_engine, runtime, engine_cgroup_parent):
    """The engine, with a per-test check that nothing of the test's containers is left."""
    names: list[str] = []
    docker_engine.test_names = names
    yield docker_engine
    problems = remove_left_containers(docker_engine.docker, "docker")
    left_state = state_dirs(docker_engine.runtime_root())
    if left_state:
        problems.append(f"runtime state dirs left in {docker_engine.runtime_root()}: {left_state}")
    try:
        assert_cgroups_empty(engine_cgroup_parent)
    except AssertionError as error:
        problems.append(str(error))
    assert not problems, "; ".join(problems)


def run_flags(runtime: str) -> list[str]:
    return ["--runtime", runtime, "--network", "none"]


def inspect(docker, name: str, template: str) -> str:
    return docker.docker("inspect", "-f", template, name).stdout.strip()


def start_detached(docker, runtime, name, *command, flags=()):
    """`docker run -d`; the container (created even when its start fails) is removed by
    the caller's `finally`, so the call belongs inside that `try`."""
    docker.docker("run", "-d", "--name", name, *run_flags(runtime), *flags, IMAGE_REF, *command)
    return inspect(docker, name, "{{.Id}}")


def test_one_shot_exit_code_and_output(docker, runtime):
    result = docker.docker("run", "--rm", *run_flags(runtime), IMAGE_REF,
                           "sh", "-c", "echo hi; echo oops >&2; exit 3", check=False)
    assert result.returncode == 3, result
    assert result.stdout == "hi\n"
    assert result.stderr == "oops\n"


def test_env_cwd_user_hostname_readonly(docker, runtime):
    result = docker.docker(
        "run", "--rm", *run_flags(runtime),
        "-e", "GREETING=hello there", "-w", "/tmp", "-u", "1000:1000",
        "--hostname", "engine-test", "--read-only", IMAGE_REF,
        "sh", "-c",
        'echo "$GREETING"; pwd; id -u; id -g; hostname;'
        " touch /probe 2>/dev/null && echo writable || echo readonly",
    )
    assert result.stdout.splitlines() == ["hello there", "/tmp", "1000", "1000", "engine-test", "readonly"]


def test_tty(docker, runtime, engine_name):
    result = docker.docker("run", "--rm", "-t", *run_flags(runtime), IMAGE_REF,
                           "sh", "-c", "tty; test -t 0 && test -t 1 && echo both-tty")
    # A tty turns \n into \r\n on output.
    assert result.stdout.replace("\r\n", "\n").splitlines() == ["/dev/pts/0", "both-tty"]
    try:
        start_detached(docker, runtime, engine_name, "sleep", "60")
        result = docker.docker("exec", "-t", engine_name, "sh", "-c", "test -t 1 && echo exec-tty")
        assert result.stdout.replace("\r\n", "\n") == "exec-tty\n"
    finally:
        docker.docker("rm", "-f", engine_name, check=False)


def test_stdin(docker, runtime):
    result = docker.docker("run", "--rm", "-i", *run_flags(runtime), IMAGE_REF,
                           "sh", "-c", "read line; echo got:$line", input="from stdin\n")
    assert result.stdout == "got:from stdin\n"


def test_detached_logs_exec_top_pause_kill(docker, runtime, engine_name, engine_cgroup_parent):
    try:
        full_id = start_detached(
            docker, runtime, engine_name, "sh", "-c",
            "trap 'echo got-usr1; exit 7' USR1; echo started; while true; do sleep 0.1; done",
        )
        wait_until(lambda: "started" in docker.docker("logs", engine_name).stdout, 15, "logs")
        assert inspect(docker, engine_name, "{{.State.Status}}") == "running"

        result = docker.docker("exec", engine_name, "sh", "-c", "echo in-exec; exit 5", check=False)
        assert result.returncode == 5, result
        assert result.stdout == "in-exec\n"
        result = docker.docker("exec", "-e", "EXECVAR=x1", "-w", "/tmp", "-u", "1000",
                               engine_name, "sh", "-c", "echo $EXECVAR; pwd; id -u")
        assert result.stdout.splitlines() == ["x1", "/tmp", "1000"]
        result = docker.docker("exec", "-i", engine_name, "cat", input="exec stdin\n")
        assert result.stdout == "exec stdin\n"

        top = docker.docker("top", engine_name).stdout.splitlines()
        assert "PID" in top[0].split()
        init_pid = inspect(docker, engine_name, "{{.State.Pid}}")
        assert any(line.split()[1] == init_pid for line in top[1:]), top

        docker.docker("pause", engine_name)
        assert inspect(docker, engine_name, "{{.State.Status}}") == "paused"
        freezer = f"/sys/fs/cgroup/freezer{engine_cgroup_parent}/{full_id}/freezer.state"
        assert open(freezer).read().strip() == "FROZEN"
        docker.docker("unpause", engine_name)
        assert inspect(docker, engine_name, "{{.State.Status}}") == "running"
        assert open(freezer).read().strip() == "THAWED"

        docker.docker("kill", "--signal", "USR1", engine_name)
        assert docker.docker("wait", engine_name).stdout.strip() == "7"
        assert "got-usr1" in docker.docker("logs", engine_name).stdout
    finally:
        docker.docker("rm", "-f", engine_name, check=False)


def test_stop_timeout_137_restart_and_start_again(docker, runtime, engine_name):
    try:
        start_detached(docker, runtime, engine_name, "sh", "-c",
                       "trap '' TERM; echo up; while true; do sleep 0.1; done")
        started = time.monotonic()
        docker.docker("stop", "-t", "1", engine_name)
        assert time.monotonic() - started >= 1
        assert inspect(docker, engine_name, "{{.State.ExitCode}}") == "137"

        # start again: the runtime gets `create` with the same id and paths.
        docker.docker("start", engine_name)
        assert inspect(docker, engine_name, "{{.State.Status}}") == "running"
        first_pid = inspect(docker, engine_name, "{{.State.Pid}}")
        docker.docker("restart", "-t", "1", engine_name)
        assert inspect(docker, engine_name, "{{.State.Status}}") == "running"
        assert inspect(docker, engine_name, "{{.State.Pid}}") != first_pid
        assert docker.docker("logs", engine_name).stdout.count("up") == 3
    finally:
        docker.docker("rm", "-f", engine_name, check=False)


def test_rm_force_running(docker, runtime, engine_name):
    try:
        full_id = start_detached(docker, runtime, engine_name, "sleep", "60")
        pid = int(inspect(docker, engine_name, "{{.State.Pid}}"))
        # The residue checks look in the right place: the state dir is there while it runs.
        assert full_id in state_dirs(docker.runtime_root())
    finally:
        docker.docker("rm", "-f", engine_name)
    wait_until(lambda: not os.path.exists(f"/proc/{pid}"), 10, f"pid {pid} to go")
    assert docker.docker("ps", "-aq").stdout.split() == []


def test_kill_and_rm_while_paused(docker, runtime, engine_name):
    try:
        start_detached(docker, runtime, engine_name, "sleep", "60")
        docker.docker("pause", engine_name)
        docker.docker("kill", engine_name)  # SIGKILL; docker thaws a paused container
        assert docker.docker("wait", engine_name).stdout.strip() == "137"
        docker.docker("start", engine_name)
        docker.docker("pause", engine_name)
        pid = int(inspect(docker, engine_name, "{{.State.Pid}}"))
    finally:
        docker.docker("rm", "-f", engine_name, check=False)
    wait_until(lambda: not os.path.exists(f"/proc/{pid}"), 10, f"pid {pid} to go")


def test_restart_policy_recreates_same_id(docker, runtime, engine_name):
    # docker's restart manager: create/start/delete again and again with the same id.
    try:
        start_detached(docker, runtime, engine_name, "sh", "-c", "echo attempt; exit 1",
                       flags=["--restart", "on-failure:2"])
        wait_until(
            lambda: inspect(docker, engine_name, "{{.RestartCount}} {{.State.Status}}") == "2 exited",
            30, "two restarts",
        )
        assert inspect(docker, engine_name, "{{.State.ExitCode}}") == "1"
        assert docker.docker("logs", engine_name).stdout.count("attempt") == 3
    finally:
        docker.docker("rm", "-f", engine_name, check=False)


def test_detached_exec(docker, runtime, engine_name):
    try:
        start_detached(docker, runtime, engine_name, "sleep", "60")
        docker.docker("exec", "-d", engine_name, "sh", "-c", "echo done > /tmp/marker")
        wait_until(
            lambda: docker.docker("exec", engine_name, "cat", "/tmp/marker", check=False).stdout == "done\n",
            10, "the detached exec's file",
        )
    finally:
        docker.docker("rm", "-f", engine_name, check=False)


def test_join_namespaces_of_another_container(docker, runtime, engine_name):
    # Joining namespaces by path (/proc/<pid>/ns/...), as CRI app containers join their pod.
    try:
        start_detached(docker, runtime, engine_name, "sleep", "60",
                       flags=["--hostname", "podhost", "--ipc", "shareable"])
        result = docker.docker(
            "run", "--rm", "--runtime", runtime, "--network", f"container:{engine_name}",
            "--pid", f"container:{engine_name}", "--ipc", f"container:{engine_name}",
            IMAGE_REF, "sh", "-c", "ps -o pid,args; hostname",
        )
        lines = result.stdout.splitlines()
        assert any(l.split()[:3] == ["1", "sleep", "60"] for l in lines), lines
        assert lines[-1] == "podhost"
    finally:
        docker.docker("rm", "-f", engine_name, check=False)


def test_concurrent_containers(docker, runtime, engine_name):
    # Several containers created, exec'd into and removed at once: the runtime is called
    # concurrently on one --root.
    from concurrent.futures import ThreadPoolExecutor

    names = [f"{engine_name}-{i}" for i in range(4)]

    def lifecycle(name: str) -> str:
        docker.docker("run", "-d", "--name", name, *run_flags(runtime), IMAGE_REF, "sleep", "60")
        output = docker.docker("exec", name, "sh", "-c", "echo $HOSTNAME-ok").stdout.strip()
        docker.docker("rm", "-f", name)
        return output

    try:
        with ThreadPoolExecutor(len(names)) as pool:
            outputs = list(pool.map(lifecycle, names))
        assert all(o.endswith("-ok") for o in outputs), outputs
    finally:
        for name in names:
            docker.docker("rm", "-f", name, check=False)


def test_bad_command_error_reaches_docker(docker, runtime):
    # The runtime's error (through --log, last "level":"error" line) must be shown.
    result = docker.docker("run", "--rm", *run_flags(runtime), IMAGE_REF, "/no/such/binary",
                           check=False)
    assert result.returncode == 127, result
    assert "/no/such/binary" in result.stderr, result.stderr
    assert "no such file or directory" in result.stderr.lower(), result.stderr


# Resource limits, stats and update: need pyrunc's cgroup resources (a colleague's work).


def test_memory_limit_visible_in_cgroup(docker, runtime, engine_name, engine_cgroup_parent):
    try:
        full_id = start_detached(docker, runtime, engine_name, "sleep", "60",
                                 flags=["--memory", "64m", "--pids-limit", "50"])
        base = f"{engine_cgroup_parent}/{full_id}"
        assert open(f"/sys/fs/cgroup/memory{base}/memory.limit_in_bytes").read().strip() == str(64 << 20)
        assert open(f"/sys/fs/cgroup/pids{base}/pids.max").read().strip() == "50"
        pid = inspect(docker, engine_name, "{{.State.Pid}}")
        assert pid in open(f"/sys/fs/cgroup/memory{base}/cgroup.procs").read().split()
    finally:
        docker.docker("rm", "-f", engine_name, check=False)


def test_update_and_stats(docker, runtime, engine_name, engine_cgroup_parent):
    try:
        full_id = start_detached(docker, runtime, engine_name, "sleep", "60",
                                 flags=["--memory", "64m", "--memory-swap", "128m"])
        base = f"/sys/fs/cgroup/memory{engine_cgroup_parent}/{full_id}"
        docker.docker("update", "--memory", "96m", "--memory-swap", "192m", "--cpus", "0.5",
                      engine_name)
        assert open(f"{base}/memory.limit_in_bytes").read().strip() == str(96 << 20)
        cpu = f"/sys/fs/cgroup/cpu{engine_cgroup_parent}/{full_id}"
        assert open(f"{cpu}/cpu.cfs_quota_us").read().strip() == "50000"
        # Lowering works too (memory before memsw, in the right order).
        docker.docker("update", "--memory", "32m", "--memory-swap", "64m", engine_name)
        assert open(f"{base}/memory.limit_in_bytes").read().strip() == str(32 << 20)

        stats = json.loads(docker.docker("stats", "--no-stream", "--format", "{{json .}}",
                                         engine_name).stdout)
        assert stats["Name"] == engine_name
        assert stats["MemUsage"].split("/")[1].strip() == "32MiB", stats
        assert stats["PIDs"] == "1", stats
    finally:
        docker.docker("rm", "-f", engine_name, check=False)


@pytest.mark.parametrize(
    # No --privileged: this sandbox's bounding set lacks CAP_SYS_MODULE, and both runtimes
    # then fail to set the capabilities docker asks for.
    "variant", ["default", "user-caps", "init", "mounts-sysctl", "host-namespaces",
                "seccomp-unconfined"],
)
def test_process_matches_runc(docker_engine, variant, tmp_path):
    """What docker's process sees (ids, caps, seccomp, rlimits, sysctls, fds, mounts,
    env, ...) is the same under pyrunc as under runc."""
    (tmp_path / "shared.txt").write_text("from the host\n")
    flags = {
        "default": [],
        "user-caps": ["-u", "1000:1000", "--group-add", "100", "--cap-drop", "ALL",
                      "--cap-add", "NET_RAW", "--security-opt", "no-new-privileges",
                      "--ulimit", "nofile=512:1024", "--oom-score-adj", "300", "-w", "/home/user"],
        "init": ["--init"],
        "mounts-sysctl": ["--read-only", "--tmpfs", "/scratch:size=1m,noexec",
                          "-v", f"{tmp_path}:/data:ro", "--shm-size", "8m",
                          "--sysctl", "net.ipv4.ip_unprivileged_port_start=80",
                          "--sysctl", "kernel.shm_rmid_forced=1", "--ipc", "private"],
        "host-namespaces": ["--pid", "host", "--ipc", "host", "--uts", "host"],
        "seccomp-unconfined": ["--security-opt", "seccomp=unconfined", "--device",
                               "/dev/zero:/dev/myzero:r", "--cap-add", "SYS_ADMIN"],
    }[variant]
    outputs = {}
    for runtime in ("runc", "pyrunc"):
        result = docker_engine.docker(
            "run", "--rm", *run_flags(runtime),
            *([] if variant == "host-namespaces" else ["--hostname", "probe"]), *flags, IMAGE_REF,
            "sh", "-c", PROBE_SCRIPT, check=False,
        )
        assert result.returncode == 0, (runtime, result.stdout, result.stderr)
        outputs[runtime] = result.stdout
    differences = probe_differences(outputs)
    assert not differences, "\n".join(differences)


@pytest.mark.parametrize("runtime_name", ["runc", "pyrunc"])
def test_debian_default_exec_root(
    runtime_name, private_run_dirs, engine_rootfs_tar, engine_cgroup_parent
):
    """dockerd's default exec root /var/run/docker makes the runtime's state dir
    /var/run/docker/runtime-runc/moby/<64 hex>/ (98 characters): a socket bound by path
    in it does not fit in sun_path (108 bytes; pyrunc's start.sock did not, before
    6a6fdd6). Same length here, inside our private /run/docker."""
    exec_root = "/run/docker/" + "d" * (DOCKER_DEFAULT_EXEC_ROOT_LENGTH - len("/run/docker/"))
    assert len(exec_root) == DOCKER_DEFAULT_EXEC_ROOT_LENGTH
    with started_docker(engine_rootfs_tar, engine_cgroup_parent, exec_root) as docker:
        result = docker.docker("run", "--rm", *run_flags(runtime_name), IMAGE_REF,
                               "sh", "-c", "echo hi; exit 3", check=False)
        assert (result.returncode, result.stdout) == (3, "hi\n"), result.stderr


def test_cgroup_mount_matches_runc(docker_engine):
    outputs = {
        runtime: docker_engine.docker("run", "--rm", *run_flags(runtime), IMAGE_REF,
                                      "sh", "-c", PROBE_SCRIPT).stdout
        for runtime in ("runc", "pyrunc")
    }
    assert_cgroup_mounts_match_runc(outputs)


def exec_probe_outputs(docker_engine, engine_name, run_extra, exec_extra) -> dict[str, str]:
    outputs = {}
    for runtime in ("runc", "pyrunc"):
        name = f"{engine_name}-{runtime}"
        try:
            docker_engine.docker("run", "-d", "--name", name, "--hostname", "probe",
                                 *run_flags(runtime), *run_extra, IMAGE_REF, "sleep", "60")
            result = docker_engine.docker("exec", *exec_extra, name, "sh", "-c", PROBE_SCRIPT,
                                          check=False)
            assert result.returncode == 0, (runtime, result.stdout, result.stderr)
            outputs[runtime] = result.stdout
        finally:
            docker_engine.docker("rm", "-f", name, check=False)
    return outputs


def test_exec_oom_score_adj_matches_runc(docker_engine, engine_name):
    outputs = exec_probe_outputs(docker_engine, engine_name, [], [])
    differences = probe_differences(outputs, only=EXEC_OOM_LINES)
    assert not differences, "\n".join(differences)


@pytest.mark.parametrize("variant", ["default", "user"])
def test_exec_process_matches_runc(docker_engine, engine_name, variant):
    """What a `docker exec` process sees is the same under pyrunc as under runc (but for
    oom_score_adj: test_exec_oom_score_adj_matches_runc)."""
    run_extra = {"default": [], "user": ["--cap-drop", "ALL", "--cap-add", "CHOWN",
                                          "--ulimit", "nofile=256:512"]}[variant]
    exec_extra = {"default": [], "user": ["-u", "1000:1000", "-w", "/home/user", "-e", "X=1"]}[variant]
    outputs = exec_probe_outputs(docker_engine, engine_name, run_extra, exec_extra)
    differences = probe_differences(outputs, ignore=CGROUP_MOUNT_LINES + EXEC_OOM_LINES)
    assert not differences, "\n".join(differences)


def test_oom_kill_reported(docker, runtime, engine_name):
    # The shim learns of OOM kills from the memory cgroup of linux.cgroupsPath.
    try:
        docker.docker("run", "--name", engine_name, *run_flags(runtime), "--memory", "16m",
                      "--memory-swap", "16m", IMAGE_REF, "sh", "-c", "tail /dev/zero",
                      check=False, timeout=60)
        assert inspect(docker, engine_name, "{{.State.ExitCode}} {{.State.OOMKilled}}") == "137 true"
    finally:
        docker.docker("rm", "-f", engine_name, check=False)


@pytest.mark.parametrize("case", ["cwd-is-a-file", "file-over-dir", "exec-missing"])
def test_failures_are_reported_like_runc(docker_engine, engine_name, tmp_path, case):
    """A failing create or exec: the same exit status as with runc, an error naming what
    failed (the shim shows the runtime's last "level":"error" --log line), and nothing
    left behind (checked by the fixtures)."""
    (tmp_path / "a-file").write_text("x")
    results = {}
    for runtime in ("runc", "pyrunc"):
        name = f"{engine_name}-{runtime}"
        try:
            if case == "exec-missing":
                docker_engine.docker("run", "-d", "--name", name, *run_flags(runtime), IMAGE_REF,
                                     "sleep", "60")
                result = docker_engine.docker("exec", name, "/no/such/binary", check=False)
            else:
                flags = {"cwd-is-a-file": ["-w", "/etc/passwd"],
                         "file-over-dir": ["-v", f"{tmp_path}/a-file:/etc"]}[case]
                result = docker_engine.docker("run", "--name", name, *run_flags(runtime), *flags,
                                              IMAGE_REF, "true", check=False)
            results[runtime] = result
        finally:
            docker_engine.docker("rm", "-f", name, check=False)
    expected_words = {"cwd-is-a-file": "not a directory", "file-over-dir": "not a directory",
                      "exec-missing": "/no/such/binary"}[case]
    for runtime, result in results.items():
        assert expected_words in result.stdout + result.stderr, (runtime, result.stderr)
        assert "unable to retrieve OCI runtime error" not in result.stderr, (runtime, result.stderr)
    assert results["pyrunc"].returncode == results["runc"].returncode, (
        results["runc"].stderr, results["pyrunc"].stderr)
    assert docker_engine.docker("ps", "-aq").stdout.split() == []
