"""The config.json that `spec` writes: exactly what `runc spec` (runc 1.1.5) writes.

ociVersion is "1.0.2-dev", the specs-go version runc 1.1.5 is built with and prints as
`spec: 1.0.2-dev`, not pyrunc's OCI_VERSION: tools diff `runc spec` output and bundles
written by either runtime must be interchangeable; the parser accepts any 1.x.y.

Keys are inserted in the order of runc's Go structs so that `render()` reproduces its
file byte for byte.
"""
from __future__ import annotations

import os

SPEC_OCI_VERSION = "1.0.2-dev"

_DEFAULT_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]


def default_spec(rootless: bool = False) -> dict:
    """A fresh dict (the caller may modify it) equal to `runc spec [--rootless]`."""
    caps = {
        "bounding": list(_DEFAULT_CAPS),
        "effective": list(_DEFAULT_CAPS),
        "permitted": list(_DEFAULT_CAPS),
        "ambient": list(_DEFAULT_CAPS),
    }
    devpts_options = ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]
    if rootless:
        # The user namespace maps a single gid, so gid 5 (tty) does not exist inside.
        devpts_options.remove("gid=5")
        # Mounting a fresh sysfs needs a private network namespace, which rootless lacks.
        sys_mount = {
            "destination": "/sys",
            "type": "none",
            "source": "/sys",
            "options": ["rbind", "nosuid", "noexec", "nodev", "ro"],
        }
    else:
        sys_mount = {
            "destination": "/sys",
            "type": "sysfs",
            "source": "sysfs",
            "options": ["nosuid", "noexec", "nodev", "ro"],
        }

    linux: dict = {}
    if rootless:
        # runc maps container root to the invoking user and group, one id each.
        linux["uidMappings"] = [{"containerID": 0, "hostID": os.geteuid(), "size": 1}]
        linux["gidMappings"] = [{"containerID": 0, "hostID": os.getegid(), "size": 1}]
        namespaces = ["pid", "ipc", "uts", "mount", "user"]
    else:
        # Only the privileged spec has resources: rootless runc may have no cgroup access.
        linux["resources"] = {"devices": [{"allow": False, "access": "rwm"}]}
        namespaces = ["pid", "network", "ipc", "uts", "mount"]
    linux["namespaces"] = [{"type": ns} for ns in namespaces]
    linux["maskedPaths"] = [
        "/proc/acpi",
        "/proc/asound",
        "/proc/kcore",
        "/proc/keys",
        "/proc/latency_stats",
        "/proc/timer_list",
        "/proc/timer_stats",
        "/proc/sched_debug",
        "/sys/firmware",
        "/proc/scsi",
    ]
    linux["readonlyPaths"] = [
        "/proc/bus",
        "/proc/fs",
        "/proc/irq",
        "/proc/sys",
        "/proc/sysrq-trigger",
    ]

    return {
        "ociVersion": SPEC_OCI_VERSION,
        "process": {
            "terminal": True,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm",
            ],
            "cwd": "/",
            "capabilities": caps,
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "runc",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {
                "destination": "/dev",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
            },
            {
                "destination": "/dev/pts",
                "type": "devpts",
                "source": "devpts",
                "options": devpts_options,
            },
            {
                "destination": "/dev/shm",
                "type": "tmpfs",
                "source": "shm",
                "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
            },
            {
                "destination": "/dev/mqueue",
                "type": "mqueue",
                "source": "mqueue",
                "options": ["nosuid", "noexec", "nodev"],
            },
            sys_mount,
            {
                "destination": "/sys/fs/cgroup",
                "type": "cgroup",
                "source": "cgroup",
                "options": ["nosuid", "noexec", "nodev", "relatime", "ro"],
            },
        ],
        "linux": linux,
    }


def render(spec: dict) -> str:
    """JSON text as runc writes config.json (Go json.MarshalIndent with a tab, no final
    newline): Go escapes <, >, & and U+2028/U+2029 inside strings, and nothing else."""
    import json

    text = json.dumps(spec, indent="\t", ensure_ascii=False)
    # These characters can only occur inside JSON strings, so a plain replace is exact.
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                         ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        if char in text:
            text = text.replace(char, escape)
    return text
