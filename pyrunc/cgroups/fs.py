"""The low layer: cgroupfs as files. Which hierarchies are mounted (read once per
process), one-write file I/O, and the directory walks placement needs (mkdir -p,
processes below a cgroup, removal bottom-up). Imports os and pyrunc.errors only: it is on
the create/delete/state hot path."""

from __future__ import annotations

import os

from pyrunc.cgroups._paths import CgroupError

_mounts_cache: list | None = None
_mode_cache: str | None = None


def cgroup_mounts() -> list:
    global _mounts_cache
    if _mounts_cache is None:
        from pyrunc.cgroups._paths import parse_cgroup_mounts
        with open("/proc/self/mountinfo") as f:
            _mounts_cache = parse_cgroup_mounts(f.read())
    return _mounts_cache


def mode() -> str:
    """"unified" (cgroup2 at /sys/fs/cgroup), "hybrid" (v1 hierarchies plus a cgroup2
    mount, usually /sys/fs/cgroup/unified) or "legacy" (v1 only). Read once per process."""
    global _mode_cache
    if _mode_cache is None:
        from pyrunc.cgroups._paths import detect_mode
        _mode_cache = detect_mode(cgroup_mounts())
    return _mode_cache


def describe(err: OSError) -> str:
    return os.strerror(err.errno).lower() if err.errno else str(err).lower()


def read(path: str) -> str:
    with open(path) as f:
        return f.read()


def write(path: str, data: str) -> None:
    # One write() per call: cgroup files act on each write, buffered I/O could split it.
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, data.encode())
    finally:
        os.close(fd)


def may_create_and_join(path: str) -> bool:
    """Whether this user may make `path` (write access to its deepest existing ancestor)
    or, when it exists, move processes into it (cgroup.procs writable); read-only
    cgroupfs counts as not permitted."""
    if os.path.isdir(path):
        return os.access(path + "/cgroup.procs", os.W_OK)
    parent = os.path.dirname(path)
    while parent != "/" and not os.path.isdir(parent):
        parent = os.path.dirname(parent)
    return os.access(parent, os.W_OK)


def mkdirs(mountpoint: str, path: str) -> list[str]:
    """mkdir -p of `path` below `mountpoint`; returns the directories made, top-down.
    The container's own directory first: its parents usually exist (a mkdir each per
    hierarchy, instead of one per level)."""
    try:
        os.mkdir(path, 0o755)
        return [path]
    except FileExistsError:
        return []
    except FileNotFoundError:
        pass  # a parent is missing: walk down from the mount point
    except OSError as e:
        raise CgroupError(f"create cgroup {path}: {describe(e)}") from None
    rel = path[len(mountpoint.rstrip("/")) + 1:]
    for _attempt in range(5):
        made: list[str] = []
        current = mountpoint.rstrip("/")
        try:
            for part in rel.split("/"):
                current += "/" + part
                try:
                    os.mkdir(current, 0o755)
                    made.append(current)
                except FileExistsError:
                    pass
            return made
        except FileNotFoundError:
            # A concurrent destroy() removed an ancestor between our mkdirs: start over.
            for p in reversed(made):
                try:
                    os.rmdir(p)
                except OSError:
                    pass
            continue
        except OSError as e:
            for p in reversed(made):
                try:
                    os.rmdir(p)
                except OSError:
                    pass
            raise CgroupError(f"create cgroup {current}: {describe(e)}") from None
    raise CgroupError(f"create cgroup {path}: parent directories keep disappearing")


def procs_recursive(path: str) -> list[int]:
    pids: list[int] = []
    stack = [path]
    while stack:
        current = stack.pop()
        try:
            with open(current + "/cgroup.procs") as f:
                pids.extend(int(line) for line in f.read().split())
            with os.scandir(current) as entries:
                stack.extend(e.path for e in entries if e.is_dir(follow_symlinks=False))
        except FileNotFoundError:
            continue  # removed while we walked (or the container cgroup is gone)
        except OSError as e:
            if e.errno == 19:  # ENODEV: cgroup being torn down
                continue
            raise CgroupError(f"read cgroup {current}/cgroup.procs: {describe(e)}") from None
    return pids


def has_subdirs(path: str) -> bool:
    try:
        with os.scandir(path) as entries:
            return any(e.is_dir(follow_symlinks=False) for e in entries)
    except OSError:
        return False


def rmdir_retrying(path: str) -> OSError | None:
    """rmdir, retrying EBUSY (tasks still leaving the cgroup) for about 1 s."""
    import time

    delay = 0.01
    for attempt in range(8):
        try:
            os.rmdir(path)
            return None
        except FileNotFoundError:
            return None
        except OSError as e:
            if e.errno != 16 or attempt == 7:  # EBUSY
                return e
            time.sleep(delay)
            delay = min(delay * 2, 0.32)
    return None


def remove_tree(path: str) -> OSError | None:
    """Remove a container cgroup and any sub-cgroups the container made, bottom-up."""
    order: list[str] = []
    stack = [path]
    while stack:
        current = stack.pop()
        order.append(current)
        try:
            with os.scandir(current) as entries:
                stack.extend(e.path for e in entries if e.is_dir(follow_symlinks=False))
        except FileNotFoundError:
            continue
        except OSError as e:
            return e
    # order is parents-before-children; reversed removes children first.
    for current in reversed(order):
        err = rmdir_retrying(current)
        if err is not None:
            return err
    return None


def read_first_int(directory: str, names) -> int:
    for name in names:
        try:
            return int(read(f"{directory}/{name}").split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return 0
