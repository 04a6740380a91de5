"""Process attributes the init sets just before exec (runtime-spec 1.2-1.3, runc >= 1.2):
process.scheduler (sched_setattr), process.ioPriority (ioprio_set),
process.execCPUAffinity (sched_setaffinity), linux.memoryPolicy (set_mempolicy),
linux.personality (personality).

The kernel's names and numbers, the CPU/node list syntax, and `add_ops`, the plan's
part. The parser (pyrunc.spec.parser) takes its vocabularies from here; nothing here
touches the host.
"""
from __future__ import annotations

import errno

# include/uapi/linux/sched.h
SCHED_POLICIES = {"SCHED_OTHER": 0, "SCHED_FIFO": 1, "SCHED_RR": 2, "SCHED_BATCH": 3,
                  "SCHED_ISO": 4, "SCHED_IDLE": 5, "SCHED_DEADLINE": 6}
# SCHED_ISO is in the spec's list but was never merged into Linux: sched_setattr refuses it
UNSUPPORTED_POLICIES = frozenset(("SCHED_ISO",))
SCHED_FLAGS = {"SCHED_FLAG_RESET_ON_FORK": 0x01, "SCHED_FLAG_RECLAIM": 0x02,
               "SCHED_FLAG_DL_OVERRUN": 0x04, "SCHED_FLAG_KEEP_POLICY": 0x08,
               "SCHED_FLAG_KEEP_PARAMS": 0x10, "SCHED_FLAG_UTIL_CLAMP_MIN": 0x20,
               "SCHED_FLAG_UTIL_CLAMP_MAX": 0x40}
REALTIME_POLICIES = frozenset(("SCHED_FIFO", "SCHED_RR"))
# the utilization clamps need sched_util_min/max, for which the spec has no field (runc
# sends zeros: a clamp to 0); refused rather than guessed
UNVALUED_SCHED_FLAGS = frozenset(("SCHED_FLAG_UTIL_CLAMP_MIN", "SCHED_FLAG_UTIL_CLAMP_MAX"))

# include/uapi/linux/ioprio.h
IOPRIO_CLASSES = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}
IOPRIO_CLASS_SHIFT = 13

# include/uapi/linux/mempolicy.h
MPOL_MODES = {"MPOL_DEFAULT": 0, "MPOL_PREFERRED": 1, "MPOL_BIND": 2, "MPOL_INTERLEAVE": 3,
              "MPOL_LOCAL": 4, "MPOL_PREFERRED_MANY": 5, "MPOL_WEIGHTED_INTERLEAVE": 6}
MPOL_FLAGS = {"MPOL_F_STATIC_NODES": 1 << 15, "MPOL_F_RELATIVE_NODES": 1 << 14,
              "MPOL_F_NUMA_BALANCING": 1 << 13}
# modes that take no node list, and modes that need one (set_mempolicy(2))
MPOL_NO_NODES = frozenset(("MPOL_DEFAULT", "MPOL_LOCAL"))
MPOL_NEED_NODES = frozenset(("MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_PREFERRED_MANY",
                             "MPOL_WEIGHTED_INTERLEAVE"))

# include/uapi/linux/personality.h
PERSONALITY_DOMAINS = {"LINUX": 0x0000, "LINUX32": 0x0008}

# runc's ToCPUSet limit for CPU and node lists
MAX_CPU = 65536


def parse_cpu_list(text: str) -> list[int]:
    """A Linux CPU (or node) list, "0-3,7" (runc's ToCPUSet rules: empty items and
    spaces around items are skipped, a range is a-b with a <= b, at most 65536), as the
    sorted numbers; raises ValueError with the reason."""
    numbers: set[int] = set()
    items = [item.strip() for item in text.split(",")]
    if not any(items):
        raise ValueError("no CPUs in the list")
    for item in items:
        if not item:
            continue
        first, sep, last = item.partition("-")
        if not (first.isascii() and first.isdigit()) or (sep and not (last.isascii() and last.isdigit())):
            raise ValueError(f'invalid item "{item}"')
        low, high = int(first), int(last) if sep else int(first)
        if low > high:
            raise ValueError(f'invalid range "{item}"')
        if high > MAX_CPU:
            raise ValueError(f"{high} is larger than {MAX_CPU}")
        numbers.update(range(low, high + 1))
    return sorted(numbers)


def mask_bytes(numbers: list[int], size_bits: int = 0) -> bytes:
    """A kernel bitmap (unsigned long words, little-endian) with `numbers` set, at least
    `size_bits` wide."""
    bits = max(size_bits, (max(numbers) + 1) if numbers else 0)
    words = (bits + 63) // 64 or 1
    value = 0
    for n in numbers:
        value |= 1 << n
    return value.to_bytes(words * 8, "little")


# the reset mask of a final affinity left out: every CPU the kernel may have; the kernel
# narrows it to the cgroup's cpuset (runc 1.2 resets to the cgroup's CPUs)
ALL_CPUS = bytes([0xFF]) * (8192 // 8)


def ioprio_value(io_class: str, priority: int) -> int:
    return IOPRIO_CLASSES[io_class] << IOPRIO_CLASS_SHIFT | priority


def add_ops(plan, process, linux=None) -> None:
    """The attributes of `process` (and, for a container's process, of `linux`), each one
    op; every op names its field in its error."""
    if linux is not None and linux.personality is not None:
        domain = linux.personality.domain
        plan.personality(PERSONALITY_DOMAINS[domain],
                         what=f"set personality {domain} (linux.personality)")
    # the final CPUs before the scheduler: a SCHED_DEADLINE task may not change its
    # affinity, and may only be made one while its affinity spans its root domain
    affinity = process.exec_cpu_affinity
    if affinity is not None and (affinity.initial or affinity.final):
        if affinity.final:
            plan.sched_affinity(mask_bytes(parse_cpu_list(affinity.final)),
                                what=f"set CPU affinity {affinity.final} (process.execCPUAffinity.final)")
        else:
            plan.sched_affinity(ALL_CPUS, what="reset the CPU affinity to the cgroup's CPUs "
                                               "(process.execCPUAffinity.initial without final)")
    s = process.scheduler
    if s is not None:
        flags = 0
        for name in s.flags:
            flags |= SCHED_FLAGS[name]
        reasons = None
        if s.policy in REALTIME_POLICIES:
            # the kernel's rule, with RT group scheduling: a cgroup without realtime time
            reasons = {errno.EPERM: "operation not permitted (a realtime policy needs CAP_SYS_NICE and, "
                                    "with cgroup v1's cpu controller, linux.resources.cpu.realtimeRuntime)"}
        elif s.policy == "SCHED_DEADLINE":
            reasons = {errno.EPERM: "operation not permitted (SCHED_DEADLINE needs CAP_SYS_NICE and a CPU "
                                    "affinity spanning its root domain)",
                       errno.EBUSY: "device or resource busy (the CPUs' deadline bandwidth is exhausted)"}
        plan.sched_setattr(SCHED_POLICIES[s.policy], flags, s.nice, s.priority, s.runtime, s.deadline,
                           s.period, what=f"set scheduler {s.policy} (process.scheduler)", reasons=reasons)
    io = process.io_priority
    if io is not None:
        plan.ioprio_set(ioprio_value(io.io_class, io.priority),
                        what=f"set I/O priority {io.io_class}/{io.priority} (process.ioPriority)")
    mp = linux.memory_policy if linux is not None else None
    if mp is not None:
        mode = MPOL_MODES[mp.mode]
        for name in mp.flags:
            mode |= MPOL_FLAGS[name]
        nodes = mask_bytes(parse_cpu_list(mp.nodes)) if mp.nodes else b""
        plan.set_mempolicy(mode, nodes, what=f"set memory policy {mp.mode} (linux.memoryPolicy)",
                           reasons={errno.ENOSYS: "the kernel has no NUMA support",
                                    errno.EINVAL: "invalid argument (a node the host lacks or does not "
                                                  "allow, or a flag this mode does not take)"})


def initial_cpus(process) -> set[int] | None:
    """The CPUs process.execCPUAffinity.initial names, None without it: the runtime sets
    them on the process it spawned before placing it in the cgroups."""
    affinity = process.exec_cpu_affinity
    if affinity is None or not affinity.initial:
        return None
    return set(parse_cpu_list(affinity.initial))
