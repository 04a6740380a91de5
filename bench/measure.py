"""The timed operations. Each returns samples in milliseconds (or kB for RSS); the
caller alternates runtimes between samples so that drift on the machine (another job,
page cache, CPU frequency) spreads over all of them alike."""
from __future__ import annotations

import itertools
import time

from bench.runtimes import Runtime

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
