"""The flags table: runc 1.1.5's global flags and commands (names, kinds, defaults,
argument counts, usage texts), as urfave/cli declares them. The parser, the help and the
command handlers all read this one table."""
from __future__ import annotations

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
GLOBAL_INDEX = _index(GLOBAL_FLAGS)
GLOBAL_DEFAULTS = {f.dest: f.default for f in GLOBAL_FLAGS}

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
        Flag(("pidfd-socket",), STR, "pidfd_socket", "",
             "path to an AF_UNIX socket which will receive a file descriptor referencing "
             "the init process"),
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


def _run_flags() -> list[Flag]:
    flags = _create_flags(_BUNDLE_USAGE)
    flags[2:2] = [
        Flag(("detach", "d"), BOOL, "detach", False, "detach from the container's process"),
        Flag(("keep",), BOOL, "keep", False, "do not delete the container after it exits"),
    ]
    after_pid_file = 1 + next(i for i, f in enumerate(flags) if f.dest == "pid_file")
    flags.insert(after_pid_file, Flag(("no-subreaper",), BOOL, "no_subreaper", False,
                                      "disable the use of the subreaper used to reap reparented processes"))
    return flags


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
             Flag(("pidfd-socket",), STR, "pidfd_socket", "",
                  "path to an AF_UNIX socket which will receive a file descriptor referencing "
                  "the exec process"),
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
             Flag(("cgroup",), LIST, "cgroup", (),
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
HELP_NAMES = ("help", "h")
