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

Layout (youki's libcgroups): fs is the low layer (mounts, one-write file I/O, directory
walks), manager the Manager (placement, freeze, kill, destroy), _paths the pure path
arithmetic, _v1/_v2 the freezer, cpuset and subtree_control protocols of each version;
_resources validates and applies linux.resources through one module per controller
(controllers/), _stats reports them, _bpf is cgroup2's device program.

Imports: os and pyrunc.errors only (this is on the create/delete/state hot path);
resources, statistics and the controllers are imported only when asked for.
See docs/cgroups.md for the path table and why cgroupspy is not used.
"""

from __future__ import annotations

from pyrunc.cgroups._paths import CgroupError
from pyrunc.cgroups.fs import mode
from pyrunc.cgroups.manager import Manager, end_warm_up, move_self, warm_up_migration

__all__ = ["CgroupError", "Manager", "end_warm_up", "mode", "move_self", "warm_up_migration"]
