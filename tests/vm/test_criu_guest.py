"""checkpoint/restore with CRIU, proven in the qemu guest of tests/vm/guest.py: Debian's
criu 3.17 fails on this host's kernel ("Unexpected rt vDSO area bounds"), and works on
Debian's 6.1 kernel the guest boots. Runs tests/vm/guest_criu.py there, and podman's
`container checkpoint` / `restore` with pyrunc as its runtime (from
tests/engines/test_podman.py; its runc variant is left out to save two minutes), against
the installed pyrunc (shared read-only over 9p; PYRUNC_BIN picks another). Every guest
test must pass, none skip: a skip would hide the feature. See docs/checkpoint.md."""
from __future__ import annotations

import os
import re
import shutil

import pytest

from support import load_vm_guest, require_vm_guest

guest = load_vm_guest()

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="qemu's 9p export of / needs root")

GUEST_TESTS = ["tests/vm/guest_criu.py",
               "tests/engines/test_podman.py::test_container_checkpoint_and_restore[pyrunc]"]
EXPECTED_TESTS = 6
# boot 8-20 s, pytest 170-250 s (each checkpoint or restore 5-16 s under TCG, more
# when the host is loaded; podman's image import and checkpoint/restore ~60 s)
TIMEOUT = 420.0


def test_checkpoint_restore_in_the_guest():
    require_vm_guest(guest)
    assert shutil.which("criu", path="/usr/sbin:/sbin:/usr/bin") is not None, \
        "criu is not installed (./setup.sh installs it)"
    command = guest.pytest_argv(GUEST_TESTS, ["-q", "-rfEs", "-s"])
    result = guest.run_guest(command, timeout=TIMEOUT)
    summaries = [line for line in result.output.splitlines() if re.search(r"\d+ (passed|failed|error)", line)]
    summary = summaries[-1] if summaries else "no pytest summary"
    # guest_criu.py prints each command's time (pytest's progress dots may precede it)
    timings = [line.strip(" .") for line in result.output.splitlines()
               if re.match(r"[\s.]*(checkpoint|restore)\b.*: [\d.]+ s$", line)]
    print(f"guest: boot {result.boot_seconds:.1f} s, total {result.total_seconds:.1f} s; {summary}")
    print("\n".join(timings))
    tail = "\n".join(result.output.splitlines()[-100:])
    assert result.exit_code == 0, f"pytest in the guest exited {result.exit_code}:\n{tail}"
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) >= EXPECTED_TESTS, summary
    assert "skipped" not in summary, f"a skip in the guest hides the feature: {summary}"
