"""`pyrunc profile check`: run a workload under a profile P and report what P denied.

Diagnostic mode: the workload runs under a filter that notifies every syscall name
libseccomp knows on P's architectures (except `read` and `write`, whose rules are copied
from P as they are: see pyrunc.harness.record for why they cannot be notified), with P's
own default action for numbers no name covers. The supervisor runs P's compiled BPF
program (the very bytes pyrunc would load, ENOSYS stub included) on each notification's
seccomp_data and answers as P would:

| P's action            | answer                                   | reported as |
|---|---|---|
| ALLOW                 | continue                                 | - |
| LOG                   | continue                                 | logged |
| ERRNO(e)              | fail with e                              | denied |
| TRACE (no tracer)     | fail with ENOSYS (what the kernel does)  | denied |
| TRAP                  | fail with ENOSYS, SIGSYS not delivered   | denied (approximated) |
| KILL_THREAD/PROCESS   | SIGKILL the process, fail with ENOSYS    | denied (killed) |
| NOTIFY                | continue (P's own agent is not involved) | notified |

The workload is also run once unconfined (linux.seccomp removed) to tell whether it
exits differently under P. P's denials of read/write are real but not counted.

Expectations ("P must deny mount", "P must allow getpid") run pyrunc-probe with the raw
syscall in the same configuration under the same diagnosis: the verdict is P's own,
whatever the kernel then answers the call.
"""
from __future__ import annotations

import copy
import errno as errnos
import os
import shutil
import signal
import tempfile
from collections import Counter
from typing import Any, Mapping, Union

from pyrunc.harness import syscalls
from pyrunc.harness.api import Config, Container, HarnessError, HarnessTimeout, Result, load_profile
from pyrunc.harness.record import ALWAYS_ALLOWED, format_table
from pyrunc.harness.supervisor import CONTINUE, Notification, Supervisor

RET_ACTION_FULL = 0xFFFF0000
RET_DATA = 0x0000FFFF
ACTIONS = {0x80000000: "KILL_PROCESS", 0x00000000: "KILL_THREAD", 0x00030000: "TRAP", 0x00050000: "ERRNO",
           0x7FC00000: "NOTIFY", 0x7FF00000: "TRACE", 0x7FFC0000: "LOG", 0x7FFF0000: "ALLOW"}


def compile_profile(profile: Mapping[str, Any]) -> bytes | None:
    """P's BPF program (None: P turns seccomp off)."""
    from pyrunc.seccomp import compile_filter
    bpf, _flags = compile_filter(dict(profile), None)
    return bpf


def diagnostic_profile(profile: Mapping[str, Any], listener_path: str) -> dict:
    arches = list(profile.get("architectures") or [])
    native = syscalls.native_arch()
    all_arches = tuple(dict.fromkeys([native, *arches]))
    names = [n for n in syscalls.all_names(all_arches) if n not in ALWAYS_ALLOWED]
    kept_rules = []
    for rule in profile.get("syscalls") or []:
        kept = [n for n in rule.get("names") or [] if n in ALWAYS_ALLOWED]
        if kept:
            kept_rules.append(dict(copy.deepcopy(rule), names=kept))
    diagnostic = {key: copy.deepcopy(profile[key]) for key in ("defaultAction", "defaultErrnoRet", "architectures")
                  if key in profile}
    diagnostic["listenerPath"] = listener_path
    diagnostic["syscalls"] = kept_rules + [{"names": names, "action": "SCMP_ACT_NOTIFY"}]
    return diagnostic


class CheckResult:
    def __init__(self, profile: dict):
        self.profile = profile
        # (name, arch, action, errno) -> calls
        self.denied: Counter[tuple[str, str, str, int]] = Counter()
        self.logged: Counter[tuple[str, str]] = Counter()
        self.allowed: Counter[tuple[str, str]] = Counter()
        self.result: Result | None = None  # under P (diagnostic mode)
        self.unconfined: Result | None = None
        self.runtime_error = ""  # the runtime's error when the container failed to start under P
        self.probes: list[dict] = []  # Expectation.run results
        self.errors: list[str] = []
        self._program: bytes | None = None

    # the supervisor's callback
    def decide(self, n: Notification) -> int:
        from pyrunc.seccomp import bpf
        arch = syscalls.arch_of(n.arch, n.nr)
        name = syscalls.name_of(arch, n.nr)
        if self._program is None:
            self.allowed[(name, arch)] += 1
            return CONTINUE
        ret = bpf.run(self._program, n.data)
        action = ret & RET_ACTION_FULL
        action_name = ACTIONS.get(action, f"0x{action:08x}")
        if action in (0x7FFF0000, 0x7FC00000):
            self.allowed[(name, arch)] += 1
            return CONTINUE
        if action == 0x7FFC0000:
            self.logged[(name, arch)] += 1
            return CONTINUE
        if action == 0x00050000:
            err = ret & RET_DATA
        else:
            err = errnos.ENOSYS
            if action in (0x80000000, 0x00000000):
                try:
                    os.kill(n.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.denied[(name, arch, action_name, err)] += 1
        return err if err else CONTINUE  # ERRNO(0) means "succeed without running": approximated

    @property
    def exit_differs(self) -> bool | None:
        if self.unconfined is None or self.result is None:
            return None
        return self.result.exit_code != self.unconfined.exit_code

    @property
    def stdout_differs(self) -> bool | None:
        """Informative only (output may legitimately vary between runs)."""
        if self.unconfined is None or self.result is None:
            return None
        return self.result.stdout != self.unconfined.stdout

    @property
    def failed(self) -> bool:
        """What makes `profile check` exit non-zero: a denial, or a different exit."""
        return (bool(self.denied) or bool(self.exit_differs) or bool(self.errors) or bool(self.runtime_error)
                or not all(probe["ok"] for probe in self.probes))

    def report(self) -> dict:
        denied: dict[str, dict] = {}
        for (name, arch, action, err), count in sorted(self.denied.items()):
            entry = denied.setdefault(name, {"count": 0, "answers": []})
            entry["count"] += count
            entry["answers"].append({"arch": arch, "action": action, "errno": err,
                                     "errno_name": errnos.errorcode.get(err, str(err)), "count": count})
        return {
            "denied": denied,
            "logged": {f"{name}": count for (name, _arch), count in sorted(self.logged.items())},
            "allowed_calls": sum(self.allowed.values()),
            "exit_code": self.result.exit_code if self.result else None,
            "unconfined_exit_code": self.unconfined.exit_code if self.unconfined else None,
            "exit_differs": self.exit_differs,
            "stdout_differs": self.stdout_differs,
            "runtime_error": self.runtime_error,
            "expectations": self.probes,
            "errors": self.errors,
            "ok": not self.failed,
        }

    def table(self) -> str:
        report = self.report()
        lines = ""
        if report["denied"]:
            rows = [["SYSCALL", "COUNT", "ARCH", "ACTION", "ERRNO"]]
            for name, entry in report["denied"].items():
                for answer in entry["answers"]:
                    rows.append([name, str(answer["count"]), answer["arch"].replace("SCMP_ARCH_", "").lower(),
                                 answer["action"], f"{answer['errno_name']} ({answer['errno']})"])
            lines += format_table(rows)
        else:
            lines += "no syscall was denied\n"
        for name, count in report["logged"].items():
            lines += f"logged: {name} ({count})\n"
        if report["runtime_error"]:
            lines += f"the container did not start under the profile: {report['runtime_error']}\n"
        if self.unconfined is None:
            lines += f"exit status {report['exit_code']} under the profile (no unconfined run)\n"
        else:
            differs = "differs" if report["exit_differs"] else "same"
            lines += (f"exit status {report['exit_code']} under the profile, {report['unconfined_exit_code']} "
                      f"unconfined ({differs})\n")
        if report["stdout_differs"]:
            lines += "stdout differs from the unconfined run\n"
        if report["expectations"]:
            rows = [["EXPECTED", "SYSCALL", "VERDICT", "ERRNO", "RESULT"]]
            for probe in report["expectations"]:
                expected = probe["expected"]
                if probe["expected_errno"]:
                    expected += f" {errnos.errorcode.get(probe['expected_errno'], probe['expected_errno'])}"
                errno_text = f"{probe['errno_name']} ({probe['errno']})" if probe["errno"] else "-"
                rows.append([expected, probe["syscall"], probe["verdict"], errno_text,
                             "ok" if probe["ok"] else "FAILED"])
            lines += format_table(rows)
            for probe in report["expectations"]:
                if probe["probe_denied"]:
                    lines += (f"note: the profile also denied the probe's {', '.join(probe['probe_denied'])} "
                              f"(while checking {probe['syscall']})\n")
        for error in report["errors"]:
            lines += f"error: {error}\n"
        return lines


def _as_config(source: Union[Config, Mapping[str, Any], str, os.PathLike]) -> Config:
    if isinstance(source, (str, os.PathLike)):
        return Config.from_bundle(source)
    return source.copy() if isinstance(source, Config) else Config(source)


def _diagnose(config: Config, result: "CheckResult", *, input: str | bytes | None, timeout: float | None,
              root: str | None, container_id: str | None) -> None:
    """One run of `config` under the diagnostic filter of result.profile into `result`."""
    workdir = tempfile.mkdtemp(prefix="pyrunc-chk-")
    try:
        listener_path = os.path.join(workdir, "listener.sock")
        config.seccomp(diagnostic_profile(result.profile, listener_path) if result._program is not None else None)
        with Supervisor(listener_path, result.decide) as supervisor:
            with Container(config, container_id, root=root) as container:
                try:
                    result.result = container.run(input=input, timeout=timeout)
                except HarnessTimeout:
                    raise
                except HarnessError as e:
                    # e.g. noNewPrivileges false: P also filters the init's own setup
                    # (capset, setresuid...), and a denial there stops the container
                    result.runtime_error = str(e)
                    result.result = Result(None, "", "")
        result.errors.extend(supervisor.errors)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def check(source: Union[Config, Mapping[str, Any], str, os.PathLike], profile: Union[Mapping[str, Any], str, os.PathLike],
          *, input: str | bytes | None = None, timeout: float | None = 120, compare_unconfined: bool = True,
          root: str | None = None, container_id: str | None = None,
          expectations: list["Expectation"] | tuple = ()) -> CheckResult:
    """Run the workload of `source` under `profile` in diagnostic mode (and once
    unconfined when compare_unconfined) and return the CheckResult. Each Expectation
    then runs pyrunc-probe (the syscall with zero arguments) in the same configuration
    under the same diagnosis, so the verdict is the profile's, not the kernel's."""
    config = _as_config(source)
    profile = load_profile(profile)
    result = CheckResult(profile)
    result._program = compile_profile(profile)
    if compare_unconfined:
        with Container(config.copy().seccomp(None), root=root) as container:
            result.unconfined = container.run(input=input, timeout=timeout)
    _diagnose(config.copy(), result, input=input, timeout=timeout, root=root, container_id=container_id)
    for expectation in expectations:
        result.probes.append(expectation.run(config, profile, result._program, timeout=timeout, root=root))
    return result


class Expectation:
    """What the profile must do with one syscall: deny it (with `errno`, or any errno
    when None) or allow it. Parsed from "NAME", "NAME:EPERM" or "NAME:1"."""

    def __init__(self, syscall: str, denied: bool, errno: int | None = None):
        self.syscall, self.denied, self.errno = syscall, denied, errno

    @classmethod
    def parse(cls, text: str, denied: bool) -> "Expectation":
        from pyrunc.errors import PyruncError
        name, _, wanted = text.partition(":")
        if not name:
            raise PyruncError(f"expectation {text!r}: syscall name missing")
        err = None
        if wanted:
            if wanted.isdigit():
                err = int(wanted)
            elif hasattr(errnos, wanted.upper()):
                err = getattr(errnos, wanted.upper())
            else:
                raise PyruncError(f"expectation {text!r}: unknown errno {wanted!r}")
            if not denied:
                raise PyruncError(f"expectation {text!r}: an allowed syscall has no errno")
        syscalls.number_of(name)  # unknown names fail here, with the name
        return cls(name, denied, err)

    def run(self, config: Config, profile: dict, program: bytes | None, *, timeout: float | None,
            root: str | None) -> dict:
        from pyrunc.harness.api import PROBE_IN_CONTAINER
        probe_result = CheckResult(profile)
        probe_result._program = program
        probe_config = config.copy().with_probe().args(PROBE_IN_CONTAINER, "syscall",
                                                       str(syscalls.number_of(self.syscall)))
        _diagnose(probe_config, probe_result, input=None, timeout=timeout, root=root, container_id=None)
        answers = [(action, err) for (name, _arch, action, err) in probe_result.denied if name == self.syscall]
        seen_allowed = any(name == self.syscall for name, _arch in probe_result.allowed) or \
            any(name == self.syscall for name, _arch in probe_result.logged)
        if answers:
            verdict, err = "denied", answers[0][1]
        elif seen_allowed:
            verdict, err = "allowed", 0
        else:
            verdict, err = "not reached", 0  # the probe died before (its own start-up denied?)
        if self.denied:
            ok = verdict == "denied" and (self.errno is None or err == self.errno)
        else:
            ok = verdict == "allowed"
        stdout = probe_result.result.stdout if probe_result.result else ""
        return {"syscall": self.syscall, "expected": "denied" if self.denied else "allowed",
                "expected_errno": self.errno, "verdict": verdict, "errno": err,
                "errno_name": errnos.errorcode.get(err, str(err)) if err else "",
                "probe_output": stdout.strip(), "ok": ok,
                "probe_denied": sorted({name for (name, _a, _act, _e) in probe_result.denied} - {self.syscall})}
