"""Attacks from runc's security history, run against pyrunc on the real kernel.

Each test plays the attacker (a hostile image or a process inside the container) and
fails if the attack works:

- CVE-2019-5736: the init that runs in the container's namespaces before execve is a
  sealed, non-dumpable memfd copy; the installed pyrunc-init is never what runs.
- CVE-2024-21626: no fd of the caller (directories included) and no host cwd reaches the
  container; process.cwd and `exec --cwd` resolve inside the rootfs.
- CVE-2021-30465, CVE-2025-31133/52565/52881: mount destinations, masked paths, the
  console and procfs targets are resolved inside the rootfs; a symlinked /dev/null,
  /dev/console or /proc never redirects a mount or a sysctl write.
- A config without a mount namespace mounts nothing (it would land on the host).
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from support import init_pid, pyrunc_binary, run_ok, run_with_files

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")

ID_MAPPING = [{"containerID": 0, "hostID": 100000, "size": 65536}]
F_GET_SEALS = 1034
F_SEAL_SEAL, F_SEAL_SHRINK, F_SEAL_GROW, F_SEAL_WRITE = 1, 2, 4, 8


def without_dev_mount(config: dict) -> None:
    """No tmpfs on /dev: the image's own /dev (and what it plants there) is what the
    runtime meets, as in the CVE-2025-31133 reproducers."""
    config["mounts"] = [m for m in config["mounts"] if not m["destination"].startswith("/dev")]


def tree_snapshot(path: Path) -> dict[str, bytes | str]:
    """Every entry below `path` with its content (files) or link target: a host directory
    the attack must leave exactly as it was."""
    out: dict[str, bytes | str] = {}
    for top, dirs, files in os.walk(path):
        for name in dirs + files:
            full = os.path.join(top, name)
            rel = os.path.relpath(full, path)
            if os.path.islink(full):
                out[rel] = "link:" + os.readlink(full)
            elif os.path.isfile(full):
                out[rel] = Path(full).read_bytes()
            else:
                out[rel] = "dir"
    return out


# ------------------------------------------------------------------------ CVE-2019-5736


def test_init_runs_from_a_sealed_memfd_not_the_installed_binary(bundle, pyrunc_cmd, container_id):
    """A created container's init is what a container process could reach through
    /proc/<pid>/exe: it must be a sealed memfd, never the host's pyrunc-init file."""
    from pyrunc._native import INIT_BINARY

    b = bundle(args=["true"])
    pyrunc_cmd("create", "-b", str(b), container_id, check=True)
    pid = init_pid(pyrunc_cmd, container_id)

    exe_link = os.readlink(f"/proc/{pid}/exe")
    assert exe_link.startswith("/memfd:pyrunc-init"), exe_link
    assert exe_link.endswith("(deleted)"), exe_link
    installed = os.stat(INIT_BINARY)
    running = os.stat(f"/proc/{pid}/exe")
    assert (running.st_dev, running.st_ino) != (installed.st_dev, installed.st_ino)
    # nothing of the installed file is mapped either
    maps = Path(f"/proc/{pid}/maps").read_text()
    assert INIT_BINARY not in maps

    fd = os.open(f"/proc/{pid}/exe", os.O_RDONLY)
    try:
        seals = fcntl.fcntl(fd, F_GET_SEALS)
    finally:
        os.close(fd)
    assert seals & F_SEAL_WRITE, f"seals {seals:#x} lack F_SEAL_WRITE"
    assert seals & F_SEAL_SEAL and seals & F_SEAL_SHRINK and seals & F_SEAL_GROW, f"seals {seals:#x}"

    # Even host root cannot change it: opening for writing is refused (busy text) or, on
    # kernels that allow the open, every write is refused by the seal.
    try:
        wfd = os.open(f"/proc/{pid}/exe", os.O_WRONLY)
    except OSError as e:
        assert e.errno in (errno.ETXTBSY, errno.EPERM, errno.EACCES), e
    else:
        try:
            with pytest.raises(OSError) as raised:
                os.write(wfd, b"\x7fELF overwritten")
            assert raised.value.errno == errno.EPERM
        finally:
            os.close(wfd)
    assert os.stat(INIT_BINARY).st_size == installed.st_size


def test_container_process_cannot_reach_the_waiting_init(bundle, pyrunc_cmd, container_id):
    """The attack from inside: a process exec'd into a created container (whose pid 1 is
    still pyrunc-init, waiting for start) tries to read, open and write /proc/1/exe.
    Container root has no CAP_SYS_PTRACE (runc's default set), so the non-dumpable init
    is out of its reach; the start afterwards still works."""
    b = bundle(args=["true"])
    pyrunc_cmd("create", "-b", str(b), container_id, check=True)
    probe = ("cat /proc/1/comm; readlink /proc/1/exe || echo NOLINK; "
             "cat /proc/1/exe > /dev/null 2>&1 && echo READ; "
             "(echo x >> /proc/1/exe) 2>/dev/null && echo WROTE; "
             "grep -c . /proc/1/environ 2>/dev/null || echo NOENV")
    result = pyrunc_cmd("exec", container_id, "sh", "-c", probe)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split()
    assert lines[0] == "pyrunc-init", result.stdout
    assert "NOLINK" in lines and "NOENV" in lines, result.stdout
    assert "READ" not in lines and "WROTE" not in lines, result.stdout
    pyrunc_cmd("start", container_id, check=True)


def _try_open_exe_as(uid: int, pid: int) -> int:
    """0 if a process with uid/gid `uid` can open /proc/<pid>/exe, else the errno."""
    child = os.fork()
    if child == 0:
        code = 0
        try:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            os.close(os.open(f"/proc/{pid}/exe", os.O_RDONLY))
        except OSError as e:
            code = e.errno or 255
        except BaseException:
            code = 255
        os._exit(code)
    _, status = os.waitpid(child, 0)
    return os.waitstatus_to_exitcode(status)


def test_init_is_not_dumpable_for_the_containers_own_uid(bundle, pyrunc_cmd, container_id, userns_rootfs):
    """With a user namespace the init runs as host uid 100000.  A dumpable process would
    let any other uid-100000 process (= container root) open /proc/<init>/exe; the
    non-dumpable init is owned root:root in /proc and refuses it."""
    def edit(config):
        config["root"] = {"path": userns_rootfs, "readonly": True}
        config["linux"]["namespaces"].append({"type": "user"})
        config["linux"]["uidMappings"] = ID_MAPPING
        config["linux"]["gidMappings"] = ID_MAPPING

    b = bundle(edit, args=["true"])
    pyrunc_cmd("create", "-b", str(b), container_id, check=True)
    pid = init_pid(pyrunc_cmd, container_id)

    status = Path(f"/proc/{pid}/status").read_text()
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    assert uid_line.split()[1:] == ["100000"] * 4, uid_line
    # the kernel gives the files of a non-dumpable process to root (task_dump_owner);
    # a dumpable one's belong to its euid
    for name in ("status", "exe", "mem", "environ"):
        owner = os.lstat(f"/proc/{pid}/{name}")
        assert (owner.st_uid, owner.st_gid) == (0, 0), f"/proc/{pid}/{name} owned by {owner.st_uid}: init is dumpable"
    assert _try_open_exe_as(100000, pid) in (errno.EACCES, errno.EPERM)

    # the control: an ordinary (dumpable) process of that uid owns its /proc files and
    # its peers may open its exe, so the checks above really depend on dumpability
    control = subprocess.Popen(["sleep", "30"], preexec_fn=lambda: (os.setgroups([]), os.setresgid(100000, 100000, 100000),
                                                                     os.setresuid(100000, 100000, 100000)))
    try:
        deadline = time.monotonic() + 5
        while os.lstat(f"/proc/{control.pid}/status").st_uid != 100000 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert os.lstat(f"/proc/{control.pid}/status").st_uid == 100000
        assert _try_open_exe_as(100000, control.pid) == 0
    finally:
        control.kill()
        control.wait()


def test_exec_process_runs_the_requested_binary_not_a_host_file(bundle, pyrunc_cmd, container_id):
    """`pyrunc exec` goes through the same memfd init; once it runs, the process's exe
    is the container's binary (resolved in the rootfs), never a host runtime file."""
    from pyrunc._native import INIT_BINARY

    b = bundle(args=["sleep", "30"])
    pyrunc_cmd("run", "-d", "-b", str(b), container_id, check=True)
    out = pyrunc_cmd("exec", container_id, "sh", "-c", "readlink /proc/self/exe; readlink /proc/$$/exe", check=True).stdout
    lines = out.split()
    assert lines and all(line == "/bin/busybox" for line in lines), out
    assert INIT_BINARY not in out


def test_exec_init_is_a_sealed_non_dumpable_memfd_too(bundle, pyrunc_cmd, state_root, container_id, userns_rootfs):
    """`exec` into a paused container: the new process joins the frozen cgroup while it
    is still pyrunc-init, which lets the test look at it before its execve."""
    from pyrunc._native import INIT_BINARY

    def edit(config):
        config["root"] = {"path": userns_rootfs, "readonly": True}
        config["linux"]["namespaces"].append({"type": "user"})
        config["linux"]["uidMappings"] = ID_MAPPING
        config["linux"]["gidMappings"] = ID_MAPPING

    b = bundle(edit, args=["sleep", "30"])
    pyrunc_cmd("run", "-d", "-b", str(b), container_id, check=True)
    first = set(json.loads(pyrunc_cmd("ps", "--format", "json", container_id, check=True).stdout))
    pyrunc_cmd("pause", container_id, check=True)
    execer = subprocess.Popen([pyrunc_binary(), "--root", str(state_root), "exec", "--ignore-paused", container_id,
                               "true"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        new: set[int] = set()
        while not new and time.monotonic() < deadline:
            time.sleep(0.02)
            new = set(json.loads(pyrunc_cmd("ps", "--format", "json", container_id, check=True).stdout)) - first
        assert new, "the exec'd process never joined the container's cgroup"
        pid = new.pop()
        assert Path(f"/proc/{pid}/comm").read_text().strip() == "pyrunc-init"
        assert os.readlink(f"/proc/{pid}/exe").startswith("/memfd:pyrunc-init")
        running, installed = os.stat(f"/proc/{pid}/exe"), os.stat(INIT_BINARY)
        assert (running.st_dev, running.st_ino) != (installed.st_dev, installed.st_ino)
        fd = os.open(f"/proc/{pid}/exe", os.O_RDONLY)
        try:
            assert fcntl.fcntl(fd, F_GET_SEALS) & F_SEAL_WRITE
        finally:
            os.close(fd)
        exe = os.lstat(f"/proc/{pid}/exe")
        assert (exe.st_uid, exe.st_gid) == (0, 0), "the exec'd init is dumpable"
        assert _try_open_exe_as(100000, pid) in (errno.EACCES, errno.EPERM)
    finally:
        pyrunc_cmd("resume", container_id)
        try:
            execer.wait(timeout=10)
        except subprocess.TimeoutExpired:
            execer.kill()
            execer.wait()
    assert execer.returncode == 0


# ------------------------------------------------------------------------ CVE-2024-21626


def _popen_pyrunc(state_root: Path, *args: str, leak_dir: Path | None = None, cwd=None, timeout: float = 30):
    """Run pyrunc as a careless caller would: with directory fds of the host's / and of
    `leak_dir` on 3..9, inheritable (dup2'd in the child only: the test process's own
    3..9 belong to pytest)."""
    def leak() -> None:
        for target in range(3, 10):
            path = "/" if target % 2 or leak_dir is None else str(leak_dir)
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
            if fd != target:
                os.dup2(fd, target, inheritable=True)
                os.close(fd)
            else:
                os.set_inheritable(fd, True)

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.run([pyrunc_binary(), "--root", str(state_root), *args], stdin=subprocess.DEVNULL,
                              stdout=out, stderr=err, close_fds=False, preexec_fn=leak, cwd=cwd,
                              timeout=timeout)
        out.seek(0)
        err.seek(0)
        return proc.returncode, out.read().decode(), err.read().decode()


def _fd_listing(text: str) -> dict[int, str]:
    """fd -> target from `ls -l /proc/self/fd` (busybox: `... 3 -> /proc/9/fd`)."""
    found = {}
    for line in text.splitlines():
        if "->" not in line:
            continue
        left, _, target = line.partition("->")
        found[int(left.split()[-1])] = target.strip()
    return found


def test_no_inherited_fd_reaches_the_container(bundle, state_root, container_id, tmp_path):
    b = bundle(args=["ls", "-l", "/proc/self/fd"])
    host_dir = tmp_path / "host-secret-dir"
    host_dir.mkdir()
    code, out, err = _popen_pyrunc(state_root, "run", "-b", str(b), container_id, leak_dir=host_dir, cwd=str(tmp_path))
    assert code == 0, err
    listing = _fd_listing(out)
    # 0-2 are the caller's stdio (as runc); ls's own directory fd is /proc/<ls>/fd
    extra = {fd: t for fd, t in listing.items() if fd > 2}
    assert all(t.startswith("/proc/") and t.endswith("/fd") for t in extra.values()), listing
    assert len(extra) <= 1, listing
    assert "host-secret-dir" not in out


def test_exec_gets_no_inherited_fd(bundle, state_root, pyrunc_cmd, container_id, tmp_path):
    b = bundle(args=["sleep", "30"])
    pyrunc_cmd("run", "-d", "-b", str(b), container_id, check=True)
    host_dir = tmp_path / "host-secret-dir"
    host_dir.mkdir()
    code, out, err = _popen_pyrunc(state_root, "exec", container_id, "ls", "-l", "/proc/self/fd",
                                   leak_dir=host_dir, cwd=str(tmp_path))
    assert code == 0, err
    listing = _fd_listing(out)
    extra = {fd: t for fd, t in listing.items() if fd > 2}
    assert all(t.startswith("/proc/") and t.endswith("/fd") for t in extra.values()), listing
    assert len(extra) <= 1, listing


@pytest.mark.parametrize("fd", [3, 4, 7])
def test_cwd_through_a_leaked_fd_magic_link_does_not_escape(fd, bundle, state_root, container_id, tmp_path):
    """The CVE-2024-21626 exploit itself: process.cwd "/proc/self/fd/N" where N is a
    directory fd the runtime (or its caller) leaked into the init.  The chdir must not
    land outside the rootfs: either it fails, or the fds were gone before it."""
    host_dir = tmp_path / "host-secret-dir"
    host_dir.mkdir()
    (host_dir / "HOST_SECRET_MARKER").write_text("x")

    def edit(config):
        config["process"]["cwd"] = f"/proc/self/fd/{fd}"

    b = bundle(edit, args=["sh", "-c", "pwd; ls -a; ls -a ../../../.."])
    code, out, err = _popen_pyrunc(state_root, "run", "-b", str(b), container_id, leak_dir=host_dir)
    for host_only in ("HOST_SECRET_MARKER", "work", "boot"):
        assert host_only not in out.split(), f"cwd escaped to the host through fd {fd}:\n{out}"
    if code != 0:
        assert "cwd" in err, err
        return
    assert "bin" in out.split(), out


def test_preserve_fds_never_hands_over_the_runtimes_own_fds(bundle, pyrunc_cmd, container_id, state_root):
    """`--preserve-fds 2` from a caller that has nothing open at 3 and 4: whatever the
    runtime itself opened there (its state directory lock, say) must not become the
    container's.  Leaking it hands the container a host directory fd (the CVE-2024-21626
    primitive) and, for the lock, makes start and delete wait forever.  Such a call is
    refused (runc's check, issue 13 item 29), before the runtime opens anything; with
    the caller's own fds at 3 and 4, those are what the container gets."""
    b = bundle(args=["true"])
    result = pyrunc_cmd("create", "--preserve-fds", "2", "-b", str(b), container_id, timeout=20)
    assert result.returncode == 1
    assert "unable to stat preserved-fd 0 (of 2): stat /proc/self/fd/3" in result.stderr
    assert not [e for e in os.listdir(state_root) if not e.startswith(".")]
    command = [pyrunc_binary(), "--root", str(state_root), "create", "--preserve-fds", "2",
               "-b", str(b), container_id]
    # the shell opens the caller's fds 3 and 4
    # (through files: the init keeps the caller's stdio until start)
    created = run_with_files(["sh", "-c", 'exec "$@" 3</dev/null 4</dev/zero', "sh", *command],
                             timeout=20)
    assert created.returncode == 0, created.stderr
    pid = init_pid(pyrunc_cmd, container_id)
    try:
        targets = {}
        cloexec = set()
        for entry in os.listdir(f"/proc/{pid}/fd"):
            try:
                targets[int(entry)] = os.readlink(f"/proc/{pid}/fd/{entry}")
                with open(f"/proc/{pid}/fdinfo/{entry}") as f:
                    flags = next(line for line in f if line.startswith("flags:")).split()[1]
                if int(flags, 8) & os.O_CLOEXEC:
                    cloexec.add(int(entry))
            except OSError:
                pass
    finally:
        # the init may hold the container's lock: kill it so that cleanup can delete
        os.kill(pid, 9)
    # the waiting init's own handle of the exec fifo (runc's init holds it too) is the
    # runtime's, close-on-exec: never the container's
    leaked = {fd: t for fd, t in targets.items() if t.startswith(str(state_root))
              and not (t.endswith("/exec.fifo") and fd in cloexec)}
    assert not leaked, f"runtime fds passed to the container as preserved fds: {leaked}"
    assert (targets.get(3), targets.get(4)) == ("/dev/null", "/dev/zero"), targets


def _writable_root(config: dict) -> None:
    config["root"]["readonly"] = False


CWD_PROBE = "pwd; readlink /proc/self/cwd; ls -a; cd ..; ls -a"


@pytest.mark.parametrize("cwd", ["/../../../..", "/../../../../tmp/../..", "/escape-abs", "/escape-rel"])
def test_process_cwd_resolves_inside_the_rootfs(cwd, bundle, pyrunc_cmd, container_id, tmp_path):
    b = bundle(_writable_root, args=["sh", "-c", CWD_PROBE], private_rootfs=True)
    rootfs = b / "rootfs"
    (rootfs / "IN_ROOTFS_MARKER").write_text("x")
    # symlinks an image can ship: absolute and relative, both aiming far above /
    os.symlink(str(tmp_path), rootfs / "escape-abs")
    os.symlink("../../../../../../../../..", rootfs / "escape-rel")
    config = json.loads((b / "config.json").read_text())
    config["process"]["cwd"] = cwd
    (b / "config.json").write_text(json.dumps(config))
    result = pyrunc_cmd("run", "-b", str(b), container_id)
    if cwd == "/escape-abs":
        # the absolute link points at a host path that does not exist inside the rootfs:
        # refusing to start is the correct outcome (never a chdir on the host)
        if result.returncode != 0:
            assert "cwd" in result.stderr, result.stderr
            return
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split()
    assert lines[0] == "/" or lines[0].startswith("/" + str(tmp_path).strip("/")), result.stdout
    assert lines[1] == lines[0], result.stdout
    assert "IN_ROOTFS_MARKER" in lines or lines[0] != "/", result.stdout
    # what the host's / (and the host's tmp_path, holding the bundles) has, the rootfs not
    for host_only in ("work", "boot", "bundles"):
        assert host_only not in lines, f"host / listed from cwd {cwd!r}: {result.stdout}"


def test_exec_cwd_resolves_inside_the_rootfs(bundle, pyrunc_cmd, container_id):
    b = bundle(_writable_root, args=["sleep", "30"], private_rootfs=True)
    (b / "rootfs" / "IN_ROOTFS_MARKER").write_text("x")
    pyrunc_cmd("run", "-d", "-b", str(b), container_id, check=True)
    result = pyrunc_cmd("exec", "--cwd", "/../../../..", container_id, "sh", "-c", CWD_PROBE)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split()
    assert lines[:2] == ["/", "/"], result.stdout
    assert "IN_ROOTFS_MARKER" in lines and "work" not in lines, result.stdout


def test_runtime_cwd_on_the_host_does_not_leak(bundle, state_root, container_id, tmp_path):
    """The caller's cwd (a host dir) is not what the container starts in or can reach
    through /proc/self/cwd or /proc/1/cwd."""
    host_dir = tmp_path / "caller-cwd"
    host_dir.mkdir()
    (host_dir / "HOST_CWD_MARKER").write_text("x")
    b = bundle(args=["sh", "-c", "readlink /proc/self/cwd; readlink /proc/1/cwd; ls /proc/1/cwd/"])
    code, out, err = _popen_pyrunc(state_root, "run", "-b", str(b), container_id, cwd=str(host_dir))
    assert code == 0, err
    assert out.split()[:2] == ["/", "/"], out
    assert "HOST_CWD_MARKER" not in out


# --------------------------------------------- CVE-2021-30465 and CVE-2025-31133/52565/52881


@pytest.mark.parametrize("form", ["absolute", "dotdot"])
def test_mount_through_a_symlinked_parent_stays_in_the_rootfs(form, bundle, pyrunc_cmd, container_id, tmp_path):
    host = tmp_path / "host-target"
    host.mkdir()
    (host / "keep").write_text("host file")
    before = tree_snapshot(host)

    def edit(config):
        config["root"]["readonly"] = False
        config["mounts"].append({"destination": "/evil/sub", "type": "tmpfs", "source": "tmpfs",
                                 "options": ["size=64k"]})

    b = bundle(edit, args=["sh", "-c", "stat -f -c %T /evil/sub; touch /evil/sub/written && echo wrote"],
               private_rootfs=True)
    rootfs = b / "rootfs"
    link = str(host) if form == "absolute" else "../" * 12 + str(host).lstrip("/")
    os.symlink(link, rootfs / "evil")
    result = pyrunc_cmd("run", "-b", str(b), container_id)
    assert tree_snapshot(host) == before, "the mount or its mkdir reached the host path"
    if result.returncode != 0:
        # refusing is safe too, but it must say which mount
        assert "/evil/sub" in result.stderr, result.stderr
        return
    assert result.stdout.split() == ["tmpfs", "wrote"], result.stdout
    # the symlink was followed inside the rootfs
    assert (rootfs / str(host).lstrip("/") / "sub").is_dir()


@pytest.mark.parametrize("target", ["/etc/passwd", "host-file", "../../../../../../../etc/shadow"])
def test_symlinked_dev_null_never_becomes_a_mask(target, bundle, pyrunc_cmd, container_id, tmp_path):
    """CVE-2025-31133: masking binds /dev/null over the masked path; a /dev/null that is
    a symlink must not make the mask a bind of the link's target."""
    host_file = tmp_path / "host-secret"
    host_file.write_text("HOST-SECRET\n")
    link = str(host_file) if target == "host-file" else target

    def edit(config):
        config["root"]["readonly"] = False
        without_dev_mount(config)
        config["linux"]["maskedPaths"] = ["/proc/kcore", "/proc/cpuinfo"]

    b = bundle(edit, args=["sh", "-c", "head -c 200 /proc/cpuinfo; echo; head -c 100 /proc/kcore | head -c 20 | od -c | head -2"],
               private_rootfs=True)
    rootfs = b / "rootfs"
    (rootfs / "dev").mkdir(exist_ok=True)
    null = rootfs / "dev" / "null"
    if null.exists() or null.is_symlink():
        null.unlink()
    os.symlink(link, null)
    result = pyrunc_cmd("run", "-b", str(b), container_id)
    assert host_file.read_text() == "HOST-SECRET\n"
    if result.returncode != 0:
        assert "mask" in result.stderr and "/proc/" in result.stderr, result.stderr
        return
    assert "root:x:0:0" not in result.stdout, "the mask bound the symlink's target"
    assert "HOST-SECRET" not in result.stdout
    assert "processor" not in result.stdout, "/proc/cpuinfo was not masked at all"


def test_without_a_dev_mount_the_default_devices_are_created_and_masks_work(bundle, pyrunc_cmd, container_id):
    """runc creates its default devices in the image's /dev when no /dev is mounted
    (needsSetupDev), so masks have a real /dev/null to bind; the container must start
    with /proc/keys masked and /dev/null the 1:3 char device."""
    def edit(config):
        config["root"]["readonly"] = False
        without_dev_mount(config)

    # /proc/keys: masked by the default spec and present on this kernel (/proc/kcore is not)
    b = bundle(edit, args=["sh", "-c", "stat -c '%F %t:%T' /dev/null; wc -c < /proc/keys"], private_rootfs=True)
    result = pyrunc_cmd("run", "-b", str(b), container_id)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["character", "special", "file", "1:3", "0"], result.stdout


@pytest.mark.parametrize("target", ["/etc/passwd", "host-file"])
def test_symlinked_dev_console_is_not_bound_through(target, bundle, pyrunc_cmd, container_id, tmp_path):
    """CVE-2025-52565: the pty is bound over /dev/console; a symlinked /dev/console must
    not turn that into a bind over the link's target."""
    (tmp_path / "host").mkdir()
    host_file = tmp_path / "host" / "host-console-target"
    host_file.write_text("HOST-CONSOLE\n")
    link = str(host_file) if target == "host-file" else target

    def edit(config):
        config["root"]["readonly"] = False
        config["process"]["terminal"] = True
        # devpts must stay for the pty; only the /dev tmpfs goes.  No file masks: they
        # need a /dev/null, and this image has none (see the /dev/null test)
        config["mounts"] = [m for m in config["mounts"] if m["destination"] != "/dev"]
        config["linux"]["maskedPaths"] = [p for p in config["linux"]["maskedPaths"] if p in ("/proc/acpi", "/proc/scsi", "/sys/firmware")]

    b = bundle(edit, args=["sh", "-c", "head -1 /etc/passwd; stat -c %F /etc/passwd"], private_rootfs=True)
    rootfs = b / "rootfs"
    console = rootfs / "dev" / "console"
    if console.exists() or console.is_symlink():
        console.unlink()
    os.symlink(link, console)
    etc_before, host_before = tree_snapshot(rootfs / "etc"), tree_snapshot(tmp_path / "host")
    result = pyrunc_cmd("run", "-b", str(b), container_id)
    assert_console_refused(result)
    assert host_file.read_text() == "HOST-CONSOLE\n"
    assert tree_snapshot(rootfs / "etc") == etc_before
    assert tree_snapshot(tmp_path / "host") == host_before
    assert os.readlink(console) == link
    # nothing was created where a dangling link points (inside the rootfs)
    assert not os.path.lexists(rootfs / str(host_file).lstrip("/"))


def assert_console_refused(result) -> None:
    """runc 1.4's answer to CVE-2025-52565: the console is never bound through a symlink
    (runc 1.1.5 binds it onto the link's target); one error line naming the reason."""
    assert result.returncode == 1, result.stdout
    assert "/dev/console is a symlink in the rootfs" in result.stderr, result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr


# runs `sh -c SCRIPT` in the mount namespace of the container being created (a hook of
# the runtime's namespaces, so whatever a hook there may do during create): the attacker
# racing the runtime between the mounts and the console or sysctl set-up
IN_CONTAINER_MOUNT_NS = (
    "import json, subprocess, sys; pid = json.load(sys.stdin)['pid'];"
    " subprocess.run(['/usr/bin/nsenter', '-t', str(pid), *sys.argv[1].split(), '--', '/bin/sh', '-c', sys.argv[2]],"
    " check=True)"
)


def hook_in_container_mount_ns(script: str, userns: bool = False) -> dict:
    """(with userns: as the container's root, which alone may create files in its /dev)"""
    if not os.path.exists("/usr/bin/nsenter"):
        pytest.skip("/usr/bin/nsenter (util-linux) is missing")
    return {"path": "/usr/bin/python3",
            "args": ["python3", "-c", IN_CONTAINER_MOUNT_NS, "-m -U" if userns else "-m", script]}


@pytest.mark.parametrize("userns", [False, True], ids=["root", "userns"])
@pytest.mark.parametrize("target", ["/etc/passwd", "host-file"])
def test_dev_console_symlink_planted_during_create_is_refused(target, userns, bundle, pyrunc_cmd, container_id,
                                                              tmp_path, userns_rootfs):
    """CVE-2025-52565, the race: a createRuntime hook plants /dev/console as a symlink in
    the container's /dev tmpfs after the mounts; the console bind must not follow it."""
    (tmp_path / "host").mkdir()
    host_file = tmp_path / "host" / "host-console-target"
    host_file.write_text("HOST-CONSOLE\n")
    link = str(host_file) if target == "host-file" else target

    def edit(config):
        config["process"]["terminal"] = True
        rootfs = os.path.join(bundle.directory, "planted", "rootfs")
        if userns:
            rootfs = userns_rootfs
            config["root"] = {"path": rootfs, "readonly": True}
            config["linux"]["namespaces"].append({"type": "user"})
            config["linux"]["uidMappings"] = ID_MAPPING
            config["linux"]["gidMappings"] = ID_MAPPING
        config["hooks"] = {"createRuntime": [hook_in_container_mount_ns(f"ln -s {link} {rootfs}/dev/console",
                                                                        userns)]}

    b = bundle(edit, args=["cat", "/etc/passwd"], private_rootfs=not userns, name="planted")
    rootfs = Path(userns_rootfs) if userns else b / "rootfs"
    etc_before, host_before = tree_snapshot(rootfs / "etc"), tree_snapshot(tmp_path / "host")
    result = pyrunc_cmd("run", "-b", str(b), container_id)
    assert_console_refused(result)
    assert host_file.read_text() == "HOST-CONSOLE\n"
    assert tree_snapshot(rootfs / "etc") == etc_before
    assert tree_snapshot(tmp_path / "host") == host_before


@pytest.mark.parametrize("kind", ["plain-dir", "symlink-abs", "symlink-dotdot"])
def test_sysctl_refuses_a_proc_that_is_not_procfs(kind, bundle, pyrunc_cmd, container_id, tmp_path):
    """CVE-2025-52881 class: sysctl writes go to /proc/sys only when /proc really is
    procfs; a rootfs with a planted directory or symlink at /proc gets an error."""
    fake = tmp_path / "fakeproc"
    (fake / "sys" / "kernel").mkdir(parents=True)
    (fake / "sys" / "kernel" / "domainname").write_text("untouched\n")
    before = tree_snapshot(fake)

    def edit(config):
        config["root"]["readonly"] = False
        config["mounts"] = [m for m in config["mounts"] if m["destination"] != "/proc"]
        config["linux"]["sysctl"] = {"kernel.domainname": "attacker"}

    b = bundle(edit, args=["true"], private_rootfs=True)
    rootfs = b / "rootfs"
    shutil.rmtree(rootfs / "proc", ignore_errors=True)
    if kind == "plain-dir":
        (rootfs / "proc" / "sys" / "kernel").mkdir(parents=True)
        (rootfs / "proc" / "sys" / "kernel" / "domainname").write_text("untouched\n")
    elif kind == "symlink-abs":
        os.symlink(str(fake), rootfs / "proc")
    else:
        os.symlink("../" * 12 + str(fake).lstrip("/"), rootfs / "proc")
    host_domainname = Path("/proc/sys/kernel/domainname").read_text()

    result = pyrunc_cmd("run", "-b", str(b), container_id)
    assert result.returncode != 0, "sysctl was written into something that is not procfs"
    assert "sysctl kernel.domainname" in result.stderr, result.stderr
    assert tree_snapshot(fake) == before
    if kind == "plain-dir":
        assert (rootfs / "proc" / "sys" / "kernel" / "domainname").read_text() == "untouched\n"
    assert Path("/proc/sys/kernel/domainname").read_text() == host_domainname


# (the image symlink needs a private rootfs: not with the user namespace's shared one)
@pytest.mark.parametrize("how, userns", [("config", False), ("config", True), ("config-through-symlink", False),
                                         ("hook", False), ("hook", True)],
                         ids=["config-root", "config-userns", "config-through-symlink-root", "hook-root",
                              "hook-userns"])
def test_sysctl_never_writes_a_file_mounted_over_proc_sys(how, userns, bundle, pyrunc_cmd, container_id, tmp_path,
                                                          userns_rootfs):
    """CVE-2025-52881: a host file bind-mounted over /proc/sys/kernel/domainname must not
    receive the sysctl's value.  Bound by the config (also through an image symlink
    that leads the destination into /proc): the bind is refused, as runc's
    checkProcMount does, on where the destination resolved.  Bound by a hook racing the
    runtime: the write is refused because the file is not procfs's own (runc 1.4 checks
    the same; runc 1.1.5 writes into the host file)."""
    planted = tmp_path / "planted-domainname"
    planted.write_text("HOST-FILE\n")
    host_domainname = Path("/proc/sys/kernel/domainname").read_text()

    def edit(config):
        config["linux"]["sysctl"] = {"kernel.domainname": "attacker"}
        if userns:
            config["root"] = {"path": userns_rootfs, "readonly": True}
            config["linux"]["namespaces"].append({"type": "user"})
            config["linux"]["uidMappings"] = ID_MAPPING
            config["linux"]["gidMappings"] = ID_MAPPING
        if how == "config":
            config["mounts"].append({"destination": "/proc/sys/kernel/domainname", "type": "bind",
                                     "source": str(planted), "options": ["bind"]})
        elif how == "config-through-symlink":
            config["mounts"].append({"destination": "/etc/domainname", "type": "bind",
                                     "source": str(planted), "options": ["bind"]})
        else:
            rootfs = config["root"]["path"]
            config["hooks"] = {"createRuntime": [hook_in_container_mount_ns(
                f"mount --bind {planted} {rootfs}/proc/sys/kernel/domainname")]}

    b = bundle(edit, args=["true"], private_rootfs=how == "config-through-symlink")
    if how == "config-through-symlink":
        os.symlink("../proc/sys/kernel/domainname", b / "rootfs" / "etc" / "domainname")
    result = pyrunc_cmd("run", "-b", str(b), container_id)
    assert planted.read_text() == "HOST-FILE\n"
    assert Path("/proc/sys/kernel/domainname").read_text() == host_domainname
    assert result.returncode == 1, "the sysctl went into a file mounted over procfs"
    if how == "hook":
        assert ("write sysctl kernel.domainname: /proc/sys/kernel/domainname is not the kernel's procfs file"
                in result.stderr), result.stderr
    else:
        assert "cannot be mounted because it is inside /proc" in result.stderr, result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr


def test_sysctl_still_works_on_a_real_proc(bundle, pyrunc_cmd, container_id):
    """The control for the test above: same config with procfs mounted writes it."""
    def edit(config):
        config["linux"]["sysctl"] = {"kernel.domainname": "fromsysctl"}

    b = bundle(edit, args=["cat", "/proc/sys/kernel/domainname"])
    assert run_ok(pyrunc_cmd, b, container_id).strip() == "fromsysctl"


# ------------------------------------------------------------------ no mount namespace


def _mountinfo() -> list[str]:
    # mount ids and fields only: the list must be the same set of mounts
    return sorted(Path("/proc/self/mountinfo").read_text().splitlines())


def test_without_a_mount_namespace_nothing_is_mounted(bundle, pyrunc_cmd, container_id):
    """The container shares our mount namespace: every mount it made would show up in
    /proc/self/mountinfo here.  It must only be chrooted into its rootfs."""
    def edit(config):
        config["root"]["readonly"] = True
        config["linux"]["namespaces"] = [n for n in config["linux"]["namespaces"] if n["type"] != "mount"]
        # runc refuses these without a mount namespace too
        config["linux"]["maskedPaths"] = []
        config["linux"]["readonlyPaths"] = []
        config["mounts"].append({"destination": "/mnt", "type": "tmpfs", "source": "tmpfs"})

    b = bundle(edit, args=["sh", "-c", "ls /; echo ---; ls /proc | head -3; echo ---; readlink /proc/self/ns/mnt"])
    before = _mountinfo()
    pyrunc_cmd("create", "-b", str(b), container_id, check=True)
    pid = init_pid(pyrunc_cmd, container_id)
    during = _mountinfo()
    root_link = os.readlink(f"/proc/{pid}/root")
    assert os.readlink(f"/proc/{pid}/ns/mnt") == os.readlink("/proc/self/ns/mnt")
    pyrunc_cmd("start", container_id, check=True)
    assert during == before, "mounts appeared in the shared mount namespace:\n" + "\n".join(
        sorted(set(during) - set(before)))
    config = json.loads((b / "config.json").read_text())
    assert root_link == os.path.realpath(config["root"]["path"])
    assert _mountinfo() == before


# ------------------------------------------------------------------------ LSM fields


def _lsm_on(name: str) -> bool:
    from pyrunc import lsm
    return lsm.apparmor_enabled() if name == "apparmor" else lsm.selinux_enabled()


@pytest.mark.parametrize("field, where, message", [
    ("apparmorProfile", "process", 'apparmor profile "pyrunc-test" requested but apparmor is not enabled on this host'),
    ("selinuxLabel", "process", 'selinux label "pyrunc-test" requested but selinux is not enabled on this host'),
    ("mountLabel", "linux", 'selinux mount label "pyrunc-test" requested but selinux is not enabled on this host'),
])
def test_lsm_fields_are_refused_where_the_lsm_is_off(field, where, message, bundle, pyrunc_cmd, container_id,
                                                     state_root):
    """A profile or label that cannot be applied must stop the container, never let it
    run unconfined."""
    lsm_name = "apparmor" if field == "apparmorProfile" else "selinux"
    if _lsm_on(lsm_name):
        pytest.skip(f"{lsm_name} is enabled on this host: the refusal under test is for hosts without it")

    def edit(config):
        config[where][field] = "pyrunc-test"

    result = pyrunc_cmd("create", "-b", str(bundle(edit)), container_id)
    assert result.returncode == 1
    # the log line is logfmt: quotes inside msg="..." are escaped
    assert message.replace('"', '\\"') in result.stderr, result.stderr
    assert not [e for e in os.listdir(state_root) if not e.startswith(".")], "a refused create left state"


@pytest.mark.parametrize("flag, message", [
    ("--apparmor", 'apparmor profile "pyrunc-test" requested but apparmor is not enabled on this host'),
    ("--process-label", 'selinux label "pyrunc-test" requested but selinux is not enabled on this host'),
])
def test_exec_lsm_flags_are_refused_where_the_lsm_is_off(flag, message, bundle, pyrunc_cmd, container_id):
    lsm_name = "apparmor" if flag == "--apparmor" else "selinux"
    if _lsm_on(lsm_name):
        pytest.skip(f"{lsm_name} is enabled on this host: the refusal under test is for hosts without it")
    pyrunc_cmd("run", "-d", "-b", str(bundle(args=["sleep", "30"])), container_id, check=True)
    result = pyrunc_cmd("exec", flag, "pyrunc-test", container_id, "true")
    assert result.returncode == 255  # runc exec's failures (issue 13, item 24)
    # the log line is logfmt: quotes inside msg="..." are escaped
    assert message.replace('"', '\\"') in result.stderr, result.stderr
