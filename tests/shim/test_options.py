"""What a runc user of containerd sets, through pyrunc's shim, compared with
containerd-shim-runc-v2: runc's runtime options (ctr's --no-pivot, --runtime-config-path;
containerd.runc.v1.Options), binary:// and file:// log URIs, and the exec ids `ctr task
ps` shows."""
from __future__ import annotations

import json
import os
import stat
import subprocess

import pytest

from engine_support import wait_until
from shim_support import new_name


def options_file(tmp_path, text: str) -> str:
    """A runtime options file, as a CRI handler's ConfigPath or ctr --runtime-config-path
    names it: runc's options, keyed as in a CRI runc handler's options table."""
    path = tmp_path / "pyrunc-shim-options.toml"
    path.write_text(text)
    return str(path)


def namespace_mounts(pid: int) -> int:
    """How many mounts the mount namespace of `pid` holds (listmount(2), Linux 6.8, by
    the namespace's id, 6.11): unlike /proc/PID/mountinfo, it counts those the process's
    root hides."""
    import ctypes
    import fcntl
    import struct
    fd = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    try:
        found = bytearray(8)
        fcntl.ioctl(fd, 0x8008b705, found)  # NS_GET_MNTNS_ID
    except OSError as error:
        pytest.skip(f"no mount namespace ids on this kernel: {error}")
    finally:
        os.close(fd)
    libc = ctypes.CDLL(None, use_errno=True)
    request = struct.pack("IIQQQ", 32, 0, (1 << 64) - 1, 0, struct.unpack("Q", found)[0])  # LSMT_ROOT
    ids = (ctypes.c_uint64 * 65536)()
    count = libc.syscall(458, request, ids, len(ids), 0)  # SYS_listmount (x86_64, aarch64 differ)
    if count < 0:
        pytest.skip(f"listmount: {os.strerror(ctypes.get_errno())}")
    return count


def test_no_pivot_from_ctr_task_options(ctr, engine_name):
    """`ctr run --no-pivot` sends containerd.linux.runc.CreateOptions{no_pivot_root} with a
    runtime not named io.containerd.runc*: pyrunc creates the container as
    `pyrunc create --no-pivot` does. After pivot_root the old root is detached, so the
    container's mount namespace holds the mounts it sees; with --no-pivot (the rootfs
    moved on / and chrooted into) it still holds the host's beneath."""
    if os.uname().machine != "x86_64":
        pytest.skip("listmount's syscall number is x86_64's here")
    counts = {}
    for flags in ((), ("--no-pivot",)):
        name = new_name(ctr, engine_name, "-no-pivot" if flags else "")
        ctr.run(name, "sleep", "60", flags=["-d", "--null-io", *flags])
        try:
            seen = ctr.ctr("tasks", "exec", "--exec-id", "mounts", name, "cat", "/proc/self/mountinfo").stdout
            counts[flags] = (len(seen.splitlines()), namespace_mounts(ctr.task_pid(name)))
        finally:
            ctr.remove(name)
    seen, held = counts[()]
    assert held == seen, counts
    seen, held = counts[("--no-pivot",)]
    assert held > seen, counts


def test_runtime_config_path_root_no_new_keyring_io_owner(ctr, engine_name, tmp_path):
    """ctr --runtime-config-path (the CRI's ConfigPath: runtimeoptions.v1.Options): Root is
    the state root (<Root>/<namespace>, where `pyrunc --root` finds the container, and the
    `delete` after a shim crash cleans up), NoNewKeyring reaches pyrunc's create, and
    IoUid/IoGid own the container's stdio pipes (runc's shim copies them to containerd's
    FIFOs), with no output lost. The init then gives each its own uid, keeping the group
    (runc's fixStdioPermissions): root's 0, IoGid's 5678; containerd's FIFOs are 0:0."""
    name = new_name(ctr, engine_name)
    root = tmp_path / "state-root"
    config = options_file(tmp_path, f'Root = "{root}"\nNoNewKeyring = true\nIoUid = 1234\nIoGid = 5678\n')
    result = ctr.run(name, "sh", "-c", "stat -L -c '%u:%g' /proc/self/fd/0 /proc/self/fd/1 /proc/self/fd/2; "
                     "cat; echo to-stderr >&2", flags=["--rm", "--runtime-config-path", config],
                     input="from stdin\n")
    assert result.stdout.splitlines() == ["0:5678"] * 3 + ["from stdin"], result
    assert result.stderr.endswith("to-stderr\n"), result

    # detached: the state is under Root, with pyrunc's no_new_keyring; a shim crash's
    # `delete` finds it there through <bundle>/options.json
    ctr.run(name, "sleep", "60", flags=["-d", "--null-io", "--runtime-config-path", config])
    try:
        state_dir = root / ctr.namespace / name
        with open(state_dir / "state.json") as f:
            assert json.load(f)["no_new_keyring"] is True
        assert not os.path.exists(f"{ctr.runtime_root()}/{name}")
        state = subprocess.run([ctr.pyrunc, "--root", str(root / ctr.namespace), "state", name],
                               capture_output=True, text=True, check=True).stdout
        assert json.loads(state)["status"] == "running"
        assert json.loads((ctr.bundle(name) / "options.json").read_text()) == \
            {"no_new_keyring": True, "io_uid": 1234, "io_gid": 5678, "root": str(root)}
        pid = ctr.task_pid(name)
        os.kill(int((ctr.bundle(name) / "shim.pid").read_text()), 9)
        wait_until(lambda: not os.path.exists(f"/proc/{pid}/stat")
                   or open(f"/proc/{pid}/stat").read().split(") ")[1][0] in "ZX", 15, "the init to die")
        wait_until(lambda: not state_dir.exists(), 15, "the state dir under Root to go")
    finally:
        ctr.remove(name)


def test_systemd_cgroup_reaches_the_systemd_driver(ctr, engine_name, tmp_path, bundle, container_id):
    """SystemdCgroup = true is pyrunc --systemd-cgroup for the task. With no systemd as pid 1
    here, Create fails exactly as `pyrunc --systemd-cgroup create` does (tests/vm's systemd
    guest runs a pod with it)."""
    if os.path.isdir("/run/systemd/system"):
        pytest.skip("systemd runs here: the option's effect is tested in tests/vm's systemd guest")
    expected = subprocess.run([ctr.pyrunc, "--root", str(tmp_path / "root"), "--systemd-cgroup", "create",
                               "--bundle", str(bundle(name=container_id)), container_id],
                              capture_output=True, text=True)
    assert expected.returncode != 0
    import re
    last = expected.stderr.strip().splitlines()[-1]  # runc's logrus line: msg="..."
    found = re.search(r'msg="(.*)"', last)
    message = found.group(1) if found else last
    assert "systemd" in message, message
    name = new_name(ctr, engine_name)
    config = options_file(tmp_path, "SystemdCgroup = true\n")
    result = ctr.ctr("run", "--runtime", "io.containerd.pyrunc.v2", "--runtime-config-path", config,
                     "--cgroup", f"system.slice:pyrunc-test:{name}", "--rm", "docker.io/library/pyrunc-busybox:latest",
                     name, "true", check=False)
    assert result.returncode != 0, result
    assert f"failed to create shim task: {message}" in result.stderr, (message, result.stderr)
    ctr.ctr("containers", "delete", name, check=False)


def test_options_refused_by_name(ctr, engine_name, tmp_path):
    """What pyrunc's shim cannot honour fails the Create naming the option: another
    runtime binary, an option runc does not have."""
    name = new_name(ctr, engine_name)
    for text, named in (('BinaryName = "/usr/sbin/runc"\n', "BinaryName '/usr/sbin/runc'"),
                        ("SystemdCgroups = true\n", "unknown option 'SystemdCgroups'")):
        config = options_file(tmp_path, text)
        result = ctr.ctr("run", "--runtime", "io.containerd.pyrunc.v2", "--runtime-config-path", config, "--rm",
                         "--cgroup", f"{ctr.cgroup_parent}/{name}", "docker.io/library/pyrunc-busybox:latest",
                         name, "true", check=False)
        assert result.returncode != 0 and named in result.stderr, result
        ctr.ctr("containers", "delete", name, check=False)


LOGGER = """#!/bin/sh
# a binary:// logger: stdout on fd 3, stderr on fd 4, ready on fd 5 (containerd's contract)
dir=$2
echo "$CONTAINER_ID $CONTAINER_NAMESPACE $*" > "$dir/called"
/bin/cat <&3 > "$dir/stdout" &
/bin/cat <&4 > "$dir/stderr" &
echo ready >&5
exec 5>&- 3<&- 4<&-
trap 'echo TERM >> "$dir/called"' TERM
wait
"""


def test_binary_log_uri(ctr, engine_name, tmp_path):
    """ctr --log-uri binary:///path?key=value: a logging process as runc's shim starts it
    (fds 3/4/5, CONTAINER_ID and CONTAINER_NAMESPACE, the query as arguments), which
    gets every line of the container's stdout and stderr; ended by the task's deletion."""
    name = new_name(ctr, engine_name)
    logger = tmp_path / "logger.sh"
    logger.write_text(LOGGER)
    logger.chmod(0o755)
    logs = tmp_path / "logs"
    logs.mkdir()
    result = ctr.run(name, "sh", "-c", "for i in 1 2 3; do echo out$i; echo err$i >&2; done; exit 6",
                     flags=["--rm", "--log-uri", f"binary://{logger}?dir={logs}"], check=False)
    assert result.returncode == 6, result
    wait_until(lambda: (logs / "stderr").exists() and (logs / "stderr").read_text() == "err1\nerr2\nerr3\n",
               10, "the logger's stderr")
    assert (logs / "stdout").read_text() == "out1\nout2\nout3\n"
    assert (logs / "called").read_text().splitlines()[0] == f"{name} {ctr.namespace} dir {logs}"
    assert not [p for p in os.listdir("/proc") if p.isdigit() and str(logger) in _cmdline(p)]


def _cmdline(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def test_file_log_uri_as_runc_makes_it(ctr, engine_name, tmp_path):
    """ctr --log-uri file:///dir/sub/log: missing directories 0755, the file 0644, both
    streams appended to it (containerd-shim-runc-v2's file:// handling)."""
    name = new_name(ctr, engine_name)
    log = tmp_path / "new" / "sub" / "out.log"
    old_umask = os.umask(0o022)
    try:
        ctr.run(name, "sh", "-c", "echo one; echo two >&2", flags=["--rm", "--log-uri", f"file://{log}"])
    finally:
        os.umask(old_umask)
    assert sorted(log.read_text().splitlines()) == ["one", "two"]
    assert stat.S_IMODE(log.stat().st_mode) == 0o644
    assert stat.S_IMODE(log.parent.stat().st_mode) == 0o755
    assert stat.S_IMODE(log.parent.parent.stat().st_mode) == 0o755


def test_stdin_ends_when_the_client_closes_it(ctr, engine_name):
    """`echo x | ctr run ... cat` ends: when the client closes its end of the stdin FIFO
    the container's stdin ends, as runc's shim copies it (ctr run sends no CloseIO)."""
    name = new_name(ctr, engine_name)
    result = ctr.run(name, "sh", "-c", "cat; echo after-eof", flags=["--rm"], input="line\n", timeout=20)
    assert result.stdout == "line\nafter-eof\n", result


def test_ps_names_exec_processes(ctr, engine_name):
    """`ctr task ps` shows the exec id of an exec'd process: runc's shim's Pids fills
    ProcessInfo.info with a containerd.runc.v1.ProcessDetails."""
    name = new_name(ctr, engine_name)
    ctr.run(name, "sleep", "60", flags=["-d", "--null-io"])
    try:
        ctr.ctr("tasks", "exec", "-d", "--exec-id", "sleeper", name, "sleep", "60")
        lines = ctr.ctr("tasks", "ps", name).stdout.splitlines()
        info = {int(line.split()[0]): line.split(None, 1)[1] for line in lines[1:]}
        assert info[ctr.task_pid(name)] == "-", lines
        named = [text for text in info.values() if "ExecID:sleeper" in text]
        assert len(named) == 1, lines
    finally:
        ctr.remove(name)


def test_group_annotation_shares_a_shim(ctr, engine_name):
    """runc's shim's io.containerd.runc.v2.group annotation: containers that name the same
    group share one shim (socket and Shutdown), as a CRI sandbox's do."""
    names = [new_name(ctr, engine_name, suffix) for suffix in ("-a", "-b", "-c")]
    try:
        for name, group in zip(names, ("g1", "g1", "")):
            flags = ["-d", "--null-io"] + (["--annotation", f"io.containerd.runc.v2.group={engine_name}-{group}"]
                                           if group else [])
            ctr.run(name, "sleep", "60", flags=flags)
        addresses = [ctr.shim_address(name) for name in names]
        assert addresses[0] == addresses[1] != addresses[2], addresses
    finally:
        for name in names:
            ctr.remove(name)
