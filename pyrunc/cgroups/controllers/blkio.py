"""linux.resources.blockIO: blkio on cgroup v1 (runc fs/blkio.go), io on cgroup2
(fs2/io.go)."""

from __future__ import annotations

from pyrunc.cgroups._paths import CgroupError
from pyrunc.cgroups.controllers.common import (
    FIELD, UINT32_MAX, UINT64_MAX, Write, array, integer, merge_fields, obj)

SECTION, CONTROLLERS, ON_V2 = "blockIO", ("blkio", "io"), True
_F = f"{FIELD}.blockIO"

# spec field -> (v1 file, cgroup2 io.max key)
_THROTTLES = (("throttleReadBpsDevice", "blkio.throttle.read_bps_device", "rbps"),
              ("throttleWriteBpsDevice", "blkio.throttle.write_bps_device", "wbps"),
              ("throttleReadIOPSDevice", "blkio.throttle.read_iops_device", "riops"),
              ("throttleWriteIOPSDevice", "blkio.throttle.write_iops_device", "wiops"))


def _weight(value, path: str) -> int:
    # uint16 as in the spec; the range (CFQ 10-1000, BFQ 1-1000) is the kernel's to check,
    # as with runc
    return integer(value, path, 0, 65535)


def validate(raw, path: str) -> dict:
    b = obj(raw, path)
    out = {"weight": _weight(b.get("weight"), path + ".weight"),
           "leafWeight": _weight(b.get("leafWeight"), path + ".leafWeight"), "weightDevice": []}
    for i, d in enumerate(array(b.get("weightDevice"), path + ".weightDevice")):
        dp = f"{path}.weightDevice[{i}]"
        d = obj(d, dp)
        out["weightDevice"].append({
            "major": integer(d.get("major"), dp + ".major", 0, UINT32_MAX),
            "minor": integer(d.get("minor"), dp + ".minor", 0, UINT32_MAX),
            "weight": _weight(d.get("weight"), dp + ".weight"),
            "leafWeight": _weight(d.get("leafWeight"), dp + ".leafWeight")})
    for key, _, _ in _THROTTLES:
        out[key] = []
        for i, d in enumerate(array(b.get(key), f"{path}.{key}")):
            dp = f"{path}.{key}[{i}]"
            d = obj(d, dp)
            out[key].append({"major": integer(d.get("major"), dp + ".major", 0, UINT32_MAX),
                             "minor": integer(d.get("minor"), dp + ".minor", 0, UINT32_MAX),
                             "rate": integer(d.get("rate"), dp + ".rate", 0, UINT64_MAX)})
    return out


merge = merge_fields


def ignored(r: dict, version: int) -> list[str]:
    return [f"{_F}.leafWeight"] if version == 2 and r["blockIO"]["leafWeight"] else []


def v1(r: dict, probe) -> list[Write]:
    # CFQ's blkio.weight, else BFQ's blkio.bfq.weight; with neither runc still writes the
    # BFQ name and fails, and so do we
    b = r["blockIO"]
    w: list[Write] = []
    if probe.exists("blkio", "blkio.weight"):
        weight_file, weight_device_file = "blkio.weight", "blkio.weight_device"
    else:
        weight_file, weight_device_file = "blkio.bfq.weight", "blkio.bfq.weight_device"
    if b["weight"]:
        w.append(Write("blkio", weight_file, str(b["weight"]), _F + ".weight"))
    if b["leafWeight"]:
        w.append(Write("blkio", "blkio.leaf_weight", str(b["leafWeight"]), _F + ".leafWeight"))
    for i, d in enumerate(b["weightDevice"]):
        if d["weight"]:
            w.append(Write("blkio", weight_device_file, f"{d['major']}:{d['minor']} {d['weight']}",
                           _F + f".weightDevice[{i}].weight"))
        if d["leafWeight"]:
            w.append(Write("blkio", "blkio.leaf_weight_device", f"{d['major']}:{d['minor']} {d['leafWeight']}",
                           _F + f".weightDevice[{i}].leafWeight"))
    for key, name, _ in _THROTTLES:
        for i, d in enumerate(b[key]):
            w.append(Write("blkio", name, f"{d['major']}:{d['minor']} {d['rate']}", _F + f".{key}[{i}]"))
    return w


def blkio_weight_to_io_weight(weight: int) -> int:
    """runc's ConvertBlkIOToIOWeightValue: [10, 1000] → [1, 10000]."""
    if weight == 0:
        return 0
    return 1 + (weight - 10) * 9999 // 990


def v2(r: dict, probe) -> list[Write]:
    b = r["blockIO"]
    w: list[Write] = []
    bfq = probe.exists("", "io.bfq.weight")
    if b["weight"]:
        if bfq:
            w.append(Write("", "io.bfq.weight", str(b["weight"]), _F + ".weight"))
        else:
            w.append(Write("", "io.weight", str(blkio_weight_to_io_weight(b["weight"])), _F + ".weight"))
    for i, d in enumerate(b["weightDevice"]):
        if d["weight"]:
            if not bfq:
                raise CgroupError(f"{_F}.weightDevice[{i}]: per-device weight needs the "
                                  "bfq io scheduler (io.bfq.weight is missing)")
            w.append(Write("", "io.bfq.weight", f"{d['major']}:{d['minor']} {d['weight']}",
                           _F + f".weightDevice[{i}]"))
    for key, _, op in _THROTTLES:
        for i, d in enumerate(b[key]):
            rate = d["rate"] or "max"
            w.append(Write("", "io.max", f"{d['major']}:{d['minor']} {op}={rate}", _F + f".{key}[{i}]"))
    return w


def v2_controllers(r: dict) -> list[str]:
    b = r["blockIO"]
    return ["io"] if b["weight"] or b["weightDevice"] or any(b[key] for key, _, _ in _THROTTLES) else []


def _entries(path: str) -> list[dict]:
    from pyrunc.cgroups._stats import omit, read
    out = []
    for line in (read(path) or "").splitlines():
        parts = line.split()
        if len(parts) in (2, 3) and ":" in parts[0]:
            major, _, minor = parts[0].partition(":")
            op = parts[1] if len(parts) == 3 else ""
            out.append(omit({"major": int(major), "minor": int(minor), "op": op, "value": int(parts[-1])}))
    return out


def stats_v1(s: dict, v1: dict[str, str], unified: str | None) -> None:
    import os

    from pyrunc.cgroups._stats import omit
    blkio = v1.get("blkio")
    if not blkio:
        return
    # CFQ's recursive stats when present, else the throttle ones (runc's fallback)
    prefix = "blkio" if os.path.exists(blkio + "/blkio.io_service_bytes_recursive") else "blkio.throttle"
    s["blkio"] = omit({
        "ioServiceBytesRecursive": _entries(f"{blkio}/{prefix}.io_service_bytes_recursive"),
        "ioServicedRecursive": _entries(f"{blkio}/{prefix}.io_serviced_recursive"),
        "ioQueueRecursive": _entries(f"{blkio}/blkio.io_queued_recursive"),
        "ioServiceTimeRecursive": _entries(f"{blkio}/blkio.io_service_time_recursive"),
        "ioWaitTimeRecursive": _entries(f"{blkio}/blkio.io_wait_time_recursive"),
        "ioMergedRecursive": _entries(f"{blkio}/blkio.io_merged_recursive"),
        "ioTimeRecursive": _entries(f"{blkio}/blkio.time_recursive"),
        "sectorsRecursive": _entries(f"{blkio}/blkio.sectors_recursive")})


def stats_v2(s: dict, d: str) -> None:
    import os

    from pyrunc.cgroups._stats import omit, read
    if not os.path.exists(d + "/io.stat"):
        return
    by_bytes, by_ops = [], []
    for line in (read(d + "/io.stat") or "").splitlines():
        parts = line.split()
        if not parts or ":" not in parts[0]:
            continue
        major, _, minor = parts[0].partition(":")
        kv = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
        for key, op, target in (("rbytes", "Read", by_bytes), ("wbytes", "Write", by_bytes),
                                ("rios", "Read", by_ops), ("wios", "Write", by_ops)):
            target.append(omit({"major": int(major), "minor": int(minor), "op": op, "value": int(kv.get(key, 0))}))
    s["blkio"] = omit({"ioServiceBytesRecursive": by_bytes, "ioServicedRecursive": by_ops})
