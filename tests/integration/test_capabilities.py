"""process.capabilities as the container's process sees them: all five sets from
/proc/self/status for root and a non-root user, with and without a user namespace,
compared with /usr/sbin/runc on the same bundle where runc can run it (no user
namespace) and with the kernel's execve rules otherwise; ambient capabilities only when
permitted and inheritable; unknown names ignored with runc's warning; `exec --cap`.
"""
from __future__ import annotations

import os

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")

SETS = {"bounding": "CapBnd", "effective": "CapEff", "permitted": "CapPrm", "inheritable": "CapInh",
        "ambient": "CapAmb"}
CAP = {"CAP_CHOWN": 0, "CAP_KILL": 5, "CAP_SETUID": 7, "CAP_NET_BIND_SERVICE": 10, "CAP_NET_RAW": 13,
       "CAP_SYS_ADMIN": 21, "CAP_AUDIT_WRITE": 29}
ID_MAPPING = [{"containerID": 0, "hostID": 100000, "size": 65536}]

RUNC_DEFAULT = {k: ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
                for k in ("bounding", "effective", "permitted", "ambient")}
# every set different, ambient asking for more than permitted ∩ inheritable
CUSTOM = {
    "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_SETUID", "CAP_NET_RAW"],
    "effective": ["CAP_KILL"],
    "permitted": ["CAP_KILL", "CAP_CHOWN"],
    "inheritable": ["CAP_CHOWN", "CAP_NET_RAW"],
    "ambient": ["CAP_CHOWN", "CAP_NET_RAW", "CAP_KILL"],
}
NONE = {k: [] for k in SETS}
CONFIGS = {"runc-default": RUNC_DEFAULT, "custom": CUSTOM, "none": NONE}


def mask(names) -> int:
    return sum(1 << CAP[n] for n in set(names))


def expected_after_exec(caps: dict, uid: int) -> dict[str, int]:
    """The kernel's execve rules (no file capabilities in the image) applied to what the
    runtime sets: A = ambient ∩ P ∩ I; root gets P' = B | I | A and E' = P'; any other uid
    P' = E' = A.  I and B are kept."""
    b, p, i = mask(caps.get("bounding", [])), mask(caps.get("permitted", [])), mask(caps.get("inheritable", []))
    a = mask(caps.get("ambient", [])) & p & i
    if uid == 0:
        prm = b | i | a
        return {"bounding": b, "effective": prm, "permitted": prm, "inheritable": i, "ambient": a}
    return {"bounding": b, "effective": a, "permitted": a, "inheritable": i, "ambient": a}


def sets_from_status(text: str) -> dict[str, int]:
    fields = {k: v.strip() for k, _, v in (line.partition(":") for line in text.splitlines()) if v}
    return {name: int(fields[field], 16) for name, field in SETS.items()}


def caps_bundle(bundle, rootfs: str, caps: dict | None, uid: int, userns: bool):
    def edit(config):
        config["root"] = {"path": rootfs, "readonly": True}
        config["process"]["user"] = {"uid": uid, "gid": uid}
        if caps is None:
            config["process"].pop("capabilities", None)
        else:
            config["process"]["capabilities"] = {k: list(v) for k, v in caps.items()}
        # no_new_privs does not change the sets; leave it off so nothing hides behind it
        config["process"]["noNewPrivileges"] = False
        if userns:
            config["linux"]["namespaces"].append({"type": "user"})
            config["linux"]["uidMappings"] = ID_MAPPING
            config["linux"]["gidMappings"] = ID_MAPPING
    return bundle(edit, args=["cat", "/proc/self/status"])


def run_status(cmd, b, container_id: str) -> dict[str, int]:
    result = cmd("run", "-b", str(b), container_id, timeout=30)
    assert result.returncode == 0, result.stderr
    return sets_from_status(result.stdout)


def show(sets: dict[str, int]) -> dict[str, list[str]]:
    names = {v: k for k, v in CAP.items()}
    return {k: [names.get(bit, str(bit)) for bit in range(64) if v >> bit & 1] for k, v in sets.items()}


@pytest.mark.parametrize("config_name", list(CONFIGS))
@pytest.mark.parametrize("uid", [0, 1000], ids=["root", "uid1000"])
def test_sets_match_runc_without_userns(config_name, uid, bundle, userns_rootfs, pyrunc_cmd, runc_cmd, container_id):
    b = caps_bundle(bundle, userns_rootfs, CONFIGS[config_name], uid, userns=False)
    ours = run_status(pyrunc_cmd, b, container_id)
    theirs = run_status(runc_cmd, b, container_id)
    assert show(ours) == show(theirs)
    assert ours == expected_after_exec(CONFIGS[config_name], uid), show(ours)


@pytest.mark.parametrize("config_name", list(CONFIGS))
@pytest.mark.parametrize("uid", [0, 1000], ids=["root", "uid1000"])
def test_sets_in_a_user_namespace(config_name, uid, bundle, userns_rootfs, pyrunc_cmd, container_id):
    b = caps_bundle(bundle, userns_rootfs, CONFIGS[config_name], uid, userns=True)
    ours = run_status(pyrunc_cmd, b, container_id)
    assert show(ours) == show(expected_after_exec(CONFIGS[config_name], uid))


def test_no_capabilities_object_means_none_like_runc(bundle, userns_rootfs, pyrunc_cmd, runc_cmd, container_id):
    """Without process.capabilities runc leaves the process no capability at all (every
    set empty, bounding included); a runtime that skipped the drop would hand root all
    of them."""
    b = caps_bundle(bundle, userns_rootfs, None, 0, userns=False)
    theirs = run_status(runc_cmd, b, container_id)
    ours = run_status(pyrunc_cmd, b, container_id)
    assert show(ours) == show(theirs)
    assert ours == {k: 0 for k in SETS}


def test_ambient_outside_permitted_and_inheritable_is_dropped_with_a_warning(bundle, userns_rootfs, pyrunc_cmd,
                                                                           container_id, tmp_path):
    b = caps_bundle(bundle, userns_rootfs, CUSTOM, 1000, userns=False)
    log = tmp_path / "pyrunc.log"
    # the note goes to the --log file; its level is debug (runc 1.1.5 says nothing, runc
    # 1.2 warns "can't raise ambient capability"), so ask for everything
    result = pyrunc_cmd("--debug", "--log", str(log), "run", "-b", str(b), container_id, timeout=30)
    assert result.returncode == 0, result.stderr
    assert sets_from_status(result.stdout)["ambient"] == mask(["CAP_CHOWN"])
    lines = log.read_text().splitlines()
    for dropped in ("CAP_NET_RAW", "CAP_KILL"):
        assert any(dropped in line and "ambient" in line for line in lines), lines
    assert not any("CAP_CHOWN" in line and "ambient" in line for line in lines), lines


def warnings_in(log_file) -> list[str]:
    """The msg of every level=warning line of a --log file (logrus text)."""
    import re
    return [re.search(r'msg="((?:[^"\\]|\\.)*)"', line).group(1)
            for line in log_file.read_text().splitlines() if "level=warning" in line]


@pytest.mark.parametrize("kind", ["bounding", "effective", "permitted", "inheritable", "ambient"])
def test_unknown_capability_is_ignored_with_runcs_warning(kind, bundle, userns_rootfs, pyrunc_cmd, runc_cmd,
                                                          container_id, tmp_path):
    """runtime-spec 1.1: an unknown capability MUST be logged and SHOULD NOT fail the
    container; runc 1.1.5 warns once for every set and goes on with the known names."""
    caps = {k: list(v) for k, v in RUNC_DEFAULT.items()}
    caps[kind] = caps.get(kind, []) + ["CAP_NOT_A_CAPABILITY", "CAP_UNKNOWN"]
    caps["inheritable"] = caps.get("inheritable", []) + ["CAP_UNKNOWN"]
    b = caps_bundle(bundle, userns_rootfs, caps, 0, userns=False)
    seen = {}
    for name, cmd in (("pyrunc", pyrunc_cmd), ("runc", runc_cmd)):
        log = tmp_path / f"{name}.log"
        result = cmd("--log", str(log), "run", "-b", str(b), container_id, timeout=30)
        assert result.returncode == 0, (name, result.stderr)
        seen[name] = (sets_from_status(result.stdout), warnings_in(log))
    assert seen["pyrunc"][1] == seen["runc"][1] == [
        "ignoring unknown or unavailable capabilities: [CAP_NOT_A_CAPABILITY CAP_UNKNOWN]"]
    assert show(seen["pyrunc"][0]) == show(seen["runc"][0])
    assert seen["pyrunc"][0] == expected_after_exec(RUNC_DEFAULT, 0)


def test_exec_cap_adds_the_capability_like_runc(bundle, userns_rootfs, pyrunc_cmd, runc_cmd, container_id):
    def edit(config):
        config["root"] = {"path": userns_rootfs, "readonly": True}
        config["process"]["capabilities"] = {k: list(v) for k, v in RUNC_DEFAULT.items()}

    b = bundle(edit, args=["sleep", "30"])
    seen = {}
    for name, cmd in (("pyrunc", pyrunc_cmd), ("runc", runc_cmd)):
        cmd("run", "-d", "-b", str(b), container_id, check=True)
        try:
            plain = cmd("exec", container_id, "cat", "/proc/self/status", check=True).stdout
            added = cmd("exec", "--cap", "CAP_NET_RAW", container_id, "cat", "/proc/self/status", check=True).stdout
            seen[name] = (sets_from_status(plain), sets_from_status(added))
        finally:
            cmd("delete", "--force", container_id)
    plain, added = seen["pyrunc"]
    bit = 1 << CAP["CAP_NET_RAW"]
    assert not plain["effective"] & bit
    assert added["effective"] & bit and added["permitted"] & bit and added["bounding"] & bit
    assert show(seen["pyrunc"][0]) == show(seen["runc"][0])
    assert show(seen["pyrunc"][1]) == show(seen["runc"][1])


def test_exec_cap_unknown_is_ignored_with_runcs_warning(bundle, userns_rootfs, pyrunc_cmd, runc_cmd,
                                                        container_id, tmp_path):
    def edit(config):
        config["root"] = {"path": userns_rootfs, "readonly": True}
        config["process"]["capabilities"] = {k: list(v) for k, v in RUNC_DEFAULT.items()}

    b = bundle(edit, args=["sleep", "30"])
    seen = {}
    for name, cmd in (("pyrunc", pyrunc_cmd), ("runc", runc_cmd)):
        cmd("run", "-d", "-b", str(b), container_id, check=True)
        try:
            log = tmp_path / f"{name}.log"
            result = cmd("--log", str(log), "exec", "--cap", "CAP_BOGUS", "--cap", "CAP_NET_RAW", container_id,
                         "cat", "/proc/self/status")
            assert result.returncode == 0, (name, result.stderr)
            seen[name] = (sets_from_status(result.stdout), warnings_in(log))
        finally:
            cmd("delete", "--force", container_id)
    assert seen["pyrunc"][1] == seen["runc"][1] == ["ignoring unknown or unavailable capabilities: [CAP_BOGUS]"]
    assert show(seen["pyrunc"][0]) == show(seen["runc"][0])
    assert seen["pyrunc"][0]["effective"] & 1 << CAP["CAP_NET_RAW"]


def test_warning_without_log_file_goes_to_stderr_like_runc(bundle, userns_rootfs, pyrunc_cmd, runc_cmd,
                                                            container_id):
    """Without --log, runc's logrus writes its warnings on stderr (engines always pass --log,
    so their pipes never see one): a person running `run` by hand is told what was ignored."""
    caps = {k: list(v) for k, v in RUNC_DEFAULT.items()}
    caps["bounding"] = caps["bounding"] + ["CAP_UNKNOWN"]
    b = caps_bundle(bundle, userns_rootfs, caps, 0, userns=False)
    seen = {}
    for name, cmd in (("pyrunc", pyrunc_cmd), ("runc", runc_cmd)):
        result = cmd("run", "-b", str(b), container_id, timeout=30)
        assert result.returncode == 0, (name, result.stderr)
        seen[name] = [line.split(" ", 1)[1] for line in result.stderr.splitlines() if "level=warning" in line]
    assert seen["pyrunc"] == seen["runc"] == [
        'level=warning msg="ignoring unknown or unavailable capabilities: [CAP_UNKNOWN]"']
