"""Classic BPF for seccomp: the -ENOSYS stub pyrunc prepends to libseccomp's program, and
a small interpreter that runs a program on a `struct seccomp_data` (tests, debugging).

A program is `struct sock_filter[]` in host byte order: u16 code, u8 jt, u8 jf, u32 k.

Why the stub (runc's patchbpf does the same): libseccomp gives every syscall the profile
does not name the default action, usually EPERM.  A syscall newer than the profile
(clone3, faccessat2, ...) then fails with EPERM, and glibc only falls back to the older
call on ENOSYS.  So a syscall number above the highest one the profile names, for that
architecture, returns ENOSYS before the real filter runs.
"""
from __future__ import annotations

import struct
from typing import Iterable, Union

INSN = struct.Struct("=HBBI")

# opcodes (linux/bpf_common.h)
LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
LD_W_MEM = 0x60  # BPF_LD | BPF_W | BPF_MEM
LDX_W_MEM = 0x61  # BPF_LDX | BPF_W | BPF_MEM
ST = 0x02
STX = 0x03
ALU_AND_K = 0x54
ALU_OR_K = 0x44
JA = 0x05
JEQ_K = 0x15
JGT_K = 0x25
JGE_K = 0x35
JSET_K = 0x45
RET_K = 0x06
RET_A = 0x16
TAX = 0x07
TXA = 0x87

SECCOMP_RET_ERRNO = 0x00050000
ENOSYS = 38
RET_ENOSYS = SECCOMP_RET_ERRNO | ENOSYS

OFFSET_NR = 0
OFFSET_ARCH = 4

X32_SYSCALL_BIT = 0x40000000
BPF_MAXINSNS = 4096

# AUDIT_ARCH_* of the s390 family: unknown syscalls reach the filter as number 0
# (the multiplexer, setup(2), unused since forever), so 0 gets ENOSYS there too.
AUDIT_ARCH_S390 = 0x00000016
AUDIT_ARCH_S390X = 0x80000016
AUDIT_ARCH_X86_64 = 0xC000003E

Target = Union[int, str]  # an absolute instruction index or a label


class _Assembler:
    """Instructions with label targets, resolved to relative offsets at the end."""

    def __init__(self) -> None:
        self.code: list[tuple[int, Target, Target, Target]] = []
        self.labels: dict[str, int] = {}

    def label(self, name: str) -> None:
        self.labels[name] = len(self.code)

    def emit(self, code: int, k: Target = 0, jt: Target = 0, jf: Target = 0) -> None:
        """jt/jf/k (for JA) may be labels; plain ints are relative offsets as in BPF."""
        self.code.append((code, jt, jf, k))

    def assemble(self, end_label: str) -> list[tuple[int, int, int, int]]:
        self.labels[end_label] = len(self.code)
        out = []
        for pc, (code, jt, jf, k) in enumerate(self.code):
            def rel(target: Target) -> int:
                return target if isinstance(target, int) else self.labels[target] - pc - 1
            if code == JA:
                out.append((code, 0, 0, rel(k)))
                continue
            jt_off, jf_off = rel(jt), rel(jf)
            if not (0 <= jt_off <= 255 and 0 <= jf_off <= 255):
                raise ValueError(f"bpf: conditional jump out of range at {pc}")
            out.append((code, jt_off, jf_off, k if isinstance(k, int) else self.labels[k]))
        return out


def enosys_stub(max_syscalls: dict[int, dict[str, int]]) -> bytes:
    """The stub for `{AUDIT_ARCH: {libseccomp arch name: highest syscall number}}`.

    It falls through (jumps past its own end) into the program that follows for every
    other architecture and every syscall number up to the highest known one.  On x86_64
    the x32 ABI shares the audit arch and marks its numbers with bit 30, so "x86_64" and
    "x32" are told apart by that bit.
    """
    asm = _Assembler()
    arches = [arch for arch in max_syscalls if max_syscalls[arch]]
    asm.emit(LD_W_ABS, OFFSET_ARCH)
    for i, arch in enumerate(arches):
        asm.emit(JEQ_K, arch, jt=f"arch{i}")
    asm.emit(JA, "filter")
    for i, arch in enumerate(arches):
        per_abi = max_syscalls[arch]
        enosys, passes = f"enosys{i}", f"pass{i}"
        asm.label(f"arch{i}")
        asm.emit(LD_W_ABS, OFFSET_NR)
        if arch in (AUDIT_ARCH_S390, AUDIT_ARCH_S390X):
            asm.emit(JEQ_K, 0, jt=enosys)
        if arch == AUDIT_ARCH_X86_64 and "x32" in per_abi and "x86_64" in per_abi:
            asm.emit(JSET_K, X32_SYSCALL_BIT, jt=f"x32_{i}")
            asm.emit(JGT_K, per_abi["x86_64"], jt=enosys, jf=passes)
            asm.label(f"x32_{i}")
            asm.emit(JGT_K, per_abi["x32"], jt=enosys, jf=passes)
        elif arch == AUDIT_ARCH_X86_64 and "x32" in per_abi:
            asm.emit(JSET_K, X32_SYSCALL_BIT, jf=passes)
            asm.emit(JGT_K, per_abi["x32"], jt=enosys, jf=passes)
        elif arch == AUDIT_ARCH_X86_64:
            asm.emit(JSET_K, X32_SYSCALL_BIT, jt=passes)
            asm.emit(JGT_K, per_abi["x86_64"], jt=enosys, jf=passes)
        else:
            (highest,) = per_abi.values()
            asm.emit(JGT_K, highest, jt=enosys, jf=passes)
        asm.label(passes)
        asm.emit(JA, "filter")
        asm.label(enosys)
        asm.emit(RET_K, RET_ENOSYS)
    return pack(asm.assemble("filter"))


def pack(instructions: Iterable[tuple[int, int, int, int]]) -> bytes:
    return b"".join(INSN.pack(*insn) for insn in instructions)


def unpack(program: bytes) -> list[tuple[int, int, int, int]]:
    if len(program) % INSN.size:
        raise ValueError(f"bpf: program size {len(program)} is not a multiple of {INSN.size}")
    return [INSN.unpack_from(program, offset) for offset in range(0, len(program), INSN.size)]


def seccomp_data(nr: int, arch: int, args: Iterable[int] = (), ip: int = 0) -> bytes:
    """struct seccomp_data { int nr; u32 arch; u64 instruction_pointer; u64 args[6]; }"""
    values = list(args)
    values += [0] * (6 - len(values))
    return struct.pack("=iIQ6Q", nr, arch, ip, *(v & 0xFFFFFFFFFFFFFFFF for v in values))


def run(program: bytes, data: bytes) -> int:
    """Run a seccomp program on `data` (see seccomp_data) and return its SECCOMP_RET_* value.

    Covers the instructions libseccomp and the stub emit; anything else raises ValueError
    so that a test can never pass on an instruction it did not understand.
    """
    insns = unpack(program)
    a = x = 0
    mem = [0] * 16
    pc = 0
    while pc < len(insns):
        code, jt, jf, k = insns[pc]
        pc += 1
        if code == LD_W_ABS:
            if k % 4 or k + 4 > len(data):
                raise ValueError(f"bpf: bad load offset {k}")
            (a,) = struct.unpack_from("=I", data, k)
        elif code == LD_W_MEM:
            a = mem[k]
        elif code == LDX_W_MEM:
            x = mem[k]
        elif code == ST:
            mem[k] = a
        elif code == STX:
            mem[k] = x
        elif code == ALU_AND_K:
            a &= k
        elif code == ALU_OR_K:
            a |= k
        elif code == TAX:
            x = a
        elif code == TXA:
            a = x
        elif code == JA:
            pc += k
        elif code in (JEQ_K, JGT_K, JGE_K, JSET_K):
            taken = {JEQ_K: a == k, JGT_K: a > k, JGE_K: a >= k, JSET_K: bool(a & k)}[code]
            pc += jt if taken else jf
        elif code == RET_K:
            return k
        elif code == RET_A:
            return a
        else:
            raise ValueError(f"bpf: unsupported opcode {code:#x} at {pc - 1}")
    raise ValueError("bpf: program ran off its end")
