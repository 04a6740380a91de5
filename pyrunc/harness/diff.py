"""`pyrunc profile diff A B`: what one seccomp profile allows that the other does not.

Both profiles are validated by pyrunc.seccomp.profile.parse (errors name the field) and
compared per (syscall, architecture) over every syscall either profile names, on the
architectures each profile filters (its `architectures` plus the native one). For one
profile a syscall's decision is:

- its base action: the action of a rule naming it without `args`, else the default
  action — or ENOSYS when the default denies and the syscall's number is above every
  number the profile names on that arch (pyrunc's and runc's stub for newer syscalls);
- plus exceptions: the conditions (args) under which a conditional rule applies its action.

Rows are grouped by (syscall, decision in A, decision in B) with the architectures they
hold for: "A only" (A allows it in some case, B never), "B only", and "different"
(both allow it but under different arguments, or both deny it with different answers).
"""
from __future__ import annotations

from typing import Any, Mapping

from pyrunc.harness import syscalls

_ACT_ALLOW = 0x7FFF0000
_ACT_LOG = 0x7FFC0000
_ACT_ERRNO = 0x00050000
_ACT_TRACE = 0x7FF00000
OPS = {1: "!=", 2: "<", 3: "<=", 4: "==", 5: ">=", 6: ">", 7: "&"}


def _allows(action: int) -> bool:
    return action in (_ACT_ALLOW, _ACT_LOG)


def describe_action(action: int) -> str:
    import errno as errnos
    kind = action & 0xFFFF0000
    if action == _ACT_ALLOW:
        return "allow"
    if action == _ACT_LOG:
        return "allow (log)"
    if kind in (_ACT_ERRNO, _ACT_TRACE):
        err = action & 0xFFFF
        name = errnos.errorcode.get(err, str(err))
        return f"{'errno' if kind == _ACT_ERRNO else 'trace, else'} {name}"
    return {0x80000000: "kill process", 0x00000000: "kill thread", 0x00030000: "trap",
            0x7FC00000: "notify"}.get(action, f"action 0x{action:08x}")


def _describe_condition(condition: tuple) -> str:
    parts = []
    for index, op, value, value_two in condition:
        if op == 7:
            parts.append(f"arg{index} & 0x{value:x} == {value_two}")
        else:
            parts.append(f"arg{index} {OPS.get(op, '?')} {value}")
    return " && ".join(parts)


class _Decisions:
    def __init__(self, raw: Mapping[str, Any], where: str):
        from pyrunc.errors import ConfigError
        from pyrunc.seccomp.profile import ARCHITECTURES, WHERE, parse
        try:
            self.profile = parse(dict(raw))
        except ConfigError as e:
            # "config.json: linux.seccomp.defaultAction: ..." -> "A.json: defaultAction: ..."
            text = str(e)
            text = text[len(WHERE):].lstrip(".") if text.startswith(WHERE) else text
            raise ConfigError(f"{where}: {text}") from None
        by_libseccomp_name = {v: k for k, v in ARCHITECTURES.items()}
        arches = [by_libseccomp_name[a] for a in self.profile.architectures]
        native = syscalls.native_arch()
        self.arches = list(dict.fromkeys([native, *arches]))
        self.names = {name for rule in self.profile.rules for name in rule.names}
        self._highest: dict[str, int] = {}

    def highest(self, arch: str) -> int:
        if arch not in self._highest:
            numbers = [self.number(name, arch) for name in self.names]
            self._highest[arch] = max([n for n in numbers if n is not None], default=-1)
        return self._highest[arch]

    @staticmethod
    def number(name: str, arch: str) -> int | None:
        try:
            nr = syscalls.number_of(name, arch)
        except Exception:  # noqa: BLE001 - unknown name or arch: not on this arch
            return None
        return nr & ~syscalls.X32_SYSCALL_BIT if arch == "SCMP_ARCH_X32" else nr

    def decision(self, name: str, arch: str) -> tuple[int, tuple[tuple[tuple, int], ...]] | None:
        """(base action, ((condition, action), ...)) or None when `name` is not on `arch`."""
        nr = self.number(name, arch)
        if nr is None:
            return None
        base = None
        exceptions: dict[tuple, int] = {}
        for rule in self.profile.rules:
            if name not in rule.names:
                continue
            if not rule.args:
                base = rule.action
                continue
            indexes = [a.index for a in rule.args]
            conditions = [(tuple((a.index, a.op, a.value, a.value_two) for a in rule.args))]
            if len(set(indexes)) != len(indexes):  # runc: one index twice -> each its own rule
                conditions = [((a.index, a.op, a.value, a.value_two),) for a in rule.args]
            for condition in conditions:
                exceptions.setdefault(tuple(sorted(condition)), rule.action)
        if base is None:
            base = self.profile.default_action
            if (name not in self.names and not self.profile.default_allows
                    and self.profile.default_action != (_ACT_ERRNO | 38) and nr > self.highest(arch)):
                base = _ACT_ERRNO | 38  # the ENOSYS stub
        exceptions = {c: a for c, a in exceptions.items() if a != base}
        return base, tuple(sorted(exceptions.items()))


def describe_decision(decision: tuple | None) -> str:
    if decision is None:
        return "not on this arch"
    base, exceptions = decision
    allowed = [_describe_condition(c) for c, a in exceptions if _allows(a)]
    if _allows(base):
        text = describe_action(base)
        denied = [f"{describe_action(a)} if {_describe_condition(c)}" for c, a in exceptions if not _allows(a)]
        return text + (f", but {'; '.join(denied)}" if denied else "")
    if allowed:
        others = [f"{describe_action(a)} if {_describe_condition(c)}" for c, a in exceptions if not _allows(a)]
        return (f"allow if {' || '.join(allowed)}, else {describe_action(base)}"
                + (f" ({'; '.join(others)})" if others else ""))
    return describe_action(base)


def _allows_some(decision: tuple | None) -> bool:
    if decision is None:
        return False
    base, exceptions = decision
    return _allows(base) or any(_allows(a) for _, a in exceptions)


def diff_profiles(a: Mapping[str, Any], b: Mapping[str, Any], *, a_name: str = "A", b_name: str = "B") -> dict:
    """The differences between two linux.seccomp objects as a JSON-able dict."""
    da, db = _Decisions(a, a_name), _Decisions(b, b_name)
    common_arches = [arch for arch in da.arches if arch in db.arches]
    groups: dict[tuple[str, str, str, str], list[str]] = {}
    for name in sorted(da.names | db.names):
        for arch in common_arches:
            x, y = da.decision(name, arch), db.decision(name, arch)
            if x is None and y is None or x == y:
                continue
            some_x, some_y = _allows_some(x), _allows_some(y)
            kind = "only_in_a" if some_x and not some_y else "only_in_b" if some_y and not some_x else "different"
            key = (kind, name, describe_decision(x), describe_decision(y))
            groups.setdefault(key, []).append(arch)
    result: dict[str, Any] = {
        "a": a_name, "b": b_name,
        "arches_only_in_a": [x for x in da.arches if x not in db.arches],
        "arches_only_in_b": [x for x in db.arches if x not in da.arches],
        "default": None,
        "only_in_a": [], "only_in_b": [], "different": [],
    }
    if da.profile.default_action != db.profile.default_action:
        result["default"] = {"a": describe_action(da.profile.default_action),
                             "b": describe_action(db.profile.default_action)}
    for (kind, name, x, y), arches in groups.items():
        result[kind].append({"syscall": name, "arches": arches, "a": x, "b": y})
    result["identical"] = not (result["arches_only_in_a"] or result["arches_only_in_b"] or result["default"]
                               or result["only_in_a"] or result["only_in_b"] or result["different"])
    return result


def diff_table(result: dict) -> str:
    from pyrunc.harness.record import format_table
    lines = f"A: {result['a']}\nB: {result['b']}\n"
    if result["identical"]:
        return lines + "the profiles allow and deny the same syscalls\n"
    if result["default"]:
        lines += (f"default action (syscalls neither profile names): A {result['default']['a']}, "
                  f"B {result['default']['b']}\n")
    for side in ("a", "b"):
        if result[f"arches_only_in_{side}"]:
            lines += f"architectures only in {side.upper()}: {', '.join(result[f'arches_only_in_{side}'])}\n"
    rows = [["CHANGE", "SYSCALL", "ARCHES", "A", "B"]]
    labels = {"only_in_a": "A only", "only_in_b": "B only", "different": "different"}
    for kind, label in labels.items():
        for row in result[kind]:
            arches = ",".join(a.replace("SCMP_ARCH_", "").lower() for a in row["arches"])
            rows.append([label, row["syscall"], arches, row["a"], row["b"]])
    if len(rows) > 1:
        lines += format_table(rows)
    return lines
