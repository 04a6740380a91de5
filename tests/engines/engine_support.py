"""Helpers and fixtures for the engine tests: real containerd, dockerd and podman,
started by the tests themselves, private to this pytest process, with pyrunc (and runc,
the control) as their runtime. tests/engines/conftest.py re-exports the fixtures; test
modules import the helpers from here (a unique module name: a second `conftest` module
would shadow tests/conftest.py).

Privacy: the pytest process already runs in its own mount namespace (tests/conftest.py),
so the tmpfs mounted here over the host-global paths the engines insist on
(/run/containerd: shim sockets, FIFOs, the shim's runtime root; /run/runc and /run/pyrunc:
podman's runtimes use their default roots; /run/docker: docker's exec roots; /etc/docker:
dockerd's key.json) are seen only by this process and its children. Every daemon gets its
own root, state dir and socket under a short /tmp/pe-* dir (sockets must fit in sun_path),
dies with pytest (PR_SET_PDEATHSIG) if the teardown never runs, and every container
cgroup goes beneath engine_cgroup_parent, a path beneath this process's own cgroup in
every hierarchy, checked empty after each test and removed at the end.

Fixture API:

    engine_rootfs_tar      session: path of a tar of the busybox rootfs (one layer)
    engine_docker_archive  session: the same as a `docker save` archive (for ctr import)
    engine_cgroup_parent   session: an absolute cgroupsPath parent beneath our cgroups
    private_run_dirs       session: the tmpfs mounts above
    containerd_engine      module: a started containerd + `ctr` runner (CtrEngine)
    docker_engine          module: a started dockerd (own containerd) + `docker` runner
    podman_engine          module: podman with private storage and containers.conf
    runtime                "runc" or "pyrunc" (parametrized)
    engine_name            a fresh container name

Helpers: run_command, wait_until, started_docker (a second dockerd), state_dirs,
assert_cgroups_empty, PROBE_SCRIPT + probe_differences (compare what a container's
process sees under runc and pyrunc).
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Callable, Iterator, Optional

import pytest

from mountinfo import mount, umount
from support import (assert_succeeded, build_docker_archive, cgroup_dirs_below,
                     cgroup_parent_below_own, pyrunc_binary, remove_cgroup_tree, run_with_files,
                     tar_tree)

RUNC_BINARY = "/usr/sbin/runc"
CONTAINERD = "/usr/bin/containerd"
CTR = "/usr/bin/ctr"
DOCKERD = "/usr/sbin/dockerd"
# /usr/local/bin/docker on these machines is an unrelated newer client: use Debian's.
DOCKER = "/usr/bin/docker"
PODMAN = "/usr/bin/podman"
CONMON = "/usr/bin/conmon"

IMAGE_REF = "docker.io/library/pyrunc-busybox:latest"
IMAGE_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

RUNTIMES = ["runc", "pyrunc"]

_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def _terminate_with_parent() -> None:
    """preexec_fn of the daemons: SIGTERM when pytest dies without its teardown (killed,
    SIGPIPE), so no dockerd/containerd outlives the session."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def require(*binaries: str) -> None:
    missing = [b for b in binaries if not os.access(b, os.X_OK)]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (./setup.sh installs them)")


def run_command(
    command: list[str],
    *,
    input: Optional[str] = None,
    timeout: float = 60,
    env: Optional[dict] = None,
    check: bool = True,
) -> subprocess.CompletedProcess:
    """Run a client command; stdout/stderr go to files, never pipes, because a detached
    container or a daemon child may hold them open."""
    try:
        result = run_with_files(command, input=input, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as expired:
        raise AssertionError(
            f"{' '.join(command)}: timed out after {timeout}s\n"
            f"stdout: {expired.output}\nstderr: {expired.stderr}"
        )
    if check:
        assert_succeeded(result)
    return result


def import_image(cli: Callable[..., subprocess.CompletedProcess], rootfs_tar: Path) -> None:
    """`docker import` or `podman import` (the same words for both) of the rootfs tar as
    IMAGE_REF, with sh as its command."""
    cli("import", "--change", "CMD [\"sh\"]", "--change", f"ENV {IMAGE_PATH}",
        str(rootfs_tar), IMAGE_REF, timeout=120)


def remove_left_containers(cli: Callable[..., subprocess.CompletedProcess], engine: str) -> list[str]:
    """`rm -f` every container `ps -a` of a docker or podman client still lists; the
    problem to report when there was one."""
    left = cli("ps", "-aq", check=False).stdout.split()
    if not left:
        return []
    cli("rm", "-f", *left, check=False)
    return [f"{engine} containers left: {left}"]


def wait_until(predicate, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# ---------------------------------------------------------------------------------------
# The image: one layer, the busybox rootfs of bundles/build_rootfs.py


@pytest.fixture(scope="session")
def engine_rootfs_tar(tmp_path_factory, rootfs_builder) -> Path:
    if not os.path.exists("/bin/busybox"):
        pytest.fail("/bin/busybox is missing: run ./setup.sh (installs busybox-static)")
    directory = tmp_path_factory.mktemp("engine-image")
    rootfs = directory / "rootfs"
    rootfs_builder.build_rootfs(str(rootfs))
    layer = directory / "rootfs.tar"
    tar_tree(rootfs, layer)
    return layer


@pytest.fixture(scope="session")
def engine_docker_archive(engine_rootfs_tar) -> Path:
    archive = engine_rootfs_tar.parent / "image-docker-archive.tar"
    build_docker_archive(engine_rootfs_tar, archive, IMAGE_REF,
                         {"Env": [IMAGE_PATH], "Cmd": ["sh"], "WorkingDir": "/"})
    return archive


# ---------------------------------------------------------------------------------------
# Private /run directories and the cgroup parent


@pytest.fixture(scope="session")
def private_run_dirs() -> Iterator[None]:
    """tmpfs over the fixed /run paths the engines use, in our private mount namespace."""
    if os.environ.get("PYRUNC_TEST_PRIVATE_MNTNS") != os.readlink("/proc/self/ns/mnt"):
        pytest.skip("the engine tests need the private mount namespace of tests/conftest.py")
    mounted, created = [], []
    try:
        # /etc/docker: dockerd 20.10 writes its trust key there whatever the flags say.
        for target in ("/run/containerd", "/run/runc", "/run/pyrunc", "/run/docker", "/etc/docker"):
            if not os.path.isdir(target):
                os.makedirs(target, mode=0o711)
                created.append(target)
            mount("tmpfs", target, "tmpfs", 0, "mode=0711")
            mounted.append(target)
        yield
    finally:
        for target in reversed(mounted):
            try:
                umount(target)
            except OSError:
                pass
        for target in reversed(created):
            try:
                os.rmdir(target)
            except OSError:
                pass


@pytest.fixture(scope="session")
def engine_cgroup_parent() -> Iterator[str]:
    """An absolute cgroup parent beneath our own cgroups for the engines."""
    yield from cgroup_parent_below_own(f"pyrunc-engines-{os.getpid()}")


def assert_cgroups_empty(parent: str) -> None:
    """No container cgroup is left beneath `parent` (the engine's cgroup parent); what is
    left is removed so one failure does not cascade."""
    def leftovers() -> list[str]:
        # conmon's own cgroup (podman's <parent>/conmon) is podman's, not a container's.
        return [d for d in cgroup_dirs_below(parent) if os.path.basename(d) != "conmon"]

    deadline = time.monotonic() + 10
    left = leftovers()
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = leftovers()
    for directory in left:
        remove_cgroup_tree(directory)
    assert not left, f"container cgroups left: {left}"


def processes_mentioning(marker: str) -> list[str]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if marker.encode() in cmdline:
            words = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
            found.append(f"{entry} ({words})")
    return found


def mounts_below(directory: str) -> list[str]:
    """Mount points strictly beneath `directory`."""
    prefix = directory.rstrip("/") + "/"
    return [
        line.split()[4]
        for line in open("/proc/self/mountinfo").read().splitlines()
        if line.split()[4].startswith(prefix)
    ]


def _unmount_below(directory: str) -> None:
    for target in sorted(mounts_below(directory), key=len, reverse=True):
        try:
            umount(target)
        except OSError:
            pass


def stop_daemon(process: subprocess.Popen, name: str, timeout: float = 30) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)
        raise AssertionError(f"{name} did not stop within {timeout}s of SIGTERM")


def state_dirs(root: str) -> list[str]:
    if not os.path.isdir(root):
        return []
    # pyrunc keeps a compiled-seccomp cache in <root>/.pyrunc-cache: not a container.
    return sorted(
        e for e in os.listdir(root)
        if not e.startswith(".") and os.path.isdir(os.path.join(root, e))
    )


# ---------------------------------------------------------------------------------------
# containerd


def containerd_config(directory: Path) -> str:
    # Only what ctr/docker need: no CRI, and no plugin writing outside `directory`
    # (opt would create /opt/containerd; the other snapshotters probe host paths).
    return f"""version = 2
root = "{directory}/root"
state = "{directory}/state"
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.internal.v1.opt",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
]

[grpc]
  address = "{directory}/containerd.sock"

[ttrpc]
  address = "{directory}/containerd.sock.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""
"""


class Containerd:
    """A containerd process with its own root, state and socket under `directory`."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.socket = str(directory / "containerd.sock")
        self.log_path = directory / "containerd.log"
        self.process: Optional[subprocess.Popen] = None

    def start(self) -> None:
        config = self.directory / "config.toml"
        config.write_text(containerd_config(self.directory))
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [CONTAINERD, "--config", str(config), "--log-level", "warn"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_terminate_with_parent,
            )
        wait_until(lambda: self._ready(), 30, f"containerd socket {self.socket}")

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"containerd exited {self.process.returncode}: {self.log()}")
        if not os.path.exists(self.socket):
            return False
        return run_command([CTR, "--address", self.socket, "version"], check=False).returncode == 0

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process is not None:
            stop_daemon(self.process, "containerd")


class CtrEngine:
    """`ctr` against one private containerd, namespace `pyrunc-test`."""

    namespace = "pyrunc-test"

    def __init__(self, containerd: Containerd, pyrunc: str, cgroup_parent: str):
        self.containerd = containerd
        self.pyrunc = pyrunc
        self.cgroup_parent = cgroup_parent

    def ctr(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return run_command(
            [CTR, "--address", self.containerd.socket, "--namespace", self.namespace, *args],
            **kwargs,
        )

    def runtime_root(self) -> str:
        # The runc shim's default root for a namespace: /run/containerd/runc/<ns>.
        return f"/run/containerd/runc/{self.namespace}"

    def run_args(self, runtime: str, container_id: str) -> list[str]:
        """ctr run flags that pick `runtime` and put the cgroup beneath ours."""
        words = ["--cgroup", f"{self.cgroup_parent}/{container_id}"]
        if runtime == "pyrunc":
            words += ["--runc-binary", self.pyrunc]
        return words


@pytest.fixture(scope="module")
def containerd_engine(
    private_run_dirs, engine_docker_archive, engine_cgroup_parent
) -> Iterator[CtrEngine]:
    require(CONTAINERD, CTR, "/usr/bin/containerd-shim-runc-v2", RUNC_BINARY)
    directory = Path(tempfile.mkdtemp(prefix="pe-ctd-", dir="/tmp"))
    daemon = Containerd(directory)
    problems = []
    try:
        daemon.start()
        engine = CtrEngine(daemon, pyrunc_binary(), engine_cgroup_parent)
        engine.ctr("images", "import", str(engine_docker_archive), timeout=120)
        yield engine
        # Everything the tests made must already be gone (each test checks its own).
        left = engine.ctr("containers", "list", "--quiet", check=False).stdout.split()
        if left:
            problems.append(f"containerd containers left: {left}")
    finally:
        try:
            daemon.stop()
        except AssertionError as error:
            problems.append(str(error))
        marker = str(directory)
        left_processes = wait_for_no_processes(marker)
        if left_processes:
            problems.append(f"processes left: {left_processes}")
        left_mounts = mounts_below(str(directory))
        if left_mounts:
            problems.append(f"mounts left: {left_mounts}")
        _unmount_below(str(directory))
        shutil.rmtree(directory, ignore_errors=True)
    assert not problems, "; ".join(problems)


def wait_for_no_processes(marker: str, timeout: float = 10) -> list[str]:
    deadline = time.monotonic() + timeout
    found = processes_mentioning(marker)
    while found and time.monotonic() < deadline:
        time.sleep(0.1)
        found = processes_mentioning(marker)
    for entry in found:
        try:
            os.kill(int(entry.split()[0]), signal.SIGKILL)
        except ProcessLookupError:
            pass
    return found


# ---------------------------------------------------------------------------------------
# docker


class DockerEngine:
    """dockerd on a private socket, runtimes runc (default) and pyrunc (--add-runtime)."""

    def __init__(self, directory: Path, pyrunc: str, cgroup_parent: str, exec_root: str):
        self.directory = directory
        self.pyrunc = pyrunc
        self.cgroup_parent = cgroup_parent
        self.socket = str(directory / "docker.sock")
        # Beneath the private tmpfs on /run/docker (private_run_dirs); docker passes
        # <exec-root>/runtime-runc/<namespace> as every runtime's --root.
        self.exec_root = Path(exec_root)
        self.namespace = "moby"
        self.data_root = directory / "data"
        self.log_path = directory / "dockerd.log"
        self.process: Optional[subprocess.Popen] = None
        self.env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(directory),
            "DOCKER_CONFIG": str(directory / "client"),
        }

    def start(self, containerd_socket: str) -> None:
        (self.directory / "daemon.json").write_text("{}")
        command = [
            DOCKERD,
            "--config-file", str(self.directory / "daemon.json"),
            "--data-root", str(self.data_root),
            "--exec-root", str(self.exec_root),
            "--pidfile", str(self.directory / "docker.pid"),
            "-H", f"unix://{self.socket}",
            "--containerd", containerd_socket,
            "--containerd-namespace", self.namespace,
            "--containerd-plugins-namespace", f"{self.namespace}-plugins",
            "--bridge=none",
            "--iptables=false",
            "--ip6tables=false",
            "--ip-masq=false",
            "--userland-proxy=false",
            "--storage-driver", "overlay2",
            "--exec-opt", "native.cgroupdriver=cgroupfs",
            "--cgroup-parent", self.cgroup_parent,
            "--add-runtime", f"pyrunc={self.pyrunc}",
            "--log-level", "warn",
        ]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
                preexec_fn=_terminate_with_parent,
            )
        wait_until(self._ready, 60, f"dockerd socket {self.socket}")

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"dockerd exited {self.process.returncode}: {self.log()}")
        if not os.path.exists(self.socket):
            return False
        return self.docker("version", check=False).returncode == 0

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def docker(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        kwargs.setdefault("env", self.env)
        return run_command([DOCKER, "-H", f"unix://{self.socket}", *args], **kwargs)

    def runtime_root(self) -> str:
        # docker runs every runtime with --root <exec-root>/runtime-runc (ENGINES.md).
        return str(self.exec_root / "runtime-runc" / self.namespace)

    def stop(self) -> None:
        if self.process is not None:
            stop_daemon(self.process, "dockerd", timeout=60)


# The exec root of the module's dockerd: as long as it may be while pyrunc can still bind
# <root>/<64-hex id>/start.sock (see test_docker.py::test_debian_default_exec_root).
DOCKER_EXEC_ROOT = "/run/docker/a"
# Debian's (and docker's) default exec root is /var/run/docker: this many characters.
DOCKER_DEFAULT_EXEC_ROOT_LENGTH = len("/var/run/docker")


@contextlib.contextmanager
def started_docker(engine_rootfs_tar: Path, cgroup_parent: str, exec_root: str) -> Iterator[DockerEngine]:
    """A dockerd with its own containerd, the image imported; stopped and checked for
    residue (containers, runtime state, processes, mounts) on the way out."""
    require(DOCKERD, DOCKER, CONTAINERD, "/usr/bin/containerd-shim-runc-v2", RUNC_BINARY)
    directory = Path(tempfile.mkdtemp(prefix="pe-dkr-", dir="/tmp"))
    containerd = Containerd(directory / "ctd")
    containerd.directory.mkdir()
    engine = DockerEngine(directory, pyrunc_binary(), cgroup_parent, exec_root)
    problems = []
    try:
        containerd.start()
        engine.start(containerd.socket)
        import_image(engine.docker, engine_rootfs_tar)
        yield engine
        problems += remove_left_containers(engine.docker, "docker")
    finally:
        for stop, name in ((engine.stop, "dockerd"), (containerd.stop, "containerd")):
            try:
                stop()
            except AssertionError as error:
                problems.append(str(error))
        left_state = state_dirs(engine.runtime_root())
        if left_state:
            problems.append(f"runtime state left in {engine.runtime_root()}: {left_state}")
        for top in (str(engine.exec_root), str(directory)):
            left_mounts = mounts_below(top)
            if left_mounts:
                problems.append(f"mounts left: {left_mounts}")
            _unmount_below(top)
        shutil.rmtree(engine.exec_root, ignore_errors=True)
        left_processes = wait_for_no_processes(str(directory))
        if left_processes:
            problems.append(f"processes left: {left_processes}")
        shutil.rmtree(directory, ignore_errors=True)
    assert not problems, "; ".join(problems)


@pytest.fixture(scope="module")
def docker_engine(private_run_dirs, engine_rootfs_tar, engine_cgroup_parent) -> Iterator[DockerEngine]:
    with started_docker(engine_rootfs_tar, engine_cgroup_parent, DOCKER_EXEC_ROOT) as engine:
        yield engine


# ---------------------------------------------------------------------------------------
# podman


class PodmanEngine:
    """podman with private storage, runroot, tmpdir and containers.conf; runtimes
    `runc` and `pyrunc` both named in [engine.runtimes]."""

    def __init__(self, directory: Path, pyrunc: str, cgroup_parent: str):
        self.directory = directory
        self.pyrunc = pyrunc
        self.cgroup_parent = cgroup_parent
        self.conf = directory / "containers.conf"
        self.storage_conf = directory / "storage.conf"
        self.env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(directory),
            "XDG_CONFIG_HOME": str(directory / "config"),
            "CONTAINERS_CONF": str(self.conf),
            "CONTAINERS_STORAGE_CONF": str(self.storage_conf),
            "CONTAINERS_REGISTRIES_CONF": str(directory / "registries.conf"),
        }

    def write_config(self) -> None:
        (self.directory / "registries.conf").write_text("unqualified-search-registries = []\n")
        self.storage_conf.write_text(
            f'[storage]\ndriver = "overlay"\ngraphroot = "{self.directory}/storage"\n'
            f'runroot = "{self.directory}/runroot"\n'
        )
        # The hard limits here are below podman's defaults for root (NOFILE 1048576,
        # NPROC 32768), and raising a hard limit is refused.
        import resource

        nofile = min(resource.getrlimit(resource.RLIMIT_NOFILE)[1], 65536)
        nproc_hard = resource.getrlimit(resource.RLIMIT_NPROC)[1]
        nproc = 32768 if nproc_hard == resource.RLIM_INFINITY else min(nproc_hard, 32768)
        self.conf.write_text(
            f"""[containers]
default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]
netns = "none"
cgroupns = "private"
log_driver = "k8s-file"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{self.directory}/events.log"
lock_type = "file"
tmp_dir = "{self.directory}/tmp"
static_dir = "{self.directory}/storage/libpod"
volume_path = "{self.directory}/storage/volumes"
conmon_path = ["{CONMON}"]
runtime = "runc"
runtime_supports_json = ["crun", "runc", "kata", "runsc", "krun", "pyrunc"]
no_pivot_root = false

[engine.runtimes]
runc = ["{RUNC_BINARY}"]
pyrunc = ["{self.pyrunc}"]

[network]
network_backend = "cni"
network_config_dir = "{self.directory}/cni"
"""
        )

    def podman(self, *args: str, runtime: Optional[str] = None, **kwargs) -> subprocess.CompletedProcess:
        kwargs.setdefault("env", self.env)
        words = [
            PODMAN,
            "--root", str(self.directory / "storage"),
            "--runroot", str(self.directory / "runroot"),
            "--tmpdir", str(self.directory / "tmp"),
            "--cgroup-manager", "cgroupfs",
            "--events-backend", "file",
        ]
        if runtime is not None:
            words += ["--runtime", runtime]
        return run_command([*words, *args], **kwargs)

    def runtime_root(self, runtime: str) -> str:
        # podman passes no --root: each runtime's default (tmpfs here, private_run_dirs).
        return f"/run/{runtime}"


@pytest.fixture(scope="module")
def podman_engine(private_run_dirs, engine_rootfs_tar, engine_cgroup_parent) -> Iterator[PodmanEngine]:
    require(PODMAN, CONMON, RUNC_BINARY)
    directory = Path(tempfile.mkdtemp(prefix="pe-pod-", dir="/tmp"))
    engine = PodmanEngine(directory, pyrunc_binary(), engine_cgroup_parent)
    problems = []
    try:
        engine.write_config()
        import_image(engine.podman, engine_rootfs_tar)
        yield engine
        problems += remove_left_containers(engine.podman, "podman")
    finally:
        left_processes = wait_for_no_processes(str(directory))
        if left_processes:
            problems.append(f"processes left: {left_processes}")
        _unmount_below(str(directory))
        shutil.rmtree(directory, ignore_errors=True)
    assert not problems, "; ".join(problems)


# ---------------------------------------------------------------------------------------
# Per test


@pytest.fixture(params=RUNTIMES)
def runtime(request) -> str:
    return request.param


@pytest.fixture
def engine_name() -> str:
    """A fresh container name, unique across concurrent sessions."""
    return f"pe{os.getpid()}-{uuid.uuid4().hex[:8]}"


# ---------------------------------------------------------------------------------------
# The same probe under runc and pyrunc: what the container's process sees must match.

# One line per fact, prefixed by its name; run by busybox sh as the container's process.
PROBE_SCRIPT = r"""
echo "ids: $(id -u) $(id -g) $(id -G)"
grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status | tr '\t' ' ' | sed 's/^/status: /'
echo "umask: $(umask)"
echo "uid_map: $(cat /proc/self/uid_map | tr -s ' ')"
echo "gid_map: $(cat /proc/self/gid_map | tr -s ' ')"
echo "oom_score_adj: $(cat /proc/self/oom_score_adj)"
echo "hostname: $(hostname)"
echo "cwd: $(pwd)"
# The glob is expanded by this shell itself: `$(ls /proc/$$/fd)` would race with the
# shell closing the write end of the substitution's pipe.
for fd in /proc/$$/fd/*; do
    echo "fd ${fd##*/}: $(readlink "$fd" | sed 's/[0-9][0-9]*/N/g')"
done
echo "unprivileged_port_start: $(cat /proc/sys/net/ipv4/ip_unprivileged_port_start 2>&1)"
echo "ping_group_range: $(cat /proc/sys/net/ipv4/ping_group_range 2>&1 | tr '\t' ' ')"
echo "shm_rmid_forced: $(cat /proc/sys/kernel/shm_rmid_forced)"
echo "data: $(cat /data/shared.txt 2>&1)"
echo "rlimit nofile: $(ulimit -n) $(ulimit -Hn)"
echo "rlimit nproc: $(ulimit -u) $(ulimit -Hu)"
echo "dev: $(ls /dev | tr '\n' ' ')"
echo "kcore: $(head -c 1 /proc/kcore 2>&1 | wc -c)"
echo "sysrq-trigger writable: $(sh -c 'echo h > /proc/sysrq-trigger' 2>&1 | grep -c 'Read-only')"
for ns in cgroup ipc mnt net pid pidns uts user; do
    [ "$(readlink /proc/$$/ns/$ns)" = "$(readlink /proc/1/ns/$ns)" ] || echo "ns: $ns differs from pid 1"
done
[ $$ = 1 ] && echo "pid 1: yes" || echo "pid 1: no"
sort /proc/self/mounts | while read source target fstype options rest; do
    echo "mount: $target $fstype $(echo "$options" | tr ',' '\n' | grep -E '^(ro|rw|nosuid|nodev|noexec)$' | tr '\n' ',')"
done
env | sort | grep -v '^HOSTNAME=' | sed 's/^/env: /'
"""


# Known pyrunc difference (see docs/engines.md, "cgroup mount"): on a v1/hybrid host runc
# mounts /sys/fs/cgroup as a read-WRITE tmpfs holding only the v1 hierarchies; pyrunc
# remounts the tmpfs read-only and adds the hybrid cgroup2 "unified" mount. These lines
# are compared by test_cgroup_mount_matches_runc alone, so the rest stays checked.
CGROUP_MOUNT_LINES = ("mount: /sys/fs/cgroup tmpfs ", "mount: /sys/fs/cgroup/unified ")


def probe_differences(
    outputs: dict[str, str],
    only: tuple[str, ...] = (),
    ignore: tuple[str, ...] = CGROUP_MOUNT_LINES,
) -> list[str]:
    """Lines only one runtime printed, as 'runc only: line' / 'pyrunc only: line'.
    Lines starting with one of `ignore` are left out (default: the cgroup mount, a known
    difference); with `only`, nothing but lines starting with one of those is compared."""
    def lines(runtime: str) -> list[str]:
        found = outputs[runtime].replace("\r\n", "\n").splitlines()
        if only:
            return [l for l in found if l.startswith(only)]
        return [l for l in found if not l.startswith(ignore)]

    runc_lines, pyrunc_lines = lines("runc"), lines("pyrunc")
    only_runc = [f"runc only:   {l}" for l in runc_lines if l not in pyrunc_lines]
    only_pyrunc = [f"pyrunc only: {l}" for l in pyrunc_lines if l not in runc_lines]
    return only_runc + only_pyrunc


def assert_cgroup_mounts_match_runc(outputs: dict[str, str]) -> None:
    """The cgroup mounts a container sees are runc's, but for one deliberate difference:
    the spec's `ro` on the cgroup mount makes pyrunc's /sys/fs/cgroup tmpfs read-only too
    (under these engines runc 1.1.5 leaves that tmpfs rw; the hierarchies are ro in both)."""
    differences = probe_differences(outputs, only=CGROUP_MOUNT_LINES)
    tmpfs = "mount: /sys/fs/cgroup tmpfs "
    rest = [d for d in differences if tmpfs not in d]
    assert not rest, "\n".join(differences)
    pyrunc_tmpfs = [d for d in differences if d.startswith("pyrunc only:") and tmpfs in d]
    assert all(" tmpfs ro," in d for d in pyrunc_tmpfs), "\n".join(differences)


# What an exec'd process's oom_score_adj must match: the container's (runc applies the
# container's process.oomScoreAdj to every exec'd process).
EXEC_OOM_LINES = ("oom_score_adj:",)
