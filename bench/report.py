"""Machine description, statistics and the markdown table."""
from __future__ import annotations

import math
import os
import platform
import statistics
from typing import Optional


def percentile(samples: list[float], fraction: float) -> float:
    """Nearest-rank percentile (p90 of 30 samples is the 27th smallest)."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(round(fraction * len(ordered), 9)))
    return ordered[min(rank, len(ordered)) - 1]


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def machine_description(cgroup_mode: str) -> list[tuple[str, str]]:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory = "?"
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    memory = f"{int(line.split()[1]) // 1024} MiB"
                    break
    except OSError:
        pass
    distro = "?"
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    distro = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return [
        ("cpus (nproc)", str(len(os.sched_getaffinity(0)))),
        ("cpu", cpu),
        ("memory", memory),
        ("kernel", platform.release()),
        ("distribution", distro),
        ("cgroup mode", cgroup_mode),
    ]


def ratio(value: Optional[float], reference: Optional[float]) -> str:
    if value is None or not reference:
        return "–"
    return f"{value / reference:.2f}×"


def fmt(value: Optional[float], unit: str, signed: bool = False) -> str:
    if value is None:
        return "–"
    if unit == "":
        return f"{value:,.0f}"
    if unit == "kB":
        return f"{value:,.0f} {unit}"
    return f"{value:+.1f} {unit}" if signed else f"{value:.1f} {unit}"


def table(rows: list[dict], runtimes: list[str], reference: str = "runc") -> list[str]:
    """rows: {"name", "unit", "median": {runtime: v}, "p90": {runtime: v}} and optionally
    "signed" (show a sign: a difference) and "no_ratio" -> markdown lines."""
    header = ["benchmark"]
    for name in runtimes:
        header.append(f"{name} median")
        header.append(f"{name} p90")
    for name in runtimes:
        if name != reference:
            header.append(f"{name} / {reference}")
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        cells = [row["name"]]
        for name in runtimes:
            cells.append(fmt(row["median"].get(name), row["unit"], row.get("signed", False)))
            p90 = row["p90"].get(name)
            cells.append(fmt(p90, row["unit"]) if p90 is not None else "–")
        for name in runtimes:
            if name != reference and row.get("no_ratio"):
                cells.append("–")
            elif name != reference:
                cells.append(ratio(row["median"].get(name), row["median"].get(reference)))
        lines.append("| " + " | ".join(cells) + " |")
    return lines
