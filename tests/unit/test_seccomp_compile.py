"""pyrunc.seccomp: OCI profile -> BPF with libseccomp, the -ENOSYS stub, flags, the cache.

Programs are checked by running them in pyrunc.seccomp.bpf's interpreter on a
`struct seccomp_data`; tests/integration/test_seccomp_kernel.py loads them into the kernel.
"""
from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import time

import pytest

import pyrunc
from pyrunc.errors import ConfigError
from pyrunc.seccomp import (FLAG_LOG, FLAG_NEW_LISTENER, FLAG_SPEC_ALLOW, FLAG_TSYNC, FLAG_TSYNC_ESRCH,
                            FLAG_WAIT_KILLABLE_RECV, bpf, compile_filter)
from pyrunc.seccomp.compiler import compile_profile, libseccomp_info
from pyrunc.seccomp.profile import parse

AUDIT_X86_64 = 0xC000003E
AUDIT_I386 = 0x40000003
AUDIT_AARCH64 = 0xC00000B7
X32_BIT = 0x40000000

RET_ALLOW = 0x7FFF0000
RET_LOG = 0x7FFC0000
RET_TRAP = 0x00030000
RET_KILL_THREAD = 0x00000000
RET_KILL_PROCESS = 0x80000000
RET_NOTIFY = 0x7FC00000


def RET_ERRNO(errno: int) -> int:
    return 0x00050000 | errno


def RET_TRACE(errno: int) -> int:
    return 0x7FF00000 | errno


ENOSYS = 38
UNISTD_64 = "/usr/include/x86_64-linux-gnu/asm/unistd_64.h"

# x86_64 and i386 numbers, from the kernel's tables (stable ABI)
NR = {"read": 0, "write": 1, "mkdir": 83, "getppid": 110, "personality": 135, "kill": 62,
      "exit_group": 231, "clone3": 435, "faccessat2": 439}
NR_I386 = {"read": 3, "write": 4, "mkdir": 39, "clone3": 435}
LIBSECCOMP_VERSION = libseccomp_info()[0]

pytestmark = pytest.mark.skipif(os.uname().machine != "x86_64", reason="syscall numbers are x86_64's")


def base_profile(**extra) -> dict:
    profile = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
            {"names": ["kill"], "action": "SCMP_ACT_TRAP"},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
        ],
    }
    profile.update(extra)
    return profile


def run(program: bytes, nr: int, arch: int = AUDIT_X86_64, args=()) -> int:
    return bpf.run(program, bpf.seccomp_data(nr, arch, args))


def compiled(profile: dict) -> bytes:
    program, _ = compile_filter(profile, None)
    assert program is not None
    return program


# ------------------------------------------------------------------ errors name the field

def _set(path: str, value):
    """A mutation of base_profile(): set the field at a dotted path with [i] indexes."""
    def edit(profile: dict) -> None:
        parts = re.findall(r"[^.\[\]]+|\[\d+\]", path)
        target = profile
        for part in parts[:-1]:
            target = target[int(part[1:-1])] if part.startswith("[") else target.setdefault(part, {})
        last = parts[-1]
        if value is _DELETE:
            del target[last]
        elif last.startswith("["):
            target[int(last[1:-1])] = value
        else:
            target[last] = value
    return edit


_DELETE = object()
W = "config.json: linux.seccomp"


@pytest.mark.parametrize("edit, message", [
    (_set("syscalls.[3].action", "SCMP_ACT_FOO"), f'{W}.syscalls[3].action: unknown action "SCMP_ACT_FOO"'),
    (_set("defaultAction", "SCMP_ACT_NOPE"), f'{W}.defaultAction: unknown action "SCMP_ACT_NOPE"'),
    (_set("defaultAction", _DELETE), f"{W}.defaultAction: required field is missing"),
    (_set("defaultAction", 3), f"{W}.defaultAction: expected a string, got a number"),
    (_set("defaultErrnoRet", -1), f"{W}.defaultErrnoRet: -1 is out of range (0 to 65535)"),
    (_set("defaultErrnoRet", "1"), f"{W}.defaultErrnoRet: expected an unsigned integer, got a string"),
    (_set("architectures", ["SCMP_ARCH_X86_64", "SCMP_ARCH_VAX"]),
     f'{W}.architectures[1]: unknown architecture "SCMP_ARCH_VAX"'),
    (_set("architectures", "SCMP_ARCH_X86_64"), f"{W}.architectures: expected an array, got a string"),
    (_set("flags", ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_FOO"]),
     f'{W}.flags[1]: unknown flag "SECCOMP_FILTER_FLAG_FOO"'),
    (_set("syscalls", {"names": ["read"]}), f"{W}.syscalls: expected an array, got an object"),
    (_set("syscalls.[1].names", _DELETE), f"{W}.syscalls[1].names: required field is missing"),
    (_set("syscalls.[1].names", ["mkdir", 7]), f"{W}.syscalls[1].names[1]: expected a string, got a number"),
    (_set("syscalls.[1].names", ["mkdir", ""]), f"{W}.syscalls[1].names[1]: empty string is not a valid syscall"),
    (_set("syscalls.[1].action", _DELETE), f"{W}.syscalls[1].action: required field is missing"),
    (_set("syscalls.[1].errnoRet", 70000), f"{W}.syscalls[1].errnoRet: 70000 is out of range (0 to 65535)"),
    (_set("syscalls.[1].errnoRet", True), f"{W}.syscalls[1].errnoRet: expected an unsigned integer, got a boolean"),
    (_set("syscalls.[3].args.[0].op", "SCMP_CMP_LIKE"), f'{W}.syscalls[3].args[0].op: unknown operator "SCMP_CMP_LIKE"'),
    (_set("syscalls.[3].args.[0].index", 6), f"{W}.syscalls[3].args[0].index: 6 is out of range (0 to 5)"),
    (_set("syscalls.[3].args.[0].value", -5), f"{W}.syscalls[3].args[0].value: -5 is out of range (0 to {2**64 - 1})"),
    (_set("syscalls.[3].args.[0].value", 1.5), f"{W}.syscalls[3].args[0].value: expected an unsigned integer, got the number 1.5"),
    (_set("syscalls.[3].args.[0].valueTwo", 2**64), f"{W}.syscalls[3].args[0].valueTwo: {2**64} is out of range (0 to {2**64 - 1})"),
    (_set("syscalls.[3].args.[0].op", _DELETE), f"{W}.syscalls[3].args[0].op: required field is missing"),
    (_set("defaultAction", "SCMP_ACT_NOTIFY"), f"{W}.defaultAction: SCMP_ACT_NOTIFY cannot be used as default action"),
    (_set("syscalls.[0].action", "SCMP_ACT_NOTIFY"),
     f"{W}.syscalls[0].names[1]: SCMP_ACT_NOTIFY cannot be used for the write syscall"),
    (_set("syscalls.[1].action", "SCMP_ACT_NOTIFY"), f"{W}.listenerPath: required when an action is SCMP_ACT_NOTIFY"),
])
def test_errors_name_the_field(edit, message):
    profile = base_profile()
    edit(profile)
    with pytest.raises(ConfigError) as info:
        compile_filter(profile, None)
    assert str(info.value) == message


def test_rules_of_only_unknown_names_are_skipped():
    """runc skips each name libseccomp does not know (engines ship profiles naming calls
    newer than the host's libseccomp), even when no name of the profile is known."""
    profile = base_profile(syscalls=[{"names": ["no_such_call", "nor_this"], "action": "SCMP_ACT_ERRNO"}],
                           defaultAction="SCMP_ACT_ALLOW")
    bpf, _flags = compile_filter(profile, None)
    assert bpf  # the default action's program, no rule


def test_not_an_object():
    with pytest.raises(ConfigError, match=r"^config.json: linux.seccomp: expected an object, got an array$"):
        compile_filter([], None)


def test_architecture_libseccomp_lacks():
    from pyrunc._native._seccomp import lib
    if lib.seccomp_arch_resolve_name(b"loongarch64"):
        pytest.skip(f"libseccomp {LIBSECCOMP_VERSION} knows loongarch64")
    with pytest.raises(ConfigError) as info:
        compile_filter(base_profile(architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_LOONGARCH64"]), None)
    assert str(info.value) == (f'{W}.architectures[1]: architecture "loongarch64" is not supported by '
                               f"libseccomp {LIBSECCOMP_VERSION}")


def test_disabled_profile_means_no_filter():
    # runc: no defaultAction and no syscalls is no seccomp at all
    assert compile_filter({}, None) == (None, 0)
    assert compile_filter({"defaultAction": "", "architectures": ["SCMP_ARCH_X86_64"]}, None) == (None, 0)


# ------------------------------------------------------------------ actions and rules

def test_actions_and_errno():
    program = compiled(base_profile(syscalls=[
        {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["write"], "action": "SCMP_ACT_LOG"},
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
        {"names": ["getppid"], "action": "SCMP_ACT_ERRNO"},
        {"names": ["kill"], "action": "SCMP_ACT_TRAP"},
        {"names": ["personality"], "action": "SCMP_ACT_KILL_PROCESS"},
        {"names": ["exit_group"], "action": "SCMP_ACT_KILL"},
        {"names": ["clone3"], "action": "SCMP_ACT_TRACE", "errnoRet": 5},
        {"names": ["faccessat2"], "action": "SCMP_ACT_KILL_THREAD"},
    ], defaultAction="SCMP_ACT_ERRNO", defaultErrnoRet=99))
    assert run(program, NR["read"]) == RET_ALLOW
    assert run(program, NR["write"]) == RET_LOG
    assert run(program, NR["mkdir"]) == RET_ERRNO(13)
    assert run(program, NR["getppid"]) == RET_ERRNO(1)  # errnoRet absent: EPERM
    assert run(program, NR["kill"]) == RET_TRAP
    assert run(program, NR["personality"]) == RET_KILL_PROCESS
    assert run(program, NR["exit_group"]) == RET_KILL_THREAD  # runc: SCMP_ACT_KILL kills the thread
    assert run(program, NR["clone3"]) == RET_TRACE(5)
    assert run(program, NR["faccessat2"]) == RET_KILL_THREAD
    assert run(program, 2) == RET_ERRNO(99)  # open: not listed, defaultErrnoRet


def test_notify_action_and_listener_flag():
    program, flags = compile_filter(base_profile(listenerPath="/run/agent.sock", syscalls=[
        {"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"},
    ]), None)
    assert run(program, NR["mkdir"]) == RET_NOTIFY
    assert flags == FLAG_NEW_LISTENER


def test_unknown_names_are_skipped():
    with_unknown = base_profile()
    with_unknown["syscalls"][0]["names"] = ["read", "no_such_syscall", "write", "exit_group"]
    result = compile_profile(parse(with_unknown))
    assert result.unknown_syscalls == ("no_such_syscall",)
    assert result.bpf == compiled(base_profile())


def test_rule_with_the_default_action_is_redundant():
    profile = base_profile()
    profile["syscalls"].append({"names": ["getppid"], "action": "SCMP_ACT_ERRNO"})  # default is ERRNO(EPERM)
    assert compiled(profile) == compiled(base_profile())


def test_syscall_unknown_to_native_arch_still_filters_the_others():
    # socketcall exists on i386 only: libseccomp gives it a pseudo number, runc keeps it
    program = compiled(base_profile(syscalls=[
        {"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["socketcall"], "action": "SCMP_ACT_TRAP"},
    ]))
    assert run(program, 102, AUDIT_I386) == RET_TRAP


# ------------------------------------------------------------------ argument conditions

def test_args_on_distinct_indexes_all_must_match():
    program = compiled(base_profile(syscalls=[
        {"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["kill"], "action": "SCMP_ACT_ALLOW", "args": [
            {"index": 0, "value": 100, "op": "SCMP_CMP_GT"},
            {"index": 1, "value": 9, "op": "SCMP_CMP_NE"},
        ]},
    ]))
    assert run(program, NR["kill"], args=(101, 15)) == RET_ALLOW
    assert run(program, NR["kill"], args=(101, 9)) == RET_ERRNO(1)
    assert run(program, NR["kill"], args=(100, 15)) == RET_ERRNO(1)


def test_args_on_the_same_index_are_separate_rules():
    # runc: conditions naming one argument twice become one rule each, so any may match
    program = compiled(base_profile(syscalls=[
        {"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [
            {"index": 0, "value": 0, "op": "SCMP_CMP_EQ"},
            {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"},
        ]},
    ]))
    assert run(program, NR["personality"], args=(0,)) == RET_ALLOW
    assert run(program, NR["personality"], args=(8,)) == RET_ALLOW
    assert run(program, NR["personality"], args=(4,)) == RET_ERRNO(1)


@pytest.mark.parametrize("op, value, value_two, matching, other", [
    ("SCMP_CMP_NE", 5, 0, [4, 6, 1 << 40], [5]),
    ("SCMP_CMP_LT", 5, 0, [0, 4], [5, 6, 1 << 40]),
    ("SCMP_CMP_LE", 5, 0, [0, 5], [6, 1 << 32]),
    ("SCMP_CMP_EQ", (1 << 40) | 3, 0, [(1 << 40) | 3], [3, 1 << 40]),
    ("SCMP_CMP_GE", 5, 0, [5, 1 << 40], [4, 0]),
    ("SCMP_CMP_GT", 5, 0, [6, 1 << 33], [5, 0]),
    # value is the mask, valueTwo what (arg & mask) must equal (libseccomp's datum_a/datum_b)
    ("SCMP_CMP_MASKED_EQ", 0x7E020000, 0, [0, 0x11, 0x80000000], [0x20000, 0x10000000]),
    ("SCMP_CMP_MASKED_EQ", 0xFF, 0x11, [0x11, 0x4411], [0x12, 0]),
])
def test_operators(op, value, value_two, matching, other):
    program = compiled(base_profile(syscalls=[
        {"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": value, "valueTwo": value_two, "op": op}]},
    ]))
    for arg in matching:
        assert run(program, NR["personality"], args=(arg,)) == RET_ALLOW, hex(arg)
    for arg in other:
        assert run(program, NR["personality"], args=(arg,)) == RET_ERRNO(1), hex(arg)


# ------------------------------------------------------------------ architectures

def test_listed_architectures_are_filtered_others_killed():
    program = compiled(base_profile())
    assert run(program, NR_I386["read"], AUDIT_I386) == RET_ALLOW
    assert run(program, NR_I386["mkdir"], AUDIT_I386) == RET_ERRNO(13)
    assert run(program, X32_BIT | NR["mkdir"], AUDIT_X86_64) == RET_ERRNO(13)
    assert run(program, X32_BIT | NR["read"], AUDIT_X86_64) == RET_ALLOW
    # an architecture the filter does not know gets libseccomp's bad-arch action (kill)
    assert run(program, 63, AUDIT_AARCH64) == RET_KILL_THREAD


def test_native_architecture_is_always_added():
    program = compiled(base_profile(architectures=["SCMP_ARCH_X86"]))
    assert run(program, NR["read"], AUDIT_X86_64) == RET_ALLOW
    assert run(program, NR["mkdir"], AUDIT_X86_64) == RET_ERRNO(13)
    assert run(program, NR_I386["mkdir"], AUDIT_I386) == RET_ERRNO(13)
    # x32 was not asked for: its calls are a bad architecture
    assert run(program, X32_BIT | NR["read"], AUDIT_X86_64) == RET_KILL_THREAD
    # no architectures at all: the native one only
    program = compiled(base_profile(architectures=[]))
    assert run(program, NR["mkdir"], AUDIT_X86_64) == RET_ERRNO(13)
    assert run(program, NR_I386["read"], AUDIT_I386) == RET_KILL_THREAD


def test_duplicate_architectures():
    twice = base_profile(architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X86_64"])
    assert compiled(twice) == compiled(base_profile(architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]))


def test_foreign_architectures_compile():
    program = compiled(base_profile(architectures=[
        "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_RISCV64",
        "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_MIPSEL"]))
    assert run(program, 63, AUDIT_AARCH64) == RET_ALLOW  # aarch64 read
    assert run(program, 34, AUDIT_AARCH64) == RET_ERRNO(1)  # aarch64 mkdirat: not listed
    assert run(program, NR["mkdir"], AUDIT_X86_64) == RET_ERRNO(13)  # native still there


def test_architectures_of_another_byte_order():
    with pytest.raises(ConfigError) as info:
        compile_filter(base_profile(architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_S390X"]), None)
    assert str(info.value) == (f'{W}.architectures[1]: "s390x" cannot share a filter with the other '
                               "architectures (its byte order differs)")


# ------------------------------------------------------------------ the -ENOSYS stub

def test_newer_syscalls_get_enosys():
    program = compiled(base_profile())
    highest = NR["exit_group"]  # the profile's highest x86_64 number
    assert run(program, NR["getppid"]) == RET_ERRNO(1)  # known, unlisted, below: default
    assert run(program, highest + 1) == RET_ERRNO(ENOSYS)
    assert run(program, NR["clone3"]) == RET_ERRNO(ENOSYS)
    assert run(program, 1000) == RET_ERRNO(ENOSYS)
    # i386 has its own highest number (exit_group is 252 there)
    assert run(program, 252, AUDIT_I386) == RET_ALLOW
    assert run(program, 253, AUDIT_I386) == RET_ERRNO(ENOSYS)
    assert run(program, 200, AUDIT_I386) == RET_ERRNO(1)
    # x32 numbers carry bit 30
    assert run(program, X32_BIT | (highest + 1)) == RET_ERRNO(ENOSYS)
    assert run(program, X32_BIT | NR["getppid"]) == RET_ERRNO(1)


def test_enosys_stub_for_native_arch_without_architectures():
    program = compiled(base_profile(architectures=[]))
    assert run(program, NR["clone3"]) == RET_ERRNO(ENOSYS)


def test_x32_alone_has_its_own_section():
    program = compiled(base_profile(architectures=["SCMP_ARCH_X32"]))
    # native x86_64 calls keep their own limit
    assert run(program, NR["exit_group"] + 1) == RET_ERRNO(ENOSYS)
    assert run(program, X32_BIT | (NR["exit_group"] + 1)) == RET_ERRNO(ENOSYS)
    assert run(program, X32_BIT | NR["read"]) == RET_ALLOW


@pytest.mark.parametrize("default, errno, expected", [
    ("SCMP_ACT_ALLOW", None, RET_ALLOW),
    ("SCMP_ACT_LOG", None, RET_LOG),
    ("SCMP_ACT_TRACE", 3, RET_TRACE(3)),
    ("SCMP_ACT_ERRNO", ENOSYS, RET_ERRNO(ENOSYS)),
])
def test_no_stub_when_the_default_lets_through(default, errno, expected):
    profile = base_profile(defaultAction=default)
    if errno is not None:
        profile["defaultErrnoRet"] = errno
    program = compiled(profile)
    assert run(program, 1000) == expected
    assert run(program, NR["clone3"]) == expected


@pytest.mark.parametrize("default, ret", [("SCMP_ACT_KILL_PROCESS", RET_KILL_PROCESS), ("SCMP_ACT_TRAP", RET_TRAP),
                                          ("SCMP_ACT_KILL", RET_KILL_THREAD)])
def test_stub_with_killing_default(default, ret):
    program = compiled(base_profile(defaultAction=default))
    assert run(program, 1000) == RET_ERRNO(ENOSYS)
    assert run(program, NR["getppid"]) == ret


def test_stub_s390_multiplexer_and_unknown_arch_fall_through():
    stub = bpf.enosys_stub({bpf.AUDIT_ARCH_S390X: {"s390x": 300}, AUDIT_X86_64: {"x86_64": 231}})
    tail = bpf.pack([(bpf.RET_K, 0, 0, 0x12345)])  # stands for libseccomp's program
    program = stub + tail
    assert run(program, 0, bpf.AUDIT_ARCH_S390X) == RET_ERRNO(ENOSYS)
    assert run(program, 300, bpf.AUDIT_ARCH_S390X) == 0x12345
    assert run(program, 301, bpf.AUDIT_ARCH_S390X) == RET_ERRNO(ENOSYS)
    assert run(program, 0, AUDIT_X86_64) == 0x12345
    assert run(program, 5000, AUDIT_AARCH64) == 0x12345


# ------------------------------------------------------------------ flags

@pytest.mark.parametrize("names, expected", [
    ([], 0),
    (["SECCOMP_FILTER_FLAG_TSYNC"], FLAG_TSYNC),
    (["SECCOMP_FILTER_FLAG_LOG"], FLAG_LOG),
    (["SECCOMP_FILTER_FLAG_SPEC_ALLOW"], FLAG_SPEC_ALLOW),
    (["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_LOG"],
     FLAG_LOG | FLAG_SPEC_ALLOW),
    # needs a listener: dropped when no action is SCMP_ACT_NOTIFY
    (["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"], 0),
])
def test_flags(names, expected):
    _, flags = compile_filter(base_profile(flags=names), None)
    assert flags == expected


def test_absent_flags_are_none():
    # runc 1.1 passes no flag when `flags` is absent (1.2 adds SPEC_ALLOW by default)
    assert compile_filter(base_profile(), None)[1] == 0


@pytest.mark.parametrize("names, expected", [
    ([], FLAG_NEW_LISTENER),
    (["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"], FLAG_NEW_LISTENER | FLAG_WAIT_KILLABLE_RECV),
    # the kernel takes TSYNC with a listener only with TSYNC_ESRCH
    (["SECCOMP_FILTER_FLAG_TSYNC"], FLAG_TSYNC | FLAG_NEW_LISTENER | FLAG_TSYNC_ESRCH),
])
def test_flags_with_notify(names, expected):
    profile = base_profile(flags=names, listenerPath="/run/agent.sock")
    profile["syscalls"].append({"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"})
    assert compile_filter(profile, None)[1] == expected


def test_flags_do_not_change_the_program():
    plain = compiled(base_profile())
    assert compiled(base_profile(flags=["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                                        "SECCOMP_FILTER_FLAG_TSYNC"])) == plain


# ------------------------------------------------------------------ a large profile

def _kernel_syscall_names() -> list[str]:
    with open(UNISTD_64) as f:
        return re.findall(r"^#define __NR_(\w+)\s+\d+", f.read(), re.MULTILINE)


@pytest.mark.skipif(not os.path.exists(UNISTD_64), reason=f"{UNISTD_64} not installed")
def test_large_profile_uses_the_tree_and_stays_correct():
    names = _kernel_syscall_names()
    denied = {"mkdir", "reboot", "kill"}
    profile = base_profile(syscalls=[
        {"names": [n for n in names if n not in denied] + ["socketcall", "chown32"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 17},
        {"names": ["reboot"], "action": "SCMP_ACT_KILL_PROCESS"},
    ])
    program, _ = compile_filter(profile, None)
    assert len(program) // 8 <= bpf.BPF_MAXINSNS
    with open(UNISTD_64) as f:
        numbers = {name: int(nr) for name, nr in re.findall(r"^#define __NR_(\w+)\s+(\d+)", f.read(), re.MULTILINE)}
    from pyrunc._native._seccomp import lib
    highest = max(nr for name, nr in numbers.items() if lib.seccomp_syscall_resolve_name(name.encode()) >= 0)
    for name, nr in numbers.items():
        if lib.seccomp_syscall_resolve_name(name.encode()) < 0:
            continue  # newer than this libseccomp: skipped, and above its highest number
        expected = {"mkdir": RET_ERRNO(17), "reboot": RET_KILL_PROCESS, "kill": RET_ERRNO(1)}.get(name, RET_ALLOW)
        assert run(program, nr) == expected, name
    assert run(program, highest + 1) == RET_ERRNO(ENOSYS)


# ------------------------------------------------------------------ the cache

def test_cache_hit_returns_identical_bytes_and_is_fast(tmp_path):
    profile = base_profile()
    start = time.perf_counter()
    cold = compile_filter(profile, str(tmp_path))
    cold_time = time.perf_counter() - start
    entries = os.listdir(tmp_path)
    assert len(entries) == 1 and entries[0].endswith(".bpf")
    hits = []
    for _ in range(20):
        start = time.perf_counter()
        assert compile_filter(copy.deepcopy(profile), str(tmp_path)) == cold
        hits.append(time.perf_counter() - start)
    hits.sort()
    assert hits[len(hits) // 2] < 0.002, hits
    assert hits[len(hits) // 2] < cold_time
    assert cold == compile_filter(profile, None)


def test_cache_key_is_the_profile_not_its_spelling(tmp_path):
    profile = base_profile()
    reordered = json.loads(json.dumps(dict(reversed(list(profile.items())))))
    compile_filter(profile, str(tmp_path))
    compile_filter(reordered, str(tmp_path))
    assert len(os.listdir(tmp_path)) == 1
    changed = base_profile()
    changed["syscalls"][1]["errnoRet"] = 14
    program, _ = compile_filter(changed, str(tmp_path))
    assert len(os.listdir(tmp_path)) == 2
    assert run(program, NR["mkdir"]) == RET_ERRNO(14)


def _only_entry(directory) -> str:
    (name,) = os.listdir(directory)
    return os.path.join(directory, name)


def test_damaged_entry_is_a_miss(tmp_path):
    profile = base_profile()
    good = compile_filter(profile, str(tmp_path))
    path = _only_entry(tmp_path)
    with open(path, "rb") as f:
        data = f.read()
    for damaged in (data[:-8], data[:-1] + bytes([data[-1] ^ 1]), b"", data.split(b"\n")[0], b"{}\n" + data):
        with open(path, "wb") as f:
            f.write(damaged)
        assert compile_filter(profile, str(tmp_path)) == good
    with open(path, "rb") as f:
        assert f.read() == data  # rewritten
    assert os.listdir(tmp_path) == [os.path.basename(path)]  # no temporary files left


def test_entry_of_another_libseccomp_is_a_miss(tmp_path):
    profile = base_profile()
    good = compile_filter(profile, str(tmp_path))
    path = _only_entry(tmp_path)
    with open(path, "rb") as f:
        header, _, program = f.read().partition(b"\n")
    meta = json.loads(header)
    meta["libseccomp"]["file"][1] += 1  # another inode: the library was replaced
    # a different program under the stale header proves the entry is not used
    fake = bpf.pack([(bpf.RET_K, 0, 0, RET_ALLOW)])
    import hashlib
    meta["size"], meta["sha256"] = len(fake), hashlib.sha256(fake).hexdigest()
    with open(path, "wb") as f:
        f.write(json.dumps(meta).encode() + b"\n" + fake)
    assert compile_filter(profile, str(tmp_path)) == good
    # and with the right identity the (fake) entry would be taken: the check is what decided
    meta["libseccomp"]["file"][1] -= 1
    with open(path, "wb") as f:
        f.write(json.dumps(meta).encode() + b"\n" + fake)
    assert compile_filter(profile, str(tmp_path)) == (fake, good[1])


def test_errors_are_not_cached(tmp_path):
    profile = base_profile()
    profile["syscalls"][0]["action"] = "SCMP_ACT_FOO"
    for _ in range(2):
        with pytest.raises(ConfigError):
            compile_filter(profile, str(tmp_path))
    assert not os.path.exists(tmp_path) or os.listdir(tmp_path) == []


def test_unwritable_cache_dir_still_compiles(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    program, _ = compile_filter(base_profile(), str(blocker / "cache"))
    assert program == compiled(base_profile())


def _python(code: str) -> str:
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(pyrunc.__file__)))
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout


def test_import_is_cheap():
    loaded = json.loads(_python(
        "import sys, json; before = set(sys.modules); import pyrunc.seccomp; "
        "print(json.dumps(sorted(set(sys.modules) - before)))"))
    assert [name for name in loaded if name != "__future__"] == ["pyrunc", "pyrunc.seccomp"]


def test_cache_hit_does_not_load_libseccomp(tmp_path):
    profile = base_profile()
    expected = compile_filter(profile, str(tmp_path))
    out = _python(
        "import sys, json\n"
        "from pyrunc.seccomp import compile_filter\n"
        f"program, flags = compile_filter(json.loads({json.dumps(json.dumps(profile))}), {str(tmp_path)!r})\n"
        "print(json.dumps([program.hex(), flags, [m for m in sys.modules if 'seccomp' in m],\n"
        "      'libseccomp' in open('/proc/self/maps').read()]))\n")
    program_hex, flags, modules, mapped = json.loads(out)
    assert (bytes.fromhex(program_hex), flags) == expected
    assert sorted(modules) == ["pyrunc.seccomp", "pyrunc.seccomp.cache"]
    assert not mapped


def test_a_miss_compiles_the_parsed_profile_without_parsing_again(tmp_path, monkeypatch):
    """create hands spec.parse's Linux.seccomp_profile to the compiler: a cache miss does
    not parse the object a second time (the same program as parsing it)."""
    profile = base_profile()
    parsed = parse(copy.deepcopy(profile))
    expected = compile_filter(profile, None)
    import pyrunc.seccomp.profile

    def no_second_parse(_raw):
        raise AssertionError("the profile was parsed again")
    monkeypatch.setattr(pyrunc.seccomp.profile, "parse", no_second_parse)
    assert compile_filter(profile, str(tmp_path), parsed) == expected
    assert compile_filter(profile, None, parsed) == expected
    from pyrunc.launch import compile_seccomp
    assert compile_seccomp(profile, str(tmp_path / "root"), parsed) == expected


def test_cache_key_hashes_the_c_encoders_canonical_json():
    """The key's canonical form is the C encoder's sorted compact JSON (the pure-Python
    Go encoder took ~0.35 ms of every create for the default profile): key order at any
    level does not matter, any value does."""
    from pyrunc import fastjson
    profile = base_profile(syscalls=[{"names": ["mkdir", "é"], "action": "SCMP_ACT_ERRNO", "errnoRet": 17}])
    assert fastjson.canonical(profile) == json.dumps(profile, sort_keys=True, separators=(",", ":"))
    reordered = {k: profile[k] for k in reversed(list(profile))}
    reordered["syscalls"] = [dict(reversed(list(s.items()))) for s in profile["syscalls"]]
    assert fastjson.canonical(reordered) == fastjson.canonical(profile)
    with pytest.raises(TypeError):
        fastjson.canonical({"names": {"read"}})
