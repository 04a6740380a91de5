"""Host safety: a container WITHOUT a mount namespace shares the caller's mount table, so
anything pyrunc mounted for it would land there (runc itself leaves a mount behind in one
of these cases). Whatever the config asks (mounts, masked/readonly paths, a read-only
root, an overlay rootfs), the caller's and pid 1's mountinfo must be unchanged: pyrunc
either runs the container without mounting or refuses with one line naming the field.
"""
from __future__ import annotations

import uuid

import pytest

from rel_support import Snapshot, assert_same, mount_lines, run_pyrunc, settle


def _no_mount_ns(c):
    c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "mount"]


VARIANTS = {
    # what the default config asks for: refused (runc: "unable to restrict sys entries")
    "masked-paths": (lambda c: None, "linux.maskedPaths"),
    "readonly-paths": (lambda c: c["linux"].pop("maskedPaths"), "linux.readonlyPaths"),
    "mounts": (lambda c: (c["linux"].pop("maskedPaths"), c["linux"].pop("readonlyPaths")), None),
    "readonly-root": (lambda c: (c["linux"].pop("maskedPaths"), c["linux"].pop("readonlyPaths"),
                                 c.update(mounts=[])), None),
    "overlay-rootfs": (lambda c: (c["linux"].pop("maskedPaths"), c["linux"].pop("readonlyPaths"),
                                  c.update(mounts=[]), c["root"].update(readonly=False),
                                  c.setdefault("annotations", {}).update({"run.pyrunc.overlay": "true"})), None),
    "plain": (lambda c: (c["linux"].pop("maskedPaths"), c["linux"].pop("readonlyPaths"),
                         c.update(mounts=[]), c["root"].update(readonly=False)), None),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_no_mount_namespace_mounts_nothing(pyrunc_bin, state_root, bundle, tmp_path, variant):
    edit, refused_field = VARIANTS[variant]
    cid = f"hs{uuid.uuid4().hex[:8]}"

    def config(c):
        _no_mount_ns(c)
        edit(c)

    b = bundle(config, args=["sh", "-c", "echo ran; ls /"])
    before = Snapshot(cid, state_root, [str(tmp_path)])
    own_before, host_before = mount_lines("self"), mount_lines("1")
    result = run_pyrunc(pyrunc_bin, state_root, "run", "-b", b, cid)
    own_after, host_after = mount_lines("self"), mount_lines("1")
    print(f"\n{variant}: exit {result.returncode} {result.stderr.strip()}")
    assert own_after == own_before, (f"{variant}: mounted in the caller's namespace: "
                                     f"+{sorted(set(own_after) - set(own_before))} "
                                     f"-{sorted(set(own_before) - set(own_after))}")
    assert host_after == host_before or not (set(host_after) - set(host_before)) & {
        m for m in host_after if str(tmp_path) in m or str(state_root) in m}
    if refused_field:
        assert result.returncode == 1, f"{variant}: expected a refusal, got {result}"
        assert refused_field in assert_documented_any(result), result.stderr
    elif result.returncode == 0:
        assert result.stdout.startswith("ran\n"), result.stdout
        assert "bin" in result.stdout.split()  # it really ran chrooted in the busybox rootfs
    else:
        message = assert_documented_any(result)
        assert message.startswith("config.json: ") or "mount namespace" in message, message
    run_pyrunc(pyrunc_bin, state_root, "delete", "--force", cid)
    after = settle(cid, state_root, [str(tmp_path)])
    assert_same(before, after, f"no mount namespace ({variant})")


def assert_documented_any(result) -> str:
    """The one error line's message (any message: refusals name their own field)."""
    import re
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    match = re.match(r'^time="[^"]+" level=error msg="(.*)"$', lines[0])
    assert match, lines[0]
    return match.group(1)





def test_overlay_without_mount_namespace_keeps_lower_intact(pyrunc_bin, state_root, bundle, tmp_path):
    """run.pyrunc.overlay promises that the container's writes go to an upper dir in the
    state dir, never into root.path. Without a mount namespace no overlay can be mounted:
    pyrunc must refuse (naming the annotation) rather than run in the lower dir itself."""
    cid = f"hs{uuid.uuid4().hex[:8]}"

    def config(c):
        _no_mount_ns(c)
        VARIANTS["overlay-rootfs"][0](c)

    b = bundle(config, args=["sh", "-c", "echo leaked > /overlay-leak"], private_rootfs=True)
    result = run_pyrunc(pyrunc_bin, state_root, "run", "-b", b, cid)
    run_pyrunc(pyrunc_bin, state_root, "delete", "--force", cid)
    leaked = (b / "rootfs" / "overlay-leak").exists()
    assert not leaked, (f"the container wrote into its overlay's lower dir {b / 'rootfs'} "
                        f"(exit {result.returncode}): the overlay annotation was silently ignored")
    assert result.returncode == 1 and "run.pyrunc.overlay" in assert_documented_any(result)
