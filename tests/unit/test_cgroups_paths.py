"""runc's cgroupfs path semantics, checked on mount tables of the three layouts (text as
the kernel prints it) and on this machine's own /proc files. Nothing is created in a
cgroup filesystem here (fs.mkdirs is checked on a temporary directory)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyrunc.cgroups import CgroupError, Manager, mode
from pyrunc.cgroups._paths import (
    clean_cgroups_path,
    detect_mode,
    hierarchies,
    is_below,
    looks_like_systemd,
    parse_cgroup_mounts,
    parse_proc_cgroup,
    resolve_dirs,
)
from pyrunc.errors import PyruncError

HYBRID_MOUNTINFO = """\
22 1 8:1 / / rw,relatime - ext4 /dev/vda1 rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
42 31 0:39 / /sys/fs/cgroup/elogind rw,relatime - cgroup cgroup rw,name=elogind
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
"""

HYBRID_SELF = """\
12:name=elogind:/
9:name=systemd:/user.slice/session-1.scope
7:devices:/user.slice
4:memory:/process_api/abc
3:cpuset:/
2:cpu,cpuacct:/user.slice
0::/user.slice/session-1.scope
"""

UNIFIED_MOUNTINFO = """\
22 1 8:1 / / rw,relatime - ext4 /dev/vda1 rw
30 23 0:27 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
"""

LEGACY_MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
"""


def _hybrid():
    mounts = parse_cgroup_mounts(HYBRID_MOUNTINFO)
    own = parse_proc_cgroup(HYBRID_SELF)
    return hierarchies(mounts, detect_mode(mounts), own), own


# ---- mode --------------------------------------------------------------------------------


@pytest.mark.parametrize("text,expected", [
    (HYBRID_MOUNTINFO, "hybrid"),
    (UNIFIED_MOUNTINFO, "unified"),
    (LEGACY_MOUNTINFO, "legacy"),
])
def test_detect_mode(text, expected):
    assert detect_mode(parse_cgroup_mounts(text)) == expected


def test_detect_mode_without_cgroups():
    with pytest.raises(CgroupError, match="no cgroup filesystem"):
        detect_mode(parse_cgroup_mounts("22 1 8:1 / / rw - ext4 /dev/vda1 rw\n"))


def test_mode_of_this_machine_matches_proc_mounts():
    with open("/proc/mounts") as f:
        fstypes = {line.split()[1]: line.split()[2] for line in f}
    expected = ("unified" if fstypes.get("/sys/fs/cgroup") == "cgroup2"
                else "hybrid" if "cgroup2" in fstypes.values() else "legacy")
    assert mode() == expected


def test_mountinfo_octal_escapes():
    text = "50 31 0:40 / /mnt/my\\040cgroups rw - cgroup2 cgroup2 rw\n"
    assert parse_cgroup_mounts(text)[0][1] == "/mnt/my cgroups"


# ---- hierarchies ---------------------------------------------------------------------------


def test_hybrid_hierarchies_follow_runc_list():
    hiers, _ = _hybrid()
    keys = [h.key for h in hiers]
    # Co-mounted controllers share one directory; name=systemd is joined, other named
    # hierarchies are not; the cgroup2 mount comes last.
    assert keys == ["cpu,cpuacct", "cpuset", "memory", "devices", "name=systemd", ""]
    assert hiers[-1].mountpoint == "/sys/fs/cgroup/unified"


def test_legacy_ignores_cgroup2_line():
    mounts = parse_cgroup_mounts(LEGACY_MOUNTINFO)
    own = parse_proc_cgroup("5:memory:/\n4:devices:/\n0::/\n")
    assert [h.key for h in hierarchies(mounts, "legacy", own)] == ["memory", "devices"]


def test_canonical_mount_preferred_over_bind_mount():
    text = ("60 1 0:32 / /tmp/elsewhere rw - cgroup cgroup rw,memory\n"
            "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n")
    hiers = hierarchies(parse_cgroup_mounts(text), "legacy", {"memory": "/"})
    assert [h.mountpoint for h in hiers] == ["/sys/fs/cgroup/memory"]


# ---- path resolution -------------------------------------------------------------------------


def test_relative_path_is_below_own_cgroup_per_hierarchy():
    hiers, own = _hybrid()
    dirs = resolve_dirs("ctr/x", "id", hiers, own)
    assert dirs == {
        "cpu,cpuacct": "/sys/fs/cgroup/cpu,cpuacct/user.slice/ctr/x",
        "cpuset": "/sys/fs/cgroup/cpuset/ctr/x",
        "memory": "/sys/fs/cgroup/memory/process_api/abc/ctr/x",
        "devices": "/sys/fs/cgroup/devices/user.slice/ctr/x",
        "name=systemd": "/sys/fs/cgroup/systemd/user.slice/session-1.scope/ctr/x",
        "": "/sys/fs/cgroup/unified/user.slice/session-1.scope/ctr/x",
    }


def test_absolute_path_is_below_each_mount():
    hiers, own = _hybrid()
    dirs = resolve_dirs("/machine/ctr", "id", hiers, own)
    assert dirs["cpu,cpuacct"] == "/sys/fs/cgroup/cpu,cpuacct/machine/ctr"
    assert dirs["memory"] == "/sys/fs/cgroup/memory/machine/ctr"
    assert dirs[""] == "/sys/fs/cgroup/unified/machine/ctr"


def test_empty_path_is_container_id_relative():
    hiers, own = _hybrid()
    assert resolve_dirs("", "abc", hiers, own) == resolve_dirs("abc", "ignored", hiers, own)


def test_inner_dotdot_is_normalised_like_runc():
    hiers, own = _hybrid()
    assert resolve_dirs("/a/../b/./c//", "id", hiers, own)["cpuset"] == "/sys/fs/cgroup/cpuset/b/c"


def test_bind_mounted_subtree_uses_mount_root():
    # Inside a container whose /sys/fs/cgroup/memory shows only /docker/c1 of the host tree.
    text = "35 31 0:32 /docker/c1 /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
    hiers = hierarchies(parse_cgroup_mounts(text), "legacy", {"memory": "/docker/c1/app"})
    assert resolve_dirs("x", "id", hiers, {"memory": "/docker/c1/app"}) == {
        "memory": "/sys/fs/cgroup/memory/app/x"}


def test_own_cgroup_outside_mount_root_is_an_error():
    text = "35 31 0:32 /docker/c1 /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
    own = {"memory": "/other"}
    hiers = hierarchies(parse_cgroup_mounts(text), "legacy", own)
    with pytest.raises(CgroupError, match="outside its mount"):
        resolve_dirs("x", "id", hiers, own)


@pytest.mark.parametrize("path", ["..", "../x", "a/../../x", "/..", "/../x", "/a/../../x"])
def test_escaping_paths_rejected(path):
    with pytest.raises(CgroupError, match=r"escapes the cgroup hierarchy"):
        clean_cgroups_path(path, "id")


@pytest.mark.parametrize("path", ["/", ".", "a/..", "//"])
def test_paths_naming_no_cgroup_rejected(path):
    with pytest.raises(CgroupError, match="names no cgroup below its parent"):
        clean_cgroups_path(path, "id")


def test_nul_byte_rejected():
    with pytest.raises(CgroupError, match="nul byte"):
        clean_cgroups_path("a\x00b", "id")


@pytest.mark.parametrize("path,systemd", [
    ("system.slice:docker:abc", True),
    (":pyrunc:abc", True),
    ("machine.slice:libpod:x", True),
    ("/a:b:c", False),          # a slash in the slice field: a plain cgroupfs path
    ("a:b", False),
    ("user:x:y", False),        # first field is not a slice
])
def test_systemd_form_detection(path, systemd):
    assert looks_like_systemd(path) is systemd


def test_systemd_rejected_before_touching_the_system():
    with pytest.raises(PyruncError, match="needs --systemd-cgroup"):
        Manager.for_container("system.slice:pyrunc:abc", "abc")
    with pytest.raises(PyruncError, match='expected cgroupsPath to be of format "slice:prefix:name"'):
        Manager.for_container("abc", "abc", systemd=True)


_component = st.sampled_from(["a", "b", "..", ".", "", "c-1"])


@given(st.lists(_component, max_size=8), st.booleans())
def test_resolved_dirs_never_leave_their_base(parts, absolute):
    hiers, own = _hybrid()
    path = ("/" if absolute else "") + "/".join(parts)
    absolute = path.startswith("/")  # a leading empty part makes it absolute too
    try:
        dirs = resolve_dirs(path, "id", hiers, own)
    except CgroupError:
        return
    for h in hiers:
        rel = own[h.key].rstrip("/")
        base = h.mountpoint if absolute else h.mountpoint + rel
        assert is_below(dirs[h.key], base), (path, dirs[h.key])


# ---- state ---------------------------------------------------------------------------------------


def _manager() -> Manager:
    hiers, own = _hybrid()
    dirs = resolve_dirs("ctr", "id", hiers, own)
    return Manager("hybrid", dirs, {h.key: h.mountpoint for h in hiers},
                   [dirs["cpuset"], dirs["memory"]])


def test_state_round_trips_through_json():
    m = _manager()
    again = Manager.from_state(json.loads(json.dumps(m.to_state())))
    assert again.to_state() == m.to_state()
    assert again.unified_path == "/sys/fs/cgroup/unified/user.slice/session-1.scope/ctr"
    assert again.runc_cgroup_paths()["cpuacct"] == again.runc_cgroup_paths()["cpu"]


@pytest.mark.parametrize("field,value,match", [
    ("dirs", {"cpuset": "/etc"}, "is not below its mount"),
    ("dirs", {"cpuset": "/sys/fs/cgroup/cpuset/../../../etc"}, "is not below its mount"),
    ("created", ["/sys/fs/cgroup/cpuset/other"], "is not a container cgroup"),
    ("created", ["/sys/fs/cgroup/cpuset"], "is not a container cgroup"),
    ("mode", "v3", "unknown mode"),
])
def test_tampered_state_rejected(field, value, match):
    state = _manager().to_state()
    if isinstance(value, dict):
        state[field].update(value)
    else:
        state[field] = value
    with pytest.raises(CgroupError, match=match):
        Manager.from_state(state)


def test_missing_state_fields_rejected():
    with pytest.raises(CgroupError, match="state.json: cgroup"):
        Manager.from_state({"mode": "hybrid"})


def test_this_machine_relative_paths(tmp_path):
    """On the real /proc: a relative path sits below our own cgroup in every hierarchy."""
    m = Manager.for_container("pyrunc-unit-probe", "x")
    with open("/proc/self/cgroup") as f:
        own = parse_proc_cgroup(f.read())
    mounts = m.to_state()["mounts"]
    for key, directory in m.paths.items():
        assert directory.endswith("/pyrunc-unit-probe")
        assert directory.startswith(mounts[key])
        # Our own cgroup (relative to the mount) is the directory's parent.
        assert own[key].rstrip("/").endswith(directory[len(mounts[key]):-len("/pyrunc-unit-probe")])


def test_mkdirs_makes_the_leaf_with_one_mkdir_when_its_parents_exist(tmp_path, monkeypatch):
    """create's cgroup directories: one mkdir per hierarchy when the parents exist (the
    usual case: a pod's cgroup, the engine's parent), instead of one per path level; a
    missing parent still makes the whole path, top-down."""
    import os

    from pyrunc.cgroups import fs
    (tmp_path / "a" / "b" / "c").mkdir(parents=True)
    calls = []
    real_mkdir = os.mkdir
    monkeypatch.setattr(os, "mkdir", lambda path, mode=0o777: calls.append(path) or real_mkdir(path, mode))
    leaf = str(tmp_path / "a" / "b" / "c" / "d")
    assert fs.mkdirs(str(tmp_path), leaf) == [leaf]
    assert calls == [leaf]
    calls.clear()
    assert fs.mkdirs(str(tmp_path), leaf) == []
    assert calls == [leaf]
    deep = str(tmp_path / "x" / "y")
    assert fs.mkdirs(str(tmp_path), deep) == [str(tmp_path / "x"), deep]
