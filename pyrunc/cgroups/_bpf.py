"""cgroup v2 device access control: a BPF_PROG_TYPE_CGROUP_DEVICE program assembled here
from the device rules, loaded and attached with bpf(2) through ctypes (no compiler, no
setup.py change).

The program sees struct bpf_cgroup_dev_ctx {u32 access_type; u32 major; u32 minor;}
where access_type = (BPF_DEVCG_ACC_* << 16) | BPF_DEVCG_DEV_*, and returns 1 to allow,
0 to deny (the access then fails with EPERM). Rules are checked last-first so the last
matching rule wins, as with the v1 exception list; nothing matching means deny.

Attach: BPF_F_ALLOW_MULTI, like runc. Update: with exactly one program attached it is
swapped with BPF_F_REPLACE (atomic: there is no instant with no program or two);
otherwise the new one is attached first and the old ones detached after, so access is
never wider than either rule set during the change.
"""

from __future__ import annotations

import ctypes
import os
import struct

from pyrunc.cgroups._paths import CgroupError

_SYS_BPF = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "ppc64le": 361, "s390x": 351}

BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_GET_FD_BY_ID = 13
BPF_PROG_QUERY = 16
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2
BPF_F_REPLACE = 4

DEV_BLOCK, DEV_CHAR = 1, 2
ACC_MKNOD, ACC_READ, ACC_WRITE = 1, 2, 4

# opcodes (linux/bpf_common.h, linux/bpf.h)
_LDX_MEM_W = 0x61
_ALU32_AND_K = 0x54
_ALU32_RSH_K = 0x74
_ALU32_MOV_K = 0xB4
_ALU64_MOV_X = 0xBF
_ALU32_AND_X = 0x5C
_JMP_JNE_K = 0x55
_JMP_JNE_X = 0x5D
_JMP_JEQ_K = 0x15
_JMP_JA = 0x05
_EXIT = 0x95


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def _access_bits(access: str) -> int:
    return ((ACC_READ if "r" in access else 0) | (ACC_WRITE if "w" in access else 0)
            | (ACC_MKNOD if "m" in access else 0))


def assemble(rules: list[dict]) -> bytes:
    """The program for `rules` (dicts with allow, type a/b/c, major/minor -1 = any,
    access), as raw bpf_insn bytes."""
    prologue = [
        _insn(_LDX_MEM_W, dst=2, src=1, off=0),      # r2 = access_type
        _insn(_ALU32_AND_K, dst=2, imm=0xFFFF),      # r2 = device type
        _insn(_LDX_MEM_W, dst=3, src=1, off=0),
        _insn(_ALU32_RSH_K, dst=3, imm=16),          # r3 = requested access bits
        _insn(_LDX_MEM_W, dst=4, src=1, off=4),      # r4 = major
        _insn(_LDX_MEM_W, dst=5, src=1, off=8),      # r5 = minor
    ]
    blocks: list[list[bytes]] = []
    for r in reversed(rules):
        checks: list[tuple] = []  # (code, dst, src, imm) each jumping to the next block when not matching
        if r["type"] != "a":
            checks.append((_JMP_JNE_K, 2, 0, DEV_BLOCK if r["type"] == "b" else DEV_CHAR))
        bits = _access_bits(r["access"])
        access_insns: list[bytes] = []
        if bits != ACC_MKNOD | ACC_READ | ACC_WRITE:
            if r["allow"]:
                # allow only if every requested bit is granted: (r3 & bits) == r3
                access_insns = [_insn(_ALU64_MOV_X, dst=1, src=3), _insn(_ALU32_AND_K, dst=1, imm=bits)]
                checks.append((_JMP_JNE_X, 1, 3, 0))
            else:
                # deny as soon as any requested bit is denied: (r3 & bits) != 0
                access_insns = [_insn(_ALU64_MOV_X, dst=1, src=3), _insn(_ALU32_AND_K, dst=1, imm=bits)]
                checks.append((_JMP_JEQ_K, 1, 0, 0))
        if r["major"] >= 0:
            checks.append((_JMP_JNE_K, 4, 0, r["major"]))
        if r["minor"] >= 0:
            checks.append((_JMP_JNE_K, 5, 0, r["minor"]))
        # layout: access_insns, then the checks, then r0 = verdict; exit
        block_len = len(access_insns) + len(checks) + 2
        block = list(access_insns)
        for i, (code, dst, src, imm) in enumerate(checks):
            position = len(access_insns) + i
            block.append(_insn(code, dst=dst, src=src, off=block_len - position - 1, imm=imm))
        block.append(_insn(_ALU32_MOV_K, dst=0, imm=1 if r["allow"] else 0))
        block.append(_insn(_EXIT))
        blocks.append(block)
        if not checks:
            # matches every access: the verifier rejects the unreachable rest
            return b"".join(prologue + [i for b in blocks for i in b])
    epilogue = [_insn(_ALU32_MOV_K, dst=0, imm=0), _insn(_EXIT)]
    return b"".join(prologue + [i for b in blocks for i in b] + epilogue)


# ------------------------------------------------------------------------- syscalls

_libc = None


def _bpf(cmd: int, attr: bytes) -> int:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.syscall.restype = ctypes.c_long
    nr = _SYS_BPF.get(os.uname().machine)
    if nr is None:
        raise CgroupError(f"bpf(2): unsupported architecture {os.uname().machine}")
    buf = ctypes.create_string_buffer(attr, 128)
    ret = _libc.syscall(ctypes.c_long(nr), ctypes.c_int(cmd), buf, ctypes.c_uint(128))
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    _bpf.last = buf.raw  # type: ignore[attr-defined]
    return ret


def load(rules: list[dict]) -> int:
    """Load the program for `rules`; returns its fd (caller closes)."""
    code = assemble(rules)
    insns = ctypes.create_string_buffer(code, len(code))
    license_ = ctypes.create_string_buffer(b"Apache\0")
    log = ctypes.create_string_buffer(65536)
    attr = struct.pack("<IIQQIIQ", BPF_PROG_TYPE_CGROUP_DEVICE, len(code) // 8,
                       ctypes.addressof(insns), ctypes.addressof(license_),
                       1, len(log), ctypes.addressof(log))
    try:
        return _bpf(BPF_PROG_LOAD, attr)
    except OSError as e:
        detail = log.value.decode(errors="replace").strip().splitlines()
        hint = f" ({detail[0]})" if detail else ""
        raise CgroupError(f"linux.resources.devices: load bpf device program: "
                          f"{os.strerror(e.errno).lower()}{hint}") from None


def attached(cgroup_fd: int) -> list[int]:
    """Ids of the device programs attached to the cgroup (BPF_PROG_QUERY)."""
    ids = (ctypes.c_uint32 * 64)()
    attr = struct.pack("<IIIIQI", cgroup_fd, BPF_CGROUP_DEVICE, 0, 0, ctypes.addressof(ids), 64)
    _bpf(BPF_PROG_QUERY, attr)
    count = struct.unpack_from("<I", _bpf.last, 24)[0]  # type: ignore[attr-defined]
    return list(ids[:count])


def _prog_fd(prog_id: int) -> int:
    return _bpf(BPF_PROG_GET_FD_BY_ID, struct.pack("<I", prog_id))


def apply(directory: str, rules: list[dict]) -> None:
    """Attach the program for `rules` to the cgroup2 `directory`, replacing what a
    previous apply() attached."""
    prog = load(rules)
    try:
        cgroup_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        os.close(prog)
        raise CgroupError(f"open cgroup {directory}: {os.strerror(e.errno).lower()}") from None
    old_fds: list[int] = []
    try:
        try:
            old_fds = [_prog_fd(i) for i in attached(cgroup_fd)]
            if len(old_fds) == 1:
                _bpf(BPF_PROG_ATTACH, struct.pack("<IIIII", cgroup_fd, prog, BPF_CGROUP_DEVICE,
                                                  BPF_F_ALLOW_MULTI | BPF_F_REPLACE, old_fds[0]))
                return
            _bpf(BPF_PROG_ATTACH, struct.pack("<IIIII", cgroup_fd, prog, BPF_CGROUP_DEVICE,
                                              BPF_F_ALLOW_MULTI, 0))
            for fd in old_fds:
                _bpf(BPF_PROG_DETACH, struct.pack("<IIII", cgroup_fd, fd, BPF_CGROUP_DEVICE, 0))
        except OSError as e:
            raise CgroupError(f"linux.resources.devices: attach bpf device program to {directory}: "
                              f"{os.strerror(e.errno).lower()}") from None
    finally:
        for fd in old_fds:
            os.close(fd)
        os.close(cgroup_fd)
        os.close(prog)
