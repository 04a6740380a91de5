"""Command line: argv -> pyrunc.operations call -> output and exit code, shaped like runc 1.1.5.

Engines call `pyrunc state|kill|delete|start` many times per second, and importing click
costs ~18 ms, so argv is first read by a small parser (`_fast_parse`) that accepts only
forms whose meaning click would give identically: `--flag value`, `--flag=value`,
`-f value`, `-flag value`, plain positionals and `--`. Anything else (unknown flags, a
missing value, `-b=x`, `--bool=value`, attached short values) goes to click, which either
parses it or produces the usage error. Both parsers fill the same `_Parsed` from the same
flag tables, and everything after parsing is shared, so the two paths cannot drift.

runc's conventions kept here:
- global flags only before the subcommand; command flags may follow positionals;
- exit 1 on every error, usage errors included (click's own code would be 2); the one
  exception is an unknown command, which runc answers with "No help topic for 'X'" and 3;
- an error is one log line (see pyrunc.log): formatted on stderr without --log; with
  --log, formatted in the file and the bare message on stderr;
- usage errors print "Incorrect Usage..." and the command help on stdout, as urfave/cli.
"""
from __future__ import annotations

import os
import sys

PROG = "pyrunc"
DEFAULT_ROOT = "/run/pyrunc"

BOOL, STR, INT, LIST = "bool", "str", "int", "list"  # LIST: repeatable string flag


class Flag:
    """One flag: `names` without dashes, primary first (("bundle", "b")); Go's flag
    package accepts each name with one or two dashes."""
    __slots__ = ("names", "kind", "dest", "default", "usage", "hidden")

    def __init__(self, names: tuple[str, ...], kind: str, dest: str, default: object,
                 usage: str, hidden: bool = False) -> None:
        self.names, self.kind, self.dest = names, kind, dest
        self.default, self.usage, self.hidden = default, usage, hidden


class Command:
    __slots__ = ("name", "usage", "args_usage", "description", "flags", "min_args",
                 "max_args", "index", "defaults", "interspersed")

    def __init__(self, name: str, usage: str, args_usage: str, description: str,
                 flags: list[Flag], min_args: int, max_args: int,
                 interspersed: bool = True) -> None:
        # interspersed=False: flags end at the first argument (runc exec's SkipArgReorder:
        # `exec ID ls -l` passes -l to ls)
        self.interspersed = interspersed
        self.name, self.usage, self.args_usage = name, usage, args_usage
        self.description, self.min_args, self.max_args = description, min_args, max_args
        self.flags = flags + [_HELP_FLAG]
        self.index = _index(self.flags)
        self.defaults = {f.dest: f.default for f in self.flags}


def _index(flags: list[Flag]) -> dict[str, Flag]:
    return {name: flag for flag in flags for name in flag.names}


_HELP_FLAG = Flag(("help", "h"), BOOL, "help", False, "show help", hidden=True)

GLOBAL_FLAGS = [
    Flag(("debug",), BOOL, "debug", False, "enable debug logging"),
    Flag(("log",), STR, "log", "",
         f"set the log file to write {PROG} logs to (default is '/dev/stderr')"),
    Flag(("log-format",), STR, "log_format", "text",
         "set the log format ('text' (default), or 'json')"),
    # None = not given: the default depends on the user (see _state_root).
    Flag(("root",), STR, "root", None,
         "root directory for storage of container state (this should be located in tmpfs)"),
    Flag(("criu",), STR, "criu", "criu", "path to the criu binary used for checkpoint and restore"),
    Flag(("systemd-cgroup",), BOOL, "systemd_cgroup", False,
         'enable systemd cgroup support, expects cgroupsPath to be of form '
         '"slice:prefix:name" for e.g. "system.slice:pyrunc:434234"'),
    Flag(("rootless",), STR, "rootless", "auto",
         "ignore cgroup permission errors ('true', 'false', or 'auto')"),
    Flag(("help", "h"), BOOL, "help", False, "show help"),
    Flag(("version", "v"), BOOL, "version", False, "print the version"),
]
_GLOBAL_INDEX = _index(GLOBAL_FLAGS)
_GLOBAL_DEFAULTS = {f.dest: f.default for f in GLOBAL_FLAGS}

_ID_USAGE_START = """<container-id>

Where "<container-id>" is your name for the instance of the container that you
are starting. The name you provide for the container instance must be unique on
your host."""

_BUNDLE_DESCRIPTION = """The {name} command creates an instance of a container for a bundle. The bundle
is a directory with a specification file named "config.json" and a root
filesystem.

The specification file includes an args parameter. The args parameter is used
to specify command(s) that get run when the container is started. To change the
command(s) that get executed on start, edit the args parameter of the spec. See
"{prog} spec --help" for more explanation."""


def _create_flags(bundle_usage: str) -> list[Flag]:
    return [
        Flag(("bundle", "b"), STR, "bundle", "", bundle_usage),
        Flag(("console-socket",), STR, "console_socket", "",
             "path to an AF_UNIX socket which will receive a file descriptor referencing "
             "the master end of the console's pseudoterminal"),
        Flag(("pid-file",), STR, "pid_file", "", "specify the file to write the process id to"),
        Flag(("no-pivot",), BOOL, "no_pivot", False,
             "do not use pivot root to jail process inside rootfs.  This should be used "
             "whenever the rootfs is on top of a ramdisk"),
        Flag(("no-new-keyring",), BOOL, "no_new_keyring", False,
             "do not create a new session keyring for the container.  This will cause the "
             "container to inherit the calling processes session key"),
        Flag(("preserve-fds",), INT, "preserve_fds", 0,
             "Pass N additional file descriptors to the container (stdio + $LISTEN_FDS + N "
             "in total)"),
    ]


_BUNDLE_USAGE = ("path to the root of the bundle directory, defaults to the current "
                 "directory")


def _checkpoint_commands() -> list[Command]:
    """runc's checkpoint and restore (operations in pyrunc.checkpoint)."""
    def shared(image_usage: str) -> list[Flag]:
        return [Flag(("image-path",), STR, "image_path", "", image_usage),
                Flag(("work-path",), STR, "work_path", "", "path for saving work files and logs")]
    tcp_unix_shell = [
        Flag(("tcp-established",), BOOL, "tcp_established", False, "allow open tcp connections"),
        Flag(("ext-unix-sk",), BOOL, "ext_unix_sk", False, "allow external unix sockets"),
        Flag(("shell-job",), BOOL, "shell_job", False, "allow shell jobs")]
    lazy = Flag(("lazy-pages",), BOOL, "lazy_pages", False, "use userfaultfd to lazily restore memory pages")
    locks = Flag(("file-locks",), BOOL, "file_locks", False, "handle file locks, for safety")
    cg_mode = Flag(("manage-cgroups-mode",), STR, "manage_cgroups_mode", "",
                   "cgroups mode: 'soft' (default), 'full' and 'strict'")
    empty_ns = Flag(("empty-ns",), LIST, "empty_ns", (), "create a namespace, but don't restore its properties")
    dedup = Flag(("auto-dedup",), BOOL, "auto_dedup", False, "enable auto deduplication of memory images")
    checkpoint = Command(
        "checkpoint", "checkpoint a running container", """<container-id>

Where "<container-id>" is the name for the instance of the container to be
checkpointed.""", "The checkpoint command saves the state of the container instance.",
        [*shared("path for saving criu image files"),
         Flag(("parent-path",), STR, "parent_path", "", "path for previous criu image files in pre-dump"),
         Flag(("leave-running",), BOOL, "leave_running", False, "leave the process running after checkpointing"),
         *tcp_unix_shell, lazy,
         Flag(("status-fd",), INT, "status_fd", -1, "criu writes \\0 to this FD once lazy-pages is ready"),
         Flag(("page-server",), STR, "page_server", "", "ADDRESS:PORT of the page server"),
         locks,
         Flag(("pre-dump",), BOOL, "pre_dump", False,
              "dump container's memory information only, leave the container running after this"),
         cg_mode, empty_ns, dedup], 1, 1)
    create_flags = {f.dest: f for f in _run_flags()}
    restore = Command(
        "restore", "restore a container from a previous checkpoint", """<container-id>

Where "<container-id>" is the name for the instance of the container to be
restored.""", """Restores the saved state of the container instance that was previously saved
using the {prog} checkpoint command.""".format(prog=PROG),
        [create_flags["console_socket"], *shared("path to criu image files for restoring"),
         *tcp_unix_shell, locks, cg_mode,
         Flag(("bundle", "b"), STR, "bundle", "", "path to the root of the bundle directory"),
         *(create_flags[name] for name in ("detach", "pid_file", "no_subreaper", "no_pivot")),
         empty_ns, dedup, lazy,
         Flag(("lsm-profile",), STR, "lsm_profile", "",
              "Specify an LSM profile to be used during restore in the form of TYPE:NAME."),
         Flag(("lsm-mount-context",), STR, "lsm_mount_context", "",
              "Specify an LSM mount context to be used during restore.")], 1, 1)
    return [checkpoint, restore]


def _run_flags() -> list[Flag]:
    flags = _create_flags(_BUNDLE_USAGE)
    flags[2:2] = [
        Flag(("detach", "d"), BOOL, "detach", False, "detach from the container's process"),
        Flag(("keep",), BOOL, "keep", False, "do not delete the container after it exits"),
    ]
    flags.insert(5, Flag(("no-subreaper",), BOOL, "no_subreaper", False,
                         "disable the use of the subreaper used to reap reparented processes"))
    return flags


_UPDATE_RESOURCES_USAGE = """path to the file containing the resources to update or '-' to read from the standard input

The accepted format is as follow (unchanged values can be omitted):

{
  "memory": {
    "limit": 0,
    "reservation": 0,
    "swap": 0
  },
  "cpu": {
    "shares": 0,
    "quota": 0,
    "period": 0,
    "realtimeRuntime": 0,
    "realtimePeriod": 0,
    "cpus": "",
    "mems": ""
  },
  "blockIO": {
    "weight": 0
  }
}

Note: if data is to be read from a file or the standard input, all
other options are ignored."""

COMMANDS: dict[str, Command] = {c.name: c for c in [
    Command("create", "create a container", _ID_USAGE_START,
            _BUNDLE_DESCRIPTION.format(name="create", prog=PROG),
            _create_flags(_BUNDLE_USAGE), 1, 1),
    Command("delete", "delete any resources held by the container often used with detached "
            "container", """<container-id>

Where "<container-id>" is the name for the instance of the container.

EXAMPLE:
For example, if the container id is "ubuntu01" and pyrunc list currently shows the
status of "ubuntu01" as "stopped" the following will delete resources held for
"ubuntu01" removing "ubuntu01" from the pyrunc list of containers:

       # pyrunc delete ubuntu01""", "",
            [Flag(("force", "f"), BOOL, "force", False,
                  "Forcibly deletes the container if it is still running (uses SIGKILL)")],
            1, 1),
    Command("kill", "kill sends the specified signal (default: SIGTERM) to the container's "
            "init process", """<container-id> [signal]

Where "<container-id>" is the name for the instance of the container and
"[signal]" is the signal to be sent to the init process.

EXAMPLE:
For example, if the container id is "ubuntu01" the following will send a "KILL"
signal to the init process of the "ubuntu01" container:

       # pyrunc kill ubuntu01 KILL""", "",
            [Flag(("all", "a"), BOOL, "all", False,
                  "send the specified signal to all processes inside the container")],
            1, 2),
    Command("list", f"lists containers started by {PROG} with the given root", f"""

Where the given root is specified via the global option "--root"
(default: "{DEFAULT_ROOT}").

EXAMPLE 1:
To list containers created via the default "--root":
       # pyrunc list

EXAMPLE 2:
To list containers created using a non-default value for "--root":
       # pyrunc --root value list""", "",
            [Flag(("format", "f"), STR, "format", "table", "select one of: table or json"),
             Flag(("quiet", "q"), BOOL, "quiet", False, "display only container IDs")],
            0, 0),
    Command("run", "create and run a container", _ID_USAGE_START,
            _BUNDLE_DESCRIPTION.replace("{name} command creates", "run command creates")
            .format(prog=PROG), _run_flags(), 1, 1),
    Command("spec", "create a new specification file", "", """The spec command creates the new specification file named "config.json" for
the bundle.

The spec generated is just a starter file. Editing of the spec is required to
achieve desired results. For example, the newly generated spec includes an args
parameter that is initially set to call the "sh" command when the container is
started. Calling "sh" may work for an ubuntu container or busybox, but will not
work for containers that do not include the "sh" program.

Pass --rootless to generate a spec for a rootless container (a user namespace
mapping the calling user, no cgroup resources, no network namespace).""",
            [Flag(("bundle", "b"), STR, "bundle", "", "path to the root of the bundle directory"),
             Flag(("rootless",), BOOL, "rootless", False,
                  "generate a configuration for a rootless container")],
            0, 0),
    Command("start", "executes the user defined process in a created container",
            _ID_USAGE_START,
            "The start command executes the user defined process in a created container.",
            [], 1, 1),
    Command("exec", "execute new process inside the container", """<container-id> <command> [command options]  || -p process.json <container-id>

Where "<container-id>" is the name for the instance of the container and
"<command>" is the command to be executed in the container.
"<command>" can't be empty unless a "-p" flag provided.

EXAMPLE:
For example, if the container is configured to run the linux ps command the
following will output a list of processes running in the container:

       # pyrunc exec <container-id> ps""", "",
            [Flag(("console-socket",), STR, "console_socket", "",
                  "path to an AF_UNIX socket which will receive a file descriptor referencing "
                  "the master end of the console's pseudoterminal"),
             Flag(("cwd",), STR, "cwd", "", "current working directory in the container"),
             Flag(("env", "e"), LIST, "env", (), "set environment variables"),
             Flag(("tty", "t"), BOOL, "tty", False, "allocate a pseudo-TTY"),
             Flag(("user", "u"), STR, "user", "", "UID (format: <uid>[:<gid>])"),
             Flag(("additional-gids", "g"), LIST, "additional_gids", (), "additional gids"),
             Flag(("process", "p"), STR, "process", "", "path to the process.json"),
             Flag(("detach", "d"), BOOL, "detach", False, "detach from the container's process"),
             Flag(("pid-file",), STR, "pid_file", "", "specify the file to write the process id to"),
             Flag(("process-label",), STR, "process_label", "",
                  "set the asm process label for the process commonly used with selinux"),
             Flag(("apparmor",), STR, "apparmor", "", "set the apparmor profile for the process"),
             Flag(("no-new-privs",), BOOL, "no_new_privs", False,
                  "set the no new privileges value for the process"),
             Flag(("cap", "c"), LIST, "cap", (), "add a capability to the bounding set for the process"),
             Flag(("preserve-fds",), INT, "preserve_fds", 0,
                  "Pass N additional file descriptors to the container (stdio + $LISTEN_FDS + N "
                  "in total)"),
             Flag(("cgroup",), STR, "cgroup", "",
                  "run the process in an (existing) sub-cgroup(s). Format is [<controller>:]<cgroup>."),
             Flag(("ignore-paused",), BOOL, "ignore_paused", False,
                  "allow exec in a paused container")],
            1, 1 << 30, interspersed=False),
    Command("pause", "pause suspends all processes inside the container", """<container-id>

Where "<container-id>" is the name for the instance of the container to be
paused. """, """The pause command suspends all processes in the instance of the container.

Use pyrunc list to identify instances of containers and their current status.""", [], 1, 1),
    Command("resume", "resumes all processes that have been previously paused", """<container-id>

Where "<container-id>" is the name for the instance of the container to be
resumed.""", """The resume command resumes all processes in the instance of the container.

Use pyrunc list to identify instances of containers and their current status.""", [], 1, 1),
    Command("ps", "ps displays the processes running inside a container",
            "<container-id> [ps options]", "",
            [Flag(("format", "f"), STR, "format", "table", "select one of: table or json")],
            1, 1 << 30, interspersed=False),
    Command("features", "show the enabled features", "",
            "Show the enabled features.\n   The result is parsable as a JSON.\n   See "
            "https://github.com/opencontainers/runtime-spec/blob/main/features.md for the "
            "type definition.", [], 0, 0),
    Command("update", "update container resource constraints", "<container-id>", "",
            [Flag(("resources", "r"), STR, "resources", "", _UPDATE_RESOURCES_USAGE),
             Flag(("blkio-weight",), INT, "blkio_weight", 0,
                  "Specifies per cgroup weight, range is from 10 to 1000"),
             Flag(("cpu-period",), STR, "cpu_period", "",
                  "CPU CFS period to be used for hardcapping (in usecs). 0 to use system default"),
             Flag(("cpu-quota",), STR, "cpu_quota", "",
                  "CPU CFS hardcap limit (in usecs). Allowed cpu time in a given period"),
             Flag(("cpu-share",), STR, "cpu_share", "",
                  "CPU shares (relative weight vs. other containers)"),
             Flag(("cpu-rt-period",), STR, "cpu_rt_period", "",
                  "CPU realtime period to be used for hardcapping (in usecs). 0 to use system default"),
             Flag(("cpu-rt-runtime",), STR, "cpu_rt_runtime", "",
                  "CPU realtime hardcap limit (in usecs). Allowed cpu time in a given period"),
             Flag(("cpuset-cpus",), STR, "cpuset_cpus", "", "CPU(s) to use"),
             Flag(("cpuset-mems",), STR, "cpuset_mems", "", "Memory node(s) to use"),
             Flag(("kernel-memory",), STR, "kernel_memory", "", "Kernel memory limit (in bytes)",
                  hidden=True),
             Flag(("kernel-memory-tcp",), STR, "kernel_memory_tcp", "",
                  "Kernel memory limit (in bytes) for tcp buffer", hidden=True),
             Flag(("memory",), STR, "memory", "", "Memory limit (in bytes)"),
             Flag(("memory-reservation",), STR, "memory_reservation", "",
                  "Memory reservation or soft_limit (in bytes)"),
             Flag(("memory-swap",), STR, "memory_swap", "",
                  "Total memory usage (memory + swap); set '-1' to enable unlimited swap"),
             Flag(("pids-limit",), INT, "pids_limit", 0,
                  "Maximum number of pids allowed in the container"),
             Flag(("l3-cache-schema",), STR, "l3_cache_schema", "",
                  "The string of Intel RDT/CAT L3 cache schema"),
             Flag(("mem-bw-schema",), STR, "mem_bw_schema", "",
                  "The string of Intel RDT/MBA memory bandwidth schema")],
            1, 1),
    Command("events", "display container events such as OOM notifications, cpu, memory, "
            "and IO usage statistics", """<container-id>

Where "<container-id>" is the name for the instance of the container.""",
            """The events command displays information about the container. By default the
information is displayed once every 5 seconds.""",
            # default "" shown by hand: runc's DurationFlag prints it unquoted
            [Flag(("interval",), STR, "interval", "", "set the stats collection interval (default: 5s)"),
             Flag(("stats",), BOOL, "stats", False, "display the container's stats then exit")],
            1, 1),
    Command("state", "output the state of a container", """<container-id>

Where "<container-id>" is your name for the instance of the container.""",
            """The state command outputs current state information for the
instance of a container.""", [], 1, 1),
    # pyrunc's own: the seccomp profile tools; every argument goes to pyrunc.harness.cli
    Command("profile", "record, check and compare seccomp profiles of a workload",
            "record|check|diff [options]",
            "record: run the workload under a recording filter, write a minimal profile and a report\n"
            "   check: run it under a profile, report every syscall the profile denied\n"
            "   diff: what one profile allows that the other does not\n\n"
            "   `pyrunc profile help` lists the options; see also docs/harness.md.",
            [], 1, 1 << 30, interspersed=False),
    # pyrunc's own: what would stop a bundle from running on this host (pyrunc.check)
    Command("check", "check a bundle against the spec and this host before running it", "",
            "Prints one line per problem (invalid config, missing namespace, cgroup controller,\n"
            "   seccomp/LSM support, rlimit above the hard limit, missing path); exit 1 if any.",
            [Flag(("bundle", "b"), STR, "bundle", "", _BUNDLE_USAGE)], 0, 0),
    *_checkpoint_commands(),
]}

# urfave/cli's built-in help command; it has no flags and any number of arguments.
HELP_COMMAND = Command("help", "Shows a list of commands or help for one command",
                       "[command]", "", [], 0, 1 << 30)
_HELP_NAMES = ("help", "h")


class _Parsed:
    __slots__ = ("globals", "command", "opts", "args")

    def __init__(self, globals_: dict, command: Command | None, opts: dict,
                 args: list[str]) -> None:
        self.globals, self.command, self.opts, self.args = globals_, command, opts, args

    def as_tuple(self) -> tuple:
        """For tests comparing the two parsers."""
        return (self.globals, self.command.name if self.command else None, self.opts,
                self.args)


class _UsageError(Exception):
    """A command line error: printed as urfave/cli does, then reported like any error.
    `headline` goes to stdout before the help ("Incorrect Usage." or "Incorrect Usage:
    <msg>"); `command` is None for errors before the subcommand (the app help is shown)."""

    def __init__(self, message: str, headline: str, command: Command | None,
                 globals_: dict | None, exit_code: int = 1, show_help: bool = True) -> None:
        super().__init__(message)
        self.headline, self.command, self.globals = headline, command, globals_
        self.exit_code, self.show_help = exit_code, show_help


# --- entry points ------------------------------------------------------------------

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
    except _UsageError as err:
        return _usage_failure(err)
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # noqa: BLE001 - a bug in parsing still gets one line
        return _fail(describe_error(err), "--debug" in argv, err)


def _execute(parsed: _Parsed) -> int:
    gopts = parsed.globals
    # Help and version win over everything, as urfave/cli handles them before Before.
    if gopts["help"]:
        _write_stdout(app_help())
        return 0
    if gopts["version"]:
        _write_stdout(version_text())
        return 0
    failure = _configure_logging(gopts)
    if failure:
        return _fail(failure, gopts["debug"])
    command = parsed.command
    if command is None:
        _write_stdout(app_help())
        return 0
    if command is HELP_COMMAND:
        return _help_command(parsed.args, gopts)
    if parsed.opts["help"]:
        _write_stdout(command_help(command))
        return 0
    _check_args(command, parsed.args, gopts)
    try:
        return _HANDLERS[command.name](_globals(gopts), parsed.opts, parsed.args)
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # noqa: BLE001 - every failure must become one log line
        return _fail(describe_error(err), gopts["debug"], err)


def _fail(message: str, debug: bool, err: BaseException | None = None) -> int:
    from pyrunc import errors
    if debug and err is not None and not isinstance(err, errors.PyruncError):
        import traceback
        _write_stderr("".join(traceback.format_exception(err)))
    report_error(message)
    return 1


def report_error(message: str) -> None:
    """runc's fatal(): the log line, plus the bare message on stderr when the line went
    to a --log file (so a human sees it too)."""
    from pyrunc import log
    if log.error(message):
        _write_stderr(message + "\n")


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
            log.setup("", fmt, debug)
            return f"open {path}: {strerror(err)}"
    return ""


def _usage_failure(err: _UsageError) -> int:
    gopts = err.globals
    if gopts is None or _configure_logging(gopts):
        # Like runc when flags fail before its Before hook: the log is not set up yet.
        from pyrunc import log
        log.setup("", "text", False)
    if err.show_help:
        help_text = command_help(err.command) if err.command else app_help()
        _write_stdout(f"{err.headline}\n\n{help_text}")
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
    raise _UsageError(message, "Incorrect Usage.", command, gopts)


def _help_command(args: list[str], gopts: dict) -> int:
    if not args:
        _write_stdout(app_help())
        return 0
    topic = args[0]
    if topic in _HELP_NAMES:
        _write_stdout(command_help(HELP_COMMAND))
        return 0
    command = COMMANDS.get(topic)
    if command is None:
        raise _UsageError(f"No help topic for '{topic}'", "", None, gopts, exit_code=3,
                          show_help=False)
    _write_stdout(command_help(command))
    return 0


def _globals(gopts: dict):
    from pyrunc.operations import Globals
    log_path = gopts["log"]
    return Globals(root=_state_root(gopts["root"]),
                   log_path=os.path.abspath(log_path) if log_path else "",
                   log_format=gopts["log_format"] or "text",
                   debug=gopts["debug"],
                   systemd_cgroup=gopts["systemd_cgroup"], criu=gopts["criu"])


def _state_root(given: str | None) -> str:
    if given is not None:
        # runc makes --root absolute before it chdirs into a bundle.
        return os.path.abspath(given)
    if os.geteuid() != 0:
        # As runc: an unprivileged user keeps state in XDG_RUNTIME_DIR; podman passes it
        # EMPTY, which counts as unset.
        runtime_dir = os.environ.get("XDG_RUNTIME_DIR", "")
        if runtime_dir:
            return os.path.join(runtime_dir, PROG)
    return DEFAULT_ROOT


# --- command handlers --------------------------------------------------------------

def _do_create(g, opts: dict, args: list[str]) -> int:
    from pyrunc import operations
    operations.create(g, args[0], _bundle_dir(opts["bundle"]),
                      pid_file=_abs_or_empty(opts["pid_file"]),
                      console_socket=opts["console_socket"],
                      no_pivot=opts["no_pivot"], no_new_keyring=opts["no_new_keyring"],
                      preserve_fds=opts["preserve_fds"])
    return 0


def _do_run(g, opts: dict, args: list[str]) -> int:
    from pyrunc import operations
    # --no-subreaper is accepted and ignored: the foreground pyrunc reaps its own init.
    return operations.run(g, args[0], _bundle_dir(opts["bundle"]),
                          pid_file=_abs_or_empty(opts["pid_file"]),
                          console_socket=opts["console_socket"],
                          no_pivot=opts["no_pivot"], no_new_keyring=opts["no_new_keyring"],
                          preserve_fds=opts["preserve_fds"], detach=opts["detach"],
                          keep=opts["keep"])


def _do_exec(g, opts: dict, args: list[str]) -> int:
    from pyrunc import operations
    from pyrunc.errors import PyruncError
    if not opts["process"] and len(args) < 2:
        raise PyruncError("exec: no command given (args must not be empty)")
    try:
        gids = tuple(int(x) for x in opts["additional_gids"])
    except ValueError:
        raise PyruncError("invalid additional-gids: must be numbers") from None
    return operations.exec_process(
        g, args[0], process_file=_abs_or_empty(opts["process"]), args=tuple(args[1:]),
        cwd=opts["cwd"], env=opts["env"], user=opts["user"], additional_gids=gids,
        caps=opts["cap"], no_new_privs=opts["no_new_privs"], tty=opts["tty"],
        detach=opts["detach"], pid_file=_abs_or_empty(opts["pid_file"]),
        console_socket=opts["console_socket"], preserve_fds=opts["preserve_fds"],
        ignore_paused=opts["ignore_paused"], cgroup=opts["cgroup"], apparmor=opts["apparmor"],
        process_label=opts["process_label"])


def _do_pause(g, opts: dict, args: list[str]) -> int:
    from pyrunc import operations
    operations.pause(g, args[0])
    return 0


def _do_resume(g, opts: dict, args: list[str]) -> int:
    from pyrunc import operations
    operations.resume(g, args[0])
    return 0


def _do_ps(g, opts: dict, args: list[str]) -> int:
    """runc ps: JSON is the pid list; the table is ps(1) output (default `-ef`, or the
    given ps options) limited to the container's processes."""
    from pyrunc import operations
    from pyrunc.errors import PyruncError
    pids = operations.ps_pids(g, args[0])
    fmt = opts["format"]
    if fmt == "json":
        _write_stdout(go_json(pids) + "\n")
        return 0
    if fmt != "table":
        raise PyruncError("invalid format option")
    import subprocess
    ps_args = args[1:] or ["-ef"]
    try:
        out = subprocess.run(["ps", *ps_args], capture_output=True, text=True, check=True,
                             env={"PATH": os.environ.get("PATH") or "/usr/bin:/bin"}).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        raise PyruncError(f"ps: {err}") from None
    lines = out.splitlines()
    if not lines:
        return 0
    header = lines[0].split()
    if "PID" not in header:
        raise PyruncError("couldn't find PID field in ps output")
    column = header.index("PID")
    wanted = set(pids)
    rows = [lines[0]] + [line for line in lines[1:]
                         if len(line.split()) > column and line.split()[column].isdigit()
                         and int(line.split()[column]) in wanted]
    _write_stdout("\n".join(rows) + "\n")
    return 0


def _do_features(g, opts: dict, args: list[str]) -> int:
    from pyrunc.features import features
    _write_stdout(go_json(features(), "    ") + "\n")
    return 0


def _do_start(g, opts: dict, args: list[str]) -> int:
    from pyrunc import operations
    operations.start(g, args[0])
    return 0


def _do_state(g, opts: dict, args: list[str]) -> int:
    from pyrunc import operations
    state = operations.state(g, args[0])
    # json.MarshalIndent output, no trailing newline (runc writes the bytes as they are).
    _write_stdout(go_json(_runc_state_order(state), "  "))
    return 0


def _do_kill(g, opts: dict, args: list[str]) -> int:
    from pyrunc import operations
    from pyrunc.signals import SignalError, parse_signal
    container_id = args[0]
    raw = args[1] if len(args) > 1 else ""
    try:
        sig = parse_signal(raw or "SIGTERM")
    except SignalError:
        # runc looks the container up before parsing the signal: a missing container
        # reports "container does not exist" whatever the signal says.
        operations.state(g, container_id)
        raise
    operations.kill(g, container_id, sig, all_processes=opts["all"])
    return 0


def _do_delete(g, opts: dict, args: list[str]) -> int:
    from pyrunc import operations
    operations.delete(g, args[0], force=opts["force"])
    return 0


def _do_list(g, opts: dict, args: list[str]) -> int:
    from pyrunc import operations
    containers = operations.list_containers(g)
    if opts["quiet"]:
        _write_stdout("".join(f"{c['id']}\n" for c in containers))
        return 0
    fmt = opts["format"]
    if fmt == "table":
        rows = [["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]]
        rows += [[str(c.get("id", "")), str(c.get("pid", 0)), str(c.get("status", "")),
                  str(c.get("bundle", "")), str(c.get("created", "")),
                  str(c.get("owner", ""))] for c in containers]
        _write_stdout(tabwriter(rows, minwidth=12, padding=3))
    elif fmt == "json":
        # json.Encoder.Encode of a nil slice: "null"; always one trailing newline.
        items = [_runc_state_order(c) for c in containers]
        _write_stdout((go_json(items) if items else "null") + "\n")
    else:
        from pyrunc.errors import PyruncError
        raise PyruncError("invalid format option")
    return 0


def _do_spec(g, opts: dict, args: list[str]) -> int:
    from pyrunc.errors import PyruncError
    from pyrunc.spec import default_spec
    bundle = opts["bundle"]
    if bundle:
        try:
            os.chdir(bundle)
        except OSError as err:
            raise PyruncError(f"chdir {bundle}: {strerror(err)}") from None
    data = go_json(default_spec(opts["rootless"]), "\t").encode("utf-8", "replace")
    try:
        fd = os.open("config.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    except FileExistsError:
        raise PyruncError("File config.json exists. Remove it first") from None
    except OSError as err:
        raise PyruncError(f"open config.json: {strerror(err)}") from None
    try:
        _write_all(fd, data)
    finally:
        os.close(fd)
    return 0


def _do_update(g, opts: dict, args: list[str]) -> int:
    """runc update: -r FILE|- (JSON LinuxResources, other flags ignored) or the flags."""
    from pyrunc import operations
    from pyrunc.errors import PyruncError
    if opts["resources"]:
        import json
        source = opts["resources"]
        try:
            if source == "-":
                text = sys.stdin.read()
            else:
                with open(source) as f:
                    text = f.read()
            resources = json.loads(text)
        except OSError as err:
            raise PyruncError(f"open {source}: {strerror(err)}") from None
        except ValueError as err:
            raise PyruncError(f"--resources: invalid JSON: {err}") from None
        if not isinstance(resources, dict):
            raise PyruncError("--resources: must be a JSON object")
    else:
        resources = update_flags_to_resources(opts)
    operations.update(g, args[0], resources)
    return 0


def update_flags_to_resources(opts: dict) -> dict:
    """runc update's flags as a LinuxResources object (unset flags stay zero)."""
    from pyrunc.errors import PyruncError
    if opts.get("l3_cache_schema") or opts.get("mem_bw_schema"):
        raise PyruncError("intel rdt is not supported on this host")
    memory: dict = {}
    for flag, key in (("memory", "limit"), ("memory_reservation", "reservation"),
                      ("memory_swap", "swap"), ("kernel_memory", "kernel"),
                      ("kernel_memory_tcp", "kernelTCP")):
        text = opts.get(flag) or ""
        if text:
            value = -1 if text == "-1" else ram_in_bytes(text)
            if value is None:
                raise PyruncError(f"invalid value for {flag.replace('_', '-')}: {text}")
            memory[key] = value
    cpu: dict = {}
    for flag, key, signed in (("cpu_period", "period", False), ("cpu_quota", "quota", True),
                              ("cpu_share", "shares", False), ("cpu_rt_period", "realtimePeriod", False),
                              ("cpu_rt_runtime", "realtimeRuntime", True)):
        text = opts.get(flag) or ""
        if text:
            value = int(text) if _is_decimal(text, signed) else None
            if value is None:
                raise PyruncError(f"invalid value for {flag.replace('_', '-')}: {text}")
            cpu[key] = value
    if opts.get("cpuset_cpus"):
        cpu["cpus"] = opts["cpuset_cpus"]
    if opts.get("cpuset_mems"):
        cpu["mems"] = opts["cpuset_mems"]
    if opts.get("blkio_weight", 0) < 0:
        raise PyruncError(f"invalid value for blkio-weight: {opts['blkio_weight']}")
    return {"memory": memory, "cpu": cpu, "pids": {"limit": opts.get("pids_limit", 0)},
            "blockIO": {"weight": opts.get("blkio_weight", 0)}}


def _is_decimal(text: str, signed: bool) -> bool:
    body = text[1:] if signed and text[:1] == "-" else text
    return body.isascii() and body.isdigit()


def ram_in_bytes(text: str) -> int | None:
    """docker/go-units RAMInBytes: a number with an optional binary unit (k, m, g, t, p,
    optionally followed by b or ib), case-insensitive: "64m" = 64 MiB."""
    import re
    match = re.fullmatch(r"(\d+(?:\.\d+)?) ?([kKmMgGtTpP])?(?:[iI]?[bB])?", text)
    if not match:
        return None
    number = float(match.group(1))
    unit = (match.group(2) or "").lower()
    return int(number * (1024 ** " kmgtp".index(unit or " ")))


def go_duration(text: str) -> float | None:
    """time.ParseDuration: "5s", "100ms", "1m30s", "1.5h" → seconds (None if invalid)."""
    import re
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    if text in ("0", "+0", "-0"):
        return 0.0
    body = text.lstrip("+-")
    parts = re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)", body)
    if not body or "".join(n + u for n, u in parts) != body:
        return None
    total = sum(float(n) * units[u] for n, u in parts)
    return -total if text.startswith("-") else total


def _do_events(g, opts: dict, args: list[str]) -> int:
    from pyrunc import operations
    interval = go_duration(opts["interval"] or "5s")
    if interval is None:
        from pyrunc.errors import PyruncError
        raise PyruncError(f'invalid value "{opts["interval"]}" for flag -interval: parse error')
    try:
        for event in operations.events(g, args[0], stats=opts["stats"], interval=interval):
            _write_stdout(go_json(event) + "\n")
    except BrokenPipeError:
        return 0
    return 0


def _do_checkpoint(g, opts: dict, args: list[str]) -> int:
    from pyrunc import checkpoint
    checkpoint.checkpoint(g, args[0], opts)
    return 0


def _do_restore(g, opts: dict, args: list[str]) -> int:
    from pyrunc import checkpoint
    # --no-subreaper is accepted and ignored, as for run
    return checkpoint.restore(g, args[0], _bundle_dir(opts["bundle"]), opts,
                              detach=opts["detach"], pid_file=_abs_or_empty(opts["pid_file"]),
                              console_socket=opts["console_socket"], no_pivot=opts["no_pivot"])


def _do_check(g, opts: dict, args: list[str]) -> int:
    from pyrunc.check import check_bundle
    problems = check_bundle(_bundle_dir(opts["bundle"]))
    _write_stdout("".join(p + "\n" for p in problems))
    return 1 if problems else 0


def _do_profile(g, opts: dict, args: list[str]) -> int:
    from pyrunc.harness.cli import main
    return main(g, args)


_HANDLERS = {"create": _do_create, "run": _do_run, "start": _do_start, "state": _do_state,
             "exec": _do_exec, "pause": _do_pause, "resume": _do_resume, "ps": _do_ps,
             "features": _do_features, "update": _do_update, "events": _do_events,
             "kill": _do_kill, "delete": _do_delete, "list": _do_list, "spec": _do_spec,
             "profile": _do_profile, "check": _do_check, "checkpoint": _do_checkpoint,
             "restore": _do_restore}


def _bundle_dir(bundle: str) -> str:
    # runc chdirs into the bundle and records the working directory: always absolute.
    return os.path.abspath(bundle) if bundle else os.getcwd()


def _abs_or_empty(path: str) -> str:
    # runc resolves --pid-file against the caller's cwd before it chdirs to the bundle.
    return os.path.abspath(path) if path else ""


_STATE_FIELDS = ("ociVersion", "id", "pid", "status", "bundle", "rootfs", "created",
                 "annotations", "owner")


def _runc_state_order(state: dict) -> dict:
    """A state object laid out as runc's Go struct marshals it: its field order
    (annotations before owner), annotations omitted when empty (omitempty) and sorted
    (Go sorts map keys); unknown keys follow."""
    ordered = {key: state[key] for key in _STATE_FIELDS if key in state}
    ordered.update((key, value) for key, value in state.items() if key not in ordered)
    annotations = ordered.get("annotations")
    if not annotations:
        ordered.pop("annotations", None)
    elif isinstance(annotations, dict):
        ordered["annotations"] = dict(sorted(annotations.items()))
    return ordered


# --- output ------------------------------------------------------------------------

def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _write_stdout(text: str) -> None:
    # os.write, not sys.stdout: nothing may stay in a Python buffer if the process is
    # replaced or killed, and the output must be exactly these bytes.
    _write_all(1, text.encode("utf-8", "surrogateescape"))


def _write_stderr(text: str) -> None:
    try:
        _write_all(2, text.encode("utf-8", "replace"))
    except OSError:
        pass


def go_json(value: object, indent: str | None = None) -> str:
    from pyrunc.log import go_json as _go_json
    return _go_json(value, indent)


def tabwriter(rows: list[list[str]], minwidth: int, padding: int) -> str:
    """Go's text/tabwriter with padchar ' ': every cell but a line's last is padded to
    its column's width, max(minwidth, widest cell + padding)."""
    widths: list[int] = []
    for row in rows:
        for column, cell in enumerate(row[:-1]):
            width = max(minwidth, len(cell) + padding)
            if column == len(widths):
                widths.append(width)
            elif width > widths[column]:
                widths[column] = width
    lines = []
    for row in rows:
        cells = [cell.ljust(widths[column]) for column, cell in enumerate(row[:-1])]
        lines.append("".join(cells) + (row[-1] if row else "") + "\n")
    return "".join(lines)


def version_text() -> str:
    import pyrunc
    return (f"{PROG} version {pyrunc.__version__}\ncommit: {_commit()}\n"
            f"spec: {pyrunc.OCI_VERSION}\n")


def _commit() -> str:
    """`git describe` of the checkout pyrunc runs from; "unknown" when installed
    elsewhere or git is missing. Only --version pays for the subprocess."""
    checkout = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not os.path.exists(os.path.join(checkout, ".git")):
        return "unknown"
    import subprocess
    try:
        result = subprocess.run(["git", "-C", checkout, "describe", "--always", "--dirty",
                                 "--tags"], capture_output=True, text=True, timeout=5,
                                env={**os.environ, "PATH": os.environ.get("PATH") or
                                     "/usr/local/bin:/usr/bin:/bin"})
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    described = result.stdout.strip()
    return described if result.returncode == 0 and described else "unknown"


def _flag_text(flag: Flag) -> str:
    value = "" if flag.kind == BOOL else " value"
    names = ", ".join(("-" if len(n) == 1 else "--") + n + value for n in flag.names)
    if flag.kind == INT:
        return f"{names}\t{flag.usage} (default: {flag.default})"
    if flag.kind == LIST:
        return f"{names}\t{flag.usage}"
    if flag.kind == STR and flag.default:
        return f'{names}\t{flag.usage} (default: "{flag.default}")'
    return f"{names}\t{flag.usage}"


def _columns(lines: list[str], indent: str = "   ") -> str:
    # urfave/cli aligns "name\tusage" with a tabwriter of padding 2.
    split = [line.split("\t", 1) for line in lines]
    width = max(len(left) for left, _ in split) + 2
    return "".join(f"{indent}{left.ljust(width)}{right}\n" for left, right in split)


def command_help(command: Command) -> str:
    """Help of one command in urfave/cli v1's layout."""
    flags = [f for f in command.flags if not f.hidden]
    usage = f"{PROG} {command.name}"
    if flags:
        usage += " [command options]"
    usage += " " + (command.args_usage or "[arguments...]")
    text = f"NAME:\n   {PROG} {command.name} - {command.usage}\n\nUSAGE:\n   {usage}"
    if command.description:
        text += f"\n\nDESCRIPTION:\n   {command.description}"
    if flags:
        text += "\n\nOPTIONS:\n" + _columns([_flag_text(f) for f in flags]) + "   "
    return text + "\n"


_APP_DESCRIPTION = f"""{PROG} is a command line client for running applications packaged according to
the Open Container Initiative (OCI) format and is a compliant implementation of the
Open Container Initiative specification, command line compatible with runc.

Containers are configured using bundles. A bundle for a container is a directory
that includes a specification file named "config.json" and a root filesystem.
The root filesystem contains the contents of the container.

To start a new instance of a container:

    # {PROG} run [ -b bundle ] <container-id>

Where "<container-id>" is your name for the instance of the container that you
are starting. The name you provide for the container instance must be unique on
your host. Providing the bundle directory using "-b" is optional. The default
value for "bundle" is the current directory."""


def app_help() -> str:
    import pyrunc
    version = version_text().split("\n", 1)[1]
    commands = [f"{c.name}\t{c.usage}" for c in COMMANDS.values()]
    commands.append(f"help, h\t{HELP_COMMAND.usage}")
    global_flags = [_flag_text(f) for f in GLOBAL_FLAGS]
    root_index = next(i for i, f in enumerate(GLOBAL_FLAGS) if f.dest == "root")
    global_flags[root_index] += f' (default: "{DEFAULT_ROOT}")'
    return (f"NAME:\n   {PROG} - Open Container Initiative runtime\n\n{_APP_DESCRIPTION}\n\n"
            f"USAGE:\n   {PROG} [global options] command [command options] [arguments...]\n\n"
            f"VERSION:\n   {pyrunc.__version__}\n{version}\n"
            f"COMMANDS:\n{_columns(commands)}\n"
            f"GLOBAL OPTIONS:\n{_columns(global_flags)}")


# --- parsing -----------------------------------------------------------------------

def go_parse_bool(text: str) -> bool | None:
    """strconv.ParseBool."""
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    return None


def go_parse_int(text: str) -> int | None:
    """strconv.ParseInt(text, 0, 64), what Go's flag package uses for int flags: a sign,
    then decimal, 0x/0o/0b or leading-0 octal, "_" only between digits."""
    body = text[1:] if text[:1] in ("+", "-") else text
    if not body:
        return None
    base, digits = 10, body
    if body[0] == "0":
        prefix = body[1:2].lower()
        if len(body) >= 3 and prefix in ("b", "o", "x"):
            base, digits = {"b": 2, "o": 8, "x": 16}[prefix], body[2:]
        else:
            base, digits = 8, body[1:]
    value = 0
    for ch in digits:
        if ch == "_":
            continue
        digit = "0123456789abcdefghijklmnopqrstuvwxyz".find(ch.lower()) if ch.isascii() else -1
        if digit < 0 or digit >= base:
            return None
        value = value * base + digit
    if "_" in body and not _underscores_ok(body):
        return None
    if text[:1] == "-":
        value = -value
    if not -(1 << 63) <= value < (1 << 63):
        return None
    return value


def _underscores_ok(body: str) -> bool:
    # strconv's underscoreOK: each "_" sits between digits (a base prefix counts as one).
    saw = "^"
    i = 0
    hexadecimal = False
    if len(body) >= 2 and body[0] == "0" and body[1].lower() in "box":
        i, saw, hexadecimal = 2, "0", body[1].lower() == "x"
    for ch in body[i:]:
        if ch.isdigit() and ch.isascii() or hexadecimal and ch.lower() in "abcdef":
            saw = "0"
        elif ch == "_":
            if saw != "0":
                return False
            saw = "_"
        else:
            if saw == "_":
                return False
            saw = "!"
    return saw != "_"


def _fast_parse(argv: list[str]) -> _Parsed | None:
    """The common argv shapes, without click; None means "ask click"."""
    gopts = dict(_GLOBAL_DEFAULTS)
    count = len(argv)
    i = 0
    while i < count:
        token = argv[i]
        if token[:1] != "-" or token == "-":
            break
        if token == "--":
            return None
        i = _take_flag(_GLOBAL_INDEX, token, argv, i, gopts)
        if i < 0:
            return None
    if i == count:
        return _Parsed(gopts, None, {}, [])
    command = COMMANDS.get(argv[i])
    if command is None:
        return None
    opts = dict(command.defaults)
    args: list[str] = []
    i += 1
    while i < count:
        token = argv[i]
        if token == "--":
            args.extend(argv[i + 1:])
            break
        if token[:1] == "-" and token != "-" and (command.interspersed or not args):
            i = _take_flag(command.index, token, argv, i, opts)
            if i < 0:
                return None
            continue
        args.append(token)
        i += 1
    return _Parsed(gopts, command, opts, args)


def _take_flag(index: dict[str, Flag], token: str, argv: list[str], i: int,
               out: dict) -> int:
    """Store the flag at argv[i]; returns the next index, or -1 for a form left to click."""
    body = token[2:] if token[1:2] == "-" else token[1:]
    name, has_value, value = body.partition("=")
    flag = index.get(name)
    if flag is None or not name or name[0] == "-":
        return -1
    if flag.kind == BOOL:
        if has_value:
            # Go's flag package takes --flag=true/false (strconv.ParseBool)
            parsed = go_parse_bool(value)
            if parsed is None:
                return -1  # click reports the bad value
            out[flag.dest] = parsed
            return i + 1
        out[flag.dest] = True
        return i + 1
    if has_value:
        if len(name) == 1 and token[1:2] != "-":
            return -1  # click reads -b=x as the value "=x"
    else:
        if i + 1 >= len(argv):
            return -1
        i += 1
        value = argv[i]
    if flag.kind == INT:
        number = go_parse_int(value)
        if number is None:
            return -1
        out[flag.dest] = number
    elif flag.kind == LIST:
        out[flag.dest] = (*out[flag.dest], value)
    else:
        out[flag.dest] = value
    return i + 1


class _UnknownCommand(Exception):
    def __init__(self, name: str, globals_: dict) -> None:
        super().__init__(name)
        self.name, self.globals = name, globals_


def _bool_values_as_flags(argv: list[str]) -> list[str]:
    """Go's flag package takes `--flag=true|false` for booleans, click only `--flag`:
    rewrite those tokens (where the flag is a boolean) before click parses."""
    out: list[str] = []
    index, command, positional = _GLOBAL_INDEX, None, False
    for token in argv:
        name, has_value, value = token.lstrip("-").partition("=")
        flag = index.get(name) if token.startswith("-") and has_value and not positional else None
        parsed = go_parse_bool(value) if flag is not None and flag.kind == BOOL else None
        if parsed is True:
            out.append(token.partition("=")[0])
            continue
        if parsed is False:
            continue
        out.append(token)
        if not token.startswith("-") and command is None and token in COMMANDS:
            command = COMMANDS[token]
            index = command.index
        elif not token.startswith("-") and command is not None and not command.interspersed:
            positional = True
    return out


def _click_parse(argv: list[str]) -> _Parsed:
    """Parse with click (imported only here); click's errors become _UsageError."""
    import click

    argv = _bool_values_as_flags(argv)

    class GoInt(click.ParamType):
        name = "integer"

        def convert(self, value, param, ctx):
            if isinstance(value, int):
                return value
            number = go_parse_int(value)
            if number is None:
                self.fail(f"invalid value {_go_quote(value)} for flag -{param.opts[0].lstrip('-')}"
                          f": parse error", param, ctx)
            return number

    go_int = GoInt()

    def option(flag: Flag) -> click.Option:
        decls = [flag.dest]
        for name in flag.names:
            decls += [f"--{name}", f"-{name}"] if len(name) > 1 else [f"-{name}", f"--{name}"]
        if flag.kind == BOOL:
            return click.Option(decls, is_flag=True, default=False)
        if flag.kind == LIST:
            return click.Option(decls, multiple=True, default=())
        return click.Option(decls, type=go_int if flag.kind == INT else click.STRING,
                            default=flag.default)

    settings = {"help_option_names": [], "ignore_unknown_options": False}
    collected: dict = {}

    class Group(click.Group):
        def resolve_command(self, ctx, args):
            name = args[0]
            command = self.get_command(ctx, name)
            if command is None:
                raise _UnknownCommand(name, dict(ctx.params))
            # Errors raised from here on concern this command (click's parser errors
            # do not always carry a context saying so).
            collected["command_name"] = name
            return name, command, args[1:]

    def group_callback(**params):
        collected["globals"] = params

    group = Group(name=PROG, params=[option(f) for f in GLOBAL_FLAGS], callback=group_callback,
                  invoke_without_command=True, context_settings=settings)
    for spec in list(COMMANDS.values()) + [HELP_COMMAND]:
        def command_callback(_spec=spec, **params):
            collected["command"] = _spec
            collected["args"] = list(params.pop("args"))
            collected["opts"] = params

        params = [option(f) for f in spec.flags] + [click.Argument(["args"], nargs=-1)]
        names = _HELP_NAMES if spec is HELP_COMMAND else (spec.name,)
        command_settings = dict(settings, allow_interspersed_args=spec.interspersed)
        for name in names:
            group.add_command(click.Command(name, params=params, callback=command_callback,
                                            context_settings=command_settings))
    try:
        group.main(args=list(argv), prog_name=PROG, standalone_mode=False)
    except _UnknownCommand as err:
        raise _UsageError(f"No help topic for '{err.name}'", "", None, err.globals,
                          exit_code=3, show_help=False) from None
    except click.ClickException as err:
        raise _translate_click_error(err, argv, collected) from None
    if "command" not in collected:
        return _Parsed(collected["globals"], None, {}, [])
    return _Parsed(collected["globals"], collected["command"], collected["opts"],
                   collected["args"])


def _go_quote(text: str) -> str:
    from pyrunc.log import go_quote
    return go_quote(text)


def _translate_click_error(err, argv: list[str], collected: dict) -> _UsageError:
    """click's messages -> Go flag package's, which runc prints."""
    import click
    name = collected.get("command_name")
    command = None if name is None else HELP_COMMAND if name in _HELP_NAMES else COMMANDS[name]
    globals_ = collected.get("globals")
    if isinstance(err, click.NoSuchOption):
        message = f"flag provided but not defined: -{_offending_name(err.option_name, argv)}"
    elif isinstance(err, click.BadOptionUsage) and "requires an argument" in err.message:
        message = f"flag needs an argument: -{err.option_name.lstrip('-')}"
    elif isinstance(err, click.BadOptionUsage) and "does not take a value" in err.message:
        token = next((t for t in argv if t.startswith(err.option_name + "=")), "")
        value = token.partition("=")[2]
        message = (f"invalid boolean value {_go_quote(value)} for -"
                   f"{err.option_name.lstrip('-')}: parse error")
        if go_parse_bool(value) is not None:
            # Go's flag package would accept this; click cannot express it.
            message = (f"boolean flag -{err.option_name.lstrip('-')} takes no value: "
                       f"{_go_quote(token)}")
    elif isinstance(err, click.BadParameter):
        message = err.message
    else:
        message = err.format_message()
    # urfave/cli: "Incorrect Usage: <err>" under a command, "Incorrect Usage. <err>" at
    # the top level.
    headline = f"Incorrect Usage: {message}" if command else f"Incorrect Usage. {message}"
    return _UsageError(message, headline, command, globals_)


def _offending_name(option_name: str, argv: list[str]) -> str:
    # click reports "-f" for an unknown "-foo" (it tries short-flag clustering); Go names
    # the whole token. Find the token click choked on.
    for token in argv:
        if token.startswith(option_name):
            body = token[2:] if token[1:2] == "-" else token[1:]
            name = body.partition("=")[0]
            if name not in _GLOBAL_INDEX and not any(name in c.index for c in COMMANDS.values()):
                return name
    return option_name.lstrip("-")
