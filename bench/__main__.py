"""python3 -m bench [-n N] [--warmup W] [--output PATH | --no-write]

Compares the installed pyrunc with runc and crun: foreground `run` of /bin/true,
create+start+delete --force, `state` of a created container, and the RSS of a created
container's init. Runtimes alternate sample by sample (in a rotating order) after a
warm-up. Prints a markdown table and writes it to docs/BENCHMARKS.md with the machine
description. Installs nothing; runs in a private mount namespace; deletes every
container it created, also when interrupted.
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
TIME_BUDGET_S = 170  # the whole run must stay under 3 minutes


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python3 -m bench", description=__doc__.splitlines()[2])
    parser.add_argument("-n", "--iterations", type=int, default=30, help="timed samples per runtime (30)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds first (3)")
    parser.add_argument("--rss-samples", type=int, default=5, help="created containers per runtime for RSS (5)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="markdown report (docs/BENCHMARKS.md)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    return parser.parse_args(argv)


def _build_bundle(directory: Path) -> str:
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
    bundle = directory / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps(config, indent=2))
    return str(bundle)


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


def _runtimes(workdir: Path, notes: list[str]):
    from bench import namespaces
    from bench.runtimes import CRUN, RUNC, Runtime, find_pyrunc, launcher_interpreter

    found = []
    pyrunc = find_pyrunc()
    if pyrunc is None or not os.access(pyrunc, os.X_OK):
        raise SystemExit("bench: pyrunc is not installed (run ./setup.sh, or set PYRUNC_BIN)")
    found.append(Runtime("pyrunc", pyrunc, note=f"{pyrunc} (runs {launcher_interpreter(pyrunc)})"))
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
                                "cgroup2 bound over /sys/fs/cgroup")
            found.append(crun)
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
    load_at_start = os.getloadavg()[0]
    notes: list[str] = []
    workdir = Path(tempfile.mkdtemp(prefix="pyrunc-bench-", dir="/tmp"))
    runtimes: list = []
    crun_view = None
    leftovers: list[str] = []
    try:
        bundle = _build_bundle(workdir)
        runtimes, crun_view = _runtimes(workdir, notes)
        runtimes = _probe(runtimes, bundle, notes)
        names = [r.name for r in runtimes]
        n, warmup = args.iterations, args.warmup
        rows = []

        def timed(title: str, sample) -> None:
            print(f"bench: {title} ...", file=sys.stderr, flush=True)
            _alternating(runtimes, warmup, sample, None)
            samples: dict[str, list[float]] = {}
            _alternating(runtimes, n, sample, samples)
            rows.append({
                "name": title, "unit": "ms",
                "median": {k: report.median(v) for k, v in samples.items()},
                "p90": {k: report.percentile(v, 0.9) for k, v in samples.items()},
            })

        timed("run /bin/true", lambda r: measure.run_true(r, bundle))
        timed("create + start + delete --force", lambda r: measure.create_start_delete(r, bundle))

        created = {}
        for runtime in runtimes:
            created[runtime.name] = measure.fresh_id(runtime)
            runtime.run("create", "-b", bundle, created[runtime.name])
        timed("state (created container)", lambda r: measure.state_of_created(r, created[r.name]))
        for runtime in runtimes:
            runtime.run("delete", "--force", created[runtime.name], check=False)

        print("bench: init RSS ...", file=sys.stderr, flush=True)
        rss: dict[str, list[float]] = {}
        _alternating(runtimes, args.rss_samples, lambda r: measure.init_rss_kb(r, bundle), rss)
        rows.append({"name": "init RSS, created container (VmRSS)", "unit": "kB",
                     "median": {k: report.median(v) for k, v in rss.items()}, "p90": {}})

        elapsed = time.monotonic() - started
        notes.append(f"load average (1 min) at the start {load_at_start:.2f}, at the end "
                     f"{os.getloadavg()[0]:.2f}: on a shared machine other jobs add noise, which "
                     "the p90 column shows better than the median")
        document = _document(args, rows, names, runtimes, notes, elapsed, namespaces.cgroup_mode())
        print(document)
        if not args.no_write:
            args.output.parent.mkdir(parents=True, exist_ok=True)
            args.output.write_text(document)
            print(f"bench: wrote {args.output}", file=sys.stderr)
        if elapsed > TIME_BUDGET_S:
            print(f"bench: took {elapsed:.0f}s, over the {TIME_BUDGET_S}s budget: lower -n",
                  file=sys.stderr)
    finally:
        for runtime in runtimes:
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


def _document(args, rows, names, runtimes, notes, elapsed, cgroup_mode) -> str:
    from bench import report

    command_line = "python3 -m bench" + "".join(
        f" {shlex.quote(a)}" for a in sys.argv[1:])
    lines = [
        "# Benchmarks",
        "",
        "Produced by `python3 -m bench` (bench/); rerun it to refresh this file.",
        "",
        "## Command",
        "",
        "```",
        f"cd {REPO} && {command_line}",
        "```",
        "",
        f"As root, from the repository root. Interpreter running the benchmark: `{sys.executable}`. "
        f"{args.iterations} timed samples per runtime after {args.warmup} untimed warm-up round(s); the "
        "runtimes alternate sample by sample in a rotating order. Wall time of each command as "
        "started from Python (fork + exec + the command), all runtimes started the same way. "
        f"RSS: median of {args.rss_samples} created containers. The whole run took {elapsed:.0f} s.",
        "",
        "## Results",
        "",
        *report.table(rows, names),
        "",
        "Ratios are of the medians, against runc. The bundle is busybox (bundles/build_rootfs.py), "
        "read-only root, runc's default spec otherwise (namespaces mount, pid, ipc, uts, network; "
        "masked and read-only paths; default capabilities), no cgroupsPath.",
        "",
        "## Runtimes",
        "",
    ]
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
        "cgroup2 hierarchy bound over /sys/fs/cgroup (joined with setns between fork and exec) "
        "and `--cgroup-manager=disabled`: it creates no cgroup at all, which makes its numbers "
        "a lower bound rather than a like-for-like comparison.",
    ]
    lines += [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
