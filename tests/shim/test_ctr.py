"""containerd runs containers through pyrunc's own shim v2 (ctr run --runtime
io.containerd.pyrunc.v2): no containerd-shim-runc-v2 and no pyrunc process per call."""
from __future__ import annotations

import os
import time

from shim_support import RUNTIME, new_name


def test_run_exit_code_stdout_stderr_stdin(ctr, engine_name):
    name = new_name(ctr, engine_name)
    result = ctr.run(name, "sh", "-c", "read line; echo got:$line; echo oops >&2; exit 3",
                     flags=["--rm"], input="from stdin\n", check=False)
    assert result.returncode == 3, result
    assert result.stdout == "got:from stdin\n"
    assert "oops" in result.stderr


def test_detached_exec_ps_pause_update_metrics_kill(ctr, engine_name, tmp_path):
    name = new_name(ctr, engine_name)
    log = tmp_path / "out.log"
    ctr.run(name, "sh", "-c", "trap 'echo got-usr1; exit 7' USR1; echo started; while true; do sleep 0.1; done",
            flags=["-d", "--log-uri", f"file://{log}", "--memory-limit", str(64 << 20)])
    try:
        from engine_support import wait_until
        wait_until(lambda: log.exists() and "started" in log.read_text(), 15, "container log")
        assert ctr.task_status(name) == "RUNNING"
        # the container is pyrunc's: same state dir layout, pyrunc sees it
        pyrunc = [ctr.pyrunc, "--root", ctr.runtime_root()]
        from engine_support import run_command
        state = run_command([*pyrunc, "state", name]).stdout
        assert '"status": "running"' in state, state

        result = ctr.ctr("tasks", "exec", "--exec-id", "e1", name, "sh", "-c", "echo in-exec; exit 5", check=False)
        assert result.returncode == 5, result
        assert result.stdout == "in-exec\n"
        result = ctr.ctr("tasks", "exec", "--exec-id", "e2", "--cwd", "/tmp", "--user", "1000",
                         name, "sh", "-c", "pwd; id -u")
        assert result.stdout.splitlines() == ["/tmp", "1000"]
        result = ctr.ctr("tasks", "exec", "--exec-id", "e3", name, "sh", "-c", "cat", input="exec stdin\n")
        assert result.stdout == "exec stdin\n"

        processes = ctr.ctr("tasks", "ps", name).stdout.splitlines()
        pids = [int(line.split()[0]) for line in processes[1:]]
        assert ctr.task_pid(name) in pids

        ctr.ctr("tasks", "pause", name)
        assert ctr.task_status(name) == "PAUSED"
        freezer = f"/sys/fs/cgroup/freezer{ctr.cgroup_parent}/{name}/freezer.state"
        if os.path.exists(freezer):
            assert open(freezer).read().strip() == "FROZEN"
        ctr.ctr("tasks", "resume", name)
        assert ctr.task_status(name) == "RUNNING"

        # ctr 1.6 has no `tasks update`: containerd's Update request, sent to the shim
        update_memory_limit(ctr, name, 96 << 20)
        limit = f"/sys/fs/cgroup/memory{ctr.cgroup_parent}/{name}/memory.limit_in_bytes"
        if os.path.exists(limit):
            assert open(limit).read().strip() == str(96 << 20)
        metrics = ctr.ctr("tasks", "metrics", name).stdout
        assert "memory.usage_in_bytes" in metrics or "memory.usage" in metrics, metrics

        ctr.ctr("tasks", "kill", "--signal", "SIGUSR1", name)
        ctr.wait_stopped(name)
        wait_until(lambda: "got-usr1" in log.read_text(), 10, "the trap's output")
        assert ctr.delete_task(name) == 7
    finally:
        ctr.remove(name)


def update_memory_limit(ctr, name: str, limit: int) -> None:
    import json
    from pyrunc.shim import shim_pb2 as pb
    from shim_support import shim_call
    request = pb.UpdateTaskRequest(id=name)
    request.resources.type_url = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources"
    request.resources.value = json.dumps({"memory": {"limit": limit}}).encode()
    shim_call(ctr.shim_address(name), "Update", request)


def run_in_pty(command: list[str], timeout: float = 30) -> tuple[int, str]:
    """`command` on a new pseudo-terminal (ctr -t insists on one); its exit status and output."""
    import select
    import subprocess
    master, slave = os.openpty()
    try:
        process = subprocess.Popen(command, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    finally:
        os.close(slave)
    output = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if select.select([master], [], [], 0.5)[0]:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the last slave holder is gone
                    break
                if not data:
                    break
                output += data
        return process.wait(timeout=10), output.decode(errors="replace").replace("\r\n", "\n")
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
            process.wait()


def test_tty_run_and_exec(ctr, engine_name):
    from engine_support import CTR
    base = [CTR, "--address", ctr.containerd.socket, "--namespace", ctr.namespace]
    name = new_name(ctr, engine_name)
    status, output = run_in_pty([*base, "run", *ctr.run_args(RUNTIME, name), "--rm", "-t",
                                 "docker.io/library/pyrunc-busybox:latest", name,
                                 "sh", "-c", "tty; stty size; echo done; exit 4"])
    lines = output.splitlines()
    assert status == 4, output
    assert lines[0].startswith("/dev/pts/"), output
    assert lines[-1] == "done", output

    name = new_name(ctr, engine_name, "-x")
    ctr.run(name, "sleep", "60", flags=["-d", "--null-io"])
    try:
        status, output = run_in_pty([*base, "tasks", "exec", "-t", "--exec-id", "t1", name,
                                     "sh", "-c", "tty; echo exec-done"])
        assert status == 0, output
        assert output.splitlines()[0].startswith("/dev/pts/"), output
        assert "exec-done" in output
    finally:
        ctr.remove(name)


def test_kill_all_and_sigkill_137(ctr, engine_name):
    name = new_name(ctr, engine_name)
    ctr.run(name, "sh", "-c", "trap '' TERM; sleep 100 & while true; do sleep 0.1; done", flags=["-d", "--null-io"])
    try:
        ctr.ctr("tasks", "kill", "--signal", "SIGTERM", name)
        time.sleep(0.3)
        assert ctr.task_status(name) == "RUNNING"
        ctr.ctr("tasks", "kill", "--all", "--signal", "SIGKILL", name)
        ctr.wait_stopped(name)
        assert ctr.delete_task(name) == 137
    finally:
        ctr.remove(name)


def test_oom_event(ctr, engine_name, tmp_path):
    name = new_name(ctr, engine_name)
    import subprocess
    from engine_support import CTR, wait_until
    events_log = tmp_path / "events"
    with open(events_log, "wb") as out:
        watcher = subprocess.Popen([CTR, "--address", ctr.containerd.socket, "events"], stdout=out,
                                   stderr=subprocess.STDOUT)
    try:
        time.sleep(0.3)
        result = ctr.run(name, "sh", "-c", "dd if=/dev/zero of=/dev/null bs=64M count=1",
                         flags=["--rm", "--memory-limit", str(16 << 20)], check=False)
        assert result.returncode == 137, result
        wait_until(lambda: "/tasks/oom" in events_log.read_text(), 10, "a /tasks/oom event")
        text = events_log.read_text()
        for topic in ("/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"):
            assert f"{ctr.namespace} {topic}" in text, text
    finally:
        watcher.kill()
        watcher.wait()


def test_containerd_restart_keeps_running_tasks(ctr, engine_name):
    name = new_name(ctr, engine_name)
    ctr.run(name, "sleep", "60", flags=["-d", "--null-io"])
    try:
        pid = ctr.task_pid(name)
        ctr.containerd.stop()
        ctr.containerd.start()  # finds the shim again through bundle/address
        assert ctr.task_status(name) == "RUNNING"
        assert ctr.task_pid(name) == pid
        result = ctr.ctr("tasks", "exec", "--exec-id", "after", name, "echo", "still here")
        assert result.stdout == "still here\n"
        ctr.ctr("tasks", "kill", "--signal", "SIGKILL", name)
        ctr.wait_stopped(name)
        assert ctr.delete_task(name) == 137  # the exit event reached the new containerd
    finally:
        ctr.remove(name)


def test_shim_sigkill_then_task_delete(ctr, engine_name):
    name = new_name(ctr, engine_name)
    ctr.run(name, "sleep", "60", flags=["-d", "--null-io"])
    try:
        pid = ctr.task_pid(name)
        shim_pid = int((ctr.bundle(name) / "shim.pid").read_text())
        os.kill(shim_pid, 9)
        # containerd notices the dead shim and runs `containerd-shim-pyrunc-v2 delete`,
        # which removes the container (its init with it)
        from engine_support import wait_until
        wait_until(lambda: not os.path.exists(f"/proc/{pid}/stat")
                   or open(f"/proc/{pid}/stat").read().split(") ")[1][0] in "ZX", 15, "the init to die")
        ctr.ctr("tasks", "delete", name, check=False)
        assert ctr.task_status(name) == ""
    finally:
        ctr.remove(name)
