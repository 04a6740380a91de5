"""The busybox bundle: bundles/build_rootfs.py builds a working tree, offline and
idempotently, and bundles/busybox/config.json is `runc spec` with the demo's changes.
The last tests run the demo bundle under runc (the reference) and under pyrunc."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEMO_ARGS = ["sh", "-c", "echo hello from pyrunc; id; hostname"]

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chroot and containers need root")


def chroot(rootfs: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["chroot", str(rootfs), *args], capture_output=True, text=True, timeout=30
    )


@needs_root
def test_busybox_shell_runs_in_the_rootfs(rootfs_dir):
    result = chroot(rootfs_dir, "/bin/sh", "-c", "echo ok")
    assert (result.returncode, result.stdout, result.stderr) == (0, "ok\n", "")


def test_every_applet_is_a_relative_link_to_busybox(rootfs_dir, rootfs_builder):
    applets = rootfs_builder.applet_paths()
    assert {"bin/sh", "bin/ls", "usr/bin/env", "sbin/ip"} <= set(applets)
    busybox = rootfs_dir / "bin" / "busybox"
    assert busybox.is_file() and not busybox.is_symlink()
    for applet in applets:
        if applet == "bin/busybox":
            continue
        link = rootfs_dir / applet
        assert link.is_symlink(), applet
        target = os.readlink(link)
        # relative, so the tree is self-contained when seen from the host too
        assert not target.startswith("/"), (applet, target)
        assert (link.parent / target).resolve() == busybox.resolve(), applet


@needs_root
def test_applets_run_through_their_links(rootfs_dir):
    result = chroot(rootfs_dir, "/usr/bin/env", "ls", "/")
    assert result.returncode == 0, result.stderr
    assert {"bin", "etc", "proc", "sys", "dev", "tmp", "root"} <= set(result.stdout.split())


@needs_root
def test_passwd_and_group_name_root_user_and_nobody(rootfs_dir):
    result = chroot(rootfs_dir, "/bin/sh", "-c", "id root; id user; id nobody")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("uid=0(root) gid=0(root)")
    assert lines[1].startswith("uid=1000(user) gid=1000(user)")
    assert lines[2].startswith("uid=65534(nobody) gid=65534(nogroup)")
    group = (rootfs_dir / "etc" / "group").read_text()
    assert "tty:x:5:" in group  # the default devpts mount uses gid=5


def test_directory_modes(rootfs_dir):
    modes = {name: (rootfs_dir / name).stat().st_mode & 0o7777 for name in ("tmp", "root", "proc")}
    assert modes == {"tmp": 0o1777, "root": 0o700, "proc": 0o755}
    assert (rootfs_dir / "home" / "user").stat().st_uid == 1000


def test_rebuild_keeps_a_good_tree_and_repairs_a_damaged_one(tmp_path, rootfs_builder):
    dest = tmp_path / "rootfs"
    rootfs_builder.build_rootfs(str(dest))
    busybox_inode = (dest / "bin" / "busybox").stat().st_ino
    sh_link_inode = (dest / "bin" / "sh").lstat().st_ino

    rootfs_builder.build_rootfs(str(dest))
    # nothing that was right is rewritten
    assert (dest / "bin" / "busybox").stat().st_ino == busybox_inode
    assert (dest / "bin" / "sh").lstat().st_ino == sh_link_inode

    (dest / "bin" / "ls").unlink()
    (dest / "bin" / "cat").unlink()
    (dest / "bin" / "cat").symlink_to("/nonexistent")
    (dest / "etc" / "passwd").write_text("broken\n")
    (dest / "tmp").chmod(0o755)
    rootfs_builder.build_rootfs(str(dest))
    assert os.readlink(dest / "bin" / "ls") == "busybox"
    assert os.readlink(dest / "bin" / "cat") == "busybox"
    assert (dest / "etc" / "passwd").read_text().startswith("root:x:0:0:")
    assert (dest / "tmp").stat().st_mode & 0o7777 == 0o1777


def test_a_dynamically_linked_busybox_is_refused(tmp_path, rootfs_builder):
    with pytest.raises(rootfs_builder.RootfsError, match="not a statically linked executable"):
        rootfs_builder.build_rootfs(str(tmp_path / "rootfs"), busybox="/bin/ls")
    assert not (tmp_path / "rootfs").exists()


def test_command_line_builds_the_given_dest(tmp_path):
    dest = tmp_path / "cli-rootfs"
    result = subprocess.run(
        [sys.executable, str(REPO / "bundles" / "build_rootfs.py"), str(dest)],
        capture_output=True, text=True, timeout=60,
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert (dest / "bin" / "busybox").is_file()


@pytest.mark.skipif(not os.access("/usr/sbin/runc", os.X_OK), reason="runc is not installed")
def test_demo_config_is_runc_spec_with_the_demo_changes(tmp_path):
    subprocess.run(["/usr/sbin/runc", "spec"], cwd=tmp_path, check=True, timeout=30)
    expected = json.loads((tmp_path / "config.json").read_text())
    expected["process"]["terminal"] = False
    expected["process"]["args"] = DEMO_ARGS
    expected["hostname"] = "pyrunc"
    committed = json.loads((REPO / "bundles" / "busybox" / "config.json").read_text())
    assert committed == expected
    assert "cgroupsPath" not in committed["linux"]


def _demo_bundle(bundle, rootfs_dir) -> Path:
    config = json.loads((REPO / "bundles" / "busybox" / "config.json").read_text())
    config["root"]["path"] = str(rootfs_dir)
    return bundle.write(config, "demo")


@needs_root
def test_demo_bundle_runs_under_runc(bundle, rootfs_dir, runc_cmd, container_id):
    result = runc_cmd("run", "--bundle", _demo_bundle(bundle, rootfs_dir), container_id)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines() == [
        "hello from pyrunc",
        "uid=0(root) gid=0(root)",
        "pyrunc",
    ]


@needs_root
def test_demo_bundle_runs_under_pyrunc_as_under_runc(
    bundle, rootfs_dir, pyrunc_cmd, runc_cmd, container_id
):
    demo = _demo_bundle(bundle, rootfs_dir)
    reference = runc_cmd("run", "-b", demo, container_id)
    result = pyrunc_cmd("run", "-b", demo, container_id)
    assert (result.returncode, result.stdout, result.stderr) == (
        reference.returncode,
        reference.stdout,
        reference.stderr,
    )
