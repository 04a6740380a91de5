"""Capability and rlimit tables, checked against the kernel headers and the running kernel."""
import os
import re
import resource

import pytest

from pyrunc import caps, rlimits
from pyrunc.errors import PyruncError

CAPABILITY_HEADER = "/usr/include/linux/capability.h"


def test_table_is_contiguous_from_zero():
    assert sorted(caps.CAPABILITIES.values()) == list(range(len(caps.CAPABILITIES)))
    assert caps.CAPABILITIES["CAP_CHOWN"] == 0
    assert caps.CAPABILITIES["CAP_CHECKPOINT_RESTORE"] == 40
    assert caps.TABLE_LAST_CAP == 40


@pytest.mark.skipif(not os.path.exists(CAPABILITY_HEADER), reason=f"{CAPABILITY_HEADER} not installed")
def test_table_matches_kernel_header():
    with open(CAPABILITY_HEADER) as f:
        header = f.read()
    defined = {
        name: int(number)
        for name, number in re.findall(r"^#define\s+(CAP_[A-Z_]+)\s+(\d+)\s*$", header, re.MULTILINE)
        if name != "CAP_LAST_CAP"
    }
    assert defined == caps.CAPABILITIES


def test_cap_number_and_unknown():
    assert caps.cap_number("CAP_KILL") == 5
    assert caps.cap_number("CAP_SYS_ADMIN") == 21
    for bad in ("CAP_FOO", "cap_kill", "KILL", ""):
        with pytest.raises(caps.UnknownCapability) as info:
            caps.cap_number(bad)
        assert str(info.value) == f'unknown capability "{bad}"'
        assert isinstance(info.value, PyruncError) and isinstance(info.value, ValueError)


def test_last_cap_reads_the_kernel():
    with open("/proc/sys/kernel/cap_last_cap") as f:
        expected = int(f.read())
    assert caps.last_cap() == expected
    assert caps.last_cap() == expected  # cached path


def test_mask_round_trip():
    names = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    bits = caps.mask(names)
    assert bits == (1 << 29) | (1 << 5) | (1 << 10)
    assert caps.names_from_mask(bits) == ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE"]
    everything = caps.mask(caps.CAPABILITIES)
    assert everything == (1 << 41) - 1
    assert caps.names_from_mask(everything) == list(caps.CAPABILITIES)
    assert caps.mask([]) == 0 and caps.names_from_mask(0) == []
    # Bits beyond the table have no name and are left out.
    assert caps.names_from_mask(1 << 50 | 1) == ["CAP_CHOWN"]
    with pytest.raises(caps.UnknownCapability):
        caps.mask(["CAP_KILL", "CAP_NOPE"])


def test_mask_matches_own_capability_sets():
    # As root in this sandbox our bounding set is some subset of the kernel's caps:
    # reading it back through the table must give the same mask.
    with open("/proc/self/status") as f:
        bounding = int(next(line for line in f if line.startswith("CapBnd:")).split()[1], 16)
    known = bounding & ((1 << (caps.TABLE_LAST_CAP + 1)) - 1)
    assert caps.mask(caps.names_from_mask(bounding)) == known


def test_split_by_kernel():
    names = list(caps.CAPABILITIES)
    supported, unsupported = caps.split_by_kernel(names)
    limit = caps.last_cap()
    assert supported == [n for n in names if caps.CAPABILITIES[n] <= limit]
    assert unsupported == [n for n in names if caps.CAPABILITIES[n] > limit]
    # names not in the table at all are ignored too (runc warns and goes on)
    assert caps.split_by_kernel(["CAP_FOO", "CAP_KILL", "cap_kill"]) == (["CAP_KILL"], ["CAP_FOO", "cap_kill"])


def test_rlimit_table_matches_python_resource_module():
    assert len(rlimits.RLIMITS) == 16
    for name, number in rlimits.RLIMITS.items():
        if hasattr(resource, name):
            assert getattr(resource, name) == number, name
    assert rlimits.rlimit_number("RLIMIT_NOFILE") == resource.RLIMIT_NOFILE
    assert rlimits.RLIM_INFINITY == resource.RLIM_INFINITY % (1 << 64)


def test_rlimit_numbers_work_with_getrlimit():
    for name, number in rlimits.RLIMITS.items():
        resource.getrlimit(number)  # the kernel knows every number in the table


def test_unknown_rlimit():
    with pytest.raises(rlimits.UnknownRlimit) as info:
        rlimits.rlimit_number("RLIMIT_FOO")
    assert str(info.value) == 'unknown rlimit "RLIMIT_FOO"'
    assert isinstance(info.value, PyruncError)
