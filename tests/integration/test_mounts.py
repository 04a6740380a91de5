"""`mounts` in config.json, checked from inside the container: every mount type, applied in
order, with its flags visible in /proc/self/mountinfo; bind sources from the host; missing
destinations created; propagation options; and destinations that go through a symlink in
the image (the CVE-2021-30465 class) landing inside the rootfs, never on the host."""
from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest

from mountinfo import (
    MS_SHARED,
    mount,
    mount_at,
    parse_mountinfo,
    run_inside,
    script_with_mountinfo,
    split_output,
    umount,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")


def add_mounts(*mounts: dict):
    def edit(config: dict) -> None:
        config["mounts"].extend(mounts)
    return edit


# ---------------------------------------------------------------------------------------
# bind and rbind


@pytest.fixture
def host_dir_with_nested_mount(tmp_path):
    """A host directory with a file and a tmpfs mounted on a subdirectory (in the test's
    private namespace) holding another file: bind shows the first only, rbind both."""
    top = tmp_path / "hostdata"
    (top / "nested").mkdir(parents=True)
    (top / "file.txt").write_text("from the host\n")
    mount("tmpfs", str(top / "nested"), "tmpfs", 0, "size=1m")
    try:
        (top / "nested" / "inner.txt").write_text("from the nested mount\n")
        yield top
    finally:
        umount(str(top / "nested"))


def test_bind_mount_shows_the_host_directory_but_not_mounts_below_it(
        bundle, pyrunc_cmd, container_id, host_dir_with_nested_mount):
    top = host_dir_with_nested_mount
    b = bundle(
        add_mounts({"destination": "/data", "type": "bind", "source": str(top), "options": ["bind"]}),
        args=script_with_mountinfo("cat /data/file.txt; ls -A /data/nested; echo end"),
    )
    out, mounts = split_output(run_inside(pyrunc_cmd, b, container_id))
    assert out == "from the host\nend\n"  # nested/ is the empty directory under the tmpfs
    data = mount_at(mounts, "/data")
    assert data.root == str(top)
    assert not [m for m in mounts if m.mountpoint == "/data/nested"]


def test_rbind_mount_brings_the_mounts_below_it(bundle, pyrunc_cmd, container_id, host_dir_with_nested_mount):
    top = host_dir_with_nested_mount
    b = bundle(
        add_mounts({"destination": "/data", "type": "bind", "source": str(top), "options": ["rbind"]}),
        args=script_with_mountinfo("cat /data/file.txt /data/nested/inner.txt"),
    )
    out, mounts = split_output(run_inside(pyrunc_cmd, b, container_id))
    assert out == "from the host\nfrom the nested mount\n"
    assert mount_at(mounts, "/data/nested").fstype == "tmpfs"


def test_bind_mount_with_ro_refuses_writes(bundle, pyrunc_cmd, container_id, tmp_path):
    source = tmp_path / "rosrc"
    source.mkdir()
    (source / "file.txt").write_text("keep\n")
    b = bundle(
        add_mounts({"destination": "/data", "type": "bind", "source": str(source), "options": ["rbind", "ro"]}),
        args=script_with_mountinfo("echo changed > /data/file.txt; echo rc=$?; touch /data/new; echo rc=$?"),
    )
    out, mounts = split_output(run_inside(pyrunc_cmd, b, container_id))
    assert out.count("Read-only file system") == 2, out
    assert "rc=0" not in out
    assert "ro" in mount_at(mounts, "/data").options
    assert (source / "file.txt").read_text() == "keep\n"
    assert sorted(os.listdir(source)) == ["file.txt"]


def test_bind_source_relative_to_the_bundle(bundle, pyrunc_cmd, container_id):
    def edit(config: dict) -> None:
        config["mounts"].append({"destination": "/data", "type": "bind", "source": "hostside", "options": ["rbind"]})
    b = bundle(edit, args=["cat", "/data/x"])
    (b / "hostside").mkdir()
    (b / "hostside" / "x").write_text("relative source\n")
    assert run_inside(pyrunc_cmd, b, container_id) == "relative source\n"


def test_bind_of_a_file_onto_a_path_that_does_not_exist_creates_a_file(
        bundle, pyrunc_cmd, container_id, tmp_path):
    source = tmp_path / "single.conf"
    source.write_text("one file\n")
    b = bundle(
        add_mounts({"destination": "/etc/new/dir/single.conf", "type": "bind", "source": str(source),
                    "options": ["bind", "ro"]}),
        args=["sh", "-c", "cat /etc/new/dir/single.conf; stat -c '%F' /etc/new/dir/single.conf /etc/new/dir"],
        private_rootfs=True,
    )
    assert run_inside(pyrunc_cmd, b, container_id) == "one file\nregular file\ndirectory\n"
    # the mount point was created in the bundle's rootfs, as a file
    assert (b / "rootfs/etc/new/dir/single.conf").is_file()


def test_missing_destinations_are_created_as_directories(bundle, pyrunc_cmd, container_id):
    b = bundle(
        add_mounts({"destination": "/mnt/a/b/c", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]},
                   {"destination": "/brand/new", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}),
        args=script_with_mountinfo("stat -c '%F' /mnt/a/b/c /brand/new"),
        private_rootfs=True,
    )
    out, mounts = split_output(run_inside(pyrunc_cmd, b, container_id))
    assert out == "directory\ndirectory\n"
    assert mount_at(mounts, "/mnt/a/b/c").fstype == "tmpfs"
    assert mount_at(mounts, "/brand/new").fstype == "tmpfs"
    assert (b / "rootfs/mnt/a/b/c").is_dir() and (b / "rootfs/brand/new").is_dir()


def _entries(top: Path) -> set[str]:
    return {os.path.relpath(os.path.join(d, n), top) for d, dirs, files in os.walk(top) for n in dirs + files}


@pytest.mark.parametrize("destination, created", [
    ("/made/by/the/mount", "made"),
    ("/etc/made", "etc/made"),
])
def test_a_failed_mount_removes_the_mount_point_it_created(
        bundle, pyrunc_cmd, container_id, state_root, assert_no_residue, destination, created):
    """Beyond runc (which leaves them): the directories a mount created for its missing
    destination are removed again when that mount fails, so a failed create leaves the
    image as it was; what existed before (/etc) stays."""
    b = bundle(add_mounts({"destination": destination, "type": "tmpfs", "source": "tmpfs",
                           "options": ["mode=not-a-mode"]}),
               args=["true"], private_rootfs=True)
    before = _entries(b / "rootfs")
    result = pyrunc_cmd("run", "-b", str(b), container_id)
    assert result.returncode == 1
    assert f"mount tmpfs on {b / 'rootfs'}{destination}: invalid argument" in result.stderr, result.stderr
    assert not os.path.lexists(b / "rootfs" / created)
    # the default devices etc. of the image's /dev are not made: /dev is a tmpfs here
    assert _entries(b / "rootfs") == before
    assert_no_residue(state_root, [container_id])


# ---------------------------------------------------------------------------------------
# flags, order, tmpfs options


@pytest.mark.parametrize("options, expected, absent", [
    (["nosuid", "nodev", "noexec"], {"nosuid", "nodev", "noexec"}, {"ro"}),
    (["noatime"], {"noatime"}, {"relatime", "nosuid"}),
    (["relatime", "ro"], {"relatime", "ro"}, {"noatime", "rw"}),
])
def test_mount_flags_show_in_mountinfo(bundle, pyrunc_cmd, container_id, options, expected, absent):
    b = bundle(
        add_mounts({"destination": "/mnt/flags", "type": "tmpfs", "source": "tmpfs",
                    "options": [*options, "size=1m"]}),
        args=script_with_mountinfo(""),
    )
    _, mounts = split_output(run_inside(pyrunc_cmd, b, container_id))
    m = mount_at(mounts, "/mnt/flags")
    assert expected <= m.options, m.options
    assert not (absent & m.options), m.options


def test_noexec_and_nosuid_take_effect(bundle, pyrunc_cmd, container_id, tmp_path):
    source = tmp_path / "bins"
    source.mkdir()
    script = source / "hello"
    script.write_text("#!/bin/sh\necho executed\n")
    script.chmod(0o755)
    b = bundle(
        add_mounts({"destination": "/opt/exec", "type": "bind", "source": str(source), "options": ["bind"]},
                   {"destination": "/opt/noexec", "type": "bind", "source": str(source),
                    "options": ["bind", "noexec"]}),
        args=["sh", "-c", "/opt/exec/hello; /opt/noexec/hello; echo rc=$?"],
    )
    out = run_inside(pyrunc_cmd, b, container_id)
    lines = out.splitlines()
    assert lines[0] == "executed"
    assert "executed" not in lines[1:] and lines[-1] == "rc=126", out


def test_tmpfs_mode_and_size(bundle, pyrunc_cmd, container_id):
    b = bundle(
        add_mounts({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
                    "options": ["nosuid", "mode=1777", "size=1m"]}),
        args=script_with_mountinfo("stat -c '%a %U' /scratch; df -k /scratch | tail -n 1; "
                                   "echo hi > /scratch/f && cat /scratch/f"),
    )
    out, mounts = split_output(run_inside(pyrunc_cmd, b, container_id))
    lines = out.splitlines()
    assert lines[0] == "1777 root"
    df_fields = lines[1].split()
    assert df_fields[0] == "tmpfs" and df_fields[1] == "1024" and df_fields[-1] == "/scratch", lines[1]
    assert lines[2] == "hi"
    m = mount_at(mounts, "/scratch")
    # (the kernel shows no mode= for 1777, tmpfs's default)
    assert m.fstype == "tmpfs" and "size=1024k" in m.super_options
    assert "nosuid" in m.options


def test_mounts_are_applied_in_order(bundle, pyrunc_cmd, container_id, tmp_path):
    """A later mount on the same destination hides the earlier one; a mount below a
    previous mount lands on it; mountinfo lists them in config order."""
    source = tmp_path / "first"
    source.mkdir()
    (source / "from-bind").write_text("x")
    b = bundle(
        add_mounts(
            {"destination": "/stack", "type": "bind", "source": str(source), "options": ["bind"]},
            {"destination": "/stack", "type": "tmpfs", "source": "second", "options": ["size=1m"]},
            {"destination": "/stack/inner", "type": "tmpfs", "source": "third", "options": ["size=1m"]},
        ),
        args=script_with_mountinfo("ls -A /stack; echo end"),
    )
    out, mounts = split_output(run_inside(pyrunc_cmd, b, container_id))
    assert out == "inner\nend\n"  # the tmpfs hides the bind's file; inner/ was made on it
    stack = [m for m in mounts if m.mountpoint in ("/stack", "/stack/inner")]
    assert [m.mountpoint for m in stack] == ["/stack", "/stack", "/stack/inner"]
    assert [m.source for m in stack[1:]] == ["second", "third"]
    assert stack[0].fstype != "tmpfs" and stack[0].root == str(source)
    assert stack[2].parent_id == stack[1].mount_id
    # nothing of this reached the host directory
    assert sorted(os.listdir(source)) == ["from-bind"]


# ---------------------------------------------------------------------------------------
# the pseudo filesystems of the default spec


def test_default_spec_mounts(bundle, pyrunc_cmd, container_id):
    b = bundle(args=script_with_mountinfo(
        "stat -c '%t:%T %a' /dev/pts/ptmx; echo x > /sys/kernel/test 2>&1; echo sysrc=$?"))
    out, mounts = split_output(run_inside(pyrunc_cmd, b, container_id))
    lines = out.splitlines()
    assert lines[0] == "5:2 666"  # the new devpts instance's ptmx, ptmxmode=0666
    assert "Read-only file system" in out and lines[-1] != "sysrc=0"

    proc = mount_at(mounts, "/proc")
    assert proc.fstype == "proc" and proc.source == "proc"
    dev = mount_at(mounts, "/dev")
    assert dev.fstype == "tmpfs" and "nosuid" in dev.options
    assert {"mode=755", "size=65536k"} <= dev.super_options
    pts = mount_at(mounts, "/dev/pts")
    assert pts.fstype == "devpts" and {"nosuid", "noexec"} <= pts.options
    assert {"gid=5", "mode=620", "ptmxmode=666"} <= pts.super_options
    shm = mount_at(mounts, "/dev/shm")
    assert shm.fstype == "tmpfs" and {"nosuid", "nodev", "noexec"} <= shm.options
    mqueue = mount_at(mounts, "/dev/mqueue")
    assert mqueue.fstype == "mqueue" and {"nosuid", "nodev", "noexec"} <= mqueue.options
    sysfs = mount_at(mounts, "/sys")
    assert sysfs.fstype == "sysfs" and {"ro", "nosuid", "nodev", "noexec"} <= sysfs.options
    # and in the order of config.json
    order = [m.mountpoint for m in mounts]
    wanted = ["/", "/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup"]
    assert [p for p in order if p in wanted][: len(wanted)] == wanted


def test_devpts_is_a_new_instance(bundle, pyrunc_cmd, container_id):
    """newinstance: the container's /dev/pts holds only its own ptys (just ptmx here)."""
    b = bundle(args=["ls", "-A", "/dev/pts"])
    assert run_inside(pyrunc_cmd, b, container_id).split() == ["ptmx"]


def test_mqueue_is_the_containers_own(bundle, pyrunc_cmd, container_id):
    b = bundle(args=["sh", "-c", "touch /dev/mqueue/q1 && ls -A /dev/mqueue && cat /dev/mqueue/q1"])
    out = run_inside(pyrunc_cmd, b, container_id)
    assert out.splitlines()[0] == "q1"
    assert "QSIZE:0" in out


def test_sysfs_read_write_when_not_ro(bundle, pyrunc_cmd, container_id):
    def edit(config: dict) -> None:
        for m in config["mounts"]:
            if m["destination"] == "/sys":
                m["options"] = ["nosuid", "noexec", "nodev"]
    b = bundle(edit, args=script_with_mountinfo("cat /sys/kernel/mm/transparent_hugepage/enabled >/dev/null; echo ok"))
    out, mounts = split_output(run_inside(pyrunc_cmd, b, container_id))
    assert out == "ok\n"
    sysfs = mount_at(mounts, "/sys")
    assert sysfs.fstype == "sysfs" and "rw" in sysfs.options


def _own_cgroup(controller: str) -> str:
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return path
    raise AssertionError(f"no {controller} cgroup in /proc/self/cgroup")


def test_cgroup_mount_shows_the_containers_own_cgroup_read_only(bundle, pyrunc_cmd, container_id):
    if not os.path.isdir("/sys/fs/cgroup/memory"):
        pytest.skip("no cgroup v1 memory hierarchy on this machine")
    b = bundle(args=script_with_mountinfo(
        "ls /sys/fs/cgroup; echo ---; cat /sys/fs/cgroup/memory/memory.limit_in_bytes; "
        "cat /sys/fs/cgroup/memory/cgroup.procs; echo ---; "
        "mkdir /sys/fs/cgroup/memory/sub; echo mkdir=$?"))
    out, mounts = split_output(run_inside(pyrunc_cmd, b, container_id))
    listing, limits, rest = out.split("---\n")
    hierarchies = {"memory", "pids", "devices", "freezer", "blkio", "systemd"}
    assert hierarchies <= set(listing.split()), listing
    # on a hybrid host the cgroup2 half is not shown, as with runc
    assert "unified" not in listing.split(), listing
    limit, *procs = limits.split()
    assert int(limit) > 0
    # the container's own cgroup: its pid 1 (sh) is a member
    assert "1" in procs, limits
    assert "Read-only file system" in rest and "mkdir=0" not in rest, rest
    memory = mount_at(mounts, "/sys/fs/cgroup/memory")
    assert memory.fstype == "cgroup" and "memory" in memory.super_options
    assert {"ro", "nosuid", "nodev", "noexec"} <= memory.options
    # bound from below our own cgroup: nothing above it is visible
    assert memory.root == _own_cgroup("memory").rstrip("/") + "/" + container_id
    tmpfs = mount_at(mounts, "/sys/fs/cgroup")
    # read-only by a superblock remount, as runc does
    assert tmpfs.fstype == "tmpfs" and "ro" in tmpfs.super_options


def test_cgroup_mount_in_a_cgroup_namespace(bundle, pyrunc_cmd, container_id):
    if not os.path.isdir("/sys/fs/cgroup/memory"):
        pytest.skip("no cgroup v1 memory hierarchy on this machine")

    def edit(config: dict) -> None:
        config["linux"]["namespaces"].append({"type": "cgroup"})
    b = bundle(edit, args=script_with_mountinfo(
        "cat /sys/fs/cgroup/memory/cgroup.procs; grep :memory: /proc/self/cgroup"))
    out, mounts = split_output(run_inside(pyrunc_cmd, b, container_id))
    assert "1" in out.split() and out.splitlines()[-1].endswith(":memory:/"), out
    memory = mount_at(mounts, "/sys/fs/cgroup/memory")
    assert memory.fstype == "cgroup" and memory.root == "/" and "ro" in memory.options


# ---------------------------------------------------------------------------------------
# propagation


@pytest.fixture
def shared_host_mount(tmp_path):
    """A tmpfs in the test's namespace made shared: its peer group id, and the dir."""
    target = tmp_path / "sharedsrc"
    target.mkdir()
    mount("tmpfs", str(target), "tmpfs", 0, "size=1m")
    try:
        mount(None, str(target), None, MS_SHARED)
        (target / "marker").write_text("shared\n")
        me = mount_at(parse_mountinfo(Path("/proc/self/mountinfo").read_text()), str(target))
        group = me.tag("shared")
        assert group, me.optional
        yield target, group
    finally:
        umount(str(target))


@pytest.mark.parametrize("propagation", ["rshared", "rslave", "private", "rprivate", "shared", "slave"])
def test_mount_propagation_option(bundle, pyrunc_cmd, runc_cmd, container_id, shared_host_mount, propagation):
    source, host_group = shared_host_mount
    b = bundle(
        add_mounts({"destination": "/prop", "type": "bind", "source": str(source),
                    "options": ["rbind", propagation]}),
        args=script_with_mountinfo("cat /prop/marker"),
    )
    out, mounts = split_output(run_inside(pyrunc_cmd, b, container_id))
    assert out == "shared\n"
    m = mount_at(mounts, "/prop")
    kinds = sorted(f.partition(":")[0] for f in m.optional)
    if propagation.endswith("shared"):
        assert "shared" in kinds, m.optional
    elif propagation.endswith("slave"):
        # a slave of the host mount's peer group, and not shared itself
        assert m.tag("master") == host_group and "shared" not in kinds, m.optional
    else:
        assert m.optional == [], m.optional
    # same as runc
    runc_out, runc_mounts = split_output(run_inside(runc_cmd, b, container_id))
    runc_kinds = sorted(f.partition(":")[0] for f in mount_at(runc_mounts, "/prop").optional)
    assert kinds == runc_kinds


def test_propagation_from_the_host_reaches_an_rslave_mount(bundle, pyrunc_cmd, container_id, shared_host_mount):
    """With rslave, a mount made on the host side after start shows up inside."""
    source, _ = shared_host_mount
    (source / "later").mkdir()
    b = bundle(
        add_mounts({"destination": "/prop", "type": "bind", "source": str(source), "options": ["rbind", "rslave"]}),
        args=["sh", "-c", "i=0; while [ ! -e /prop/later/inner ] && [ $i -lt 100 ]; do sleep 0.05; "
                          "i=$((i+1)); done; cat /prop/later/inner > /prop/result"],
    )
    result = pyrunc_cmd("create", "-b", str(b), container_id)
    assert result.returncode == 0, result.stderr
    mount("tmpfs", str(source / "later"), "tmpfs", 0, "size=1m")
    try:
        (source / "later" / "inner").write_text("propagated\n")
        result = pyrunc_cmd("start", container_id)
        assert result.returncode == 0, result.stderr
        # the init's stdout is the create command's: wait for the container to stop instead
        for _ in range(200):
            state = pyrunc_cmd("state", container_id)
            if '"stopped"' in state.stdout:
                break
            time.sleep(0.05)
        assert '"stopped"' in state.stdout
        # written through the container's view of the mount made after it started
        assert (source / "result").read_text() == "propagated\n"
    finally:
        umount(str(source / "later"))


USERNS_MAPPING = [{"containerID": 0, "hostID": 100000, "size": 65536}]


def test_userns_bind_of_a_shared_host_mount_is_a_slave(bundle, pyrunc_cmd, container_id, shared_host_mount,
                                                       userns_rootfs):
    """In a user namespace the bind source is a copy of the host's mount taken before the
    init enters the namespace (tmp_path is only the host root's to traverse): that copy
    must be a slave, as a bind in the container's rslave tree is, so a mount made in the
    container under it never propagates back to the host, while the host's still reach
    the container."""
    source, group = shared_host_mount
    (source / "sub").mkdir()

    def edit(config):
        config["root"] = {"path": userns_rootfs, "readonly": True}
        config["linux"]["namespaces"].append({"type": "user"})
        config["linux"]["uidMappings"] = USERNS_MAPPING
        config["linux"]["gidMappings"] = USERNS_MAPPING
        caps = config["process"]["capabilities"]
        for kind in ("bounding", "effective", "permitted"):
            caps[kind] = sorted(set(caps[kind]) | {"CAP_SYS_ADMIN"})
        config["mounts"].append({"destination": "/opt", "type": "bind", "source": str(source),
                                 "options": ["rbind"]})

    script = ("awk '$5 == \"/opt\" { print $7 }' /proc/self/mountinfo; cat /opt/marker;"
              " mount -t tmpfs none /opt/sub && echo mounted")
    b = bundle(edit, args=["sh", "-c", script])
    out = run_inside(pyrunc_cmd, b, container_id)
    tag, marker, mounted = out.splitlines()
    assert tag == f"master:{group}", out  # a slave of the host's peer group
    assert (marker, mounted) == ("shared", "mounted")
    host_mounts = parse_mountinfo(Path("/proc/self/mountinfo").read_text())
    assert not [m for m in host_mounts if m.mountpoint == str(source / "sub")], "the container's mount reached the host"


# ---------------------------------------------------------------------------------------
# symlinks in the image must not redirect a mount out of the rootfs (CVE-2021-30465)


@pytest.fixture
def unique_host_dir():
    path = Path("/tmp") / f"pyrunc-escape-{uuid.uuid4().hex[:12]}"
    path.mkdir()
    try:
        yield path
    finally:
        # only what this test made: an escape would have left a sub/ here
        for top, dirs, files in os.walk(path, topdown=False):
            for name in files:
                os.unlink(os.path.join(top, name))
            for name in dirs:
                os.rmdir(os.path.join(top, name))
        os.rmdir(path)


@pytest.mark.parametrize("target_in_rootfs", ["missing", "present"])
@pytest.mark.parametrize("link_style", ["relative-dotdot", "absolute"])
def test_symlink_in_rootfs_cannot_move_a_mount_onto_the_host(
        bundle, pyrunc_cmd, runc_cmd, container_id, unique_host_dir, link_style, target_in_rootfs):
    """"missing": the link dangles inside the rootfs, so the runtime must create
    rootfs/tmp/<unique>/sub (runc does); "present": the directory is already there."""
    host_dir = unique_host_dir

    def plant(b: Path) -> None:
        os.symlink(target, b / "rootfs" / "evil")
        if target_in_rootfs == "present":
            (b / "rootfs" / str(host_dir).lstrip("/")).mkdir()
    target = "/../../../../../../" + str(host_dir).lstrip("/") if link_style == "relative-dotdot" else str(host_dir)

    def edit(config: dict) -> None:
        config["mounts"].append({"destination": "/evil/sub", "type": "tmpfs", "source": "escape",
                                 "options": ["size=1m"]})
    args = script_with_mountinfo("touch /evil/sub/written && echo wrote; ls -A /evil/sub")
    host_mounts_before = Path("/proc/self/mountinfo").read_text()

    # runc (securejoin + MkdirAll) resolves the link inside the rootfs and creates the rest
    runc_bundle = bundle(edit, private_rootfs=True, args=args)
    plant(runc_bundle)
    runc_out, runc_mounts = split_output(run_inside(runc_cmd, runc_bundle, container_id))
    assert runc_out == "wrote\nwritten\n"
    assert mount_at(runc_mounts, f"{host_dir}/sub").fstype == "tmpfs"
    assert os.listdir(host_dir) == []

    b = bundle(edit, private_rootfs=True, args=args)
    plant(b)
    out, mounts = split_output(run_inside(pyrunc_cmd, b, container_id))

    # the tmpfs landed inside the rootfs, where RESOLVE_IN_ROOT resolves /evil
    inside = mount_at(mounts, f"{host_dir}/sub")
    assert inside.fstype == "tmpfs" and inside.source == "escape"
    assert out == "wrote\nwritten\n"
    assert (b / "rootfs" / str(host_dir).lstrip("/") / "sub").is_dir()
    # and nothing happened on the host
    assert os.listdir(host_dir) == []
    host_mounts_after = Path("/proc/self/mountinfo").read_text()
    assert host_mounts_after == host_mounts_before
    assert str(host_dir) not in host_mounts_after


def test_symlink_bind_destination_stays_in_rootfs(bundle, pyrunc_cmd, container_id, unique_host_dir, tmp_path):
    """A bind (not only a tmpfs) through an absolute symlink: the host dir stays empty."""
    source = tmp_path / "payload"
    source.mkdir()
    (source / "p").write_text("payload\n")

    def edit(config: dict) -> None:
        config["mounts"].append({"destination": "/evil/sub", "type": "bind", "source": str(source),
                                 "options": ["rbind"]})
    b = bundle(edit, private_rootfs=True, args=["cat", f"{unique_host_dir}/sub/p"])
    os.symlink(str(unique_host_dir), b / "rootfs" / "evil")
    assert run_inside(pyrunc_cmd, b, container_id) == "payload\n"
    assert os.listdir(unique_host_dir) == []
