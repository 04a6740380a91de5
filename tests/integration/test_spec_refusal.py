"""A bad value in any section of config.json is refused before anything is created on the
host (issue 14): a one-line error naming the field, runc's exit code 1, and no state dir,
cgroup, mount or process left or made.

How "before anything is created" is observed, without strace or kernel mocks: each bad
config is created twice.

1. With --root beneath a regular file, so that the state root cannot be made. The first
   side effect of `create` on the host is reserving the state dir (Container.reserve
   mkdirs the root); the cgroup mkdirs, mounts and the clone of the init all come after
   it. Were the field validated at any of those later steps, the reserve's error
   ("...: not a directory") would win. Getting the field's error instead shows the
   refusal comes from the parse stage, ahead of every host change. This is the check
   that fails on the code before spec.parse validated linux.resources (by the cgroup
   controllers, after reserve and the cgroup mkdirs), linux.seccomp (at launch, after
   the cgroup writes) and linux.personality (not at all).
2. With the test's real state root: then `assert_no_residue` finds no state dir, process
   or cgroup of the id, and /proc/self/mountinfo is unchanged (the test runs in a
   private mount namespace that pyrunc inherits, so a mount it left would show here).
"""
import json
import os
import re

import pytest

from spec_sections import BAD_SECTIONS, error_names, set_path
from support import find_pyrunc, run_with_files


def error_lines(stderr: str) -> list[str]:
    """The msg of each level=error line (logrus text format), unquoted."""
    return [json.loads(f'"{m}"') for m in re.findall(r'level=error msg="((?:[^"\\]|\\.)*)"', stderr)]


@pytest.mark.parametrize("name,keys,value,field", BAD_SECTIONS, ids=[b[0] for b in BAD_SECTIONS])
def test_bad_section_is_refused_before_anything_is_created(pyrunc_cmd, bundle, container_id, state_root,
                                                           tmp_path, assert_no_residue,
                                                           name, keys, value, field):
    b = bundle(lambda config: set_path(config, keys, value))

    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    unusable_root = blocker / "state"
    first = run_with_files([find_pyrunc(), "--root", str(unusable_root), "create", "--bundle", str(b),
                            container_id])
    assert first.returncode == 1, first.stderr
    errors = error_lines(first.stderr)
    assert len(errors) == 1, first.stderr
    assert error_names(errors[0], field), errors[0]
    assert str(unusable_root) not in errors[0], "the state root was touched before the config was refused"

    with open("/proc/self/mountinfo") as f:
        mounts_before = f.read()
    second = pyrunc_cmd("create", "--bundle", b, container_id)
    assert second.returncode == 1, second.stderr
    assert error_lines(second.stderr) == errors
    with open("/proc/self/mountinfo") as f:
        assert f.read() == mounts_before
    assert_no_residue(state_root, [container_id])


def test_the_template_with_no_bad_value_is_created(pyrunc_cmd, bundle, container_id, state_root,
                                                   assert_no_residue):
    """The control: the same bundle without a bad value passes the parse stage."""
    b = bundle()
    assert pyrunc_cmd("create", "--bundle", b, container_id).returncode == 0
    assert pyrunc_cmd("delete", "--force", container_id).returncode == 0
    assert_no_residue(state_root, [container_id])


@pytest.mark.parametrize("personality,refused", [({"domain": 5}, True), ({"domain": "LINUX", "flags": "x"}, True),
                                                 ({"domain": "LINUX32", "flags": []}, False)])
def test_personality_like_runc(pyrunc_cmd, runc_cmd, bundle, container_id, state_root, assert_no_residue,
                               personality, refused):
    """runc 1.1.5 decodes linux.personality (a wrong JSON type fails the unmarshal, exit 1)
    and then ignores it: LINUX32 does not change `uname -m`. pyrunc applies it as runc >= 1.2
    does (deliberately not 1.1.5's behaviour): under LINUX32 `uname -m` says i686 on x86_64
    (tests/integration/test_process_attrs.py)."""
    b = bundle(lambda config: config["linux"].update(personality=personality), args=["uname", "-m"])
    ours = pyrunc_cmd("run", "--bundle", b, container_id)
    reference = runc_cmd("run", "--bundle", b, container_id + "-runc")
    assert ours.returncode == reference.returncode == (1 if refused else 0), (ours.stderr, reference.stderr)
    if refused:
        assert "linux.personality" in error_lines(ours.stderr)[0]
        assert "personality" in reference.stderr
    elif os.uname().machine == "x86_64":
        assert (ours.stdout, reference.stdout) == ("i686\n", "x86_64\n")
    assert_no_residue(state_root, [container_id])
