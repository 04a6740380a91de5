"""Bad input to `create` (and `run`): every case must fail with exit 1 and ONE error line on
stderr (no traceback), and leave nothing behind: no state dir, no process, no cgroup, and
no new mount in the caller's mount namespace. The message must name what is wrong."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Optional

import pytest

from support import run_with_files

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")


def mount_table() -> list[str]:
    """This process's mounts as (id, mount point, fs) lines: a leaked mount shows up here."""
    result = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        separator = fields.index("-")
        result.append(f"{fields[0]} {fields[4]} {fields[separator + 1]}")
    return sorted(result)


def own_child_pids() -> set[int]:
    pids = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid():
                pids.add(int(entry))
    return pids


def error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def fails_cleanly(pyrunc_cmd, state_root, container_id, assert_no_residue):
    """Run pyrunc with `words` (the id appended), expect a clean one-line failure, check
    that nothing is left, and return the error line."""

    def check(*words, command: str = "create", cwd: Optional[Path] = None,
              timeout: float = 30) -> str:
        mounts_before = mount_table()
        result = pyrunc_cmd(command, *words, container_id, cwd=cwd, timeout=timeout)
        line = error_line(result)
        assert not (state_root / container_id).exists(), "state dir left behind"
        assert pyrunc_cmd("state", container_id).returncode == 1
        assert_no_residue(state_root, [container_id], grace=5)
        assert mount_table() == mounts_before
        # create never leaves a zombie or a live child of ours (the runtime exited)
        assert own_child_pids() == set()
        return line

    return check


def test_broken_json(fails_cleanly, bundle):
    b = bundle()
    (b / "config.json").write_text('{"ociVersion": "1.0.2", "process": {')
    line = fails_cleanly("-b", b)
    assert "config.json" in line


def test_config_json_missing(fails_cleanly, tmp_path):
    empty_bundle = tmp_path / "empty"
    empty_bundle.mkdir()
    line = fails_cleanly("-b", empty_bundle)
    assert "config.json" in line


def test_unsupported_oci_major_version(fails_cleanly, bundle):
    line = fails_cleanly("-b", bundle(lambda c: c.update(ociVersion="2.0.0")))
    assert "ociVersion" in line and "2.0.0" in line


def test_missing_rootfs_dir(fails_cleanly, bundle, tmp_path):
    missing = tmp_path / "no-such-rootfs"
    line = fails_cleanly("-b", bundle(lambda c: c["root"].update(path=str(missing))))
    assert str(missing) in line or "no-such-rootfs" in line


def test_missing_bundle_dir(fails_cleanly, tmp_path):
    missing = tmp_path / "no-such-bundle"
    line = fails_cleanly("-b", missing)
    assert str(missing) in line and "no such file or directory" in line


def test_relative_bundle_is_resolved_against_cwd(pyrunc_cmd, bundle, container_id, tmp_path,
                                                 fails_cleanly):
    b = bundle(name="relative-bundle")
    # found from its parent, and recorded as an absolute path
    created = pyrunc_cmd("create", "-b", "relative-bundle", container_id, cwd=b.parent)
    assert created.returncode == 0, created.stderr
    state = pyrunc_cmd("state", container_id)
    assert f'"bundle": "{b}"' in state.stdout
    pyrunc_cmd("delete", "--force", container_id, check=True)
    # not found from elsewhere, even though the same name exists under the bundles dir
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    line = fails_cleanly("-b", "relative-bundle", cwd=elsewhere)
    assert "relative-bundle" in line


def test_no_bundle_flag_uses_cwd(pyrunc_cmd, bundle, container_id):
    b = bundle()
    created = pyrunc_cmd("create", container_id, cwd=b)
    assert created.returncode == 0, created.stderr
    assert f'"bundle": "{b}"' in pyrunc_cmd("state", container_id).stdout


def test_unknown_rlimit(fails_cleanly, bundle):
    b = bundle(lambda c: c["process"].update(
        rlimits=[{"type": "RLIMIT_FOO", "hard": 1, "soft": 1}]))
    line = fails_cleanly("-b", b)
    assert "RLIMIT_FOO" in line


def test_unknown_namespace_type(fails_cleanly, bundle):
    b = bundle(lambda c: c["linux"]["namespaces"].append({"type": "foo"}))
    line = fails_cleanly("-b", b)
    assert '"foo"' in line or "\\\"foo\\\"" in line or " foo" in line


def test_executable_not_found_fails_create(fails_cleanly, bundle):
    # runc looks the program up before reporting `create` done, not at `start`
    line = fails_cleanly("-b", bundle(args=["no-such-program"]))
    assert "no-such-program" in line
    assert "executable file not found in $PATH" in line


def test_executable_not_found_fails_run(fails_cleanly, bundle):
    line = fails_cleanly("-b", bundle(args=["no-such-program"]), command="run")
    assert "executable file not found in $PATH" in line


def test_bind_mount_with_missing_source(fails_cleanly, bundle, tmp_path):
    missing = tmp_path / "no-such-source"
    b = bundle(lambda c: c["mounts"].append(
        {"destination": "/mnt", "type": "bind", "source": str(missing),
         "options": ["rbind", "ro"]}))
    line = fails_cleanly("-b", b)
    assert str(missing) in line


def test_hostname_without_uts_namespace(fails_cleanly, bundle):
    def drop_uts(config: dict) -> None:
        config["linux"]["namespaces"] = [
            n for n in config["linux"]["namespaces"] if n["type"] != "uts"
        ]

    line = fails_cleanly("-b", bundle(drop_uts))
    assert "hostname" in line and "uts" in line.lower()


def test_unknown_flag(fails_cleanly, bundle):
    line = fails_cleanly("--no-such-flag", "-b", bundle())
    assert "flag provided but not defined: -no-such-flag" in line


def test_unknown_global_flag(pyrunc_cmd, container_id):
    result = pyrunc_cmd("--no-such-flag", "state", container_id)
    assert "flag provided but not defined: -no-such-flag" in error_line(result)


def run_direct(pyrunc_cmd, state_root: Path, *words) -> subprocess.CompletedProcess:
    """Run pyrunc without the fixture's runner: that runner records the last word of a
    create command line as a container id, and its residue check would then look for a
    cgroup named after a bundle path or "." (both exist, so it reports a false residue)."""
    return run_with_files([pyrunc_cmd.__self__.binary, "--root", str(state_root), *map(str, words)])


def test_missing_id_argument(pyrunc_cmd, bundle, state_root):
    mounts_before = mount_table()
    result = run_direct(pyrunc_cmd, state_root, "create", "-b", bundle())
    line = error_line(result)
    assert "create" in line and "requires exactly 1 argument(s)" in line
    if state_root.exists():
        assert os.listdir(state_root) == []
    assert mount_table() == mounts_before


@pytest.mark.parametrize("bad_id", ["../x", "a/b", ".", "..", "x y", ""])
def test_invalid_id(pyrunc_cmd, bundle, state_root, bad_id, assert_no_residue):
    outside = state_root.parent / "x"
    existed_before = outside.exists()
    mounts_before = mount_table()
    result = run_direct(pyrunc_cmd, state_root, "create", "-b", bundle(), bad_id)
    line = error_line(result)
    # runc: "invalid container ID format", or "container id cannot be empty" for ""
    assert "container id" in line.lower(), line
    assert "invalid" in line.lower() or (not bad_id and "empty" in line), line
    if not existed_before:
        assert not outside.exists(), "the id escaped the state root"
    if state_root.exists():
        assert os.listdir(state_root) == []
    assert mount_table() == mounts_before
    assert own_child_pids() == set()


def test_bad_input_on_other_commands_is_one_line(pyrunc_cmd, container_id):
    for words in (("state",), ("start",), ("kill",), ("delete",),
                  ("state", container_id, "extra"), ("no-such-command",)):
        result = pyrunc_cmd(*words)
        # runc exits 3 for an unknown command (urfave/cli's "No help topic"), 1 otherwise
        assert result.returncode == (3 if words[0] == "no-such-command" else 1), words
        if words[0] != "no-such-command":
            assert "argument(s)" in result.stderr, (words, result.stderr)
        assert "Traceback" not in result.stderr + result.stdout, words
        assert len(result.stderr.splitlines()) == 1, (words, result.stderr)


def _drop_process(config: dict) -> None:
    del config["process"]


# (config edit, substrings the one error line must contain); runc 1.1.5 rejects each at
# `create` too (checked by hand with /usr/sbin/runc).
MORE_CASES = {
    "no-process": (_drop_process, ["process"]),
    "empty-args": (lambda c: c["process"].update(args=[]), ["args"]),
    "relative-cwd": (lambda c: c["process"].update(cwd="tmp"), ["cwd"]),
    "unknown-fs-type": (lambda c: c["mounts"].append(
        {"destination": "/mnt", "type": "no-such-fs", "source": "x"}), ["/mnt", "no such device"]),
    "rootfs-is-a-file": (lambda c: c["root"].update(path="/etc/passwd"), ["/etc/passwd"]),
    "duplicate-namespace": (lambda c: c["linux"]["namespaces"].append({"type": "pid"}),
                            ["pid"]),
    "soft-above-hard": (lambda c: c["process"].update(
        rlimits=[{"type": "RLIMIT_NOFILE", "soft": 2000, "hard": 1000}]), ["rlimit"]),
    "host-sysctl": (lambda c: c["linux"].update(sysctl={"foo.bar": "1"}), ["foo.bar"]),
    "hostname-sysctl": (lambda c: c["linux"].update(sysctl={"kernel.hostname": "x"}),
                        ["kernel.hostname"]),
    "args0-is-a-directory": (lambda c: c["process"].update(args=["/tmp"]),
                             ['"/tmp"', "permission denied"]),
    "args0-not-executable": (lambda c: c["process"].update(args=["/etc/passwd"]),
                             ['"/etc/passwd"', "permission denied"]),
    "args0-absolute-missing": (lambda c: c["process"].update(args=["/no/such/program"]),
                               ['"/no/such/program"', "no such file or directory"]),
    "join-missing-namespace": (lambda c: c["linux"].update(namespaces=[
        n for n in c["linux"]["namespaces"] if n["type"] != "network"
    ] + [{"type": "network", "path": "/nonexistent/ns"}]), ["/nonexistent/ns"]),
}


@pytest.mark.parametrize("case", sorted(MORE_CASES))
def test_more_config_errors(fails_cleanly, bundle, case):
    edit, wanted = MORE_CASES[case]
    line = fails_cleanly("-b", bundle(edit))
    message = line.replace('\\"', '"')  # logrus quotes msg="..." and escapes inner quotes
    for text in wanted:
        assert text in message, (case, line)


def test_pid_file_in_a_missing_directory(fails_cleanly, bundle, tmp_path):
    """The init already exists when the pid file is written: create must kill it and
    clean up, not wait for it (runc: `open /nonexistent/dir/.pid: no such file...`)."""
    missing = tmp_path / "no-such-dir" / "init.pid"
    line = fails_cleanly("-b", bundle(args=["sleep", "60"]), "--pid-file", missing,
                         timeout=15)
    assert str(missing.parent) in line and "no such file or directory" in line
