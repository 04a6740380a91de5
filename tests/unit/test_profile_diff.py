"""pyrunc.harness.diff: comparing seccomp profiles per syscall, argument and architecture
(libseccomp resolves names and numbers; no root, no kernel filter)."""
from __future__ import annotations

import pytest

from pyrunc.errors import ConfigError
from pyrunc.harness.diff import diff_profiles, diff_table

X86_64 = "SCMP_ARCH_X86_64"
# openat2 (437 on x86_64) is named so that the ENOSYS stub of a profile covers only
# numbers above it and the other syscalls get the default action
BASE = ("read", "write", "openat2")


def allow(*names: str, **extra) -> dict:
    return {"names": list(names), "action": "SCMP_ACT_ALLOW", **extra}


def profile(*rules: dict, default: str = "SCMP_ACT_ERRNO", arches=(X86_64,), **extra) -> dict:
    return {"defaultAction": default, "architectures": list(arches), "syscalls": list(rules), **extra}


def test_identical_profiles():
    a = profile(allow("read", "write", "getpid"))
    result = diff_profiles(a, profile(allow("getpid", "write", "read")))
    assert result["identical"] is True
    assert diff_table(result) == "A: A\nB: B\nthe profiles allow and deny the same syscalls\n"


def test_a_syscall_only_one_profile_allows():
    result = diff_profiles(profile(allow(*BASE, "getdents64")), profile(allow(*BASE)))
    assert result["identical"] is False
    assert result["only_in_a"] == [{"syscall": "getdents64", "arches": [X86_64], "a": "allow", "b": "errno EPERM"}]
    assert result["only_in_b"] == [] and result["different"] == []
    reverse = diff_profiles(profile(allow(*BASE)), profile(allow(*BASE, "getdents64")))
    assert reverse["only_in_b"] == [{"syscall": "getdents64", "arches": [X86_64], "a": "errno EPERM", "b": "allow"}]


def test_newer_syscall_missing_from_a_profile_is_enosys_there():
    # clone3 (435) is above every number B names: B's stub answers ENOSYS, not EPERM
    result = diff_profiles(profile(allow("read", "clone3")), profile(allow("read")))
    assert result["only_in_a"] == [{"syscall": "clone3", "arches": [X86_64], "a": "allow", "b": "errno ENOSYS"}]
    # below B's highest number (openat2 = 437), clone3 gets B's default; openat2 is above
    # A's highest (clone3): ENOSYS there
    result = diff_profiles(profile(allow("read", "clone3")), profile(allow("read", "openat2")))
    rows = {row["syscall"]: row for row in result["only_in_a"] + result["only_in_b"]}
    assert rows["clone3"]["b"] == "errno EPERM" and rows["openat2"]["a"] == "errno ENOSYS"


def test_argument_conditions():
    inet = allow("socket", args=[{"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}])
    inet6 = allow("socket", args=[{"index": 0, "value": 10, "op": "SCMP_CMP_EQ"}])
    result = diff_profiles(profile(inet, inet6), profile(inet))
    assert result["different"] == [{
        "syscall": "socket", "arches": [X86_64],
        "a": "allow if arg0 == 2 || arg0 == 10, else errno EPERM",
        "b": "allow if arg0 == 2, else errno EPERM"}]
    unconditional = diff_profiles(profile(allow("socket")), profile(inet))
    assert unconditional["different"][0]["a"] == "allow"
    masked = allow("personality", args=[{"index": 0, "value": 0xFF, "valueTwo": 8, "op": "SCMP_CMP_MASKED_EQ"}])
    result = diff_profiles(profile(masked), profile())
    assert result["only_in_a"][0]["a"] == "allow if arg0 & 0xff == 8, else errno EPERM"


def test_same_index_twice_is_either_condition():
    either = allow("socket", args=[{"index": 0, "value": 2, "op": "SCMP_CMP_EQ"},
                                   {"index": 0, "value": 10, "op": "SCMP_CMP_EQ"}])
    split = [allow("socket", args=[{"index": 0, "value": v, "op": "SCMP_CMP_EQ"}]) for v in (2, 10)]
    assert diff_profiles(profile(either), profile(*split))["identical"] is True


def test_denials_with_different_errnos():
    a = profile(allow("read"), {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 30})
    result = diff_profiles(a, profile(allow("read", "mkdir"), default="SCMP_ACT_ERRNO"))
    assert result["only_in_b"] == [{"syscall": "mkdir", "arches": [X86_64], "a": "errno EROFS", "b": "allow"}]
    result = diff_profiles(a, profile(allow("read"), {"names": ["mkdir"], "action": "SCMP_ACT_KILL_PROCESS"}))
    assert result["different"] == [{"syscall": "mkdir", "arches": [X86_64], "a": "errno EROFS", "b": "kill process"}]


def test_default_allow_profiles_and_deny_lists():
    deny_list = profile({"names": ["mount"], "action": "SCMP_ACT_ERRNO"}, default="SCMP_ACT_ALLOW")
    result = diff_profiles(deny_list, profile(allow(*BASE)))
    assert result["default"] == {"a": "allow", "b": "errno EPERM"}
    # the names either profile mentions are compared one by one: both deny mount, allow BASE
    assert (result["only_in_a"], result["only_in_b"], result["different"]) == ([], [], [])
    both = diff_profiles(deny_list, profile(allow(*BASE, "mount")))
    assert both["only_in_b"] == [{"syscall": "mount", "arches": [X86_64], "a": "errno EPERM", "b": "allow"}]
    # a syscall neither names (write) is covered by the default row only
    narrow = diff_profiles(deny_list, profile(allow("read", "mount", "openat2")))
    assert narrow["only_in_a"] == [] and narrow["default"] == {"a": "allow", "b": "errno EPERM"}
    assert "default action (syscalls neither profile names): A allow, B errno EPERM\n" in diff_table(narrow)


def test_architectures_are_compared_and_grouped():
    both = (X86_64, "SCMP_ARCH_X86")
    result = diff_profiles(profile(allow(*BASE, "getpid"), arches=both), profile(allow(*BASE), arches=both))
    assert result["only_in_a"] == [{"syscall": "getpid", "arches": [X86_64, "SCMP_ARCH_X86"],
                                    "a": "allow", "b": "errno EPERM"}]
    result = diff_profiles(profile(allow("read"), arches=both), profile(allow("read")))
    assert result["arches_only_in_a"] == ["SCMP_ARCH_X86"] and result["identical"] is False
    # socketcall exists on x86 only: never reported for x86_64
    result = diff_profiles(profile(allow(*BASE, "socketcall"), arches=both), profile(allow(*BASE), arches=both))
    assert result["only_in_a"] == [{"syscall": "socketcall", "arches": ["SCMP_ARCH_X86"],
                                    "a": "allow", "b": "errno EPERM"}]


def test_table_output():
    result = diff_profiles(profile(allow(*BASE, "getdents64")), profile(allow(*BASE), default="SCMP_ACT_KILL"),
                           a_name="a.json", b_name="b.json")
    assert diff_table(result) == (
        "A: a.json\nB: b.json\n"
        "default action (syscalls neither profile names): A errno EPERM, B kill thread\n"
        "CHANGE  SYSCALL     ARCHES  A      B\n"
        "A only  getdents64  x86_64  allow  kill thread\n")


def test_invalid_profile_names_the_side_and_field():
    with pytest.raises(ConfigError, match=r'^b.json: syscalls\[0\].action: unknown action "SCMP_ACT_NOPE"$'):
        diff_profiles(profile(), profile({"names": ["read"], "action": "SCMP_ACT_NOPE"}), b_name="b.json")
