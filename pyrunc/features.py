"""`pyrunc features`: the runtime-spec features document, truthful for this build and host."""
from __future__ import annotations

import os


def features() -> dict:
    import pyrunc
    from pyrunc import caps, cgroups, lsm, ns, process_attrs
    from pyrunc.rootfs import options
    from pyrunc.seccomp import profile, supported_architectures

    seccomp_flags = sorted(profile.FLAGS)
    mode = cgroups.mode()
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": pyrunc.OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer",
                  "poststart", "poststop"],
        "mountOptions": sorted({*options.FLAGS, *options.PROPAGATION, *options.EXTENSIONS,
                                *options.REC_ATTRS, *options.IDMAP}),
        "linux": {
            "namespaces": sorted(ns.supported()),
            "capabilities": caps.names_from_mask((1 << (caps.last_cap() + 1)) - 1),
            "cgroup": {"v1": mode != "unified", "v2": mode != "legacy", "systemd": True,
                       "systemdUser": False, "rdma": True},
            "seccomp": {
                "enabled": os.path.exists("/proc/self/status") and _seccomp_in_kernel(),
                "actions": sorted(profile.ACTIONS),
                "operators": sorted(profile.OPERATORS),
                "archs": supported_architectures(),
                "knownFlags": seccomp_flags,
                "supportedFlags": seccomp_flags,
            },
            "apparmor": {"enabled": lsm.apparmor_enabled()},
            "selinux": {"enabled": lsm.selinux_enabled()},
            # compiled in (the spec's meaning), whether or not this host mounts resctrl
            "intelRdt": {"enabled": True, "schemata": True, "monitoring": True},
            "netDevices": {"enabled": True},
            # id-mapped bind mounts: mount_setattr(MOUNT_ATTR_IDMAP), kernel 5.12
            "mountExtensions": {"idmap": {"enabled": _kernel_at_least(5, 12)}},
            # runtime-spec 1.3 / runc 1.4: linux.memoryPolicy, applied with set_mempolicy
            "memoryPolicy": {"modes": sorted(process_attrs.MPOL_MODES),
                             "flags": sorted(process_attrs.MPOL_FLAGS)},
        },
        "annotations": {
            "run.pyrunc.version": pyrunc.__version__,
            "run.pyrunc.overlay": "supported",
            # as runc's org.opencontainers.runc.checkpoint.enabled; "true" only where the
            # criu binary checkpoint/restore drives is installed
            "run.pyrunc.checkpoint.enabled": "true" if _criu_installed() else "false",
        },
    }


def _kernel_at_least(major: int, minor: int) -> bool:
    release = os.uname().release.split("-")[0].split(".")
    try:
        return (int(release[0]), int(release[1])) >= (major, minor)
    except (IndexError, ValueError):
        return False


def _seccomp_in_kernel() -> bool:
    with open("/proc/self/status") as f:
        return any(line.startswith("Seccomp:") for line in f)


def _criu_installed() -> bool:
    import shutil
    return shutil.which("criu") is not None
