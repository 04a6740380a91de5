"""Syscall names, numbers and architectures, from the libseccomp the runtime compiles with.

pyrunc's cffi binding (`pyrunc._native._seccomp`) declares what the compiler needs; the
harness also needs number -> name (`seccomp_syscall_resolve_num_arch`), so it talks to
the same shared library through ctypes. Nothing here loads until a function is called.
"""
from __future__ import annotations

import ctypes
import functools

from pyrunc.errors import PyruncError

# AUDIT_ARCH_X86_64 carries x32 calls too, told apart by this bit of the syscall number
X32_SYSCALL_BIT = 0x40000000
# Highest syscall number tried when listing every name of an arch (x86_64 is at ~460).
MAX_SYSCALL_NUMBER = 1024


@functools.lru_cache(maxsize=None)
def _lib() -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL("libseccomp.so.2")
    except OSError as e:
        raise PyruncError(f"load libseccomp.so.2: {e}") from None
    lib.seccomp_syscall_resolve_num_arch.restype = ctypes.c_void_p
    lib.seccomp_syscall_resolve_num_arch.argtypes = [ctypes.c_uint32, ctypes.c_int]
    lib.seccomp_syscall_resolve_name_arch.restype = ctypes.c_int
    lib.seccomp_syscall_resolve_name_arch.argtypes = [ctypes.c_uint32, ctypes.c_char_p]
    lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
    lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_arch_native.restype = ctypes.c_uint32
    lib.seccomp_arch_native.argtypes = []
    return lib


@functools.lru_cache(maxsize=None)
def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None)
    libc.free.argtypes = [ctypes.c_void_p]
    return libc


def native_arch_token() -> int:
    """libseccomp's token for this machine (equal to its AUDIT_ARCH_* value)."""
    return _lib().seccomp_arch_native()


@functools.lru_cache(maxsize=None)
def arch_tokens() -> dict[str, int]:
    """OCI architecture name (SCMP_ARCH_X86_64) -> libseccomp token, for those libseccomp knows."""
    from pyrunc.seccomp.profile import ARCHITECTURES
    lib = _lib()
    tokens = {}
    for oci_name, name in ARCHITECTURES.items():
        token = lib.seccomp_arch_resolve_name(name.encode())
        if token:
            tokens[oci_name] = token
    return tokens


def native_arch() -> str:
    """The OCI name of this machine's architecture."""
    native = native_arch_token()
    return next(name for name, token in arch_tokens().items() if token == native)


def companion_arches(arch: str) -> list[str]:
    """The architectures a kernel of `arch` also runs (what runc's default profiles list)."""
    return {
        "SCMP_ARCH_X86_64": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "SCMP_ARCH_AARCH64": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
        "SCMP_ARCH_PPC64LE": ["SCMP_ARCH_PPC64LE"],
        "SCMP_ARCH_S390X": ["SCMP_ARCH_S390X", "SCMP_ARCH_S390"],
    }.get(arch, [arch])


def arch_of(audit_arch: int, nr: int) -> str:
    """The OCI architecture of a call as seccomp_data reports it (x32 by the number's bit)."""
    tokens = arch_tokens()
    if nr & X32_SYSCALL_BIT and audit_arch == tokens.get("SCMP_ARCH_X86_64"):
        return "SCMP_ARCH_X32"
    for name, token in tokens.items():
        if token == audit_arch and name != "SCMP_ARCH_X32":
            return name
    return f"0x{audit_arch:08x}"


@functools.lru_cache(maxsize=4096)
def name_of(arch: str, nr: int) -> str:
    """The syscall's name on `arch`, or "syscall_<nr>" when libseccomp does not know it."""
    token = arch_tokens().get(arch)
    if token is None:
        return f"syscall_{nr}"
    pointer = _lib().seccomp_syscall_resolve_num_arch(token, nr)
    if not pointer:
        return f"syscall_{nr}"
    try:
        return ctypes.string_at(pointer).decode()
    finally:
        _libc().free(pointer)


def number_of(name: str, arch: str | None = None) -> int:
    """The syscall number of `name` on `arch` (default: native); raise PyruncError if unknown."""
    token = arch_tokens()[arch] if arch else native_arch_token()
    nr = _lib().seccomp_syscall_resolve_name_arch(token, name.encode())
    if nr < 0:
        raise PyruncError(f"unknown syscall {name!r} on {arch or native_arch()}")
    return nr


@functools.lru_cache(maxsize=None)
def all_names(arches: tuple[str, ...]) -> tuple[str, ...]:
    """Every syscall name libseccomp knows on any of `arches`, sorted."""
    names: set[str] = set()
    for arch in arches:
        for nr in range(MAX_SYSCALL_NUMBER):
            number = nr | (X32_SYSCALL_BIT if arch == "SCMP_ARCH_X32" else 0)
            name = name_of(arch, number)
            if not name.startswith("syscall_"):
                names.add(name)
    return tuple(sorted(names))
