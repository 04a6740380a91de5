"""AppArmor and SELinux on a real kernel: this host runs neither, so the qemu guest of
tests/vm/guest.py boots Debian's kernel twice, once with `security=apparmor` and once
with `security=selinux`, and runs tests/vm/guest_lsm.py there (the tests of that LSM,
selected by -k). Each boot must pass every selected test: a skip inside the guest would
hide the feature, so it fails here.

Needs the apparmor (apparmor_parser), policycoreutils (load_policy) and
selinux-policy-default packages, which ./setup.sh installs; the guest sees them through
its read-only view of this host's /."""
from __future__ import annotations

import os
import re
import shutil

import pytest

from support import load_vm_guest, require_vm_guest

guest = load_vm_guest()

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="qemu's 9p export of / needs root")

GUEST_TESTS = "tests/vm/guest_lsm.py"
# boot ~10 s, Python and pytest start-up ~20 s under TCG, the tests 25-35 s
TIMEOUT = 200.0


@pytest.fixture(scope="module")
def guest_ready():
    require_vm_guest(guest)


@pytest.mark.parametrize("kernel_arg, selection, tools, at_least", [
    ("security=apparmor", "apparmor or profile", ("apparmor_parser",), 6),
    ("security=selinux", "selinux or label", ("load_policy",), 5),
])
def test_lsm_applied_in_the_guest(guest_ready, kernel_arg, selection, tools, at_least):
    missing = [tool for tool in tools if shutil.which(tool, path="/usr/sbin:/sbin:/usr/bin") is None]
    assert not missing, f"{missing} not installed (./setup.sh installs them)"
    command = guest.pytest_argv([GUEST_TESTS], ["-q", "-rfEs", "-k", selection])
    result = guest.run_guest(command, timeout=TIMEOUT, extra_kernel_args=[kernel_arg])
    summaries = [line for line in result.output.splitlines() if re.search(r"\d+ (passed|failed|error)", line)]
    summary = summaries[-1] if summaries else "no pytest summary"
    print(f"guest ({kernel_arg}): boot {result.boot_seconds:.1f} s, total {result.total_seconds:.1f} s; {summary}")
    tail = "\n".join(result.output.splitlines()[-80:])
    assert result.exit_code == 0, f"pytest in the guest ({kernel_arg}) exited {result.exit_code}:\n{tail}"
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) >= at_least, summary
    assert "skipped" not in summary, f"a skip in the guest hides the feature: {summary}"
