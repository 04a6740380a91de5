"""pyrunc's cgroup tests on a pure cgroup v2 host: boots the throw-away qemu guest of
tests/vm/guest.py (cgroup2 only, every controller enabled in the root) and runs the cgroup
subset there, against this checkout and the installed pyrunc (shared read-only over 9p).

Skips only when qemu or a usable kernel is missing (./setup.sh installs both, so in CI
it runs). PYRUNC_VM_TESTS="path ..." replaces the subset; see docs/vm.md."""
from __future__ import annotations

import os
import re

import pytest

from support import load_vm_guest, require_vm_guest

guest = load_vm_guest()

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="qemu's 9p export of / needs root")

# Controllers the Debian kernel offers; the guest must have handed all of them out.
EXPECTED_CONTROLLERS = {"cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc"}

# Boot ~10 s, the subset ~100-150 s under load, power-off: well inside CI's budget.
TIMEOUT = 280.0
LEAF_TIMEOUT = 120.0

# A leaf like a systemd service's: the runtime's own cgroup has member processes (pytest).
LEAF_CGROUP = "/system.slice/pyrunc-tests.service"


@pytest.fixture(scope="module")
def guest_ready():
    require_vm_guest(guest)


def test_cgroup_tests_pass_in_a_pure_cgroup_v2_guest(guest_ready):
    tests = guest.default_tests()
    assert tests, "none of the guest's test files exist"
    assert "tests/integration/test_cgroups_placement.py" in tests
    command = guest.pytest_argv(tests, ["-q", "-rfEs"])
    result = guest.run_guest(command, timeout=TIMEOUT)

    summary = [line for line in result.output.splitlines() if re.search(r"\b(passed|failed|error)", line)]
    print(
        f"guest: boot {result.boot_seconds:.1f} s (guest uptime {result.guest_uptime_at_ready} s), "
        f"total {result.total_seconds:.1f} s, controllers: {result.controllers}; "
        f"{summary[-1] if summary else 'no pytest summary'}"
    )
    assert set(result.controllers.split()) >= EXPECTED_CONTROLLERS, result.controllers
    tail = "\n".join(result.output.splitlines()[-120:])
    assert result.exit_code == 0, f"pytest in the guest exited {result.exit_code}:\n{tail}"


def test_lifecycle_from_a_populated_leaf_cgroup(guest_ready):
    """The smoke again, with pytest (so pyrunc's caller) in a service-like leaf cgroup
    instead of the root: relative cgroupsPaths then land below a cgroup with processes."""
    command = guest.pytest_argv(["tests/vm/guest_smoke.py"], ["-q", "-rfEs"])
    result = guest.run_guest(command, cgroup=LEAF_CGROUP, timeout=LEAF_TIMEOUT)
    tail = "\n".join(result.output.splitlines()[-80:])
    assert result.exit_code == 0, f"pytest in the guest ({LEAF_CGROUP}) exited {result.exit_code}:\n{tail}"
