"""python3 bench/create_cost.py imports|cpu ROUNDS BUNDLE VENV...

Compare installs (each VENV holding a pyrunc) on the whole `create` command, run in a
private mount namespace (`unshare -m --propagation private python3 bench/create_cost.py ...`):
- imports: `VENV/bin/python -X importtime -I -S VENV/bin/pyrunc --root R create`, then
  `delete --force`; prints how many pyrunc modules create imported and the sum of their
  importtime self-times (µs), best and median of ROUNDS.
- cpu: CPU time (`perf stat -e task-clock`, else getrusage: the runtime and its children) of
  `create`, `create` + `delete --force` and `run` of the bundle, in ms, min and median.
The venvs alternate (their order reversed every other round, for a machine whose load
changes); round 0, which fills each install's caches, is dropped."""
from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import shutil
import tempfile

PERF = shutil.which("perf")


def _cpu_ms(argv: list[str]) -> float:
    """CPU time of `argv` and its descendants: perf's task-clock (nanoseconds) when perf
    is installed; else getrusage, which this kernel samples in 4 ms ticks (a difference of
    1 ms then needs hundreds of rounds to show)."""
    if PERF:
        # perf's figures to a file: a pipe would stay open in the container's init
        with tempfile.NamedTemporaryFile("r") as out:
            subprocess.run([PERF, "stat", "-x,", "-o", out.name, "-e", "task-clock", "--", *argv],
                           check=True, stdout=subprocess.DEVNULL)
            line = next(line for line in out.read().splitlines() if ",task-clock," in line)
        return float(line.split(",")[0])
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return 1000 * (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)


def _import_us(venv: str, root: str, bundle: str, cid: str, scratch: str) -> tuple[int, int]:
    # stderr to a file, not a pipe: the container's init inherits it and stays
    with open(scratch, "w+") as err:
        subprocess.run([f"{venv}/bin/python", "-X", "importtime", "-I", "-S", f"{venv}/bin/pyrunc",
                        "--root", root, "create", "--bundle", bundle, cid],
                       stdout=subprocess.DEVNULL, stderr=err, check=True)
        err.seek(0)
        lines = [line.split("|") for line in err.read().splitlines() if line.startswith("import time:")]
    ours = [fields for fields in lines if fields[2].strip().split(".")[0] == "pyrunc"]
    return len(ours), sum(int(fields[0].split(":")[1]) for fields in ours)


def main(mode: str, rounds: int, bundle: str, venvs: list[str]) -> None:
    bundle = os.path.abspath(bundle)
    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "root")
        results = {v: {} for v in venvs}
        for r in range(rounds + 1):
            for venv in venvs if r % 2 == 0 else venvs[::-1]:
                pyrunc = f"{venv}/bin/pyrunc"
                cid = f"bench-{os.getpid()}-{r}"
                if mode == "imports":
                    count, micros = _import_us(venv, root, bundle, cid, os.path.join(tmp, "importtime"))
                    figures = {f"imports ({count} modules), µs": micros}
                    subprocess.run([pyrunc, "--root", root, "delete", "--force", cid], check=True)
                else:
                    create = _cpu_ms([pyrunc, "--root", root, "create", "--bundle", bundle, cid])
                    delete = _cpu_ms([pyrunc, "--root", root, "delete", "--force", cid])
                    run = _cpu_ms([pyrunc, "--root", root, "run", "--bundle", bundle, cid + "-run"])
                    figures = {"create CPU ms": create, "create+delete CPU ms": create + delete,
                               "run CPU ms": run}
                if r:
                    for name, value in figures.items():
                        results[venv].setdefault(name, []).append(value)
    for venv in venvs:
        print(venv, "  ".join(f"{name} {min(v):.1f} / {statistics.median(v):.1f}"
                              for name, v in results[venv].items()))


if __name__ == "__main__":
    if len(sys.argv) < 5 or sys.argv[1] not in ("imports", "cpu"):
        sys.exit(__doc__)
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:])
