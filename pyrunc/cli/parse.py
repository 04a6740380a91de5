"""argv -> `Parsed` (global flags, command, its flag values, its arguments), or a
`UsageError` that already says what runc would: one parser over the flags table, in two
gears.

Engines call `pyrunc state|kill|delete|start` many times per second, and importing click
costs ~18 ms, so `fast_parse` reads first, accepting only forms whose meaning click would
give identically: `--flag value`, `--flag=value`, `-f value`, `-flag value`, plain
positionals and `--`. Anything else (unknown flags, a missing value, `-b=x`,
`--bool=value`, attached short values) goes to `click_parse`, which either parses it or
produces the usage error, translated to the Go flag package's words (click's own messages
are never shown). Both fill the same `Parsed` from the same table, and everything after
parsing is shared, so the two gears cannot drift; the Go-flag emulation by hand is only
what click cannot express (Go's integer syntax, `--bool=value`, whole-token names in
"flag provided but not defined")."""
from __future__ import annotations

from pyrunc.cli.table import (BOOL, COMMANDS, GLOBAL_DEFAULTS, GLOBAL_FLAGS, GLOBAL_INDEX,
                              HELP_COMMAND, HELP_NAMES, INT, LIST, PROG, Command, Flag)


class Parsed:
    __slots__ = ("globals", "command", "opts", "args")

    def __init__(self, globals_: dict, command: Command | None, opts: dict,
                 args: list[str]) -> None:
        self.globals, self.command, self.opts, self.args = globals_, command, opts, args

    def as_tuple(self) -> tuple:
        """For tests comparing the two parsers."""
        return (self.globals, self.command.name if self.command else None, self.opts,
                self.args)


class UsageError(Exception):
    """A command line error: printed as urfave/cli does, then reported like any error.
    `headline` goes to stdout before the help ("Incorrect Usage." or "Incorrect Usage:
    <msg>"); `command` is None for errors before the subcommand (the app help is shown)."""

    def __init__(self, message: str, headline: str, command: Command | None,
                 globals_: dict | None, exit_code: int = 1, show_help: bool = True) -> None:
        super().__init__(message)
        self.headline, self.command, self.globals = headline, command, globals_
        self.exit_code, self.show_help = exit_code, show_help


def fast_parse(argv: list[str]) -> Parsed | None:
    """The common argv shapes, without click; None means "ask click"."""
    gopts = dict(GLOBAL_DEFAULTS)
    count = len(argv)
    i = 0
    while i < count:
        token = argv[i]
        if token[:1] != "-" or token == "-":
            break
        if token == "--":
            return None
        i = _take_flag(GLOBAL_INDEX, token, argv, i, gopts)
        if i < 0:
            return None
    if i == count:
        return Parsed(gopts, None, {}, [])
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
    return Parsed(gopts, command, opts, args)


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
            from pyrunc.gocompat import go_parse_bool
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
        from pyrunc.gocompat import go_parse_int
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
    from pyrunc.gocompat import go_parse_bool
    out: list[str] = []
    index, command, positional = GLOBAL_INDEX, None, False
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


def click_parse(argv: list[str]) -> Parsed:
    """Parse with click (imported only here); click's errors become UsageError."""
    import click

    from pyrunc.gocompat import go_parse_int

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
        names = HELP_NAMES if spec is HELP_COMMAND else (spec.name,)
        command_settings = dict(settings, allow_interspersed_args=spec.interspersed)
        for name in names:
            group.add_command(click.Command(name, params=params, callback=command_callback,
                                            context_settings=command_settings))
    try:
        group.main(args=list(argv), prog_name=PROG, standalone_mode=False)
    except _UnknownCommand as err:
        raise UsageError(f"No help topic for '{err.name}'", "", None, err.globals,
                          exit_code=3, show_help=False) from None
    except click.ClickException as err:
        raise _translate_click_error(err, argv, collected) from None
    if "command" not in collected:
        return Parsed(collected["globals"], None, {}, [])
    return Parsed(collected["globals"], collected["command"], collected["opts"],
                   collected["args"])


def _go_quote(text: str) -> str:
    from pyrunc.log import go_quote
    return go_quote(text)


def _translate_click_error(err, argv: list[str], collected: dict) -> UsageError:
    """click's messages -> Go flag package's, which runc prints."""
    import click
    from pyrunc.gocompat import go_parse_bool
    name = collected.get("command_name")
    command = None if name is None else HELP_COMMAND if name in HELP_NAMES else COMMANDS[name]
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
    return UsageError(message, headline, command, globals_)


def _offending_name(option_name: str, argv: list[str]) -> str:
    # click reports "-f" for an unknown "-foo" (it tries short-flag clustering); Go names
    # the whole token. Find the token click choked on.
    for token in argv:
        if token.startswith(option_name):
            body = token[2:] if token[1:2] == "-" else token[1:]
            name = body.partition("=")[0]
            if name not in GLOBAL_INDEX and not any(name in c.index for c in COMMANDS.values()):
                return name
    return option_name.lstrip("-")

