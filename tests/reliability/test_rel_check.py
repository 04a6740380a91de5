"""`pyrunc check -b BUNDLE`: each problem one line naming the field, exit 1 when any; a
bundle check passes is one `create` accepts, and a bundle it rejects `create` rejects too.
"""
from __future__ import annotations

import os
import resource
import socket
import uuid

import pytest

from rel_support import run_pyrunc


def _check(binary, root, b):
    result = run_pyrunc(binary, root, "check", "-b", b)
    assert "Traceback" not in result.stderr + result.stdout
    return result.returncode, result.stdout.splitlines()


def _cap_sys_resource() -> bool:
    with open("/proc/self/status") as f:
        capeff = next(line for line in f if line.startswith("CapEff:")).split()[1]
    return bool(int(capeff, 16) >> 24 & 1)


def _controllers() -> set[str]:
    found = set()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            head, _, tail = line.partition(" - ")
            after = tail.split()
            if after and after[0] == "cgroup":
                found.update(after[2].split(","))
            elif after and after[0] == "cgroup2":
                try:
                    with open(os.path.join(head.split()[4], "cgroup.controllers")) as c:
                        found.update(c.read().split())
                except OSError:
                    pass
    return found


def test_check_valid_bundle_passes_and_creates(pyrunc_bin, state_root, bundle):
    b = bundle(args=["sleep", "10"])
    code, lines = _check(pyrunc_bin, state_root, b)
    assert (code, lines) == (0, [])
    cid = f"chk{uuid.uuid4().hex[:8]}"
    created = run_pyrunc(pyrunc_bin, state_root, "create", "-b", b, cid)
    assert created.returncode == 0, created.stderr
    run_pyrunc(pyrunc_bin, state_root, "delete", "--force", cid)


def _hard_nofile() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[1]


CASES = {
    "missing rootfs": (lambda c, d: c["root"].update(path=str(d / "no-rootfs")), "root.path"),
    "missing bind source": (lambda c, d: c["mounts"].append(
        {"destination": "/data", "type": "bind", "source": str(d / "nosrc"), "options": ["rbind"]}), "mounts[7].source"),
    "missing prestart hook": (lambda c, d: c.update(hooks={"prestart": [{"path": str(d / "nohook")}]}),
                              "hooks.prestart[0].path"),
    "hook not executable": (lambda c, d: (d.joinpath("hook.txt").write_text("x"),
                                          c.update(hooks={"createRuntime": [{"path": str(d / "hook.txt")}]})),
                            "hooks.createRuntime[0].path"),
    "missing namespace path": (lambda c, d: c["linux"]["namespaces"].__setitem__(
        [n["type"] for n in c["linux"]["namespaces"]].index("network"),
        {"type": "network", "path": str(d / "nons")}), "(network): path"),
    "namespace path not a namespace": (lambda c, d: c["linux"]["namespaces"].__setitem__(
        [n["type"] for n in c["linux"]["namespaces"]].index("ipc"),
        {"type": "ipc", "path": "/etc/hostname"}), "(ipc): path"),
    "rlimit above hard limit": (lambda c, d: c["process"].update(rlimits=[
        {"type": "RLIMIT_NOFILE", "soft": 1024, "hard": _hard_nofile() + 1}]), "process.rlimits[0] (RLIMIT_NOFILE)"),
    "seccomp listener missing": (lambda c, d: c["linux"].update(seccomp={
        "defaultAction": "SCMP_ACT_ALLOW", "listenerPath": str(d / "nolistener.sock"),
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}), "linux.seccomp.listenerPath"),
    "apparmor profile": (lambda c, d: c["process"].update(apparmorProfile="unconfined-x"),
                         "process.apparmorProfile"),
    "invalid field": (lambda c, d: c["process"].update(args="not-a-list"), "process.args"),
    "unknown sysctl": (lambda c, d: c["linux"].update(sysctl={"net.ipv4.no_such_knob": "1"}),
                       "linux.sysctl.net.ipv4.no_such_knob"),
    "missing overlay lower": (lambda c, d: (c.setdefault("annotations", {}).update(
        {"run.pyrunc.overlay": "true", "run.pyrunc.overlay.lowerdirs": str(d / "nolower")}),
        c["root"].update(readonly=False)), "annotations.run.pyrunc.overlay.lowerdirs"),
    "intelRdt schema without resctrl": (lambda c, d: c["linux"].update(intelRdt={"l3CacheSchema": "L3:0=f"}),
                                        "intelRdt.l3CacheSchema"),
    "netDevices device missing": (lambda c, d: c["linux"].update(netDevices={"nosuchdev0": {}}),
                                  "linux.netDevices"),
    "net_cls resources without the controller": (lambda c, d: c["linux"].update(
        resources={"network": {"classID": 1048577}}), "linux.resources.network"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_check_reports_problem_before_create(pyrunc_bin, state_root, bundle, tmp_path, case):
    edit, field = CASES[case]
    if case == "rlimit above hard limit" and _cap_sys_resource():
        pytest.skip("this process has CAP_SYS_RESOURCE: raising a hard limit is allowed")
    if case == "net_cls resources without the controller" and {"net_cls", "net_prio"} & _controllers():
        pytest.skip("this host has the net_cls controller")
    if case == "intelRdt schema without resctrl" and os.path.isdir("/sys/fs/resctrl/info"):
        pytest.skip("this host has resctrl")
    b = bundle(lambda c: edit(c, tmp_path), args=["sleep", "10"])
    code, lines = _check(pyrunc_bin, state_root, b)
    assert code == 1, lines
    assert any(field in line for line in lines), f"{case}: no line names {field}: {lines}"
    assert all(line and line == line.strip() for line in lines)
    # what check rejects does not run: create or start fails (a seccomp listener is only
    # connected at start); the fixture then checks nothing was left
    cid = f"chk{uuid.uuid4().hex[:8]}"
    started = run_pyrunc(pyrunc_bin, state_root, "run", "-d", "-b", b, cid)
    run_pyrunc(pyrunc_bin, state_root, "delete", "--force", cid)
    assert started.returncode != 0, f"{case}: check reported {lines} but run -d succeeded"


def test_check_reports_every_problem(pyrunc_bin, state_root, bundle, tmp_path):
    def edit(c):
        c["root"]["path"] = str(tmp_path / "gone")
        c["mounts"].append({"destination": "/d", "type": "bind", "source": str(tmp_path / "nosrc"),
                            "options": ["bind"]})
        c["hooks"] = {"poststop": [{"path": str(tmp_path / "nohook")}]}
        c["process"]["apparmorProfile"] = "x"
    code, lines = _check(pyrunc_bin, state_root, bundle(edit))
    assert code == 1
    for field in ("root.path", "mounts[7].source", "hooks.poststop[0].path", "process.apparmorProfile"):
        assert sum(field in line for line in lines) >= 1, (field, lines)


def test_check_listener_socket_present_is_fine(pyrunc_bin, state_root, bundle, tmp_path):
    path = str(tmp_path / "l.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    try:
        b = bundle(lambda c: c["linux"].update(seccomp={"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": path,
                                                        "syscalls": [{"names": ["mkdir"],
                                                                      "action": "SCMP_ACT_NOTIFY"}]}))
        code, lines = _check(pyrunc_bin, state_root, b)
        assert (code, lines) == (0, [])
    finally:
        listener.close()


@pytest.mark.parametrize("content,expected", [(None, "open"), ("{", "invalid JSON"), ("[]", "config.json")])
def test_check_bad_config_file(pyrunc_bin, state_root, tmp_path, content, expected):
    b = tmp_path / "b"
    b.mkdir()
    if content is not None:
        (b / "config.json").write_text(content)
    code, lines = _check(pyrunc_bin, state_root, b)
    assert code == 1 and len(lines) >= 1 and expected in lines[0], lines


def test_check_missing_bundle(pyrunc_bin, state_root, tmp_path):
    code, lines = _check(pyrunc_bin, state_root, tmp_path / "nowhere")
    assert code == 1 and lines == [f"bundle {tmp_path / 'nowhere'}: no such file or directory"]


def test_check_overlay_without_mount_namespace(pyrunc_bin, state_root, bundle):
    def edit(c):
        c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "mount"]
        c["linux"].pop("maskedPaths")
        c["linux"].pop("readonlyPaths")
        c["annotations"] = {"run.pyrunc.overlay": "true"}
        c["root"]["readonly"] = False
    code, lines = _check(pyrunc_bin, state_root, bundle(edit))
    assert code == 1 and any("needs a mount namespace" in line for line in lines), lines


def test_check_cli_shape(pyrunc_bin, state_root):
    result = run_pyrunc(pyrunc_bin, state_root, "check", "--help")
    assert result.returncode == 0 and "--bundle" in result.stdout
    result = run_pyrunc(pyrunc_bin, state_root, "check", "extra-arg")
    assert result.returncode == 1

