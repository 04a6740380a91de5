"""The hardening-profile harness against the real kernel: record a busybox workload's
syscalls, run it under the recorded profile, find a removed syscall with `check`, and the
`pyrunc profile` command line. Uses the pyrunc pytest plugin's fixtures (pyrunc_config,
pyrunc_record, pyrunc_check) — the project eats its own food here."""
from __future__ import annotations

import copy
import errno
import json
import os

import pytest

from pyrunc.api import PROBE_IN_CONTAINER, Config, Container

pytestmark = pytest.mark.integration

# httpd binds before it daemonizes, so wget finds it listening; the pid namespace ends it.
# The page is a CGI script that sends its body 0.1 s after the headers: wget then always
# finds no body yet and polls. With a static page it polls only when it wins the race
# (2 runs in 15 here), so a single recording would make a profile that fails sometimes.
WEB_WORKLOAD = ["sh", "-c", "httpd -p 127.0.0.1:8080 -h /www && wget -q -O - http://127.0.0.1:8080/cgi-bin/slow"
                " && ls /www && sleep 0.1"]
WEB_OUTPUT = "hello from pyrunc\ncgi-bin\nindex.html\n"
SLOW_CGI = '#!/bin/sh\nprintf "Content-Type: text/plain\\r\\n\\r\\n"\nsleep 0.1\necho hello from pyrunc\n'


def without(profile: dict, name: str) -> dict:
    reduced = copy.deepcopy(profile)
    for rule in reduced["syscalls"]:
        rule["names"] = [n for n in rule["names"] if n != name]
    assert reduced != profile, f"{name} was not in the profile"
    return reduced


@pytest.fixture(scope="module")
def web_rootfs(tmp_path_factory):
    from pyrunc.harness.rootfs import build_busybox_rootfs
    rootfs = build_busybox_rootfs(tmp_path_factory.mktemp("harness") / "rootfs")
    cgi = os.path.join(rootfs, "www", "cgi-bin")
    os.makedirs(cgi)
    with open(os.path.join(cgi, "slow"), "w") as f:
        f.write(SLOW_CGI)
    os.chmod(os.path.join(cgi, "slow"), 0o755)
    return rootfs


@pytest.fixture(scope="module")
def web_recording(web_rootfs):
    """One recording of WEB_WORKLOAD shared by the module (recording is what is slow)."""
    from pyrunc.harness.record import record
    config = Config.busybox(web_rootfs, WEB_WORKLOAD)
    return config, record(config, timeout=60)


def test_record_sees_the_workload_and_writes_a_minimal_profile(web_recording):
    config, recording = web_recording
    assert recording.errors == []
    assert recording.result.exit_code == 0 and recording.result.stdout == WEB_OUTPUT
    profile = recording.profile()
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO" and profile["defaultErrnoRet"] == errno.EPERM
    assert profile["architectures"] == ["SCMP_ARCH_X86_64"]
    [rule] = profile["syscalls"]
    assert rule["action"] == "SCMP_ACT_ALLOW"
    names = set(rule["names"])
    # server, client, ls, sleep, the shell
    for name in ("socket", "bind", "listen", "accept", "connect", "poll", "getdents64", "clock_nanosleep",
                 "execve", "wait4", "clone", "exit_group", "read", "write"):
        assert name in names, name
    # nothing a busybox shell pipeline has any business doing
    for name in ("mount", "unshare", "setns", "ptrace", "reboot", "bpf", "init_module", "keyctl"):
        assert name not in names, name
    assert len(names) < 60
    report = recording.report()
    assert report["syscalls"]["socket"]["arg0"] == {"AF_INET": report["syscalls"]["socket"]["count"]}
    assert report["syscalls"]["socket"]["count"] >= 2  # httpd's and wget's
    assert report["syscalls"]["execve"]["arches"] == {"SCMP_ARCH_X86_64": report["syscalls"]["execve"]["count"]}
    assert report["syscalls"]["write"]["count"] is None  # never notified, always allowed
    assert report["total_calls"] == sum(e["count"] or 0 for e in report["syscalls"].values())


def test_workload_passes_under_its_recorded_profile(web_recording):
    config, recording = web_recording
    with Container(config.copy().seccomp(recording.profile())) as container:
        result = container.run(timeout=60)
    assert (result.exit_code, result.stdout) == (0, WEB_OUTPUT), result.stderr


def test_profile_with_args_allows_only_the_recorded_socket_family(web_recording, pyrunc_config, pyrunc_record,
                                                                   assert_denied, assert_allowed):
    config, recording = web_recording
    profile = recording.profile(with_args=True)
    socket_rules = [r for r in profile["syscalls"] if r["names"] == ["socket"]]
    assert socket_rules == [{"names": ["socket"], "action": "SCMP_ACT_ALLOW",
                             "args": [{"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}]}]
    with Container(config.copy().seccomp(profile)) as container:
        assert container.run(timeout=60).stdout == WEB_OUTPUT
    # the probe (a static glibc program) needs what its own start-up uses: record that too
    probe_recording = pyrunc_record(pyrunc_config.copy().with_probe().args(PROBE_IN_CONTAINER, "getpid"))
    assert probe_recording.result.exit_code == 0
    probe_profile = copy.deepcopy(profile)
    probe_profile["syscalls"][0]["names"] = sorted(set(profile["syscalls"][0]["names"]) |
                                                   set(probe_recording.syscalls) - {"socket"})
    pyrunc_config.seccomp(probe_profile)
    assert_allowed("socket", 2, 1, 0)  # AF_INET, SOCK_STREAM
    assert_denied("socket", errno.EPERM, 10, 1, 0)  # AF_INET6: not recorded


def test_check_names_exactly_the_removed_syscall(web_recording, pyrunc_check):
    config, recording = web_recording
    result = pyrunc_check(without(recording.profile(), "getdents64"), config=config)
    report = result.report()
    assert list(report["denied"]) == ["getdents64"]
    [answer] = report["denied"]["getdents64"]["answers"]
    assert (answer["arch"], answer["action"], answer["errno"], answer["errno_name"]) == \
        ("SCMP_ARCH_X86_64", "ERRNO", errno.EPERM, "EPERM")
    assert answer["count"] >= 1
    # busybox ls takes the failed readdir for an empty directory: same exit, less output
    assert (report["exit_code"], report["unconfined_exit_code"], report["exit_differs"]) == (0, 0, False)
    assert result.result.stdout == "hello from pyrunc\n" and result.unconfined.stdout == WEB_OUTPUT
    assert report["stdout_differs"] is True
    assert result.failed and not report["ok"]


def test_check_of_the_full_profile_is_clean(web_recording, pyrunc_check):
    config, recording = web_recording
    result = pyrunc_check(recording.profile(), config=config)
    report = result.report()
    assert report["denied"] == {} and report["errors"] == []
    assert (report["exit_code"], report["unconfined_exit_code"], report["exit_differs"]) == (0, 0, False)
    assert report["allowed_calls"] > 50
    assert not result.failed and report["ok"]


def test_check_reports_the_errno_a_rule_gives(web_recording, pyrunc_check):
    """A rule's own errnoRet is what the workload gets and what check reports."""
    config, recording = web_recording
    profile = without(recording.profile(), "socket")
    profile["syscalls"].append({"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EAFNOSUPPORT})
    result = pyrunc_check(profile, config=config)
    report = result.report()
    assert list(report["denied"]) == ["socket"]
    assert {(a["errno_name"], a["action"]) for a in report["denied"]["socket"]["answers"]} == \
        {("EAFNOSUPPORT", "ERRNO")}
    assert report["denied"]["socket"]["count"] == 1  # httpd fails first; wget never runs
    assert "Address family not supported" in result.result.stderr
    assert report["exit_differs"] is True


def test_check_counts_a_log_rule_without_denying(web_recording, pyrunc_check):
    config, recording = web_recording
    profile = without(recording.profile(), "uname")
    profile["syscalls"].append({"names": ["uname"], "action": "SCMP_ACT_LOG"})
    config = config.copy().args("uname", "-n")
    result = pyrunc_check(profile, config=config)
    report = result.report()
    assert report["denied"] == {} and report["logged"] == {"uname": 1}
    assert result.result.stdout == "pyrunc\n"


# ------------------------------------------------------------------ the command line
@pytest.fixture
def profile_cli(tmp_path_factory, assert_no_residue):
    """Runs `pyrunc --root ROOT profile ...` (the installed command) with a fresh root.

    Not conftest's pyrunc_cmd: its residue check counts the runtime's seccomp cache
    (ROOT/.pyrunc-cache) as a leftover container, so it is removed here first."""
    import shutil
    import subprocess
    import tempfile
    from pyrunc.harness.api import pyrunc_command
    root = tempfile.mkdtemp(prefix="pyrunc-prof-")

    def run(*args, timeout: float = 120):
        command = [*pyrunc_command(), "--root", root, "profile", *[str(a) for a in args]]
        return subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)

    try:
        yield run
    finally:
        shutil.rmtree(os.path.join(root, ".pyrunc-cache"), ignore_errors=True)
        try:
            assert_no_residue(root)
        finally:
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def web_bundle(tmp_path, web_rootfs):
    bundle = tmp_path / "bundle"
    Config.busybox(web_rootfs, WEB_WORKLOAD).write_bundle(bundle)
    return bundle


def test_cli_record_check_diff(profile_cli, web_bundle, tmp_path):
    profile_path = tmp_path / "web.json"
    recorded = profile_cli("record", "-b", web_bundle, "-o", profile_path)
    assert recorded.returncode == 0, recorded.stderr
    assert recorded.stdout.startswith(WEB_OUTPUT + "SYSCALL ")
    assert f"profile: {profile_path}\nreport: {tmp_path / 'web.report.json'}\n" in recorded.stdout
    profile = json.loads(profile_path.read_text())
    report = json.loads((tmp_path / "web.report.json").read_text())
    assert "getdents64" in profile["syscalls"][0]["names"]
    assert report["exit_code"] == 0 and report["profile"] == str(profile_path)
    line = next(l for l in recorded.stdout.splitlines() if l.startswith("socket "))
    assert line.split()[2:] == ["x86_64", f"AF_INET:{report['syscalls']['socket']['count']}"]

    clean = profile_cli("check", "-b", web_bundle, "--profile", profile_path)
    assert clean.returncode == 0, clean.stderr
    assert clean.stdout == WEB_OUTPUT + "no syscall was denied\nexit status 0 under the profile, 0 unconfined (same)\n"

    reduced_path = tmp_path / "reduced.json"
    reduced_path.write_text(json.dumps(without(profile, "getdents64")))
    denied = profile_cli("check", "-b", web_bundle, "--profile", reduced_path, "--format", "json")
    assert denied.returncode == 1
    result = json.loads(denied.stdout)
    assert list(result["denied"]) == ["getdents64"] and result["stdout_differs"] is True
    assert "hello from pyrunc" in denied.stderr  # the workload's stdout moves to stderr with JSON

    expect = profile_cli("check", "-b", web_bundle, "--profile", profile_path, "--no-compare",
                         "--expect-denied", "mount:EPERM", "--expect-allowed", "getpid")
    assert expect.returncode == 0, expect.stdout + expect.stderr
    assert [line.split() for line in expect.stdout.splitlines()[-2:]] == [
        ["denied", "EPERM", "mount", "denied", "EPERM", "(1)", "ok"], ["allowed", "getpid", "allowed", "-", "ok"]]

    table = profile_cli("diff", profile_path, reduced_path)
    assert table.returncode == 1
    assert table.stdout.splitlines()[2:] == ["CHANGE  SYSCALL     ARCHES  A      B",
                                             "A only  getdents64  x86_64  allow  errno EPERM"]
    same = profile_cli("diff", "--format", "json", profile_path, profile_path)
    assert same.returncode == 0 and json.loads(same.stdout)["identical"] is True


def test_cli_profile_errors_are_one_line(profile_cli, tmp_path, web_bundle):
    missing = profile_cli("check", "-b", web_bundle, "--profile", tmp_path / "nope.json")
    assert missing.returncode == 1
    assert missing.stderr.count("\n") == 1 and f"open {tmp_path / 'nope.json'}: no such file or directory" in missing.stderr
    unknown = profile_cli("check", "-b", web_bundle, "--profile", tmp_path / "nope.json", "--expect-denied", "nosuch")
    assert unknown.returncode == 1 and "unknown syscall 'nosuch' on SCMP_ARCH_X86_64" in unknown.stderr
    usage = profile_cli("record", "-b", web_bundle)
    assert usage.returncode == 1
    assert "profile record: the following arguments are required: -o/--output" in usage.stderr
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"defaultAction": "SCMP_ACT_BOGUS"}))
    invalid = profile_cli("diff", bad, bad)
    assert invalid.returncode == 1
    assert f'msg="{bad}: defaultAction: unknown action \\"SCMP_ACT_BOGUS\\""' in invalid.stderr


def test_without_no_new_privileges_the_profile_must_cover_the_runtime_setup(web_recording, pyrunc_record,
                                                                              pyrunc_check):
    """noNewPrivileges false: the filter loads before the init drops privileges, so P
    also filters setgroups/setresuid/capset. check shows it; --keep-nnp records it."""
    config, recording = web_recording
    no_nnp = config.copy().no_new_privileges(False)
    result = pyrunc_check(recording.profile(), config=no_nnp)
    report = result.report()
    assert list(report["denied"]) == ["setgroups"]  # the first setup call; the init stops there
    assert report["runtime_error"] == "set user to 0:0: operation not permitted"
    assert (report["exit_code"], report["exit_differs"]) == (None, True)

    with_setup = pyrunc_record(no_nnp, keep_no_new_privileges=True)
    assert with_setup.result.stdout == WEB_OUTPUT
    assert {"setgroups", "setresuid", "setresgid", "capset"} <= set(with_setup.syscalls) - set(recording.syscalls)
    clean = pyrunc_check(with_setup.profile(), config=no_nnp).report()
    assert (clean["denied"], clean["exit_code"], clean["runtime_error"]) == ({}, 0, "")


def test_several_runs_add_up(pyrunc_config, pyrunc_record):
    config = pyrunc_config.args("ls", "/")
    once = pyrunc_record(config).report()
    thrice = pyrunc_record(config, runs=3).report()
    assert (once["runs"], thrice["runs"]) == (1, 3)
    assert once["syscalls"]["getdents64"]["count"] >= 2  # entries, then the end
    assert thrice["syscalls"]["getdents64"]["count"] == 3 * once["syscalls"]["getdents64"]["count"]
    assert thrice["syscalls"].keys() == once["syscalls"].keys()


def test_check_expectations_run_the_probe_under_the_profile(web_recording, pyrunc_check):
    from pyrunc.harness.check import Expectation
    config, recording = web_recording
    profile = recording.profile()
    profile["syscalls"].append({"names": ["ptrace"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EACCES})
    expectations = [Expectation.parse("mount", denied=True), Expectation.parse("ptrace:EACCES", denied=True),
                    Expectation.parse("ptrace:EPERM", denied=True), Expectation.parse("getpid", denied=False),
                    Expectation.parse("mkdir", denied=False)]
    result = pyrunc_check(profile, config=config, compare_unconfined=False, expectations=expectations)
    rows = [(p["expected"], p["expected_errno"], p["syscall"], p["verdict"], p["errno"], p["ok"])
            for p in result.report()["expectations"]]
    assert rows == [("denied", None, "mount", "denied", errno.EPERM, True),
                    ("denied", errno.EACCES, "ptrace", "denied", errno.EACCES, True),
                    ("denied", errno.EPERM, "ptrace", "denied", errno.EACCES, False),
                    ("allowed", None, "getpid", "allowed", 0, True),
                    ("allowed", None, "mkdir", "denied", errno.EPERM, False)]
    # the web workload's profile covers the probe's start-up (both static busybox/glibc)
    assert all(p["probe_denied"] == [] for p in result.report()["expectations"])
    assert result.report()["denied"] == {} and result.failed  # only the expectations failed
    lines = [line.split() for line in result.table().splitlines()]
    assert ["denied", "EPERM", "ptrace", "denied", "EACCES", "(13)", "FAILED"] in lines
    assert "exit status 0 under the profile (no unconfined run)" in result.table()
