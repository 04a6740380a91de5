"""Kubernetes' path to a runtime, without a kubelet: containerd's CRI plugin started by the
tests, with two runtime handlers (`runc`, the control, and `pyrunc`, both
`io.containerd.runc.v2` with options.BinaryName), and a CRI v1 gRPC client compiled at test
time from tests/cri/pyrunc_cri_api.proto.

Privacy: containerd runs inside its OWN mount, network and UTS namespaces (unshare), so
pod networks (a CNI bridge, veths, netns bind mounts), the shims' sockets and every mount
stay there: /run is a fresh tmpfs in that namespace, /var/lib an overlay whose writes land
in the test's temp dir (libcni caches results under /var/lib/cni), and the only network
device it starts with is its own loopback. The CRI client reaches containerd through its
unix socket in the temp dir, which crosses namespaces. Pod cgroups go beneath this
process's own cgroup (CGROUP parent below), checked empty after every pod.

Fixture API (the test module imports these):

    cri_images        session: (busybox archive, pause archive) docker-archive tars
    cri_cgroup_parent session: an absolute cgroup path beneath our own in every hierarchy
    cri               module: a started containerd + CRI client (CriEngine)
"""
from __future__ import annotations

import contextlib
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest

from support import (build_docker_archive, cgroup_dirs_below, cgroup_parent_below_own,
                     remove_cgroup_tree, tar_tree)

CONTAINERD = "/usr/bin/containerd"
CTR = "/usr/bin/ctr"
SHIM = "/usr/bin/containerd-shim-runc-v2"
RUNC = "/usr/sbin/runc"
CATATONIT = "/usr/bin/catatonit"
CNI_BIN_DIR = "/usr/lib/cni"
UNSHARE = "/usr/bin/unshare"

HANDLERS = ["runc", "pyrunc"]
K8S_NAMESPACE = "k8s.io"
BUSYBOX_IMAGE = "localhost/pyrunc-busybox:latest"
PAUSE_IMAGE = "localhost/pyrunc-pause:catatonit"
IMAGE_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The hostname containerd's UTS namespace gets: what a host-network pod must see.
NODE_HOSTNAME = "pcri-node"
# The pod network: only ever inside containerd's private network namespace, and no test
# sends traffic to it (addresses are read, never contacted).
POD_SUBNET = "10.244.77.0/24"
POD_SUBNET_PREFIX = "10.244.77."
CNI_BRIDGE = "pcri0"

# kubelet's default lists for a pod with procMount Default (what it sends over CRI).
KUBELET_MASKED_PATHS = [
    "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
    "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
]
KUBELET_READONLY_PATHS = [
    "/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
]


def pyrunc_binary() -> str:
    """The installed pyrunc, found as tests/conftest.py does: $PYRUNC_BIN (setup.sh sets
    it), next to this interpreter, then PATH."""
    found = os.environ.get("PYRUNC_BIN")
    if not found:
        candidate = os.path.join(os.path.dirname(sys.executable), "pyrunc")
        found = candidate if os.access(candidate, os.X_OK) else shutil.which("pyrunc")
    if not found:
        pytest.fail("pyrunc is not installed (run ./setup.sh, or set PYRUNC_BIN)")
    return found


def require(*binaries: str) -> None:
    missing = [b for b in binaries if not os.access(b, os.X_OK)]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (./setup.sh installs them)")


def run_command(command: list[str], *, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
    """Run a client command with stdout/stderr in files (a daemon child may hold pipes)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        completed = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                   timeout=timeout)
        out.seek(0)
        err.seek(0)
        result = subprocess.CompletedProcess(command, completed.returncode,
                                             out.read().decode(errors="replace"),
                                             err.read().decode(errors="replace"))
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)}: exit status {result.returncode}\n"
                             f"stdout: {result.stdout}\nstderr: {result.stderr}")
    return result


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# ---------------------------------------------------------------------------------------
# The CRI client: pyrunc_cri_api.proto compiled with grpcio-tools into a temp dir


def compile_cri_api(directory: Path):
    """(messages module, grpc stubs module) generated from pyrunc_cri_api.proto."""
    try:
        from grpc_tools import protoc
    except ImportError:
        pytest.fail("grpcio-tools is missing: ./setup.sh installs the `test` extra")
    proto = Path(__file__).resolve().parent / "pyrunc_cri_api.proto"
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(proto, directory / proto.name)
    status = protoc.main([
        "grpc_tools.protoc", f"-I{directory}", f"--python_out={directory}",
        f"--grpc_python_out={directory}", str(directory / proto.name),
    ])
    assert status == 0, f"protoc failed on {proto}"
    sys.path.insert(0, str(directory))
    try:
        messages = importlib.import_module("pyrunc_cri_api_pb2")
        stubs = importlib.import_module("pyrunc_cri_api_pb2_grpc")
    finally:
        sys.path.remove(str(directory))
    return messages, stubs


class CriClient:
    """runtime.v1.RuntimeService and ImageService over containerd's unix socket. Every call
    is `client.Name(**fields)` → response message; `client.pb` has the message classes."""

    IMAGE_CALLS = {"ListImages", "ImageStatus"}

    def __init__(self, socket: str, messages, stubs):
        import grpc

        self.grpc = grpc
        self.pb = messages
        # No proxies for a unix socket, and room for big ExecSync outputs.
        self.channel = grpc.insecure_channel(
            f"unix://{socket}",
            options=[("grpc.enable_http_proxy", 0), ("grpc.max_receive_message_length", 32 << 20)],
        )
        self.runtime = stubs.RuntimeServiceStub(self.channel)
        self.images = stubs.ImageServiceStub(self.channel)

    def call(self, name: str, request: Any, timeout: float = 60) -> Any:
        stub = self.images if name in self.IMAGE_CALLS else self.runtime
        return getattr(stub, name)(request, timeout=timeout)

    def __getattr__(self, name: str):
        if not name[:1].isupper():
            raise AttributeError(name)

        # `deadline`, not `timeout`: ExecSync and StopContainer have a `timeout` field.
        def invoke(deadline: float = 60, **fields):
            request = getattr(self.pb, f"{name}Request")(**fields)
            return self.call(name, request, deadline)

        return invoke

    def close(self) -> None:
        self.channel.close()


# ---------------------------------------------------------------------------------------
# Images, built offline: docker-archive tars that `ctr images import` takes


@pytest.fixture(scope="session")
def cri_images(tmp_path_factory, rootfs_builder) -> tuple[Path, Path]:
    if not os.path.exists("/bin/busybox"):
        pytest.fail("/bin/busybox is missing: run ./setup.sh (installs busybox-static)")
    require(CATATONIT)
    return build_cri_images(tmp_path_factory.mktemp("cri-images"), rootfs_builder)


def build_cri_images(directory: Path, rootfs_builder) -> tuple[Path, Path]:
    """(busybox image archive, pause image archive) in `directory`. The pause image is
    Debian's static catatonit in pause mode (-P: no child, sleep until signalled), as
    sandbox_image. (bench/shim.py uses it too.)"""
    busybox_tree = directory / "busybox"
    rootfs_builder.build_rootfs(str(busybox_tree))
    tar_tree(busybox_tree, directory / "busybox.tar")
    busybox = directory / "busybox-image.tar"
    build_docker_archive(directory / "busybox.tar", busybox, BUSYBOX_IMAGE,
                         {"Env": [IMAGE_PATH], "Cmd": ["sh"], "WorkingDir": "/"})

    pause_tree = directory / "pause"
    for name in ("dev", "proc", "sys", "etc"):
        (pause_tree / name).mkdir(parents=True)
    shutil.copy(CATATONIT, pause_tree / "catatonit")
    os.chmod(pause_tree / "catatonit", 0o755)
    tar_tree(pause_tree, directory / "pause.tar")
    pause = directory / "pause-image.tar"
    build_docker_archive(directory / "pause.tar", pause, PAUSE_IMAGE,
                         {"Env": [IMAGE_PATH], "Entrypoint": ["/catatonit", "-P"], "WorkingDir": "/"})
    return busybox, pause


# ---------------------------------------------------------------------------------------
# Cgroups: the pods' cgroup parent, beneath our own cgroup


def cgroup_file(controller: str, path: str, name: str) -> str:
    """The content of `name` in cgroup `path` of the v1 hierarchy mounted at
    /sys/fs/cgroup/<controller>, stripped."""
    with open(os.path.join("/sys/fs/cgroup", controller, path.lstrip("/"), name)) as f:
        return f.read().strip()


@pytest.fixture(scope="session")
def cri_cgroup_parent() -> Iterator[str]:
    """An absolute cgroup parent beneath our own cgroups for the pods."""
    yield from cgroup_parent_below_own(f"pyrunc-cri-{os.getpid()}")


# ---------------------------------------------------------------------------------------
# Processes


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
        words = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
        if marker in words:
            found.append(f"{entry} ({words})")
    return found


def processes_in_cgroups(prefixes: list[str]) -> list[str]:
    """Pids whose cgroup, in any hierarchy, is one of `prefixes` or beneath one."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            lines = open(f"/proc/{entry}/cgroup").read().splitlines()
            cmdline = open(f"/proc/{entry}/cmdline", "rb").read()
        except OSError:
            continue
        for line in lines:
            path = line.split(":", 2)[2]
            if any(path == p or path.startswith(p + "/") for p in prefixes):
                words = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
                found.append(f"{entry} ({words})")
                break
    return found


def kill_pids(described: list[str]) -> None:
    for entry in described:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(entry.split()[0]), signal.SIGKILL)


# ---------------------------------------------------------------------------------------
# containerd with the CRI plugin


def containerd_config(directory: Path, pyrunc: str, systemd_cgroup: bool = False) -> str:
    # No plugin writing outside `directory` (opt would create /opt/containerd; the other
    # snapshotters probe host paths). Both handlers are what a real node would configure:
    # io.containerd.runc.v2 with options.BinaryName; the shim then calls
    # `BINARY --root /run/containerd/runc/k8s.io --log <bundle>/log.json --log-format json`.
    return f"""version = 2
root = "{directory}/root"
state = "{directory}/state"
disabled_plugins = [
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

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  disable_apparmor = true
  # The sandbox asks for oom_score_adj -998; lowering a score needs CAP_SYS_RESOURCE, which
  # this machine's root may lack: clamp to containerd's own score, as rootless setups do.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "{RUNC}"
        SystemdCgroup = {str(systemd_cgroup).lower()}
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.pyrunc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.pyrunc.options]
        BinaryName = "{pyrunc}"
        SystemdCgroup = {str(systemd_cgroup).lower()}
    # pyrunc's own shim (tests/shim): one per pod, and one for the node
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.pyrunc-shim]
      runtime_type = "io.containerd.pyrunc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.pyrunc-node]
      runtime_type = "io.containerd.pyrunc-node.v2"
    # runc's options for pyrunc's shim: containerd 1.6's CRI passes a runtime other than
    # io.containerd.runc.v2 only TypeUrl and ConfigPath, a file of them (tests/shim)
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.pyrunc-shim-options]
      runtime_type = "io.containerd.pyrunc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.pyrunc-shim-options.options]
        ConfigPath = "{directory}/pyrunc-shim-options.toml"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{directory}/cni"
    max_conf_num = 1
"""


def cni_config(directory: Path) -> str:
    # No gateway, no masquerading: nothing touches iptables or forwarding, and the bridge
    # lives in containerd's network namespace only.
    return json.dumps({
        "cniVersion": "1.0.0",
        "name": "pcri",
        "plugins": [{
            "type": "bridge",
            "bridge": CNI_BRIDGE,
            "isGateway": False,
            "ipMasq": False,
            "hairpinMode": False,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": POD_SUBNET}]],
                "dataDir": f"{directory}/ipam",
            },
        }],
    }, indent=2)


# Runs as the first process of the new namespaces, then becomes containerd: the pid Popen
# gives is containerd's. /run gets a fresh tmpfs (shim sockets, runtime roots, netns), and
# /var/lib an overlay whose upper dir is ours (libcni writes /var/lib/cni).
NAMESPACE_SETUP = r"""
set -eu
dir="$1"; shift
mount --make-rprivate /
if [ -n "${KEEP_RUN_SYSTEMD:-}" ]; then
    # the systemd cgroup driver: the runtimes reach systemd through /run/systemd
    mkdir -p "$dir/run-systemd"
    mount --bind /run/systemd "$dir/run-systemd"
fi
mount -t tmpfs -o mode=0755 tmpfs /run
if [ -n "${KEEP_RUN_SYSTEMD:-}" ]; then
    mkdir -p /run/systemd
    mount --move "$dir/run-systemd" /run/systemd
fi
mkdir -p "$dir/varlib/upper" "$dir/varlib/work"
mount -t overlay overlay -o "lowerdir=/var/lib,upperdir=$dir/varlib/upper,workdir=$dir/varlib/work" /var/lib
ip link set lo up
hostname "$NODE_HOSTNAME"
exec "$@"
"""


class CriEngine:
    """One private containerd (pid `pid`) and a CRI client to it."""

    def __init__(self, directory: Path, pyrunc: str, cgroup_parent: str, systemd_cgroup: bool = False):
        """systemd_cgroup: both handlers with SystemdCgroup = true (cgroup_parent is then a
        slice name), and /run/systemd visible in containerd's namespace."""
        self.directory = directory
        self.systemd_cgroup = systemd_cgroup
        self.pyrunc = pyrunc
        self.cgroup_parent = cgroup_parent
        self.socket = str(directory / "containerd.sock")
        self.log_path = directory / "containerd.log"
        self.process: Optional[subprocess.Popen] = None
        self.client: Optional[CriClient] = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def start(self, messages, stubs) -> None:
        config = self.directory / "config.toml"
        config.write_text(containerd_config(self.directory, self.pyrunc, self.systemd_cgroup))
        (self.directory / "cni").mkdir()
        (self.directory / "cni" / "10-pcri.conflist").write_text(cni_config(self.directory))
        # containerd finds its shims (pyrunc's is installed beside pyrunc), and the set-up
        # script `ip`, mount and hostname, on PATH.
        path = (os.path.dirname(self.pyrunc) + ":" + os.environ.get("PATH", "")
                + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        env = dict(os.environ, NODE_HOSTNAME=NODE_HOSTNAME, PATH=path.lstrip(":"))
        if self.systemd_cgroup:
            env["KEEP_RUN_SYSTEMD"] = "1"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [UNSHARE, "--mount", "--propagation", "private", "--net", "--uts", "--",
                 "sh", "-c", NAMESPACE_SETUP, "sh", str(self.directory),
                 CONTAINERD, "--config", str(config), "--log-level", "info"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=env, start_new_session=True,
            )
        wait_until(lambda: self._socket_ready(), 30, f"containerd socket {self.socket}")
        self.client = CriClient(self.socket, messages, stubs)
        wait_until(lambda: self._cri_ready(), 30, "the CRI plugin to answer Version")

    def _socket_ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"containerd exited {self.process.returncode}: {self.log()}")
        return os.path.exists(self.socket)

    def _cri_ready(self) -> bool:
        try:
            self.client.Version(deadline=5)
            return True
        except self.client.grpc.RpcError:
            if self.process.poll() is not None:
                raise AssertionError(f"containerd exited {self.process.returncode}: {self.log()}")
            return False

    def ctr(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return run_command([CTR, "--address", self.socket, "--namespace", K8S_NAMESPACE, *args], **kwargs)

    def log(self, tail: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except OSError:
            return ""

    # -- what containerd's namespace holds, seen from here through /proc/<pid>/root --
    def in_namespace(self, path: str) -> str:
        return f"/proc/{self.pid}/root{path}"

    def runtime_root(self) -> str:
        # The runc shim's default root for a namespace, in containerd's private /run.
        return self.in_namespace(f"/run/containerd/runc/{K8S_NAMESPACE}")

    def runtime_state_ids(self) -> list[str]:
        root = self.runtime_root()
        if not os.path.isdir(root):
            return []
        # pyrunc keeps a compiled-seccomp cache in <root>/.pyrunc-cache: not a container.
        return sorted(e for e in os.listdir(root) if not e.startswith(".")
                      and os.path.isdir(os.path.join(root, e)))

    def bundle(self, container_id: str) -> Path:
        return self.directory / "state" / "io.containerd.runtime.v2.task" / K8S_NAMESPACE / container_id

    def runtime_log(self, container_id: str) -> str:
        """The runtime's --log file (JSON lines) of a container's bundle, if still there."""
        try:
            return (self.bundle(container_id) / "log.json").read_text(errors="replace")
        except OSError:
            return ""

    def diagnose(self, *container_ids: str) -> str:
        """Runtime logs of these containers and the tail of containerd's log, for failures."""
        parts = []
        for container_id in container_ids:
            log = self.runtime_log(container_id)
            if log:
                parts.append(f"--- {container_id[:12]} log.json:\n{log[-3000:]}")
        parts.append(f"--- containerd.log (tail):\n{self.log(4000)}")
        return "\n".join(parts)

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            raise AssertionError("containerd did not exit within 30s of SIGTERM")


@contextlib.contextmanager
def started_cri(tmp_root: Path, images: tuple[Path, Path], cgroup_parent: str) -> Iterator[CriEngine]:
    require(CONTAINERD, CTR, SHIM, RUNC, UNSHARE, shutil.which("ip") or "/usr/sbin/ip",
            *(os.path.join(CNI_BIN_DIR, p) for p in ("bridge", "host-local", "loopback")))
    try:
        import grpc  # noqa: F401
    except ImportError:
        pytest.fail("grpcio is missing: ./setup.sh installs the `test` extra")
    if os.environ.get("PYRUNC_TEST_PRIVATE_MNTNS") != os.readlink("/proc/self/ns/mnt"):
        pytest.skip("the CRI tests need the private mount namespace of tests/conftest.py")
    messages, stubs = compile_cri_api(tmp_root / "cri-api")
    # Short: shim and runtime sockets are placed relative to paths under it.
    directory = Path(tempfile.mkdtemp(prefix="pcri-", dir="/tmp"))
    engine = CriEngine(directory, pyrunc_binary(), cgroup_parent)
    problems: list[str] = []
    try:
        engine.start(messages, stubs)
        for archive in images:
            engine.ctr("images", "import", str(archive), timeout=120)
        yield engine
    finally:
        # Whatever a failed test left: every pod stopped and removed through CRI first.
        if engine.client is not None and engine.process is not None and engine.process.poll() is None:
            try:
                left = engine.client.ListPodSandbox().items
                for sandbox in left:
                    problems.append(f"pod sandbox left: {sandbox.metadata.name} ({sandbox.id[:12]})")
                    with contextlib.suppress(Exception):
                        engine.client.StopPodSandbox(pod_sandbox_id=sandbox.id)
                    with contextlib.suppress(Exception):
                        engine.client.RemovePodSandbox(pod_sandbox_id=sandbox.id)
            except Exception as error:  # a dead CRI plugin must not stop the cleanup
                problems.append(f"ListPodSandbox at teardown: {error}")
        try:
            engine.stop()
        except AssertionError as error:
            problems.append(str(error))
        left_processes = processes_mentioning(str(directory))
        deadline = time.monotonic() + 10
        while left_processes and time.monotonic() < deadline:
            time.sleep(0.1)
            left_processes = processes_mentioning(str(directory))
        if left_processes:
            problems.append(f"processes left: {left_processes}")
            kill_pids(left_processes)
        left_cgroups = cgroup_dirs_below(cgroup_parent)
        if left_cgroups:
            problems.append(f"cgroups left: {left_cgroups}")
            kill_pids(processes_in_cgroups([cgroup_parent]))
            time.sleep(0.2)
            for top in left_cgroups:
                remove_cgroup_tree(top)
        # The namespace's mounts died with its last process; only files remain.
        shutil.rmtree(directory, ignore_errors=True)
    assert not problems, "; ".join(problems)


@pytest.fixture(scope="module")
def cri(tmp_path_factory, cri_images, cri_cgroup_parent) -> Iterator[CriEngine]:
    with started_cri(tmp_path_factory.mktemp("cri"), cri_images, cri_cgroup_parent) as engine:
        yield engine


# ---------------------------------------------------------------------------------------
# Pods


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class Pod:
    """One pod sandbox run through CRI with `handler`, and the containers made in it."""

    def __init__(self, engine: CriEngine, handler: str, name: str, host_network: bool = False,
                 sysctls: Optional[dict[str, str]] = None, share_pid: bool = False):
        self.engine = engine
        self.client = engine.client
        self.pb = engine.client.pb
        self.handler = handler
        self.name = name
        self.host_network = host_network
        # The kubelet's pid modes: CONTAINER by default, POD for shareProcessNamespace.
        self.pid_mode = "POD" if share_pid else "CONTAINER"
        self.log_directory = engine.directory / "pods" / name
        self.log_directory.mkdir(parents=True)
        pb = self.pb
        namespaces = pb.NamespaceOption(
            network=pb.NODE if host_network else pb.POD, pid=pb.NamespaceMode.Value(self.pid_mode),
            ipc=pb.POD)
        self.config = pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=name, uid=uuid.uuid4().hex, namespace="pyrunc-cri"),
            hostname="" if host_network else name,
            log_directory=str(self.log_directory),
            dns_config=pb.DNSConfig(servers=["127.0.0.53"], searches=["pyrunc.test"]),
            labels={"pyrunc-test": name},
            linux=pb.LinuxPodSandboxConfig(
                cgroup_parent=engine.cgroup_parent,
                security_context=pb.LinuxSandboxSecurityContext(namespace_options=namespaces),
                sysctls=sysctls or {},
            ),
        )
        self.id: str = ""
        self.container_ids: list[str] = []

    def rpc(self, name: str, deadline: float = 60, **fields):
        """A CRI call whose failure fails the test with the runtime's --log lines."""
        try:
            return getattr(self.client, name)(deadline=deadline, **fields)
        except self.client.grpc.RpcError as error:
            raise AssertionError(
                f"{name} failed ({self.handler}): {error.code().name}: {error.details()}\n"
                + self.diagnose()) from None

    def run(self) -> str:
        response = self.rpc("RunPodSandbox", 120, config=self.config, runtime_handler=self.handler)
        self.id = response.pod_sandbox_id
        return self.id

    def status(self, verbose: bool = True):
        return self.rpc("PodSandboxStatus", pod_sandbox_id=self.id, verbose=verbose)

    def info(self) -> dict:
        """The CRI plugin's verbose sandbox info (pid, runtimeSpec, runtimeOptions...)."""
        return json.loads(self.status().info["info"])

    def pid(self) -> int:
        return int(self.info()["pid"])

    def container_config(self, name: str, command: list[str], *, tty: bool = False,
                         resources: Optional[dict] = None, security: Optional[dict] = None,
                         envs: Optional[dict[str, str]] = None, working_dir: str = ""):
        pb = self.pb
        security_fields = {"namespace_options": pb.NamespaceOption(
            network=pb.NODE if self.host_network else pb.POD,
            pid=pb.NamespaceMode.Value(self.pid_mode), ipc=pb.POD)}
        security_fields.update(security or {})
        return pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name=name),
            image=pb.ImageSpec(image=BUSYBOX_IMAGE),
            command=command,
            working_dir=working_dir,
            envs=[pb.KeyValue(key=k, value=v) for k, v in (envs or {}).items()],
            log_path=f"{name}.log",
            tty=tty,
            labels={"pyrunc-test-container": name},
            linux=pb.LinuxContainerConfig(
                resources=pb.LinuxContainerResources(**(resources or {})),
                security_context=pb.LinuxContainerSecurityContext(**security_fields),
            ),
        )

    def create(self, name: str, command: list[str], **kwargs) -> str:
        config = self.container_config(name, command, **kwargs)
        response = self.rpc("CreateContainer", 120, pod_sandbox_id=self.id, config=config,
                            sandbox_config=self.config)
        self.container_ids.append(response.container_id)
        return response.container_id

    def start(self, container_id: str) -> None:
        self.rpc("StartContainer", 120, container_id=container_id)

    def run_container(self, name: str, command: list[str], **kwargs) -> str:
        container_id = self.create(name, command, **kwargs)
        self.start(container_id)
        return container_id

    def stop_container(self, container_id: str, timeout: int) -> float:
        """StopContainer with a grace period of `timeout` seconds; returns the seconds taken."""
        started = time.monotonic()
        self.rpc("StopContainer", timeout + 60, container_id=container_id, timeout=timeout)
        return time.monotonic() - started

    def remove_container(self, container_id: str) -> None:
        self.rpc("RemoveContainer", 60, container_id=container_id)

    def container_status(self, container_id: str):
        return self.rpc("ContainerStatus", container_id=container_id, verbose=True)

    def container_info(self, container_id: str) -> dict:
        return json.loads(self.container_status(container_id).info["info"])

    def container_pid(self, container_id: str) -> int:
        return int(self.container_info(container_id)["pid"])

    def wait_exited(self, container_id: str, timeout: float = 30):
        def exited():
            status = self.container_status(container_id).status
            return status if status.state == self.pb.CONTAINER_EXITED else None

        return wait_until(exited, timeout, f"container {container_id[:12]} to exit")

    def exec(self, container_id: str, command: list[str], timeout: int = 0, deadline: float = 60):
        """ExecSync; `timeout` is the CRI field (seconds, 0 = none), `deadline` the RPC's."""
        return self.rpc("ExecSync", deadline, container_id=container_id, cmd=command, timeout=timeout)

    def sh(self, container_id: str, script: str) -> str:
        """stdout of `sh -c script` run by ExecSync; fails with stderr on non-zero exit."""
        response = self.exec(container_id, ["sh", "-c", script])
        assert response.exit_code == 0, (
            f"exec {script!r}: exit {response.exit_code}, stderr {response.stderr!r}\n"
            + self.engine.diagnose(container_id))
        return response.stdout.decode()

    def container_log(self, name: str) -> str:
        """The texts of container `name`'s CRI log (`<time> <stream> <P|F> <text>` lines)."""
        try:
            lines = (self.log_directory / f"{name}.log").read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(line.split(" ", 3)[3] if line.count(" ") >= 3 else line for line in lines)

    def all_ids(self) -> list[str]:
        return [self.id, *self.container_ids] if self.id else list(self.container_ids)

    def diagnose(self) -> str:
        return self.engine.diagnose(*self.all_ids())

    def remove(self) -> None:
        """StopPodSandbox then RemovePodSandbox, asserting both succeed."""
        if not self.id:
            return
        self.rpc("StopPodSandbox", 120, pod_sandbox_id=self.id)
        self.rpc("RemovePodSandbox", 120, pod_sandbox_id=self.id)


def residue_of(pod: Pod, netns_path: Optional[str] = None, grace: float = 10) -> list[str]:
    """What is left of a removed pod: CRI objects, runtime state dirs, bundles, cgroups,
    processes in its cgroups, its shim, its network namespace. Empty when clean."""
    engine = pod.engine
    ids = pod.all_ids()
    cgroup_paths = [f"{engine.cgroup_parent}/{i}" for i in ids]

    def gather() -> list[str]:
        problems = []
        sandboxes = [s.id for s in engine.client.ListPodSandbox().items if s.id == pod.id]
        if sandboxes:
            problems.append(f"sandbox still listed by CRI: {sandboxes}")
        containers = [c.id for c in engine.client.ListContainers().containers if c.id in ids]
        if containers:
            problems.append(f"containers still listed by CRI: {containers}")
        state = [i for i in engine.runtime_state_ids() if i in ids]
        if state:
            problems.append(f"runtime state dirs left in /run/containerd/runc/k8s.io: {state}")
        bundles = [i for i in ids if engine.bundle(i).exists()]
        if bundles:
            problems.append(f"bundles left: {bundles}")
        cgroups = [d for d in cgroup_dirs_below(engine.cgroup_parent)
                   if any(d.endswith("/" + i) or f"/{i}/" in d for i in ids)]
        if cgroups:
            problems.append(f"cgroups left: {cgroups}")
        processes = processes_in_cgroups(cgroup_paths)
        if processes:
            problems.append(f"processes left in the pod's cgroups: {processes}")
        shims = [p for p in processes_mentioning(f"-id {pod.id}")]
        shims += [p for p in processes_mentioning(pod.id) if "containerd-shim" in p and p not in shims]
        if shims:
            problems.append(f"shim left: {shims}")
        if netns_path and os.path.exists(engine.in_namespace(netns_path)):
            problems.append(f"network namespace left: {netns_path}")
        return problems

    deadline = time.monotonic() + grace
    problems = gather()
    while problems and time.monotonic() < deadline:
        time.sleep(0.1)
        problems = gather()
    return problems
