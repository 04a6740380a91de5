"""checkpoint and restore on this host, compared with runc 1.1.5: flags and help, the
errors before CRIU is asked anything, and, where CRIU cannot work here (Debian's criu 3.17
fails on newer kernels with "Unexpected rt vDSO area bounds"), a clean one-line failure
that leaves the container as it was and nothing else behind. The working
checkpoint/restore is proven in the qemu guest (tests/vm/test_criu_guest.py, running
tests/vm/guest_criu.py).

Where pyrunc is stricter than runc it is said: runc leaves the image directory it made
(with dump.log) after a failed checkpoint; pyrunc removes the directories it made."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import pytest

from test_differential_runc import message_of

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")

SLEEPER = ["sleep", "1000"]


def _help(cmd, name: str) -> str:
    result = cmd(name, "-h")
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("name", ["checkpoint", "restore"])
def test_help_is_runcs(pyrunc_cmd, runc_cmd, name):
    ours = _help(pyrunc_cmd, name).replace("pyrunc", "RUNTIME")
    reference = _help(runc_cmd, name).replace("runc", "RUNTIME")
    assert ours == reference


def test_app_help_lists_both(pyrunc_cmd):
    text = pyrunc_cmd("--help").stdout
    assert "checkpoint  checkpoint a running container" in text
    assert "restore     restore a container from a previous checkpoint" in text
    assert "checkpoint/restore is not implemented" not in text


def _start_both(pyrunc_cmd, runc_cmd, bundle, container_id):
    b = bundle(args=SLEEPER)
    for cmd, cid in ((pyrunc_cmd, container_id), (runc_cmd, container_id + "-runc")):
        result = cmd("run", "-d", "-b", b, cid, input="")
        assert result.returncode == 0, result.stderr
    return b


def _same_failure(pyrunc_cmd, runc_cmd, container_id, *args, path_of=None):
    """Both runtimes fail `args` with exit 1 and the same message (`path_of(cid)` is a
    per-runtime path substituted for "{path}")."""
    results = []
    for cmd, cid in ((pyrunc_cmd, container_id), (runc_cmd, container_id + "-runc")):
        words = [a.replace("{path}", path_of(cid)) if path_of else a for a in args]
        result = cmd(*(w.replace("{id}", cid) for w in words))
        assert result.returncode == 1, (cmd, result.stdout, result.stderr)
        # runc's deferred destroy may log "container still running" first: the cause is
        # the last line
        message = message_of(result.stderr.strip().splitlines()[-1])
        if path_of:
            message = message.replace(path_of(cid), "PATH")
        results.append(message.replace(cid, "ID"))
    assert results[0] == results[1]
    return results[0]


def test_pre_dump_bad_parent_path_names_the_flag(pyrunc_cmd, runc_cmd, bundle, container_id, tmp_path):
    _start_both(pyrunc_cmd, runc_cmd, bundle, container_id)
    images = lambda cid: str(tmp_path / f"images-{cid}")  # noqa: E731
    message = _same_failure(pyrunc_cmd, runc_cmd, container_id, "checkpoint", "--pre-dump",
                            "--image-path", "{path}", "--parent-path", "BAD", "{id}", path_of=images)
    assert message == "invalid --parent-path: stat PATH/BAD: no such file or directory"
    # stricter than runc, which leaves the image directory it made
    assert not os.path.exists(images(container_id))
    assert pyrunc_cmd("state", container_id).returncode == 0
    message = _same_failure(pyrunc_cmd, runc_cmd, container_id, "checkpoint", "--pre-dump",
                            "--image-path", "{path}", "--parent-path", "/abs", "{id}", path_of=images)
    assert message == "--parent-path must be relative"


@pytest.mark.parametrize("flags, expected", [
    (["--manage-cgroups-mode", "bogus"], "Invalid manage cgroups mode"),
    (["--empty-ns", "pid"], 'namespace \\"pid\\" is not supported'),  # as logged: quotes escaped
])
def test_bad_flag_values(pyrunc_cmd, runc_cmd, bundle, container_id, tmp_path, flags, expected):
    _start_both(pyrunc_cmd, runc_cmd, bundle, container_id)
    images = lambda cid: str(tmp_path / f"images-{cid}")  # noqa: E731
    message = _same_failure(pyrunc_cmd, runc_cmd, container_id, "checkpoint", "--image-path",
                            "{path}", *flags, "{id}", path_of=images)
    assert message == expected
    assert not os.path.exists(images(container_id))


def test_wrong_states_and_missing_container(pyrunc_cmd, runc_cmd, bundle, container_id, tmp_path):
    b = bundle(args=SLEEPER)
    images = lambda cid: str(tmp_path / f"images-{cid}")  # noqa: E731
    assert _same_failure(pyrunc_cmd, runc_cmd, container_id, "checkpoint", "--image-path",
                         "{path}", "nosuch", path_of=images) == "container does not exist"
    for cmd, cid in ((pyrunc_cmd, container_id), (runc_cmd, container_id + "-runc")):
        assert cmd("create", "-b", b, cid, input="").returncode == 0
    assert _same_failure(pyrunc_cmd, runc_cmd, container_id, "checkpoint", "--image-path",
                         "{path}", "{id}", path_of=images) == \
        "Container cannot be checkpointed in created state"


def test_missing_criu_binary(pyrunc_cmd, runc_cmd, bundle, container_id, tmp_path):
    _start_both(pyrunc_cmd, runc_cmd, bundle, container_id)
    images = lambda cid: str(tmp_path / f"images-{cid}")  # noqa: E731
    message = _same_failure(pyrunc_cmd, runc_cmd, container_id, "--criu", "/nonexistent/criu",
                            "checkpoint", "--image-path", "{path}", "{id}", path_of=images)
    assert message == "CRIU version check failed: fork/exec /nonexistent/criu: no such file or directory"
    assert pyrunc_cmd("state", container_id).returncode == 0


def test_restore_without_images(pyrunc_cmd, runc_cmd, bundle, container_id, tmp_path):
    b = bundle(args=SLEEPER)
    message = _same_failure(pyrunc_cmd, runc_cmd, container_id, "restore", "-b", str(b),
                            "--image-path", str(tmp_path / "none"), "{id}")
    assert message == f"open {tmp_path}/none/descriptors.json: no such file or directory"


def test_restore_onto_an_existing_id(pyrunc_cmd, runc_cmd, bundle, container_id, tmp_path):
    b = _start_both(pyrunc_cmd, runc_cmd, bundle, container_id)
    message = _same_failure(pyrunc_cmd, runc_cmd, container_id, "restore", "-b", str(b),
                            "--image-path", str(tmp_path / "none"), "{id}")
    assert message == "container with given ID already exists"


# ---- where CRIU cannot work on this kernel ------------------------------------------

def _criu_broken_here() -> str:
    """CRIU's own reason for not working here, or "" when it works (or is absent)."""
    criu = shutil.which("criu")
    if criu is None:
        return ""
    result = subprocess.run([criu, "check"], capture_output=True, text=True, timeout=60)
    if result.returncode == 0:
        return ""
    errors = [line for line in (result.stdout + result.stderr).splitlines() if "Error" in line]
    return errors[0] if errors else result.stderr.strip() or "criu check failed"


@pytest.fixture(scope="module")
def criu_failure() -> str:
    if shutil.which("criu") is None:
        pytest.skip("criu is not installed (./setup.sh installs it)")
    reason = _criu_broken_here()
    if not reason:
        pytest.skip("criu works on this kernel: the guest tests cover checkpoint/restore")
    return reason


def _criu_reason(reason_line: str) -> str:
    # "Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds" -> the text after it
    return reason_line.split("): ", 1)[-1]


def test_checkpoint_where_criu_cannot_work(criu_failure, pyrunc_cmd, runc_cmd, bundle,
                                           container_id, tmp_path, state_root):
    _start_both(pyrunc_cmd, runc_cmd, bundle, container_id)
    ours = pyrunc_cmd("checkpoint", "--image-path", tmp_path / "images", container_id)
    reference = runc_cmd("checkpoint", "--image-path", tmp_path / "images-runc", container_id + "-runc")
    assert (ours.returncode, reference.returncode) == (1, 1)
    assert "criu failed: type DUMP" in reference.stderr
    lines = ours.stderr.strip().splitlines()
    assert len(lines) == 1, ours.stderr
    message = message_of(lines[0])
    assert message.startswith("criu failed: type DUMP errno 0: ")
    assert _criu_reason(criu_failure) in message
    # the dump failed before anything was frozen for good: the container still runs,
    # and the image directory pyrunc made is gone again (runc leaves it)
    assert json.loads(pyrunc_cmd("state", container_id).stdout)["status"] == "running"
    assert not (tmp_path / "images").exists()
    assert not (state_root / container_id / "checkpoint").exists()


def test_checkpoint_failure_keeps_the_log_in_a_given_work_dir(criu_failure, pyrunc_cmd, bundle,
                                                             container_id, tmp_path):
    b = bundle(args=SLEEPER)
    assert pyrunc_cmd("run", "-d", "-b", b, container_id, input="").returncode == 0
    work = tmp_path / "work"
    work.mkdir()
    ours = pyrunc_cmd("checkpoint", "--image-path", tmp_path / "images", "--work-path", work, container_id)
    assert ours.returncode == 1
    assert message_of(ours.stderr).endswith(f"(log file: {work}/dump.log)")
    assert (work / "dump.log").exists()
    assert not (tmp_path / "images").exists()


def test_restore_where_criu_cannot_work(criu_failure, pyrunc_cmd, runc_cmd, bundle, container_id,
                                        tmp_path, state_root):
    """Up to CRIU's RESTORE everything is made (state dir, cgroup, the rootfs bound on
    criu-root): all of it must be gone after the failure."""
    b = bundle(args=SLEEPER)
    images = tmp_path / "images"
    images.mkdir()
    (images / "descriptors.json").write_text(json.dumps(["/dev/null"] * 3))
    ours = pyrunc_cmd("restore", "-d", "-b", b, "--image-path", images, container_id)
    reference = runc_cmd("restore", "-d", "-b", b, "--image-path", images, container_id + "-runc")
    assert (ours.returncode, reference.returncode) == (1, 1)
    assert "criu failed: type RESTORE" in reference.stderr
    lines = ours.stderr.strip().splitlines()
    assert len(lines) == 1, ours.stderr
    message = message_of(lines[0])
    assert message.startswith("criu failed: type RESTORE errno 0: ")
    assert _criu_reason(criu_failure) in message
    assert message.endswith(f"(log file: {images}/restore.log)")
    assert os.listdir(state_root) == []
    with open("/proc/self/mountinfo") as f:
        assert "criu-root" not in f.read()


def test_features_say_whether_checkpoint_can_be_asked_for(pyrunc_cmd):
    features = json.loads(pyrunc_cmd("features").stdout)
    expected = "true" if shutil.which("criu") else "false"
    assert features["annotations"]["run.pyrunc.checkpoint.enabled"] == expected


def test_container_processes_lead_their_own_session_as_in_runc(pyrunc_cmd, runc_cmd, bundle, container_id):
    """runc's nsexec calls setsid() for the init and every exec'd process; CRIU refuses
    to dump a process tree whose session leader is outside it ("A session leader of ...
    is outside of its pid namespace")."""
    _start_both(pyrunc_cmd, runc_cmd, bundle, container_id)
    script = "read -r pid comm state ppid pgrp session rest < /proc/$$/stat; [ $pid = $session ] && echo leader"
    for cmd, cid in ((pyrunc_cmd, container_id), (runc_cmd, container_id + "-runc")):
        pid = json.loads(cmd("state", cid).stdout)["pid"]
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        assert int(fields[3]) == pid, (cmd, fields)  # the session id is the init's pid
        result = cmd("exec", cid, "sh", "-c", script)
        assert result.stdout == "leader\n", (cmd, result.stdout, result.stderr)


def test_stdio_on_the_hosts_dev_null_is_reopened_inside_as_in_runc(pyrunc_cmd, runc_cmd, bundle, container_id):
    """runc's reOpenDevNull: an init whose stdin is the runtime's /dev/null (a node on the
    host's /dev) gets the container's /dev/null instead; CRIU can't dump a file on a
    mount the container doesn't see ("Can't lookup mount=N for fd=0 path=/dev/null"),
    which is how podman starts a container without -i."""
    script = "stat -L -c %d /proc/self/fd/0 > /same.tmp; stat -c %d /dev/null >> /same.tmp; mv /same.tmp /same"
    b = bundle(lambda c: c["root"].update(readonly=False), args=["sh", "-c", script], private_rootfs=True)
    for cmd, cid in ((pyrunc_cmd, container_id), (runc_cmd, container_id + "-runc")):
        result = cmd("run", "-d", "-b", b, cid)  # stdin: /dev/null
        assert result.returncode == 0, result.stderr
        deadline = time.monotonic() + 10
        while not (b / "rootfs" / "same").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        stdin_dev, null_dev = (b / "rootfs" / "same").read_text().split()
        assert stdin_dev == null_dev, cmd
        (b / "rootfs" / "same").unlink()
