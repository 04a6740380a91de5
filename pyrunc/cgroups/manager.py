"""The manager: where one container's cgroups are (placement), and what is done to them
as a whole: create, join, list, freeze/thaw, kill, destroy, persist. Resource limits
are pyrunc.cgroups._resources's, statistics pyrunc.cgroups._stats's; both are imported
only when asked for. Imports os, pyrunc.errors and the low layer (fs) only: this is on
the create/delete/state hot path."""

from __future__ import annotations

import _thread  # builtin: costs no file lookup
import os

from pyrunc.cgroups import fs
from pyrunc.cgroups._paths import UNIFIED_KEY, CgroupError, is_below

# signal.SIGKILL without importing signal (enum) on the hot path; Linux value on every arch.
_SIGKILL = 9


# One warm-up thread per process: (pid that runs it, monotonic time it stops at)
_warm_up = {"pid": 0, "until": 0.0, "procs": ""}
_warm_up_lock = _thread.allocate_lock()
# held around each in-place write of the warm-up and around a move of this process
# (move_self): a write of the old cgroup's path landing after a move would undo it
_self_migration = _thread.allocate_lock()


def warm_up_migration(seconds: float = 0.1) -> None:
    """Start, in a thread, the wait that this process's first migration into a v1 cgroup
    costs, so that it passes while the caller parses and plans.

    Writing a pid to cgroup.procs write-locks cgroup_threadgroup_rwsem, whose rcu_sync
    first waits for an RCU grace period (5-20 ms on this VM) unless another writer held it
    within the last grace period. The thread migrates this process into the v1 cgroup it
    is already in (a no-op: tasks already in the destination are skipped, no controller
    callback runs) every 3 ms until `seconds` after the latest call, so the rcu_sync stays
    open until the runtime places its init. A resident caller (the containerd shim, which
    creates many containers) calls this for each create and exec and ahead of them: one
    thread then keeps writing, instead of one per call. That first write holds cgroup_mutex
    while it waits (a cgroup mkdir waits behind it), so the earlier it starts the better.
    Nothing on cgroup v2: CLONE_INTO_CGROUP migrates nothing. Best effort: any failure
    just ends the thread."""
    if fs.mode() == "unified":
        return
    import time
    pid = os.getpid()
    with _warm_up_lock:
        _warm_up["until"] = max(_warm_up["until"], time.monotonic() + seconds)
        if _warm_up["pid"] == pid:
            return  # its thread is running (a forked child has none: pid differs)
        procs = _own_v1_procs()
        if procs is None:
            return
        _warm_up["pid"] = pid
        _warm_up["procs"] = procs
    _thread.start_new_thread(_migrate_in_place, (str(pid),))


def end_warm_up() -> None:
    """The placement it was for is done: the warm-up thread ends at its next write
    instead of writing for the rest of its 100 ms (~17 µs of CPU each, every 3 ms), for a
    caller that stays (`run`). Not for a resident caller: its other creates may still
    need it."""
    with _warm_up_lock:
        _warm_up["until"] = 0.0


def move_self(move) -> None:
    """Call `move()`, which moves this process into other cgroups, with no warm-up write
    in between; the warm-up writes into the new v1 cgroup afterwards."""
    with _self_migration:
        move()
        procs = _own_v1_procs()
        with _warm_up_lock:
            _warm_up["procs"] = procs or ""


def _own_v1_procs() -> str | None:
    """The cgroup.procs file of this process's cgroup in the first v1 hierarchy."""
    from pyrunc.cgroups import _paths
    try:
        own = _paths.parse_proc_cgroup(fs.read("/proc/self/cgroup"))
        v1 = [h for h in _paths.hierarchies(fs.cgroup_mounts(), fs.mode(), own) if h.version == 1]
    except (OSError, CgroupError):
        return None
    if not v1:
        return None
    return _paths.join(v1[0].mountpoint, _paths.own_relative(v1[0], own)) + "/cgroup.procs"


def _migrate_in_place(pid: str) -> None:
    import time
    while True:
        with _self_migration:
            with _warm_up_lock:  # ends and says so at once: a later call then starts another
                procs = _warm_up["procs"]
                if time.monotonic() >= _warm_up["until"] or not procs:
                    _warm_up["pid"] = 0
                    return
            try:
                fs.write(procs, pid)
            except OSError:
                with _warm_up_lock:
                    _warm_up["pid"] = 0
                return
        time.sleep(0.003)


class Manager:
    """The cgroup directories of one container and what create() made of them."""

    __slots__ = ("mode", "_dirs", "_mounts", "created", "rootless", "unpermitted")

    def __init__(self, mode: str, dirs: dict[str, str], mounts: dict[str, str],
                 created: list[str] | None = None):
        self.mode = mode
        self._dirs = dirs
        self._mounts = mounts
        # Directories create() made, top-down within each hierarchy; destroy() removes
        # only these (and sub-cgroups below a container directory among them).
        self.created: list[str] = list(created or [])
        self.rootless = False  # create(rootless=True)
        # Hierarchies a rootless create() left out: the user may not make its directory.
        self.unpermitted: list[str] = []

    # ---- construction -------------------------------------------------------------

    @classmethod
    def for_container(cls, cgroups_path: str, container_id: str, systemd: bool = False,
                      annotations: dict | None = None) -> Manager:
        from pyrunc.cgroups import _paths

        if systemd:
            from pyrunc.cgroups.systemd import SystemdManager
            return SystemdManager.for_container(cgroups_path, container_id, annotations)
        cgroups_path = cgroups_path or ""
        # Validate the path first so a bad config fails the same way on every machine.
        _paths.clean_cgroups_path(cgroups_path, container_id)
        current_mode = fs.mode()
        own = _paths.parse_proc_cgroup(fs.read("/proc/self/cgroup"))
        hiers = _paths.hierarchies(fs.cgroup_mounts(), current_mode, own)
        if not hiers:
            raise CgroupError("no usable cgroup hierarchy is mounted (see /proc/self/mountinfo)")
        if current_mode != "unified":
            # As in runc: on v1 the devices cgroup is the only device-access enforcement,
            # so running without it must not happen silently.
            bound = any("devices" in k.split(",") for k in own if k)
            if bound and not any("devices" in h.key.split(",") for h in hiers):
                raise CgroupError("the cgroup v1 devices hierarchy is not mounted")
        dirs = _paths.resolve_dirs(cgroups_path, container_id, hiers, own)
        return cls(current_mode, dirs, {h.key: h.mountpoint for h in hiers})

    @classmethod
    def from_state(cls, d: dict) -> Manager:
        if isinstance(d, dict) and d.get("systemd"):
            from pyrunc.cgroups.systemd import SystemdManager
            return SystemdManager.from_state(d)
        try:
            state_mode = d["mode"]
            dirs = d["dirs"]
            mounts = d["mounts"]
            created = d["created"]
        except (KeyError, TypeError):
            raise CgroupError("state.json: cgroup: missing mode, dirs, mounts or created") from None
        if state_mode not in ("unified", "hybrid", "legacy"):
            raise CgroupError(f"state.json: cgroup.mode: unknown mode {state_mode!r}")
        if not (isinstance(dirs, dict) and isinstance(mounts, dict) and isinstance(created, list)):
            raise CgroupError("state.json: cgroup: dirs and mounts must be objects, created a list")
        for key, path in dirs.items():
            mnt = mounts.get(key)
            if not (isinstance(path, str) and isinstance(mnt, str) and is_below(path, mnt)):
                raise CgroupError(f"state.json: cgroup.dirs[{key!r}]: {path!r} is not below its mount")
        for path in created:
            # destroy() removes these, so each must be the container dir or an ancestor of it.
            if not (isinstance(path, str) and any(
                    is_below(path, mounts[key]) and (path == leaf or is_below(leaf, path))
                    for key, leaf in dirs.items())):
                raise CgroupError(f"state.json: cgroup.created: {path!r} is not a container cgroup")
        return cls(state_mode, dict(dirs), dict(mounts), created)

    def to_state(self) -> dict:
        return {"mode": self.mode, "dirs": dict(self._dirs), "mounts": dict(self._mounts),
                "created": list(self.created)}

    # ---- accessors -----------------------------------------------------------------

    @property
    def paths(self) -> dict[str, str]:
        return dict(self._dirs)

    @property
    def unified_path(self) -> str | None:
        return self._dirs.get(UNIFIED_KEY)

    def runc_cgroup_paths(self) -> dict[str, str]:
        out = {}
        for key, path in self._dirs.items():
            if key == UNIFIED_KEY:
                out[""] = path
            else:
                for name in key.split(","):
                    out[name] = path
        return out

    def v1_dir(self, controller: str) -> str | None:
        for key, path in self._dirs.items():
            if key and controller in key.split(","):
                return path
        return None

    def sub_cgroup(self, spec: str) -> "Manager":
        """The existing sub-cgroup `spec` ("path" or "controller:path", runc exec --cgroup)
        of this container, as a manager that only joins (it created nothing)."""
        controller, sep, sub = spec.partition(":")
        if not sep:
            controller, sub = "", spec
        sub = sub.strip("/")
        if not sub or ".." in sub.split("/"):
            raise CgroupError(f"invalid --cgroup {spec!r}")
        dirs = {}
        for key, path in self._dirs.items():
            if controller and controller not in key.split(",") and not (controller == "unified" and key == UNIFIED_KEY):
                dirs[key] = path
                continue
            target = os.path.join(path, sub)
            if not os.path.isdir(target):
                raise CgroupError(f"cgroup {target} does not exist")
            dirs[key] = target
        return Manager(self.mode, dirs, dict(self._mounts))

    # ---- create / join ----------------------------------------------------------------

    def create(self, controllers: tuple[str, ...] | list[str] = (), *, rootless: bool = False) -> None:
        """mkdir the container's directories. rootless (runc's rootless cgroups): a
        hierarchy where this user may not make the directory, or join an existing one,
        is left out, as runc leaves it when config.json names no cgroupsPath; a
        delegated cgroup2 subtree is used. apply() then refuses limits that would need
        a hierarchy left out."""
        self.rootless = rootless
        if rootless:
            for key, path in list(self._dirs.items()):
                if not fs.may_create_and_join(path):
                    del self._dirs[key]
                    self.unpermitted.append(key)
        made: list[str] = []
        try:
            for key, path in self._dirs.items():
                made.extend(fs.mkdirs(self._mounts[key], path))
                if key and "cpuset" in key.split(","):
                    from pyrunc.cgroups import _v1
                    _v1.fill_cpusets(self._mounts[key], path)
            unified = self._dirs.get(UNIFIED_KEY)
            if controllers and unified is not None:
                from pyrunc.cgroups import _v2
                _v2.enable_controllers(self._mounts[UNIFIED_KEY], unified, controllers,
                                       strict=self.mode == "unified")
            if not set(self._dirs.values()) <= set(made):
                self._check_preexisting()
        except BaseException:
            for path in reversed(made):
                try:
                    os.rmdir(path)
                except OSError:
                    pass
            raise
        for path in made:
            if path not in self.created:
                self.created.append(path)

    def _check_preexisting(self) -> None:
        """runc 1.1.5's checks of a container cgroup that already existed (factory
        Create; a directory create() made itself is empty and thawed): processes in it
        are only warned about, a frozen one is refused (the init would hang in it)."""
        pids = self.pids()
        if pids:
            from pyrunc import log
            log.warning(f"container's cgroup is not empty: {len(pids)} process(es) found")
            log.warning("DEPRECATED: running container in a non-empty cgroup won't be supported "
                        "in runc 1.2; https://github.com/opencontainers/runc/issues/3132")
        if self.frozen():
            raise CgroupError("container's cgroup unexpectedly frozen")

    def join(self, pid: int, *, unified_done: bool = False) -> None:
        """Move `pid` into every hierarchy's directory; unified_done: it was born in the
        cgroup2 one (CLONE_INTO_CGROUP), so only the v1 hierarchies are left."""
        for key, path in self._dirs.items():
            if unified_done and key == UNIFIED_KEY:
                continue
            try:
                fs.write(path + "/cgroup.procs", str(pid))
            except OSError as e:
                hint = ""
                if e.errno == 28 and "cpuset" in key.split(","):  # ENOSPC
                    hint = " (cpuset.cpus or cpuset.mems is empty)"
                elif e.errno == 3:  # ESRCH
                    hint = f" (pid {pid} does not exist)"
                raise CgroupError(f"join cgroup {path}: {fs.describe(e)}{hint}") from None

    # ---- inspection ----------------------------------------------------------------------

    def pids(self) -> list[int]:
        # Union over every hierarchy: a process moved out of one hierarchy by hand is
        # still found (and killed) through the others.
        found: set[int] = set()
        for path in self._dirs.values():
            found.update(fs.procs_recursive(path))
        return sorted(found)

    # ---- freezer ------------------------------------------------------------------------------

    def _freezer(self):
        """(module with freeze/thaw/frozen, directory), or None: the v1 freezer where
        it is mounted (hybrid included, as runc), else cgroup2's cgroup.freeze."""
        v1 = self.v1_dir("freezer")
        if v1 is not None:
            from pyrunc.cgroups import _v1
            return _v1, v1
        unified = self._dirs.get(UNIFIED_KEY)
        if unified is not None and os.path.exists(unified + "/cgroup.freeze"):
            from pyrunc.cgroups import _v2
            return _v2, unified
        return None

    def freeze(self, timeout: float = 5.0) -> None:
        freezer = self._freezer()
        if freezer is None:
            raise CgroupError("freeze: no freezer cgroup is available "
                              "(cgroup v1 freezer not mounted, no cgroup.freeze)")
        impl, path = freezer
        impl.freeze(path, timeout)

    def thaw(self, timeout: float = 5.0) -> None:
        freezer = self._freezer()
        if freezer is not None:  # nothing can be frozen without a freezer
            impl, path = freezer
            impl.thaw(path, timeout)

    def frozen(self) -> bool:
        freezer = self._freezer()
        if freezer is None:
            return False
        impl, path = freezer
        return impl.frozen(path)

    # ---- kill ----------------------------------------------------------------------------------

    def kill_all(self, sig: int) -> None:
        """Signal every process in the container cgroup (sub-cgroups included).

        SIGKILL with a cgroup2 directory that has cgroup.kill: one atomic write (on
        hybrid followed by a pid sweep over the v1 directories for strays). Otherwise, like runc's signalAllProcesses: freeze so nothing can fork between
        reading cgroup.procs and signalling, signal each pid, repeat until no new pid
        appears, then thaw. A container that was already paused stays paused, except
        for SIGKILL: v1-frozen tasks cannot die until thawed."""
        freezer = self._freezer()
        was_frozen = freezer is not None and self.frozen()
        unified = self._dirs.get(UNIFIED_KEY)
        swept = False
        if sig == _SIGKILL and unified is not None:
            try:
                fs.write(unified + "/cgroup.kill", "1")
                swept = True
            except FileNotFoundError:
                pass  # kernel < 5.14, or the cgroup is already gone: signal pid by pid
            except OSError as e:
                raise CgroupError(f"kill cgroup {unified}: {fs.describe(e)}") from None
            if swept and self.mode == "unified":
                if was_frozen:
                    self.thaw()
                return
            # Hybrid: a process that was put into the v1 hierarchies only would survive
            # cgroup.kill, so sweep pid by pid as well; no freeze is needed for that,
            # everything that could fork is already dying.
        froze = False
        if freezer is not None and not was_frozen and not swept:
            try:
                self.freeze()
                froze = True
            except CgroupError:
                pass  # fall back to re-reading until no new pid shows up
        try:
            signalled: set[int] = set()
            for _ in range(1000):
                new = [pid for pid in self.pids() if pid not in signalled]
                if not new:
                    break
                for pid in new:
                    try:
                        os.kill(pid, sig)
                    except ProcessLookupError:
                        pass
                    except OSError as e:
                        raise CgroupError(f"kill pid {pid}: {fs.describe(e)}") from None
                signalled.update(new)
        finally:
            if froze or (was_frozen and sig == _SIGKILL):
                self.thaw()

    # ---- resources, stats, events (pyrunc.cgroups._resources and _stats) -------------------------

    @property
    def unified_mount(self) -> str | None:
        return self._mounts.get(UNIFIED_KEY)

    def apply(self, resources: dict | None, *, devices=(), update: bool = False) -> dict:
        """Write linux.resources (see _resources.apply); returns the normalized resources."""
        from pyrunc.cgroups import _resources
        return _resources.apply(self, resources, devices=devices, update=update)

    def stats(self) -> dict:
        """runc's events "stats" data object (types.Stats), from whichever hierarchies exist."""
        from pyrunc.cgroups import _stats
        return _stats.collect(self)

    def oom_watch(self):
        """An object with fileno() (poll it) and check() -> number of new OOM kills; close()."""
        from pyrunc.cgroups import _stats
        return _stats.OomWatch(self)

    # ---- destroy -----------------------------------------------------------------------------

    def remove_if_empty(self) -> bool:
        """One rmdir per container cgroup, nothing else: True when all of them are gone,
        the usual case once the container stopped (then destroy() only has ancestors
        left). False at the first busy one (a process or a sub-cgroup in it): that needs
        kill_all, the wait and destroy()'s walk."""
        for path in set(self._dirs.values()):
            try:
                os.rmdir(path)
            except FileNotFoundError:
                pass
            except OSError:
                return False
        return True

    def destroy(self) -> None:
        leaves = set(self._dirs.values())
        failed: list[tuple[str, OSError]] = []
        remaining: list[str] = []
        # Deepest first: within one hierarchy children come before their parents.
        for path in sorted(set(self.created), key=lambda p: p.count("/"), reverse=True):
            if path in leaves:
                err = fs.remove_tree(path)
                if err is not None:
                    failed.append((path, err))
                    remaining.append(path)
            else:
                # An ancestor create() made: it may since hold another container's cgroup,
                # which is not ours to remove, so failing here is not an error.
                if not fs.has_subdirs(path):
                    fs.rmdir_retrying(path)
        self.created = [p for p in self.created if p in remaining]
        if failed:
            path, err = failed[0]
            more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
            raise CgroupError(f"remove cgroup {path}: {fs.describe(err)}{more}")
