"""cgroup v1 specifics: cpuset inheritance and the freezer.state protocol."""

from __future__ import annotations

import os

from pyrunc.cgroups._paths import CgroupError
from pyrunc.cgroups.fs import describe, read, write


def _cpuset_file(directory: str, name: str) -> str:
    # Hierarchies mounted with "noprefix" drop the "cpuset." prefix.
    prefixed = f"{directory}/cpuset.{name}"
    return prefixed if os.path.exists(prefixed) else f"{directory}/{name}"


def fill_cpusets(mountpoint: str, directory: str) -> None:
    """Joining a v1 cpuset cgroup whose cpus or mems are empty fails with ENOSPC, and a
    new one starts empty; like runc (fs/cpuset.go ensureParent), fill every level from
    below the hierarchy root down to `directory` that is empty with its parent's values,
    whether create() made it or found it."""
    root = mountpoint.rstrip("/")
    parent = root
    for part in directory[len(root) + 1:].split("/"):
        current = f"{parent}/{part}"
        for name in ("cpus", "mems"):
            target = _cpuset_file(current, name)
            try:
                if not read(target).strip():
                    write(target, read(_cpuset_file(parent, name)).strip() or "\n")
            except OSError as e:
                raise CgroupError(f"copy {parent} cpuset {name} into {target}: {describe(e)}") from None
        parent = current


def _state(directory: str) -> str:
    return read(directory + "/freezer.state").strip()


def freeze(directory: str, timeout: float) -> None:
    """Write FROZEN until freezer.state reads FROZEN. v1 can stay in FREEZING while tasks
    keep forking or joining; like runc, keep rewriting FROZEN and thaw briefly now and
    then so stuck tasks can move on. On failure the cgroup is thawed again: leaving it
    half frozen would wedge the container."""
    import time

    state_file = directory + "/freezer.state"
    deadline = time.monotonic() + timeout
    delay = 0.0005
    attempt = 0
    try:
        while True:
            write(state_file, "FROZEN")
            state = _state(directory)
            if state == "FROZEN":
                return
            if state != "FREEZING":
                raise CgroupError(f"freeze cgroup {directory}: unexpected freezer.state {state}")
            if time.monotonic() >= deadline:
                raise CgroupError(f"freeze cgroup {directory}: still FREEZING after {timeout:g}s")
            attempt += 1
            if attempt % 50 == 0:
                write(state_file, "THAWED")
                time.sleep(0.01)
            else:
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
    except OSError as e:
        _thaw_quietly(state_file)
        raise CgroupError(f"freeze cgroup {directory}: {describe(e)}") from None
    except BaseException:
        _thaw_quietly(state_file)
        raise


def _thaw_quietly(state_file: str) -> None:
    try:
        write(state_file, "THAWED")
    except OSError:
        pass


def thaw(directory: str, timeout: float) -> None:
    import time

    deadline = time.monotonic() + timeout
    delay = 0.0005
    try:
        write(directory + "/freezer.state", "THAWED")
        while _state(directory) != "THAWED":
            if time.monotonic() >= deadline:
                raise CgroupError(f"thaw cgroup {directory}: freezer.state is still "
                                  f"{_state(directory)} after {timeout:g}s (is a parent cgroup frozen?)")
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
    except FileNotFoundError:
        return  # the cgroup is gone: nothing left to thaw
    except OSError as e:
        raise CgroupError(f"thaw cgroup {directory}: {describe(e)}") from None


def frozen(directory: str) -> bool:
    """Frozen by this cgroup's own request (freezer.self_freezing), as runc reports
    "paused"; a cgroup frozen only through a frozen ancestor is not."""
    try:
        state = _state(directory)
        if state == "THAWED":
            return False
        try:
            return read(directory + "/freezer.self_freezing").strip() == "1"
        except FileNotFoundError:
            return state == "FROZEN"
    except FileNotFoundError:
        return False
    except OSError as e:
        raise CgroupError(f"read {directory}/freezer.state: {describe(e)}") from None
