"""Linux security modules: `process.apparmorProfile`, `process.selinuxLabel` and
`linux.mountLabel`.

pyrunc detects whether AppArmor and SELinux are enabled on the host but does not apply
profiles or labels: that would need an init op writing /proc/thread-self/attr/exec
(AppArmor: `exec <profile>` to /proc/thread-self/attr/apparmor/exec; SELinux: the label
to /proc/thread-self/attr/exec, and `context=` on every mount for mountLabel) right
before execve.  So a config that asks for one always fails at create/exec with a clear
error, never runs unconfined: "not enabled on this host" when the LSM is off, "not
implemented" when it is on.  An empty field asks for nothing.
"""
from __future__ import annotations

from pyrunc.errors import PyruncError

_LSM_LIST = "/sys/kernel/security/lsm"
_APPARMOR_PARAMETER = "/sys/module/apparmor/parameters/enabled"
_SELINUX_ENFORCE = "/sys/fs/selinux/enforce"


class LsmError(PyruncError):
    """An LSM profile or label was asked for that pyrunc cannot apply."""


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def active_lsms() -> list[str]:
    """The LSMs the kernel runs (securityfs' list; [] when securityfs is not mounted)."""
    text = _read(_LSM_LIST)
    return [name for name in (text or "").strip().split(",") if name]


def apparmor_enabled() -> bool:
    """As runc's apparmor.IsEnabled: the module says Y (or securityfs lists it)."""
    if "apparmor" in active_lsms():
        return True
    return (_read(_APPARMOR_PARAMETER) or "").startswith("Y")


def selinux_enabled() -> bool:
    """SELinux is active: listed by securityfs, or selinuxfs is mounted where it lives."""
    if "selinux" in active_lsms():
        return True
    return _read(_SELINUX_ENFORCE) is not None


def check(*, apparmor_profile: str = "", selinux_label: str = "", mount_label: str = "") -> None:
    """Raise LsmError if any of the given profile/labels is set (see the module doc)."""
    if apparmor_profile:
        if not apparmor_enabled():
            raise LsmError(f'apparmor profile "{apparmor_profile}" requested but apparmor is not enabled on this host')
        raise LsmError(f'apparmor profile "{apparmor_profile}" requested but applying apparmor profiles '
                       "is not implemented by pyrunc")
    for what, label in (("selinux label", selinux_label), ("selinux mount label", mount_label)):
        if label:
            if not selinux_enabled():
                raise LsmError(f'{what} "{label}" requested but selinux is not enabled on this host')
            raise LsmError(f'{what} "{label}" requested but applying selinux labels is not implemented by pyrunc')
