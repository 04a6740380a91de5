"""The container's root filesystem, checked from inside: root.path and root.readonly,
rootfsPropagation, the default /dev, linux.devices, maskedPaths and readonlyPaths,
--no-pivot, linux.sysctl, hostname and domainname, and the union (overlay) rootfs that
the "run.pyrunc.overlay" annotation asks for."""
from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import pytest

from mountinfo import (
    MS_BIND,
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


def sh(script: str) -> list[str]:
    return ["sh", "-c", f"exec 2>&1\n{script}"]


# ---------------------------------------------------------------------------------------
# root.path and root.readonly


def test_root_path_is_relative_to_the_bundle(bundle, pyrunc_cmd, container_id, tmp_path):
    b = bundle(private_rootfs=True, args=["cat", "/marker"])
    assert json.loads((b / "config.json").read_text())["root"]["path"] == "rootfs"
    (b / "rootfs" / "marker").write_text(f"bundle {b.name}\n")
    # run from an unrelated directory, and name the bundle by an absolute path
    assert run_inside(pyrunc_cmd, b, container_id, cwd="/") == f"bundle {b.name}\n"


def test_relative_bundle_path_from_the_cwd(bundle, pyrunc_cmd, container_id):
    b = bundle(private_rootfs=True, args=["cat", "/marker"])
    (b / "rootfs" / "marker").write_text("relative bundle\n")
    result = pyrunc_cmd("run", "-b", b.name, container_id, cwd=b.parent)
    assert (result.returncode, result.stdout) == (0, "relative bundle\n"), result.stderr


def test_readonly_root_refuses_writes_but_a_tmpfs_stays_writable(bundle, pyrunc_cmd, container_id):
    b = bundle(args=script_with_mountinfo(
        "touch /newfile; echo rc=$?; mkdir /newdir; echo rc=$?; "
        "echo ok > /dev/shm/f && cat /dev/shm/f"))
    out, mounts = split_output(run_inside(pyrunc_cmd, b, container_id))
    lines = out.splitlines()
    assert lines[0].endswith("Read-only file system") and lines[1] == "rc=1", out
    assert lines[2].endswith("Read-only file system") and lines[3] == "rc=1", out
    assert lines[4] == "ok"
    root = mount_at(mounts, "/")
    assert "ro" in root.options


def test_writable_root_when_readonly_is_false(bundle, pyrunc_cmd, container_id):
    def edit(config: dict) -> None:
        config["root"]["readonly"] = False
    b = bundle(edit, private_rootfs=True, args=script_with_mountinfo("echo written > /newfile && cat /newfile"))
    out, mounts = split_output(run_inside(pyrunc_cmd, b, container_id))
    assert out == "written\n"
    assert "rw" in mount_at(mounts, "/").options
    assert (b / "rootfs" / "newfile").read_text() == "written\n"


# ---------------------------------------------------------------------------------------
# rootfsPropagation: the rootfs is made a shared mount in the test's namespace first, so
# the container's "/" has a peer group to be a slave of (or to leave)


@pytest.fixture
def shared_rootfs_bundle(bundle):
    """A factory: bundle(edit, args) whose private rootfs is a shared bind mount."""
    mounted: list[str] = []

    def make(edit=None, args=None) -> tuple[Path, str]:
        b = bundle(edit, private_rootfs=True, args=args)
        rootfs = str(b / "rootfs")
        mount(rootfs, rootfs, None, MS_BIND)
        mounted.append(rootfs)
        mount(None, rootfs, None, MS_SHARED)
        me = mount_at(parse_mountinfo(Path("/proc/self/mountinfo").read_text()), rootfs)
        group = me.tag("shared")
        assert group, me.optional
        return b, group

    yield make
    for path in mounted:
        umount(path)


@pytest.mark.parametrize("propagation", [None, "rslave", "slave", "private", "rprivate", "shared", "rshared"])
def test_rootfs_propagation(shared_rootfs_bundle, pyrunc_cmd, runc_cmd, container_id, propagation):
    def edit(config: dict) -> None:
        if propagation:
            config["linux"]["rootfsPropagation"] = propagation
    b, host_group = shared_rootfs_bundle(edit, args=script_with_mountinfo(""))
    _, runc_mounts = split_output(run_inside(runc_cmd, b, container_id))
    runc_kinds = sorted(f.partition(":")[0] for f in mount_at(runc_mounts, "/").optional)
    _, mounts = split_output(run_inside(pyrunc_cmd, b, container_id))
    root = mount_at(mounts, "/")
    kinds = sorted(f.partition(":")[0] for f in root.optional)
    if propagation in (None, "rslave"):  # rslave is the default
        assert root.tag("master") == host_group and "shared" not in kinds, root.optional
        assert kinds == runc_kinds
    elif propagation in ("slave", "private", "rprivate"):
        # non-recursive "slave" leaves the shared rootfs mount shared, so (as runc's
        # rootfsParentMountPrivate) it is made private before the bind: no master
        assert root.optional == [], root.optional
        assert kinds == runc_kinds
    else:
        # pyrunc applies rootfsPropagation to the new root after pivot_root, so "shared"
        # gives a shared root; runc 1.1.5 leaves it private (runc_kinds == [])
        assert "shared" in kinds, root.optional
        assert root.tag("shared") != host_group  # its own peer group: nothing leaks to the host
        assert runc_kinds == []


def test_rootfs_propagation_shared_does_not_leak_mounts_to_the_host(
        shared_rootfs_bundle, pyrunc_cmd, container_id):
    """Mounts made inside a container with rootfsPropagation "shared" (and "/" being a
    shared mount on the host side) must not appear in the host's rootfs directory."""
    def edit(config: dict) -> None:
        config["linux"]["rootfsPropagation"] = "shared"
        config["mounts"].append({"destination": "/mnt/inner", "type": "tmpfs", "source": "leaktest",
                                 "options": ["size=1m"]})
    b, _ = shared_rootfs_bundle(edit, args=["true"])
    run_inside(pyrunc_cmd, b, container_id)
    assert "leaktest" not in Path("/proc/self/mountinfo").read_text()


# ---------------------------------------------------------------------------------------
# /dev


DEV_LISTING = (
    "for f in /dev/*; do stat -c '%n %F %a %u:%g %t:%T' \"$f\"; done; "
    "for l in fd stdin stdout stderr ptmx core; do [ -L /dev/$l ] && echo \"$l -> $(readlink /dev/$l)\"; done; true"
)


def _host_dev_null() -> tuple:
    st = os.lstat("/dev/null")
    return st.st_mode, st.st_uid, st.st_gid, st.st_rdev


def test_default_devices(bundle, pyrunc_cmd, runc_cmd, container_id):
    host_before = _host_dev_null()
    b = bundle(args=sh(DEV_LISTING))
    out = run_inside(pyrunc_cmd, b, container_id)
    lines = set(out.splitlines())
    expected = {
        "/dev/null character special file 666 0:0 1:3",
        "/dev/zero character special file 666 0:0 1:5",
        "/dev/full character special file 666 0:0 1:7",
        "/dev/random character special file 666 0:0 1:8",
        "/dev/urandom character special file 666 0:0 1:9",
        "/dev/tty character special file 666 0:0 5:0",
        "fd -> /proc/self/fd",
        "stdin -> /proc/self/fd/0",
        "stdout -> /proc/self/fd/1",
        "stderr -> /proc/self/fd/2",
        "ptmx -> pts/ptmx",
    }
    assert expected <= lines, sorted(expected - lines)
    # exactly what runc makes of the same bundle
    assert out == run_inside(runc_cmd, b, container_id)
    assert _host_dev_null() == host_before


def test_default_devices_work(bundle, pyrunc_cmd, container_id):
    b = bundle(args=sh(
        "echo gone > /dev/null && echo null-ok; head -c 4 /dev/zero | od -An -tx1; "
        "echo x > /dev/full; echo full-rc=$?; head -c 16 /dev/urandom | wc -c"))
    lines = [line.strip() for line in run_inside(pyrunc_cmd, b, container_id).splitlines()]
    assert lines[0] == "null-ok"
    assert lines[1] == "00 00 00 00"
    assert lines[2].endswith("No space left on device") and lines[3] == "full-rc=1"
    assert lines[4] == "16"


def test_linux_devices_entries_have_exact_mode_and_owner(bundle, pyrunc_cmd, runc_cmd, container_id):
    host_before = _host_dev_null()

    def edit(config: dict) -> None:
        config["linux"]["devices"] = [
            {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o620, "uid": 1, "gid": 2},
            {"path": "/dev/testfifo", "type": "p", "fileMode": 0o640, "uid": 3, "gid": 4},
            {"path": "/dev/sub/dir/blk", "type": "b", "major": 7, "minor": 200, "fileMode": 0o600},
        ]
    b = bundle(edit, args=sh("stat -c '%n %F %a %u:%g %t:%T' /dev/fuse /dev/testfifo /dev/sub/dir/blk"))
    out = run_inside(pyrunc_cmd, b, container_id)
    assert out.splitlines() == [
        "/dev/fuse character special file 620 1:2 a:e5",
        "/dev/testfifo fifo 640 3:4 0:0",
        "/dev/sub/dir/blk block special file 600 0:0 7:c8",
    ]
    assert out == run_inside(runc_cmd, b, container_id)
    assert _host_dev_null() == host_before
    assert not os.path.exists("/dev/testfifo")


# ---------------------------------------------------------------------------------------
# maskedPaths and readonlyPaths


def test_masked_files_read_empty_and_masked_dirs_are_empty_readonly_tmpfs(bundle, pyrunc_cmd, container_id):
    masked_files = [p for p in ("/proc/kcore", "/proc/keys", "/proc/timer_list") if os.path.exists(p)]
    masked_dirs = [p for p in ("/proc/acpi", "/sys/firmware") if os.path.isdir(p)]
    if not masked_files or not masked_dirs:
        pytest.skip("this kernel has none of /proc/keys, /proc/timer_list or none of /proc/acpi, /sys/firmware")

    def edit(config: dict) -> None:
        config["linux"]["maskedPaths"] += ["/proc/pyrunc-not-there", "/sys/no/such/dir"]
    script = "".join(f"echo {p} $(wc -c < {p}); " for p in masked_files)
    script += "".join(f"echo {p} $(ls -A {p} | wc -l); touch {p}/x; " for p in masked_dirs)
    b = bundle(edit, args=script_with_mountinfo(script))
    out, mounts = split_output(run_inside(pyrunc_cmd, b, container_id))
    lines = out.splitlines()
    for p in masked_files:
        assert f"{p} 0" in lines, out
        m = mount_at(mounts, p)
        assert m.root == "/null", m  # a bind of the container's /dev/null
    for p in masked_dirs:
        assert f"{p} 0" in lines, out
        assert f"touch: {p}/x: Read-only file system" in lines, out
        m = mount_at(mounts, p)
        assert m.fstype == "tmpfs" and "ro" in m.options


def test_readonly_paths_refuse_writes(bundle, pyrunc_cmd, container_id):
    def edit(config: dict) -> None:
        config["linux"]["readonlyPaths"] += ["/proc/pyrunc-not-there"]
    b = bundle(edit, args=script_with_mountinfo(
        "echo 1 > /proc/sys/kernel/ns_last_pid; echo rc=$?; cat /proc/sys/kernel/ns_last_pid >/dev/null && echo readable"))
    out, mounts = split_output(run_inside(pyrunc_cmd, b, container_id))
    lines = out.splitlines()
    assert lines[0].endswith("Read-only file system") and lines[1] == "rc=1", out
    assert lines[2] == "readable"
    m = mount_at(mounts, "/proc/sys")
    assert m.fstype == "proc" and "ro" in m.options and m.root == "/sys"


def test_mask_ignores_a_dev_null_symlink_in_the_rootfs(bundle, pyrunc_cmd, container_id):
    """/dev is no tmpfs here and the image's dev/null is a symlink to a secret file: the
    mask must never become a bind of that file (CVE-2025-31133 class)."""
    def edit(config: dict) -> None:
        config["mounts"] = [m for m in config["mounts"] if not m["destination"].startswith("/dev")]
        config["linux"]["maskedPaths"] = ["/proc/keys", "/proc/timer_list"]
        config["linux"]["readonlyPaths"] = []
    b = bundle(edit, private_rootfs=True, args=script_with_mountinfo("cat /proc/keys /proc/timer_list"))
    (b / "rootfs" / "etc" / "secret").write_text("SECRET-CONTENT\n")
    null = b / "rootfs" / "dev" / "null"
    if null.exists() or null.is_symlink():
        null.unlink()
    os.symlink("/etc/secret", null)

    result = pyrunc_cmd("run", "-b", str(b), container_id)
    assert "SECRET-CONTENT" not in result.stdout
    if result.returncode == 0:
        _, mounts = split_output(result.stdout)
        for path in ("/proc/keys", "/proc/timer_list"):
            masked = [m for m in mounts if m.mountpoint == path]
            assert masked, f"{path} is not masked"
            assert masked[-1].root != "/etc/secret" and not masked[-1].root.endswith("/etc/secret")
    else:
        assert result.stderr.strip(), "create failed without saying why"
    assert (b / "rootfs" / "etc" / "secret").read_text() == "SECRET-CONTENT\n"
    assert os.readlink(null) == "/etc/secret"


# ---------------------------------------------------------------------------------------
# --no-pivot


def test_no_pivot_sees_only_the_rootfs(bundle, pyrunc_cmd, runc_cmd, container_id, tmp_path):
    host_marker = Path("/tmp") / f"pyrunc-nopivot-{uuid.uuid4().hex[:12]}"
    host_marker.write_text("host\n")
    try:
        b = bundle(private_rootfs=True, args=script_with_mountinfo(
            f"ls -A /; echo ---; cat {host_marker}; cat /inside-only"))
        (b / "rootfs" / "inside-only").write_text("inside\n")
        expected_listing = sorted(os.listdir(b / "rootfs"))
        results = {}
        for mode, runner, extra in (("pivot", pyrunc_cmd, ()), ("no-pivot", pyrunc_cmd, ("--no-pivot",)),
                                    ("runc-no-pivot", runc_cmd, ("--no-pivot",))):
            out, mounts = split_output(run_inside(runner, b, container_id, *extra))
            listing, _, rest = out.partition("---\n")
            assert sorted(listing.split()) == expected_listing, (mode, listing)
            assert "No such file or directory" in rest and "host" not in rest.splitlines(), (mode, rest)
            assert rest.splitlines()[-1] == "inside", (mode, rest)
            root = mount_at(mounts, "/")
            assert root.root == str(b / "rootfs"), (mode, root)
            # no host mount is visible: every mountpoint is / or below a spec'd destination
            results[mode] = sorted(m.mountpoint for m in mounts)
        assert results["no-pivot"] == results["pivot"]
        # runc 1.1.5 mounts no cgroup2 "unified" next to the v1 hierarchies; pyrunc does
        runc_view = results["runc-no-pivot"]
        assert [p for p in results["no-pivot"] if p != "/sys/fs/cgroup/unified"] == runc_view
    finally:
        host_marker.unlink()


# ---------------------------------------------------------------------------------------
# linux.sysctl


def test_sysctl_in_the_containers_namespaces(bundle, pyrunc_cmd, container_id):
    def edit(config: dict) -> None:
        config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.shm_rmid_forced": "1"}
    b = bundle(edit, args=["cat", "/proc/sys/net/ipv4/ip_forward", "/proc/sys/kernel/shm_rmid_forced"])
    host_before = (Path("/proc/sys/net/ipv4/ip_forward").read_text(),
                   Path("/proc/sys/kernel/shm_rmid_forced").read_text())
    assert run_inside(pyrunc_cmd, b, container_id) == "1\n1\n"
    assert (Path("/proc/sys/net/ipv4/ip_forward").read_text(),
            Path("/proc/sys/kernel/shm_rmid_forced").read_text()) == host_before


@pytest.mark.parametrize("key, drop_namespace", [
    ("net.ipv4.ip_forward", "network"),
    ("kernel.shm_rmid_forced", "ipc"),
    ("vm.swappiness", None),  # no namespace owns it
])
def test_sysctl_outside_the_containers_namespaces_is_refused(
        bundle, pyrunc_cmd, runc_cmd, container_id, key, drop_namespace):
    # the host's own value: were it written anyway, the host would not change
    current = Path("/proc/sys", *key.split(".")).read_text().strip()

    def edit(config: dict) -> None:
        config["linux"]["sysctl"] = {key: current}
        if drop_namespace:
            config["linux"]["namespaces"] = [n for n in config["linux"]["namespaces"]
                                             if n["type"] != drop_namespace]
            if drop_namespace == "network":  # a fresh sysfs needs a private netns
                for m in config["mounts"]:
                    if m["destination"] == "/sys":
                        m.update(type="bind", source="/sys", options=["rbind", "nosuid", "noexec", "nodev", "ro"])
    b = bundle(edit)
    runc = runc_cmd("run", "-b", str(b), container_id)
    assert runc.returncode != 0, "runc accepted it"
    result = pyrunc_cmd("run", "-b", str(b), container_id)
    assert result.returncode != 0, result.stdout
    assert key in result.stderr, result.stderr
    assert pyrunc_cmd("state", container_id).returncode != 0  # nothing left behind


# ---------------------------------------------------------------------------------------
# hostname and domainname


def test_hostname_and_domainname(bundle, pyrunc_cmd, container_id):
    host = (os.uname().nodename, Path("/proc/sys/kernel/domainname").read_text())

    def edit(config: dict) -> None:
        config["hostname"] = "box-one"
        config["domainname"] = "example.test"
    b = bundle(edit, args=["sh", "-c", "hostname; cat /proc/sys/kernel/hostname /proc/sys/kernel/domainname"])
    assert run_inside(pyrunc_cmd, b, container_id) == "box-one\nbox-one\nexample.test\n"
    assert (os.uname().nodename, Path("/proc/sys/kernel/domainname").read_text()) == host


# ---------------------------------------------------------------------------------------
# union (overlay) rootfs


def _overlay_config(bundle, root_path: Path, args: list[str], lowerdirs: str | None = None) -> dict:
    config = bundle.template()
    config["root"] = {"path": str(root_path), "readonly": False}
    config["process"]["args"] = args
    config.setdefault("annotations", {})["run.pyrunc.overlay"] = "true"
    if lowerdirs is not None:
        config["annotations"]["run.pyrunc.overlay.lowerdirs"] = lowerdirs
    return config


def _wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def _start_detached(pyrunc_cmd, b: Path, container_id: str) -> None:
    result = pyrunc_cmd("create", "-b", str(b), container_id)
    assert result.returncode == 0, result.stderr
    result = pyrunc_cmd("start", container_id)
    assert result.returncode == 0, result.stderr


def test_overlay_rootfs_keeps_writes_in_the_state_dir(bundle, pyrunc_cmd, container_id, state_root, tmp_path,
                                                      rootfs_builder):
    lower = tmp_path / "lower"
    rootfs_builder.build_rootfs(str(lower))
    lower_before = sorted(os.listdir(lower))
    b = bundle.write(_overlay_config(
        bundle, lower, ["sh", "-c", "echo mine > /newfile && cat /etc/passwd > /dev/null && sleep 30"]))
    upper = state_root / container_id / "overlay" / "upper"
    _start_detached(pyrunc_cmd, b, container_id)
    assert _wait_for(lambda: (upper / "newfile").exists()), f"no {upper}/newfile"
    assert (upper / "newfile").read_text() == "mine\n"
    assert (state_root / container_id / "overlay" / "work").is_dir()
    assert not (lower / "newfile").exists()
    assert sorted(os.listdir(lower)) == lower_before
    assert pyrunc_cmd("kill", container_id, "KILL").returncode == 0
    assert _wait_for(lambda: '"stopped"' in pyrunc_cmd("state", container_id).stdout)
    result = pyrunc_cmd("delete", container_id)
    assert result.returncode == 0, result.stderr
    assert not (state_root / container_id).exists()


def test_overlay_rootfs_shows_the_lower_dir_and_writes_go_up(bundle, pyrunc_cmd, container_id, tmp_path,
                                                             rootfs_builder):
    lower = tmp_path / "lower"
    rootfs_builder.build_rootfs(str(lower))
    (lower / "from-lower").write_text("lower\n")
    b = bundle.write(_overlay_config(bundle, lower, script_with_mountinfo(
        "cat /from-lower; echo changed > /from-lower; cat /from-lower; rm /etc/group; ls /etc")))
    out, mounts = split_output(run_inside(pyrunc_cmd, b, container_id))
    assert out == "lower\nchanged\npasswd\n"
    root = mount_at(mounts, "/")
    assert root.fstype == "overlay"
    assert (lower / "from-lower").read_text() == "lower\n"
    assert (lower / "etc" / "group").exists()


def test_two_overlay_containers_share_a_lower_dir_but_not_their_writes(
        bundle, pyrunc_cmd, state_root, tmp_path, rootfs_builder):
    lower = tmp_path / "lower"
    rootfs_builder.build_rootfs(str(lower))
    exchange = tmp_path / "exchange"  # bound into both: a gate, and where each reports
    exchange.mkdir()
    ids = [f"ov{os.getpid()}-{uuid.uuid4().hex[:6]}-{n}" for n in ("a", "b")]
    for cid in ids:
        # write, wait until both have written (the test opens the gate), then report
        script = (f"echo {cid} > /mine-{cid}; i=0; while [ ! -e /x/gate ] && [ $i -lt 200 ]; do "
                  f"sleep 0.05; i=$((i+1)); done; ls / | grep mine- > /x/{cid}.seen; sleep 30")
        config = _overlay_config(bundle, lower, ["sh", "-c", script])
        config["mounts"].append({"destination": "/x", "type": "bind", "source": str(exchange),
                                 "options": ["rbind"]})
        _start_detached(pyrunc_cmd, bundle.write(config, name=f"b-{cid}"), cid)
    uppers = {cid: state_root / cid / "overlay" / "upper" for cid in ids}
    for cid, upper in uppers.items():
        assert _wait_for(lambda: (upper / f"mine-{cid}").exists()), f"{cid}: nothing in {upper}"
    (exchange / "gate").write_text("")
    for cid in ids:
        assert _wait_for(lambda: (exchange / f"{cid}.seen").exists() and
                         (exchange / f"{cid}.seen").read_text().endswith("\n")), f"{cid} did not report"
        # each sees its own write only
        assert (exchange / f"{cid}.seen").read_text() == f"mine-{cid}\n"
        other = next(i for i in ids if i != cid)
        assert (uppers[cid] / f"mine-{cid}").read_text() == f"{cid}\n"
        assert not (uppers[cid] / f"mine-{other}").exists()
    assert not [name for name in os.listdir(lower) if name.startswith("mine-")]
    for cid in ids:
        assert pyrunc_cmd("kill", cid, "KILL").returncode == 0
    for cid in ids:
        assert _wait_for(lambda: '"stopped"' in pyrunc_cmd("state", cid).stdout)
        result = pyrunc_cmd("delete", cid)
        assert result.returncode == 0, result.stderr
        assert not (state_root / cid).exists()


def test_overlay_extra_lower_layers(bundle, pyrunc_cmd, container_id, tmp_path, rootfs_builder):
    base = tmp_path / "base"
    rootfs_builder.build_rootfs(str(base))
    layer1, layer2 = tmp_path / "layer1", tmp_path / "layer2"
    for layer in (layer1, layer2):
        (layer / "layers").mkdir(parents=True)
    (layer1 / "layers" / "one").write_text("layer1\n")
    (layer2 / "layers" / "two").write_text("layer2\n")
    (layer1 / "layers" / "both").write_text("from layer1\n")
    (layer2 / "layers" / "both").write_text("from layer2\n")
    (base / "layers").mkdir()
    (base / "layers" / "both").write_text("from base\n")
    b = bundle.write(_overlay_config(
        bundle, base, ["sh", "-c", "cat /layers/one /layers/two /layers/both; ls /layers"],
        lowerdirs=f"{layer1}:{layer2}"))
    out = run_inside(pyrunc_cmd, b, container_id)
    # root.path is the top layer, then the annotation's dirs in order
    assert out == "layer1\nlayer2\nfrom base\nboth\none\ntwo\n"
