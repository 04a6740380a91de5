"""AppArmor and SELinux applied to containers, run INSIDE the qemu guest by
tests/vm/test_lsm_guest.py (this host runs no LSM; the guest's Debian kernel has both,
one active per boot: `security=apparmor` or `security=selinux`). The file name does not
match test_*.py on purpose: on the host it is collected only when named, and then skips.

The guest writes only into its tmpfs overlay: securityfs and selinuxfs are mounted in the
test session's private mount namespace, the test profiles and the SELinux policy are
loaded into the guest's kernel, which is thrown away with the guest.

AppArmor: a test profile that allows everything but reading /etc/group; the container's
own view of /proc/self/attr/apparmor/current must name it "(enforce)", and the rule must
bite (EACCES) while the rest of the filesystem reads. SELinux (Debian's reference policy,
permissive: the 9p root has no labels an enforcing policy would accept): the container
process's attr/current is its selinuxLabel, the tmpfs/devpts mounts carry
context="<mountLabel>", files made in them get that label, /dev/mqueue is labelled.
"""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from support import find_pyrunc, init_pid, run_ok, run_with_files

if os.environ.get("PYRUNC_IN_VM") != "1":
    pytest.skip("LSM tests run inside the qemu guest (tests/vm/test_lsm_guest.py)", allow_module_level=True)

from mountinfo import mount  # noqa: E402
from pyrunc import lsm  # noqa: E402

SECURITYFS = "/sys/kernel/security"
SELINUXFS = "/sys/fs/selinux"

PROFILE = "pyrunc-test"
OTHER_PROFILE = "pyrunc-test-other"
DENIED_FILE = "/etc/group"
# everything a busybox container needs, but one file it may not read
PROFILE_TEXT = """
profile %s flags=(attach_disconnected,mediate_deleted) {
  file,
  capability,
  network,
  signal,
  unix,
  deny %s r,
}
"""

# Debian's reference policy has no container_t: svirt_t (virt module) and its tmpfs type
LABEL = "system_u:system_r:svirt_t:s0:c1,c2"
OTHER_LABEL = "system_u:system_r:svirt_t:s0:c3,c4"
MOUNT_LABEL = "system_u:object_r:svirt_tmpfs_t:s0:c1,c2"


def _active() -> list[str]:
    if not os.path.ismount(SECURITYFS):
        mount("securityfs", SECURITYFS, "securityfs", 0)
    return lsm.active_lsms()


ACTIVE = _active()
needs_apparmor = pytest.mark.skipif("apparmor" not in ACTIVE, reason=f"apparmor is not active in this boot ({ACTIVE})")
needs_selinux = pytest.mark.skipif("selinux" not in ACTIVE, reason=f"selinux is not active in this boot ({ACTIVE})")


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


@pytest.fixture(scope="module")
def apparmor_profiles(tmp_path_factory):
    """The two test profiles, loaded (and removed again at the end)."""
    directory = tmp_path_factory.mktemp("apparmor")
    files = []
    for name in (PROFILE, OTHER_PROFILE):
        path = directory / name
        path.write_text(PROFILE_TEXT % (name, DENIED_FILE))
        subprocess.run(["apparmor_parser", "--replace", "--skip-cache", str(path)], check=True)
        files.append(path)
    yield
    for path in files:
        subprocess.run(["apparmor_parser", "--remove", str(path)], check=True)


@pytest.fixture(scope="module")
def selinux_policy():
    """selinuxfs mounted and Debian's policy loaded (permissive, from /etc/selinux/config)."""
    if not os.path.ismount(SELINUXFS):
        mount("selinuxfs", SELINUXFS, "selinuxfs", 0)
    if _read("/proc/self/attr/current").rstrip("\0\n") == "kernel":  # no policy yet
        subprocess.run(["load_policy"], check=True)
    assert _read(f"{SELINUXFS}/enforce").strip() in ("0", "1")


def _super_options(mountinfo: str) -> dict[str, tuple[str, str]]:
    """mount point -> (fstype, super options as written: a context="..." keeps its commas)"""
    found = {}
    for line in mountinfo.splitlines():
        fields = line.split()
        sep = fields.index("-")
        found[fields[4]] = (fields[sep + 1], fields[sep + 3])
    return found


def _logged(message: str) -> str:
    # the log line is logfmt: quotes inside msg="..." are escaped
    return message.replace('"', '\\"')


def _no_state_left(state_root) -> None:
    assert not [e for e in os.listdir(state_root) if not e.startswith(".")], "a refused create left state"


# ----------------------------------------------------------------------------- AppArmor


@needs_apparmor
def test_apparmor_profile_confines_the_container(apparmor_profiles, bundle, pyrunc_cmd, container_id):
    script = (f"cat /proc/self/attr/apparmor/current; cat /etc/passwd >/dev/null && echo readable; "
              f"cat {DENIED_FILE}; echo status=$?")

    def edit(config):
        config["process"]["apparmorProfile"] = PROFILE

    out = run_ok(pyrunc_cmd, bundle(edit, args=["sh", "-c", script]), container_id)
    lines = out.splitlines()
    assert lines[0] == f"{PROFILE} (enforce)", out
    assert "readable" in lines and "status=1" in lines, out
    assert not any(line.startswith("root:") for line in lines), f"{DENIED_FILE} was read: {out}"


@needs_apparmor
def test_apparmor_denial_is_the_profiles(bundle, pyrunc_cmd, container_id):
    """Control: the same container without the profile reads the file, unconfined."""
    out = run_ok(pyrunc_cmd, bundle(args=["sh", "-c", f"cat /proc/self/attr/apparmor/current; cat {DENIED_FILE}"]),
                 container_id)
    assert out.splitlines()[0] == "unconfined", out
    assert "root:x:0:" in out, out


@needs_apparmor
def test_exec_gets_the_containers_profile_or_the_apparmor_flags(apparmor_profiles, bundle, pyrunc_cmd,
                                                                 container_id, tmp_path):
    def edit(config):
        config["process"]["apparmorProfile"] = PROFILE

    pyrunc_cmd("run", "-d", "-b", bundle(edit, args=["sleep", "600"]), container_id, check=True)
    current = ["cat", "/proc/self/attr/apparmor/current"]
    inherited = pyrunc_cmd("exec", container_id, *current, check=True)
    assert inherited.stdout.strip() == f"{PROFILE} (enforce)"
    denied = pyrunc_cmd("exec", container_id, "cat", DENIED_FILE)
    assert denied.returncode == 1 and "Permission denied" in denied.stderr, denied
    flag = pyrunc_cmd("exec", "--apparmor", OTHER_PROFILE, container_id, *current, check=True)
    assert flag.stdout.strip() == f"{OTHER_PROFILE} (enforce)"
    # a --process file without a profile gets the container's (runc)
    process = tmp_path / "process.json"
    process.write_text(json.dumps({"args": current, "cwd": "/", "user": {"uid": 0, "gid": 0}}))
    from_file = pyrunc_cmd("exec", "--process", process, container_id, check=True)
    assert from_file.stdout.strip() == f"{PROFILE} (enforce)"


@needs_apparmor
def test_unknown_profile_is_refused_before_anything_exists(apparmor_profiles, bundle, pyrunc_cmd, container_id,
                                                           state_root):
    def edit(config):
        config["process"]["apparmorProfile"] = "pyrunc-not-loaded"

    result = pyrunc_cmd("create", "-b", bundle(edit), container_id)
    assert result.returncode == 1
    assert _logged('apparmor profile "pyrunc-not-loaded" is not loaded in the kernel') in result.stderr, result.stderr
    _no_state_left(state_root)
    pyrunc_cmd("run", "-d", "-b", bundle(args=["sleep", "600"]), container_id, check=True)
    refused = pyrunc_cmd("exec", "--apparmor", "pyrunc-not-loaded", container_id, "true")
    assert refused.returncode == 255  # every exec failure: runc's fatalWithCode(..., 255)
    assert _logged('apparmor profile "pyrunc-not-loaded" is not loaded') in refused.stderr, refused.stderr


@needs_apparmor
def test_the_kernel_refusing_a_profile_fails_create_without_residue(bundle, state_root, container_id):
    """Without securityfs the runtime cannot look the profile up: the init's write is then
    the check, and its failure must end create cleanly (the conftest residue check runs
    after this test too)."""
    def edit(config):
        config["process"]["apparmorProfile"] = "pyrunc-not-loaded"

    command = ["unshare", "--mount", "sh", "-c", f'umount {SECURITYFS} && exec "$@"', "sh",
               find_pyrunc(), "--root", str(state_root), "create", "-b", str(bundle(edit)), container_id]
    result = run_with_files(command, timeout=60)
    assert result.returncode == 1, result
    message = ('apply apparmor profile "pyrunc-not-loaded": write /proc/thread-self/attr/apparmor/exec: '
               "no such file or directory")
    assert _logged(message) in result.stderr, result.stderr
    _no_state_left(state_root)


@needs_apparmor
def test_features_report_apparmor(pyrunc_cmd):
    linux = json.loads(pyrunc_cmd("features", check=True).stdout)["linux"]
    assert linux["apparmor"] == {"enabled": True} and linux["selinux"] == {"enabled": False}


# ----------------------------------------------------------------------------- SELinux


def _selinux_config(config) -> None:
    config["process"]["selinuxLabel"] = LABEL
    config["linux"]["mountLabel"] = MOUNT_LABEL


@needs_selinux
def test_selinux_label_and_mount_label(selinux_policy, bundle, pyrunc_cmd, container_id):
    pyrunc_cmd("run", "-d", "-b", bundle(_selinux_config, args=["sleep", "600"]), container_id, check=True)
    pid = init_pid(pyrunc_cmd, container_id)
    assert _read(f"/proc/{pid}/attr/current").rstrip("\0\n") == LABEL
    inside = pyrunc_cmd("exec", container_id, "sh", "-c", "cat /proc/self/attr/current; echo; "
                        "touch /dev/shm/made-inside; cat /proc/self/mountinfo", check=True).stdout
    label, _, mountinfo = inside.partition("\n")
    assert label.rstrip("\0") == LABEL, inside
    mounts = _super_options(mountinfo)
    context = f'context="{MOUNT_LABEL}"'
    for labelled in ("/dev", "/dev/pts", "/dev/shm"):
        assert context in mounts[labelled][1], (labelled, mounts[labelled])
    for unlabelled in ("/proc", "/sys", "/dev/mqueue"):
        assert "context=" not in mounts[unlabelled][1], (unlabelled, mounts[unlabelled])
    root = f"/proc/{pid}/root"
    for path in ("/dev/shm/made-inside", "/dev/mqueue"):
        assert os.getxattr(root + path, "security.selinux").rstrip(b"\0").decode() == MOUNT_LABEL, path
    # a masked directory's tmpfs is labelled too (runc's maskPath)
    masked = [point for point in ("/proc/acpi", "/proc/scsi") if mounts.get(point, ("",))[0] == "tmpfs"]
    assert masked, sorted(mounts)
    for point in masked:
        assert context in mounts[point][1], (point, mounts[point])


@needs_selinux
def test_exec_gets_the_containers_label_or_the_process_label_flag(selinux_policy, bundle, pyrunc_cmd,
                                                                   container_id):
    pyrunc_cmd("run", "-d", "-b", bundle(_selinux_config, args=["sleep", "600"]), container_id, check=True)
    current = ["cat", "/proc/self/attr/current"]
    inherited = pyrunc_cmd("exec", container_id, *current, check=True)
    assert inherited.stdout.rstrip("\0\n") == LABEL
    flag = pyrunc_cmd("exec", "--process-label", OTHER_LABEL, container_id, *current, check=True)
    assert flag.stdout.rstrip("\0\n") == OTHER_LABEL


@needs_selinux
@pytest.mark.parametrize("field, where, what", [
    ("selinuxLabel", "process", "selinux label"),
    ("mountLabel", "linux", "selinux mount label"),
])
def test_invalid_label_is_refused(selinux_policy, field, where, what, bundle, pyrunc_cmd, container_id, state_root):
    def edit(config):
        config[where][field] = "system_u:system_r:pyrunc_no_such_t:s0"

    result = pyrunc_cmd("create", "-b", bundle(edit), container_id)
    assert result.returncode == 1
    message = f'{what} "system_u:system_r:pyrunc_no_such_t:s0" is not valid in the loaded selinux policy'
    assert _logged(message) in result.stderr, result.stderr
    _no_state_left(state_root)


@needs_selinux
def test_features_report_selinux(selinux_policy, pyrunc_cmd):
    linux = json.loads(pyrunc_cmd("features", check=True).stdout)["linux"]
    assert linux["selinux"] == {"enabled": True} and linux["apparmor"] == {"enabled": False}
