"""python3 -m bench.spec_stage BUNDLE [-n N]

create's spec stage, interpreter start-up excluded: `pyrunc.spec.load(BUNDLE)` plus the
linux.resources validation create applies (`cgroups._resources.normalize`, which passes
spec.parse's result through) and the seccomp filter-cache key. Prints the warm time per
call (best of 7 rounds of 300, in this process) and the cold time (import + the same, in
N fresh `python -I` processes: min, p25, median). Run it with each install's python to
compare two versions."""
from __future__ import annotations

import subprocess
import sys
import time

_COLD = """
import sys, time
t0 = time.perf_counter()
from pyrunc import spec
s = spec.load(sys.argv[1])
from pyrunc.cgroups import _resources
_resources.normalize(getattr(s.linux, "cgroup_resources", None) or s.linux.resources)
from pyrunc.seccomp import CACHE_FORMAT, cache
cache.key(s.linux.seccomp, CACHE_FORMAT)
print((time.perf_counter() - t0) * 1e3)
"""


def warm_us(bundle: str) -> float:
    from pyrunc import spec
    from pyrunc.cgroups import _resources

    def once():
        s = spec.load(bundle)
        _resources.normalize(getattr(s.linux, "cgroup_resources", None) or s.linux.resources)
    once()
    rounds = []
    for _ in range(7):
        t0 = time.perf_counter()
        for _ in range(300):
            once()
        rounds.append((time.perf_counter() - t0) / 300 * 1e6)
    return min(rounds)


def cold_ms(bundle: str, n: int) -> list[float]:
    return sorted(float(subprocess.run([sys.executable, "-I", "-c", _COLD, bundle], check=True,
                                       capture_output=True, text=True).stdout) for _ in range(n))


def main(argv: list[str]) -> None:
    import argparse
    parser = argparse.ArgumentParser(prog="python3 -m bench.spec_stage", description=__doc__.splitlines()[2])
    parser.add_argument("bundle")
    parser.add_argument("-n", type=int, default=50, help="fresh processes for the cold figure (50)")
    args = parser.parse_args(argv)
    print(f"warm: {warm_us(args.bundle):.0f} us per spec.load + validation")
    cold = cold_ms(args.bundle, args.n)
    print(f"cold: min {cold[0]:.2f} ms, p25 {cold[len(cold) // 4]:.2f} ms, median {cold[len(cold) // 2]:.2f} ms")


if __name__ == "__main__":
    main(sys.argv[1:])
