"""One module per linux.resources controller (youki's libcgroups layout, pids.py is the
model). Each module exposes:

    SECTION         the linux.resources key it reads ("memory"; cpu and cpuset share "cpu")
    CONTROLLERS     the cgroup controllers that can enforce it (`pyrunc check`)
    ON_V2           whether cgroup2 has it (network: no, ignored there as by runc)
    validate(raw, path) -> the section's normalized value (CgroupError names the field)
    merge(old, new) -> the section after `runc update` (zero values mean "unchanged")
    ignored(r, version) -> fields accepted and ignored, as runc 1.1 does
    v1(r, probe) / v2(r, probe) -> [Write]   the cgroup file writes, in runc's order
    v2_controllers(r) -> cgroup2 controllers to enable in the ancestors
    stats_v1(s, v1_dirs, unified) / stats_v2(s, dir)   fill runc's events stats

A new controller is one new module here plus its name in SECTIONS. Modules are imported
on first use, only those of the sections asked for: `create` loads the controllers its
config uses, placement none."""

from __future__ import annotations

# linux.resources section -> its controller modules, in runc's order (the order of the
# writes and of the statistics)
SECTIONS = {"memory": ("memory",), "cpu": ("cpu", "cpuset"), "pids": ("pids",), "blockIO": ("blkio",),
            "hugepageLimits": ("hugetlb",), "network": ("network",), "rdma": ("rdma",),
            "devices": ("devices",), "unified": ("unified",)}


def of(sections) -> list:
    """The controller modules of `sections` (section names, e.g. a resources dict's
    keys), in runc's order; unknown names are ignored."""
    wanted = set(sections)
    # __import__ with a fromlist returns the submodule; importlib itself is not loaded
    # under the launcher's -S
    return [__import__(f"{__name__}.{name}", fromlist=("SECTION",))
            for section, names in SECTIONS.items() if section in wanted for name in names]


def all_modules() -> list:
    return of(SECTIONS)
