"""python3 bench/create_stage.py BUNDLE [--calls N] [--rounds R]

create's Python work from config.json to the plan, interpreter start-up and imports
excluded: `pyrunc.spec.load(BUNDLE)`, the linux.resources validation, then the init's plan built by
`pyrunc.launch.Launch.build` (host facts such as mountinfo, the seccomp filter from its
cache, the plan's encoding), in this process, with a stand-in container and cgroup
manager (nothing is created).  Prints the best and the median of R rounds of N calls, in
microseconds per call.  `Launch.build` has the same signature before and after issue 14,
so each install's python can run this file (by its path, so that the checkout does not
shadow the installed package) to compare two versions."""
from __future__ import annotations

import sys
import tempfile
import time


class _Container:
    def __init__(self, root: str):
        self.id = "bench"
        self.root = root      # the state root: the seccomp filter cache lives beneath it


class _Cgroups:
    """The cgroup record of a container beneath the unified hierarchy."""

    def to_state(self) -> dict:
        return {"dirs": {"": "/sys/fs/cgroup/bench"}, "mounts": {"": "/sys/fs/cgroup"}, "mode": "unified"}


def one_create(bundle: str, root: str) -> None:
    from pyrunc import spec
    from pyrunc.launch import Launch
    from pyrunc.cgroups import _resources
    s = spec.load(bundle)
    # linux.resources validated: before issue 14 by Manager.apply, after it by spec.load
    # (normalize then passes the parsed Resources through)
    _resources.normalize(getattr(s.linux, "cgroup_resources", None) or s.linux.resources)
    launch = Launch(s, _Container(root), _Cgroups(), no_pivot=False, preserve_fds=0,
                    console_socket="", console_fd=-1)
    # both versions' start-socket fds ("listen" before, "start"/"start_peer" after)
    launch.build({"listen": 10, "start": 10, "start_peer": 11}, 12, None).plan.encode()


def rounds_us(bundle: str, calls: int, rounds: int) -> list[float]:
    root = tempfile.mkdtemp(prefix="pyrunc-bench-")
    one_create(bundle, root)  # imports, and the seccomp filter compiled into the cache
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(calls):
            one_create(bundle, root)
        out.append((time.perf_counter() - t0) / calls * 1e6)
    return sorted(out)


def main(argv: list[str]) -> None:
    import argparse
    parser = argparse.ArgumentParser(prog="bench/create_stage.py", description=__doc__.splitlines()[2])
    parser.add_argument("bundle")
    parser.add_argument("--calls", type=int, default=100, help="calls per round (100)")
    parser.add_argument("--rounds", type=int, default=7, help="rounds (7)")
    args = parser.parse_args(argv)
    times = rounds_us(args.bundle, args.calls, args.rounds)
    print(f"{times[0]:.0f} {times[len(times) // 2]:.0f}  # us per spec.load + Launch.build: best, median")


if __name__ == "__main__":
    main(sys.argv[1:])
