"""`pyrunc profile record|check|diff`: the command line of the seccomp profile tools.

pyrunc/cli.py declares one command, `profile`, whose arguments all come here unparsed.

    pyrunc profile record -b BUNDLE -o PROFILE [--report FILE] [--with-args] [--keep-nnp] [--runs N] [--format table|json] [ID]
    pyrunc profile check  -b BUNDLE --profile PROFILE [--no-compare] [--expect-denied NAME[:ERRNO]]...
                          [--expect-allowed NAME]... [--format table|json] [ID]
    pyrunc profile diff   A B [--format table|json]

Exit status, for CI: record 0 when the workload exited 0 (the profile is written either
way); check 1 when the profile denied anything, the exit status differs from an
unconfined run, an --expect-* does not hold, or the diagnosis had errors; diff 1 when the
profiles differ.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from pyrunc.errors import PyruncError

USAGE = """usage: pyrunc profile record -b BUNDLE -o PROFILE [--report FILE] [--with-args] [--keep-nnp] [--runs N] [--format table|json] [--timeout S] [ID]
       pyrunc profile check -b BUNDLE --profile PROFILE [--no-compare] [--expect-denied NAME[:ERRNO]]... [--expect-allowed NAME]... [--format table|json] [--timeout S] [ID]
       pyrunc profile diff A B [--format table|json]
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, through pyrunc's error reporting
        raise PyruncError(f"profile {self.prog.split()[-1]}: {message}")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="pyrunc profile", add_help=False)
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    record = sub.add_parser("record", add_help=False)
    record.add_argument("-b", "--bundle", default=".")
    record.add_argument("-o", "--output", required=True)
    record.add_argument("--report", default="")
    record.add_argument("--with-args", action="store_true")
    record.add_argument("--keep-nnp", action="store_true")
    record.add_argument("--runs", type=int, default=1)
    record.add_argument("--format", choices=("table", "json"), default="table")
    record.add_argument("--timeout", type=float, default=300)
    record.add_argument("id", nargs="?")
    check = sub.add_parser("check", add_help=False)
    check.add_argument("-b", "--bundle", default=".")
    check.add_argument("--profile", required=True)
    check.add_argument("--no-compare", action="store_true")
    check.add_argument("--expect-denied", action="append", default=[], metavar="NAME[:ERRNO]")
    check.add_argument("--expect-allowed", action="append", default=[], metavar="NAME")
    check.add_argument("--format", choices=("table", "json"), default="table")
    check.add_argument("--timeout", type=float, default=300)
    check.add_argument("id", nargs="?")
    diff = sub.add_parser("diff", add_help=False)
    diff.add_argument("a")
    diff.add_argument("b")
    diff.add_argument("--format", choices=("table", "json"), default="table")
    return parser


def main(g, args: list[str]) -> int:
    """Run `pyrunc profile ARGS` with the global options `g` (their --root is used)."""
    if not args or args[0] in ("-h", "--help", "help"):
        sys.stdout.write(USAGE)
        return 0
    if args[0] not in ("record", "check", "diff"):
        raise PyruncError(f"profile: unknown subcommand {args[0]!r} (expected record, check or diff)")
    opts = _parser().parse_args(args)
    if opts.command == "record":
        return _record(g, opts)
    if opts.command == "check":
        return _check(g, opts)
    return _diff(opts)


def _echo_workload(result, fmt: str) -> None:
    """The workload's output: on our stdout/stderr, or all on stderr when stdout is JSON."""
    if result is None:
        return
    (sys.stderr if fmt == "json" else sys.stdout).write(result.stdout)
    sys.stderr.write(result.stderr)
    sys.stdout.flush()
    sys.stderr.flush()


def _write_json(path: str, data: dict) -> None:
    temporary = f"{path}.tmp"
    try:
        with open(temporary, "w") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
        os.replace(temporary, path)
    except OSError as e:
        raise PyruncError(f"write {path}: {os.strerror(e.errno).lower()}") from None


def _record(g, opts) -> int:
    from pyrunc.harness.record import record
    recording = record(os.path.abspath(opts.bundle), timeout=opts.timeout, container_id=opts.id, root=g.root,
                       keep_no_new_privileges=opts.keep_nnp, runs=opts.runs)
    _echo_workload(recording.result, opts.format)
    output = os.path.abspath(opts.output)
    report_path = opts.report or (output[:-5] if output.endswith(".json") else output) + ".report.json"
    _write_json(output, recording.profile(with_args=opts.with_args))
    report = recording.report()
    report["profile"] = output
    _write_json(report_path, report)
    if opts.format == "json":
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        sys.stdout.write(recording.table() + f"profile: {output}\nreport: {report_path}\n")
    if recording.errors:
        raise PyruncError(f"recording incomplete: {recording.errors[0]}")
    return 0 if recording.result is not None and recording.result.exit_code == 0 else 1


def _check(g, opts) -> int:
    from pyrunc.harness.check import Expectation, check
    expectations = [Expectation.parse(text, denied=True) for text in opts.expect_denied]
    expectations += [Expectation.parse(text, denied=False) for text in opts.expect_allowed]
    result = check(os.path.abspath(opts.bundle), os.path.abspath(opts.profile), timeout=opts.timeout,
                   compare_unconfined=not opts.no_compare, root=g.root, container_id=opts.id,
                   expectations=expectations)
    _echo_workload(result.result, opts.format)
    if opts.format == "json":
        sys.stdout.write(json.dumps(result.report(), indent=2) + "\n")
    else:
        sys.stdout.write(result.table())
    return 1 if result.failed else 0


def _diff(opts) -> int:
    from pyrunc.harness.api import load_profile
    from pyrunc.harness.diff import diff_profiles, diff_table
    result = diff_profiles(load_profile(opts.a), load_profile(opts.b), a_name=opts.a, b_name=opts.b)
    sys.stdout.write(json.dumps(result, indent=2) + "\n" if opts.format == "json" else diff_table(result))
    return 0 if result["identical"] else 1
