"""The pyrunc pytest plugin's fixtures (pyrunc_config, pyrunc_record, assert_denied,
assert_allowed, assert_cap, pyrunc_container) checking real profiles and capabilities
with pyrunc-probe — the tests a hardening-profile author would write."""
from __future__ import annotations

import errno

import pytest

from pyrunc.api import PROBE_IN_CONTAINER

pytestmark = pytest.mark.integration

CLONE_NEWNS = 0x00020000


@pytest.fixture
def probe_profile(pyrunc_config, pyrunc_record):
    """A profile recorded from the probe doing getpid: just what a static program needs."""
    recording = pyrunc_record(pyrunc_config.copy().with_probe().args(PROBE_IN_CONTAINER, "getpid"))
    assert recording.result.exit_code == 0 and recording.result.stdout.startswith("ret=")
    assert "getpid" in recording.syscalls and "mkdirat" not in recording.syscalls
    return recording.profile()


def test_recorded_profile_denies_what_was_not_recorded(pyrunc_config, probe_profile, assert_denied,
                                                      assert_allowed):
    pyrunc_config.seccomp(probe_profile)
    assert_allowed("getpid")
    assert_denied("mkdirat", errno.EPERM, -100, "/dev/x", 0o755)  # the default errnoRet
    assert_denied("unshare", errno.EPERM, CLONE_NEWNS)
    # newer than every syscall the profile names: ENOSYS, so libc would fall back
    assert_denied("clone3", errno.ENOSYS, 0, 0)


def test_rule_errno_and_arguments(pyrunc_config, probe_profile, assert_denied, assert_allowed):
    probe_profile["syscalls"].append({"names": ["mkdirat"], "action": "SCMP_ACT_ERRNO",
                                      "errnoRet": errno.EROFS})
    probe_profile["syscalls"].append({"names": ["unshare"], "action": "SCMP_ACT_ALLOW",
                                      "args": [{"index": 0, "value": CLONE_NEWNS, "op": "SCMP_CMP_EQ"}]})
    pyrunc_config.seccomp(probe_profile)
    assert_denied("mkdirat", errno.EROFS, -100, "/dev/x", 0o755)
    # the default caps lack CAP_SYS_ADMIN: the filter lets it through, the kernel says no
    assert_denied("unshare", errno.EPERM, CLONE_NEWNS)
    pyrunc_config.caps("CAP_SYS_ADMIN")
    assert_allowed("unshare", CLONE_NEWNS)
    assert_denied("unshare", errno.EPERM, 0x04000000)  # CLONE_NEWUTS: no rule -> default


def test_without_seccomp_the_kernel_answers(pyrunc_config, assert_denied, assert_allowed):
    assert_denied("mkdirat", errno.EROFS, -100, "/x", 0o755)  # read-only rootfs
    assert_allowed("mkdirat", -100, "/dev/x", 0o755)  # /dev is the container's tmpfs


def test_assert_cap(pyrunc_config, assert_cap):
    assert_cap("CAP_KILL")  # runc's default set
    assert_cap("net_bind_service", sets=("effective", "permitted"))
    assert_cap("CAP_SYS_ADMIN", present=False)
    pyrunc_config.caps("CAP_SYS_ADMIN").user(1000, 1000)
    found = assert_cap("CAP_SYS_ADMIN", sets=("effective", "permitted", "inheritable"))
    assert found["effective"] == {"CAP_SYS_ADMIN"}


def test_helpers_fail_when_the_expectation_is_wrong(pyrunc_config, assert_denied, assert_allowed, assert_cap):
    with pytest.raises(AssertionError, match=r"getpid\(\): expected EPERM, got success"):
        assert_denied("getpid", errno.EPERM)
    with pytest.raises(AssertionError, match=r"expected success, got EROFS"):
        assert_allowed("mkdirat", -100, "/x", 0o755)
    with pytest.raises(AssertionError, match="CAP_SYS_ADMIN missing from the effective set"):
        assert_cap("CAP_SYS_ADMIN")


def test_container_factory_cleans_up(pyrunc_container, pyrunc_config, assert_no_residue):
    container = pyrunc_container(pyrunc_config.copy().args("sleep", "100"))
    container.create().start()
    assert container.status() == "running"
    assert container.exec("hostname").stdout == "pyrunc\n"
    container.close()  # what the fixture's teardown does for every container it made
    assert_no_residue(container.root, [container.id], grace=5)


def test_assert_cap_under_a_profile_without_capget(pyrunc_config, probe_profile, assert_cap):
    from pyrunc.api import HarnessError
    pyrunc_config.seccomp(probe_profile)
    with pytest.raises(HarnessError, match=r"capget failed with EPERM \(does the seccomp profile allow capget\?\)"):
        assert_cap("CAP_KILL")
