"""Mount namespaces for the benchmark.

The whole run happens in a private mount + IPC namespace, so nothing a runtime mounts
reaches the host. crun additionally gets a namespace of its own: crun 1.8 refuses a
hybrid cgroup layout ("cgroups in hybrid mode not supported"), so its namespace has the
cgroup2 hierarchy mounted on /sys/fs/cgroup (the v1 tree unmounted there) and crun runs with
--cgroup-manager=disabled; runc and pyrunc keep the host's v1 view.
"""
from __future__ import annotations

import ctypes
import os
import subprocess

CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MARKER = "PYRUNC_BENCH_PRIVATE_MNTNS"

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def enter_private_namespace() -> None:
    """unshare(CLONE_NEWNS|CLONE_NEWIPC) and make every mount private (once per process;
    call it before any thread exists)."""
    if os.environ.get(MARKER) == os.readlink("/proc/self/ns/mnt"):
        return
    _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWIPC), "unshare(CLONE_NEWNS|CLONE_NEWIPC)")
    # Without this the new namespace still shares propagation with the host's mounts.
    _check(_libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")
    os.environ[MARKER] = os.readlink("/proc/self/ns/mnt")


def cgroup_mode() -> str:
    """"unified", "hybrid" or "legacy", from the filesystem types under /sys/fs/cgroup."""
    if _fs_type("/sys/fs/cgroup") == "cgroup2fs":
        return "unified"
    if os.path.isdir("/sys/fs/cgroup/unified") and _fs_type("/sys/fs/cgroup/unified") == "cgroup2fs":
        return "hybrid"
    return "legacy"


def _fs_type(path: str) -> str:
    result = subprocess.run(["stat", "-f", "-c", "%T", path], capture_output=True, text=True)
    return result.stdout.strip()


class UnifiedCgroupView:
    """A mount namespace (held by an fd) where /sys/fs/cgroup is the cgroup2 hierarchy.

    Built by a short-lived helper that unshares, binds and reports; the fd keeps the
    namespace alive after the helper exits. `enter()` is meant for a child between fork
    and exec (subprocess's preexec_fn): setns costs microseconds, unlike a wrapper exec."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    @classmethod
    def create(cls) -> "UnifiedCgroupView":
        mode = cgroup_mode()
        if mode == "legacy":
            raise OSError("no cgroup2 hierarchy to bind over /sys/fs/cgroup")
        script = (
            "set -e; "
            # Unmount the v1 tree rather than cover it, so that /proc/self/mountinfo shows a
            # plain unified host (a covered v1 tree would still be listed there).
            + ("umount -R -l /sys/fs/cgroup; mount -t cgroup2 cgroup2 /sys/fs/cgroup; "
               if mode == "hybrid" else "")
            + "echo ready; exec sleep 600"
        )
        helper = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        try:
            line = helper.stdout.readline()
            if line.strip() != b"ready":
                helper.wait(timeout=10)
                raise OSError(f"preparing crun's mount namespace: {helper.stderr.read().decode().strip()}")
            fd = os.open(f"/proc/{helper.pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        finally:
            if helper.poll() is None:
                helper.kill()
            helper.wait(timeout=10)
            helper.stdout.close()
            helper.stderr.close()
        return cls(fd)

    def enter(self) -> None:
        _check(_libc.setns(self.fd, CLONE_NEWNS), "setns(mnt)")

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
