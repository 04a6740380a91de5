"""The timed operations. Each returns samples in milliseconds (or kB for RSS); the
caller alternates runtimes between samples so that drift on the machine (another job,
page cache, CPU frequency) spreads over all of them alike."""
from __future__ import annotations

import itertools
import time

from bench.runtimes import Runtime, run_command

_ids = itertools.count()


def fresh_id(runtime: Runtime) -> str:
    return f"bench-{runtime.name}-{next(_ids)}"


def _timed(action) -> float:
    started = time.perf_counter_ns()
    action()
    return (time.perf_counter_ns() - started) / 1e6


def run_true(runtime: Runtime, bundle: str) -> float:
    """`run` of /bin/true in the foreground: create, start, wait, delete in one command."""
    container_id = fresh_id(runtime)
    try:
        return _timed(lambda: runtime.run("run", "-b", bundle, container_id))
    finally:
        if container_id in runtime.leftover_ids():
            runtime.run("delete", "--force", container_id, check=False)


def create_start_delete(runtime: Runtime, bundle: str) -> float:
    """The three commands an engine issues for a short-lived container."""
    container_id = fresh_id(runtime)

    def lifecycle() -> None:
        runtime.run("create", "-b", bundle, container_id)
        runtime.run("start", container_id)
        runtime.run("delete", "--force", container_id)

    try:
        return _timed(lifecycle)
    finally:
        if container_id in runtime.leftover_ids():
            runtime.run("delete", "--force", container_id, check=False)


def state_of_created(runtime: Runtime, container_id: str) -> float:
    return _timed(lambda: runtime.run("state", container_id))


def init_rss_kb(runtime: Runtime, bundle: str) -> float:
    """VmRSS of the init of a created (not started) container: what every idle container
    of this runtime costs while it waits for `start`."""
    container_id = fresh_id(runtime)
    runtime.run("create", "-b", bundle, container_id)
    try:
        pid = runtime.state(container_id)["pid"]
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return float(line.split()[1])
        raise RuntimeError(f"{runtime.name}: no VmRSS for the init (pid {pid})")
    finally:
        runtime.run("delete", "--force", container_id, check=False)


def _wait_exit(pid: int, timeout_s: float = 30.0) -> None:
    """Block until process `pid` (not our child: a container's init) has exited.
    A pidfd becomes readable at exit, before anyone reaps it; no polling of `state`."""
    import os
    import select

    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        if not poller.poll(timeout_s * 1000):
            raise RuntimeError(f"container init (pid {pid}) still running after {timeout_s:.0f} s")
    finally:
        os.close(pidfd)


def _read_pid_file(path: str) -> int:
    with open(path) as f:
        return int(f.read().strip())


def kill_running(runtime: Runtime, container_id: str) -> float:
    """`kill <id> SIGCONT` of a running container: a signal that leaves it running, so
    one container serves every sample."""
    return _timed(lambda: runtime.run("kill", container_id, "SIGCONT"))


def delete_stopped(runtime: Runtime, bundle: str, workdir: str) -> float:
    """`delete` (no --force) of a container whose process has exited; create, start and
    the wait for the exit are not timed."""
    container_id = fresh_id(runtime)
    pid_file = f"{workdir}/{container_id}.pid"
    runtime.run("create", "-b", bundle, "--pid-file", pid_file, container_id)
    try:
        pid = _read_pid_file(pid_file)
        runtime.run("start", container_id)
        _wait_exit(pid)
        return _timed(lambda: runtime.run("delete", container_id))
    finally:
        if container_id in runtime.leftover_ids():
            runtime.run("delete", "--force", container_id, check=False)


def _memory_cgroup_of(pid: int | str) -> tuple[str, str] | None:
    """(hierarchy, path) of `pid`'s memory cgroup: the v1 `memory` controller's line, or
    the v2 line when the v2 hierarchy has the memory controller."""
    with open(f"/proc/{pid}/cgroup") as f:
        lines = [line.rstrip("\n").split(":", 2) for line in f]
    for _, controllers, path in lines:
        if "memory" in controllers.split(","):
            return "v1", path
    for hierarchy_id, controllers, path in lines:
        if hierarchy_id == "0" and controllers == "":
            return "v2", path
    return None


def _memory_charged_file(pid: int | str) -> str | None:
    import os

    found = _memory_cgroup_of(pid)
    if found is None:
        return None
    version, path = found
    if version == "v1":
        candidate = f"/sys/fs/cgroup/memory{path}/memory.usage_in_bytes"
    else:
        base = "/sys/fs/cgroup/unified" if os.path.isdir("/sys/fs/cgroup/unified") else "/sys/fs/cgroup"
        candidate = f"{base}{path}/memory.current"
    return candidate if os.path.exists(candidate) else None


def created_memory(runtime: Runtime, bundle: str) -> tuple[float, float | None]:
    """For a created (not started) container: its init's VmRSS in kB, and the bytes
    charged to the container's memory cgroup in kB (None when the runtime put the init
    in no memory cgroup of its own, e.g. crun with --cgroup-manager=disabled)."""
    container_id = fresh_id(runtime)
    runtime.run("create", "-b", bundle, container_id)
    try:
        pid = runtime.state(container_id)["pid"]
        rss = None
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = float(line.split()[1])
        if rss is None:
            raise RuntimeError(f"{runtime.name}: no VmRSS for the init (pid {pid})")
        charged = None
        usage_file = _memory_charged_file(pid)
        if usage_file is not None and _memory_cgroup_of(pid) != _memory_cgroup_of("self"):
            with open(usage_file) as f:
                charged = int(f.read()) / 1024
        return rss, charged
    finally:
        runtime.run("delete", "--force", container_id, check=False)


def concurrent_lifecycles(runtime: Runtime, bundle: str, workdir: str, count: int,
                          parallel: int) -> tuple[float, int, list[str]]:
    """`count` lifecycles (create, start, wait for the exit, delete; distinct ids),
    `parallel` at a time. Returns (total wall ms, failures, first error messages)."""
    import subprocess
    import tempfile
    from concurrent.futures import ThreadPoolExecutor

    ids = [fresh_id(runtime) for _ in range(count)]
    errors: list[str] = []

    def command(*args: str) -> None:
        with tempfile.TemporaryFile() as err:
            returncode = run_command(runtime.command(*args), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=err,
                                     preexec_fn=runtime.preexec, timeout=60)
            if returncode != 0:
                err.seek(0)
                detail = err.read().decode(errors="replace").strip()
                raise RuntimeError(f"{runtime.name} {args[0]}: exit status {returncode}: {detail}")

    def lifecycle(container_id: str) -> bool:
        pid_file = f"{workdir}/{container_id}.pid"
        try:
            command("create", "-b", bundle, "--pid-file", pid_file, container_id)
            pid = _read_pid_file(pid_file)
            command("start", container_id)
            _wait_exit(pid)
            command("delete", container_id)
            return True
        except Exception as e:  # noqa: BLE001 - counted and reported, not fatal
            errors.append(str(e).splitlines()[0][:200] if str(e) else type(e).__name__)
            return False

    started = time.perf_counter_ns()
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        outcomes = list(pool.map(lifecycle, ids))
    wall = (time.perf_counter_ns() - started) / 1e6
    return wall, outcomes.count(False), errors[:3]


def floor_command(argv: list[str]) -> float:
    """A bare command started the way the runtimes are (fork, a no-op preexec hook,
    exec, stdio on /dev/null): the floors under the runtimes' figures."""
    import subprocess

    def action() -> None:
        if run_command(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, preexec_fn=lambda: None, timeout=60):
            raise RuntimeError(f"{argv[0]}: non-zero exit status")

    return _timed(action)
