"""Validate an OCI `linux.seccomp` object into a `Profile`, naming the field on error.

Pure Python, no libseccomp: what is checked here is what the runtime-spec and runc 1.1
accept (action, operator, architecture and flag names, types, ranges).  Whether a syscall
name is known is up to libseccomp and is decided in `pyrunc.seccomp.compiler`.
"""
from __future__ import annotations

from pyrunc.record import Record, field

if False:  # annotations only: importing typing costs ~3 ms on the create path
    from typing import Any, NoReturn

from pyrunc.errors import ConfigError
from pyrunc.spec.jsontype import Reader
from pyrunc import seccomp as _package
from pyrunc.seccomp import FLAG_LOG, FLAG_SPEC_ALLOW, FLAG_TSYNC, FLAG_WAIT_KILLABLE_RECV

WHERE = "config.json: linux.seccomp"

EPERM = 1
ENOSYS = 38

# SCMP_ACT_* / SECCOMP_RET_* action values (the low 16 bits carry the errno for ERRNO/TRACE)
ACT_KILL_THREAD = 0x00000000
ACT_KILL_PROCESS = 0x80000000
ACT_TRAP = 0x00030000
ACT_ERRNO = 0x00050000
ACT_NOTIFY = 0x7FC00000
ACT_TRACE = 0x7FF00000
ACT_LOG = 0x7FFC0000
ACT_ALLOW = 0x7FFF0000

ACTIONS = {
    "SCMP_ACT_KILL": ACT_KILL_THREAD,  # runc: SCMP_ACT_KILL means kill the thread
    "SCMP_ACT_KILL_THREAD": ACT_KILL_THREAD,
    "SCMP_ACT_KILL_PROCESS": ACT_KILL_PROCESS,
    "SCMP_ACT_TRAP": ACT_TRAP,
    "SCMP_ACT_ERRNO": ACT_ERRNO,
    "SCMP_ACT_TRACE": ACT_TRACE,
    "SCMP_ACT_ALLOW": ACT_ALLOW,
    "SCMP_ACT_LOG": ACT_LOG,
    "SCMP_ACT_NOTIFY": ACT_NOTIFY,
}
# actions whose low 16 bits are the errno (errnoRet, EPERM when absent)
_WITH_ERRNO = frozenset((ACT_ERRNO, ACT_TRACE))

# OCI operator name -> enum scmp_compare value (stable libseccomp ABI)
OPERATORS = {
    "SCMP_CMP_NE": 1,
    "SCMP_CMP_LT": 2,
    "SCMP_CMP_LE": 3,
    "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5,
    "SCMP_CMP_GT": 6,
    "SCMP_CMP_MASKED_EQ": 7,
}

# OCI architecture name -> libseccomp's name for seccomp_arch_resolve_name()
ARCHITECTURES = {
    "SCMP_ARCH_X86": "x86",
    "SCMP_ARCH_X86_64": "x86_64",
    "SCMP_ARCH_X32": "x32",
    "SCMP_ARCH_ARM": "arm",
    "SCMP_ARCH_AARCH64": "aarch64",
    "SCMP_ARCH_MIPS": "mips",
    "SCMP_ARCH_MIPS64": "mips64",
    "SCMP_ARCH_MIPS64N32": "mips64n32",
    "SCMP_ARCH_MIPSEL": "mipsel",
    "SCMP_ARCH_MIPSEL64": "mipsel64",
    "SCMP_ARCH_MIPSEL64N32": "mipsel64n32",
    "SCMP_ARCH_PPC": "ppc",
    "SCMP_ARCH_PPC64": "ppc64",
    "SCMP_ARCH_PPC64LE": "ppc64le",
    "SCMP_ARCH_S390": "s390",
    "SCMP_ARCH_S390X": "s390x",
    "SCMP_ARCH_PARISC": "parisc",
    "SCMP_ARCH_PARISC64": "parisc64",
    "SCMP_ARCH_RISCV64": "riscv64",
    "SCMP_ARCH_LOONGARCH64": "loongarch64",
}

# pyrunc.seccomp.compiler takes every FLAG_* from this module
FLAG_NEW_LISTENER = _package.FLAG_NEW_LISTENER
FLAG_TSYNC_ESRCH = _package.FLAG_TSYNC_ESRCH

FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": FLAG_TSYNC,
    "SECCOMP_FILTER_FLAG_LOG": FLAG_LOG,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": FLAG_SPEC_ALLOW,
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": FLAG_WAIT_KILLABLE_RECV,
}

MAX_ARGS = 6  # a syscall has at most six arguments
ERRNO_MAX = 0xFFFF  # SECCOMP_RET_DATA is 16 bits (the kernel caps errno at 4095)
UINT64_MAX = (1 << 64) - 1

# The runtime reports the listener fd with write(2) after loading the filter (runc does
# the same): a write held for an agent that has no fd yet would never return.
NOTIFY_FORBIDDEN = frozenset(("write",))


class Arg(Record, frozen=True):
    index: int
    op: int  # enum scmp_compare
    value: int  # datum_a: for MASKED_EQ the mask
    value_two: int  # datum_b: for MASKED_EQ the value compared with (arg & mask)


class Rule(Record, frozen=True):
    """One `syscalls[]` entry; `path` is its field path for messages."""
    path: str
    names: tuple[str, ...]
    action: int  # full SCMP_ACT_* value, errno included
    action_name: str
    args: tuple[Arg, ...]


class Profile(Record, frozen=True):
    default_action: int
    default_action_name: str
    architectures: tuple[str, ...]  # libseccomp names, in profile order, no duplicates
    flags: int  # SECCOMP_FILTER_FLAG_* bits asked for in `flags`
    flag_paths: dict[int, str] = field(default_factory=dict)  # bit -> `flags[i]` for messages
    rules: tuple[Rule, ...] = ()
    listener_path: str = ""
    listener_metadata: str = ""

    @property
    def notifies(self) -> bool:
        return any(rule.action == ACT_NOTIFY and rule.names for rule in self.rules)

    @property
    def default_allows(self) -> bool:
        """ALLOW, LOG and TRACE let unknown syscalls through: no -ENOSYS stub (runc)."""
        return self.default_action in (ACT_ALLOW, ACT_LOG) or (self.default_action & 0xFFFF0000) == ACT_TRACE


class _Profile(Reader):
    """linux.seccomp errors: "config.json: linux.seccomp<path>: <problem>" (paths here
    are relative: ".syscalls[3].action").  Strings are taken as written (nul_ok): a
    syscall name is libseccomp's to know or not."""
    __slots__ = ()

    def fail(self, path: str, message: str) -> NoReturn:
        raise ConfigError(f"{WHERE}{path}: {message}")


_READER = _Profile()
fail = _READER.fail


def _string(value: Any, path: str) -> str:
    return _READER.string(value, path, nul_ok=True)


def _strings(value: Any, path: str) -> list[str]:
    return _READER.string_list(value, path, nul_ok=True)


def _uint(value: Any, path: str, maximum: int) -> int:
    """An integer in [0, maximum], in this section's words (pinned by
    tests/unit/test_seccomp_compile.py: "expected an unsigned integer", "(0 to N)")."""
    if type(value) is not int:
        _READER.wrong_type(path, "an unsigned integer", value)
    if not 0 <= value <= maximum:
        fail(path, f"{value} is out of range (0 to {maximum})")
    return value


def _action(name: Any, errno_ret: Any, path: str, errno_path: str) -> int:
    name = _string(name, path)
    if name not in ACTIONS:
        fail(path, f'unknown action "{name}"')
    action = ACTIONS[name]
    if action in _WITH_ERRNO:
        errno = EPERM if errno_ret is None else _uint(errno_ret, errno_path, ERRNO_MAX)
        return action | errno
    if errno_ret is not None:
        _uint(errno_ret, errno_path, ERRNO_MAX)  # runc ignores it for other actions
    return action


def parse(raw: Any) -> Profile:
    """Validate `raw` (the `linux.seccomp` object) into a Profile; raise ConfigError."""
    raw = _READER.obj(raw, "")
    if raw.get("defaultAction") is None:
        fail(".defaultAction", "required field is missing")
    default = _action(raw["defaultAction"], raw.get("defaultErrnoRet"), ".defaultAction", ".defaultErrnoRet")
    if default == ACT_NOTIFY:
        fail(".defaultAction", "SCMP_ACT_NOTIFY cannot be used as default action")

    arches: list[str] = []
    if raw.get("architectures") is not None:
        for i, name in enumerate(_strings(raw["architectures"], ".architectures")):
            if name not in ARCHITECTURES:
                fail(f".architectures[{i}]", f'unknown architecture "{name}"')
            if ARCHITECTURES[name] not in arches:
                arches.append(ARCHITECTURES[name])

    flags = 0
    flag_paths: dict[int, str] = {}
    if raw.get("flags") is not None:
        for i, name in enumerate(_strings(raw["flags"], ".flags")):
            if name not in FLAGS:
                fail(f".flags[{i}]", f'unknown flag "{name}"')
            flags |= FLAGS[name]
            flag_paths.setdefault(FLAGS[name], f".flags[{i}]")

    listener_path = _string(raw.get("listenerPath"), ".listenerPath")
    metadata = _string(raw.get("listenerMetadata"), ".listenerMetadata")

    rules: list[Rule] = []
    for i, item in enumerate(_READER.array(raw.get("syscalls"), ".syscalls")):
        path = f".syscalls[{i}]"
        item = _READER.obj(item, path)
        if item.get("names") is None:
            fail(f"{path}.names", "required field is missing")
        names = _strings(item["names"], f"{path}.names")
        if "" in names:
            fail(f"{path}.names[{names.index('')}]", "empty string is not a valid syscall")
        if item.get("action") is None:
            fail(f"{path}.action", "required field is missing")
        action = _action(item["action"], item.get("errnoRet"), f"{path}.action", f"{path}.errnoRet")
        if action == ACT_NOTIFY:
            for j, name in enumerate(names):
                if name in NOTIFY_FORBIDDEN:
                    fail(f"{path}.names[{j}]", f"SCMP_ACT_NOTIFY cannot be used for the {name} syscall")
        args: list[Arg] = []
        for k, arg in enumerate(_READER.array(item.get("args"), f"{path}.args")):
            arg_path = f"{path}.args[{k}]"
            arg = _READER.obj(arg, arg_path)
            for required in ("index", "value", "op"):
                if arg.get(required) is None:
                    fail(f"{arg_path}.{required}", "required field is missing")
            op = _string(arg["op"], f"{arg_path}.op")
            if op not in OPERATORS:
                fail(f"{arg_path}.op", f'unknown operator "{op}"')
            value_two = arg.get("valueTwo")
            args.append(Arg(
                index=_uint(arg["index"], f"{arg_path}.index", MAX_ARGS - 1),
                op=OPERATORS[op],
                value=_uint(arg["value"], f"{arg_path}.value", UINT64_MAX),
                value_two=0 if value_two is None else _uint(value_two, f"{arg_path}.valueTwo", UINT64_MAX),
            ))
        rules.append(Rule(path=path, names=tuple(names), action=action, action_name=item["action"],
                          args=tuple(args)))

    profile = Profile(default_action=default, default_action_name=raw["defaultAction"],
                      architectures=tuple(arches), flags=flags, flag_paths=flag_paths,
                      rules=tuple(rules), listener_path=listener_path, listener_metadata=metadata)
    if profile.notifies and not listener_path:
        fail(".listenerPath", "required when an action is SCMP_ACT_NOTIFY")
    return profile
