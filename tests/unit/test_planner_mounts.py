"""Plans of the newer mount fields, as data (tests/unit/test_planner.py's helpers): the
recursive attributes (rro, rnosuid ...), id-mapped binds (mounts[].uidMappings,
gidMappings, idmap/ridmap) with and without a user namespace, relative destinations; and
the model's refusals of bad id-mapped mounts, each naming the field."""
from __future__ import annotations

import pytest

from pyrunc import plan as P
from pyrunc.errors import ConfigError
from pyrunc.rootfs import options as O
from test_planner import _plan, _spec, names

MAP = [{"containerID": 0, "hostID": 100000, "size": 65536}]


def _bind(options, **extra):
    def edit(raw):
        raw["mounts"].append({"destination": "/mnt", "type": "bind", "source": "/src", "options": options, **extra})
    return edit


@pytest.mark.parametrize("option, attr_set, attr_clr", [
    ("rro", O.MOUNT_ATTR_RDONLY, 0),
    ("rrw", 0, O.MOUNT_ATTR_RDONLY),
    ("rnosuid", O.MOUNT_ATTR_NOSUID, 0),
    ("rsuid", 0, O.MOUNT_ATTR_NOSUID),
    ("rnodev", O.MOUNT_ATTR_NODEV, 0),
    ("rdev", 0, O.MOUNT_ATTR_NODEV),
    ("rnoexec", O.MOUNT_ATTR_NOEXEC, 0),
    ("rexec", 0, O.MOUNT_ATTR_NOEXEC),
    ("rnodiratime", O.MOUNT_ATTR_NODIRATIME, 0),
    ("rdiratime", 0, O.MOUNT_ATTR_NODIRATIME),
    ("rnosymfollow", O.MOUNT_ATTR_NOSYMFOLLOW, 0),
    ("rsymfollow", 0, O.MOUNT_ATTR_NOSYMFOLLOW),
    # the access time is an enum: always the whole field in attr_clr (the kernel refuses a part)
    ("rnoatime", O.MOUNT_ATTR_NOATIME, O.MOUNT_ATTR__ATIME),
    ("rstrictatime", O.MOUNT_ATTR_STRICTATIME, O.MOUNT_ATTR__ATIME),
    ("rrelatime", O.MOUNT_ATTR_RELATIME, O.MOUNT_ATTR__ATIME),
    ("ratime", 0, O.MOUNT_ATTR__ATIME),
    ("rnostrictatime", 0, O.MOUNT_ATTR__ATIME),
])
def test_recursive_attribute_is_set_after_the_bind_and_its_propagation(tmp_path, option, attr_set, attr_clr):
    _, ops = _plan(_spec(tmp_path, _bind(["rbind", option, "rprivate"])))
    mnt = [(name, ints, strs) for name, ints, strs in ops if strs[1:2] == ("/mnt",) or strs == ("/mnt",)]
    assert names(mnt) == ["mount", "mount", "mount_setattr"]  # bind, propagation, attributes
    assert mnt[1][1][0] == O.MS_PRIVATE | O.MS_REC
    assert mnt[2] == ("mount_setattr", (attr_set, attr_clr), ("/mnt",))


def test_rnorelatime_changes_nothing_as_in_runc(tmp_path):
    _, ops = _plan(_spec(tmp_path, _bind(["rbind", "rnorelatime"])))
    assert "mount_setattr" not in names(ops)


def test_later_recursive_option_wins(tmp_path):
    _, ops = _plan(_spec(tmp_path, _bind(["rbind", "rro", "rnoatime", "rrw", "rstrictatime"])))
    assert [o for o in ops if o[0] == "mount_setattr"] == [
        ("mount_setattr", (O.MOUNT_ATTR_STRICTATIME, O.MOUNT_ATTR_RDONLY | O.MOUNT_ATTR__ATIME), ("/mnt",))]


def test_recursive_attribute_on_a_fresh_mount(tmp_path):
    def edit(raw):
        raw["mounts"].append({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
                              "options": ["rnoexec", "size=1m"]})
    _, ops = _plan(_spec(tmp_path, edit))
    i = names(ops).index("mount_setattr")
    assert ops[i - 1][2][:3] == ("tmpfs", "/scratch", "tmpfs") and ops[i - 1][2][3] == "size=1m"
    assert ops[i] == ("mount_setattr", (O.MOUNT_ATTR_NOEXEC, 0), ("/scratch",))


def test_nosymfollow_is_a_mount_flag(tmp_path):
    _, ops = _plan(_spec(tmp_path, _bind(["bind", "nosymfollow"])))
    remount = [o for o in ops if o[0] == "mount" and o[2][1] == "/mnt"][-1]
    assert remount[1][0] == O.MS_BIND | O.MS_REMOUNT | O.MS_NOSYMFOLLOW


def _idmap_ops(ops):
    return [o for o in ops if o[0] in ("open_tree", "userns_fd", "idmap_tree")]


def test_idmapped_bind_without_user_namespace_is_opened_and_mapped_before_the_namespaces(tmp_path):
    _, ops = _plan(_spec(tmp_path, _bind(["rbind", "ridmap"], uidMappings=MAP,
                                         gidMappings=[{"containerID": 0, "hostID": 200000, "size": 10}])))
    assert ops[:3] == [("open_tree", (0, 1), ("/src",)),
                       ("userns_fd", (0,), ("0 100000 65536\n", "0 200000 10\n", "")),
                       ("idmap_tree", (0, 0, 1), ())]
    bind = [o for o in ops if o[0] == "mount" and o[2][1] == "/mnt"][0]
    assert bind[1][3:5] == (P.SOURCE_TREE, 0)  # the mapped copy is moved into place
    # only the id-mapped bind goes through a tree without a user namespace
    assert len([o for o in ops if o[0] == "open_tree"]) == 1


def test_idmap_without_mappings_uses_the_container_user_namespace(tmp_path):
    s = _spec(tmp_path, _bind(["bind", "idmap"]), rootless=True)
    _, ops = _plan(s)
    slot = [o for o in ops if o[0] == "open_tree" and o[2] == ("/src",)][0][1][0]
    uid = "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in s.linux.uid_mappings)
    gid = "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in s.linux.gid_mappings)
    assert ("userns_fd", (slot,), (uid, gid, "")) in ops
    assert ("idmap_tree", (slot, slot, 0), ()) in ops  # idmap: not recursive
    assert names(ops).index("idmap_tree") < names(ops).index("unshare")


def test_idmap_with_a_joined_user_namespace_uses_it(tmp_path):
    def edit(raw):
        _bind(["bind", "idmap"])(raw)
        raw["linux"]["namespaces"].append({"type": "user", "path": "/proc/1/ns/user"})
    _, ops = _plan(_spec(tmp_path, edit))
    assert ("userns_fd", (0,), ("", "", "/proc/1/ns/user")) in _idmap_ops(ops)


def test_mappings_alone_make_a_non_recursive_idmapped_bind(tmp_path):
    _, ops = _plan(_spec(tmp_path, _bind(["bind"], uidMappings=MAP, gidMappings=MAP)))
    assert names(_idmap_ops(ops)) == ["open_tree", "userns_fd", "idmap_tree"]
    assert [o for o in ops if o[0] == "idmap_tree"] == [("idmap_tree", (0, 0, 0), ())]


@pytest.mark.parametrize("mount, userns, message", [
    ({"type": "tmpfs", "source": "tmpfs", "options": ["idmap"]}, True,
     "mounts[7].options: id-mapped mounts are only supported for bind mounts"),
    ({"type": "tmpfs", "source": "tmpfs", "uidMappings": MAP, "gidMappings": MAP}, False,
     "mounts[7].uidMappings: id-mapped mounts are only supported for bind mounts"),
    ({"type": "bind", "source": "/src", "options": ["bind"], "uidMappings": MAP}, False,
     "mounts[7].gidMappings: id-mapped mounts must have both uid and gid mappings specified"),
    ({"type": "bind", "source": "/src", "options": ["bind", "ridmap"]}, False,
     'mounts[7].options: "ridmap" needs mounts[7].uidMappings and gidMappings, or a user namespace'),
    ({"type": "bind", "source": "/src", "options": ["bind"], "gidMappings": MAP,
      "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 10}, {"containerID": 5, "hostID": 5000, "size": 1}]},
     False, "mounts[7].uidMappings[1].containerID: 5 overlaps the range of mounts[7].uidMappings[0]"),
    ({"type": "bind", "source": "/src", "options": ["bind"], "gidMappings": MAP,
      "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 10}, {"containerID": 50, "hostID": 1009, "size": 1}]},
     False, "mounts[7].uidMappings[1].hostID: 1009 overlaps the range of mounts[7].uidMappings[0]"),
    ({"type": "bind", "source": "/src", "options": ["bind"], "gidMappings": MAP, "uidMappings": {"hostID": 1}},
     False, "mounts[7].uidMappings: expected an array"),
    ({"type": "bind", "source": "/src", "options": ["bind"], "gidMappings": MAP,
      "uidMappings": [{"containerID": 0, "hostID": "1", "size": 1}]},
     False, "mounts[7].uidMappings[0].hostID: expected an integer"),
])
def test_bad_idmapped_mount_is_refused_naming_the_field(tmp_path, mount, userns, message):
    def edit(raw):
        raw["mounts"].append({"destination": "/mnt", **mount})
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")) as e:
        _spec(tmp_path, edit, rootless=userns)
    assert "\n" not in str(e.value)


def test_relative_destination_is_relative_to_the_container_root(tmp_path):
    def edit(raw):
        raw["mounts"].append({"destination": "data/../mnt", "type": "bind", "source": "/src", "options": ["bind"]})
    s = _spec(tmp_path, edit)
    assert s.mounts[-1].destination == "/mnt"
    assert any("is not absolute" in w for w in s.warnings)
    _, ops = _plan(s)
    assert [o[2][1] for o in ops if o[0] == "mount" and o[2][0] == "/src"] == ["/mnt"]
