"""checkpoint/restore with CRIU, run INSIDE the qemu guest by tests/vm/test_criu_guest.py
(Debian's 6.1 kernel, where Debian's criu 3.17 works; on this host's kernel it fails, see
tests/integration/test_checkpoint.py). Not named test_*.py: on the host it is collected
only when named, and then skips.

The workload counts in a shell variable and writes the count to a file: after a restore
the count must go on from where it was (a restarted process would begin at 1 again), in
the same container: state, exec, kill and delete work on the restored one."""
from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

IN_GUEST = os.environ.get("PYRUNC_IN_VM") == "1"
if not IN_GUEST:
    pytest.skip("run inside the qemu guest (tests/vm/test_criu_guest.py)", allow_module_level=True)

# stdio on the container's own /dev/null: CRIU dumps files only on mounts it sees in the
# container (the pipes test below hands pipes over instead)
COUNTER = ("exec </dev/null >/dev/null 2>&1; i=0; "
           "while :; do i=$((i+1)); echo $i > {path}.new; mv {path}.new {path}; usleep 20000; done")


@pytest.fixture(scope="module", autouse=True)
def criu_works():
    # CRIU's kernel probe opens a TCP socket on lo; the guest boots with lo down
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    result = subprocess.run(["criu", "check"], capture_output=True, text=True)
    assert result.returncode == 0, f"criu check failed in the guest:\n{result.stdout}{result.stderr}"


def _count(path) -> int:
    for _ in range(50):
        try:
            with open(path) as f:
                text = f.read().strip()
            if text:
                return int(text)
        except FileNotFoundError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{path} never written")


def _wait_count_above(path, value: int, timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = _count(path)
        if current > value:
            return current
        time.sleep(0.05)
    raise AssertionError(f"{path} stayed at {_count(path)} (waited for > {value})")


def _ok(result):
    assert result.returncode == 0, f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return result


def _state(pyrunc_cmd, container_id) -> dict:
    return json.loads(_ok(pyrunc_cmd("state", container_id)).stdout)


def _counter_bundle(bundle, count_path: str, edit=None):
    def configure(config):
        config["root"]["readonly"] = False
        if edit:
            edit(config)
    return bundle(configure, args=["sh", "-c", COUNTER.format(path=count_path)], private_rootfs=True)


def _start(pyrunc_cmd, bundle_dir, container_id, count_file) -> int:
    _ok(pyrunc_cmd("run", "-d", "-b", bundle_dir, container_id, timeout=120))
    return _wait_count_above(count_file, 3)


def _checkpoint(pyrunc_cmd, container_id, images, *flags):
    started = time.monotonic()
    _ok(pyrunc_cmd("checkpoint", "--image-path", images, *flags, container_id, timeout=120))
    print(f"checkpoint {' '.join(map(str, flags))}: {time.monotonic() - started:.1f} s")


def _restore(pyrunc_cmd, bundle_dir, container_id, images, *flags):
    started = time.monotonic()
    _ok(pyrunc_cmd("restore", "-d", "-b", bundle_dir, "--image-path", images, *flags, container_id,
                   timeout=120))
    print(f"restore: {time.monotonic() - started:.1f} s")


def _stopped_at(count_file) -> int:
    """The count once nothing writes it any more."""
    last = _count(count_file)
    time.sleep(0.3)
    assert _count(count_file) == last, "the counter still runs"
    return last


def test_counter_continues_after_restore_with_its_bind_mount(pyrunc_cmd, bundle, container_id,
                                                             tmp_path, state_root):
    """The count lives in a host directory bind-mounted at /data: the bind mount (and the
    default masked files, /dev/null bound over them) are declared to CRIU as external
    mounts at dump and mapped back to their sources at restore."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "host.txt").write_text("from the host\n")

    def add_mount(config):
        config["mounts"].append({"destination": "/data", "type": "bind", "source": str(data),
                                 "options": ["rbind", "rw"]})
    bundle_dir = _counter_bundle(bundle, "/data/count", add_mount)
    count_file = data / "count"
    _start(pyrunc_cmd, bundle_dir, container_id, count_file)
    images = tmp_path / "images"
    _checkpoint(pyrunc_cmd, container_id, images)
    # a checkpoint without --leave-running ends the container
    assert pyrunc_cmd("state", container_id).returncode == 1
    assert not (state_root / container_id).exists()
    saved = _stopped_at(count_file)
    assert json.loads((images / "descriptors.json").read_text())[1] == "/dev/null"

    _restore(pyrunc_cmd, bundle_dir, container_id, images, "--pid-file", tmp_path / "pid")
    state = _state(pyrunc_cmd, container_id)
    assert state["status"] == "running"
    assert (tmp_path / "pid").read_text() == str(state["pid"])
    assert _count(count_file) >= saved  # a fresh process would have begun at 1
    _wait_count_above(count_file, saved + 5)
    # the restored init is the container's: its cgroup, its namespaces and mounts
    with open(f"/proc/{state['pid']}/cgroup") as f:
        assert f.read().strip().endswith("/" + container_id)
    # (one exec: every pyrunc call costs a second or two under TCG)
    seen = _ok(pyrunc_cmd("exec", container_id, "sh", "-c", "cat /data/count /data/host.txt /proc/kcore; "
                          "awk '$5 == \"/data\" { print \"mounted\" }' /proc/self/mountinfo")).stdout
    count, host_text, mounted = seen.splitlines()
    assert int(count) >= saved
    # the same host directory, still a mount; /proc/kcore still masked (empty)
    assert (host_text, mounted) == ("from the host", "mounted"), seen
    _ok(pyrunc_cmd("pause", container_id))
    assert _state(pyrunc_cmd, container_id)["status"] == "paused"
    _ok(pyrunc_cmd("resume", container_id))
    _ok(pyrunc_cmd("kill", container_id, "KILL"))
    deadline = time.monotonic() + 10
    while _state(pyrunc_cmd, container_id)["status"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _state(pyrunc_cmd, container_id)["status"] == "stopped"
    _ok(pyrunc_cmd("delete", container_id))
    assert not (state_root / container_id).exists()


def test_leave_running(pyrunc_cmd, bundle, container_id, tmp_path):
    """Also: the org.criu.config annotation names a CRIU configuration file, whose
    settings win over the RPC's (here the log file's name)."""
    criu_config = tmp_path / "criu.conf"
    criu_config.write_text("log-file custom.log\n")

    def annotate(config):
        config["annotations"] = {"org.criu.config": str(criu_config)}
    bundle_dir = _counter_bundle(bundle, "/count", annotate)
    count_file = bundle_dir / "rootfs" / "count"
    _start(pyrunc_cmd, bundle_dir, container_id, count_file)
    images = tmp_path / "images"
    _checkpoint(pyrunc_cmd, container_id, images, "--leave-running", "--manage-cgroups-mode", "soft")
    assert _state(pyrunc_cmd, container_id)["status"] == "running"
    _wait_count_above(count_file, _count(count_file))
    assert list(images.glob("pages-*.img")), os.listdir(images)
    assert (images / "custom.log").exists() and not (images / "dump.log").exists(), os.listdir(images)
    _ok(pyrunc_cmd("delete", "--force", container_id))


def test_pre_dump_then_dump(pyrunc_cmd, bundle, container_id, tmp_path):
    bundle_dir = _counter_bundle(bundle, "/count")
    count_file = bundle_dir / "rootfs" / "count"
    _start(pyrunc_cmd, bundle_dir, container_id, count_file)
    images = tmp_path / "images"
    _checkpoint(pyrunc_cmd, container_id, images / "parent", "--pre-dump")
    assert _state(pyrunc_cmd, container_id)["status"] == "running"
    assert list((images / "parent").glob("pages-*.img")), os.listdir(images / "parent")
    _wait_count_above(count_file, _count(count_file))
    _checkpoint(pyrunc_cmd, container_id, images / "final", "--parent-path", "../parent")
    assert pyrunc_cmd("state", container_id).returncode == 1
    saved = _stopped_at(count_file)
    # the final dump refers to the pre-dump's pages instead of copying them
    assert (images / "final" / "parent").is_symlink()
    _restore(pyrunc_cmd, bundle_dir, container_id, images / "final")
    assert _count(count_file) >= saved
    _wait_count_above(count_file, saved + 5)
    _ok(pyrunc_cmd("delete", "--force", container_id))


def test_foreground_restore_with_stdio_pipes(pyrunc_cmd, bundle, container_id, tmp_path, state_root):
    """The init's stdio are pipes: descriptors.json records them and the restored process
    writes into the pipe `restore` was given (runc's inherit_fd). Without -d, restore is
    run's foreground: it waits for the restored init, returns its exit status and deletes
    the container."""
    # stderr onto the stdout pipe: pyrunc's own stderr is a file CRIU could not dump
    bundle_dir = bundle(args=["sh", "-c", "exec 2>&1; i=0; while :; do i=$((i+1)); echo $i; usleep 50000; done"])
    pyrunc = pyrunc_cmd("--version").args[0]
    root = ["--root", str(state_root)]
    errors = tmp_path / "errors"
    with open(errors, "wb") as err:
        first = subprocess.Popen([pyrunc, *root, "run", "-d", "-b", bundle_dir, container_id],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)
        assert first.wait(60) == 0, errors.read_text()
        assert int(first.stdout.readline()) >= 1
        images = tmp_path / "images"
        _checkpoint(pyrunc_cmd, container_id, images)
        descriptors = json.loads((images / "descriptors.json").read_text())
        assert all(name.startswith("pipe:") for name in descriptors), descriptors
        second = subprocess.Popen([pyrunc, *root, "restore", "-b", bundle_dir, "--image-path", images,
                                   container_id], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)
        counted = [int(second.stdout.readline()) for _ in range(3)]
        assert counted[0] > 1 and counted == sorted(counted), counted
        # (SIGKILL: a pid namespace's init ignores signals it has no handler for)
        os.kill(_state(pyrunc_cmd, container_id)["pid"], 9)
        assert second.wait(60) == 128 + 9, errors.read_text()
    assert not (state_root / container_id).exists()
    for process in (first, second):
        process.stdin.close()
        process.stdout.close()


def _receive_master(listener) -> int:
    """The pty master a runtime sends to its --console-socket (SCM_RIGHTS)."""
    import socket
    import struct
    listener.settimeout(60)
    connection, _ = listener.accept()
    with connection:
        _data, ancdata, _flags, _addr = connection.recvmsg(4096, socket.CMSG_SPACE(4))
    (level, kind, raw), = ancdata
    assert (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS)
    return struct.unpack("i", raw[:4])[0]


def _numbers_from(master: int, count: int) -> list[int]:
    import select
    text = b""
    deadline = time.monotonic() + 30
    while text.count(b"\n") < count + 1 and time.monotonic() < deadline:
        if select.select([master], [], [], 1)[0]:
            text += os.read(master, 4096)
    # the first line may be cut: only whole lines after it
    return [int(line) for line in text.replace(b"\r", b"").split(b"\n")[1:-1]][:count]


def test_terminal_restored_through_the_console_socket(pyrunc_cmd, bundle, container_id, tmp_path):
    """A container with a terminal: CRIU restores the pty's slave and hands the new
    master over (orphan-pts-master), which restore sends to --console-socket."""
    import socket
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock_path = str(tmp_path / "console.sock")
    listener.bind(sock_path)
    listener.listen(2)
    bundle_dir = bundle(lambda c: c["process"].update(terminal=True),
                        args=["sh", "-c", "i=0; while :; do i=$((i+1)); echo $i; usleep 50000; done"])
    with listener:
        _ok(pyrunc_cmd("run", "-d", "--console-socket", sock_path, "-b", bundle_dir, container_id,
                       timeout=120))
        first = _receive_master(listener)
        seen = _numbers_from(first, 3)
        images = tmp_path / "images"
        _checkpoint(pyrunc_cmd, container_id, images)
        os.close(first)
        _restore(pyrunc_cmd, bundle_dir, container_id, images, "--console-socket", sock_path)
        second = _receive_master(listener)
        after = _numbers_from(second, 3)
        os.close(second)
    assert after[0] > seen[-1] and after == sorted(after), (seen, after)
    _ok(pyrunc_cmd("delete", "--force", container_id))
