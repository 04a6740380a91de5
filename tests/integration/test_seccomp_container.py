"""linux.seccomp through real containers: every action as the container's process sees
it, errno values, argument conditions, the ENOSYS answer for syscalls newer than the
profile, flags, a NOTIFY agent process at listenerPath, the load order with and without
no_new_privs, `exec` inheriting the filter, the hardened example bundle with pyrunc's
default profile, and `features` telling the truth about what compiles.

Syscalls are made by `probe`, a tiny static C program built here and copied into the
test rootfs: `probe NR[:a0,a1,...] ...` prints "NR RET ERRNO" per call, `probe trap NR`
first installs a SIGSYS handler that prints "sigsys NR".
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")

REPO = Path(__file__).resolve().parents[2]
DEFAULT_PROFILE = REPO / "pyrunc" / "seccomp" / "default_profile.json"
HARDENED_BUNDLE = REPO / "bundles" / "hardened"

# x86_64 syscall numbers
NR = {"getpid": 39, "kill": 62, "mkdir": 83, "getppid": 110, "acct": 163, "mount": 165, "reboot": 169,
      "unshare": 272, "clone3": 435}
SIGSYS = 31
EHWPOISON = 133  # not in Python's errno module

PROBE_C = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>

static void on_sigsys(int sig, siginfo_t *si, void *ctx)
{
	(void)sig; (void)ctx;
	printf("sigsys %d\n", si->si_syscall);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	int i = 1;
	if (argc > 1 && strcmp(argv[1], "trap") == 0) {
		struct sigaction sa;
		memset(&sa, 0, sizeof(sa));
		sa.sa_sigaction = on_sigsys;
		sa.sa_flags = SA_SIGINFO;
		sigaction(SIGSYS, &sa, NULL);
		i = 2;
	}
	for (; i < argc; i++) {
		long a[6] = {0};
		char *p = argv[i];
		long nr = strtol(p, &p, 0);
		for (int k = 0; k < 6 && (*p == ':' || *p == ','); k++)
			a[k] = strtol(p + 1, &p, 0);
		errno = 0;
		long r = syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
		printf("%ld %ld %d\n", nr, r, r < 0 ? errno : 0);
		fflush(stdout);
	}
	return 0;
}
"""


@pytest.fixture(scope="module")
def probe_rootfs(rootfs_builder):
    """A busybox rootfs (traversable by any uid) with /bin/probe."""
    if not shutil.which("gcc"):
        pytest.skip("gcc is not installed (./setup.sh installs it): cannot build the syscall probe")
    top = tempfile.mkdtemp(prefix="pyrunc-seccomp-")
    try:
        os.chmod(top, 0o755)
        rootfs = os.path.join(top, "rootfs")
        rootfs_builder.build_rootfs(rootfs)
        source = os.path.join(top, "probe.c")
        Path(source).write_text(PROBE_C)
        subprocess.run(["gcc", "-static", "-O2", "-o", os.path.join(rootfs, "bin", "probe"), source],
                       check=True, capture_output=True, timeout=60)
        yield rootfs
    finally:
        shutil.rmtree(top, ignore_errors=True)


def profile(*rules: dict, default: str = "SCMP_ACT_ALLOW", **extra) -> dict:
    return {"defaultAction": default, "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": list(rules), **extra}


def default_profile() -> dict:
    return json.loads(DEFAULT_PROFILE.read_text())


def make_bundle(bundle, probe_rootfs, seccomp: dict | None, args: list[str], *, nnp: bool = True, edit=None):
    def apply(config):
        config["root"] = {"path": probe_rootfs, "readonly": True}
        config["process"]["noNewPrivileges"] = nnp
        if seccomp is not None:
            config["linux"]["seccomp"] = seccomp
        if edit is not None:
            edit(config)
    return bundle(apply, args=args)


def run(pyrunc_cmd, b: Path, container_id: str, expect: int = 0) -> str:
    result = pyrunc_cmd("run", "-b", str(b), container_id, timeout=30)
    assert result.returncode == expect, f"exit {result.returncode}, expected {expect}: {result.stderr}{result.stdout}"
    return result.stdout


def probe_results(text: str) -> dict[int, tuple[int, int]]:
    """{nr: (ret, errno)} from probe's lines (the last call of a number wins)."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and all(p.lstrip("-").isdigit() for p in parts):
            out[int(parts[0])] = (int(parts[1]), int(parts[2]))
    return out


def status_fields(text: str) -> dict[str, str]:
    return {k: v.strip() for k, _, v in (line.partition(":") for line in text.splitlines()) if v}


# ------------------------------------------------------------------------------ actions


@pytest.mark.parametrize("nnp", [True, False], ids=["nnp", "no-nnp"])
def test_errno_with_errno_ret_and_the_default_eperm(nnp, bundle, probe_rootfs, pyrunc_cmd, container_id):
    seccomp = profile({"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EXDEV},
                      {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"})
    b = make_bundle(bundle, probe_rootfs, seccomp, ["sh", "-c", "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; "
                                                   f"probe {NR['getppid']} {NR['mkdir']}:0 {NR['getpid']}"], nnp=nnp)
    out = run(pyrunc_cmd, b, container_id)
    fields = status_fields(out)
    assert fields["Seccomp"] == "2" and fields["NoNewPrivs"] == ("1" if nnp else "0"), out
    results = probe_results(out)
    assert results[NR["getppid"]] == (-1, errno.EXDEV)
    # mkdir(NULL) would be EFAULT: EPERM proves the filter answered first
    assert results[NR["mkdir"]] == (-1, errno.EPERM)
    assert results[NR["getpid"]][0] > 0


def test_default_errno_ret_applies_to_unlisted_syscalls(bundle, probe_rootfs, pyrunc_cmd, container_id):
    seccomp = default_profile()
    seccomp["defaultErrnoRet"] = EHWPOISON
    b = make_bundle(bundle, probe_rootfs, seccomp, ["probe", f"{NR['acct']}:0", f"{NR['mount']}:0,0,0,0,0",
                                                    str(NR["getpid"])])
    results = probe_results(run(pyrunc_cmd, b, container_id))
    assert results[NR["acct"]] == (-1, EHWPOISON)
    assert results[NR["mount"]] == (-1, EHWPOISON)
    assert results[NR["getpid"]] == (1, 0)


@pytest.mark.parametrize("action", ["SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"])
def test_kill_actions_end_the_container_with_sigsys(action, bundle, probe_rootfs, pyrunc_cmd, container_id):
    seccomp = profile({"names": ["getppid"], "action": action})
    b = make_bundle(bundle, probe_rootfs, seccomp, ["probe", str(NR["getpid"]), str(NR["getppid"]), str(NR["getpid"])])
    out = run(pyrunc_cmd, b, container_id, expect=128 + SIGSYS)
    # the first call went through, nothing after the killing one
    assert out.splitlines() == [f"{NR['getpid']} 1 0"], out


def test_trap_delivers_sigsys_with_the_syscall_number(bundle, probe_rootfs, pyrunc_cmd, container_id):
    seccomp = profile({"names": ["getppid"], "action": "SCMP_ACT_TRAP"})
    b = make_bundle(bundle, probe_rootfs, seccomp, ["probe", "trap", str(NR["getppid"]), str(NR["getpid"])])
    out = run(pyrunc_cmd, b, container_id)
    lines = out.splitlines()
    assert lines[0] == f"sigsys {NR['getppid']}", out
    # the kernel skips a trapped call and rolls its registers back (syscall_rollback):
    # the "return value" is the syscall number, not getppid's 0
    assert probe_results(out)[NR["getppid"]] == (NR["getppid"], 0), out
    assert probe_results(out)[NR["getpid"]] == (1, 0)


def test_trap_without_a_handler_kills(bundle, probe_rootfs, pyrunc_cmd, container_id):
    seccomp = profile({"names": ["getppid"], "action": "SCMP_ACT_TRAP"})
    b = make_bundle(bundle, probe_rootfs, seccomp, ["probe", str(NR["getppid"])])
    run(pyrunc_cmd, b, container_id, expect=128 + SIGSYS)


def test_log_allows_what_the_default_denies(bundle, probe_rootfs, pyrunc_cmd, container_id):
    seccomp = default_profile()
    allow = seccomp["syscalls"][0]
    allow["names"] = [n for n in allow["names"] if n != "getppid"]
    seccomp["syscalls"].append({"names": ["getppid"], "action": "SCMP_ACT_LOG"})
    seccomp["flags"] = ["SECCOMP_FILTER_FLAG_LOG"]
    b = make_bundle(bundle, probe_rootfs, seccomp, ["probe", str(NR["getppid"]), f"{NR['acct']}:0"])
    results = probe_results(run(pyrunc_cmd, b, container_id))
    assert results[NR["getppid"]] == (0, 0)  # the parent of pid 1 is outside the pid namespace: 0
    assert results[NR["acct"]] == (-1, errno.EPERM)


def test_log_action_control_without_the_rule_is_denied(bundle, probe_rootfs, pyrunc_cmd, container_id):
    seccomp = default_profile()
    seccomp["syscalls"][0]["names"] = [n for n in seccomp["syscalls"][0]["names"] if n != "getppid"]
    b = make_bundle(bundle, probe_rootfs, seccomp, ["probe", str(NR["getppid"])])
    assert probe_results(run(pyrunc_cmd, b, container_id))[NR["getppid"]] == (-1, errno.EPERM)


def test_argument_conditions(bundle, probe_rootfs, pyrunc_cmd, container_id):
    kill = "kill"
    seccomp = profile(
        # EQ on one argument
        {"names": [kill], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EXDEV,
         "args": [{"index": 1, "value": 28, "op": "SCMP_CMP_EQ"}]},
        # MASKED_EQ: (sig & 3) == 3
        {"names": [kill], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EPROTO,
         "args": [{"index": 1, "value": 3, "valueTwo": 3, "op": "SCMP_CMP_MASKED_EQ"}]},
        # two arguments: both must hold
        {"names": [kill], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EMSGSIZE,
         "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}, {"index": 1, "value": 17, "op": "SCMP_CMP_EQ"}]},
        # GT on a 64-bit value
        {"names": ["getpriority"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOTTY,
         "args": [{"index": 1, "value": 0x100000000, "op": "SCMP_CMP_GT"}]},
    )
    calls = ["62:1,28", "62:1,23", "62:1,0", "62:1,18", "62:1,17", "62:2,17"]
    b = make_bundle(bundle, probe_rootfs, seccomp, ["sh", "-c", " ; ".join(f"probe {c}" for c in calls)
                                                   + " ; probe 140:0,0x100000001 ; probe 140:0,0"])
    out = run(pyrunc_cmd, b, container_id)
    lines = [tuple(int(x) for x in line.split()[1:]) for line in out.splitlines()]
    assert lines == [
        (-1, errno.EXDEV),       # kill(1, SIGWINCH): EQ
        (-1, errno.EPROTO),      # kill(1, SIGURG=23): 23 & 3 == 3
        (0, 0),                  # kill(1, 0)
        (0, 0),                  # kill(1, SIGCONT=18): 18 & 3 == 2
        (-1, errno.EMSGSIZE),    # kill(1, SIGCHLD): pid 1 and sig 17
        (-1, errno.ESRCH),       # kill(2, SIGCHLD): only one condition holds; no pid 2
        (-1, errno.ENOTTY),      # getpriority(0, 2**32+1) > 2**32
        (lines[7][0], 0),        # getpriority(0, 0) runs
    ], out


def test_unknown_newer_syscalls_get_enosys(bundle, probe_rootfs, pyrunc_cmd, container_id):
    """glibc falls back to an older syscall only on ENOSYS: numbers above everything the
    profile names get ENOSYS, a known unlisted one the default errno (EPERM)."""
    b = make_bundle(bundle, probe_rootfs, default_profile(),
                    ["probe", "1000", "500", str(NR["clone3"]), f"{NR['acct']}:0", str(NR["getpid"])])
    results = probe_results(run(pyrunc_cmd, b, container_id))
    assert results[1000] == (-1, errno.ENOSYS)
    assert results[500] == (-1, errno.ENOSYS)
    assert results[NR["clone3"]] == (-1, errno.ENOSYS)
    assert results[NR["acct"]] == (-1, errno.EPERM)
    assert results[NR["getpid"]] == (1, 0)


@pytest.mark.parametrize("flag", ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                                  "SECCOMP_FILTER_FLAG_LOG"])
def test_filter_flags_are_accepted(flag, bundle, probe_rootfs, pyrunc_cmd, container_id):
    seccomp = profile({"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EXDEV}, flags=[flag])
    b = make_bundle(bundle, probe_rootfs, seccomp, ["probe", str(NR["getppid"])])
    assert probe_results(run(pyrunc_cmd, b, container_id))[NR["getppid"]] == (-1, errno.EXDEV)


# ------------------------------------------------------------------------------ NOTIFY

LISTENER = textwrap.dedent(r'''
    """A seccomp agent: accepts one connection at argv[1], takes the notify fd and the
    ContainerProcessState, answers every getppid with 4242 and anything else with
    ENOMSG, and writes what it saw as JSON to argv[2]."""
    import array, ctypes, json, os, select, socket, struct, sys

    RECV, SEND = 0xC0502100, 0xC0182101
    NOTIF = struct.Struct("=QII" "iIQ6Q")
    RESP = struct.Struct("=QqiI")
    libc = ctypes.CDLL(None, use_errno=True)
    path, report = sys.argv[1], sys.argv[2]
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    open(report + ".ready", "w").close()
    conn, _ = server.accept()
    fds = array.array("i")
    msg, anc, _, _ = conn.recvmsg(1 << 16, socket.CMSG_SPACE(4 * 4))
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % 4])
    seen = {"message": json.loads(msg), "nfds": len(fds), "calls": []}
    listener = fds[0]
    poller = select.poll()
    poller.register(listener, select.POLLIN)
    while True:
        events = poller.poll(20000)
        if not events or events[0][1] & (select.POLLHUP | select.POLLERR):
            break
        buf = ctypes.create_string_buffer(NOTIF.size)
        if libc.ioctl(listener, ctypes.c_ulong(RECV), buf) != 0:
            seen["recv_errno"] = ctypes.get_errno()
            break
        notif_id, pid, _, nr, *_ = NOTIF.unpack(buf.raw)
        seen["calls"].append([nr, pid])
        answer = RESP.pack(notif_id, 4242, 0, 0) if nr == 110 else RESP.pack(notif_id, 0, -42, 0)
        libc.ioctl(listener, ctypes.c_ulong(SEND), ctypes.create_string_buffer(answer, RESP.size))
    with open(report, "w") as f:
        json.dump(seen, f)
''')


@pytest.mark.parametrize("nnp", [True, False], ids=["nnp", "no-nnp"])
def test_notify_agent_gets_the_fd_and_state_and_answers(nnp, bundle, probe_rootfs, pyrunc_cmd, container_id):
    top = Path(tempfile.mkdtemp(prefix="pyrunc-agent-"))  # sun_path is short
    try:
        sock, report = top / "agent.sock", top / "report.json"
        script = top / "agent.py"
        script.write_text(LISTENER)
        agent = subprocess.Popen([sys.executable, str(script), str(sock), str(report)])
        try:
            deadline = time.monotonic() + 10
            while not Path(str(report) + ".ready").exists():
                assert time.monotonic() < deadline and agent.poll() is None, "the agent did not start"
                time.sleep(0.01)
            seccomp = profile({"names": ["getppid", "acct"], "action": "SCMP_ACT_NOTIFY"},
                              listenerPath=str(sock), listenerMetadata="agent-metadata")
            b = make_bundle(bundle, probe_rootfs, seccomp, ["probe", str(NR["getppid"]), f"{NR['acct']}:0",
                                                            str(NR["getpid"])], nnp=nnp)
            out = run(pyrunc_cmd, b, container_id)
            agent.wait(timeout=25)
        finally:
            if agent.poll() is None:
                agent.kill()
                agent.wait()
        results = probe_results(out)
        assert results[NR["getppid"]] == (4242, 0), out
        assert results[NR["acct"]] == (-1, errno.ENOMSG), out
        assert results[NR["getpid"]] == (1, 0), out
        seen = json.loads(report.read_text())
    finally:
        shutil.rmtree(top, ignore_errors=True)
    message = seen["message"]
    assert seen["nfds"] == 1
    assert message["fds"] == ["seccompFd"]
    assert message["metadata"] == "agent-metadata"
    assert message["ociVersion"] and message["state"]["id"] == container_id
    assert message["state"]["bundle"] == str(b)
    assert message["state"]["status"] in ("creating", "created", "running")
    assert isinstance(message["pid"], int) and message["pid"] > 0
    # only the container's own syscalls reached the agent, from the container's process
    assert [nr for nr, _ in seen["calls"]] == [NR["getppid"], NR["acct"]], seen
    assert {pid for _, pid in seen["calls"]} == {message["pid"]}


# ------------------------------------------------------------------ load order and exec


def test_filter_loaded_before_the_capabilities_drop_without_nnp(bundle, probe_rootfs, pyrunc_cmd, container_id):
    """Without no_new_privs only CAP_SYS_ADMIN may load a filter: a non-root user with no
    capabilities gets one only if the runtime loads it before dropping them (runc)."""
    def edit(config):
        config["process"]["user"] = {"uid": 65534, "gid": 65534}
        config["process"]["capabilities"] = {k: [] for k in ("bounding", "effective", "permitted",
                                                               "inheritable", "ambient")}

    b = make_bundle(bundle, probe_rootfs, default_profile(),
                    ["sh", "-c", f"grep -E '^(Seccomp|NoNewPrivs|CapEff|Uid):' /proc/self/status; probe {NR['acct']}:0"],
                    nnp=False, edit=edit)
    out = run(pyrunc_cmd, b, container_id)
    fields = status_fields(out)
    assert fields["Seccomp"] == "2" and fields["NoNewPrivs"] == "0", out
    assert int(fields["CapEff"], 16) == 0 and fields["Uid"].split()[0] == "65534", out
    assert probe_results(out)[NR["acct"]] == (-1, errno.EPERM)


def test_exec_inherits_the_containers_filter(bundle, probe_rootfs, pyrunc_cmd, container_id):
    seccomp = profile({"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EXDEV})
    b = make_bundle(bundle, probe_rootfs, seccomp, ["sleep", "30"])
    pyrunc_cmd("run", "-d", "-b", str(b), container_id, check=True)
    out = pyrunc_cmd("exec", container_id, "sh", "-c",
                     f"grep '^Seccomp:' /proc/self/status; probe {NR['getppid']}", check=True).stdout
    assert status_fields(out)["Seccomp"] == "2", out
    assert probe_results(out)[NR["getppid"]] == (-1, errno.EXDEV)
    # an exec'd process with no_new_privs off still gets it (loaded before caps change)
    out = pyrunc_cmd("exec", "--user", "1000:1000", container_id, "probe", str(NR["getppid"]), check=True).stdout
    assert probe_results(out)[NR["getppid"]] == (-1, errno.EXDEV)


# ------------------------------------------------------------- hardened bundle, profile


def hardened_config(probe_rootfs: str) -> dict:
    config = json.loads((HARDENED_BUNDLE / "config.json").read_text())
    config["root"]["path"] = probe_rootfs
    return config


def test_hardened_bundle_uses_the_default_profile():
    config = json.loads((HARDENED_BUNDLE / "config.json").read_text())
    assert config["linux"]["seccomp"] == default_profile()
    assert config["process"]["noNewPrivileges"] is True
    assert config["process"]["user"]["uid"] == 65534
    assert config["root"]["readonly"] is True
    assert all(v == [] for v in config["process"]["capabilities"].values())
    assert "/proc/kcore" in config["linux"]["maskedPaths"] and "/proc/sys" in config["linux"]["readonlyPaths"]


def test_hardened_bundle_as_shipped_runs(pyrunc_cmd, container_id):
    if not (HARDENED_BUNDLE.parent / "busybox" / "rootfs" / "bin" / "sh").exists():
        pytest.skip("bundles/busybox/rootfs is not built (./setup.sh builds it)")
    out = run(pyrunc_cmd, HARDENED_BUNDLE, container_id)
    lines = out.splitlines()
    assert lines[0].startswith("uid=65534(nobody) gid=65534(nogroup)"), out
    assert "root:x:0:0:root:/root:/bin/sh" in lines


def test_hardened_profile_denies_mount_unshare_reboot(bundle, probe_rootfs, pyrunc_cmd, container_id):
    config = hardened_config(probe_rootfs)
    config["process"]["args"] = ["sh", "-c", "id; head -1 /etc/passwd; "
                                 "mount -t tmpfs t /tmp 2>&1; echo mount=$?; "
                                 "unshare -m true 2>&1; echo unshare=$?; "
                                 f"probe {NR['reboot']}:0,0,0 {NR['mount']}:0,0,0,0,0 {NR['unshare']}:0x04000000"]
    out = run(pyrunc_cmd, bundle.write(config), container_id)
    assert "uid=65534(nobody)" in out and "root:x:0:0" in out, out
    assert "mount=0" not in out and "unshare=0" not in out, out
    results = probe_results(out)
    for name in ("reboot", "mount", "unshare"):
        assert results[NR[name]] == (-1, errno.EPERM), (name, out)


@pytest.mark.parametrize("with_profile", [True, False], ids=["profile", "control-without"])
def test_it_is_the_profile_that_denies(with_profile, bundle, probe_rootfs, pyrunc_cmd, container_id):
    """Root with CAP_SYS_ADMIN and CAP_SYS_BOOT: the kernel would let the calls through
    (reboot with a bad magic is EINVAL, mount(NULL) EFAULT, unshare(UTS) succeeds), so
    EPERM can only come from the filter.  The control runs without it."""
    config = hardened_config(probe_rootfs)
    config["process"]["user"] = {"uid": 0, "gid": 0}
    wanted = ["CAP_SYS_ADMIN", "CAP_SYS_BOOT"]
    config["process"]["capabilities"] = {k: list(wanted) for k in ("bounding", "effective", "permitted")}
    assert {"type": "pid"} in config["linux"]["namespaces"]  # reboot(2) never reaches the host
    if not with_profile:
        del config["linux"]["seccomp"]
    config["process"]["args"] = ["probe", f"{NR['reboot']}:0,0,0", f"{NR['mount']}:0,0,0,0,0",
                                 f"{NR['unshare']}:0x04000000"]
    results = probe_results(run(pyrunc_cmd, bundle.write(config), container_id))
    if with_profile:
        assert [results[NR[n]] for n in ("reboot", "mount", "unshare")] == [(-1, errno.EPERM)] * 3
    else:
        assert results[NR["reboot"]] == (-1, errno.EINVAL)
        assert results[NR["mount"]] == (-1, errno.EFAULT)
        assert results[NR["unshare"]] == (0, 0)


# ------------------------------------------------------------------------------ features


def test_features_lists_only_what_compiles(pyrunc_cmd):
    from pyrunc.errors import PyruncError
    from pyrunc.seccomp import compile_filter

    features = json.loads(pyrunc_cmd("features", check=True).stdout)["linux"]["seccomp"]
    assert features["enabled"] is True
    failures = []

    def compiles(what: str, seccomp: dict) -> None:
        try:
            compile_filter(seccomp, None)
        except PyruncError as e:
            failures.append(f"{what}: {e}")

    for action in features["actions"]:
        extra = {"listenerPath": "/run/agent.sock"} if action == "SCMP_ACT_NOTIFY" else {}
        compiles(action, {"defaultAction": "SCMP_ACT_ALLOW",
                          "syscalls": [{"names": ["getppid"], "action": action}], **extra})
    for op in features["operators"]:
        compiles(op, {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["getppid"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 0, "value": 1, "valueTwo": 1, "op": op}]}]})
    for arch in features["archs"]:
        compiles(arch, {"defaultAction": "SCMP_ACT_ALLOW", "architectures": [arch],
                        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO"}]})
    assert set(features["supportedFlags"]) <= set(features["knownFlags"])
    for flag in features["supportedFlags"]:
        compiles(flag, {"defaultAction": "SCMP_ACT_ALLOW", "flags": [flag],
                        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO"}]})
    assert not failures, "features lists what does not compile here:\n" + "\n".join(failures)
    # and what is missing: the spec's actions/operators all compile, so all are listed
    assert set(features["actions"]) >= {"SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD",
                                        "SCMP_ACT_TRAP", "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW",
                                        "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY"}
    assert len(features["operators"]) == 7
    assert {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"} <= set(features["archs"])


def test_features_supported_flags_load_in_a_container(bundle, probe_rootfs, pyrunc_cmd, container_id):
    features = json.loads(pyrunc_cmd("features", check=True).stdout)["linux"]["seccomp"]
    seccomp = profile({"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EXDEV},
                      flags=[f for f in features["supportedFlags"] if f != "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"])
    b = make_bundle(bundle, probe_rootfs, seccomp, ["probe", str(NR["getppid"])])
    assert probe_results(run(pyrunc_cmd, b, container_id))[NR["getppid"]] == (-1, errno.EXDEV)


# ------------------------------------- a strict allow-list profile: nothing of the runtime
# may need a call after the filter that the workload's profile might not allow

# What busybox's sh/id/tty/stat and a runtime's last steps need, and nothing else: no
# close_range (not in the runtime-tools default profile nor in many engines' older
# ones), no sockets (a pause container's profile has no accept4 or recvfrom).
STRICT_ALLOW = sorted("""
read write close openat open newfstatat fstat stat lstat lseek mmap munmap mprotect brk
rt_sigaction rt_sigprocmask rt_sigreturn ioctl access faccessat execve exit exit_group
getpid getppid getuid geteuid getgid getegid getgroups setgroups setresuid setresgid setuid
setgid capget capset prctl arch_prctl set_tid_address set_robust_list rseq futex uname fcntl
dup dup2 dup3 pipe pipe2 wait4 clone fork vfork getdents64 getcwd chdir readlink readlinkat
sigaltstack prlimit64 getrlimit sched_yield nanosleep clock_gettime clock_nanosleep gettid
tgkill madvise epoll_pwait epoll_ctl epoll_create1 getrandom pread64 poll ppoll select
pselect6 kill umask sched_getaffinity fchdir statfs fstatfs getpgrp setpgid getpgid setsid
""".split())
STRICT_SCRIPT = "id; grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status"


def strict_profile() -> dict:
    assert "close_range" not in STRICT_ALLOW and "accept4" not in STRICT_ALLOW
    return {"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": STRICT_ALLOW, "action": "SCMP_ACT_ALLOW"}]}


def strict_bundle(bundle, probe_rootfs, *, nnp: bool, uid: int, args: list[str], userns: bool = False,
                  terminal: bool = False):
    def edit(config):
        config["process"]["user"] = {"uid": uid, "gid": uid}
        config["process"]["terminal"] = terminal
        if userns:
            mapping = [{"containerID": 0, "hostID": 100000, "size": 65536}]
            config["linux"]["namespaces"].append({"type": "user"})
            config["linux"]["uidMappings"] = mapping
            config["linux"]["gidMappings"] = mapping
    return make_bundle(bundle, probe_rootfs, strict_profile(), args, nnp=nnp, edit=edit)


def assert_strict_output(text: str, uid: int, nnp: bool) -> None:
    assert text.startswith(f"uid={uid}("), text
    fields = status_fields(text)
    assert (fields.get("Seccomp"), fields.get("NoNewPrivs")) == ("2", str(int(nnp))), text


@pytest.mark.parametrize("userns", [False, True], ids=["host-ids", "userns"])
@pytest.mark.parametrize("uid", [0, 1000], ids=["root", "uid1000"])
@pytest.mark.parametrize("nnp", [True, False], ids=["nnp", "no-nnp"])
def test_strict_profile_run_like_runc(nnp, uid, userns, bundle, probe_rootfs, pyrunc_cmd, runc_cmd, container_id):
    """Without no_new_privs the filter is loaded before the capabilities drop, and the
    init marked inherited fds close-on-exec with close_range() after it: under such a
    profile every create failed "close inherited file descriptors: operation not
    permitted", where runc runs."""
    b = strict_bundle(bundle, probe_rootfs, nnp=nnp, uid=uid, userns=userns, args=["sh", "-c", STRICT_SCRIPT])
    reference = runc_cmd("run", "-b", str(b), container_id + "-runc")
    ours = pyrunc_cmd("run", "-b", str(b), container_id)
    assert reference.returncode == 0, reference.stderr
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == reference.stdout
    assert_strict_output(ours.stdout, uid, nnp)


@pytest.mark.parametrize("nnp", [True, False], ids=["nnp", "no-nnp"])
def test_strict_profile_create_start_and_exec(nnp, bundle, probe_rootfs, pyrunc_cmd, container_id, tmp_path):
    """create, start (the init waits for it after the filter is loaded) and exec (root
    and a non-root user) under the strict profile."""
    out, err = tmp_path / "out", tmp_path / "err"
    b = strict_bundle(bundle, probe_rootfs, nnp=nnp, uid=0, args=["sh", "-c", f"{STRICT_SCRIPT}; exec sleep 30"])
    runtime = pyrunc_cmd.__self__
    runtime.seen_ids.add(container_id)
    # files, not pipes: the container keeps its stdio open
    with open(out, "w") as stdout, open(err, "w") as stderr:
        created = subprocess.run([runtime.binary, "--root", str(runtime.root), "create", "-b", str(b), container_id],
                                 stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, timeout=60)
    assert created.returncode == 0, err.read_text()
    pyrunc_cmd("start", container_id, check=True)
    deadline = time.monotonic() + 10
    while "NoNewPrivs" not in out.read_text():
        assert time.monotonic() < deadline, out.read_text()
        time.sleep(0.02)
    assert_strict_output(out.read_text(), 0, nnp)
    for uid in (0, 1000):
        result = pyrunc_cmd("exec", "--user", f"{uid}:{uid}", container_id, "sh", "-c", STRICT_SCRIPT)
        assert result.returncode == 0, result.stderr
        assert_strict_output(result.stdout, uid, nnp)


def test_strict_profile_with_a_terminal_like_runc(bundle, probe_rootfs, pyrunc_cmd, runc_cmd, container_id):
    """A foreground `run` on the caller's terminal: the pty is set up before the filter,
    and nothing after it needs more (no_new_privs off: the filter comes early)."""
    from test_console import _no_output, _run_on_a_pty
    b = strict_bundle(bundle, probe_rootfs, nnp=False, uid=1000, terminal=True,
                      args=["sh", "-c", f"tty; {STRICT_SCRIPT}"])
    seen = {}
    for name, command in (("pyrunc", pyrunc_cmd), ("runc", runc_cmd)):
        runtime = command.__self__
        code, reader, _before, _after = _run_on_a_pty(runtime.binary, runtime.root, b, container_id, _no_output)
        assert code == 0, (name, reader.lines())
        seen[name] = reader.lines()
    assert seen["pyrunc"] == seen["runc"]
    assert seen["pyrunc"][0] == "/dev/pts/0"


# ------------------------------------------------------------------ unknown names, agents


def test_rule_of_only_unknown_syscalls_is_skipped_like_runc(bundle, probe_rootfs, pyrunc_cmd, runc_cmd,
                                                            container_id):
    """Engines ship profiles naming calls newer than the host's libseccomp: a rule naming
    only such calls is skipped (runc exits 0); in a rule mixing them with known calls
    the known ones apply."""
    only_unknown = profile({"names": ["no_such_call_1", "no_such_call_2"], "action": "SCMP_ACT_KILL"})
    mixed = profile({"names": ["no_such_call_1", "getppid"], "action": "SCMP_ACT_ERRNO",
                     "errnoRet": errno.EXDEV})
    # getppid of pid 1 in its own pid namespace is 0
    for seccomp, expected in ((only_unknown, (0, 0)), (mixed, (-1, errno.EXDEV))):
        b = make_bundle(bundle, probe_rootfs, seccomp, ["probe", str(NR["getppid"])])
        reference = runc_cmd("run", "-b", str(b), container_id + "-runc")
        ours = pyrunc_cmd("run", "-b", str(b), container_id)
        assert (ours.returncode, ours.stdout) == (reference.returncode, reference.stdout), ours.stderr
        assert probe_results(ours.stdout)[NR["getppid"]] == expected, ours.stdout


@pytest.mark.parametrize("command", ["run", "create"])
@pytest.mark.parametrize("nnp", [True, False], ids=["nnp", "no-nnp"])
def test_notify_without_an_agent_fails_like_runc(nnp, command, bundle, probe_rootfs, pyrunc_cmd, runc_cmd,
                                                 container_id, state_root, assert_no_residue, tmp_path):
    """runc loads the filter during create (with or without no_new_privs) and fails it
    when nothing listens at listenerPath, with its words and exit code 1."""
    missing = tmp_path / "no-agent.sock"
    seccomp = profile({"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}, listenerPath=str(missing))
    b = make_bundle(bundle, probe_rootfs, seccomp, ["probe", str(NR["getppid"])], nnp=nnp)
    reference = runc_cmd(command, "-b", str(b), container_id + "-runc")
    ours = pyrunc_cmd(command, "-b", str(b), container_id)
    assert ours.returncode == reference.returncode == 1, (ours.stderr, reference.stderr)
    words = ("failed to connect with seccomp agent specified in the seccomp profile: "
             f"dial unix {missing}: connect: no such file or directory")
    assert words in reference.stderr, reference.stderr
    assert words in ours.stderr and len(ours.stderr.splitlines()) == 1, ours.stderr
    assert pyrunc_cmd("state", container_id).returncode != 0
    assert_no_residue(state_root, [container_id])


@pytest.mark.parametrize("nnp", [True, False], ids=["nnp", "no-nnp"])
def test_strict_profile_exec_with_a_terminal_like_runc(nnp, bundle, probe_rootfs, pyrunc_cmd, runc_cmd,
                                                       container_id):
    """`exec -t` as a non-root user into a container under the strict profile."""
    from test_console import _no_output, _on_a_pty
    b = strict_bundle(bundle, probe_rootfs, nnp=nnp, uid=0, args=["sleep", "30"])
    seen = {}
    for name, command in (("pyrunc", pyrunc_cmd), ("runc", runc_cmd)):
        runtime = command.__self__
        command("run", "-d", "-b", str(b), container_id, check=True)
        try:
            code, reader, _before, _after = _on_a_pty(
                [runtime.binary, "--root", str(runtime.root), "exec", "-t", "-u", "1000:1000", container_id,
                 "sh", "-c", f"tty; {STRICT_SCRIPT}"], _no_output)
            assert code == 0, (name, reader.lines())
            seen[name] = reader.lines()
        finally:
            command("delete", "--force", container_id)
    assert seen["pyrunc"] == seen["runc"]
    assert seen["pyrunc"][0] == "/dev/pts/0"
    assert_strict_output("\n".join(seen["pyrunc"][1:]), 1000, nnp)
