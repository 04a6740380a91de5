"""Fuzzing with a fixed hypothesis budget (derandomized, so CI is reproducible and fast):

- config.json: the default spec with one or more values replaced by arbitrary JSON (wrong
  types, huge numbers, odd strings, deleted keys), and wholly arbitrary JSON documents,
  fed to `pyrunc.spec.parse` in-process: only ConfigError may come out, and its message
  names a field (`config.json: <field path>: ...`), the mutated one's top-level key.
- argv: command lines built from pyrunc's own command and flag names plus random words,
  through `pyrunc.cli.run` in-process with every operation replaced by a stub: exit 0, 1
  or 3 only, never a traceback, and a failure is reported on stderr.
- `pyrunc check` on fuzzed configs: never crashes, exit 0/1.
"""
from __future__ import annotations

import copy
import json
import os
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("PYRUNC_FUZZ_EXAMPLES", "0")) or (2000 if os.environ.get("PYRUNC_FULL") else 250)
FUZZ = settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))

json_scalars = (st.none() | st.booleans() | st.integers(min_value=-(1 << 70), max_value=1 << 70)
                | st.floats(allow_nan=False) | st.text(max_size=12)
                | st.sampled_from(["", "/", "..", "/proc", "rbind", "CAP_SYS_ADMIN", "RLIMIT_NOFILE",
                                   "mount", "user", "pid", "bind", "tmpfs", "\x00", "a" * 300]))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)


def _paths(value, prefix=()):
    """Every (path tuple) inside a JSON value."""
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))


def _field_name(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


@pytest.fixture(scope="module")
def base_config(tmp_path_factory):
    from pyrunc.spec import default_spec
    bundle = tmp_path_factory.mktemp("fuzzbundle")
    (bundle / "rootfs").mkdir()
    config = default_spec()
    config["root"] = {"path": "rootfs", "readonly": True}
    return str(bundle), config, sorted(set(_paths(config)) - {()}, key=repr)


def _parse_only_config_errors(raw, bundle, creating):
    from pyrunc import spec
    from pyrunc.errors import ConfigError
    try:
        spec.parse(raw, bundle, creating=creating)
    except ConfigError as e:
        message = str(e)
        assert "\n" not in message, message
        assert re.match(r"^config\.json: [A-Za-z]", message), f"error names no field: {message!r}"
        return message
    return None
    # anything else propagates and fails the test with its traceback


@FUZZ
@given(data=st.data())
def test_fuzz_spec_mutations(base_config, data):
    bundle, config, paths = base_config
    raw = copy.deepcopy(config)
    mutated = []
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        path = data.draw(st.sampled_from(paths), label="path")
        parent = raw
        try:
            for part in path[:-1]:
                parent = parent[part]
            key = path[-1]
            if data.draw(st.booleans(), label="delete") and isinstance(parent, dict):
                parent.pop(key, None)
            else:
                parent[key] = data.draw(json_values, label="value")
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation replaced the parent
        mutated.append(path)
    creating = data.draw(st.booleans(), label="creating")
    message = _parse_only_config_errors(raw, bundle, creating)
    if message and len(mutated) == 1:
        top = str(mutated[0][0])
        # a single mutation: the error is about that part of the config (or, for a removed
        # or retyped namespace list, about what needed that namespace)
        allowed = {top, "linux", "hostname", "domainname", "mounts", "process", "root"} \
            if top in ("linux", "mounts") else {top}
        named = message[len("config.json: "):].split(":", 1)[0].split(".", 1)[0].split("[", 1)[0]
        assert named in allowed or named.startswith("rootfs") or top in message, \
            f"mutated {_field_name(mutated[0])}, error names {named!r}: {message}"


@FUZZ
@given(raw=json_values)
def test_fuzz_spec_arbitrary_documents(base_config, raw):
    bundle, _config, _paths_ = base_config
    message = _parse_only_config_errors(raw, bundle, creating=True)
    assert message is not None or isinstance(raw, dict)


@settings(max_examples=max(20, EXAMPLES // 5), derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_fuzz_check_command(base_config, data, tmp_path_factory):
    """pyrunc.check on mutated configs: a list of one-line strings, never an exception."""
    from pyrunc.check import check_bundle
    bundle, config, paths = base_config
    raw = copy.deepcopy(config)
    path = data.draw(st.sampled_from(paths))
    parent = raw
    for part in path[:-1]:
        parent = parent[part]
    parent[path[-1]] = data.draw(json_values)
    target = tmp_path_factory.mktemp("chk")
    (target / "rootfs").mkdir()
    (target / "config.json").write_text(json.dumps(raw))
    problems = check_bundle(str(target))
    assert all(isinstance(p, str) and p and "\n" not in p for p in problems), problems


# ------------------------------------------------------------------- argv
def _command_words():
    from pyrunc import cli
    words = list(cli.COMMANDS) + ["help", "h", "bogus"]
    flags = set()
    for command in list(cli.COMMANDS.values()) + [cli.HELP_COMMAND]:
        for flag in command.flags:
            for name in flag.names:
                flags.update({f"--{name}", f"-{name}"})
    for flag in cli.GLOBAL_FLAGS:
        for name in flag.names:
            flags.update({f"--{name}", f"-{name}"})
    return words, sorted(flags)


_WORDS, _FLAGS = _command_words()
_VALUES = st.sampled_from(["", "0", "1", "-1", "true", "false", "KILL", "SIGTERM", "9", "json", "table",
                           "abc", "x=y", "--", "-", "1e3", "0x10", "99999999999999999999", "5s", "ctr",
                           "ctr/../x", "é", "\x00"]) | st.text(alphabet="abcxyz019=-_.", max_size=6)
_TOKEN = (st.sampled_from(_WORDS) | st.sampled_from(_FLAGS) | _VALUES
          | st.builds(lambda f, v: f"{f}={v}", st.sampled_from(_FLAGS), _VALUES))


class _Stubbed:
    """Every operation returns at once: argv handling alone is under test."""
    calls = 0


@pytest.fixture
def stubbed_operations(monkeypatch, tmp_path):
    from pyrunc import operations
    from pyrunc.harness import cli as harness_cli

    def stub(*_a, **_k):
        _Stubbed.calls += 1
        return 0

    for name in ("create", "start", "run", "kill", "delete", "pause", "resume", "update", "exec_process"):
        monkeypatch.setattr(operations, name, stub)
    monkeypatch.setattr(operations, "state", lambda *_a, **_k: {"ociVersion": "1.0.2", "id": "x", "pid": 0,
                                                                 "status": "stopped", "bundle": "/", "rootfs": "/",
                                                                 "created": "", "owner": ""})
    monkeypatch.setattr(operations, "list_containers", lambda *_a, **_k: [])
    monkeypatch.setattr(operations, "ps_pids", lambda *_a, **_k: [])
    monkeypatch.setattr(operations, "events", lambda *_a, **_k: iter(()))
    monkeypatch.setattr(harness_cli, "main", lambda *_a, **_k: 0)
    # relative --log / -b / spec output lands in a scratch dir
    monkeypatch.chdir(tmp_path)
    return tmp_path


@FUZZ
@given(argv=st.lists(_TOKEN, max_size=7))
def test_fuzz_cli_argv(stubbed_operations, capfd, argv):
    from pyrunc import cli, log
    # the global --root must not default to the host's /run/pyrunc
    argv = ["--root", "fuzzroot", *argv] if argv[:1] != ["--root"] else argv
    try:
        code = cli.run(list(argv))
    finally:
        out, err = capfd.readouterr()
        try:
            log.setup("", "text", False)  # undo a --log file from this argv
        except Exception:  # noqa: BLE001 - best effort between examples
            pass
    assert code in (0, 1, 3), f"{argv}: exit {code}\nstderr: {err}"
    assert "Traceback" not in out + err, f"{argv}:\n{err}"
    assert "unexpected error" not in err, f"{argv}: a bug surfaced as an unexpected error: {err}"
    if code != 0:
        assert err.strip() or out.strip(), f"{argv}: exit {code} with no message"
