"""--systemd-cgroup on a host where systemd is not PID 1 (this one): a one-line error as
runc's, runc's exit code, nothing left behind; and the cgroupfs driver never imports the
systemd driver or its D-Bus client. The driver at work is tested in the systemd guest
(tests/vm/test_systemd_guest.py)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

NO_SYSTEMD = not os.path.isdir("/run/systemd/system")


def _error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.skipif(not NO_SYSTEMD, reason="systemd is PID 1 here")
@pytest.mark.parametrize("cgroups_path", [None, "system.slice:pyrunc:x", "foo:b:c"])
def test_no_systemd_is_a_clear_error_as_runc(pyrunc_cmd, runc_cmd, bundle, container_id,
                                             state_root, runc_root, assert_no_residue, cgroups_path):
    def edit(config):
        if cgroups_path is not None:
            config["linux"]["cgroupsPath"] = cgroups_path
    bundle_dir = bundle(edit, args=["true"])
    ours = pyrunc_cmd("--systemd-cgroup", "run", "-b", bundle_dir, container_id)
    theirs = runc_cmd("--systemd-cgroup", "run", "-b", bundle_dir, container_id)
    assert ours.returncode == theirs.returncode == 1, (ours.stderr, theirs.stderr)
    message = "systemd not running on this host, cannot use systemd cgroups manager"
    assert message in _error_line(ours.stderr)
    assert message in theirs.stderr
    assert_no_residue(state_root, [container_id])
    assert_no_residue(runc_root, [container_id])


@pytest.mark.parametrize("cgroups_path", ["/machine/x", "a:b"])
def test_bad_systemd_cgroups_path_as_runc(pyrunc_cmd, runc_cmd, bundle, container_id,
                                          state_root, assert_no_residue, cgroups_path):
    bundle_dir = bundle(lambda c: c["linux"].__setitem__("cgroupsPath", cgroups_path), args=["true"])
    ours = pyrunc_cmd("--systemd-cgroup", "create", "-b", bundle_dir, container_id)
    theirs = runc_cmd("--systemd-cgroup", "create", "-b", bundle_dir, container_id)
    assert ours.returncode == theirs.returncode == 1, (ours.stderr, theirs.stderr)
    message = ('expected cgroupsPath to be of format \\"slice:prefix:name\\" for systemd cgroups, '
               f'got \\"{cgroups_path}\\" instead')  # as logged: quotes escaped
    assert message in _error_line(ours.stderr)
    assert message in theirs.stderr
    assert_no_residue(state_root, [container_id])


def test_cgroupfs_driver_does_not_import_the_systemd_driver(pyrunc_cmd, bundle, container_id):
    """The hot path stays free of D-Bus: run a container with the cgroupfs driver in
    this process and look at what got imported."""
    bundle_dir = bundle(args=["true"])
    root = pyrunc_cmd.__self__.root
    code = ("import sys\nfrom pyrunc import cli\n"
            "try:\n    cli.run(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m == 'pyrunc.cgroups.systemd' or m.startswith('jeepney')))")
    result = subprocess.run([sys.executable, "-P", "-c", code, "--root", str(root), "run", "-b", str(bundle_dir), container_id],
                            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.stdout.strip().splitlines()[-1] == "[]", (result.stdout, result.stderr)
