"""`pyrunc profile record`: learn the syscalls a workload makes, write a minimal profile.

The workload runs under a recording filter: SCMP_ACT_NOTIFY for every syscall name
libseccomp knows on the recorded architectures, except `read` and `write`, default
ALLOW. A Supervisor (pyrunc.harness.supervisor) at `listenerPath` records each
notification (name, architecture, a class of the first argument) and lets the call run
(SECCOMP_USER_NOTIF_FLAG_CONTINUE).

Why `read` and `write` are never notified and always allowed: the init loads the filter
and only then reports the listener fd to the runtime with write(2) and waits for the
go-ahead with read(2). Notified, either would wait for an agent that has no fd yet: a
deadlock (pyrunc refuses NOTIFY on write for that reason, as runc does). The workload's
own reads and writes are therefore not counted, and every recorded profile allows them.

Why noNewPrivileges is forced on: with it the init loads the filter right before
execve(2), so the supervisor sees the workload's syscalls (and the few the init makes
between the load and the exec: close, execve). Without it the filter is loaded before
the capability drop and the user switch, and the runtime's own setup would be recorded.
A profile recorded this way needs noNewPrivileges true to be used as it is (runc's
default spec sets it). The profile ends with SCMP_ACT_ERRNO/EPERM as default action;
pyrunc's compiler turns syscalls newer than any in the profile into ENOSYS (as runc).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter, defaultdict
from typing import Any, Mapping, Union

from pyrunc.harness import syscalls
from pyrunc.harness.api import Config, Container, Result
from pyrunc.harness.supervisor import CONTINUE, Notification, Supervisor

ALWAYS_ALLOWED = ("read", "write")

AF_NAMES = {0: "AF_UNSPEC", 1: "AF_UNIX", 2: "AF_INET", 10: "AF_INET6", 16: "AF_NETLINK", 17: "AF_PACKET",
            38: "AF_ALG", 40: "AF_VSOCK"}
CLONE_NAMESPACE_FLAGS = {0x00020000: "CLONE_NEWNS", 0x02000000: "CLONE_NEWCGROUP", 0x04000000: "CLONE_NEWUTS",
                         0x08000000: "CLONE_NEWIPC", 0x10000000: "CLONE_NEWUSER", 0x20000000: "CLONE_NEWPID",
                         0x40000000: "CLONE_NEWNET", 0x00000080: "CLONE_NEWTIME"}
# syscalls without arguments: their "first argument" is whatever the register held
NO_ARGUMENTS = frozenset(("getpid", "getppid", "gettid", "getuid", "geteuid", "getgid", "getegid", "getpgrp",
                          "setsid", "sched_yield", "fork", "vfork", "pause", "sync", "munlockall", "vhangup",
                          "inotify_init", "rt_sigreturn", "restart_syscall"))
# syscalls whose first argument a profile commonly conditions on (Docker's default does)
ARG_RULE_SYSCALLS = ("socket", "personality")


def arg0_class(name: str, value: int) -> str:
    """A short, stable description of a first argument, for the report."""
    signed = value - (1 << 64) if value >= 1 << 63 else value
    if name in NO_ARGUMENTS:
        return "-"
    if name in ("socket", "socketpair"):
        return AF_NAMES.get(value, f"family {value}")
    if name == "personality":
        return f"0x{value:x}"
    if name in ("clone", "unshare"):
        flags = [text for bit, text in CLONE_NAMESPACE_FLAGS.items() if value & bit]
        return "|".join(flags) if flags else "no namespace flags"
    if name == "prctl":
        return f"option {value}"
    if (signed & 0xFFFFFFFF) == 0xFFFFFF9C:
        return "AT_FDCWD"
    if 0 <= signed < 4096:
        return "small"
    return "pointer/large"


class Recording:
    """What the supervisor saw, and the workload's result."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()  # (arch, name) -> calls
        self.arg0: dict[str, Counter[str]] = defaultdict(Counter)  # name -> arg0 class -> calls
        self.arg0_values: dict[str, set[int]] = defaultdict(set)  # exact values, ARG_RULE_SYSCALLS only
        self.result: Result | None = None  # the last run's
        self.runs = 0
        self.errors: list[str] = []
        self.native_arch = syscalls.native_arch()

    # the supervisor's callback
    def decide(self, n: Notification) -> int:
        arch = syscalls.arch_of(n.arch, n.nr)
        name = syscalls.name_of(arch, n.nr)
        self.counts[(arch, name)] += 1
        self.arg0[name][arg0_class(name, n.args[0])] += 1
        if name in ARG_RULE_SYSCALLS:
            self.arg0_values[name].add(n.args[0] & 0xFFFFFFFF)
        return CONTINUE

    @property
    def syscalls(self) -> list[str]:
        """Every syscall name the profile must allow (recorded, plus read and write)."""
        return sorted({name for _, name in self.counts} | set(ALWAYS_ALLOWED))

    @property
    def arches(self) -> list[str]:
        seen = {arch for arch, _ in self.counts if arch.startswith("SCMP_ARCH_")}
        return [self.native_arch] + sorted(seen - {self.native_arch})

    def profile(self, with_args: bool = False) -> dict:
        """The minimal allow-list profile. with_args: socket and personality are allowed
        only for the first-argument values seen (one rule per value)."""
        names = self.syscalls
        rules: list[dict] = []
        conditioned = [n for n in ARG_RULE_SYSCALLS if with_args and self.arg0_values.get(n)]
        plain = [n for n in names if n not in conditioned]
        rules.append({"names": plain, "action": "SCMP_ACT_ALLOW"})
        for name in conditioned:
            for value in sorted(self.arg0_values[name]):
                rules.append({"names": [name], "action": "SCMP_ACT_ALLOW",
                              "args": [{"index": 0, "value": value, "op": "SCMP_CMP_EQ"}]})
        return {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1, "architectures": self.arches,
                "syscalls": rules}

    def report(self) -> dict:
        """Counts per syscall (and per arch), first-argument classes, the workload's exit."""
        per_name: dict[str, dict] = {}
        for (arch, name), count in sorted(self.counts.items()):
            entry = per_name.setdefault(name, {"count": 0, "arches": {}, "arg0": {}})
            entry["count"] += count
            entry["arches"][arch] = count
        for name, classes in self.arg0.items():
            per_name[name]["arg0"] = dict(sorted(classes.items()))
        for name in ALWAYS_ALLOWED:
            per_name.setdefault(name, {"count": None, "arches": {}, "arg0": {},
                                       "note": "always allowed, not recorded (see docs/harness.md)"})
        return {
            "exit_code": self.result.exit_code if self.result else None,
            "runs": self.runs,
            "total_calls": sum(self.counts.values()),
            "distinct_syscalls": len(self.syscalls),
            "architectures": self.arches,
            "syscalls": dict(sorted(per_name.items())),
            "errors": self.errors,
        }

    def table(self) -> str:
        report = self.report()
        rows = [["SYSCALL", "COUNT", "ARCHES", "FIRST ARG"]]
        for name, entry in report["syscalls"].items():
            count = "-" if entry["count"] is None else str(entry["count"])
            arches = ",".join(a.replace("SCMP_ARCH_", "").lower() for a in entry["arches"]) or "-"
            classes = ", ".join(f"{k}:{v}" for k, v in entry["arg0"].items()) or entry.get("note", "")
            rows.append([name, count, arches, classes])
        runs = f" in {report['runs']} runs" if report["runs"] > 1 else ""
        footer = (f"{report['distinct_syscalls']} syscalls, {report['total_calls']} calls recorded{runs}; "
                  f"workload exit status {report['exit_code']}")
        return format_table(rows) + footer + "\n"


def format_table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() + "\n"
                   for row in rows)


def recording_profile(listener_path: str, arches: list[str]) -> dict:
    names = [n for n in syscalls.all_names(tuple(arches)) if n not in ALWAYS_ALLOWED]
    return {"defaultAction": "SCMP_ACT_ALLOW", "architectures": arches, "listenerPath": listener_path,
            "syscalls": [{"names": names, "action": "SCMP_ACT_NOTIFY"}]}


def record(source: Union[Config, Mapping[str, Any], str, os.PathLike], *, input: str | bytes | None = None,
           timeout: float | None = 120, container_id: str | None = None, root: str | None = None,
           arches: list[str] | None = None, keep_no_new_privileges: bool = False, runs: int = 1) -> Recording:
    """Run the workload of `source` (a Config, config dict or bundle dir) `runs` times
    under the recording filter and return the Recording (profile(), report(), table()):
    the union of what every run did (counts add up); `result` is the last run's.
    Several runs catch calls a racy workload makes only sometimes (e.g. a client that
    polls only when the reply is not there yet).

    keep_no_new_privileges: leave process.noNewPrivileges as the config has it. When it
    is false the filter loads before the init drops privileges, so the recording (and the
    profile) includes the runtime's own setup calls (setgroups, capset, ...), which such
    a container needs its profile to allow."""
    config = Config.from_bundle(source) if isinstance(source, (str, os.PathLike)) else \
        (source.copy() if isinstance(source, Config) else Config(source))
    recording = Recording()
    if arches is None:
        arches = syscalls.companion_arches(recording.native_arch)
    workdir = tempfile.mkdtemp(prefix="pyrunc-rec-")
    try:
        listener_path = os.path.join(workdir, "listener.sock")
        config.seccomp(recording_profile(listener_path, arches))
        if not keep_no_new_privileges:
            config.no_new_privileges(True)
        for _ in range(max(1, runs)):
            with Supervisor(listener_path, recording.decide) as supervisor:
                with Container(config, container_id, root=root) as container:
                    recording.result = container.run(input=input, timeout=timeout)
            recording.runs += 1
            recording.errors.extend(supervisor.errors)
            if not supervisor.states:
                recording.errors.append("the runtime never handed over the seccomp listener")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return recording
