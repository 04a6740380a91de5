"""cgroup v2 specifics: controller delegation and the cgroup.freeze protocol."""

from __future__ import annotations

from pyrunc.cgroups._paths import CgroupError
from pyrunc.cgroups.fs import describe, read, write


def enable_controllers(mountpoint: str, directory: str, controllers, strict: bool) -> None:
    """Enable `controllers` in cgroup.subtree_control of every ancestor of `directory`,
    from the hierarchy root down to its parent, so the container cgroup gets the
    interface files for limits.

    The "no internal processes" rule: a non-root cgroup that has processes cannot enable
    controllers for its children (EBUSY). A relative cgroupsPath puts the container
    below pyrunc's own cgroup, which holds pyrunc itself; that case needs an absolute
    path or a caller that lives in a leaf of its own. strict=False (hybrid) silently
    skips controllers the unified hierarchy does not offer: they belong to v1 there."""
    root = mountpoint.rstrip("/")
    wanted = [c for c in dict.fromkeys(controllers) if c]
    try:
        available = set(read(root + "/cgroup.controllers").split())
    except OSError as e:
        raise CgroupError(f"read {root}/cgroup.controllers: {describe(e)}") from None
    if not strict:
        wanted = [c for c in wanted if c in available]
    missing = [c for c in wanted if c not in available]
    if missing:
        raise CgroupError(f"cgroup controller {missing[0]} is not available in {root}/cgroup.controllers")
    if not wanted:
        return
    ancestors = [root]
    for part in directory[len(root) + 1:].split("/")[:-1]:
        ancestors.append(ancestors[-1] + "/" + part)
    for ancestor in ancestors:
        control = ancestor + "/cgroup.subtree_control"
        todo = wanted
        try:
            enabled = set(read(control).split())
            todo = [c for c in wanted if c not in enabled]
            if not todo:
                continue
            if ancestor != root and read(ancestor + "/cgroup.procs").split():
                # Domain controllers would fail with EBUSY here, but threaded ones (cpu,
                # cpuset, pids, perf_event) are accepted and silently turn the populated
                # cgroup into a thread root whose new children are "domain invalid" and
                # cannot be joined: refuse before touching the caller's cgroup.
                raise CgroupError(f"enable {' '.join(todo)} in {control}: the cgroup has member "
                                  "processes (cgroup v2 allows controllers only for cgroups without "
                                  "them; use an absolute linux.cgroupsPath or run pyrunc from a leaf cgroup)")
            offered = set(read(ancestor + "/cgroup.controllers").split())
            for c in todo:
                if c not in offered:
                    raise CgroupError(f"cgroup controller {c} is not delegated to {ancestor} "
                                      "(missing from its cgroup.controllers)")
            write(control, " ".join("+" + c for c in todo))
        except OSError as e:
            hint = ""
            if e.errno == 16:  # EBUSY
                hint = (" (the cgroup has processes; cgroup v2 allows controllers only for "
                        "cgroups without member processes)")
            raise CgroupError(f"enable {' '.join(todo)} in {control}: {describe(e)}{hint}") from None


def _events_frozen(directory: str) -> bool:
    for line in read(directory + "/cgroup.events").splitlines():
        if line.startswith("frozen "):
            return line.split()[1] == "1"
    return False


def _set(directory: str, value: str, timeout: float) -> None:
    import time

    want = value == "1"
    write(directory + "/cgroup.freeze", value)
    deadline = time.monotonic() + timeout
    delay = 0.0005
    while _events_frozen(directory) != want:
        if time.monotonic() >= deadline:
            verb = "freeze" if want else "thaw"
            raise CgroupError(f"{verb} cgroup {directory}: cgroup.events does not report "
                              f"frozen {value} after {timeout:g}s")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def freeze(directory: str, timeout: float) -> None:
    try:
        _set(directory, "1", timeout)
    except BaseException as e:
        try:
            write(directory + "/cgroup.freeze", "0")
        except OSError:
            pass
        if isinstance(e, OSError):
            raise CgroupError(f"freeze cgroup {directory}: {describe(e)}") from None
        raise


def thaw(directory: str, timeout: float) -> None:
    try:
        _set(directory, "0", timeout)
    except FileNotFoundError:
        return  # the cgroup is gone: nothing left to thaw
    except OSError as e:
        raise CgroupError(f"thaw cgroup {directory}: {describe(e)}") from None


def frozen(directory: str) -> bool:
    try:
        return read(directory + "/cgroup.freeze").strip() == "1"
    except FileNotFoundError:
        return False
    except OSError as e:
        if e.errno == 19:  # ENODEV
            return False
        raise CgroupError(f"read {directory}/cgroup.freeze: {describe(e)}") from None
