"""cgroup placement (and, with the cgroups issue, resource limits) for one container.

Interface used by `pyrunc.operations` (keep it stable):

    mode() -> "unified" | "hybrid" | "legacy"
    Manager.for_container(cgroups_path: str, container_id: str, systemd: bool = False,
                          annotations: dict | None = None) -> Manager
        runc's cgroupfs path semantics: absolute path → below each hierarchy's root;
        relative path → below the CALLER's own cgroup in that hierarchy (/proc/self/cgroup);
        empty → relative path "<container_id>". A systemd form ("slice:prefix:name")
        without systemd=True → CgroupError. systemd=True → the systemd driver's
        SystemdManager (pyrunc.cgroups.systemd; `annotations`: the spec's, for
        org.systemd.property.*), which starts its unit in join().
    m.create() -> None          mkdir every missing directory (v1: each mounted controller
                                hierarchy incl. name=systemd; v2/hybrid: the unified dir too),
                                remembering which ones it created
    m.join(pid: int) -> None    write pid into cgroup.procs of every directory
    m.pids() -> list[int]       all pids in the container cgroup (recursive)
    m.kill_all(sig: int) -> None
    m.freeze() / m.thaw() / m.frozen() -> bool
    m.destroy() -> None         kill nothing; rmdir the directories create() made, deepest
                                first, sub-cgroups included, retrying briefly on EBUSY
    m.to_state() -> dict / Manager.from_state(d: dict) -> Manager   (persisted in state.json)

Extensions (compatible with the above):

    m.create(controllers=("memory", ...))   additionally enable those cgroup2 controllers in
                                the ancestors' cgroup.subtree_control (only needed before
                                writing limits; placement alone needs none). In hybrid mode
                                only controllers the unified hierarchy offers are enabled.
    m.mode                      the mode the manager was built for
    m.paths -> dict[str, str]   {hierarchy key: directory}; key "" is the cgroup2 directory,
                                v1 keys are /proc/self/cgroup controller fields ("cpu,cpuacct",
                                "name=systemd")
    m.unified_path -> str | None  the cgroup2 directory (for clone3 CLONE_INTO_CGROUP)
    m.runc_cgroup_paths() -> dict[str, str]   runc's state.json "cgroup_paths" shape
                                (one key per controller, "" for cgroup2)
    m.freeze(timeout=5.0)       bounded wait; on failure the cgroup is thawed again
    CgroupError                 PyruncError subclass raised by everything here

Ordering that callers must respect:
  - create() before spawn (CLONE_INTO_CGROUP needs the directory) and persist to_state()
    right after create(), so a crash before `start` still lets `delete` remove them.
  - join(init pid) before the init unshares its cgroup namespace or forks: the namespace
    root and every child inherit the cgroup at that moment. CLONE_INTO_CGROUP covers only
    cgroup2; on hybrid/legacy the v1 hierarchies still need join() (idempotent).
  - delete: kill_all(SIGKILL), wait until pids() is empty (reap the init), then destroy().
    destroy() on a populated cgroup fails with "device or resource busy".

Imports: os and pyrunc.errors only (this is on the create/delete/state hot path).
See docs/cgroups.md for the path table and why cgroupspy is not used.
"""

from __future__ import annotations

import os

from pyrunc.cgroups._paths import UNIFIED_KEY, CgroupError, is_below

__all__ = ["CgroupError", "Manager", "mode"]

# signal.SIGKILL without importing signal (enum) on the hot path; Linux value on every arch.
_SIGKILL = 9

_mounts_cache: list | None = None
_mode_cache: str | None = None


def _cgroup_mounts() -> list:
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
        _mode_cache = detect_mode(_cgroup_mounts())
    return _mode_cache


def warm_up_migration() -> None:
    """Start, in a thread, the wait that this process's first migration into a v1 cgroup
    costs, so that it passes while the caller parses and plans.

    Writing a pid to cgroup.procs write-locks cgroup_threadgroup_rwsem, whose rcu_sync
    first waits for an RCU grace period (5-20 ms on this VM) unless another writer held it
    within the last grace period. The thread migrates this process into the v1 cgroup it
    is already in (a no-op: tasks already in the destination are skipped, no controller
    callback runs) every 3 ms for 100 ms, so the rcu_sync stays open until the runtime
    places its init. Nothing on cgroup v2: CLONE_INTO_CGROUP migrates nothing. Best
    effort: any failure just ends the thread."""
    if mode() == "unified":
        return
    from pyrunc.cgroups import _paths
    try:
        own = _paths.parse_proc_cgroup(_read("/proc/self/cgroup"))
        v1 = [h for h in _paths.hierarchies(_cgroup_mounts(), mode(), own) if h.version == 1]
        if not v1:
            return
        procs = _paths.join(v1[0].mountpoint, _paths.own_relative(v1[0], own)) + "/cgroup.procs"
    except (OSError, CgroupError):
        return
    import _thread
    _thread.start_new_thread(_migrate_in_place, (procs, str(os.getpid())))


def _migrate_in_place(procs: str, pid: str) -> None:
    import time
    deadline = time.monotonic() + 0.1
    while time.monotonic() < deadline:
        try:
            _write(procs, pid)
        except OSError:
            return
        time.sleep(0.003)


def _describe(err: OSError) -> str:
    return os.strerror(err.errno).lower() if err.errno else str(err).lower()


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _write(path: str, data: str) -> None:
    # One write() per call: cgroup files act on each write, buffered I/O could split it.
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, data.encode())
    finally:
        os.close(fd)


class Manager:
    """The cgroup directories of one container and what create() made of them."""

    __slots__ = ("mode", "_dirs", "_mounts", "created")

    def __init__(self, mode: str, dirs: dict[str, str], mounts: dict[str, str],
                 created: list[str] | None = None):
        self.mode = mode
        self._dirs = dirs
        self._mounts = mounts
        # Directories create() made, top-down within each hierarchy; destroy() removes
        # only these (and sub-cgroups below a container directory among them).
        self.created: list[str] = list(created or [])

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
        current_mode = mode()
        own = _paths.parse_proc_cgroup(_read("/proc/self/cgroup"))
        hiers = _paths.hierarchies(_cgroup_mounts(), current_mode, own)
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

    def _v1_dir(self, controller: str) -> str | None:
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

    def create(self, controllers: tuple[str, ...] | list[str] = ()) -> None:
        made: list[str] = []
        try:
            for key, path in self._dirs.items():
                new = _mkdirs(self._mounts[key], path)
                made.extend(new)
                if new and key and "cpuset" in key.split(","):
                    from pyrunc.cgroups import _v1
                    _v1.copy_cpuset_down(new)
            unified = self._dirs.get(UNIFIED_KEY)
            if controllers and unified is not None:
                from pyrunc.cgroups import _v2
                _v2.enable_controllers(self._mounts[UNIFIED_KEY], unified, controllers,
                                       strict=self.mode == "unified")
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

    def join(self, pid: int, *, unified_done: bool = False) -> None:
        """Move `pid` into every hierarchy's directory; unified_done: it was born in the
        cgroup2 one (CLONE_INTO_CGROUP), so only the v1 hierarchies are left."""
        for key, path in self._dirs.items():
            if unified_done and key == UNIFIED_KEY:
                continue
            try:
                _write(path + "/cgroup.procs", str(pid))
            except OSError as e:
                hint = ""
                if e.errno == 28 and "cpuset" in key.split(","):  # ENOSPC
                    hint = " (cpuset.cpus or cpuset.mems is empty)"
                elif e.errno == 3:  # ESRCH
                    hint = f" (pid {pid} does not exist)"
                raise CgroupError(f"join cgroup {path}: {_describe(e)}{hint}") from None

    # ---- inspection ----------------------------------------------------------------------

    def pids(self) -> list[int]:
        # Union over every hierarchy: a process moved out of one hierarchy by hand is
        # still found (and killed) through the others.
        found: set[int] = set()
        for path in self._dirs.values():
            found.update(_procs_recursive(path))
        return sorted(found)

    # ---- freezer ------------------------------------------------------------------------------

    def _freezer(self) -> tuple[int, str] | None:
        v1 = self._v1_dir("freezer")
        if v1 is not None:
            return 1, v1
        unified = self._dirs.get(UNIFIED_KEY)
        if unified is not None and os.path.exists(unified + "/cgroup.freeze"):
            return 2, unified
        return None

    def freeze(self, timeout: float = 5.0) -> None:
        freezer = self._freezer()
        if freezer is None:
            raise CgroupError("freeze: no freezer cgroup is available "
                              "(cgroup v1 freezer not mounted, no cgroup.freeze)")
        version, path = freezer
        if version == 1:
            from pyrunc.cgroups import _v1
            _v1.freeze(path, timeout)
        else:
            from pyrunc.cgroups import _v2
            _v2.freeze(path, timeout)

    def thaw(self, timeout: float = 5.0) -> None:
        freezer = self._freezer()
        if freezer is None:
            return  # nothing can be frozen without a freezer
        version, path = freezer
        if version == 1:
            from pyrunc.cgroups import _v1
            _v1.thaw(path, timeout)
        else:
            from pyrunc.cgroups import _v2
            _v2.thaw(path, timeout)

    def frozen(self) -> bool:
        freezer = self._freezer()
        if freezer is None:
            return False
        version, path = freezer
        if version == 1:
            from pyrunc.cgroups import _v1
            return _v1.frozen(path)
        from pyrunc.cgroups import _v2
        return _v2.frozen(path)

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
                _write(unified + "/cgroup.kill", "1")
                swept = True
            except FileNotFoundError:
                pass  # kernel < 5.14, or the cgroup is already gone: signal pid by pid
            except OSError as e:
                raise CgroupError(f"kill cgroup {unified}: {_describe(e)}") from None
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
                        raise CgroupError(f"kill pid {pid}: {_describe(e)}") from None
                signalled.update(new)
        finally:
            if froze or (was_frozen and sig == _SIGKILL):
                self.thaw()

    # ---- resources, stats, events (implemented below the class) ------------------------------

    def apply(self, resources: dict | None, *, devices=(), update: bool = False) -> dict:
        """Write linux.resources (see _apply); returns the normalized resources."""
        return _apply(self, resources, devices=devices, update=update)

    def stats(self) -> dict:
        return _collect_stats(self)

    def oom_watch(self):
        return _oom_watch(self)

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
                err = _remove_tree(path)
                if err is not None:
                    failed.append((path, err))
                    remaining.append(path)
            else:
                # An ancestor create() made: it may since hold another container's cgroup,
                # which is not ours to remove, so failing here is not an error.
                if not _has_subdirs(path):
                    _rmdir_retrying(path)
        self.created = [p for p in self.created if p in remaining]
        if failed:
            path, err = failed[0]
            more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
            raise CgroupError(f"remove cgroup {path}: {_describe(err)}{more}")


# ---- filesystem helpers ---------------------------------------------------------------------


def _mkdirs(mountpoint: str, path: str) -> list[str]:
    """mkdir -p of `path` below `mountpoint`; returns the directories made, top-down."""
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
            raise CgroupError(f"create cgroup {current}: {_describe(e)}") from None
    raise CgroupError(f"create cgroup {path}: parent directories keep disappearing")


def _procs_recursive(path: str) -> list[int]:
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
            raise CgroupError(f"read cgroup {current}/cgroup.procs: {_describe(e)}") from None
    return pids


def _has_subdirs(path: str) -> bool:
    try:
        with os.scandir(path) as entries:
            return any(e.is_dir(follow_symlinks=False) for e in entries)
    except OSError:
        return False


def _rmdir_retrying(path: str) -> OSError | None:
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


def _remove_tree(path: str) -> OSError | None:
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
        err = _rmdir_retrying(current)
        if err is not None:
            return err
    return None


# ---- resources (linux.resources), stats, OOM events ---------------------------------------
# Kept apart from the placement code above; the heavy parts live in _resources, _bpf and
# _stats and are imported only when a container actually has resources or stats are asked.


class _DirProbe:
    """_resources.Probe on a manager's real directories."""

    def __init__(self, mgr: Manager):
        self._mgr = mgr

    def dir(self, controller: str) -> str | None:
        if controller == "":
            return self._mgr.unified_path
        return self._mgr._v1_dir(controller)

    def exists(self, controller: str, name: str) -> bool:
        directory = self.dir(controller)
        return directory is not None and os.path.exists(os.path.join(directory, name) if name else directory)

    def read_int(self, controller: str, name: str) -> int:
        directory = self.dir(controller)
        try:
            return int(_read(f"{directory}/{name}").split()[0])
        except (OSError, ValueError, IndexError, TypeError):
            return 0


def _apply(self: Manager, resources: dict | None, *, devices=(), update: bool = False) -> dict:
    """Apply linux.resources `resources` (raw config.json form or already normalized);
    returns the normalized resources (persist them for `update`). `devices`:
    linux.devices, which runc also allows in the device cgroup. update=True: zero
    values leave the current setting alone and devices are not rewritten."""
    from pyrunc import log
    from pyrunc.cgroups import _resources

    r = _resources.normalize(resources)  # idempotent: normalized input passes through
    version = 2 if self.mode == "unified" else 1
    for field in _resources.ignored_fields(r, version):
        log.debug(f"{field} is ignored (as runc 1.1 does)")
    probe = _DirProbe(self)
    unified = self.unified_path
    bpf_fallback = False
    rules = None
    if not update:
        rules = _resources.device_rules(r["devices"], devices)
    if version == 2:
        writes = _resources.v2_plan(r, probe)
        if r["memory"]["checkBeforeUpdate"] and update and r["memory"]["limit"] > 0:
            usage = probe.read_int("", "memory.current")
            if usage > r["memory"]["limit"]:
                raise CgroupError(f"linux.resources.memory.limit: rejecting memory limit "
                                  f"{r['memory']['limit']} below usage {usage}")
        needed = _resources.v2_controllers(r)
    else:
        bpf_fallback = rules is not None and self._v1_dir("devices") is None
        writes = _resources.v1_plan(r, probe, devices=None if bpf_fallback else rules)
        if bpf_fallback:
            # No v1 devices hierarchy (for_container() already refused the case where
            # one exists but is unmounted): the kernel still enforces a cgroup2 device
            # program, so use that when cgroup2 is there.
            if unified is None:
                log.warning("no devices cgroup: device access of the container is not restricted")
                rules = None
        if r["unified"]:
            writes += _hybrid_unified_writes(self, r)
        needed = [w.name.split(".", 1)[0] for w in writes if w.controller == ""]
    needed = [c for c in needed if c != "cgroup"]
    if needed and unified is not None:
        from pyrunc.cgroups import _v2
        mount = self._mounts[UNIFIED_KEY].rstrip("/")
        available = set(_read(mount + "/cgroup.controllers").split())
        for controller in needed:
            if controller not in available:
                field = next((w.field for w in writes if w.controller == ""
                              and w.name.startswith(controller + ".")), "linux.resources")
                raise CgroupError(f"{field}: cgroup controller {controller} is not available "
                                  f"(not in {mount}/cgroup.controllers)")
        _v2.enable_controllers(self._mounts[UNIFIED_KEY], unified, needed, strict=True)
    for w in writes:
        directory = probe.dir(w.controller)
        if directory is None:
            ctrl = w.controller or "cgroup2"
            raise CgroupError(f"{w.field}: cgroup controller {ctrl} is not mounted on this host")
        _write_resource(directory, w)
    if (version == 2 or bpf_fallback) and rules is not None and unified is not None:
        from pyrunc.cgroups import _bpf
        _bpf.apply(unified, rules)
    return r


def _hybrid_unified_writes(mgr: Manager, r: dict) -> list:
    """linux.resources.unified on a hybrid host: runc refuses it outright ("cannot use
    unified on cgroup v1"); pyrunc writes keys whose controller the cgroup2 hierarchy
    offers there (hugetlb on this project's host) and refuses the others by name."""
    from pyrunc.cgroups._resources import Write
    if mgr.unified_path is None:
        raise CgroupError("linux.resources.unified: cannot use unified on cgroup v1 (no cgroup2 mounted)")
    available = set(_read(mgr._mounts[UNIFIED_KEY].rstrip("/") + "/cgroup.controllers").split())
    out = []
    for key, value in r["unified"].items():
        controller = key.split(".", 1)[0]
        if controller != "cgroup" and controller not in available:
            raise CgroupError(f"linux.resources.unified[{key!r}]: controller {controller!r} "
                              "is not available in cgroup2 on this hybrid host")
        out.append(Write("", key, value, f"linux.resources.unified[{key!r}]"))
    return out


def _write_resource(directory: str, w) -> None:
    path = f"{directory}/{w.name}"
    try:
        _write(path, w.value)
    except OSError as e:
        if e.errno == 2 and w.ignore_missing:
            return
        detail = _describe(e)
        if e.errno in (2, 13) and w.field.startswith("linux.resources.unified"):
            detail = f"unknown cgroup file {w.name} ({detail})"
        elif e.errno == 19 and w.name == "rdma.max":  # ENODEV
            detail = f"no RDMA device named {w.value.split()[0]!r} (see /sys/class/infiniband)"
        elif e.errno == 19 and w.name == "net_prio.ifpriomap":
            detail = (f"no network interface named {w.value.split()[0]!r} in the host's "
                      "network namespace (net_prio names interfaces there)")
        elif e.errno == 16 and w.name in ("memory.limit_in_bytes", "memory.max"):
            usage = _read_first_int(directory, ("memory.usage_in_bytes", "memory.current"))
            detail = f"unable to set memory limit to {w.value} (current usage: {usage})"
        raise CgroupError(f"{w.field}: write {w.value!r} to {path}: {detail}") from None
    if w.name == "cpu.shares":
        # the kernel clamps silently; runc reads back and reports the bound
        got = _read_first_int(directory, ("cpu.shares",))
        if got != int(w.value):
            kind = "maximum" if int(w.value) > got else "minimum"
            raise CgroupError(f"{w.field}: the {kind} allowed cpu-shares is {got}")


def _read_first_int(directory: str, names) -> int:
    for name in names:
        try:
            return int(_read(f"{directory}/{name}").split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return 0


def _collect_stats(self: Manager) -> dict:
    """runc's events "stats" data object (types.Stats), from whichever hierarchies exist."""
    from pyrunc.cgroups import _stats
    return _stats.collect(self)


def _oom_watch(self: Manager):
    """An object with fileno() (poll it) and check() -> number of new OOM kills; close()."""
    from pyrunc.cgroups import _stats
    return _stats.OomWatch(self)

