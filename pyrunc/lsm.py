"""Linux security modules: `process.apparmorProfile`, `process.selinuxLabel` and
`linux.mountLabel`, applied as runc applies them.

AppArmor: `exec <profile>` is written to /proc/thread-self/attr/apparmor/exec (older
kernels: attr/exec) just before the user's program is exec'd; the kernel confines the
process from that execve on.  SELinux: the label is written to
/proc/thread-self/attr/exec (and attr/keycreate before the session keyring is made), and
`context="<mountLabel>"` goes on the mounts runc labels.  The init writes them through the
container's procfs (pyrunc/_native/init.c, OP_PROC_ATTR).

Where the LSM is off, a config that asks for a profile or label fails at create/exec with
a clear error: it never runs unconfined.  Where it is on, the profile must be loaded and
the label valid in the loaded policy, checked before anything is created.  An empty field
asks for nothing.
"""
from __future__ import annotations

import os

from pyrunc.errors import PyruncError
from pyrunc.textfile import read_or_none

_LSM_LIST = "/sys/kernel/security/lsm"
_APPARMOR_PARAMETER = "/sys/module/apparmor/parameters/enabled"
_APPARMOR_PROFILES = "/sys/kernel/security/apparmor/profiles"
_SELINUX_ENFORCE = "/sys/fs/selinux/enforce"
_SELINUX_CONTEXT = "/sys/fs/selinux/context"

# below the container's /proc, the first that exists is written (runc's order)
APPARMOR_EXEC_ATTRS = ("thread-self/attr/apparmor/exec", "thread-self/attr/exec")
SELINUX_EXEC_ATTRS = ("thread-self/attr/exec",)
SELINUX_KEYCREATE_ATTRS = ("thread-self/attr/keycreate",)


class LsmError(PyruncError):
    """An LSM profile or label was asked for that pyrunc cannot apply."""


def active_lsms() -> list[str]:
    """The LSMs the kernel runs (securityfs' list; [] when securityfs is not mounted)."""
    text = read_or_none(_LSM_LIST)
    return [name for name in (text or "").strip().split(",") if name]


def apparmor_enabled() -> bool:
    """As runc's apparmor.IsEnabled: the module says Y (or securityfs lists it)."""
    if "apparmor" in active_lsms():
        return True
    return (read_or_none(_APPARMOR_PARAMETER) or "").startswith("Y")


def selinux_enabled() -> bool:
    """SELinux is active: listed by securityfs, or selinuxfs is mounted where it lives."""
    if "selinux" in active_lsms():
        return True
    return read_or_none(_SELINUX_ENFORCE) is not None


def _apparmor_loaded(profile: str) -> bool | None:
    """Whether the kernel has `profile` loaded; None when securityfs can't tell."""
    text = read_or_none(_APPARMOR_PROFILES)
    if text is None:
        return None
    # lines: "<name> (<mode>)"; names may contain spaces
    return any(line.rpartition(" (")[0] == profile for line in text.splitlines())


def _selinux_invalid(label: str) -> str | None:
    """Why the loaded policy rejects `label` (libselinux's security_check_context: the
    kernel validates what is written to selinuxfs' context file); None when it is valid."""
    try:
        fd = os.open(_SELINUX_CONTEXT, os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        return f"{_SELINUX_CONTEXT}: {os.strerror(e.errno).lower()}"
    try:
        os.write(fd, label.encode() + b"\0")
    except OSError as e:
        return os.strerror(e.errno).lower()
    finally:
        os.close(fd)
    return None


def check(*, apparmor_profile: str = "", selinux_label: str = "", mount_label: str = "") -> None:
    """Raise LsmError if a given profile/label cannot be applied on this host."""
    if apparmor_profile:
        if not apparmor_enabled():
            raise LsmError(f'apparmor profile "{apparmor_profile}" requested but apparmor is not enabled on this host')
        # "unconfined" is the kernel's own, never listed (runc passes it on too)
        if apparmor_profile != "unconfined" and _apparmor_loaded(apparmor_profile) is False:
            raise LsmError(f'apparmor profile "{apparmor_profile}" is not loaded in the kernel '
                           f"(not in {_APPARMOR_PROFILES})")
    for what, label in (("selinux label", selinux_label), ("selinux mount label", mount_label)):
        if label:
            if not selinux_enabled():
                raise LsmError(f'{what} "{label}" requested but selinux is not enabled on this host')
            reason = _selinux_invalid(label)
            if reason:
                raise LsmError(f'{what} "{label}" is not valid in the loaded selinux policy: {reason}')


def format_mount_label(data: str, mount_label: str) -> str:
    """Mount data with the SELinux context option (go-selinux's FormatMountLabel): quoted,
    since an MCS label has commas ("s0:c1,c2")."""
    if not mount_label:
        return data
    option = f'context="{mount_label}"'
    return f"{data},{option}" if data else option


def add_attr_op(plan, kind: str, value: str) -> None:
    """Write an LSM attribute of the init through the container's /proc: "apparmor" (the
    profile for the execve), "exec" (the SELinux label for it), "keycreate" (SELinux's
    label for keyrings made from now on)."""
    if kind == "apparmor":
        plan.proc_attr(f"exec {value}", APPARMOR_EXEC_ATTRS,
                       what=f'apply apparmor profile "{value}": write /proc/{APPARMOR_EXEC_ATTRS[0]}')
    else:
        attrs = SELINUX_EXEC_ATTRS if kind == "exec" else SELINUX_KEYCREATE_ATTRS
        plan.proc_attr(value, attrs, what=f'set selinux label "{value}": write /proc/{attrs[0]}')
