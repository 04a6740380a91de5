"""Command line: argv -> pyrunc.operations call -> output and exit code, shaped like runc 1.1.5.

A thin room: flags table -> parse -> one operations call. Its modules:
- `table`: the flags table (runc's global flags and commands);
- `parse`: argv -> `Parsed` (globals, command, flag values, arguments) or a `UsageError`
  carrying runc's message; a fast path for the forms engines use, click for the rest;
- `commands`: one handler per command: flag values -> one `pyrunc.operations` call ->
  runc's output;
- `help`: help and version texts;
- here: the entry points, the global flags' effect (logging, state root), and what is
  written: exact bytes on stdout/stderr (os.write: nothing may stay in a Python buffer),
  one log line per failure.
Go's number/duration/size syntax and text/tabwriter live in `pyrunc.gocompat`.

Engines call `pyrunc state|kill|delete|start` many times per second: that path imports
`table`, `parse` and `commands`, never click, the help or gocompat.

runc's conventions kept here:
- global flags only before the subcommand; command flags may follow positionals;
- exit 1 on every error, usage errors included (click's own code would be 2); an unknown
  command, which runc answers with "No help topic for 'X'", exits 3; exec's own failures
  exit 255 (see commands.EXEC_FAILED);
- an error is one log line (see pyrunc.log): formatted on stderr without --log; with
  --log, formatted in the file and the bare message on stderr;
- usage errors print "Incorrect Usage..." and the command help on stdout, as urfave/cli.
"""
from __future__ import annotations

import os
import sys

from pyrunc.cli.parse import Parsed, UsageError
from pyrunc.cli.parse import click_parse as _click_parse
from pyrunc.cli.parse import fast_parse as _fast_parse
from pyrunc.cli.table import (COMMANDS, DEFAULT_ROOT, GLOBAL_FLAGS, HELP_COMMAND, HELP_NAMES, PROG,
                              Command)

__all__ = ["main", "run", "COMMANDS", "GLOBAL_FLAGS", "HELP_COMMAND"]


def main(argv: list[str] | None = None) -> None:
    """Console script entry point (`pyrunc = pyrunc.cli:main`)."""
    code = run(sys.argv[1:] if argv is None else list(argv))
    # End without the interpreter's teardown (freeing every module and object costs
    # 5-8 ms, a tenth of a `run`): everything pyrunc prints goes out with os.write and
    # every file it writes is closed by now; only text another library left in the
    # Python-level std streams needs flushing.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def run(argv: list[str]) -> int:
    """Run one command line and return its exit code; every failure becomes one log
    line (see report_error), never a traceback unless --debug."""
    from pyrunc import fds
    fds.snapshot()  # before the --log file or anything else takes an fd number
    try:
        parsed = _fast_parse(argv)
        if parsed is None:
            parsed = _click_parse(argv)
        return _execute(parsed)
    except UsageError as err:
        return _usage_failure(err)
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # noqa: BLE001 - a bug in parsing still gets one line
        return fail(describe_error(err), "--debug" in argv, err)


def _help_text(command: Command | None = None) -> str:
    """The help of `command`, or the app's (the help module is loaded only for this)."""
    from pyrunc.cli.help import app_help, command_help
    return command_help(command) if command is not None else app_help()


def _execute(parsed: Parsed) -> int:
    gopts = parsed.globals
    # Help and version win over everything, as urfave/cli handles them before Before.
    if gopts["help"]:
        write_stdout(_help_text())
        return 0
    if gopts["version"]:
        from pyrunc.cli.help import version_text
        write_stdout(version_text())
        return 0
    failure = _configure_logging(gopts)
    if failure:
        return fail(failure, gopts["debug"])
    command = parsed.command
    if command is None:
        write_stdout(_help_text())
        return 0
    if command is HELP_COMMAND:
        return _help_command(parsed.args, gopts)
    if parsed.opts["help"]:
        write_stdout(_help_text(command))
        return 0
    _check_args(command, parsed.args, gopts)
    try:
        from pyrunc.cli.commands import HANDLERS
        return HANDLERS[command.name](_globals(gopts), parsed.opts, parsed.args)
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # noqa: BLE001 - every failure must become one log line
        return fail(describe_error(err), gopts["debug"], err)


def _configure_logging(gopts: dict) -> str:
    """Set up pyrunc.log from the global flags; returns an error message or ""."""
    from pyrunc import log
    fmt, path, debug = gopts["log_format"], gopts["log"], gopts["debug"]
    if fmt not in ("", "text", "json"):
        log.setup("", "text", debug)
        return f"invalid log-format: {fmt}"
    fmt = fmt or "text"
    log.setup(path, fmt, debug)
    if path:
        try:
            # runc opens the file before running the command: a bad path fails the call.
            log.open_now()
        except OSError as err:
            # reported on stderr as one plain text line, whatever --log-format says: the
            # JSON was meant for the file (runc prints it raw)
            log.setup("", "text", debug)
            return f"open {path}: {strerror(err)}"
    return ""


def _usage_failure(err: UsageError) -> int:
    gopts = err.globals
    if gopts is None or _configure_logging(gopts):
        # Like runc when flags fail before its Before hook: the log is not set up yet.
        from pyrunc import log
        log.setup("", "text", False)
    if err.show_help:
        help_text = _help_text(err.command)
        write_stdout(f"{err.headline}\n\n{help_text}")
    report_error(str(err))
    return err.exit_code


def _check_args(command: Command, args: list[str], gopts: dict) -> None:
    count = len(args)
    if command.min_args == command.max_args:
        if count == command.min_args:
            return
        message = f'{PROG}: "{command.name}" requires exactly {command.min_args} argument(s)'
    elif count < command.min_args:
        message = (f'{PROG}: "{command.name}" requires a minimum of {command.min_args} '
                   f"argument(s)")
    elif count > command.max_args:
        message = (f'{PROG}: "{command.name}" requires a maximum of {command.max_args} '
                   f"argument(s)")
    else:
        return
    raise UsageError(message, "Incorrect Usage.", command, gopts)


def _help_command(args: list[str], gopts: dict) -> int:
    if not args:
        write_stdout(_help_text())
        return 0
    topic = args[0]
    if topic in HELP_NAMES:
        write_stdout(_help_text(HELP_COMMAND))
        return 0
    command = COMMANDS.get(topic)
    if command is None:
        raise UsageError(f"No help topic for '{topic}'", "", None, gopts, exit_code=3,
                          show_help=False)
    write_stdout(_help_text(command))
    return 0


def _globals(gopts: dict):
    from pyrunc.operations import Globals
    log_path = gopts["log"]
    return Globals(root=_state_root(gopts["root"]),
                   log_path=os.path.abspath(log_path) if log_path else "",
                   log_format=gopts["log_format"] or "text",
                   debug=gopts["debug"],
                   systemd_cgroup=gopts["systemd_cgroup"], criu=gopts["criu"],
                   rootless=gopts["rootless"])


def _state_root(given: str | None) -> str:
    if given is not None:
        # runc makes --root absolute before it chdirs into a bundle.
        return os.path.abspath(given)
    # As runc (shouldHonorXDGRuntimeDir): an unprivileged user keeps state in
    # XDG_RUNTIME_DIR, and so does root of a user namespace (rootless podman runs the
    # runtime there) unless USER says root; podman may pass it EMPTY, which counts as unset.
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR", "")
    if runtime_dir and os.geteuid() != 0:
        return os.path.join(runtime_dir, PROG)
    if runtime_dir and os.environ.get("USER") != "root":
        from pyrunc.ns import in_user_namespace
        if in_user_namespace():
            return os.path.join(runtime_dir, PROG)
    return DEFAULT_ROOT


# --- output ------------------------------------------------------------------------

def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def write_stdout(text: str) -> None:
    # os.write, not sys.stdout: nothing may stay in a Python buffer if the process is
    # replaced or killed, and the output must be exactly these bytes.
    write_all(1, text.encode("utf-8", "surrogateescape"))


def write_stderr(text: str) -> None:
    try:
        write_all(2, text.encode("utf-8", "replace"))
    except OSError:
        pass


def fail(message: str, debug: bool, err: BaseException | None = None) -> int:
    """Report a failure as one log line (with --debug, a bug's traceback first); exit 1."""
    from pyrunc import errors
    if debug and err is not None and not isinstance(err, errors.PyruncError):
        import traceback
        write_stderr("".join(traceback.format_exception(err)))
    report_error(message)
    return 1


def report_error(message: str) -> None:
    """runc's fatal(): the log line, plus the bare message on stderr when the line went
    to a --log file (so a human sees it too)."""
    from pyrunc import log
    if log.error(message):
        write_stderr(message + "\n")


def describe_error(err: BaseException) -> str:
    """The one-line message for an exception escaping an operation."""
    from pyrunc import errors
    if isinstance(err, errors.PyruncError):
        return str(err)
    if isinstance(err, OSError) and err.strerror:
        text = strerror(err)
        return f"{err.filename}: {text}" if err.filename is not None else text
    detail = str(err)
    name = type(err).__name__
    return f"unexpected error: {name}: {detail}" if detail else f"unexpected error: {name}"


def strerror(err: OSError) -> str:
    """Go spells errno texts in lower case ("no such file or directory")."""
    text = err.strerror or os.strerror(err.errno or 0)
    return text[:1].lower() + text[1:]
