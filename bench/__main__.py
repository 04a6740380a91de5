"""python3 -m bench [--quick] [-n N] [--warmup W] [--output PATH | --no-write] [--baseline PYRUNC]

Measures every figure of issue 8 for the installed pyrunc, runc and crun in one run.
Timed: foreground `run` of /bin/true, with and without a docker-like seccomp profile
(and pyrunc in crun's cgroup2 view), create+start+delete --force, `state` of a created
container, `kill` of a running one, `delete` of a stopped one, and 100 lifecycles 10 at
a time (total wall, failures). Memory of a created container: its init's RSS and what
its memory cgroup is charged. Runtimes alternate sample by sample (in a rotating order)
after a warm-up. Prints markdown (targets, table) and writes it to docs/BENCHMARKS.md
with the machine description and a PNG chart of the latency distributions (drawn with
matplotlib, the optional `bench` extra; skipped without it). Installs nothing; runs in a private mount namespace; deletes every container it created, also
when interrupted.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BASE_CONFIG = REPO / "bundles" / "busybox" / "config.json"
BUILD_ROOTFS = REPO / "bundles" / "build_rootfs.py"
DEFAULT_OUTPUT = REPO / "docs" / "BENCHMARKS.md"
SETUP_LOCK = REPO / "build" / ".setup.lock"  # held by ./setup.sh while it (re)installs
PYRUNC_V2 = "pyrunc-v2"  # pyrunc started in crun's view of the cgroup tree
BASELINE = "pyrunc-baseline"  # --baseline: an earlier pyrunc, measured alongside
SECCOMP_PROFILE = REPO / "pyrunc" / "seccomp" / "default_profile.json"
TIME_BUDGET_S = 240  # the whole run must stay under 4 minutes


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python3 -m bench", description=__doc__.splitlines()[2])
    parser.add_argument("-n", "--iterations", type=int, default=None, help="timed samples per runtime (30)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed rounds first (3)")
    parser.add_argument("--rss-samples", type=int, default=None,
                        help="created containers per runtime for RSS and cgroup memory (5)")
    parser.add_argument("--lifecycles", type=int, default=None, help="concurrent lifecycles per runtime (100)")
    parser.add_argument("--parallel", type=int, default=10, help="lifecycles at a time (10)")
    parser.add_argument("--quick", action="store_true",
                        help="a short run (-n 5 --warmup 1 --rss-samples 2 --lifecycles 30) that prints "
                             "only, unless --output is given")
    parser.add_argument("--output", type=Path, default=None, help="markdown report (docs/BENCHMARKS.md)")
    parser.add_argument("--chart", type=Path, default=None,
                        help="PNG of the latency distributions (bench-latency.png next to the report)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--baseline", metavar="PYRUNC", default=None,
                        help="another pyrunc install (its launcher) measured in the same run as "
                             "\"pyrunc-baseline\": the before of a change, sample by sample")
    args = parser.parse_args(argv)
    quick = {"iterations": 5, "warmup": 1, "rss_samples": 2, "lifecycles": 30}
    full = {"iterations": 30, "warmup": 3, "rss_samples": 5, "lifecycles": 100}
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.quick and args.output is None:
        args.no_write = True
    if args.output is None:
        args.output = DEFAULT_OUTPUT
    if args.chart is None:
        args.chart = args.output.parent / "bench-latency.png"
    return args


def _build_bundles(directory: Path) -> dict[str, str]:
    """Bundles sharing one busybox rootfs: "true" (/bin/true), "seccomp" (the same with
    pyrunc's docker-like default profile in linux.seccomp), "sleep" (a long-running
    process, for `kill`)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_build_rootfs", BUILD_ROOTFS)
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    rootfs = directory / "rootfs"
    builder.build_rootfs(str(rootfs))
    config = json.loads(BASE_CONFIG.read_text())
    config["root"] = {"path": str(rootfs), "readonly": True}
    config["process"]["terminal"] = False
    config["process"]["args"] = ["/bin/true"]
    # No cgroupsPath: each runtime then places the container beneath its own cgroup.
    config.setdefault("linux", {}).pop("cgroupsPath", None)
    config["linux"].pop("seccomp", None)
    variants = {
        "true": config,
        "seccomp": {**config, "linux": {**config["linux"],
                                        "seccomp": json.loads(SECCOMP_PROFILE.read_text())}},
        "sleep": {**config, "process": {**config["process"], "args": ["/bin/sleep", "100000"]}},
    }
    bundles = {}
    for name, variant in variants.items():
        bundle = directory / f"bundle-{name}"
        bundle.mkdir()
        (bundle / "config.json").write_text(json.dumps(variant, indent=2))
        bundles[name] = str(bundle)
    return bundles


def _hold_install_lock():
    """A shared hold on ./setup.sh's install lock: a reinstall (pip replaces the console
    script and the package) during the run would break or skew it. Returns the open file
    (the lock lasts until it is closed), or None when there is no lock file."""
    import fcntl

    try:
        handle = open(SETUP_LOCK, "rb")
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        print("bench: waiting for ./setup.sh to finish installing ...", file=sys.stderr, flush=True)
        fcntl.flock(handle, fcntl.LOCK_SH)
    return handle


def _runtimes(workdir: Path, notes: list[str], baseline: str | None):
    from bench import namespaces
    from bench.runtimes import CRUN, RUNC, Runtime, find_pyrunc, launcher_interpreter

    found = []
    pyrunc = find_pyrunc()
    if pyrunc is None or not os.access(pyrunc, os.X_OK):
        raise SystemExit("bench: pyrunc is not installed (run ./setup.sh, or set PYRUNC_BIN)")
    found.append(Runtime("pyrunc", pyrunc, note=f"{pyrunc} (runs {launcher_interpreter(pyrunc)})"))
    if baseline is not None:
        if not os.access(baseline, os.X_OK):
            raise SystemExit(f"bench: --baseline {baseline} is not an executable pyrunc")
        found.append(Runtime(BASELINE, baseline, note=f"{baseline} (runs {launcher_interpreter(baseline)})"))
    if os.access(RUNC, os.X_OK):
        found.append(Runtime("runc", RUNC, note=RUNC))
    else:
        notes.append(f"runc: {RUNC} is missing; ratios are not available")
    crun_view = None
    if os.access(CRUN, os.X_OK):
        try:
            crun_view = namespaces.UnifiedCgroupView.create()
        except OSError as e:
            notes.append(f"crun: not measured ({e})")
        else:
            crun = Runtime("crun", CRUN, extra_global_args=["--cgroup-manager=disabled"],
                           preexec=crun_view.enter,
                           note=f"{CRUN} --cgroup-manager=disabled, in a mount namespace with "
                                "cgroup2 mounted on /sys/fs/cgroup")
            found.append(crun)
            # The issue's `run` target holds pyrunc to crun also in crun's own view of the
            # cgroup tree (cgroup2 over /sys/fs/cgroup); pyrunc keeps its cgroups on there.
            found.append(Runtime(PYRUNC_V2, pyrunc, preexec=crun_view.enter,
                                 note=f"{pyrunc} in crun's mount namespace (cgroup2 mounted on "
                                      "/sys/fs/cgroup), cgroups on; measured for `run` only"))
    else:
        notes.append(f"crun: {CRUN} is missing; not measured")
    for runtime in found:
        runtime.root = tempfile.mkdtemp(prefix=f"{runtime.name}-", dir=workdir)
    return found, crun_view


def _probe(runtimes: list, bundle: str, notes: list[str]) -> list:
    """Drop a runtime that cannot run the bundle here (saying why) instead of failing."""
    from bench import measure

    usable = []
    for runtime in runtimes:
        try:
            measure.run_true(runtime, bundle)
        except Exception as e:  # noqa: BLE001 - any failure means "cannot run here"
            notes.append(f"{runtime.name}: cannot run containers on this machine, not measured ({e})")
            runtime.cleanup()
            continue
        usable.append(runtime)
    return usable


def _alternating(runtimes: list, rounds: int, sample, results: dict | None) -> None:
    """`rounds` rounds, each sampling every runtime once, the order rotating per round."""
    for index in range(rounds):
        shift = index % len(runtimes)
        for runtime in runtimes[shift:] + runtimes[:shift]:
            value = sample(runtime)
            if results is not None:
                results.setdefault(runtime.name, []).append(value)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    if os.geteuid() != 0:
        raise SystemExit("bench: must run as root (containers need it)")
    from bench import measure, namespaces, report

    namespaces.enter_private_namespace()
    install_lock = _hold_install_lock()
    started = time.monotonic()
    load_at_start = os.getloadavg()
    notes: list[str] = []
    workdir = Path(tempfile.mkdtemp(prefix="pyrunc-bench-", dir="/tmp"))
    everyone: list = []
    crun_view = None
    leftovers: list[str] = []
    try:
        bundles = _build_bundles(workdir)
        bundle = bundles["true"]
        everyone, crun_view = _runtimes(workdir, notes, args.baseline)
        everyone = _probe(everyone, bundle, notes)
        # pyrunc in crun's view takes part in `run` only; every other figure compares the
        # three runtimes as installed.
        runtimes = [r for r in everyone if r.name != PYRUNC_V2]
        names = [r.name for r in runtimes]
        n, warmup = args.iterations, args.warmup
        rows: list[dict] = []
        distributions: list[tuple[str, dict[str, list[float]]]] = []

        def timed(title: str, sample, participants: list | None = None) -> dict[str, list[float]]:
            print(f"bench: {title} ...", file=sys.stderr, flush=True)
            participants = participants or runtimes
            _alternating(participants, warmup, sample, None)
            samples: dict[str, list[float]] = {}
            _alternating(participants, n, sample, samples)
            return samples

        def add_row(title: str, samples: dict[str, list[float]], unit: str = "ms") -> None:
            rows.append({"name": title, "unit": unit,
                         "median": {k: report.median(v) for k, v in samples.items() if v},
                         "p90": {k: report.percentile(v, 0.9) for k, v in samples.items() if v}})
            if unit == "ms":
                distributions.append((title, samples))

        # `run` with and without the seccomp profile in the same rounds, the order of the
        # two flipping per round, so that the difference is not the machine's drift.
        flip = iter(range(1 << 30))
        plain: dict[str, list[float]] = {}
        filtered: dict[str, list[float]] = {}
        recording = False

        def run_pair(runtime) -> None:
            order = [("true", plain), ("seccomp", filtered)]
            if next(flip) % 2:
                order.reverse()
            for which, into in order:
                value = measure.run_true(runtime, bundles[which])
                if recording:
                    into.setdefault(runtime.name, []).append(value)

        print("bench: run /bin/true, with and without seccomp ...", file=sys.stderr, flush=True)
        _alternating(runtimes, warmup, run_pair, None)
        recording = True
        _alternating(runtimes, n, run_pair, None)
        add_row("run /bin/true", plain)
        add_row("run /bin/true + seccomp default profile", filtered)
        rows.append({"name": "seccomp: added to `run` (median with - median without)", "unit": "ms",
                     "signed": True, "no_ratio": True,
                     "median": {k: report.median(filtered[k]) - report.median(plain[k]) for k in plain},
                     "p90": {}})
        seccomp_added = rows[-1]["median"]
        paired = {k: report.median([b - a for a, b in zip(plain[k], filtered[k])]) for k in plain}
        notes.append("seccomp, median of the per-round differences (with - without, same runtime, "
                     "back to back), a steadier estimate on a busy machine: "
                     + ", ".join(f"{k} {v:+.1f} ms" for k, v in paired.items()))
        v2_run = None
        crun_view_participants = [r for r in everyone if r.name in (PYRUNC_V2, "crun", "pyrunc")]
        if len(crun_view_participants) == 3:
            samples = timed("run /bin/true, pyrunc in crun's view",
                            lambda r: measure.run_true(r, bundle), crun_view_participants)
            v2_run = samples
            rows.append({"name": "run /bin/true, pyrunc in crun's cgroup2 view (pyrunc column; in the host "
                                 f"view in the same rounds: {report.median(samples['pyrunc']):.1f} ms)",
                         "unit": "ms", "no_ratio": True,
                         "median": {"pyrunc": report.median(samples[PYRUNC_V2]),
                                    "crun": report.median(samples["crun"])},
                         "p90": {"pyrunc": report.percentile(samples[PYRUNC_V2], 0.9),
                                 "crun": report.percentile(samples["crun"], 0.9)},
                         })
            distributions.append(("run /bin/true, pyrunc in crun's view",
                                  {"pyrunc": samples[PYRUNC_V2], "crun": samples["crun"]}))

        add_row("create + start + delete --force",
                timed("create + start + delete --force", lambda r: measure.create_start_delete(r, bundle)))

        created = {}
        for runtime in runtimes:
            created[runtime.name] = measure.fresh_id(runtime)
            runtime.run("create", "-b", bundle, created[runtime.name])
        add_row("state (created container)",
                timed("state (created container)", lambda r: measure.state_of_created(r, created[r.name])))
        for runtime in runtimes:
            runtime.run("delete", "--force", created[runtime.name], check=False)

        running = {}
        for runtime in runtimes:
            running[runtime.name] = measure.fresh_id(runtime)
            runtime.run("create", "-b", bundles["sleep"], running[runtime.name])
            runtime.run("start", running[runtime.name])
        add_row("kill SIGCONT (running container)",
                timed("kill SIGCONT (running container)", lambda r: measure.kill_running(r, running[r.name])))
        for runtime in runtimes:
            runtime.run("delete", "--force", running[runtime.name], check=False)

        add_row("delete (stopped container)",
                timed("delete (stopped container)", lambda r: measure.delete_stopped(r, bundle, str(workdir))))

        print("bench: created container's memory ...", file=sys.stderr, flush=True)
        memory: dict[str, list[tuple[float, float | None]]] = {}
        _alternating(runtimes, args.rss_samples, lambda r: measure.created_memory(r, bundle), memory)
        rss = {k: [v[0] for v in values] for k, values in memory.items()}
        charged = {k: [v[1] for v in values if v[1] is not None] for k, values in memory.items()}
        add_row("init RSS, created container (VmRSS)", rss, unit="kB")
        add_row("memory cgroup charge, created container (usage_in_bytes)", charged, unit="kB")

        print(f"bench: {args.lifecycles} lifecycles, {args.parallel} at a time ...", file=sys.stderr, flush=True)
        walls: dict[str, list[float]] = {}
        failures: dict[str, list[float]] = {}
        failure_detail: dict[str, list[str]] = {}

        def lifecycles(runtime) -> None:
            wall, failed, errors = measure.concurrent_lifecycles(
                runtime, bundle, str(workdir), args.lifecycles, args.parallel)
            walls.setdefault(runtime.name, []).append(wall)
            failures.setdefault(runtime.name, []).append(failed)
            if errors:
                failure_detail[runtime.name] = errors
            runtime.cleanup()

        _alternating(runtimes, 1, lifecycles, None)
        rows.append({"name": f"{args.lifecycles} lifecycles, {args.parallel} at a time: total wall",
                     "unit": "ms", "median": {k: v[0] for k, v in walls.items()}, "p90": {}})
        rows.append({"name": f"{args.lifecycles} lifecycles: failures", "unit": "", "no_ratio": True,
                     "median": {k: v[0] for k, v in failures.items()}, "p90": {}})
        for name, errors in failure_detail.items():
            notes.append(f"{name}: lifecycle failures, first: " + "; ".join(f"`{e}`" for e in errors))

        print("bench: floors ...", file=sys.stderr, flush=True)
        notes.append(_floors(runtimes, n, warmup))

        elapsed = time.monotonic() - started
        load_at_end = os.getloadavg()
        notes.append("load average (1, 5, 15 min) at the start "
                     + ", ".join(f"{v:.2f}" for v in load_at_start) + "; at the end "
                     + ", ".join(f"{v:.2f}" for v in load_at_end)
                     + f" on {len(os.sched_getaffinity(0))} cpus: other jobs on this shared machine "
                     "add noise, which the p90 column and the chart show better than the median")
        cpus = len(os.sched_getaffinity(0))
        if max(load_at_start[0], load_at_end[0]) > cpus:
            notes.append(
                f"the load exceeded the {cpus} cpus: a command is then often preempted mid-way, "
                "so latencies fall into clusters (one with and one without a wait for a cpu; "
                "see the chart) and a median can land in either cluster. Runtimes that need "
                "more cpu per command (pyrunc's interpreter) are hit more; expect pyrunc's "
                "ratios to move by a few tenths between runs, and read the paired seccomp "
                "estimate and the chart alongside the medians")
        targets = _targets(rows, seccomp_added, paired, v2_run, report)
        chart_written = None
        from bench import chart
        if not args.no_write and not chart.available():
            print('bench: no chart (matplotlib is missing: pip install "pyrunc[bench]")',
                  file=sys.stderr)
        elif not args.no_write:
            args.chart.parent.mkdir(parents=True, exist_ok=True)
            args.chart.write_bytes(chart.latency_chart(
                distributions, names,
                f"wall time per command, {n} samples per runtime (log scale)"))
            chart_written = args.chart
        document = _document(args, rows, names, everyone, notes, elapsed, namespaces.cgroup_mode(),
                             targets, chart_written)
        print(document)
        if not args.no_write:
            args.output.parent.mkdir(parents=True, exist_ok=True)
            args.output.write_text(document)
            print(f"bench: wrote {args.output}" + (f" and {chart_written}" if chart_written else ""),
                  file=sys.stderr)
        if elapsed > TIME_BUDGET_S:
            print(f"bench: took {elapsed:.0f}s, over the {TIME_BUDGET_S}s budget: lower -n",
                  file=sys.stderr)
    finally:
        for runtime in everyone:
            for container_id in runtime.cleanup():
                leftovers.append(f"{runtime.name}:{container_id}")
        if crun_view is not None:
            crun_view.close()
        shutil.rmtree(workdir, ignore_errors=True)
        if install_lock is not None:
            install_lock.close()
    if leftovers:
        print(f"bench: could not delete: {', '.join(leftovers)}", file=sys.stderr)
        return 1
    return 0


def _floors(runtimes: list, n: int, warmup: int) -> str:
    """What no runtime started as a command can go below here, measured like the
    runtimes, alternating: the note that says what bounds pyrunc's figures."""
    from bench import measure, report
    from bench.runtimes import launcher_interpreter

    pyrunc = next((r for r in runtimes if r.name == "pyrunc"), None)
    interpreter = launcher_interpreter(pyrunc.binary) if pyrunc else sys.executable
    commands = {
        "`true`": ["/bin/true"],
        "`unshare -m true`": ["unshare", "-m", "/bin/true"],
        f"`{interpreter} -I -S -c pass` (pyrunc's launcher mode)": [interpreter, "-I", "-S", "-c", "pass"],
        f"`{interpreter} -c pass` (with site)": [interpreter, "-c", "pass"],
    }
    for _ in range(warmup):
        for argv in commands.values():
            measure.floor_command(argv)
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for index in range(n):
        order = list(commands.items())
        shift = index % len(order)
        for name, argv in order[shift:] + order[:shift]:
            samples[name].append(measure.floor_command(argv))
    return ("floors, started the same way (medians of "
            f"{n}): " + "; ".join(f"{name} {report.median(v):.1f} ms" for name, v in samples.items())
            + ". The interpreter's start-up bounds every pyrunc command from below")


def _targets(rows: list[dict], seccomp_added: dict, paired: dict, v2_run, report) -> list[tuple[str, str, str]]:
    """Issue 8's targets: (target, measured, verdict)."""
    found = []

    def ratio_target(label: str, row_key: str, other: str, limit: float) -> None:
        row = next((r for r in rows if r["name"].startswith(row_key)), None)
        mine = row["median"].get("pyrunc") if row else None
        theirs = row["median"].get(other) if row else None
        if mine is None or not theirs:
            found.append((label, "not measured", "–"))
            return
        value = mine / theirs
        verdict = "holds" if value <= limit else f"misses by {(value / limit - 1) * 100:.0f}%"
        found.append((label, f"{value:.2f}× ({mine:.1f} / {theirs:.1f} ms)", verdict))

    def absolute_target(label: str, row_key: str, limit: float, unit: str, runtime: str = "pyrunc") -> None:
        row = next((r for r in rows if r["name"].startswith(row_key)), None)
        value = row["median"].get(runtime) if row else None
        if value is None:
            found.append((label, "not measured", "–"))
            return
        shown = f"{value:,.0f} {unit}".strip()
        verdict = "holds" if value <= limit else f"misses by {value - limit:,.0f} {unit}".strip()
        found.append((label, shown, verdict))

    ratio_target("`run` ≤ 0.6× runc", "run /bin/true", "runc", 0.6)
    ratio_target("`run` ≤ 1.2× crun (host view)", "run /bin/true", "crun", 1.2)
    if v2_run is not None:
        mine, theirs = report.median(v2_run[PYRUNC_V2]), report.median(v2_run["crun"])
        value = mine / theirs
        found.append(("`run` ≤ 1.2× crun (pyrunc in crun's view)", f"{value:.2f}× ({mine:.1f} / {theirs:.1f} ms)",
                      "holds" if value <= 1.2 else f"misses by {(value / 1.2 - 1) * 100:.0f}%"))
    ratio_target("create + start + delete --force ≤ 0.6× runc", "create + start", "runc", 0.6)
    ratio_target("`state` ≤ 1.0× runc", "state", "runc", 1.0)
    ratio_target("`kill` ≤ 1.0× runc", "kill", "runc", 1.0)
    ratio_target("`delete` ≤ 1.0× runc", "delete (stopped", "runc", 1.0)
    absolute_target("created init RSS ≤ 2 MiB (2,048 kB)", "init RSS", 2048, "kB")
    absolute_target("memory cgroup charge ≤ 1 MiB (1,024 kB)", "memory cgroup", 1024, "kB")
    ratio_target("lifecycles 10 at a time ≤ 0.6× runc", next(
        r["name"] for r in rows if "total wall" in r["name"]), "runc", 0.6)
    absolute_target("lifecycles: zero failures", next(
        r["name"] for r in rows if r["name"].endswith("failures")), 0, "")
    added = seccomp_added.get("pyrunc")
    if added is None:
        found.append(("seccomp profile adds ≤ 1 ms to `run`", "not measured", "–"))
    else:
        verdict = "holds" if added <= 1.0 else f"misses by {added - 1.0:.1f} ms"
        steadier = paired.get("pyrunc")
        if steadier is not None and (steadier <= 1.0) != (added <= 1.0):
            verdict += (f" on the difference of medians; the paired estimate ({steadier:+.1f} ms) "
                        + ("holds" if steadier <= 1.0 else "misses") + ": within the noise")
        found.append(("seccomp profile adds ≤ 1 ms to `run` (cached)",
                      f"{added:+.1f} ms (paired: {steadier:+.1f} ms)" if steadier is not None
                      else f"{added:+.1f} ms", verdict))
    return found


def _document(args, rows, names, runtimes, notes, elapsed, cgroup_mode, targets, chart) -> str:
    from bench import report

    command_line = "python3 -m bench" + "".join(f" {shlex.quote(a)}" for a in sys.argv[1:])
    lines = [
        "# Benchmarks",
        "",
        "Produced by `python3 -m bench` (bench/); rerun it to refresh this file and the chart. "
        "The targets are issue 8's; docs/performance.md has where the time goes, what bounds "
        "it and what was changed to gain what.",
        "",
        "## Command",
        "",
        "```",
        f"cd {REPO} && {command_line}",
        "```",
        "",
        f"As root, from the repository root (`python3` being `{sys.executable}`). "
        f"{args.iterations} timed samples per runtime after {args.warmup} untimed warm-up round(s); "
        "the runtimes alternate sample by sample in a rotating order. Wall time of each command "
        "as started from Python (fork + exec + the command), all runtimes started the same way. "
        f"Memory: median of {args.rss_samples} created containers per runtime. "
        "`python3 -m bench --quick` is a short version that only prints. "
        f"The whole run took {elapsed:.0f} s.",
        "",
        "## Targets",
        "",
        "| target (issue 8) | measured (pyrunc) | verdict |",
        "|---|---|---|",
        *[f"| {t} | {m} | {v} |" for t, m, v in targets],
        "",
        "## Results",
        "",
        *report.table(rows, names),
        "",
        "Ratios are of the medians, against runc. kB = 1024 bytes. The bundle is busybox "
        "(bundles/build_rootfs.py), read-only root, runc's default spec otherwise (namespaces "
        "mount, pid, ipc, uts, network; masked and read-only paths; default capabilities), no "
        "cgroupsPath, and no seccomp except in the seccomp rows (pyrunc/seccomp/default_profile.json, "
        "docker's default profile in OCI form, as linux.seccomp).",
        "",
        "What each row times:",
        "",
        "- `run`: `run -b <bundle> <id>` of /bin/true in the foreground (create, start, wait, delete).",
        "- seccomp: the same `run` with the profile, in the same rounds as the plain `run` (the "
        "order of the two flipping every round); the figure is the difference of the medians. "
        "pyrunc compiles the profile once and reuses its cached filter afterwards (the warm-up "
        "rounds fill the cache).",
        "- create + start + delete --force of /bin/true: three commands timed together.",
        "- `state` of one created container; `kill <id> SIGCONT` of one running container "
        "(busybox sleep; the signal leaves it running); `delete` (no --force) of a container "
        "whose process has exited (create, start and the wait for the exit untimed; the exit "
        "awaited with a pidfd).",
        "- memory of a created, not started container: VmRSS of its init, and the bytes charged "
        "to its memory cgroup, `memory.usage_in_bytes` (v1; `memory.current` on v2) of the cgroup "
        "named in `/proc/<init pid>/cgroup`. The v1 counter includes kernel memory (page tables, "
        "kernel stacks, slab) and is charged in per-cpu batches, so it can read up to ~256 kB per "
        "cpu high.",
        f"- lifecycles: {args.lifecycles} containers (distinct ids) each created with `--pid-file`, "
        f"started, awaited (pidfd) and deleted, {args.parallel} at a time from a thread pool; total "
        "wall per runtime, one batch per runtime in turn; a failure is any command exiting non-zero.",
        "",
    ]
    if chart is not None:
        relative = os.path.relpath(chart, args.output.parent)
        lines += [
            "## Latency distributions",
            "",
            f"![latency distributions]({relative})",
            "",
            "Every dot is one sample; box: 25th-75th percentile, line: 10th-90th, black bar: "
            "median; one log time axis for all rows.",
            "",
        ]
    lines += ["## Runtimes", ""]
    for runtime in runtimes:
        lines.append(f"- **{runtime.name}**: {runtime.version()} — {runtime.note}")
    lines += ["", "## Machine", ""]
    for key, value in report.machine_description(cgroup_mode):
        lines.append(f"- {key}: {value}")
    lines += [
        "",
        "## Notes",
        "",
        "- The run happens in a private mount + IPC namespace (unshare in-process); runc and "
        "pyrunc see the host's cgroup layout and create their cgroups (v1 controllers) beneath "
        "the benchmark's own cgroup.",
        "- crun 1.8 refuses hybrid cgroups, so it runs in a mount namespace of its own with the "
        "cgroup2 hierarchy mounted on /sys/fs/cgroup in place of the v1 tree (its wrapper: a setns into that namespace "
        "between fork and exec, no extra exec) and `--cgroup-manager=disabled`: it creates no "
        "cgroup at all, which makes its numbers a lower bound rather than a like-for-like "
        "comparison, and leaves its memory-cgroup cell empty.",
        "- The memory-cgroup figure is the counter as the kernel keeps it: v1 charges in "
        "per-cpu batches of 64 pages (256 kB), so a reading of exactly 256 kB means \"one "
        "batch or less\", not a measured 256 kB.",
    ]
    lines += [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
