"""Help and version texts in urfave/cli v1's layout, from the flags table (only help,
usage errors and --version need them)."""
from __future__ import annotations

import os

from pyrunc.cli.table import (BOOL, COMMANDS, DEFAULT_ROOT, GLOBAL_FLAGS, HELP_COMMAND, INT, LIST,
                              PROG, STR, Command, Flag)


def version_text() -> str:
    import pyrunc
    return (f"{PROG} version {pyrunc.__version__}\ncommit: {_commit()}\n"
            f"spec: {pyrunc.OCI_VERSION}\n")


def _commit() -> str:
    """`git describe` of the checkout pyrunc runs from; "unknown" when installed
    elsewhere or git is missing. Only --version pays for the subprocess."""
    checkout = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
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
