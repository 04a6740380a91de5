"""linux.resources: validation and translation into cgroup file writes (v1 and v2).

Everything here is pure except for the small `Probe` interface the v1/v2 planners use to
ask about the host (which files exist, current memory limit), so the translation is
unit-testable without cgroups. Semantics follow runc 1.1 (libcontainer/cgroups/fs and
fs2): a zero value means "leave unchanged" (that is how engines send `update` requests),
-1 means unlimited where the kernel has such a value.
"""

from __future__ import annotations

from pyrunc.cgroups._paths import CgroupError

FIELD = "linux.resources"

# ------------------------------------------------------------------------- validation

_UINT64_MAX = (1 << 64) - 1
_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1


def _fail(path: str, msg: str) -> None:
    raise CgroupError(f"{path}: {msg}")


def _obj(value, path: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        _fail(path, "must be an object")
    return value


def _list(value, path: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        _fail(path, "must be an array")
    return value


def _int(value, path: str, lo: int, hi: int) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(path, f"must be an integer, not {type(value).__name__}")
    if not lo <= value <= hi:
        if value < lo and lo in (0, -1):
            _fail(path, f"must not be {'negative' if lo == 0 else 'below -1'} (got {value})")
        _fail(path, f"{value} is out of range [{lo}, {hi}]")
    return value


def _bool(value, path: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        _fail(path, "must be a boolean")
    return value


def _str(value, path: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        _fail(path, "must be a string")
    return value


# Plain string checks, not `re`: importing it costs ~5 ms on every create.
def _is_number(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _is_cpu_range(part: str) -> bool:
    """"N" or "N-M" (decimal digits only)."""
    lo, dash, hi = part.partition("-")
    return _is_number(lo) and (not dash or _is_number(hi))


def _cpu_list(value, path: str) -> str:
    text = _str(value, path).strip()
    if text and not all(_is_cpu_range(part) for part in text.split(",")):
        _fail(path, f"invalid cpu/memory-node list {text!r} (expected e.g. \"0-3,5\")")
    for part in text.split(",") if text else ():
        lo, _, hi = part.partition("-")
        if hi and int(hi) < int(lo):
            _fail(path, f"invalid range {part!r} in {text!r}")
    return text


def _device_number(value, path: str) -> int:
    """A device rule's major/minor: absent, null or -1 means the wildcard "*"."""
    if value is None:
        return -1
    return _int(value, path, -1, (1 << 32) - 1)


def normalize(raw: dict | None) -> dict:
    """Validate LinuxResources `raw` (as in config.json) and return a dict with every
    field present and typed (0/""/[]/None = not set). Raises CgroupError naming the
    field."""
    r = _obj(raw, FIELD)
    out: dict = {}

    p = f"{FIELD}.memory"
    m = _obj(r.get("memory"), p)
    swappiness = m.get("swappiness")
    out["memory"] = {
        "limit": _int(m.get("limit"), p + ".limit", -1, _INT64_MAX),
        "reservation": _int(m.get("reservation"), p + ".reservation", -1, _INT64_MAX),
        "swap": _int(m.get("swap"), p + ".swap", -1, _INT64_MAX),
        "kernel": _int(m.get("kernel"), p + ".kernel", -1, _INT64_MAX),
        "kernelTCP": _int(m.get("kernelTCP"), p + ".kernelTCP", -1, _INT64_MAX),
        # runc treats -1 (what docker sends for "unset", as uint64 wrap-around too) as unset
        "swappiness": None if swappiness is None or swappiness in (-1, _UINT64_MAX)
        else _int(swappiness, p + ".swappiness", 0, 100),
        "disableOOMKiller": _bool(m.get("disableOOMKiller"), p + ".disableOOMKiller"),
        "useHierarchy": _bool(m.get("useHierarchy"), p + ".useHierarchy"),
        "checkBeforeUpdate": _bool(m.get("checkBeforeUpdate"), p + ".checkBeforeUpdate"),
    }

    p = f"{FIELD}.cpu"
    c = _obj(r.get("cpu"), p)
    idle = c.get("idle")
    out["cpu"] = {
        "shares": _int(c.get("shares"), p + ".shares", 0, _UINT64_MAX),
        "quota": _int(c.get("quota"), p + ".quota", -1, _INT64_MAX),
        "burst": _int(c.get("burst"), p + ".burst", 0, _UINT64_MAX),
        "period": _int(c.get("period"), p + ".period", 0, _UINT64_MAX),
        "realtimeRuntime": _int(c.get("realtimeRuntime"), p + ".realtimeRuntime", -1, _INT64_MAX),
        "realtimePeriod": _int(c.get("realtimePeriod"), p + ".realtimePeriod", 0, _UINT64_MAX),
        "cpus": _cpu_list(c.get("cpus"), p + ".cpus"),
        "mems": _cpu_list(c.get("mems"), p + ".mems"),
        "idle": None if idle is None else _int(idle, p + ".idle", -1, 1),
    }

    p = f"{FIELD}.pids"
    out["pids"] = {"limit": _int(_obj(r.get("pids"), p).get("limit"), p + ".limit", _INT64_MIN, _INT64_MAX)}

    p = f"{FIELD}.blockIO"
    b = _obj(r.get("blockIO"), p)

    def weight(value, path):
        # uint16 as in the spec; the range (CFQ 10-1000, BFQ 1-1000) is the kernel's to
        # check, as with runc
        return _int(value, path, 0, 65535)

    blkio = {"weight": weight(b.get("weight"), p + ".weight"),
             "leafWeight": weight(b.get("leafWeight"), p + ".leafWeight"), "weightDevice": []}
    for i, d in enumerate(_list(b.get("weightDevice"), p + ".weightDevice")):
        dp = f"{p}.weightDevice[{i}]"
        d = _obj(d, dp)
        blkio["weightDevice"].append({
            "major": _int(d.get("major"), dp + ".major", 0, (1 << 32) - 1),
            "minor": _int(d.get("minor"), dp + ".minor", 0, (1 << 32) - 1),
            "weight": weight(d.get("weight"), dp + ".weight"),
            "leafWeight": weight(d.get("leafWeight"), dp + ".leafWeight")})
    for key in ("throttleReadBpsDevice", "throttleWriteBpsDevice",
                "throttleReadIOPSDevice", "throttleWriteIOPSDevice"):
        blkio[key] = []
        for i, d in enumerate(_list(b.get(key), f"{p}.{key}")):
            dp = f"{p}.{key}[{i}]"
            d = _obj(d, dp)
            blkio[key].append({
                "major": _int(d.get("major"), dp + ".major", 0, (1 << 32) - 1),
                "minor": _int(d.get("minor"), dp + ".minor", 0, (1 << 32) - 1),
                "rate": _int(d.get("rate"), dp + ".rate", 0, _UINT64_MAX)})
    out["blockIO"] = blkio

    p = f"{FIELD}.hugepageLimits"
    out["hugepageLimits"] = []
    for i, h in enumerate(_list(r.get("hugepageLimits"), p)):
        hp = f"{p}[{i}]"
        h = _obj(h, hp)
        size = _str(h.get("pageSize"), hp + ".pageSize")
        if not (len(size) > 2 and size[-2:] in ("KB", "MB", "GB", "TB") and _is_number(size[:-2])):
            _fail(hp + ".pageSize", f"invalid page size {size!r} (expected e.g. \"2MB\")")
        out["hugepageLimits"].append({"pageSize": size,
                                      "limit": _int(h.get("limit"), hp + ".limit", 0, _UINT64_MAX)})

    p = f"{FIELD}.network"
    n = _obj(r.get("network"), p)
    prios = []
    for i, x in enumerate(_list(n.get("priorities"), p + ".priorities")):
        xp = f"{p}.priorities[{i}]"
        x = _obj(x, xp)
        name = _str(x.get("name"), xp + ".name")
        if not name or any(ch.isspace() for ch in name) or "/" in name:
            _fail(xp + ".name", f"invalid interface name {name!r}")
        prios.append({"name": name, "priority": _int(x.get("priority"), xp + ".priority", 0, (1 << 32) - 1)})
    out["network"] = {"classID": _int(n.get("classID"), p + ".classID", 0, (1 << 32) - 1),
                      "priorities": prios}

    p = f"{FIELD}.rdma"
    out["rdma"] = {}
    for name, x in _obj(r.get("rdma"), p).items():
        xp = f"{p}.{name}"
        if not name or any(ch.isspace() for ch in name):
            _fail(xp, "invalid rdma device name")
        x = _obj(x, xp)
        out["rdma"][name] = {
            "hcaHandles": None if x.get("hcaHandles") is None
            else _int(x.get("hcaHandles"), xp + ".hcaHandles", 0, (1 << 32) - 1),
            "hcaObjects": None if x.get("hcaObjects") is None
            else _int(x.get("hcaObjects"), xp + ".hcaObjects", 0, (1 << 32) - 1)}

    p = f"{FIELD}.unified"
    out["unified"] = {}
    for key, value in _obj(r.get("unified"), p).items():
        kp = f"{p}[{key!r}]"
        if not key or "/" in key or key in (".", ".."):
            _fail(kp, "must be a file name (no slashes)")
        if "." not in key.strip("."):
            _fail(kp, "must be in the form CONTROLLER.PARAMETER")
        out["unified"][key] = _str(value, kp)

    p = f"{FIELD}.devices"
    out["devices"] = []
    for i, d in enumerate(_list(r.get("devices"), p)):
        dp = f"{p}[{i}]"
        d = _obj(d, dp)
        if "allow" not in d:
            _fail(dp + ".allow", "required")
        dtype = _str(d.get("type"), dp + ".type") or "a"
        if dtype not in ("a", "b", "c"):
            _fail(dp + ".type", f"invalid device type {dtype!r} (expected a, b or c)")
        access = _str(d.get("access"), dp + ".access")
        # runc 1.1.5: an empty access is refused; otherwise only the letters r, w and m
        # count, in any order, repeated or not, other characters are ignored ("rwa" = rw);
        # a device rule left with none of them fails there ("resulting devices cgroup
        # doesn't precisely match target"), a type "a" rule ignores its access
        if not access:
            _fail(dp + ".access", f"device access at {i} field cannot be empty")
        if not set(access) & set("rwm"):
            if dtype != "a":
                _fail(dp + ".access", f"invalid access {access!r}: none of r, w, m")
            access = "rwm"
        out["devices"].append(rule(_bool(d.get("allow"), dp + ".allow"), dtype,
                                   _device_number(d.get("major"), dp + ".major"),
                                   _device_number(d.get("minor"), dp + ".minor"), access))
    return out


def rule(allow: bool, dtype: str, major: int, minor: int, access: str) -> dict:
    # access in canonical r,w,m order so rules compare and print stably
    return {"allow": allow, "type": dtype, "major": major, "minor": minor,
            "access": "".join(ch for ch in "rwm" if ch in access)}


# runc 1.1.5 specconv.AllowedDevices: mknod of anything, the standard character devices,
# ptys and tun/tap. Appended after the spec's own rules (so they cannot be denied away,
# exactly as in runc).
DEFAULT_ALLOWED_DEVICES = (
    rule(True, "c", -1, -1, "m"),
    rule(True, "b", -1, -1, "m"),
    rule(True, "c", 1, 3, "rwm"),    # /dev/null
    rule(True, "c", 1, 8, "rwm"),    # /dev/random
    rule(True, "c", 1, 7, "rwm"),    # /dev/full
    rule(True, "c", 5, 0, "rwm"),    # /dev/tty
    rule(True, "c", 1, 5, "rwm"),    # /dev/zero
    rule(True, "c", 1, 9, "rwm"),    # /dev/urandom
    rule(True, "c", 136, -1, "rwm"),  # /dev/pts/*
    rule(True, "c", 5, 2, "rwm"),    # /dev/ptmx
    rule(True, "c", 10, 200, "rwm"),  # /dev/net/tun
)
# The defaults runc knows by path: a linux.devices entry with that path drops the rule.
_DEFAULT_DEVICE_PATHS = {"/dev/null": (1, 3), "/dev/random": (1, 8), "/dev/full": (1, 7),
                         "/dev/tty": (5, 0), "/dev/zero": (1, 5), "/dev/urandom": (1, 9)}


def device_rules(spec_rules: list[dict], spec_devices=()) -> list[dict]:
    """The full ordered rule list runc 1.1.5 derives (specconv createDevices and
    CreateCgroupConfig): linux.resources.devices, then the default allowed devices
    except those whose path linux.devices redefines. linux.devices themselves get no
    rule: they are created in the container, but only the rules decide whether they can
    be used. Evaluated on a deny-all base; a later rule overrides an earlier one."""
    dropped = set()
    for dev in spec_devices:
        path = dev.get("path") if isinstance(dev, dict) else getattr(dev, "path", None)
        if path in _DEFAULT_DEVICE_PATHS:
            dropped.add(_DEFAULT_DEVICE_PATHS[path])
    return list(spec_rules) + [r for r in DEFAULT_ALLOWED_DEVICES
                               if r["type"] != "c" or (r["major"], r["minor"]) not in dropped]


def v1_rule_text(r: dict) -> str:
    if r["type"] == "a":
        return "a"
    major = "*" if r["major"] < 0 else str(r["major"])
    minor = "*" if r["minor"] < 0 else str(r["minor"])
    return f"{r['type']} {major}:{minor} {r['access']}"


def merge(old: dict, new: dict) -> dict:
    """runc update: a field of `new` that is set (non-zero, non-empty) replaces the one in
    `old`; both are normalize()d dicts."""
    new_memory = new.get("memory") or {}
    if new_memory.get("limit") == -1 and not new_memory.get("swap") and (old.get("memory") or {}).get("swap"):
        # runc update sends only the flags given, and an unlimited memory without a swap
        # value lifts memory+swap too (fs/memory.go setMemoryAndSwap): keeping the old
        # memsw below an unlimited memory is what the kernel refuses
        new = dict(new, memory=dict(new_memory, swap=-1))
    out = {}
    for key in set(old) | set(new):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict) and key not in ("rdma", "unified"):
            out[key] = {k: (b[k] if b.get(k) not in (0, "", None, [], False) else a.get(k))
                        for k in set(a) | set(b)}
        elif key == "rdma":
            # per device and per limit: the kernel keeps a limit rdma.max is not given,
            # so the saved resources do too
            rdma = {dev: dict(limits) for dev, limits in (a or {}).items()}
            for dev, limits in (b or {}).items():
                rdma.setdefault(dev, dict(limits)).update(
                    {k: v for k, v in limits.items() if v is not None})
            out[key] = rdma
        elif key == "unified":
            out[key] = {**(a or {}), **(b or {})}
        else:
            out[key] = b if b not in (None, [], {}) else a
    return out


# ------------------------------------------------------------------------- planning

class Probe:
    """What the planners need to know about the host; the Manager implements it on the
    real directories, unit tests with a dict."""

    def exists(self, controller: str, name: str) -> bool:  # pragma: no cover - interface
        raise NotImplementedError

    def read_int(self, controller: str, name: str) -> int:  # pragma: no cover - interface
        raise NotImplementedError


class Write:
    """One cgroup file write: `controller` picks the directory ("" = cgroup2)."""
    __slots__ = ("controller", "name", "value", "field", "ignore_missing")

    def __init__(self, controller: str, name: str, value: str, field: str,
                 ignore_missing: bool = False):
        self.controller, self.name, self.value, self.field = controller, name, value, field
        self.ignore_missing = ignore_missing

    def __repr__(self) -> str:
        return f"Write({self.controller!r}, {self.name!r}, {self.value!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Write) and (self.controller, self.name, self.value) == (
            other.controller, other.name, other.value)


def ignored_fields(r: dict, version: int) -> list[str]:
    """Fields set in `r` that runc 1.1 accepts and ignores (debug-logged by the caller)."""
    out = []
    mem = r["memory"]
    for key in ("kernel", "kernelTCP"):
        if mem[key]:
            out.append(f"{FIELD}.memory.{key}")
    if version == 2:
        if mem["swappiness"] is not None:
            out.append(f"{FIELD}.memory.swappiness")
        if mem["disableOOMKiller"]:
            out.append(f"{FIELD}.memory.disableOOMKiller")
        if r["blockIO"]["leafWeight"]:
            out.append(f"{FIELD}.blockIO.leafWeight")
        # runc's fs2 manager has no net_cls/net_prio step (cgroup2 has neither)
        if r["network"]["classID"]:
            out.append(f"{FIELD}.network.classID")
        if r["network"]["priorities"]:
            out.append(f"{FIELD}.network.priorities")
    return out


def v1_plan(r: dict, probe: Probe, *, devices: list[dict] | None = None) -> list[Write]:
    """Writes for cgroup v1, in runc's order. `devices`: the full device rule list
    (device_rules()), or None to leave the devices cgroup alone (update)."""
    w: list[Write] = []
    F = FIELD

    # memory: memsw (limit+swap) must stay >= limit at every step, so the order depends
    # on the direction (runc fs/memory.go setMemoryAndSwap)
    mem = r["memory"]
    limit, swap = mem["limit"], mem["swap"]
    if limit == -1 and swap == 0 and probe.exists("memory", "memory.memsw.limit_in_bytes"):
        swap = -1
    limit_w = Write("memory", "memory.limit_in_bytes", str(limit), F + ".memory.limit")
    swap_w = Write("memory", "memory.memsw.limit_in_bytes", str(swap), F + ".memory.swap")
    if limit and swap:
        current = probe.read_int("memory", "memory.limit_in_bytes")
        if swap == -1 or current < swap:
            w += [swap_w, limit_w]
        else:
            w += [limit_w, swap_w]
    else:
        if limit:
            w.append(limit_w)
        if swap:
            w.append(swap_w)
    if mem["reservation"]:
        w.append(Write("memory", "memory.soft_limit_in_bytes", str(mem["reservation"]),
                       F + ".memory.reservation"))
    if mem["disableOOMKiller"]:
        w.append(Write("memory", "memory.oom_control", "1", F + ".memory.disableOOMKiller"))
    if mem["swappiness"] is not None:
        w.append(Write("memory", "memory.swappiness", str(mem["swappiness"]), F + ".memory.swappiness"))

    # cpu (fs/cpu.go): rt first is runc's Apply order; shares; period+quota
    cpu = r["cpu"]
    if cpu["realtimePeriod"]:
        w.append(Write("cpu", "cpu.rt_period_us", str(cpu["realtimePeriod"]), F + ".cpu.realtimePeriod"))
    if cpu["realtimeRuntime"]:
        w.append(Write("cpu", "cpu.rt_runtime_us", str(cpu["realtimeRuntime"]), F + ".cpu.realtimeRuntime"))
    if cpu["shares"]:
        w.append(Write("cpu", "cpu.shares", str(cpu["shares"]), F + ".cpu.shares"))
    if cpu["period"]:
        w.append(Write("cpu", "cpu.cfs_period_us", str(cpu["period"]), F + ".cpu.period"))
    if cpu["quota"]:
        w.append(Write("cpu", "cpu.cfs_quota_us", str(cpu["quota"]), F + ".cpu.quota"))
    if cpu["burst"]:
        w.append(Write("cpu", "cpu.cfs_burst_us", str(cpu["burst"]), F + ".cpu.burst"))
    if cpu["idle"] is not None:
        w.append(Write("cpu", "cpu.idle", str(cpu["idle"]), F + ".cpu.idle"))
    if cpu["cpus"]:
        w.append(Write("cpuset", "cpuset.cpus", cpu["cpus"], F + ".cpu.cpus"))
    if cpu["mems"]:
        w.append(Write("cpuset", "cpuset.mems", cpu["mems"], F + ".cpu.mems"))

    if r["pids"]["limit"]:
        limit = r["pids"]["limit"]
        w.append(Write("pids", "pids.max", str(limit) if limit > 0 else "max", F + ".pids.limit"))

    # blkio (fs/blkio.go): CFQ's blkio.weight, else BFQ's blkio.bfq.weight; with neither
    # runc still writes the BFQ name and fails, and so do we
    b = r["blockIO"]
    if probe.exists("blkio", "blkio.weight"):
        weight_file, weight_device_file = "blkio.weight", "blkio.weight_device"
    else:
        weight_file, weight_device_file = "blkio.bfq.weight", "blkio.bfq.weight_device"
    if b["weight"]:
        w.append(Write("blkio", weight_file, str(b["weight"]), F + ".blockIO.weight"))
    if b["leafWeight"]:
        w.append(Write("blkio", "blkio.leaf_weight", str(b["leafWeight"]), F + ".blockIO.leafWeight"))
    for i, d in enumerate(b["weightDevice"]):
        if d["weight"]:
            w.append(Write("blkio", weight_device_file, f"{d['major']}:{d['minor']} {d['weight']}",
                           F + f".blockIO.weightDevice[{i}].weight"))
        if d["leafWeight"]:
            w.append(Write("blkio", "blkio.leaf_weight_device", f"{d['major']}:{d['minor']} {d['leafWeight']}",
                           F + f".blockIO.weightDevice[{i}].leafWeight"))
    for key, name in (("throttleReadBpsDevice", "blkio.throttle.read_bps_device"),
                      ("throttleWriteBpsDevice", "blkio.throttle.write_bps_device"),
                      ("throttleReadIOPSDevice", "blkio.throttle.read_iops_device"),
                      ("throttleWriteIOPSDevice", "blkio.throttle.write_iops_device")):
        for i, d in enumerate(b[key]):
            w.append(Write("blkio", name, f"{d['major']}:{d['minor']} {d['rate']}",
                           F + f".blockIO.{key}[{i}]"))

    # hugetlb: a v1 hierarchy if mounted; on hybrid hosts where hugetlb lives only in
    # cgroup2 (like this project's CI host), its cgroup2 file in the unified directory
    for i, h in enumerate(r["hugepageLimits"]):
        field = F + f".hugepageLimits[{i}]"
        if probe.exists("hugetlb", ""):
            w.append(Write("hugetlb", f"hugetlb.{h['pageSize']}.limit_in_bytes", str(h["limit"]), field))
        else:
            w.append(Write("", f"hugetlb.{h['pageSize']}.max", str(h["limit"]), field))

    net = r["network"]
    if net["classID"]:
        w.append(Write("net_cls", "net_cls.classid", str(net["classID"]), F + ".network.classID"))
    for i, x in enumerate(net["priorities"]):
        w.append(Write("net_prio", "net_prio.ifpriomap", f"{x['name']} {x['priority']}",
                       F + f".network.priorities[{i}]"))

    for name, x in r["rdma"].items():
        w.append(Write("rdma", "rdma.max", _rdma_line(name, x), F + f".rdma.{name}"))

    if devices is not None:
        w += v1_device_writes(devices)
    return w


def v1_device_writes(rules: list[dict]) -> list[Write]:
    """Deny everything, then replay the rules in order (devices.allow/devices.deny are
    "last one wins" in the kernel's exception list). A type-"a" allow switches to
    allow-all, as writing "a" to devices.allow does."""
    out = [Write("devices", "devices.deny", "a", f"{FIELD}.devices")]
    for i, r in enumerate(rules):
        name = "devices.allow" if r["allow"] else "devices.deny"
        out.append(Write("devices", name, v1_rule_text(r), f"{FIELD}.devices[{i}]"))
    return out


def _rdma_line(name: str, x: dict) -> str:
    parts = [name]
    if x["hcaHandles"] is not None:
        parts.append(f"hca_handle={x['hcaHandles']}")
    if x["hcaObjects"] is not None:
        parts.append(f"hca_object={x['hcaObjects']}")
    return " ".join(parts)


def shares_to_weight(shares: int) -> int:
    """runc's cgroups.ConvertCPUSharesToCgroupV2Value: [2, 262144] → [1, 10000]."""
    if shares == 0:
        return 0
    return 1 + ((shares - 2) * 9999) // 262142


def blkio_weight_to_io_weight(weight: int) -> int:
    """runc's ConvertBlkIOToIOWeightValue: [10, 1000] → [1, 10000]."""
    if weight == 0:
        return 0
    return 1 + (weight - 10) * 9999 // 990


def swap_to_v2(swap: int, limit: int) -> int:
    """runc's ConvertMemorySwapToCgroupV2Value: OCI swap is memory+swap (v1 memsw);
    memory.swap.max is swap alone. -1 = unlimited, 0 = unset."""
    if limit == -1 and swap == 0:
        return -1
    if swap in (-1, 0):
        return swap
    if limit in (0, -1):
        raise CgroupError(f"{FIELD}.memory.swap: unable to set swap limit without memory limit")
    if swap < limit:
        raise CgroupError(f"{FIELD}.memory.swap: memory+swap limit ({swap}) should be >= memory limit ({limit})")
    return swap - limit


def _num(value: int) -> str:
    return "" if value == 0 else ("max" if value == -1 else str(value))


def v2_plan(r: dict, probe: Probe) -> list[Write]:
    """Writes for the cgroup2 directory (fs2), unified map last so it overrides."""
    w: list[Write] = []
    F = FIELD

    mem = r["memory"]
    swap = swap_to_v2(mem["swap"], mem["limit"])
    swap_text = _num(swap)
    if swap_text == "" and swap == 0 and mem["swap"] > 0:
        swap_text = "0"  # memory == memory+swap: no swap at all
    if swap_text:
        # without swap accounting the file is missing; runc tolerates that for max/0
        w.append(Write("", "memory.swap.max", swap_text, F + ".memory.swap",
                       ignore_missing=swap_text in ("max", "0")))
    if mem["limit"]:
        w.append(Write("", "memory.max", _num(mem["limit"]), F + ".memory.limit"))
    if mem["reservation"]:
        w.append(Write("", "memory.low", _num(mem["reservation"]), F + ".memory.reservation"))

    cpu = r["cpu"]
    if cpu["realtimePeriod"] or cpu["realtimeRuntime"]:
        raise CgroupError(f"{F}.cpu.realtimeRuntime: realtime scheduling limits are not supported on cgroup v2")
    if cpu["idle"] is not None:
        w.append(Write("", "cpu.idle", str(cpu["idle"]), F + ".cpu.idle"))
    if cpu["idle"] != 1:
        if cpu["shares"]:
            w.append(Write("", "cpu.weight", str(shares_to_weight(cpu["shares"])), F + ".cpu.shares"))
        if cpu["quota"] or cpu["period"]:
            text = str(cpu["quota"]) if cpu["quota"] > 0 else "max"
            if cpu["period"]:
                text += f" {cpu['period']}"
            w.append(Write("", "cpu.max", text, F + ".cpu.quota"))
        if cpu["burst"]:
            w.append(Write("", "cpu.max.burst", str(cpu["burst"]), F + ".cpu.burst"))
    if cpu["cpus"]:
        w.append(Write("", "cpuset.cpus", cpu["cpus"], F + ".cpu.cpus"))
    if cpu["mems"]:
        w.append(Write("", "cpuset.mems", cpu["mems"], F + ".cpu.mems"))

    if r["pids"]["limit"]:
        limit = r["pids"]["limit"]
        w.append(Write("", "pids.max", str(limit) if limit > 0 else "max", F + ".pids.limit"))

    b = r["blockIO"]
    bfq = probe.exists("", "io.bfq.weight")
    if b["weight"]:
        if bfq:
            w.append(Write("", "io.bfq.weight", str(b["weight"]), F + ".blockIO.weight"))
        else:
            w.append(Write("", "io.weight", str(blkio_weight_to_io_weight(b["weight"])),
                           F + ".blockIO.weight"))
    for i, d in enumerate(b["weightDevice"]):
        if d["weight"]:
            if not bfq:
                raise CgroupError(f"{F}.blockIO.weightDevice[{i}]: per-device weight needs the "
                                  "bfq io scheduler (io.bfq.weight is missing)")
            w.append(Write("", "io.bfq.weight", f"{d['major']}:{d['minor']} {d['weight']}",
                           F + f".blockIO.weightDevice[{i}]"))
    for key, op in (("throttleReadBpsDevice", "rbps"), ("throttleWriteBpsDevice", "wbps"),
                    ("throttleReadIOPSDevice", "riops"), ("throttleWriteIOPSDevice", "wiops")):
        for i, d in enumerate(b[key]):
            rate = d["rate"] or "max"
            w.append(Write("", "io.max", f"{d['major']}:{d['minor']} {op}={rate}",
                           F + f".blockIO.{key}[{i}]"))

    for i, h in enumerate(r["hugepageLimits"]):
        w.append(Write("", f"hugetlb.{h['pageSize']}.max", str(h["limit"]), F + f".hugepageLimits[{i}]"))

    for name, x in r["rdma"].items():
        w.append(Write("", "rdma.max", _rdma_line(name, x), F + f".rdma.{name}"))

    for key, value in r["unified"].items():
        w.append(Write("", key, value, F + f".unified[{key!r}]"))
    return w


def v2_controllers(r: dict) -> list[str]:
    """cgroup2 controllers the resources need enabled in the ancestors' subtree_control."""
    need = []
    if any(r["memory"][k] for k in ("limit", "reservation", "swap")):
        need.append("memory")
    cpu = r["cpu"]
    if cpu["shares"] or cpu["quota"] or cpu["period"] or cpu["burst"] or cpu["idle"] is not None:
        need.append("cpu")
    if cpu["cpus"] or cpu["mems"]:
        need.append("cpuset")
    if r["pids"]["limit"]:
        need.append("pids")
    b = r["blockIO"]
    if b["weight"] or b["weightDevice"] or any(b[k] for k in b if k.startswith("throttle")):
        need.append("io")
    if r["hugepageLimits"]:
        need.append("hugetlb")
    if r["rdma"]:
        need.append("rdma")
    for key in r["unified"]:
        controller = key.split(".", 1)[0]
        if controller != "cgroup":
            need.append(controller)
    return list(dict.fromkeys(need))
