"""Plain helpers shared by the test modules (fixtures stay in conftest.py). tests/ is on
sys.path (pytest inserts the directory of tests/conftest.py; there is no __init__.py), so
a test module says `from support import run_ok`."""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Iterator, Optional

import pytest

# ---------------------------------------------------------------------------------------
# The pyrunc binary


def find_pyrunc() -> Optional[str]:
    """The installed console script: $PYRUNC_BIN, next to this interpreter, the
    interpreter's scripts dir, then PATH (a pyenv shim there is slow, hence last)."""
    override = os.environ.get("PYRUNC_BIN")
    if override:
        return override
    for directory in (os.path.dirname(sys.executable), sysconfig.get_path("scripts")):
        candidate = os.path.join(directory, "pyrunc")
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("pyrunc")


def pyrunc_binary() -> str:
    """find_pyrunc(), failing the test when pyrunc is not installed."""
    found = find_pyrunc()
    if not found:
        pytest.fail("pyrunc is not installed (run ./setup.sh, or set PYRUNC_BIN)")
    return found


# ---------------------------------------------------------------------------------------
# Running commands


def _read_back(f) -> str:
    f.seek(0)
    return f.read().decode(errors="replace")


def run_with_files(
    command: list[str],
    *,
    input: Optional[str] = None,
    timeout: float = 60,
    env: Optional[dict] = None,
    cwd: Optional[os.PathLike | str] = None,
) -> subprocess.CompletedProcess:
    """Run `command` with stdout/stderr in files, not pipes: a created container (or a
    daemon's child) holds the runtime's stdio open, so reading a pipe to EOF would wait
    for the container instead of the command. On a timeout the TimeoutExpired carries
    what was written so far as its output and stderr (str)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            completed = subprocess.run(
                command,
                input=input.encode() if input is not None else None,
                stdin=None if input is not None else subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                timeout=timeout,
                env=env,
                cwd=cwd,
            )
        except subprocess.TimeoutExpired as expired:
            expired.output, expired.stderr = _read_back(out), _read_back(err)
            raise
        return subprocess.CompletedProcess(command, completed.returncode, _read_back(out), _read_back(err))


def assert_succeeded(result: subprocess.CompletedProcess) -> None:
    if result.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, result.args))}: exit status {result.returncode}\n"
            f"stdout: {result.stdout}\nstderr: {result.stderr}"
        )


# ---------------------------------------------------------------------------------------
# Containers, through the pyrunc_cmd fixture


def run_ok(pyrunc_cmd, bundle_dir: Path, container_id: str, timeout: float = 30) -> str:
    """`run` the bundle, assert it exited 0, return its stdout."""
    result = pyrunc_cmd("run", "-b", str(bundle_dir), container_id, timeout=timeout)
    assert result.returncode == 0, f"run failed ({result.returncode}): {result.stderr}"
    return result.stdout


def init_pid(pyrunc_cmd, container_id: str) -> int:
    """The host pid of the container's init, from `state`."""
    result = pyrunc_cmd("state", container_id, check=True)
    pid = json.loads(result.stdout)["pid"]
    assert isinstance(pid, int) and pid > 0, result.stdout
    return pid


def wait_for(condition, timeout: float = 5.0) -> bool:
    """Poll `condition()` every 50 ms until it is true (True) or `timeout` s pass (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def read_stripped(path: str) -> str:
    """A (cgroup or proc) file's content without the trailing newline."""
    with open(path) as f:
        return f.read().strip()


def cgroup_dirs(state_root: Path, container_id: str) -> dict[str, str]:
    """{controller: host directory} of a container, from its state.json ("unified" for
    the cgroup v2 directory)."""
    state = json.loads((state_root / container_id / "state.json").read_text())
    out = {}
    for key, path in state["cgroup"]["dirs"].items():
        for name in (key.split(",") if key else ["unified"]):
            out[name] = path
    return out


def remove_cgroup_tree(top: str) -> None:
    """rmdir `top` and every cgroup below it, deepest first; a cgroup still in use (or
    already gone) is left to the caller's residue check."""
    for directory, subdirs, _ in os.walk(top, topdown=False):
        for name in subdirs:
            try:
                os.rmdir(os.path.join(directory, name))
            except OSError:
                pass
    try:
        os.rmdir(top)
    except OSError:
        pass


# --- offline images: docker-archive tars that `ctr images import`, `docker load` take

def tar_tree(rootfs: Path, destination: Path) -> None:
    """A deterministic tar of `rootfs` (root-owned, sorted, mtime 0): one image layer."""

    def normalize(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        info.mtime = 0
        return info

    with tarfile.open(destination, "w", format=tarfile.PAX_FORMAT) as archive:
        for top, dirs, files in os.walk(rootfs):
            dirs.sort()
            for name in sorted(dirs + files):
                path = os.path.join(top, name)
                archive.add(path, arcname=os.path.relpath(path, rootfs), recursive=False,
                            filter=normalize)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def build_docker_archive(layer_tar: Path, destination: Path, reference: str, image_config: dict) -> None:
    """A `docker save`-shaped archive (manifest.json, config, one layer.tar) that
    `ctr images import` and `docker load` accept."""
    diff_id = _sha256_file(layer_tar)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": image_config,
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_id}"]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "pyrunc tests"}],
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    manifest = [{"Config": config_name, "RepoTags": [reference], "Layers": [f"{diff_id}/layer.tar"]}]
    with tarfile.open(destination, "w") as archive:
        def add_bytes(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))

        add_bytes(config_name, config_bytes)
        archive.add(str(layer_tar), arcname=f"{diff_id}/layer.tar")
        add_bytes("manifest.json", json.dumps(manifest).encode())


# --- cgroups seen from the test process

def cgroup_hierarchies() -> dict[str, str]:
    """mountpoint -> our own cgroup path in it, for every cgroup hierarchy mounted at its
    root: each v1 one (named ones such as name=systemd too) and the hybrid cgroup2
    "unified" one, where runtimes create the container's directory as well."""
    own = {}
    for line in open("/proc/self/cgroup").read().splitlines():
        _, controllers, path = line.split(":", 2)
        own[controllers] = path
    result = {}
    for line in open("/proc/self/mountinfo").read().splitlines():
        fields = line.split()
        separator = fields.index("-")
        fstype, options = fields[separator + 1], set(fields[separator + 3].split(","))
        if fields[3] != "/":
            continue
        if fstype == "cgroup2" and "" in own:
            result[fields[4]] = own[""]
        elif fstype == "cgroup":
            for controllers, path in own.items():
                if controllers and set(controllers.split(",")) <= options:
                    result[fields[4]] = path
    return result


def cgroup_dirs_below(parent: str) -> list[str]:
    """Every directory beneath `parent` (an absolute cgroupsPath) in every hierarchy."""
    found = []
    for mountpoint in cgroup_hierarchies():
        top = os.path.join(mountpoint, parent.lstrip("/"))
        for directory, subdirs, _ in os.walk(top):
            for name in subdirs:
                found.append(os.path.join(directory, name))
    return sorted(found)


def cgroup_parent_below_own(name: str) -> Iterator[str]:
    """An absolute cgroup path `<deepest own cgroup>/<name>` beneath this process's own
    cgroup in EVERY hierarchy (the deepest of our own paths, when the others are its
    prefixes), for engines' cgroup-parent settings (conmon, docker and CRI apply it as
    is); the directories made below it are removed afterwards."""
    hierarchies = cgroup_hierarchies()
    own_paths = sorted(set(hierarchies.values()), key=len)
    deepest = own_paths[-1] if own_paths else "/"
    for path in own_paths:
        if not (deepest + "/").startswith(path.rstrip("/") + "/"):
            pytest.skip(f"our cgroups {own_paths} are not nested: no common parent to use")
    parent = f"{deepest.rstrip('/')}/{name}"
    # Which intermediate dirs we create in each hierarchy, to remove exactly those.
    created = []
    for mountpoint in hierarchies:
        path = mountpoint
        for part in parent.strip("/").split("/"):
            path = os.path.join(path, part)
            if not os.path.isdir(path):
                created.append(path)
    try:
        yield parent
    finally:
        for top in sorted(created, key=len, reverse=True):
            if os.path.isdir(top):
                remove_cgroup_tree(top)


# ---------------------------------------------------------------------------------------
# The qemu guest of tests/vm


def load_vm_guest():
    """tests/vm/guest.py as a module (tests/vm is not a package, and the checkout is not on
    sys.path under -P): the guest launcher the tests/vm/test_*_guest.py modules boot."""
    import importlib.util
    name = "pyrunc_tests_vm_guest"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parent / "vm" / "guest.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def require_vm_guest(guest) -> None:
    """Skip (saying why) unless the guest can boot here: qemu, a kernel, a static busybox,
    and not already inside a guest."""
    try:
        guest.find_qemu()
        guest.find_kernel()
        guest.find_busybox()
    except guest.GuestError as err:
        print(f"skipping the qemu guest: {err}")
        pytest.skip(str(err))
    if os.environ.get("PYRUNC_IN_VM") == "1":
        pytest.skip("already inside the guest")
