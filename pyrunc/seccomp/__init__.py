"""OCI `linux.seccomp` -> a classic BPF program for seccomp(2), compiled with libseccomp
the way runc 1.1 does it, and cached.

    from pyrunc.seccomp import compile_filter
    bpf, flags = compile_filter(spec.linux.seccomp, cache_dir)

`bpf` is `struct sock_filter[]` (host byte order) ready for
`seccomp(SECCOMP_SET_MODE_FILTER, flags, &(struct sock_fprog){len(bpf) / 8, bpf})`, or
None when the profile turns seccomp off (no defaultAction and no syscalls, as runc).
`flags` are SECCOMP_FILTER_FLAG_* bits: those of `flags` in the profile, plus
SECCOMP_FILTER_FLAG_NEW_LISTENER when an action is SCMP_ACT_NOTIFY (seccomp(2) then
returns the listener fd, which belongs to the agent at `listenerPath`).

Importing this package costs nothing: the validator, the compiler and libseccomp (the
`pyrunc._native._seccomp` cffi module) load only when the cache has no program.
"""
from __future__ import annotations

# SECCOMP_FILTER_FLAG_* bits of seccomp(2), defined here only: pyrunc.seccomp.profile
# takes them from this package (a separate module would be one more import on the cheap
# path, which tests/unit/test_seccomp_compile.py pins to this package alone)
FLAG_TSYNC = 1 << 0
FLAG_LOG = 1 << 1
FLAG_SPEC_ALLOW = 1 << 2
FLAG_NEW_LISTENER = 1 << 3
FLAG_TSYNC_ESRCH = 1 << 4
FLAG_WAIT_KILLABLE_RECV = 1 << 5

# Bump when the compiler's output for the same profile and libseccomp changes.
CACHE_FORMAT = 1


def compile_filter(seccomp: dict, cache_dir: str | None, profile=None) -> tuple[bytes | None, int]:
    """Compile the raw `linux.seccomp` object; raise ConfigError naming the field.

    With `cache_dir`, a program compiled before for the same profile, kernel and
    libseccomp file is read back instead (see pyrunc.seccomp.cache).  Syscall names
    libseccomp does not know are skipped and logged at debug level, as runc does.
    `profile`: `seccomp` already parsed (spec.parse's `Linux.seccomp_profile`), compiled
    on a miss instead of parsing the object again.
    """
    if isinstance(seccomp, dict) and not seccomp.get("defaultAction") and not seccomp.get("syscalls"):
        return None, 0  # runc: no default action and no syscalls means no filter
    key = None
    if cache_dir is not None:
        from pyrunc.seccomp import cache
        key = cache.key(seccomp, CACHE_FORMAT)
        entry = cache.load(cache_dir, key)
        if entry is not None:
            _log_unknown(entry.unknown_syscalls)
            return entry.bpf, entry.flags

    from pyrunc.seccomp.compiler import compile_profile
    if profile is None:
        from pyrunc.seccomp.profile import parse
        profile = parse(seccomp)
    compiled = compile_profile(profile)
    _log_unknown(compiled.unknown_syscalls)
    if key is not None:
        cache.store(cache_dir, key, compiled)
    return compiled.bpf, compiled.flags


def _log_unknown(names) -> None:
    if names:
        from pyrunc import log
        for name in names:
            log.debug(f'unknown seccomp syscall "{name}" ignored')


def supported_architectures() -> list[str]:
    """The SCMP_ARCH_* names libseccomp here can put in one filter with the native
    architecture (a known name with the native byte order) — what `features` lists."""
    import errno

    from pyrunc._native._seccomp import lib
    from pyrunc.seccomp.profile import ACT_ALLOW, ARCHITECTURES

    ctx = lib.seccomp_init(ACT_ALLOW)
    try:
        names = []
        for name, libseccomp_name in sorted(ARCHITECTURES.items()):
            token = lib.seccomp_arch_resolve_name(libseccomp_name.encode())
            if token and lib.seccomp_arch_add(ctx, token) in (0, -errno.EEXIST):
                names.append(name)
        return names
    finally:
        lib.seccomp_release(ctx)
