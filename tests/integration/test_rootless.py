"""Rootless (issue 15): pyrunc run by a real unprivileged user the module creates, on a
bundle that user wrote with `runc spec --rootless`, compared with runc 1.1.5 run by the
same user; rootless podman with pyrunc as its runtime; an install the user may not read.

The user (useradd, home under a temporary directory, /etc/subuid and /etc/subgid lines
from useradd) and its XDG_RUNTIME_DIR (/run/user/<uid>) are removed afterwards. The user
runs a copy of the installed package (the test's interpreter may live under /root, which
only root can traverse) started by an interpreter it may execute."""
from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from support import pyrunc_binary, remove_cgroup_tree, tar_tree, wait_for

DEBIAN_PYTHON = "/usr/bin/python3"
RUNC = "/usr/sbin/runc"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _host_allows_rootless() -> str:
    """Why this host cannot run the module (empty: it can)."""
    if os.geteuid() != 0:
        return "creating a user needs root"
    for tool in ("useradd", "userdel", "setpriv"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    try:
        with open("/proc/sys/kernel/unprivileged_userns_clone") as f:
            if f.read().strip() != "1":
                return "unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone=0)"
    except FileNotFoundError:
        pass
    with open("/proc/sys/user/max_user_namespaces") as f:
        if int(f.read()) == 0:
            return "user namespaces are disabled (user.max_user_namespaces=0)"
    return ""


def _world_executable(path: str) -> bool:
    """Every user may execute `path`: o+x on it and on each directory above it."""
    path = os.path.realpath(path)
    while True:
        if not os.stat(path).st_mode & 0o001:
            return False
        if path == "/":
            return True
        path = os.path.dirname(path)


class RootlessUser:
    """The unprivileged user: its ids, home, runtime dir, and a pyrunc it can run."""

    def __init__(self, name: str, base: str):
        entry = pwd.getpwnam(name)
        self.name, self.uid, self.gid, self.home = name, entry.pw_uid, entry.pw_gid, entry.pw_dir
        self.base = base
        self.runtime_dir = f"/run/user/{self.uid}"
        self.pyrunc = os.path.join(base, "bin", "pyrunc")
        self.rootfs = os.path.join(self.home, "rootfs")  # busybox, the user's, shared by the bundles

    def env(self) -> dict:
        return {"HOME": self.home, "USER": self.name, "LOGNAME": self.name, "PATH": PATH,
                "XDG_RUNTIME_DIR": self.runtime_dir}

    def command(self, args: list[str]) -> list[str]:
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups", *args]

    def run(self, args: list[str], *, cwd: str = "", timeout: float = 60, **kw) -> subprocess.CompletedProcess:
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        return subprocess.run(self.command(args), env=self.env(), cwd=cwd or self.home, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL, **kw)

    def processes(self) -> list[int]:
        found = []
        for pid in os.listdir("/proc"):
            try:
                if pid.isdigit() and os.stat(f"/proc/{pid}").st_uid in (self.uid, *self.subordinate_uids()):
                    found.append(int(pid))
            except FileNotFoundError:
                pass
        return found

    def subordinate_uids(self) -> range:
        for line in open("/etc/subuid").read().splitlines():
            name, start, count = (line.split(":") + ["", "", ""])[:3]
            if name == self.name:
                return range(int(start), int(start) + int(count))
        return range(0)


def _install_for(user_dir: str) -> str:
    """A copy of the installed pyrunc (and click, and cffi's backend) under `user_dir`,
    with a launcher started by an interpreter every user may execute."""
    import _cffi_backend
    import click

    import pyrunc
    interpreter = os.path.realpath(sys.executable)
    if not _world_executable(interpreter):
        interpreter = DEBIAN_PYTHON
        if not os.path.exists(interpreter):
            pytest.skip("no interpreter an unprivileged user may execute")
    install = os.path.join(user_dir, "install")
    os.makedirs(install)
    for package in (pyrunc, click):
        shutil.copytree(os.path.dirname(package.__file__), os.path.join(install, package.__name__),
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(_cffi_backend.__file__, install)
    os.makedirs(os.path.join(user_dir, "bin"), 0o755)
    launcher = os.path.join(user_dir, "bin", "pyrunc")
    with open(launcher, "w") as f:
        f.write(f"#!/bin/sh\nexec {interpreter} -I -S -c 'import sys; sys.argv[0] = \"pyrunc\"; "
                f"sys.path[:0] = [\"{install}\"]; from pyrunc.cli import main; main()' \"$@\"\n")
    os.chmod(launcher, 0o755)
    for directory, _subdirs, files in os.walk(install):
        os.chmod(directory, 0o755)
        for name in files:
            os.chmod(os.path.join(directory, name), 0o644)
    return launcher


def _remove_user(name: str) -> None:
    subprocess.run(["userdel", "-r", "-f", name], capture_output=True)
    # userdel removes the user's subordinate ranges; make sure, without touching others
    for path in ("/etc/subuid", "/etc/subgid"):
        try:
            with open(path) as f:
                lines = f.read().splitlines(keepends=True)
        except FileNotFoundError:
            continue
        kept = [line for line in lines if not line.startswith(name + ":")]
        if kept != lines:
            with open(path, "w") as f:
                f.writelines(kept)


@pytest.fixture(scope="module")
def user(rootfs_builder):
    reason = _host_allows_rootless()
    if reason:
        pytest.skip(reason)
    base = tempfile.mkdtemp(prefix="pyrunc-rootless-")
    os.chmod(base, 0o755)
    name = f"pyrl{os.getpid() % 100000}"
    made_runtime_dir = False
    u = None
    made = subprocess.run(["useradd", "-m", "-d", os.path.join(base, "home"), "-s", "/bin/sh", "-U", name],
                          capture_output=True, text=True)
    if made.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip(f"useradd: {made.stderr.strip()}")
    try:
        u = RootlessUser(name, base)
        if not os.path.exists(u.runtime_dir):
            os.makedirs(u.runtime_dir, 0o700)
            os.chown(u.runtime_dir, u.uid, u.gid)
            made_runtime_dir = True
        _install_for(base)
        rootfs_builder.build_rootfs(u.rootfs)
        subprocess.run(["chown", "-R", f"{u.uid}:{u.gid}", u.rootfs], check=True)
        probe = u.run(["unshare", "--user", "--map-root-user", "true"])
        if probe.returncode != 0:
            pytest.skip(f"an unprivileged user cannot make a user namespace here: {probe.stderr.strip()}")
        yield u
    finally:
        for pid in u.processes() if u is not None else []:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _remove_user(name)
        if made_runtime_dir:
            shutil.rmtree(u.runtime_dir, ignore_errors=True)
        shutil.rmtree(base, ignore_errors=True)


_bundles = iter(range(1_000_000))


def make_bundle(user: RootlessUser, args: list[str], *, terminal: bool = False, edit=None) -> str:
    """A bundle the user made: `runc spec --rootless` run by it (pyrunc's when runc is
    missing), the shared rootfs, these args."""
    bundle = os.path.join(user.home, f"bundle{next(_bundles)}")
    user.run(["mkdir", bundle], check=True)
    spec_tool = RUNC if os.path.exists(RUNC) else user.pyrunc
    user.run([spec_tool, "spec", "--rootless"], cwd=bundle, check=True)
    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        config = json.load(f)
    config["root"]["path"] = user.rootfs
    config["process"]["args"] = args
    config["process"]["terminal"] = terminal
    if edit is not None:
        edit(config)
    with open(path, "w") as f:
        json.dump(config, f)
    os.chown(path, user.uid, user.gid)
    return bundle


def _require_runc():
    if not os.path.exists(RUNC):
        pytest.skip("runc is not installed")


PROBE = ("id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map; grep -E '^Cap(Eff|Bnd|Prm):' /proc/self/status; "
         "hostname; ls /sys/kernel >/dev/null && echo sys-readable; ls -l /dev/null /dev/zero | cut -c1-10; "
         "echo x >/dev/null && echo dev-null-writable; touch /x 2>/dev/null || echo root-readonly; "
         "grep -c ' /sys ' /proc/self/mountinfo; exit 3")


def test_run_like_runc(user):
    """runc spec --rootless, as the user: the same output and exit code as runc's (user
    namespace maps, capabilities, /sys bound from the host, devices bound, read-only root)."""
    _require_runc()
    bundle = make_bundle(user, ["sh", "-c", PROBE])
    ours = user.run([user.pyrunc, "run", "r1"], cwd=bundle)
    theirs = user.run([RUNC, "run", "r1"], cwd=bundle)
    assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout), ours.stderr
    assert ours.returncode == 3 and ours.stderr == ""
    assert f"0 {user.uid} 1" in " ".join(ours.stdout.split())
    assert "sys-readable" in ours.stdout and "dev-null-writable" in ours.stdout


def test_lifecycle_in_xdg_runtime_dir(user):
    """create (state under $XDG_RUNTIME_DIR/pyrunc, no cgroup the user may not make),
    start through the exec fifo, exec, ps, kill, delete: nothing left."""
    bundle = make_bundle(user, ["sleep", "100"])
    root = os.path.join(user.runtime_dir, "pyrunc")

    def pyrunc(*args, **kw):
        result = user.run([user.pyrunc, *args], cwd=bundle, **kw)
        assert result.returncode == 0, f"{args}: {result.stderr}"
        return result.stdout

    # the container's stdio: not this test's pipes, which it would keep open
    with tempfile.TemporaryFile() as stderr:
        pyrunc("create", "l1", stdout=subprocess.DEVNULL, stderr=stderr)
    state_dir = os.path.join(root, "l1")
    assert os.path.isdir(state_dir) and os.stat(state_dir).st_uid == user.uid
    assert json.loads(pyrunc("state", "l1"))["status"] == "created"
    assert os.path.exists(os.path.join(state_dir, "exec.fifo"))
    pyrunc("start", "l1")
    assert not os.path.exists(os.path.join(state_dir, "exec.fifo"))  # as runc's
    state = json.loads(pyrunc("state", "l1"))
    assert state["status"] == "running"
    with open(f"/proc/{state['pid']}/cmdline", "rb") as f:
        assert f.read().split(b"\0")[0] == b"sleep"
    assert pyrunc("exec", "l1", "sh", "-c", "echo exec-ok; id -u") == "exec-ok\n0\n"
    pyrunc("exec", "-d", "l1", "sleep", "60", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pids = json.loads(pyrunc("ps", "--format", "json", "l1"))
    assert state["pid"] in pids and len(pids) == 2
    # no cgroup: --all signals the processes of the container's pid namespace (runc
    # fails here); its pid 1 (sleep) has no SIGTERM handler, so only the exec'd one goes
    pyrunc("kill", "--all", "l1", "TERM")
    exec_pid = next(pid for pid in pids if pid != state["pid"])
    assert wait_for(lambda: _gone(exec_pid)) and not _gone(state["pid"])
    pyrunc("kill", "l1", "KILL")
    assert wait_for(lambda: json.loads(pyrunc("state", "l1"))["status"] == "stopped")
    pyrunc("delete", "l1")
    assert not os.path.exists(state_dir)
    assert wait_for(lambda: all(_gone(pid) for pid in pids))


def test_seccomp_like_runc(user):
    """A seccomp profile in a rootless container: loaded (root of the user namespace may,
    with no_new_privs as runc spec sets it) and the exec fifo still works under it."""
    _require_runc()
    profile = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["sethostname"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}
    bundle = make_bundle(user, ["sh", "-c", "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; "
                                            "hostname pyrunc-x || echo refused"],
                         edit=lambda c: c["linux"].update(seccomp=profile))
    ours = user.run([user.pyrunc, "run", "s1"], cwd=bundle)
    theirs = user.run([RUNC, "run", "s1"], cwd=bundle)
    assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout), ours.stderr
    assert "Seccomp:\t2" in ours.stdout and "refused" in ours.stdout


def _containers(user: RootlessUser) -> list[str]:
    """The state dirs under the user's default root (not the filter cache)."""
    return [name for name in os.listdir(os.path.join(user.runtime_dir, "pyrunc")) if not name.startswith(".")]


def _gone(pid: int) -> bool:
    """Exited (a zombie counts: a subreaper above may not have reaped it yet)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_start_reports_a_missing_program_like_runc(user):
    """The exec error travels back on the exec fifo (the init writes it before exiting)."""
    _require_runc()
    bundle = make_bundle(user, ["/x-missing"])
    ours = user.run([user.pyrunc, "run", "m1"], cwd=bundle)
    theirs = user.run([RUNC, "run", "m1"], cwd=bundle)
    assert ours.returncode == theirs.returncode != 0
    assert "/x-missing" in ours.stderr and "no such file or directory" in ours.stderr
    assert _containers(user) == []


def test_terminal_like_runc(user):
    """process.terminal: the console is the container's pty, for the user too."""
    _require_runc()
    if shutil.which("script") is None:
        pytest.skip("script (util-linux) is not installed")
    bundle = make_bundle(user, ["sh", "-c", "tty; exit 4"], terminal=True)
    outputs = []
    for runtime in (user.pyrunc, RUNC):
        line = " ".join(user.command([runtime, "run", "t1"]))
        result = subprocess.run(["script", "-qec", line, "/dev/null"], env=user.env(), cwd=bundle,
                                capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        # runc writes a NUL first, which script shows as ^@
        outputs.append((result.returncode, result.stdout.replace("^@", "").strip()))
    assert outputs[0] == outputs[1]
    assert outputs[0] == (4, "/dev/pts/0")


def test_cgroup_limit_without_a_permitted_cgroup_is_refused(user):
    """No cgroup the user may make, yet a limit asked for: create fails naming the field
    (runc fails too), and leaves nothing."""
    bundle = make_bundle(user, ["true"], edit=lambda c: c["linux"].setdefault("resources", {}).update(
        {"pids": {"limit": 10}}))
    ours = user.run([user.pyrunc, "run", "g1"], cwd=bundle)
    assert ours.returncode == 1
    assert "linux.resources.pids.limit" in ours.stderr and "rootless" in ours.stderr
    assert len(ours.stderr.strip().splitlines()) == 1
    assert _containers(user) == []
    if os.path.exists(RUNC):
        assert user.run([RUNC, "run", "g1"], cwd=bundle).returncode == 1


def _unified_mount() -> str:
    for line in open("/proc/self/mountinfo"):
        fields = line.split()
        if fields[fields.index("-") + 1] == "cgroup2" and fields[3] == "/":
            return fields[4]
    return ""


def test_delegated_cgroup2_subtree_is_used(user):
    """A cgroup2 subtree delegated to the user (chowned to it, as systemd delegates): the
    container gets its cgroup there, made by the rootless runtime itself."""
    mount = _unified_mount()
    if not mount:
        pytest.skip("no cgroup2 hierarchy mounted")
    own = next(line.split(":", 2)[2] for line in open("/proc/self/cgroup").read().splitlines()
               if line.startswith("0::"))
    delegated = os.path.join(mount, own.strip("/"), f"pyrunc-delegated-{os.getpid()}")
    runtime_cgroup = os.path.join(delegated, "runtime")
    os.makedirs(runtime_cgroup)
    try:
        for directory in (delegated, runtime_cgroup):
            for name in ("", "cgroup.procs", "cgroup.subtree_control", "cgroup.threads"):
                os.chown(os.path.join(directory, name), user.uid, user.gid)
        bundle = make_bundle(user, ["cat", "/proc/self/cgroup"])
        line = " ".join(user.command([user.pyrunc, "run", "d1"]))
        # the runtime starts in the delegated subtree, as a user's session runs in one
        result = subprocess.run(["sh", "-c", f"echo $$ > {runtime_cgroup}/cgroup.procs && exec {line}"],
                                env=user.env(), cwd=bundle, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        unified = next(x for x in result.stdout.splitlines() if x.startswith("0::"))
        assert unified.split("::", 1)[1].startswith(delegated[len(mount):]), unified
        assert unified.endswith("/d1"), unified
        assert not glob.glob(os.path.join(delegated, "**", "d1"), recursive=True)  # removed by delete
    finally:
        remove_cgroup_tree(delegated)


def _podman(user: RootlessUser):
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed")
    for tool in ("newuidmap", "newgidmap"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (Debian: uidmap)")
    if not user.subordinate_uids():
        pytest.skip(f"useradd gave {user.name} no /etc/subuid range")
    storage = os.path.join(user.home, "storage")
    config = os.path.join(user.home, ".config")
    user.run(["mkdir", "-p", storage, config], check=True)
    base = ["podman", "--root", storage, "--runroot", os.path.join(user.runtime_dir, "containers"),
            "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file",
            "--runtime", user.pyrunc]

    def podman(*args, check=True, timeout=120):
        result = user.run([*base, *args], timeout=timeout)
        if check:
            assert result.returncode == 0, f"podman {args}: {result.stderr}"
        return result
    return podman


def test_rootless_podman_runs_execs_and_removes(user):
    """podman as the user, pyrunc its runtime (run as root of podman's user namespace):
    run, run -d, exec, top, rm -f."""
    podman = _podman(user)
    layer = os.path.join(user.home, "image.tar")
    tar_tree(Path(user.rootfs), Path(layer))
    os.chmod(layer, 0o644)
    try:
        podman("import", "--change", 'CMD ["sh"]', layer, "localhost/pyrunc-rootless:1")
        out = podman("run", "--rm", "--network", "none", "localhost/pyrunc-rootless:1",
                     "sh", "-c", "id -u; cat /proc/self/uid_map").stdout.split()
        # root in podman's user namespace, the user's own id and its subordinate range
        assert out[0] == "0" and out[1:4] == ["0", str(user.uid), "1"]
        podman("run", "-d", "--name", "p1", "--network", "none", "localhost/pyrunc-rootless:1", "sleep", "100")
        assert podman("exec", "p1", "sh", "-c", "echo exec-ok").stdout == "exec-ok\n"
        top = podman("top", "p1").stdout
        assert "sleep 100" in top
        # podman passes no --root: pyrunc's default under XDG_RUNTIME_DIR
        assert len(_containers(user)) == 1
        podman("rm", "-f", "-t", "0", "p1")
        assert podman("ps", "-a", "-q").stdout.strip() == ""
        assert _containers(user) == []
    finally:
        podman("rm", "-a", "-f", "-t", "0", check=False)
        podman("system", "reset", "-f", check=False, timeout=180)


# ------------------------------------------------------------------ an unreadable install

def _launcher_text(interpreter: str, site_dirs: list[str]) -> str:
    """The installed launcher, pointed at another interpreter and import directories."""
    with open(pyrunc_binary()) as f:
        text = f.read()
    installed = text.splitlines()[1].split('exec "', 1)[1].split('"', 1)[0]
    head, _, rest = text.partition("\nSITE_DIRS = ")
    return head.replace(installed, interpreter) + f"\nSITE_DIRS = {site_dirs!r}\n" + rest.partition("\n")[2]


def test_install_only_root_may_read_fails_clearly(user):
    """An interpreter under a directory only root may traverse (a venv of /root's pyenv),
    or a package directory only root may read: one clear line, no traceback."""
    if not os.path.exists(DEBIAN_PYTHON):
        pytest.skip(f"{DEBIAN_PYTHON} is not installed")
    private = os.path.join(user.base, "private")
    os.makedirs(private, 0o700)
    os.symlink(DEBIAN_PYTHON, os.path.join(private, "python3"))
    cases = {
        "cannot execute": _launcher_text(os.path.join(private, "python3"), [private]),
        "cannot import pyrunc": _launcher_text(DEBIAN_PYTHON, [private]),
    }
    for expected, text in cases.items():
        launcher = os.path.join(user.base, "launcher")
        with open(launcher, "w") as f:
            f.write(text)
        os.chmod(launcher, 0o755)
        result = user.run([launcher, "--version"])
        assert result.returncode == 1, result
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and expected in result.stderr, result.stderr
        assert "pip --user or into a venv" in result.stderr
