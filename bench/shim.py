"""python3 -m bench.shim [-n N] [--rounds R] [--pods P] [--output PATH | --no-write]

Issue 17's figures for pyrunc's containerd shim (docs/shim.md), measured in one run
against containerd + io.containerd.runc.v2 (containerd-shim-runc-v2) + runc, in one
private containerd with the CRI plugin (tests/cri's set-up: its own mount, network and
UTS namespaces; pods in host network, so no CNI time is counted for anyone):

- the CRI lifecycle of a sandbox with one container (RunPodSandbox, CreateContainer,
  StartContainer, StopContainer, RemoveContainer, StopPodSandbox, RemovePodSandbox),
  and CreateContainer + StartContainer alone;
- P pods (sandbox + one container) started in parallel, total wall;
- the management plane's memory with those P pods running: the sum of the shims' PSS
  (and RSS), per-pod shims (runc's, pyrunc's) and pyrunc's node-wide shim;
- `ctr run --rm` of /bin/true with each shim.

Handlers alternate sample by sample (the parallel bursts round by round, the order
rotating); a verdict is on the medians, and every figure comes with its spread (min-max)
and the load average. Prints markdown; writes docs/BENCHMARKS-shim.md.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPO / "docs" / "BENCHMARKS-shim.md"
RUNC = "runc"             # CRI handler: io.containerd.runc.v2, BinaryName runc
POD_SHIM = "pyrunc-shim"  # io.containerd.pyrunc.v2, a shim per pod
NODE_SHIM = "pyrunc-node"  # io.containerd.pyrunc-node.v2, one shim for the node
SHIM_BINARIES = {RUNC: "containerd-shim-runc-v2", POD_SHIM: "containerd-shim-pyrunc-v2",
                 NODE_SHIM: "containerd-shim-pyrunc-node-v2"}


def _parse_args(argv):
    parser = argparse.ArgumentParser(prog="python3 -m bench.shim", description=__doc__.splitlines()[2])
    parser.add_argument("-n", "--iterations", type=int, default=20, help="timed samples per handler (20)")
    parser.add_argument("--rounds", type=int, default=5, help="parallel bursts per handler (5)")
    parser.add_argument("--pods", type=int, default=20, help="pods started in parallel (20)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--no-write", action="store_true", help="print only")
    return parser.parse_args(argv)


def _import_test_helpers():
    for directory in ("tests", "tests/cri"):
        path = str(REPO / directory)
        if path not in sys.path:
            sys.path.insert(0, path)
    import cri_support
    import support
    return cri_support, support


def _pss_rss_kb(pid: int) -> tuple[int, int]:
    pss = rss = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                pss = int(line.split()[1])
            elif line.startswith("Rss:"):
                rss = int(line.split()[1])
    return pss, rss


def _resident_shims(binary: str, namespace_pid: int) -> list[int]:
    """Pids of the shim servers (not their short-lived `start`) in containerd's namespace."""
    found = []
    mnt = os.readlink(f"/proc/{namespace_pid}/ns/mnt")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            words = open(f"/proc/{entry}/cmdline", "rb").read().split(b"\0")
            comm = open(f"/proc/{entry}/comm").read().strip()
            if os.readlink(f"/proc/{entry}/ns/mnt") != mnt:
                continue
        except OSError:
            continue
        if binary.startswith("containerd-shim-runc"):
            # runc's shim server is re-executed without the `start` word
            if any(os.path.basename(w) == binary.encode() for w in words[:1]) and b"start" not in words:
                found.append(int(entry))
        # pyrunc's resident shim process is forked from a `start` (of either binary: one
        # process serves both) and keeps its argv; named by comm
        elif comm == "pyrunc-shim":
            found.append(int(entry))
    return found


class Bench:
    def __init__(self, cri_support, engine, n: int):
        self.cri = cri_support
        self.engine = engine
        self.n = n

    def pod(self, handler: str):
        return self.cri.Pod(self.engine, handler, f"b-{handler}-{uuid.uuid4().hex[:8]}", host_network=True)

    def lifecycle(self, handler: str) -> tuple[float, float]:
        """(whole lifecycle, CreateContainer + StartContainer) in ms."""
        pod = self.pod(handler)
        started = time.perf_counter()
        pod.run()
        before_create = time.perf_counter()
        container = pod.run_container("app", ["sleep", "3600"])
        after_start = time.perf_counter()
        pod.stop_container(container, timeout=0)
        pod.remove_container(container)
        pod.remove()
        ended = time.perf_counter()
        return (ended - started) * 1000, (after_start - before_create) * 1000

    def ctr_run(self, handler: str) -> float:
        name = f"b-ctr-{uuid.uuid4().hex[:8]}"
        runtime = ["--runtime", "io.containerd.pyrunc.v2"] if handler == POD_SHIM else \
            ["--runtime", "io.containerd.runc.v2", "--runc-binary", "/usr/sbin/runc"]
        # in containerd's mount namespace: ctr makes the stdio FIFOs the shim opens there
        command = ["nsenter", "-t", str(self.engine.pid), "-m", "--", self.cri.CTR, "--address", self.engine.socket, "--namespace", self.cri.K8S_NAMESPACE,
                   "run", "--rm", *runtime, "--cgroup", f"{self.engine.cgroup_parent}/{name}",
                   self.cri.BUSYBOX_IMAGE, name, "/bin/true"]
        started = time.perf_counter()
        result = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)}: {result.stderr.strip()}")
        return (time.perf_counter() - started) * 1000

    def parallel_pods(self, handler: str, count: int) -> tuple[float, int, int, int, list]:
        """Start `count` pods at once; (wall ms, shims, PSS kB, RSS kB) with them running,
        and the pods (to remove)."""
        pods = [self.pod(handler) for _ in range(count)]
        errors = []

        def start(pod):
            try:
                pod.run()
                pod.run_container("app", ["sleep", "3600"])
            except Exception as error:  # reported after the others finish
                errors.append(error)
        threads = [threading.Thread(target=start, args=(p,)) for p in pods]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = (time.perf_counter() - started) * 1000
        if errors:
            self.remove_pods(pods)
            raise errors[0]
        time.sleep(2)  # memory once the burst has settled (pyrunc's shim gives some back)
        for _attempt in range(10):
            shims = _resident_shims(SHIM_BINARIES[handler], self.engine.pid)
            if shims:
                break
            time.sleep(0.2)
        else:
            self.remove_pods(pods)
            raise RuntimeError(f"no {handler} shim process found with {count} pods running")
        pss = rss = 0
        for pid in shims:
            p, r = _pss_rss_kb(pid)
            pss, rss = pss + p, rss + r
        return wall, len(shims), pss, rss, pods

    @staticmethod
    def remove_pods(pods) -> None:
        def remove(pod):
            with contextlib.suppress(Exception):
                for container in pod.container_ids:
                    pod.stop_container(container, timeout=0)
                pod.remove()
        threads = [threading.Thread(target=remove, args=(p,)) for p in pods]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


def _alternate(handlers, n, sample) -> dict:
    out = {h: [] for h in handlers}
    for i in range(n):
        order = handlers[i % len(handlers):] + handlers[:i % len(handlers)]
        for handler in order:
            out[handler].append(sample(handler))
    return out


def _verdict(value: float, target: float) -> str:
    return "holds" if value <= target else f"misses ({value:.2f}× > {target}×)"


def _spread(values, unit: str = "ms", digits: int = 0) -> str:
    return f"{min(values):,.{digits}f}-{max(values):,.{digits}f} {unit}".strip()


def _loadavg() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def main(argv=None) -> int:
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    if os.geteuid() != 0:
        raise SystemExit("bench.shim: must run as root")
    from bench import namespaces
    namespaces.enter_private_namespace()
    cri_support, support = _import_test_helpers()
    import importlib.util
    spec = importlib.util.spec_from_file_location("bench_build_rootfs", REPO / "bundles" / "build_rootfs.py")
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    pyrunc = support.pyrunc_binary()
    work = Path(tempfile.mkdtemp(prefix="pyrunc-bench-shim-", dir="/tmp"))
    started_at = time.monotonic()
    load_before = _loadavg()
    lines: list[str] = []
    parent_cm = contextlib.contextmanager(support.cgroup_parent_below_own)(f"pyrunc-bench-shim-{os.getpid()}")
    with parent_cm as cgroup_parent:
        images = cri_support.build_cri_images(work, builder)
        messages, stubs = cri_support.compile_cri_api(work / "cri-api")
        engine = cri_support.CriEngine(Path(tempfile.mkdtemp(prefix="pcri-", dir="/tmp")), pyrunc, cgroup_parent)
        try:
            engine.start(messages, stubs)
            for archive in images:
                engine.ctr("images", "import", str(archive), timeout=120)
            bench = Bench(cri_support, engine, args.iterations)
            handlers = [RUNC, POD_SHIM]
            print("bench.shim: warm-up ...", file=sys.stderr, flush=True)
            _alternate(handlers, 2, bench.lifecycle)
            print("bench.shim: CRI lifecycles ...", file=sys.stderr, flush=True)
            samples = _alternate(handlers, args.iterations, bench.lifecycle)
            lifecycle_samples = {h: [s[0] for s in v] for h, v in samples.items()}
            create_start_samples = {h: [s[1] for s in v] for h, v in samples.items()}
            print("bench.shim: ctr run ...", file=sys.stderr, flush=True)
            _alternate(handlers, 2, bench.ctr_run)
            ctr_samples = _alternate(handlers, args.iterations, bench.ctr_run)
            print(f"bench.shim: {args.pods} pods in parallel, {args.rounds} rounds ...", file=sys.stderr, flush=True)

            def burst(handler):
                wall, shims, pss, rss, pods = bench.parallel_pods(handler, args.pods)
                bench.remove_pods(pods)
                return wall, shims, pss, rss, os.getloadavg()[0]
            # a node that runs pods already: one pod keeps pyrunc's resident shim process
            # (one for both groupings) from ending between the bursts, so none pays its
            # cold start (≈ 0.2 s); runc's shims are per pod, none of them is kept
            anchor = bench.pod(POD_SHIM)
            anchor.run()
            try:
                bursts = _alternate([RUNC, POD_SHIM, NODE_SHIM], args.rounds, burst)
            finally:
                anchor.remove()
        finally:
            engine.stop()
    took = time.monotonic() - started_at
    load_after = _loadavg()
    lifecycle = {h: statistics.median(v) for h, v in lifecycle_samples.items()}
    create_start = {h: statistics.median(v) for h, v in create_start_samples.items()}
    ctr = {h: statistics.median(v) for h, v in ctr_samples.items()}
    # per handler: (median wall, shims, median PSS, median RSS), and the samples
    parallel = {h: (statistics.median(b[0] for b in v), v[-1][1], statistics.median(b[2] for b in v),
                    statistics.median(b[3] for b in v)) for h, v in bursts.items()}
    walls = {h: [b[0] for b in v] for h, v in bursts.items()}
    psses = {h: [b[2] for b in v] for h, v in bursts.items()}
    # the same round's runc burst is the fairest comparison for each pyrunc one
    round_ratios = [p[0] / r[0] for p, r in zip(bursts[POD_SHIM], bursts[RUNC])]
    burst_loads = [b[4] for v in bursts.values() for b in v]

    def ratio(table, handler=POD_SHIM):
        return table[handler] / table[RUNC]
    par_ratio = parallel[POD_SHIM][0] / parallel[RUNC][0]
    mem_pod = parallel[POD_SHIM][2] / parallel[RUNC][2]
    mem_node = parallel[NODE_SHIM][2] / parallel[RUNC][2]
    options = "".join(f" {flag} {value}" for flag, value, default in
                      (("-n", args.iterations, 20), ("--rounds", args.rounds, 5), ("--pods", args.pods, 20))
                      if value != default)
    lines += [
        "# Benchmarks: pyrunc's containerd shim",
        "",
        "Produced by `python3 -m bench.shim` (bench/shim.py; issue 17). Rerun it to refresh this file.",
        "",
        "## Command",
        "",
        "```",
        f"cd {REPO} && python3 -m bench.shim{options}",
        "```",
        "",
        f"As root, `python3` = `{sys.executable}`, pyrunc = `{pyrunc}`. One private containerd "
        f"({cri_support.CONTAINERD}, CRI plugin) serves both handlers: `runc` = io.containerd.runc.v2 "
        "(containerd-shim-runc-v2 running runc), `pyrunc-shim` = io.containerd.pyrunc.v2, "
        "`pyrunc-node` = io.containerd.pyrunc-node.v2. Pods use the host network (no CNI time for "
        f"anyone). {args.iterations} samples per handler after 2 warm-up rounds, handlers alternating; "
        f"{args.rounds} bursts of {args.pods} pods per handler, the order rotating round by round, "
        "with one more pod (a sandbox) running under pyrunc-shim all along: pyrunc's resident "
        "shim process is up, as on a node that runs pods (its PSS then counts that pod too). "
        "Memory is read 2 s after a burst's last pod started. "
        "Verdicts are on medians; ranges are min-max. "
        f"Wall time as seen by the CRI client (gRPC) or around `ctr`. The run took {took:.0f} s on "
        f"{os.cpu_count()} CPUs; load average (1/5/15 min) {load_before} before, {load_after} after, "
        f"{_spread(burst_loads, '', 1)} (1 min) after the bursts.",
        "",
        "## Targets (issue 17)",
        "",
        "| target | measured (median) | verdict |",
        "|---|---|---|",
        f"| CRI lifecycle ≤ 0.6× runc | {ratio(lifecycle):.2f}× ({lifecycle[POD_SHIM]:.0f} / {lifecycle[RUNC]:.0f} ms) "
        f"| {_verdict(ratio(lifecycle), 0.6)} |",
        f"| CreateContainer + StartContainer ≤ 0.5× runc | {ratio(create_start):.2f}× "
        f"({create_start[POD_SHIM]:.0f} / {create_start[RUNC]:.0f} ms) | {_verdict(ratio(create_start), 0.5)} |",
        f"| {args.pods} pods in parallel ≤ 0.6× runc | {par_ratio:.2f}× ({parallel[POD_SHIM][0]:.0f} / "
        f"{parallel[RUNC][0]:.0f} ms; round by round {_spread(round_ratios, '×', 2)}) | {_verdict(par_ratio, 0.6)} |",
        f"| shim memory, per-pod shims ≤ 0.5× runc's | {mem_pod:.2f}× ({parallel[POD_SHIM][2]:,.0f} / "
        f"{parallel[RUNC][2]:,.0f} kB PSS) | {_verdict(mem_pod, 0.5)} |",
        f"| shim memory, node-wide shim ≤ 0.1× runc's | {mem_node:.2f}× ({parallel[NODE_SHIM][2]:,.0f} / "
        f"{parallel[RUNC][2]:,.0f} kB PSS) | {_verdict(mem_node, 0.1)} |",
        f"| `ctr run` /bin/true ≤ 0.7× runc's shim | {ratio(ctr):.2f}× ({ctr[POD_SHIM]:.0f} / {ctr[RUNC]:.0f} ms) "
        f"| {_verdict(ratio(ctr), 0.7)} |",
        "",
        "## Results",
        "",
        "Median, then the range.",
        "",
        "| benchmark | runc (containerd-shim-runc-v2) | pyrunc-shim | pyrunc-node |",
        "|---|---|---|---|",
        f"| CRI lifecycle | {lifecycle[RUNC]:.1f} ms ({_spread(lifecycle_samples[RUNC])}) "
        f"| {lifecycle[POD_SHIM]:.1f} ms ({_spread(lifecycle_samples[POD_SHIM])}) | – |",
        f"| CreateContainer + StartContainer | {create_start[RUNC]:.1f} ms ({_spread(create_start_samples[RUNC])}) "
        f"| {create_start[POD_SHIM]:.1f} ms ({_spread(create_start_samples[POD_SHIM])}) | – |",
        f"| `ctr run --rm` /bin/true | {ctr[RUNC]:.1f} ms ({_spread(ctr_samples[RUNC])}) "
        f"| {ctr[POD_SHIM]:.1f} ms ({_spread(ctr_samples[POD_SHIM])}) | – |",
        f"| {args.pods} pods started in parallel, wall | {parallel[RUNC][0]:.0f} ms ({_spread(walls[RUNC])}) "
        f"| {parallel[POD_SHIM][0]:.0f} ms ({_spread(walls[POD_SHIM])}) "
        f"| {parallel[NODE_SHIM][0]:.0f} ms ({_spread(walls[NODE_SHIM])}) |",
        f"| shim processes with {args.pods} pods | {parallel[RUNC][1]} | {parallel[POD_SHIM][1]} | {parallel[NODE_SHIM][1]} |",
        f"| shims' PSS, sum | {parallel[RUNC][2]:,.0f} kB ({_spread(psses[RUNC], 'kB')}) "
        f"| {parallel[POD_SHIM][2]:,.0f} kB ({_spread(psses[POD_SHIM], 'kB')}) "
        f"| {parallel[NODE_SHIM][2]:,.0f} kB ({_spread(psses[NODE_SHIM], 'kB')}) |",
        f"| shims' RSS, sum | {parallel[RUNC][3]:,.0f} kB | {parallel[POD_SHIM][3]:,.0f} kB | {parallel[NODE_SHIM][3]:,.0f} kB |",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        args.output.write_text(text)
    import shutil
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
