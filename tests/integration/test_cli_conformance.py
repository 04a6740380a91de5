"""CLI exit codes, messages and logs against runc 1.1.5 on the same bundles (issue 13,
items 24-27, 29, 31): each runtime has its own state root; both put the container's
cgroup beneath this process's own cgroup. Where pyrunc deliberately differs, the test
says so."""
from __future__ import annotations

import json
import os
import re
import time

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")


def message_of(stderr: str) -> str:
    """The msg of the last logrus text line of `stderr`."""
    found = re.findall(r'msg="((?:[^"\\]|\\.)*)"', stderr)
    assert found, stderr
    return found[-1]


@pytest.fixture
def sleepers(bundle, container_id, pyrunc_cmd, runc_cmd):
    """One `sleep` container under each runtime: {"runc": id, "pyrunc": id}."""
    b = bundle(args=["sleep", "600"])
    ids = {"runc": container_id + "-runc", "pyrunc": container_id}
    runc_cmd("run", "-d", "-b", b, ids["runc"], check=True)
    pyrunc_cmd("run", "-d", "-b", b, ids["pyrunc"], check=True)
    return ids


def both(pyrunc_cmd, runc_cmd, ids, *words, after=()):
    """Run `words ID after...` under both; (runc result, pyrunc result)."""
    return (runc_cmd(*words, ids["runc"], *after), pyrunc_cmd(*words, ids["pyrunc"], *after))


def container_pids(runtime_cmd, container_id) -> list:
    return json.loads(runtime_cmd("ps", "-f", "json", container_id, check=True).stdout)


# --- item 24: exec failures exit 255 ("exec failed: ...") ------------------------------

def test_exec_into_a_paused_container(pyrunc_cmd, runc_cmd, sleepers):
    runc_cmd("pause", sleepers["runc"], check=True)
    pyrunc_cmd("pause", sleepers["pyrunc"], check=True)
    reference, ours = both(pyrunc_cmd, runc_cmd, sleepers, "exec", after=("true",))
    assert reference.returncode == 255
    assert ours.returncode == reference.returncode
    assert message_of(ours.stderr) == message_of(reference.stderr) == (
        "exec failed: cannot exec in a paused container (use --ignore-paused to override)")
    assert len(ours.stderr.splitlines()) == 1
    runc_cmd("resume", sleepers["runc"], check=True)
    pyrunc_cmd("resume", sleepers["pyrunc"], check=True)


def test_exec_pid_file_in_a_missing_directory(pyrunc_cmd, runc_cmd, sleepers, tmp_path):
    pid_file = tmp_path / "no-such-dir" / "exec.pid"
    reference, ours = both(pyrunc_cmd, runc_cmd, sleepers, "exec", "-d", "--pid-file", pid_file,
                           after=("sleep", "300"))
    assert reference.returncode == 255
    assert ours.returncode == reference.returncode
    assert message_of(ours.stderr) == message_of(reference.stderr) == (
        f"exec failed: open {pid_file.parent}/.exec.pid: no such file or directory")
    # the process it started does not outlive the failed exec (runc terminates it too)
    deadline = time.monotonic() + 5
    while len(container_pids(pyrunc_cmd, sleepers["pyrunc"])) != 1:
        assert time.monotonic() < deadline, container_pids(pyrunc_cmd, sleepers["pyrunc"])
        time.sleep(0.05)


def test_exec_other_failures_exit_255(pyrunc_cmd, runc_cmd, sleepers, container_id):
    """runc's exec ends every failure after its arguments are parsed this way: a missing
    container, a stopped one, no command (the wording of some causes differs)."""
    for words in (("exec", container_id + "-missing", "true"), ("exec", "ID")):
        reference = runc_cmd(*[sleepers["runc"] if w == "ID" else w for w in words])
        ours = pyrunc_cmd(*[sleepers["pyrunc"] if w == "ID" else w for w in words])
        assert ours.returncode == reference.returncode == 255, words
        assert message_of(ours.stderr) == message_of(reference.stderr), words


# --- item 25: exec --cgroup ---------------------------------------------------------

@pytest.mark.parametrize("value", ["..", "a/../..", "/../x", "cpu:..", "pids,memory:x/../..",
                                   "bogus:x", "bogus:..", "systemd:.", "a:b:c", ".", "./x/..",
                                   "cpu:", "cpu:.|memory:.", "cpu:.|cpu:.", "x|cpu:.",
                                   "no-such-sub-cgroup"])
def test_exec_cgroup_values(pyrunc_cmd, runc_cmd, sleepers, value):
    flags = [word for part in value.split("|") for word in ("--cgroup", part)]  # repeatable
    reference, ours = both(pyrunc_cmd, runc_cmd, sleepers, "exec", *flags, after=("true",))
    assert ours.returncode == reference.returncode, (value, ours.stderr, reference.stderr)
    if reference.returncode == 0:
        return
    if "no-such" in value:
        # runc fails when it writes the pid into cgroup.procs; pyrunc checks first and
        # names the directory: same exit code, different wording
        assert "no-such-sub-cgroup" in message_of(ours.stderr)
        return
    assert message_of(ours.stderr) == message_of(reference.stderr), value


# --- item 26: ps on a stopped container ----------------------------------------------

def test_ps_on_a_stopped_container(pyrunc_cmd, runc_cmd, sleepers):
    for command in (runc_cmd, pyrunc_cmd):
        name = sleepers["runc"] if command is runc_cmd else sleepers["pyrunc"]
        command("kill", name, "KILL", check=True)
        deadline = time.monotonic() + 10
        while json.loads(command("state", name).stdout)["status"] != "stopped":
            assert time.monotonic() < deadline
            time.sleep(0.05)
    for words in (("ps",), ("ps", "-f", "json"), ("ps", "-f", "table")):
        reference, ours = both(pyrunc_cmd, runc_cmd, sleepers, *words)
        assert (ours.returncode, ours.stdout, ours.stderr) == (
            reference.returncode, reference.stdout, reference.stderr), words
    assert reference.returncode == 0 and reference.stdout.split()[:2] == ["UID", "PID"]
    reference, ours = both(pyrunc_cmd, runc_cmd, sleepers, "ps", "-f", "json")
    assert ours.stdout == "null\n"


# --- item 27: --debug logs the init's steps ------------------------------------------

INIT_STEPS = ("new namespaces at clone", "mount proc on", "pivot_root into",
              "created: waits for start", "released by start: exec sh")


@pytest.mark.parametrize("where", ["stderr", "text", "json"])
def test_debug_logs_the_init_steps(pyrunc_cmd, bundle, container_id, tmp_path, where):
    b = bundle(args=["sh", "-c", "exit 0"])
    log = tmp_path / "pyrunc.log"
    flags = [] if where == "stderr" else ["--log", log, "--log-format", where]
    result = pyrunc_cmd("--debug", *flags, "run", "-b", b, container_id)
    assert result.returncode == 0, result.stderr
    text = result.stderr if where == "stderr" else log.read_text()
    if where == "json":
        records = [json.loads(line) for line in text.splitlines()]
        messages = [r["msg"] for r in records if r["level"] == "debug"]
    else:
        messages = [message_of(line) for line in text.splitlines() if "level=debug" in line]
    for step in INIT_STEPS:
        assert any(step in m for m in messages), (step, messages)
    # in the order the init does them
    order = [next(i for i, m in enumerate(messages) if step in m) for step in INIT_STEPS]
    assert order == sorted(order)
    # without --debug: none of it
    quiet = pyrunc_cmd("run", "-b", b, container_id)
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_debug_logs_the_exec_steps(pyrunc_cmd, sleepers):
    result = pyrunc_cmd("--debug", "exec", sleepers["pyrunc"], "true")
    assert result.returncode == 0, result.stderr
    messages = [message_of(line) for line in result.stderr.splitlines()]
    for step in ("join pid namespace", "join mount namespace", "exec true",
                 "the program runs"):
        assert any(step in m for m in messages), (step, messages)


# --- item 29: --preserve-fds naming fds that are not open ----------------------------

@pytest.mark.parametrize("command", ["run", "create"])
def test_preserve_fds_not_open(pyrunc_cmd, runc_cmd, bundle, container_id, state_root,
                               runc_root, command):
    # the runner passes only fds 0-2: fds 3.. are not open in either runtime
    b = bundle(args=["true"])
    reference = runc_cmd(command, "--preserve-fds", "5", "-b", b, container_id + "-runc")
    ours = pyrunc_cmd(command, "--preserve-fds", "5", "-b", b, container_id)
    assert ours.returncode == reference.returncode == 1
    # runc's own fds (its Go runtime's) occupy some numbers from 3 on, so its first
    # missing fd comes later; the wording is the same
    shape = r"unable to stat preserved-fd \d+ \(of 5\): stat /proc/self/fd/\d+: no such file or directory"
    assert re.search(shape, message_of(reference.stderr)), reference.stderr
    assert message_of(ours.stderr) == (
        "unable to stat preserved-fd 0 (of 5): stat /proc/self/fd/3: no such file or directory")
    assert len(ours.stderr.splitlines()) == 1
    assert not [e for e in os.listdir(state_root) if not e.startswith(".")]
    assert not os.listdir(runc_root)


def test_exec_preserve_fds_not_open(pyrunc_cmd, runc_cmd, sleepers):
    # more than runc's own open fds, which its check counts as preserved
    reference, ours = both(pyrunc_cmd, runc_cmd, sleepers, "exec", "--preserve-fds", "40",
                           after=("true",))
    assert ours.returncode == reference.returncode == 255
    shape = (r"exec failed: unable to stat preserved-fd \d+ \(of 40\): stat /proc/self/fd/\d+: "
             r"no such file or directory")
    assert re.fullmatch(shape, message_of(reference.stderr)), reference.stderr
    assert message_of(ours.stderr) == (
        "exec failed: unable to stat preserved-fd 0 (of 40): stat /proc/self/fd/3: "
        "no such file or directory")


# --- item 31 (beyond runc): an unwritable --log --------------------------------------

@pytest.mark.parametrize("log", ["/nonexistent-dir/pyrunc.log", "/dev/full"])
def test_unwritable_log_is_one_plain_line(pyrunc_cmd, runc_cmd, container_id, log):
    reference = runc_cmd("--log", log, "--log-format", "json", "state", container_id)
    ours = pyrunc_cmd("--log", log, "--log-format", "json", "state", container_id)
    assert ours.returncode == reference.returncode == 1
    # runc prints the JSON object meant for the file (or, for a failed write, two
    # lines); pyrunc one logrus text line
    assert len(ours.stderr.splitlines()) == 1, ours.stderr
    assert not ours.stderr.startswith("{")
    expected = ("open /nonexistent-dir/pyrunc.log: no such file or directory"
                if log.startswith("/nonexistent") else "container does not exist")
    assert message_of(ours.stderr) == expected
    assert " level=error " in ours.stderr
