"""Shared fixtures: a private mount/IPC namespace for the session, a busybox rootfs,
bundle and state-root factories, runners for the installed `pyrunc` and for runc, and a
residue check run after every test that used a state root.

Fixture API (all paths are pathlib.Path):

    rootfs_dir            session: a busybox rootfs built once (bundles/build_rootfs.py)
    rootfs_builder        session: that builder module (build_rootfs(dest), applet_paths())
    userns_rootfs         module: a busybox rootfs host uid 100000 can traverse (user
                          namespace tests; mount it read-only)
    bundle                factory: bundle(edit=None, *, args=None, private_rootfs=False,
                          name=None) -> bundle dir; bundle.template() -> fresh config dict;
                          bundle.write(config, name=None) -> bundle dir
    container_id          a fresh id, unique across tests and concurrent sessions
    state_root            a fresh --root for pyrunc; after the test every container in it is
                          `delete --force`d and assert_no_residue() must pass
    runc_root             the same for runc (its own root: the state formats differ)
    pyrunc_cmd(*args, input=None, timeout=60, check=False, env=None, cwd=None)
                          runs the INSTALLED pyrunc with `--root <state_root>` first;
                          returns CompletedProcess[str] (stdout/stderr are read from files,
                          so a container holding the stdio open cannot hang the call)
    runc_cmd(...)         likewise for /usr/sbin/runc with `--root <runc_root>`
    assert_no_residue     the function below, as a fixture

Tests import the installed package (./setup.sh test runs pytest with -P, and tests/ has no
__init__.py, so the checkout is not on sys.path). Plain helpers shared by test modules live
beside this file (pytest puts tests/ on sys.path): support.py (the pyrunc binary, running
commands through files, run_ok, init_pid, cgroup helpers) and mountinfo.py (mount(2),
umount2(2) and /proc/self/mountinfo parsing).
"""
from __future__ import annotations

import copy
import ctypes
import importlib.util
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import pytest

from support import assert_succeeded, find_pyrunc, remove_cgroup_tree, run_with_files

REPO = Path(__file__).resolve().parent.parent
RUNC = "/usr/sbin/runc"
BUSYBOX_BUNDLE_CONFIG = REPO / "bundles" / "busybox" / "config.json"

# ---------------------------------------------------------------------------------------
# A private mount + IPC namespace for the whole pytest process, before any test runs:
# mounts made by tests (or by runtimes they start) never reach the host's namespace.

CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
NAMESPACE_MARKER = "PYRUNC_TEST_PRIVATE_MNTNS"


def _enter_private_namespaces() -> None:
    current = os.readlink("/proc/self/ns/mnt")
    if os.environ.get(NAMESPACE_MARKER) == current:
        return  # already done for this process (or inherited from a parent that did)
    if os.geteuid() != 0:
        return  # nothing here may mount without root; integration tests skip themselves
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNS | CLONE_NEWIPC) != 0:
        errno = ctypes.get_errno()
        raise pytest.UsageError(f"unshare(CLONE_NEWNS|CLONE_NEWIPC): {os.strerror(errno)}")
    # Without this the new namespace still shares propagation with the host's mounts.
    if libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        errno = ctypes.get_errno()
        raise pytest.UsageError(f"mount --make-rprivate /: {os.strerror(errno)}")
    os.environ[NAMESPACE_MARKER] = os.readlink("/proc/self/ns/mnt")


def pytest_configure(config: pytest.Config) -> None:
    _enter_private_namespaces()


# ---------------------------------------------------------------------------------------
# Residue: state dirs, processes and cgroups a test's containers left behind

_GLOBAL_OPTIONS_WITH_VALUE = {"--root", "--log", "--log-format", "--criu", "--rootless"}


def _container_id_in(args: Iterable[str]) -> Optional[str]:
    """The id named by a create/run command line (its last word), else None."""
    words = list(args)
    index = 0
    while index < len(words):
        word = words[index]
        if word in _GLOBAL_OPTIONS_WITH_VALUE:
            index += 2
            continue
        if word.startswith("-"):
            index += 1
            continue
        if word in ("create", "run") and index + 1 < len(words):
            candidate = words[-1]
            # only ids runc would accept can name state or cgroups worth checking
            return candidate if re.fullmatch(r"[\w+\-.]+", candidate) and candidate not in (".", "..") else None
        return None
    return None


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _own_cgroups() -> list[tuple[str, str]]:
    """(hierarchy key "id:controllers", path) of this process, from /proc/self/cgroup."""
    result = []
    for line in _read("/proc/self/cgroup").splitlines():
        hierarchy_id, controllers, path = line.split(":", 2)
        result.append((f"{hierarchy_id}:{controllers}", path))
    return result


def _cgroup_dirs(container_id: str) -> list[str]:
    """Where the runtimes' default (relative) cgroupsPath puts `container_id`: beneath this
    process's own cgroup in every mounted hierarchy."""
    own = {}
    for key, path in _own_cgroups():
        controllers = key.split(":", 1)[1]
        own[controllers] = path
    dirs = []
    for line in _read("/proc/self/mountinfo").splitlines():
        fields = line.split()
        separator = fields.index("-")
        fstype, super_options = fields[separator + 1], fields[separator + 3]
        root, mountpoint = fields[3], fields[4]
        if fstype == "cgroup2":
            path = own.get("")
        elif fstype == "cgroup":
            options = set(super_options.split(","))
            path = next((p for c, p in own.items() if c and set(c.split(",")) <= options), None)
        else:
            continue
        if path is None or not (path + "/").startswith(root.rstrip("/") + "/"):
            continue
        relative = path[len(root.rstrip("/")):].strip("/")
        dirs.append(os.path.join(mountpoint, relative, container_id))
    return dirs


def _processes_of(container_ids: set[str], markers: Iterable[str]) -> list[int]:
    """Pids in a container cgroup of one of `container_ids` (beneath our own cgroup in any
    hierarchy), or whose command line mentions one of `markers` (e.g. the state root)."""
    own = dict(_own_cgroups())
    prefixes = {
        key: [path.rstrip("/") + "/" + cid for cid in container_ids] for key, path in own.items()
    }
    markers = [m.encode() for m in markers if m]
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        pid = int(entry)
        try:
            cgroup_lines = _read(f"/proc/{pid}/cgroup").splitlines()
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        ours = any(marker in cmdline for marker in markers)
        for line in cgroup_lines:
            hierarchy_id, controllers, path = line.split(":", 2)
            for prefix in prefixes.get(f"{hierarchy_id}:{controllers}", ()):
                if path == prefix or path.startswith(prefix + "/"):
                    ours = True
        if ours:
            found.append(pid)
    return found


def assert_no_residue(
    state_root: os.PathLike | str,
    container_ids: Iterable[str] = (),
    grace: float = 10.0,
) -> None:
    """Fail if anything of the containers under `state_root` (and of `container_ids`, which
    may already be gone from it) is left: a state dir, a process (in its cgroup or naming
    the state root), or a cgroup directory beneath ours. What is found is then cleaned up
    (SIGKILL by pid, rmdir) so one failing test does not leak onto the machine."""
    state_root = str(state_root)
    ids = set(container_ids)
    leftover_state = []
    if os.path.isdir(state_root):
        leftover_state = sorted(
            e for e in os.listdir(state_root)
            # .pyrunc-cache holds compiled seccomp filters shared by containers
            if e != ".pyrunc-cache" and os.path.isdir(os.path.join(state_root, e))
        )
    ids.update(leftover_state)

    # Killed processes linger a moment as zombies until their parent (often pid 1) reaps them.
    deadline = time.monotonic() + grace
    while True:
        pids = _processes_of(ids, [state_root])
        if not pids or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    deadline = time.monotonic() + grace
    while True:
        cgroups = [d for cid in sorted(ids) for d in _cgroup_dirs(cid) if os.path.isdir(d)]
        if not cgroups or time.monotonic() >= deadline:
            break
        time.sleep(0.05)

    problems = []
    if leftover_state:
        problems.append(f"state dirs left in {state_root}: {leftover_state}")
    if pids:
        described = []
        for pid in pids:
            try:
                described.append(f"{pid} ({_read(f'/proc/{pid}/cmdline').replace(chr(0), ' ').strip()})")
            except OSError:
                described.append(str(pid))
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        problems.append(f"processes left: {', '.join(described)}")
    if cgroups:
        problems.append(f"cgroups left: {cgroups}")
        time.sleep(0.2)  # let the SIGKILLed members leave before rmdir
        for directory in cgroups:
            remove_cgroup_tree(directory)
    assert not problems, "residue after test: " + "; ".join(problems)


# ---------------------------------------------------------------------------------------
# Rootfs and bundles


def _load_rootfs_builder():
    spec = importlib.util.spec_from_file_location(
        "pyrunc_tests_build_rootfs", REPO / "bundles" / "build_rootfs.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def rootfs_builder():
    return _load_rootfs_builder()


@pytest.fixture(scope="session")
def rootfs_dir(tmp_path_factory, rootfs_builder) -> Path:
    """A busybox rootfs shared by the session's bundles (mounted read-only by default)."""
    if not os.path.exists("/bin/busybox"):
        pytest.fail("/bin/busybox is missing: run ./setup.sh (installs busybox-static)")
    dest = tmp_path_factory.mktemp("busybox") / "rootfs"
    rootfs_builder.build_rootfs(str(dest))
    return dest


@pytest.fixture(scope="module")
def userns_rootfs(rootfs_builder) -> str:
    """A busybox rootfs every uid can traverse, host uid 100000 (the mapped root of a
    user namespace) included: rootfs_dir sits under pytest's 0700 base temp dir, which
    that uid cannot pass while the init, already in its user namespace, bind-mounts it
    (runc needs the same). Mount it read-only: it is shared by the module's tests."""
    top = tempfile.mkdtemp(prefix="pyrunc-userns-")
    try:
        os.chmod(top, 0o755)
        rootfs = os.path.join(top, "rootfs")
        rootfs_builder.build_rootfs(rootfs)
        yield rootfs
    finally:
        shutil.rmtree(top, ignore_errors=True)


def _base_config() -> dict:
    """The default `runc spec` dict: pyrunc's own generator, or the committed demo bundle's
    config when pyrunc.spec.default_spec is not available."""
    try:
        from pyrunc.spec import default_spec

        return default_spec()
    except (ImportError, AttributeError):
        with open(BUSYBOX_BUNDLE_CONFIG) as f:
            return json.load(f)


@pytest.fixture(scope="session")
def bundle_template(rootfs_dir) -> dict:
    config = _base_config()
    config["root"] = {"path": str(rootfs_dir), "readonly": True}
    config["process"]["terminal"] = False
    config["process"]["args"] = ["true"]
    config["hostname"] = "pyrunc"
    # No cgroupsPath: the default relative path puts each container's cgroup beneath the
    # test process's own cgroup, the only place tests may create cgroups.
    config.setdefault("linux", {}).pop("cgroupsPath", None)
    return config


class BundleFactory:
    """Makes bundle directories under the test's tmp_path from the session template."""

    def __init__(self, directory: Path, template: dict, rootfs_builder: Any):
        self.directory = directory
        self._template = template
        self._rootfs_builder = rootfs_builder
        self._counter = itertools.count()

    def template(self) -> dict:
        """A fresh deep copy of the template config, for the test to modify and write()."""
        return copy.deepcopy(self._template)

    def write(self, config: dict, name: Optional[str] = None) -> Path:
        bundle_dir = self.directory / (name or f"bundle{next(self._counter)}")
        bundle_dir.mkdir(parents=True, exist_ok=True)
        (bundle_dir / "config.json").write_text(json.dumps(config, indent=2))
        return bundle_dir

    def __call__(
        self,
        edit: Optional[Callable[[dict], Any]] = None,
        *,
        args: Optional[list[str]] = None,
        private_rootfs: bool = False,
        name: Optional[str] = None,
    ) -> Path:
        """A bundle dir whose config.json is the template with process.args = `args` and
        then `edit(config)` applied. private_rootfs=True gives the bundle its own rootfs/
        (relative root.path) for tests that write to it or set root.readonly false."""
        config = self.template()
        if args is not None:
            config["process"]["args"] = list(args)
        bundle_dir = self.directory / (name or f"bundle{next(self._counter)}")
        bundle_dir.mkdir(parents=True, exist_ok=True)
        if private_rootfs:
            self._rootfs_builder.build_rootfs(str(bundle_dir / "rootfs"))
            config["root"]["path"] = "rootfs"
        if edit is not None:
            edit(config)
        return self.write(config, bundle_dir.name)


@pytest.fixture
def bundle(tmp_path, bundle_template, rootfs_builder) -> BundleFactory:
    return BundleFactory(tmp_path / "bundles", bundle_template, rootfs_builder)


_id_counter = itertools.count()


@pytest.fixture
def container_id() -> str:
    # pid + counter + random: concurrent sessions share the cgroup the ids are created in.
    return f"pt{os.getpid()}-{next(_id_counter)}-{uuid.uuid4().hex[:6]}"


# ---------------------------------------------------------------------------------------
# State roots and runners


class _Runtime:
    """One runtime binary with its own state root; remembers every id it was asked about."""

    def __init__(self, binary: Optional[str], root: Path):
        self.binary = binary
        self.root = root
        self.seen_ids: set[str] = set()

    def listed_ids(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(e.name for e in self.root.iterdir() if e.is_dir())

    def run(
        self,
        *args: Any,
        input: Optional[str] = None,
        timeout: float = 60,
        check: bool = False,
        env: Optional[dict] = None,
        cwd: Optional[os.PathLike | str] = None,
    ) -> subprocess.CompletedProcess:
        if self.binary is None:
            pytest.fail("pyrunc is not installed (run ./setup.sh, or set PYRUNC_BIN)")
        words = [str(a) for a in args]
        command = [self.binary, "--root", str(self.root), *words]
        found_id = _container_id_in(words)
        if found_id:
            self.seen_ids.add(found_id)
        try:
            result = run_with_files(command, input=input, timeout=timeout, env=env, cwd=cwd)
        finally:
            self.seen_ids.update(self.listed_ids())
        if check:
            assert_succeeded(result)
        return result

    def cleanup(self) -> None:
        """`delete --force` every container in the root (also those it lists as gone)."""
        if self.binary is None or not os.path.exists(self.binary):
            return
        for container_id in self.listed_ids():
            subprocess.run(
                [self.binary, "--root", str(self.root), "delete", "--force", container_id],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=60,
            )


def _runtime_fixture(binary: Optional[str], prefix: str):
    # Short paths under /tmp: sockets placed in a state dir must fit in sun_path (108).
    root = Path(tempfile.mkdtemp(prefix=prefix))
    runtime = _Runtime(binary, root)
    try:
        yield runtime
    finally:
        try:
            runtime.cleanup()
            assert_no_residue(root, runtime.seen_ids)
        finally:
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def _pyrunc_runtime():
    yield from _runtime_fixture(find_pyrunc(), "pyrunc-")


@pytest.fixture
def _runc_runtime():
    if not os.access(RUNC, os.X_OK):
        pytest.skip(f"{RUNC} is not installed")
    yield from _runtime_fixture(RUNC, "runc-")


@pytest.fixture
def state_root(_pyrunc_runtime) -> Path:
    return _pyrunc_runtime.root


@pytest.fixture
def runc_root(_runc_runtime) -> Path:
    return _runc_runtime.root


@pytest.fixture
def pyrunc_cmd(_pyrunc_runtime) -> Callable[..., subprocess.CompletedProcess]:
    return _pyrunc_runtime.run


@pytest.fixture
def runc_cmd(_runc_runtime) -> Callable[..., subprocess.CompletedProcess]:
    return _runc_runtime.run


@pytest.fixture(name="assert_no_residue")
def assert_no_residue_fixture() -> Callable[..., None]:
    return assert_no_residue
