"""Profile -> BPF with libseccomp (the `pyrunc._native._seccomp` cffi module), as runc 1.1.

Only `pyrunc.seccomp.compile_filter` imports this module, on a cache miss.
"""
from __future__ import annotations

import errno
import os

from pyrunc.record import Record
from pyrunc.seccomp import bpf
from pyrunc.seccomp.profile import (ACT_ERRNO, ENOSYS, FLAG_LOG, FLAG_NEW_LISTENER, FLAG_SPEC_ALLOW,
                                    FLAG_TSYNC, FLAG_TSYNC_ESRCH, FLAG_WAIT_KILLABLE_RECV, Profile, fail)

# runc enables libseccomp's binary-tree dispatch above this many rules (libseccomp 2.5.4
# miscompiles the tree with no rules at all); the program means the same either way.
OPTIMIZE_ABOVE = 32


class Compiled(Record, frozen=True):
    bpf: bytes
    flags: int
    unknown_syscalls: tuple[str, ...]  # names libseccomp does not know, skipped (runc: debug)
    libseccomp_version: str
    libseccomp_path: str


def _strerror(rc: int) -> str:
    return os.strerror(-rc).lower() if rc < 0 else f"error {rc}"


def libseccomp_info() -> tuple[str, str]:
    """(version, path of the mapped libseccomp.so), loading the cffi module."""
    from pyrunc._native._seccomp import ffi, lib
    v = lib.seccomp_version()
    return f"{v.major}.{v.minor}.{v.micro}", ffi.string(lib.pyrunc_libseccomp_path()).decode()


def compile_profile(profile: Profile) -> Compiled:
    """Build the filter with libseccomp, export it, prepend the -ENOSYS stub."""
    from pyrunc._native._seccomp import ffi, lib

    version, path = libseccomp_info()
    native = lib.seccomp_arch_native()
    tokens: dict[str, int] = {}
    for i, name in enumerate(profile.architectures):
        token = lib.seccomp_arch_resolve_name(name.encode())
        if token == 0:
            fail(f".architectures[{i}]", f'architecture "{name}" is not supported by libseccomp {version}')
        tokens[name] = token

    flags = _filter_flags(profile, lib)

    ctx = lib.seccomp_init(profile.default_action)
    if ctx == ffi.NULL:
        fail(".defaultAction", f'"{profile.default_action_name}" is not supported by libseccomp {version} '
                               "or the kernel")
    try:
        _set_attributes(ctx, profile, lib)
        for name, token in tokens.items():
            rc = lib.seccomp_arch_add(ctx, token)
            if rc < 0 and rc != -errno.EEXIST:  # the native arch is in every filter already
                i = profile.architectures.index(name)
                if rc == -errno.EDOM:
                    fail(f".architectures[{i}]", f'"{name}" cannot share a filter with the other '
                                                 "architectures (its byte order differs)")
                fail(f".architectures[{i}]", f'add architecture "{name}": {_strerror(rc)}')
        unknown = _add_rules(ctx, profile, lib, ffi)
        program = _export(ctx, lib)
    finally:
        lib.seccomp_release(ctx)

    if _wants_enosys_stub(profile):
        arch_names = list(profile.architectures)
        native_name = _native_name(native, lib)
        if native_name and native_name not in arch_names:
            arch_names.append(native_name)
        program = bpf.enosys_stub(_max_syscalls(profile, arch_names, lib)) + program
    if len(program) // bpf.INSN.size > bpf.BPF_MAXINSNS:
        fail("", f"the compiled program has {len(program) // bpf.INSN.size} instructions, "
                 f"more than the kernel's limit of {bpf.BPF_MAXINSNS}")
    return Compiled(bpf=program, flags=flags, unknown_syscalls=tuple(unknown),
                    libseccomp_version=version, libseccomp_path=path)


def _filter_flags(profile: Profile, lib) -> int:
    """The SECCOMP_FILTER_FLAG_* bits for seccomp(2), each checked against the kernel."""
    flags = profile.flags
    if profile.notifies:
        flags |= FLAG_NEW_LISTENER
    else:
        # meaningless without a listener, and the kernel refuses it alone
        flags &= ~FLAG_WAIT_KILLABLE_RECV
    for bit, path in sorted(profile.flag_paths.items()):
        probe = bit | (FLAG_NEW_LISTENER if bit == FLAG_WAIT_KILLABLE_RECV else 0)
        if flags & bit and not lib.pyrunc_seccomp_flag_supported(probe):
            fail(path, "not supported by the kernel")
    if flags & FLAG_TSYNC and flags & FLAG_NEW_LISTENER:
        # the kernel refuses TSYNC with NEW_LISTENER unless a failed sync reports ESRCH
        flags |= FLAG_TSYNC_ESRCH
        if not lib.pyrunc_seccomp_flag_supported(flags & (FLAG_TSYNC | FLAG_NEW_LISTENER | FLAG_TSYNC_ESRCH)):
            fail(profile.flag_paths[FLAG_TSYNC], "not supported by the kernel together with SCMP_ACT_NOTIFY")
    elif flags & FLAG_NEW_LISTENER and not lib.pyrunc_seccomp_flag_supported(FLAG_NEW_LISTENER):
        fail(".syscalls", "SCMP_ACT_NOTIFY is not supported by the kernel")
    return flags


def _set_attributes(ctx, profile: Profile, lib) -> None:
    attributes = [
        # the init sets no_new_privs itself, when process.noNewPrivileges asks for it
        (lib.SCMP_FLTATR_CTL_NNP, 0, ""),
        # errors as the kernel's errno, not libseccomp's -ECANCELED and friends
        (lib.SCMP_FLTATR_API_SYSRAWRC, 1, ""),
    ]
    # these three only matter at load time (the init passes the flags to seccomp(2)), but
    # asking libseccomp checks them the way runc does
    if profile.flags & FLAG_TSYNC:
        attributes.append((lib.SCMP_FLTATR_CTL_TSYNC, 1, profile.flag_paths[FLAG_TSYNC]))
    if profile.flags & FLAG_LOG:
        attributes.append((lib.SCMP_FLTATR_CTL_LOG, 1, profile.flag_paths[FLAG_LOG]))
    if profile.flags & FLAG_SPEC_ALLOW:
        attributes.append((lib.SCMP_FLTATR_CTL_SSB, 1, profile.flag_paths[FLAG_SPEC_ALLOW]))
    if sum(len(rule.names) for rule in profile.rules) > OPTIMIZE_ABOVE:
        attributes.append((lib.SCMP_FLTATR_CTL_OPTIMIZE, 2, ""))
    for attribute, value, path in attributes:
        rc = lib.seccomp_attr_set(ctx, attribute, value)
        if rc < 0:
            fail(path, f"set libseccomp filter attribute {attribute}: {_strerror(rc)}")


def _add_rules(ctx, profile: Profile, lib, ffi) -> list[str]:
    """Add every rule; names libseccomp does not know are skipped and returned (runc)."""
    unknown: list[str] = []
    for rule in profile.rules:
        conditions = ffi.new("struct scmp_arg_cmp[]", max(len(rule.args), 1))
        for n, arg in enumerate(rule.args):
            conditions[n].arg = arg.index
            conditions[n].op = arg.op
            conditions[n].datum_a = arg.value
            conditions[n].datum_b = arg.value_two
        # runc: conditions on distinct arguments form one rule (all must match); when an
        # argument is named twice, each condition becomes a rule of its own (any matches)
        indexes = [arg.index for arg in rule.args]
        separate = len(set(indexes)) != len(indexes)
        for j, name in enumerate(rule.names):
            nr = lib.seccomp_syscall_resolve_name(name.encode())
            if nr == lib.__NR_SCMP_ERROR:
                unknown.append(name)
                continue
            if rule.action == profile.default_action:
                continue  # redundant, and libseccomp refuses it
            if not rule.args:
                rcs = [lib.seccomp_rule_add_array(ctx, rule.action, nr, 0, ffi.NULL)]
            elif separate:
                rcs = [lib.seccomp_rule_add_array(ctx, rule.action, nr, 1, conditions + n)
                       for n in range(len(rule.args))]
            else:
                rcs = [lib.seccomp_rule_add_array(ctx, rule.action, nr, len(rule.args), conditions)]
            for rc in rcs:
                if rc < 0:
                    fail(f"{rule.path}.names[{j}]", f'add rule for syscall "{name}": {_strerror(rc)}')
    return unknown


def _export(ctx, lib) -> bytes:
    fd = os.memfd_create("pyrunc-seccomp", os.MFD_CLOEXEC)
    try:
        rc = lib.seccomp_export_bpf(ctx, fd)
        if rc < 0:
            fail("", f"export the BPF program: {_strerror(rc)}")
        size = os.lseek(fd, 0, os.SEEK_CUR)
        return os.pread(fd, size, 0)
    finally:
        os.close(fd)


def _wants_enosys_stub(profile: Profile) -> bool:
    if profile.default_allows:
        return False
    # a default of ENOSYS already says it
    return profile.default_action != (ACT_ERRNO | ENOSYS)


def _native_name(native: int, lib) -> str:
    from pyrunc.seccomp.profile import ARCHITECTURES
    for name in ARCHITECTURES.values():
        if lib.seccomp_arch_resolve_name(name.encode()) == native:
            return name
    return ""


def _max_syscalls(profile: Profile, arch_names: list[str], lib) -> dict[int, dict[str, int]]:
    """{AUDIT_ARCH: {arch name: highest syscall number of any name in the profile}}."""
    names = {name.encode() for rule in profile.rules for name in rule.names}
    result: dict[int, dict[str, int]] = {}
    for arch in arch_names:
        token = lib.seccomp_arch_resolve_name(arch.encode())
        # the x32 token is libseccomp's own; the kernel reports x32 as x86_64 (bit 30 set)
        audit = bpf.AUDIT_ARCH_X86_64 if arch == "x32" else token
        # negative: unknown, or a pseudo number for a syscall this arch does not have
        highest = max((lib.seccomp_syscall_resolve_name_arch(token, name) for name in names), default=0)
        if highest > 0:
            result.setdefault(audit, {})[arch] = highest
    return result
