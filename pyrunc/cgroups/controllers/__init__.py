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

A new controller is one new module here plus its place in ALL (imported only by what
applies, checks or reports resources, never by placement)."""

from __future__ import annotations

from pyrunc.cgroups.controllers import blkio, cpu, cpuset, devices, hugetlb, memory, network, pids, rdma, unified

# runc's order: the order of the writes and of the stats
ALL = (memory, cpu, cpuset, pids, blkio, hugetlb, network, rdma, devices, unified)
