"""Container lifecycle through the installed CLI, against the real kernel: create/start/
state/list/kill/delete/run, the exit-code and stdio contract of `run`, id reuse and
concurrency on one id, and the global flags engines pass (--root, --log, --log-format,
--version, `--flag=value`). Expected behaviour is runc 1.1.5's (see
shared/contract/ENGINES.md); the messages were checked against /usr/sbin/runc by hand."""
from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import pytest

from support import run_with_files

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")

RUNC_STATE_KEYS = ["ociVersion", "id", "pid", "status", "bundle", "rootfs", "created", "owner"]
# RFC 3339 as Go's RFC3339Nano prints it: UTC "Z", up to 9 fraction digits (Go trims
# trailing zeros, so fewer digits are legal).
CREATED_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")
LOG_TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")

# A container that runs until the test creates `go` in the bind-mounted /signal dir, then
# exits 0 on its own (a normal exit, not a kill).
WAIT_FOR_GO = ["sh", "-c", "while [ ! -e /signal/go ]; do sleep 0.05; done; exit 0"]
SLEEP = ["sleep", "60"]


def with_signal_dir(directory: Path) -> Callable[[dict], None]:
    """An edit adding a read-write bind of `directory` at /signal (the rootfs is read-only)."""

    def edit(config: dict) -> None:
        config["mounts"].append(
            {"destination": "/signal", "type": "bind", "source": str(directory),
             "options": ["rbind", "rw"]}
        )

    return edit


def state_of(pyrunc_cmd, container_id: str) -> dict:
    result = pyrunc_cmd("state", container_id)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def wait_for_status(pyrunc_cmd, container_id: str, status: str, timeout: float = 10) -> dict:
    """Poll `state` until `status`; a container that does not exist YET (a `run` started in
    the background) is waited for too."""
    deadline = time.monotonic() + timeout
    while True:
        result = pyrunc_cmd("state", container_id)
        if result.returncode != 0 and time.monotonic() < deadline:
            assert "container does not exist" in result.stderr, result.stderr
            time.sleep(0.05)
            continue
        state = state_of(pyrunc_cmd, container_id)
        if state["status"] == status or time.monotonic() > deadline:
            assert state["status"] == status, state
            return state
        time.sleep(0.05)


def wait_for_file(path: Path, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.02)
    # the writer may not have finished its line yet
    time.sleep(0.05)
    return path.read_text()


def one_error_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            # a zombie is dead for our purposes
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


# ---------------------------------------------------------------------------------------
# create / start / state / list


def test_create_start_exit_walks_through_created_running_stopped(
    pyrunc_cmd, bundle, container_id, tmp_path, state_root
):
    signal_dir = tmp_path / "signal"
    signal_dir.mkdir()
    b = bundle(with_signal_dir(signal_dir), args=WAIT_FOR_GO)
    pid_file = tmp_path / "init.pid"
    before = datetime.now(timezone.utc)

    created = pyrunc_cmd("create", "--bundle", b, "--pid-file", pid_file, container_id)
    assert (created.returncode, created.stdout, created.stderr) == (0, "", "")

    state = state_of(pyrunc_cmd, container_id)
    assert list(state) == RUNC_STATE_KEYS  # no annotations in this config: none shown
    assert state["status"] == "created"
    assert state["id"] == container_id
    assert state["bundle"] == str(b)
    assert state["rootfs"] == bundle.template()["root"]["path"]
    assert state["owner"] == ""
    assert re.match(r"^\d+\.\d+\.\d+", state["ociVersion"]), state
    init_pid = state["pid"]
    assert isinstance(init_pid, int) and init_pid > 0
    # the pid file is what the shim parses with strconv.Atoi: digits only, no newline
    assert pid_file.read_bytes() == str(init_pid).encode()
    assert Path(f"/proc/{init_pid}/comm").read_text() == "pyrunc-init\n"
    assert CREATED_RE.match(state["created"]), state["created"]
    created_at = datetime.strptime(state["created"][:19], "%Y-%m-%dT%H:%M:%S")
    created_at = created_at.replace(tzinfo=timezone.utc)
    assert abs((created_at - before).total_seconds()) < 30

    started = pyrunc_cmd("start", container_id)
    assert (started.returncode, started.stdout, started.stderr) == (0, "", "")
    state = state_of(pyrunc_cmd, container_id)
    assert (state["status"], state["pid"]) == ("running", init_pid)
    # the user process replaced the init in place: same pid, now the shell
    deadline = time.monotonic() + 5
    while Path(f"/proc/{init_pid}/comm").read_text() != "sh\n":
        assert time.monotonic() < deadline
        time.sleep(0.02)

    (signal_dir / "go").touch()
    state = wait_for_status(pyrunc_cmd, container_id, "stopped")
    assert state["pid"] == 0
    assert list(state) == RUNC_STATE_KEYS

    deleted = pyrunc_cmd("delete", container_id)
    assert (deleted.returncode, deleted.stderr) == (0, "")
    assert not (state_root / container_id).exists()


def test_state_shows_annotations_when_present(pyrunc_cmd, bundle, container_id):
    b = bundle(lambda c: c.update(annotations={"org.example.key": "value"}))
    pyrunc_cmd("create", "-b", b, container_id, check=True)
    state = state_of(pyrunc_cmd, container_id)
    # runc's order (checked with /usr/sbin/runc): annotations come before owner
    assert list(state) == RUNC_STATE_KEYS[:-1] + ["annotations", "owner"]
    assert state["annotations"] == {"org.example.key": "value"}


def test_state_output_is_two_space_indented_json(pyrunc_cmd, bundle, container_id):
    pyrunc_cmd("create", "-b", bundle(), container_id, check=True)
    out = pyrunc_cmd("state", container_id).stdout
    assert out.startswith('{\n  "ociVersion": ')
    assert f'\n  "id": "{container_id}",\n' in out


def test_list_table_json_and_quiet(pyrunc_cmd, bundle, container_id, state_root):
    b = bundle(args=SLEEP)
    other_id = container_id + "-b"
    pyrunc_cmd("create", "-b", b, container_id, check=True)
    pyrunc_cmd("run", "-d", "-b", b, other_id, check=True)

    quiet = pyrunc_cmd("list", "-q")
    assert quiet.returncode == 0, quiet.stderr
    assert sorted(quiet.stdout.splitlines()) == sorted([container_id, other_id])

    table = pyrunc_cmd("list")
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert set(rows) == {container_id, other_id}
    assert rows[container_id][2] == "created"
    assert rows[other_id][2] == "running"
    assert rows[container_id][3] == str(b)
    assert rows[container_id][5] == "root"
    assert int(rows[container_id][1]) == state_of(pyrunc_cmd, container_id)["pid"]

    listed = json.loads(pyrunc_cmd("list", "-f", "json").stdout)
    assert isinstance(listed, list)
    by_id = {entry["id"]: entry for entry in listed}
    assert set(by_id) == {container_id, other_id}
    assert list(by_id[other_id]) == RUNC_STATE_KEYS
    assert by_id[other_id]["status"] == "running"
    assert by_id[other_id]["owner"] == "root"  # list shows the user name, state shows ""
    assert by_id[other_id]["pid"] == state_of(pyrunc_cmd, other_id)["pid"]


def test_list_of_an_empty_root(pyrunc_cmd):
    quiet = pyrunc_cmd("list", "-q")
    assert (quiet.returncode, quiet.stdout) == (0, "")
    as_json = pyrunc_cmd("list", "--format", "json")
    assert as_json.returncode == 0
    assert json.loads(as_json.stdout) in ([], None)  # runc prints `null` for none


def test_start_twice_and_start_after_exit_fail(pyrunc_cmd, bundle, container_id, tmp_path):
    signal_dir = tmp_path / "signal"
    signal_dir.mkdir()
    b = bundle(with_signal_dir(signal_dir), args=WAIT_FOR_GO)
    pyrunc_cmd("create", "-b", b, container_id, check=True)
    pyrunc_cmd("start", container_id, check=True)

    again = pyrunc_cmd("start", container_id)
    assert again.returncode == 1
    assert "cannot start an already running container" in one_error_line(again.stderr)
    assert state_of(pyrunc_cmd, container_id)["status"] == "running"

    (signal_dir / "go").touch()
    wait_for_status(pyrunc_cmd, container_id, "stopped")
    stopped = pyrunc_cmd("start", container_id)
    assert stopped.returncode == 1
    assert "cannot start a container that has stopped" in one_error_line(stopped.stderr)


def test_start_of_missing_container(pyrunc_cmd, container_id):
    result = pyrunc_cmd("start", container_id)
    assert result.returncode == 1
    assert "container does not exist" in one_error_line(result.stderr)


# ---------------------------------------------------------------------------------------
# kill


TRAP_SIGNALS = r"""
for s in HUP USR1 USR2 TERM; do trap "echo $s >> /signal/got" $s; done
echo ready > /signal/ready
while :; do sleep 0.05; done
"""


def test_kill_accepts_numbers_names_and_sig_names(pyrunc_cmd, bundle, container_id, tmp_path):
    signal_dir = tmp_path / "signal"
    signal_dir.mkdir()
    b = bundle(with_signal_dir(signal_dir), args=["sh", "-c", TRAP_SIGNALS])
    pyrunc_cmd("run", "-d", "-b", b, container_id, check=True)
    wait_for_file(signal_dir / "ready")
    got = signal_dir / "got"
    expected = []
    # (what the caller writes, the signal the container must see)
    for word, name in [("15", "TERM"), ("TERM", "TERM"), ("SIGTERM", "TERM"),
                       ("1", "HUP"), ("USR1", "USR1"), ("SIGUSR2", "USR2")]:
        result = pyrunc_cmd("kill", container_id, word)
        assert (result.returncode, result.stderr) == (0, ""), word
        expected.append(name)
        deadline = time.monotonic() + 5
        while not got.exists() or got.read_text().split() != expected:
            assert time.monotonic() < deadline, (word, got.read_text() if got.exists() else None)
            time.sleep(0.02)
    # no signal argument: SIGTERM, like runc
    result = pyrunc_cmd("kill", container_id)
    assert result.returncode == 0, result.stderr
    expected.append("TERM")
    deadline = time.monotonic() + 5
    while got.read_text().split() != expected:
        assert time.monotonic() < deadline, got.read_text()
        time.sleep(0.02)
    assert state_of(pyrunc_cmd, container_id)["status"] == "running"


@pytest.mark.parametrize("word", ["9", "KILL", "SIGKILL"])
def test_kill_with_sigkill_stops_the_container(pyrunc_cmd, bundle, container_id, word):
    pyrunc_cmd("run", "-d", "-b", bundle(args=SLEEP), container_id, check=True)
    pid = state_of(pyrunc_cmd, container_id)["pid"]
    result = pyrunc_cmd("kill", container_id, word)
    assert (result.returncode, result.stderr) == (0, "")
    state = wait_for_status(pyrunc_cmd, container_id, "stopped")
    assert state["pid"] == 0
    assert not pid_alive(pid)


def test_kill_of_stopped_missing_and_bad_signal(pyrunc_cmd, bundle, container_id):
    pyrunc_cmd("run", "-d", "-b", bundle(args=SLEEP), container_id, check=True)

    bad = pyrunc_cmd("kill", container_id, "FOO")
    assert bad.returncode == 1
    line = one_error_line(bad.stderr)
    assert "unknown signal" in line and "FOO" in line, line
    for word in ("SIGFOO", "-1", "65", "9x"):
        result = pyrunc_cmd("kill", container_id, word)
        assert result.returncode == 1, word
        one_error_line(result.stderr)
    assert state_of(pyrunc_cmd, container_id)["status"] == "running"

    pyrunc_cmd("kill", container_id, "KILL", check=True)
    wait_for_status(pyrunc_cmd, container_id, "stopped")

    stopped = pyrunc_cmd("kill", container_id, "9")
    assert stopped.returncode == 1
    assert "container not running" in one_error_line(stopped.stderr)

    # what containerd runs after every init exit: must succeed on a stopped container
    kill_all = pyrunc_cmd("kill", "--all", container_id, "9")
    assert (kill_all.returncode, kill_all.stderr) == (0, "")
    kill_all = pyrunc_cmd("kill", "-a", container_id, "SIGKILL")
    assert (kill_all.returncode, kill_all.stderr) == (0, "")

    missing = pyrunc_cmd("kill", container_id + "-missing", "9")
    assert missing.returncode == 1
    assert "container does not exist" in one_error_line(missing.stderr)


def test_kill_all_reaches_every_process(pyrunc_cmd, bundle, container_id, tmp_path):
    signal_dir = tmp_path / "signal"
    signal_dir.mkdir()
    # the init ignores TERM; a child records it. `kill --all` must reach the child too.
    script = (
        "sh -c 'trap \"echo child >> /signal/got; exit 0\" TERM; echo ready > /signal/ready;"
        " while :; do sleep 0.05; done' & "
        "trap '' TERM; while :; do sleep 0.05; done"
    )
    b = bundle(with_signal_dir(signal_dir), args=["sh", "-c", script])
    pyrunc_cmd("run", "-d", "-b", b, container_id, check=True)
    wait_for_file(signal_dir / "ready")
    result = pyrunc_cmd("kill", "--all", container_id, "TERM")
    assert (result.returncode, result.stderr) == (0, "")
    assert wait_for_file(signal_dir / "got").split() == ["child"]
    assert state_of(pyrunc_cmd, container_id)["status"] == "running"


# ---------------------------------------------------------------------------------------
# delete


def test_delete_of_running_container_needs_force(
    pyrunc_cmd, bundle, container_id, state_root, assert_no_residue
):
    pyrunc_cmd("run", "-d", "-b", bundle(args=SLEEP), container_id, check=True)
    pid = state_of(pyrunc_cmd, container_id)["pid"]

    refused = pyrunc_cmd("delete", container_id)
    assert refused.returncode == 1
    line = one_error_line(refused.stderr)
    assert "running" in line and "not stopped" in line, line  # runc names the status
    assert state_of(pyrunc_cmd, container_id)["status"] == "running"
    assert pid_alive(pid)

    forced = pyrunc_cmd("delete", "-f", container_id)
    assert (forced.returncode, forced.stdout, forced.stderr) == (0, "", "")
    assert not pid_alive(pid)
    assert not (state_root / container_id).exists()
    missing = pyrunc_cmd("state", container_id)
    assert missing.returncode == 1
    assert "container does not exist" in missing.stderr
    assert_no_residue(state_root, [container_id], grace=5)


def test_delete_of_created_container_removes_it(
    pyrunc_cmd, bundle, container_id, state_root, assert_no_residue
):
    pyrunc_cmd("create", "-b", bundle(args=SLEEP), container_id, check=True)
    pid = state_of(pyrunc_cmd, container_id)["pid"]
    assert pid_alive(pid)
    # runc deletes a created (never started) container without --force
    result = pyrunc_cmd("delete", container_id)
    assert (result.returncode, result.stderr) == (0, "")
    deadline = time.monotonic() + 5
    while pid_alive(pid):
        assert time.monotonic() < deadline, "the waiting init survived delete"
        time.sleep(0.02)
    assert not (state_root / container_id).exists()
    assert_no_residue(state_root, [container_id], grace=5)


@pytest.mark.parametrize("how", [("kill", "KILL"), ("delete", "--force")])
def test_created_container_can_be_killed_or_force_deleted(
    pyrunc_cmd, bundle, container_id, state_root, assert_no_residue, how
):
    pyrunc_cmd("create", "-b", bundle(args=SLEEP), container_id, check=True)
    pid = state_of(pyrunc_cmd, container_id)["pid"]
    if how[0] == "kill":
        result = pyrunc_cmd("kill", container_id, how[1])
        assert (result.returncode, result.stderr) == (0, "")
        state = wait_for_status(pyrunc_cmd, container_id, "stopped")
        assert state["pid"] == 0
        pyrunc_cmd("delete", container_id, check=True)
    else:
        result = pyrunc_cmd("delete", how[1], container_id)
        assert (result.returncode, result.stderr) == (0, "")
    assert not pid_alive(pid)
    assert_no_residue(state_root, [container_id], grace=5)


def test_delete_of_missing_container(pyrunc_cmd, container_id):
    forced = pyrunc_cmd("delete", "--force", container_id)
    assert (forced.returncode, forced.stdout, forced.stderr) == (0, "", "")
    plain = pyrunc_cmd("delete", container_id)
    assert plain.returncode == 1
    assert "container does not exist" in one_error_line(plain.stderr)
    state = pyrunc_cmd("state", container_id)
    assert state.returncode == 1
    assert "container does not exist" in one_error_line(state.stderr)


def test_id_is_reusable_after_delete(pyrunc_cmd, bundle, container_id, tmp_path):
    b = bundle(args=SLEEP)
    pid_file = tmp_path / "init.pid"
    for _ in range(2):
        pyrunc_cmd("create", "--bundle", b, "--pid-file", pid_file, container_id, check=True)
        pyrunc_cmd("start", container_id, check=True)
        state = state_of(pyrunc_cmd, container_id)
        assert state["status"] == "running"
        assert pid_file.read_text() == str(state["pid"])
        pyrunc_cmd("kill", container_id, "9", check=True)
        wait_for_status(pyrunc_cmd, container_id, "stopped")
        pyrunc_cmd("kill", "--all", container_id, "9", check=True)
        pyrunc_cmd("delete", container_id, check=True)
        pyrunc_cmd("delete", "--force", container_id, check=True)


def test_duplicate_id_is_refused(pyrunc_cmd, runc_cmd, bundle, container_id):
    b = bundle(args=SLEEP)
    runc_id = container_id + "-runc"  # its own cgroups: runc's delete must not race pyrunc's create
    runc_cmd("create", "-b", b, runc_id, check=True)
    try:
        runc_again = [runc_cmd(command, "-b", b, runc_id) for command in ("create", "run")]
    finally:
        runc_cmd("delete", "--force", runc_id)
    pyrunc_cmd("create", "-b", b, container_id, check=True)
    pid = state_of(pyrunc_cmd, container_id)["pid"]
    for command, runc_result in zip(("create", "run"), runc_again):
        again = pyrunc_cmd(command, "-b", b, container_id)
        assert again.returncode == runc_result.returncode == 1, command
        # runc prefixes "runc create failed: "
        assert one_error_line(again.stderr).endswith(' msg="container with given ID already exists"')
        assert one_error_line(runc_result.stderr).endswith(f' msg="runc {command} failed: container with given ID already exists"')
    # the first container is untouched
    state = state_of(pyrunc_cmd, container_id)
    assert (state["status"], state["pid"]) == ("created", pid)


# ---------------------------------------------------------------------------------------
# run


def test_run_returns_the_exit_code(pyrunc_cmd, bundle, container_id, state_root):
    result = pyrunc_cmd("run", "-b", bundle(args=["sh", "-c", "exit 3"]), container_id)
    assert result.returncode == 3, result.stderr
    assert result.stderr == ""
    # without --keep the container is gone
    assert not (state_root / container_id).exists()


def test_run_killed_by_signal_returns_128_plus_n(pyrunc_cmd, bundle, container_id):
    def no_pid_namespace(config: dict) -> None:
        # pid 1 of a pid namespace cannot SIGKILL itself (the kernel drops signals to a
        # namespace init that has no handler), so runc also exits 0 for this with a pid
        # namespace; without one the shell really dies of SIGKILL.
        config["linux"]["namespaces"] = [
            n for n in config["linux"]["namespaces"] if n["type"] != "pid"
        ]

    b = bundle(no_pid_namespace, args=["sh", "-c", "kill -9 $$"])
    result = pyrunc_cmd("run", "-b", b, container_id)
    assert result.returncode == 128 + 9, result.stderr


@contextlib.contextmanager
def foreground_run(pyrunc_cmd, state_root: Path, bundle_dir: Path, container_id: str, stdout=subprocess.DEVNULL):
    """`pyrunc run` in the foreground as a Popen (stderr piped), killed on the way out if
    the test left it running."""
    runner = subprocess.Popen(
        [pyrunc_cmd.__self__.binary, "--root", str(state_root), "run", "-b", str(bundle_dir), container_id],
        stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.PIPE,
    )
    try:
        yield runner
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait(timeout=10)


def test_run_killed_from_outside_returns_128_plus_n(
    pyrunc_cmd, bundle, container_id, state_root
):
    b = bundle(args=SLEEP)
    with foreground_run(pyrunc_cmd, state_root, b, container_id) as runner:
        wait_for_status(pyrunc_cmd, container_id, "running")
        pyrunc_cmd("kill", container_id, "KILL", check=True)
        _, stderr = runner.communicate(timeout=10)
        assert runner.returncode == 137, stderr
        assert b"Traceback" not in stderr


def test_run_forwards_sigterm_to_the_container(
    pyrunc_cmd, bundle, container_id, state_root, tmp_path
):
    signal_dir = tmp_path / "signal"
    signal_dir.mkdir()
    script = (
        "for s in HUP INT USR1 USR2; do trap \"echo $s >> /signal/got\" $s; done;"
        " trap 'exit 42' TERM; echo ready > /signal/ready; while :; do sleep 0.05; done"
    )
    b = bundle(with_signal_dir(signal_dir), args=["sh", "-c", script])
    with foreground_run(pyrunc_cmd, state_root, b, container_id, stdout=subprocess.PIPE) as runner:
        wait_for_file(signal_dir / "ready")
        got = signal_dir / "got"
        expected = []
        # like runc, every catchable signal is passed on, not only TERM
        for number, name in [(signal.SIGHUP, "HUP"), (signal.SIGINT, "INT"),
                             (signal.SIGUSR1, "USR1"), (signal.SIGUSR2, "USR2")]:
            runner.send_signal(number)
            expected.append(name)
            deadline = time.monotonic() + 5
            while not got.exists() or got.read_text().split() != expected:
                assert runner.poll() is None, f"pyrunc run died of {name}"
                assert time.monotonic() < deadline, (name, got.read_text() if got.exists()
                                                     else None)
                time.sleep(0.02)
        runner.send_signal(signal.SIGTERM)
        stdout, stderr = runner.communicate(timeout=10)
        assert runner.returncode == 42, stderr
        assert b"Traceback" not in stderr
    assert not (state_root / container_id).exists()


def test_run_detached_leaves_it_running(pyrunc_cmd, bundle, container_id, tmp_path):
    pid_file = tmp_path / "pid"
    started = time.monotonic()
    result = pyrunc_cmd("run", "-d", "--pid-file", pid_file, "-b", bundle(args=SLEEP),
                        container_id, timeout=20)
    assert (result.returncode, result.stderr) == (0, "")
    assert time.monotonic() - started < 15  # returned without waiting for the container
    state = state_of(pyrunc_cmd, container_id)
    assert state["status"] == "running"
    assert pid_file.read_text() == str(state["pid"])
    assert Path(f"/proc/{state['pid']}/comm").read_text() == "sleep\n"


def test_run_detached_passes_stdio_to_the_container(
    pyrunc_cmd, bundle, container_id, state_root, tmp_path
):
    """`run -d` hands its own stdio to the container (the shim reads the container's
    output from the pipes it gave the runtime)."""
    binary = pyrunc_cmd.__self__.binary
    b = bundle(args=["sh", "-c", "read line; echo \"out [$line]\"; echo err >&2"])
    (tmp_path / "in").write_text("typed\n")
    with open(tmp_path / "in") as stdin, open(tmp_path / "out", "w") as out, \
            open(tmp_path / "err", "w") as err:
        result = subprocess.run(
            [binary, "--root", str(state_root), "run", "-d", "-b", str(b), container_id],
            stdin=stdin, stdout=out, stderr=err, timeout=60,
        )
    assert result.returncode == 0, (tmp_path / "err").read_text()
    wait_for_status(pyrunc_cmd, container_id, "stopped")
    assert (tmp_path / "out").read_text() == "out [typed]\n"
    assert (tmp_path / "err").read_text() == "err\n"


def test_delete_force_kills_every_process_of_the_container(
    pyrunc_cmd, bundle, container_id, state_root, assert_no_residue
):
    b = bundle(args=["sh", "-c", "sleep 60 & sleep 61 & (trap '' TERM; sleep 62) & wait"])
    pyrunc_cmd("run", "-d", "-b", b, container_id, check=True)
    init_pid = state_of(pyrunc_cmd, container_id)["pid"]
    pids_path = next(
        line.split(":", 2)[2]
        for line in Path(f"/proc/{init_pid}/cgroup").read_text().splitlines()
        if line.split(":")[1] == "pids"
    )
    procs_file = Path(f"/sys/fs/cgroup/pids{pids_path}/cgroup.procs")
    deadline = time.monotonic() + 5
    while len(procs_file.read_text().split()) < 4:  # sh and 3 sleeps (+ maybe a subshell)
        assert time.monotonic() < deadline, procs_file.read_text()
        time.sleep(0.02)
    members = [int(p) for p in procs_file.read_text().split()]
    result = pyrunc_cmd("delete", "--force", container_id)
    assert (result.returncode, result.stderr) == (0, "")
    assert [p for p in members if pid_alive(p)] == []
    assert not procs_file.parent.exists()
    assert_no_residue(state_root, [container_id], grace=5)


def test_run_keep_leaves_a_stopped_container(
    pyrunc_cmd, bundle, container_id, state_root, assert_no_residue
):
    result = pyrunc_cmd("run", "--keep", "-b", bundle(args=["sh", "-c", "exit 5"]), container_id)
    assert result.returncode == 5, result.stderr
    state = state_of(pyrunc_cmd, container_id)
    assert (state["status"], state["pid"]) == ("stopped", 0)
    deleted = pyrunc_cmd("delete", container_id)
    assert (deleted.returncode, deleted.stderr) == (0, "")
    assert pyrunc_cmd("state", container_id).returncode == 1
    assert_no_residue(state_root, [container_id], grace=5)


def test_run_passes_stdout_and_stderr(pyrunc_cmd, bundle, container_id):
    b = bundle(args=["sh", "-c", "echo to-out; echo to-err >&2; echo more-out"])
    result = pyrunc_cmd("run", "-b", b, container_id)
    assert (result.returncode, result.stdout, result.stderr) == (
        0, "to-out\nmore-out\n", "to-err\n")


def test_run_passes_stdin(pyrunc_cmd, bundle, container_id):
    b = bundle(args=["sh", "-c", "read line; echo \"got [$line]\"; cat"])
    result = pyrunc_cmd("run", "-b", b, container_id, input="first\nsecond\nthird\n")
    assert (result.returncode, result.stdout, result.stderr) == (
        0, "got [first]\nsecond\nthird\n", "")


# ---------------------------------------------------------------------------------------
# concurrency on one id


def test_parallel_create_of_one_id_has_one_winner(pyrunc_cmd, bundle, container_id, state_root):
    b = bundle(args=SLEEP)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: pyrunc_cmd("create", "-b", b, container_id,
                                                     timeout=60), range(8)))
    winners = [r for r in results if r.returncode == 0]
    losers = [r for r in results if r.returncode != 0]
    assert len(winners) == 1, [(r.returncode, r.stderr) for r in results]
    for loser in losers:
        assert loser.returncode == 1
        assert "exists" in one_error_line(loser.stderr), loser.stderr
    state = state_of(pyrunc_cmd, container_id)
    assert state["status"] == "created"
    # exactly one process in the container's cgroup: no loser left an init behind
    pids_path = next(
        line.split(":", 2)[2]
        for line in Path(f"/proc/{state['pid']}/cgroup").read_text().splitlines()
        if line.split(":")[1] == "pids"
    )
    procs = Path(f"/sys/fs/cgroup/pids{pids_path}/cgroup.procs").read_text().split()
    assert procs == [str(state["pid"])]
    assert sorted(os.listdir(state_root)) == [container_id]


def test_parallel_start_releases_the_process_once(pyrunc_cmd, bundle, container_id, tmp_path):
    signal_dir = tmp_path / "signal"
    signal_dir.mkdir()
    # each release of the process would append a line
    b = bundle(with_signal_dir(signal_dir),
               args=["sh", "-c", "echo started >> /signal/log; exec sleep 60"])
    pyrunc_cmd("create", "-b", b, container_id, check=True)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: pyrunc_cmd("start", container_id), range(4)))
    codes = sorted(r.returncode for r in results)
    assert codes == [0, 1, 1, 1], [(r.returncode, r.stderr) for r in results]
    for result in results:
        assert "Traceback" not in result.stderr
        if result.returncode:
            assert "cannot start an already running container" in one_error_line(result.stderr)
    assert wait_for_file(signal_dir / "log") == "started\n"
    assert state_of(pyrunc_cmd, container_id)["status"] == "running"


def test_parallel_delete_and_state_leave_nothing(
    pyrunc_cmd, bundle, container_id, state_root, assert_no_residue
):
    pyrunc_cmd("run", "-d", "-b", bundle(args=SLEEP), container_id, check=True)
    jobs = [("delete", "-f", container_id)] * 4 + [("state", container_id)] * 4
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        results = list(pool.map(lambda words: pyrunc_cmd(*words, timeout=60), jobs))
    for words, result in zip(jobs, results):
        assert "Traceback" not in result.stderr, (words, result.stderr)
        if words[0] == "delete":
            assert (result.returncode, result.stderr) == (0, ""), (words, result.stderr)
        elif result.returncode == 0:
            assert json.loads(result.stdout)["id"] == container_id
        else:
            assert result.returncode == 1
            assert "container does not exist" in one_error_line(result.stderr)
    assert pyrunc_cmd("state", container_id).returncode == 1
    assert_no_residue(state_root, [container_id], grace=5)


# ---------------------------------------------------------------------------------------
# global flags


def test_log_json_records_the_error(pyrunc_cmd, container_id, tmp_path):
    log = tmp_path / "log.json"
    result = pyrunc_cmd("--log", log, "--log-format", "json", "state", container_id)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    errors = [entry for entry in lines if entry.get("level") == "error"]
    assert errors, lines
    last = errors[-1]
    assert list(last) == ["level", "msg", "time"]
    assert last["msg"] == "container does not exist"
    assert LOG_TIME_RE.match(last["time"]), last["time"]


def test_log_appends_and_text_format(pyrunc_cmd, container_id, tmp_path):
    log = tmp_path / "log.txt"
    log.write_text("earlier line\n")
    result = pyrunc_cmd("--log", log, "kill", container_id, "9")
    assert result.returncode == 1
    text = log.read_text().splitlines()
    assert text[0] == "earlier line"  # appended, not truncated (runc opens O_APPEND)
    assert re.match(r'^time="[^"]+" level=error msg="container does not exist"$', text[-1]), text


def test_bad_log_options(pyrunc_cmd, container_id, tmp_path):
    missing_dir_log = tmp_path / "no-such-dir" / "log"
    result = pyrunc_cmd("--log", missing_dir_log, "state", container_id)
    assert result.returncode == 1
    line = one_error_line(result.stderr)
    assert str(missing_dir_log) in line and "no such file or directory" in line
    result = pyrunc_cmd("--log-format", "xml", "state", container_id)
    assert result.returncode == 1
    assert "invalid log-format: xml" in one_error_line(result.stderr)


def test_flag_equals_value_forms(pyrunc_cmd, bundle, container_id, state_root, tmp_path):
    binary = pyrunc_cmd.__self__.binary
    log = tmp_path / "log.json"
    pid_file = tmp_path / "pid"
    b = bundle(args=SLEEP)

    def run(*words: str) -> subprocess.CompletedProcess:
        return run_with_files([binary, *words])

    created = run(f"--root={state_root}", f"--log={log}", "--log-format=json", "create",
                  f"--bundle={b}", f"--pid-file={pid_file}", container_id)
    assert created.returncode == 0, created.stderr
    assert (state_root / container_id).is_dir()  # --root= respected
    state = json.loads(run(f"--root={state_root}", "state", container_id).stdout)
    assert pid_file.read_text() == str(state["pid"])
    missing = run(f"--root={state_root}", f"--log={log}", "--log-format=json",
                  "state", container_id + "-missing")
    assert missing.returncode == 1
    last = json.loads(log.read_text().splitlines()[-1])
    assert (last["level"], last["msg"]) == ("error", "container does not exist")
    listed = run(f"--root={state_root}", "list", "--format=json")
    assert [e["id"] for e in json.loads(listed.stdout)] == [container_id]


def test_boolean_flags_take_an_explicit_value(pyrunc_cmd, bundle, container_id):
    # Go's flag package (runc's parser) accepts `--bool=false` / `--bool=true`
    pyrunc_cmd("create", "-b", bundle(), container_id, check=True)
    listed = pyrunc_cmd("list", "--format=json", "--quiet=false")
    assert listed.returncode == 0, listed.stderr
    assert [e["id"] for e in json.loads(listed.stdout)] == [container_id]
    quiet = pyrunc_cmd("list", "--quiet=true")
    assert (quiet.returncode, quiet.stdout) == (0, container_id + "\n"), quiet.stderr


def test_root_is_where_state_lives(pyrunc_cmd, bundle, container_id, tmp_path):
    binary = pyrunc_cmd.__self__.binary
    other_root = tmp_path / "nested" / "root"  # does not exist yet: created on demand
    b = bundle()
    words = [binary, "--root", str(other_root)]
    try:
        created = run_with_files([*words, "create", "-b", str(b), container_id])
        assert created.returncode == 0, created.stderr
        assert (other_root / container_id).is_dir()
        # the fixture's root does not know it
        assert pyrunc_cmd("state", container_id).returncode == 1
    finally:
        run_with_files([*words, "delete", "--force", container_id])
    assert not (other_root / container_id).exists()


@pytest.mark.parametrize("flag", ["--version", "-v"])
def test_version_prints_three_lines(pyrunc_cmd, flag):
    result = pyrunc_cmd(flag)
    assert (result.returncode, result.stderr) == (0, "")
    lines = result.stdout.splitlines()
    assert len(lines) == 3, result.stdout
    assert re.match(r"^pyrunc version \S+$", lines[0]), lines
    assert re.match(r"^commit: \S+", lines[1]), lines
    assert re.match(r"^spec: \d+\.\d+\.\d+", lines[2]), lines


# ---------------------------------------------------------------------------------------
# how engines call it


def test_podman_environment_without_path_or_home(pyrunc_cmd, bundle, container_id, tmp_path):
    """conmon gives kill/delete no PATH and no HOME, and XDG_RUNTIME_DIR="" (= unset)."""
    bare = {"XDG_RUNTIME_DIR": ""}
    b = bundle(args=SLEEP)
    created = pyrunc_cmd("create", "-b", b, container_id, env=bare, cwd=tmp_path)
    assert (created.returncode, created.stderr) == (0, "")
    started = pyrunc_cmd("start", container_id, env={"PATH": "/usr/bin:/bin"})
    assert (started.returncode, started.stderr) == (0, "")
    assert state_of(pyrunc_cmd, container_id)["status"] == "running"
    killed = pyrunc_cmd("kill", container_id, "9", env=bare)
    assert (killed.returncode, killed.stderr) == (0, "")
    wait_for_status(pyrunc_cmd, container_id, "stopped")
    deleted = pyrunc_cmd("delete", "--force", container_id, env=bare)
    assert (deleted.returncode, deleted.stderr) == (0, "")
    assert pyrunc_cmd("state", container_id).returncode == 1


def test_relative_pid_file_is_resolved_against_cwd(pyrunc_cmd, bundle, container_id, tmp_path):
    created = pyrunc_cmd("create", "-b", bundle(), "--pid-file", "rel.pid", container_id,
                         cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    assert (tmp_path / "rel.pid").read_text() == str(state_of(pyrunc_cmd, container_id)["pid"])


def test_stray_inherited_fd_does_not_reach_the_container(
    pyrunc_cmd, bundle, container_id, state_root, tmp_path
):
    """containerd's shim leaves its socket open as fd 3 (not CLOEXEC) across `create`."""
    binary = pyrunc_cmd.__self__.binary
    b = bundle(args=["sh", "-c", "ls /proc/self/fd"])
    read_end, write_end = os.pipe()
    output = tmp_path / "out"
    try:
        with open(output, "w") as out:
            created = subprocess.run(
                [binary, "--root", str(state_root), "create", "-b", str(b), container_id],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.DEVNULL,
                # in the child only: fd 3 = the pipe, inheritable, like the shim's socket
                preexec_fn=lambda: os.dup2(write_end, 3, inheritable=True),
                pass_fds=(3,), timeout=60,
            )
        assert created.returncode == 0
    finally:
        os.close(read_end)
        os.close(write_end)
    pyrunc_cmd("start", container_id, check=True)
    wait_for_status(pyrunc_cmd, container_id, "stopped")
    # 0-2 and the directory `ls` itself opened (3); nothing inherited
    assert output.read_text().split() == ["0", "1", "2", "3"]


def test_init_killed_from_the_host_shows_stopped(pyrunc_cmd, bundle, container_id):
    pyrunc_cmd("run", "-d", "-b", bundle(args=SLEEP), container_id, check=True)
    pid = state_of(pyrunc_cmd, container_id)["pid"]
    os.kill(pid, signal.SIGKILL)
    state = wait_for_status(pyrunc_cmd, container_id, "stopped")
    assert state["pid"] == 0
    deleted = pyrunc_cmd("delete", container_id)
    assert (deleted.returncode, deleted.stderr) == (0, "")
