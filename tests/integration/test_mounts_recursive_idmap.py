"""The newer mount options on the real kernel: the recursive attributes (rro, rnosuid ...
applied with mount_setattr(AT_RECURSIVE), checked on a submount of the bind: its
mountinfo flags and an actual write, exec, device open or symlink walk), compared with
runc 1.1.5, which has them too; id-mapped binds (mounts[].uidMappings/gidMappings,
idmap/ridmap: beyond runc 1.1) with and without a user namespace; bad id-mapped mounts
refused in one line with nothing left; relative destinations."""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess

import pytest

from mountinfo import mount, mount_at, run_inside, script_with_mountinfo, split_output, umount
from test_bad_input import fails_cleanly  # noqa: F401  (fixture)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")

ID_MAPPING = [{"containerID": 0, "hostID": 100000, "size": 65536}]
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_NOSYMFOLLOW = 0x1, 0x2, 0x4, 0x8, 0x100
MS_NOATIME, MS_NODIRATIME = 0x400, 0x800


def _probe(command: str) -> str:
    return f"if ({command}) >/dev/null 2>&1; then echo OK; else echo FAIL; fi"


def _tree(tmp_path, sub_flags: int = 0):
    """tmp_path/tree: a directory with a tmpfs mounted on sub/ (in the test's private mount
    namespace, with `sub_flags`) holding a file, an executable, a symlink and a null
    device node of its own."""
    top = tmp_path / "tree"
    sub = top / "sub"
    sub.mkdir(parents=True)
    mount("tmpfs", str(sub), "tmpfs", 0, "size=4m,mode=1777")
    (sub / "file").write_text("data\n")
    # busybox runs the applet its name says
    shutil.copy(shutil.which("busybox"), sub / "true")
    os.symlink("file", sub / "link")
    os.mknod(sub / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    if sub_flags:
        mount("", str(sub), None, 0x1000 | 0x20 | sub_flags)  # MS_BIND | MS_REMOUNT
    return top


@pytest.fixture
def tree(tmp_path):
    top = _tree(tmp_path)
    yield top
    umount(str(top / "sub"))


@pytest.fixture
def restricted_tree(tmp_path):
    """The same with sub/ ro, nosuid, nodev, noexec, nosymfollow, noatime, nodiratime: what
    the clearing options (rrw, rsuid, rdev ...) undo."""
    top = _tree(tmp_path, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOSYMFOLLOW | MS_NOATIME | MS_NODIRATIME)
    yield top
    umount(str(top / "sub"))


WRITE = _probe("touch /data/sub/new")
EXEC = _probe("/data/sub/true")
DEVICE = _probe("echo x > /data/sub/null")
FOLLOW = _probe("cat /data/sub/link")

# (options after rbind, expected flags present on /data/sub, flags absent, probe, its result)
SETTING = {
    "rro": ({"ro"}, set(), WRITE, "FAIL"),
    "rnosuid": ({"nosuid"}, set(), None, None),
    "rnodev": ({"nodev"}, set(), DEVICE, "FAIL"),
    "rnoexec": ({"noexec"}, set(), EXEC, "FAIL"),
    "rnosymfollow": ({"nosymfollow"}, set(), FOLLOW, "FAIL"),
    "rnoatime": ({"noatime"}, {"relatime"}, None, None),
    "rnodiratime": ({"nodiratime"}, set(), None, None),
    "rstrictatime": (set(), {"relatime", "noatime"}, None, None),
}
CLEARING = {
    "rrw": ({"rw"}, {"ro"}, WRITE, "OK"),
    "rsuid": (set(), {"nosuid"}, None, None),
    "rdev": (set(), {"nodev"}, DEVICE, "OK"),
    "rexec": (set(), {"noexec"}, EXEC, "OK"),
    "rsymfollow": (set(), {"nosymfollow"}, FOLLOW, "OK"),
    "rrelatime": ({"relatime"}, {"noatime"}, None, None),
    "rdiratime": (set(), {"nodiratime"}, None, None),
}
# runc 1.1.5 puts a part of MOUNT_ATTR__ATIME in attr_clr, which the kernel refuses:
# its "ratime" and "rnostrictatime" fail with "invalid argument"; pyrunc clears the field
BEYOND_RUNC = {
    "ratime": ({"relatime"}, {"noatime"}, None, None),
    "rnostrictatime": ({"relatime"}, {"noatime"}, None, None),
}


def _attr_bundle(bundle, top, options: str, probe: str | None):
    def edit(config):
        config["mounts"].append({"destination": "/data", "type": "bind", "source": str(top),
                                 "options": ["rbind", *options.split(",")]})
    return bundle(edit, args=script_with_mountinfo(probe or "true"))


def _check_attr(runner, bundle, container_id, top, options, expected):
    present, absent, probe, result = expected
    out, mounts = split_output(run_inside(runner, _attr_bundle(bundle, top, options, probe), container_id))
    sub = mount_at(mounts, "/data/sub")
    assert sub.fstype == "tmpfs"
    assert present <= sub.options and not absent & sub.options, sub.options
    if probe:
        assert out == f"{result}\n"
    return out, sub.options


@pytest.mark.parametrize("option", list(SETTING))
def test_recursive_attribute_reaches_the_submount_as_in_runc(option, tree, bundle, pyrunc_cmd, runc_cmd,
                                                             container_id):
    ours = _check_attr(pyrunc_cmd, bundle, container_id, tree, option, SETTING[option])
    assert _check_attr(runc_cmd, bundle, container_id, tree, option, SETTING[option]) == ours


@pytest.mark.parametrize("option", list(CLEARING))
def test_recursive_clearing_attribute_undoes_the_submount_flag_as_in_runc(option, restricted_tree, bundle,
                                                                          pyrunc_cmd, runc_cmd, container_id):
    ours = _check_attr(pyrunc_cmd, bundle, container_id, restricted_tree, option, CLEARING[option])
    assert _check_attr(runc_cmd, bundle, container_id, restricted_tree, option, CLEARING[option]) == ours


@pytest.mark.parametrize("option", list(BEYOND_RUNC))
def test_clearing_an_access_time_attribute_works_where_runc_fails(option, restricted_tree, bundle, pyrunc_cmd,
                                                                  runc_cmd, container_id):
    _check_attr(pyrunc_cmd, bundle, container_id, restricted_tree, option, BEYOND_RUNC[option])
    result = runc_cmd("run", "-b", str(_attr_bundle(bundle, restricted_tree, option, None)), container_id)
    assert result.returncode != 0 and "invalid argument" in result.stderr  # runc 1.1.5


def test_recursive_attribute_on_a_fresh_tmpfs_is_applied_where_runc_ignores_it(bundle, pyrunc_cmd, runc_cmd,
                                                                                container_id):
    # runc (1.1.5 to 1.4) applies the recursive options to binds only and silently drops
    # them on other mounts; pyrunc applies them to every mount (never silently ignored)
    def edit(config):
        config["mounts"].append({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
                                 "options": ["size=1m", "rro", "rnoexec"]})
    b = bundle(edit, args=script_with_mountinfo(_probe("touch /scratch/x")))
    out, mounts = split_output(run_inside(pyrunc_cmd, b, container_id))
    assert out == "FAIL\n" and {"ro", "noexec"} <= mount_at(mounts, "/scratch").options
    out, mounts = split_output(run_inside(runc_cmd, b, container_id))
    assert out == "OK\n" and not {"ro", "noexec"} & mount_at(mounts, "/scratch").options


# the contrast for rro (true before recursive attributes existed, and after)
def test_plain_ro_bind_leaves_the_submount_writable(tree, bundle, pyrunc_cmd, container_id):
    out, _ = _check_attr(pyrunc_cmd, bundle, container_id, tree, "ro", (set(), {"ro"}, WRITE, "OK"))
    assert out == "OK\n"


def test_nosymfollow_flag_on_the_bind(tree, bundle, pyrunc_cmd, runc_cmd, container_id):
    def edit(config):
        config["mounts"].append({"destination": "/data", "type": "bind", "source": str(tree / "sub"),
                                 "options": ["bind", "nosymfollow"]})
    b = bundle(edit, args=script_with_mountinfo(_probe("cat /data/link")))
    for runner in (pyrunc_cmd, runc_cmd):  # runc 1.1.5 has it as a mount flag too
        out, mounts = split_output(run_inside(runner, b, container_id))
        assert out == "FAIL\n" and "nosymfollow" in mount_at(mounts, "/data").options


# ------------------------------------------------------------------------- id-mapped mounts
# beyond runc 1.1 (runc 1.2+ semantics): runc 1.1.5 ignores mounts[].uidMappings


@pytest.fixture
def owned_tmpfs(tmp_path):
    """A tmpfs (id-mapped mounts on tmpfs: kernel 6.3) with a file of host uid/gid 0 and,
    on a tmpfs mounted below it, another."""
    top = tmp_path / "idsrc"
    top.mkdir()
    mount("tmpfs", str(top), "tmpfs", 0, "size=1m,mode=1777")
    (top / "sub").mkdir()
    mount("tmpfs", str(top / "sub"), "tmpfs", 0, "size=1m,mode=1777")
    (top / "hostfile").write_text("x")
    (top / "sub" / "hostfile").write_text("x")
    yield top
    umount(str(top / "sub"))
    umount(str(top))


def _idmap_bundle(bundle, source, options, *, mappings=True, userns=False, uid=0, script,
                  destination="/data", root=None):
    def edit(config):
        if root:
            config["root"] = {"path": root, "readonly": True}
        m = {"destination": destination, "type": "bind", "source": str(source), "options": options}
        if mappings:
            m["uidMappings"] = m["gidMappings"] = ID_MAPPING
        config["mounts"].append(m)
        config["process"]["user"] = {"uid": uid, "gid": uid}
        if userns:
            config["linux"]["namespaces"].append({"type": "user"})
            config["linux"]["uidMappings"] = config["linux"]["gidMappings"] = ID_MAPPING
    return bundle(edit, args=script_with_mountinfo(script))


STAT = "stat -c '%u:%g' /data/hostfile /data/sub/hostfile; touch /data/made && stat -c '%u:%g' /data/made"


def test_idmapped_bind_without_user_namespace(owned_tmpfs, bundle, pyrunc_cmd, container_id):
    # host 0 is mapped to 100000: the file shows as 100000, and 100005 creates host uid 5
    b = _idmap_bundle(bundle, owned_tmpfs, ["bind"], uid=100005, script=STAT.replace(" /data/sub/hostfile", ""))
    out, mounts = split_output(run_inside(pyrunc_cmd, b, container_id))
    assert out == "100000:100000\n100005:100005\n"
    assert "idmapped" in mount_at(mounts, "/data").options
    assert (os.stat(owned_tmpfs / "made").st_uid, os.stat(owned_tmpfs / "made").st_gid) == (5, 5)


@pytest.mark.parametrize("option, sub_owner", [("idmap", "0:0"), ("ridmap", "100000:100000")])
def test_ridmap_maps_the_submounts_idmap_does_not(option, sub_owner, owned_tmpfs, bundle, pyrunc_cmd,
                                                   container_id):
    b = _idmap_bundle(bundle, owned_tmpfs, ["rbind", option], script="stat -c '%u:%g' /data/hostfile /data/sub/hostfile")
    out, mounts = split_output(run_inside(pyrunc_cmd, b, container_id))
    assert out == f"100000:100000\n{sub_owner}\n"
    assert ("idmapped" in mount_at(mounts, "/data/sub").options) == (option == "ridmap")


def test_idmap_in_a_user_namespace_uses_its_mappings(owned_tmpfs, userns_rootfs, bundle, pyrunc_cmd, container_id):
    # container root is host 100000; through the id-mapped bind the host's root files are
    # its own and what it creates is host root's (on /mnt: root in the namespace may not
    # create a mount point in the host-owned image)
    script = "stat -c '%u:%g' /mnt/hostfile; touch /mnt/made && stat -c '%u:%g' /mnt/made"
    b = _idmap_bundle(bundle, owned_tmpfs, ["bind", "idmap"], mappings=False, userns=True, script=script,
                      destination="/mnt", root=userns_rootfs)
    out, mounts = split_output(run_inside(pyrunc_cmd, b, container_id))
    assert out == "0:0\n0:0\n"
    assert "idmapped" in mount_at(mounts, "/mnt").options
    assert (os.stat(owned_tmpfs / "made").st_uid, os.stat(owned_tmpfs / "made").st_gid) == (0, 0)


def test_idmap_with_a_joined_user_namespace_uses_that_namespace(owned_tmpfs, userns_rootfs, bundle, pyrunc_cmd,
                                                                 container_id):
    from test_namespaces import run_userns_sleeper
    sleeper_id = container_id + "-a"
    sleeper_pid = run_userns_sleeper(bundle, pyrunc_cmd, sleeper_id, userns_rootfs)
    script = "stat -c '%u:%g' /mnt/hostfile; touch /mnt/made && stat -c '%u:%g' /mnt/made"

    def edit(config):
        config["root"] = {"path": userns_rootfs, "readonly": True}
        config.pop("hostname", None)
        config["linux"]["namespaces"] = [{"type": "mount"}, {"type": "pid"}, {"type": "ipc"},
                                         {"type": "user", "path": f"/proc/{sleeper_pid}/ns/user"}]
        config["mounts"] = [m for m in config["mounts"] if m["type"] not in ("sysfs", "cgroup")]
        config["mounts"].append({"destination": "/mnt", "type": "bind", "source": str(owned_tmpfs),
                                 "options": ["bind", "idmap"]})
    try:
        out, mounts = split_output(run_inside(pyrunc_cmd, bundle(edit, args=script_with_mountinfo(script)),
                                              container_id))
    finally:
        pyrunc_cmd("delete", "--force", sleeper_id)
    assert out == "0:0\n0:0\n"
    assert "idmapped" in mount_at(mounts, "/mnt").options
    assert os.stat(owned_tmpfs / "made").st_uid == 0


def test_idmapped_bind_of_ext4(tmp_path, bundle, pyrunc_cmd, container_id):
    source = tmp_path / "ext4src"
    source.mkdir(mode=0o777)
    os.chmod(source, 0o777)
    (source / "hostfile").write_text("x")
    fstype = subprocess.run(["stat", "-f", "-c", "%T", str(source)], capture_output=True, text=True).stdout
    if not fstype.startswith("ext"):
        pytest.skip(f"the test directory is on {fstype.strip()}, not ext4")
    b = _idmap_bundle(bundle, source, ["bind"], uid=100007, script=STAT.replace(" /data/sub/hostfile", ""))
    out, _ = split_output(run_inside(pyrunc_cmd, b, container_id))
    assert out == "100000:100000\n100007:100007\n"
    assert os.stat(source / "made").st_uid == 7


@pytest.mark.parametrize("fstype", ["ramfs", "overlay"])  # neither can be id-mapped on this kernel (6.18)
def test_idmap_of_a_filesystem_without_support_fails_cleanly(fstype, tmp_path, bundle, fails_cleanly):  # noqa: F811
    source = tmp_path / fstype
    source.mkdir()
    data = None
    if fstype == "overlay":
        for d in ("lower", "upper", "work"):
            (tmp_path / d).mkdir()
        data = f"lowerdir={tmp_path}/lower,upperdir={tmp_path}/upper,workdir={tmp_path}/work"
    mount(fstype, str(source), fstype, 0, data)
    try:
        b = _idmap_bundle(bundle, source, ["bind"], script="true")
        line = fails_cleanly("-b", b)
    finally:
        umount(str(source))
    assert f'msg="id-map mounts[7] source {source}: its filesystem does not support id-mapped mounts"' in line, line


@pytest.mark.parametrize("edit, field", [
    (lambda m: m.update(type="tmpfs", source="tmpfs", options=[]), "mounts[7].uidMappings"),
    (lambda m: m.update(uidMappings=[{"containerID": 0, "hostID": 1, "size": 10},
                                     {"containerID": 9, "hostID": 100, "size": 1}]),
     "mounts[7].uidMappings[1].containerID"),
    (lambda m: m.pop("gidMappings"), "mounts[7].gidMappings"),
    (lambda m: m.update(gidMappings="0:1:1"), "mounts[7].gidMappings"),
])
def test_bad_idmapped_mount_is_refused_in_one_line(edit, field, owned_tmpfs, bundle, fails_cleanly):  # noqa: F811
    b = _idmap_bundle(bundle, owned_tmpfs, ["bind"], script="true")
    raw = json.loads((b / "config.json").read_text())
    edit(raw["mounts"][7])
    (b / "config.json").write_text(json.dumps(raw))
    line = fails_cleanly("-b", b)
    assert f"{field}:" in line, line


# ------------------------------------------------------------------- relative destinations


def test_relative_destination_is_relative_to_the_root_as_in_runc(tree, bundle, pyrunc_cmd, runc_cmd, container_id):
    def edit(config):
        config["mounts"].append({"destination": "data", "type": "bind", "source": str(tree), "options": ["bind"]})
    b = bundle(edit, args=script_with_mountinfo("cat /data/sub/file 2>/dev/null; ls /data"))
    outs = []
    for runner in (pyrunc_cmd, runc_cmd):
        result = runner("run", "-b", str(b), container_id)
        assert result.returncode == 0, result.stderr
        out, mounts = split_output(result.stdout)
        assert mount_at(mounts, "/data").root == str(tree)
        assert "not absolute" in result.stderr  # both warn
        outs.append(out)
    assert outs[0] == outs[1] == "sub\n"


# --------------------------------------------------------------------------------- features


def test_features_list_every_mount_option_runc_has_and_idmap(pyrunc_cmd, runc_cmd):
    ours = json.loads(pyrunc_cmd("features", check=True).stdout)
    runc = json.loads(runc_cmd("features", check=True).stdout)
    # runc 1.1.5's list (the recursive options and nosymfollow included), plus runc 1.2's
    # idmap/ridmap
    assert set(ours["mountOptions"]) == set(runc["mountOptions"]) | {"idmap", "ridmap"}
    release = tuple(int(x) for x in os.uname().release.split("-")[0].split(".")[:2])
    assert ours["linux"]["mountExtensions"] == {"idmap": {"enabled": release >= (5, 12)}}
