"""The systemd cgroup driver against a real systemd: this host has no systemd as pid 1,
so the qemu guest of tests/vm/guest.py boots with systemd as pid 1 (the host's own
systemd, over the read-only 9p root), once with the unified hierarchy and once hybrid
(v1 controllers plus cgroup2), and runs tests/vm/guest_systemd.py in a service there
(unified: also tests/vm/guest_systemd_cri.py, a pod through containerd's CRI with
SystemdCgroup = true and pyrunc as BinaryName, and through pyrunc's own shim).
Every test must pass and none skip: a skip would hide the driver. See docs/vm.md."""
from __future__ import annotations

import os
import re

import pytest

from support import load_vm_guest, require_vm_guest

guest = load_vm_guest()

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="qemu's 9p export of / needs root")

GUEST_TESTS = "tests/vm/guest_systemd.py"
# unified only: a pod through containerd's CRI with SystemdCgroup = true and pyrunc
GUEST_CRI_TESTS = "tests/vm/guest_systemd_cri.py"
# measured (2 vCPUs, host load 8-10): boot to READY 16-39 s, pytest 92-185 s for the 13
# unified tests, 52 s for the hybrid subset; qemu start to power-off 94-225 s
TIMEOUT = 360.0


@pytest.fixture(scope="module")
def guest_ready():
    require_vm_guest(guest)
    if not os.access(guest.SYSTEMD, os.X_OK):
        pytest.fail(f"{guest.SYSTEMD} not installed (the systemd package)")


# hybrid: only what differs there (the v1 properties and paths, one unit per hierarchy),
# which keeps this second boot near a minute and a half
HYBRID_SELECTION = "transient_scope or lifecycle or delete_force or match_runc"


@pytest.mark.parametrize("hybrid, tests, selection, at_least", [
    (False, [GUEST_TESTS, GUEST_CRI_TESTS], None, 15),
    (True, [GUEST_TESTS], HYBRID_SELECTION, 4),
], ids=["unified", "hybrid"])
def test_systemd_driver_in_a_systemd_guest(guest_ready, hybrid, tests, selection, at_least):
    command = guest.pytest_argv(tests, ["-q", "-rfEs"] + (["-k", selection] if selection else []))
    result = guest.run_guest(command, timeout=TIMEOUT, init="systemd", cgroup_v1=hybrid)
    summaries = [line for line in result.output.splitlines() if re.search(r"\d+ (passed|failed|error)", line)]
    summary = summaries[-1] if summaries else "no pytest summary"
    print(f"systemd guest ({'hybrid' if hybrid else 'unified'}): boot {result.boot_seconds:.1f} s, "
          f"total {result.total_seconds:.1f} s; {summary}")
    tail = "\n".join(result.output.splitlines()[-120:])
    assert result.exit_code == 0, f"pytest in the systemd guest exited {result.exit_code}:\n{tail}"
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) >= at_least, summary
    assert "skipped" not in summary, f"a skip in the guest hides the driver: {summary}"
