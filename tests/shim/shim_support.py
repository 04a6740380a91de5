"""A private containerd (tests/engines' Containerd) that finds pyrunc's shim on its PATH,
and helpers for the shim tests.

containerd derives the shim binary from the runtime name (io.containerd.pyrunc.v2 ->
containerd-shim-pyrunc-v2) and looks it up on its PATH: the installed pyrunc's bin dir
goes first there. Shim sockets live in /run/containerd/s and the runtime root in
/run/containerd/runc/<namespace>, both on the private tmpfs of private_run_dirs."""
from __future__ import annotations

import os
import re
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from engine_support import (CONTAINERD, CTR, IMAGE_REF, Containerd, CtrEngine, assert_cgroups_empty,
                            mounts_below, processes_mentioning, require, state_dirs, wait_for_no_processes,
                            wait_until)
from support import pyrunc_binary

RUNTIME = "io.containerd.pyrunc.v2"
NODE_RUNTIME = "io.containerd.pyrunc-node.v2"
SHIM_NAME = "containerd-shim-pyrunc-v2"


def own_shims(pyrunc: str) -> str:
    """What marks this install's shim processes (their argv names the installed command):
    other checkouts' shims on a shared machine are neither waited for nor killed."""
    return os.path.join(os.path.dirname(pyrunc), SHIM_NAME)


class ShimEngine(CtrEngine):
    """ctr with --runtime io.containerd.pyrunc.v2; cgroups beneath the test's parent."""

    def run_args(self, runtime: str, container_id: str) -> list[str]:
        return ["--runtime", runtime, "--cgroup", f"{self.cgroup_parent}/{container_id}"]

    def run(self, name: str, *command: str, flags=(), runtime: str = RUNTIME, **kwargs):
        return self.ctr("run", *self.run_args(runtime, name), *flags, IMAGE_REF, name, *command, **kwargs)

    def task_status(self, name: str) -> str:
        for line in self.ctr("tasks", "list").stdout.splitlines()[1:]:
            words = line.split()
            if words and words[0] == name:
                return words[-1]
        return ""

    def task_pid(self, name: str) -> int:
        for line in self.ctr("tasks", "list").stdout.splitlines()[1:]:
            words = line.split()
            if words and words[0] == name:
                return int(words[1])
        raise AssertionError(f"no task {name}")

    def wait_stopped(self, name: str, timeout: float = 15) -> None:
        wait_until(lambda: self.task_status(name) in ("STOPPED", ""), timeout, f"{name} to stop")

    def delete_task(self, name: str) -> int:
        """`ctr tasks delete` and the exit status ctr 1.6 reports only as a warning."""
        result = self.ctr("tasks", "delete", name)
        found = re.search(r"exit with non-zero exit code (\d+)", result.stderr)
        return int(found.group(1)) if found else 0

    def remove(self, name: str) -> None:
        self.ctr("tasks", "kill", "--signal", "SIGKILL", name, check=False)
        wait_until(lambda: self.task_status(name) in ("STOPPED", ""), 10, f"{name} killed")
        self.ctr("tasks", "delete", name, check=False)
        self.ctr("containers", "delete", name, check=False)

    def bundle(self, name: str) -> Path:
        return self.containerd.directory / "state" / "io.containerd.runtime.v2.task" / self.namespace / name

    def shim_address(self, name: str) -> str:
        return (self.bundle(name) / "address").read_text()

    def shim_processes(self) -> list[str]:
        return shim_processes_here(self.pyrunc)


def shim_processes_here(pyrunc: str) -> list[str]:
    """This install's shim processes (own_shims) in this test's mount namespace, where
    its containerd runs (other sessions on the machine run theirs in their own)."""
    ours = os.readlink("/proc/self/ns/mnt")

    def here(entry: str) -> bool:
        try:
            return os.readlink(f"/proc/{entry.split()[0]}/ns/mnt") == ours
        except OSError:
            return False
    return [p for p in processes_mentioning(own_shims(pyrunc)) if here(p)]


def shim_call(address: str, method: str, request, response_type=None):
    """One Task service call to a shim, as containerd makes it."""
    from pyrunc.shim import shim_pb2 as pb
    from pyrunc.shim import ttrpc
    client = ttrpc.Client(address)
    try:
        return client.call("containerd.task.v2.Task", method, request, response_type or pb.Empty)
    finally:
        client.close()


@pytest.fixture(scope="module")
def shim_containerd(private_run_dirs, engine_docker_archive, engine_cgroup_parent) -> Iterator[ShimEngine]:
    require(CONTAINERD, CTR)
    pyrunc = pyrunc_binary()
    bin_dir = os.path.dirname(pyrunc)
    if not os.access(os.path.join(bin_dir, SHIM_NAME), os.X_OK):
        pytest.fail(f"{SHIM_NAME} is not installed next to {pyrunc} (pip install .[shim])")
    directory = Path(tempfile.mkdtemp(prefix="pe-shim-", dir="/tmp"))
    saved_path = os.environ.get("PATH", "")
    os.environ["PATH"] = f"{bin_dir}:{saved_path}"
    daemon = Containerd(directory)
    problems = []
    try:
        daemon.start()
        engine = ShimEngine(daemon, pyrunc, engine_cgroup_parent)
        engine.ctr("images", "import", str(engine_docker_archive), timeout=120)
        yield engine
        left = engine.ctr("containers", "list", "--quiet", check=False).stdout.split()
        if left:
            problems.append(f"containerd containers left: {left}")
    finally:
        os.environ["PATH"] = saved_path
        try:
            daemon.stop()
        except AssertionError as error:
            problems.append(str(error))
        left_processes = wait_for_no_processes(str(directory))
        try:
            wait_until(lambda: not shim_processes_here(pyrunc), 5, "the shims to exit")
        except AssertionError:
            left = shim_processes_here(pyrunc)
            for entry in left:  # by pid, and only this test's
                try:
                    os.kill(int(entry.split()[0]), signal.SIGKILL)
                except ProcessLookupError:
                    pass
            left_processes += left
        if left_processes:
            problems.append(f"processes left: {left_processes}")
        if mounts_below(str(directory)):
            problems.append(f"mounts left: {mounts_below(str(directory))}")
        shutil.rmtree(directory, ignore_errors=True)
    assert not problems, "; ".join(problems)


def assert_clean(engine: ShimEngine, names: list[str]) -> None:
    """Nothing of these containers left: not in containerd, no state dir, no cgroup, no
    shim process, no socket."""
    problems = []
    listed = set(engine.ctr("containers", "list", "--quiet").stdout.split())
    for name in names:
        if name in listed:
            problems.append(f"container {name} left in containerd")
            engine.remove(name)
    left_state = [d for d in state_dirs(engine.runtime_root()) if d in names]
    if left_state:
        problems.append(f"runtime state dirs left: {left_state}")
    try:
        wait_until(lambda: not engine.shim_processes(), 10, "the shims to exit")
    except AssertionError:
        problems.append(f"shim processes left: {engine.shim_processes()}")
    sockets = [s for s in os.listdir("/run/containerd/s") if not s.startswith(".")] \
        if os.path.isdir("/run/containerd/s") else []
    if sockets:
        problems.append(f"shim sockets left: {sockets}")
    try:
        assert_cgroups_empty(engine.cgroup_parent)
    except AssertionError as error:
        problems.append(str(error))
    assert not problems, "; ".join(problems)


@pytest.fixture
def ctr(shim_containerd):
    """shim_containerd, whose containers (named with new_name) are checked gone after the test."""
    names: list[str] = []
    shim_containerd.names = names
    yield shim_containerd
    assert_clean(shim_containerd, names)


def new_name(ctr, engine_name: str, suffix: str = "") -> str:
    ctr.names.append(engine_name + suffix)
    return engine_name + suffix
