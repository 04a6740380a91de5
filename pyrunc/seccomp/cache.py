"""On-disk cache of compiled seccomp programs: one file per profile, `<key>.bpf`.

The key hashes the canonical JSON of the `linux.seccomp` object, the cache format, the
kernel's machine and release (flag support and the native arch come from the kernel).
Each entry also records the libseccomp that compiled it (version, and the identity of the
mapped .so file: device, inode, size, mtime) and is used only while that file is still
the same, so upgrading libseccomp recompiles without loading it on the hit path.

An entry is a JSON header line then the raw program; it is written to a temporary file
and renamed into place, and its SHA-256 is checked on read, so a reader never sees a
partial program.  Every failure to read or write is a miss, never an error.
"""
from __future__ import annotations

import os

from pyrunc import fastjson
from pyrunc.record import Record

try:  # the builtin module: hashlib pulls in OpenSSL, ~3 ms of import on this path
    from _sha256 import sha256
except ImportError:  # pragma: no cover - Python >= 3.12 names it _sha2
    try:
        from _sha2 import sha256  # type: ignore[no-redef]
    except ImportError:
        from hashlib import sha256  # type: ignore[no-redef]

SUFFIX = ".bpf"


class Entry(Record, frozen=True):  # not typing.NamedTuple: `typing` costs ~5 ms of import on this path
    bpf: bytes
    flags: int
    unknown_syscalls: tuple[str, ...]


def key(seccomp: dict, cache_format: int) -> str:
    uname = os.uname()
    # the listener's address and metadata don't change the program
    program = {k: v for k, v in seccomp.items() if k not in ("listenerPath", "listenerMetadata")}
    canonical = fastjson.canonical(program)
    prefix = f"pyrunc-seccomp\0{cache_format}\0{uname.machine}\0{uname.release}\0"
    return sha256((prefix + canonical).encode()).hexdigest()


def _file_identity(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]


def load(cache_dir: str, cache_key: str) -> Entry | None:
    path = os.path.join(cache_dir, cache_key + SUFFIX)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        data = b""
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            data += chunk
    except OSError:
        return None
    finally:
        os.close(fd)
    header_end = data.find(b"\n")
    if header_end < 0:
        return None
    program = data[header_end + 1:]
    try:
        header = fastjson.loads(data[:header_end])
        library = header["libseccomp"]
        if (len(program) != header["size"] or len(program) % 8
                or sha256(program).hexdigest() != header["sha256"]
                or _file_identity(library["path"]) != library["file"]):
            return None
        return Entry(program, int(header["flags"]), tuple(header["unknown"]))
    except (ValueError, KeyError, TypeError):
        return None


def store(cache_dir: str, cache_key: str, compiled) -> bool:
    """Write `compiled` (a pyrunc.seccomp.compiler.Compiled); False when it could not."""
    identity = _file_identity(compiled.libseccomp_path) if compiled.libseccomp_path else None
    if identity is None:
        return False  # no way to tell later whether libseccomp changed
    header = fastjson.dumps({
        "flags": compiled.flags,
        "unknown": list(compiled.unknown_syscalls),
        "libseccomp": {"version": compiled.libseccomp_version, "path": compiled.libseccomp_path,
                       "file": identity},
        "size": len(compiled.bpf),
        "sha256": sha256(compiled.bpf).hexdigest(),
    })
    path = os.path.join(cache_dir, cache_key + SUFFIX)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(cache_dir, mode=0o700, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            data = header.encode() + b"\n" + compiled.bpf
            written = 0
            while written < len(data):
                written += os.write(fd, data[written:])
        finally:
            os.close(fd)
        os.rename(tmp, path)
        return True
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return False
