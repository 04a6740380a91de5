"""pyrunc.cli (argv -> operations call -> output, exit code) and pyrunc.signals.

The operations layer is replaced by recorders here (our own layer, not the kernel); the
differential tests at the end run the real pyrunc and /usr/sbin/runc side by side.
"""
from __future__ import annotations

import json
import os
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyrunc import cli, errors, gocompat, log, operations
from pyrunc.cli import help as clihelp
from pyrunc.signals import SIGNALS, SignalError, parse_signal, signal_name

PYTHON = "/root/.pyenv/versions/3.11.7/bin/python3"
RUNC = "/usr/sbin/runc"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

STATE = {"ociVersion": "1.2.0", "id": "c1", "pid": 4216, "status": "created",
         "bundle": "/b", "rootfs": "/b/rootfs", "created": "2026-11-23T10:55:57.657605404Z",
         "annotations": {"z": "1", "a": "<&>"}, "owner": ""}


class Recorder:
    """Stands in for pyrunc.operations: records calls, returns canned results or raises."""

    def __init__(self, monkeypatch):
        self.calls: list[tuple] = []
        self.results: dict = {"run": 0, "state": dict(STATE), "list_containers": [], "exec_process": 0}
        self.raises: dict = {}
        for name in ("create", "start", "run", "state", "kill", "delete", "list_containers",
                     "exec_process"):
            monkeypatch.setattr(operations, name, self._make(name))

    def _make(self, name):
        def fake(g, *args, **kwargs):
            self.calls.append((name, g, args, kwargs))
            if name in self.raises:
                raise self.raises[name]
            return self.results.get(name)
        return fake

    @property
    def last(self):
        name, g, args, kwargs = self.calls[-1]
        return name, args, kwargs


@pytest.fixture
def ops(monkeypatch):
    return Recorder(monkeypatch)


@pytest.fixture(autouse=True)
def reset_log():
    yield
    log.setup("", "text", False)


@pytest.fixture(params=["fast", "click"])
def parser(request, monkeypatch):
    """Run each parametrized test through both parsers."""
    if request.param == "click":
        monkeypatch.setattr(cli, "_fast_parse", lambda argv: None)
    return request.param


def run_cli(argv, capfd):
    code = cli.run(argv)
    out, err = capfd.readouterr()
    return code, out, err


# --- every command's flags reach the right operations call ---------------------------

CREATE_DEFAULTS = dict(pid_file="", console_socket="", pidfd_socket="", no_pivot=False,
                       no_new_keyring=False, preserve_fds=0)


def test_create_defaults(ops, capfd, parser, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run_cli(["create", "c1"], capfd) == (0, "", "")
    assert ops.last == ("create", ("c1", str(tmp_path)), CREATE_DEFAULTS)


@pytest.mark.parametrize("argv", [
    ["create", "--bundle", "/b", "--pid-file", "/p/init.pid", "--console-socket", "/s.sock",
     "--no-pivot", "--no-new-keyring", "--preserve-fds", "3", "c1"],
    ["create", "--bundle=/b", "--pid-file=/p/init.pid", "--console-socket=/s.sock",
     "--no-pivot", "--no-new-keyring", "--preserve-fds=3", "c1"],
    ["create", "-b", "/b", "c1", "--pid-file", "/p/init.pid", "--console-socket", "/s.sock",
     "--no-new-keyring", "--no-pivot", "--preserve-fds", "3"],          # flags after the id
    ["create", "-bundle", "/b", "-pid-file", "/p/init.pid", "-console-socket=/s.sock",
     "-no-pivot", "-no-new-keyring", "-preserve-fds", "3", "--", "c1"],  # Go's one-dash form
])
def test_create_all_flags(ops, capfd, parser, argv):
    assert run_cli(argv, capfd) == (0, "", "")
    assert ops.last == ("create", ("c1", "/b"), dict(pid_file="/p/init.pid",
                                                      console_socket="/s.sock", pidfd_socket="",
                                                      no_pivot=True, no_new_keyring=True, preserve_fds=3))


def test_pidfd_socket_flag(ops, capfd, parser):
    """runc >= 1.2's --pidfd-socket on create, run and exec."""
    assert run_cli(["create", "--pidfd-socket", "/p.sock", "-b", "/b", "c1"], capfd) == (0, "", "")
    assert ops.last[2]["pidfd_socket"] == "/p.sock"
    assert run_cli(["run", "-d", "--pidfd-socket=/p.sock", "-b", "/b", "c1"], capfd) == (0, "", "")
    assert ops.last[2]["pidfd_socket"] == "/p.sock"
    assert run_cli(["exec", "--pidfd-socket", "/p.sock", "c1", "true"], capfd)[0] == 0
    assert ops.last[2]["pidfd_socket"] == "/p.sock"


def test_create_relative_paths_are_made_absolute(ops, capfd, parser, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run_cli(["create", "-b", "bundle", "--pid-file", "init.pid", "c1"], capfd)[0] == 0
    name, args, kwargs = ops.last
    assert args == ("c1", str(tmp_path / "bundle"))
    assert kwargs["pid_file"] == str(tmp_path / "init.pid")


def test_containerd_create_call(ops, capfd, parser, tmp_path):
    """The exact shape containerd-shim-runc-v2 uses (ENGINES.md)."""
    logfile = tmp_path / "log.json"
    argv = ["--root", "/run/containerd/runc/k8s.io", "--log", str(logfile), "--log-format",
            "json", "create", "--bundle", "/b", "--pid-file", "/b/init.pid", "ID"]
    assert run_cli(argv, capfd) == (0, "", "")
    name, g, args, kwargs = ops.calls[-1]
    assert (name, args) == ("create", ("ID", "/b"))
    assert kwargs["pid_file"] == "/b/init.pid"
    assert g == operations.Globals(root="/run/containerd/runc/k8s.io", log_path=str(logfile),
                                   log_format="json", debug=False, systemd_cgroup=False)


def test_podman_equals_forms(ops, capfd, parser, tmp_path):
    logfile = tmp_path / "oci-log"
    argv = ["--log-format=json", f"--log={logfile}", "--systemd-cgroup", "delete", "--force",
            "ctr"]
    assert run_cli(argv, capfd) == (0, "", "")
    name, g, args, kwargs = ops.calls[-1]
    assert (name, args, kwargs) == ("delete", ("ctr",), {"force": True})
    assert g.log_format == "json" and g.log_path == str(logfile) and g.systemd_cgroup


def test_globals_defaults(ops, capfd, parser):
    assert run_cli(["start", "c1"], capfd) == (0, "", "")
    name, g, args, kwargs = ops.calls[-1]
    assert (name, args) == ("start", ("c1",))
    assert g == operations.Globals(root="/run/pyrunc", log_path="", log_format="text",
                                   debug=False, systemd_cgroup=False)


def test_root_is_made_absolute(ops, capfd, parser, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run_cli(["--root", "state-dir", "start", "c1"], capfd)[0] == 0
    assert ops.calls[-1][1].root == str(tmp_path / "state-dir")


def test_criu_and_rootless_globals_are_accepted(ops, capfd, parser):
    assert run_cli(["--criu", "/usr/sbin/criu", "--rootless", "false", "--debug", "start",
                    "c1"], capfd)[0] == 0
    assert ops.calls[-1][1].debug is True
    assert ops.calls[-1][1].criu == "/usr/sbin/criu"  # used by checkpoint/restore


@pytest.mark.parametrize("argv,expected", [
    (["run", "c1"], (("c1", "CWD"), dict(CREATE_DEFAULTS, detach=False, keep=False))),
    (["run", "-d", "--keep", "-b", "/b", "--pid-file", "/p", "--console-socket", "/s",
      "--no-pivot", "--no-new-keyring", "--preserve-fds", "2", "--no-subreaper", "c1"],
     (("c1", "/b"), dict(pid_file="/p", console_socket="/s", pidfd_socket="", no_pivot=True,
                         no_new_keyring=True, preserve_fds=2, detach=True, keep=True))),
    (["run", "--detach", "c1"], (("c1", "CWD"), dict(CREATE_DEFAULTS, detach=True,
                                                     keep=False))),
])
def test_run_flags(ops, capfd, parser, argv, expected, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run_cli(argv, capfd) == (0, "", "")
    args, kwargs = expected
    args = tuple(str(tmp_path) if a == "CWD" else a for a in args)
    assert ops.last == ("run", args, kwargs)


@pytest.mark.parametrize("code", [0, 3, 137])
def test_run_exit_code_is_the_containers(ops, capfd, parser, code):
    ops.results["run"] = code
    assert run_cli(["run", "c1"], capfd)[0] == code


@pytest.mark.parametrize("argv,sig,all_processes", [
    (["kill", "c1"], 15, False),
    (["kill", "c1", "9"], 9, False),
    (["kill", "c1", "KILL"], 9, False),
    (["kill", "c1", "SIGKILL"], 9, False),
    (["kill", "c1", "sigusr1"], 10, False),
    (["kill", "c1", ""], 15, False),                # runc: empty means the default
    (["kill", "--all", "c1", "9"], 9, True),        # containerd after every init exit
    (["kill", "-a", "c1", "9"], 9, True),
    (["kill", "c1", "9", "--all"], 9, True),
    (["kill", "c1", "40"], 40, False),
])
def test_kill(ops, capfd, parser, argv, sig, all_processes):
    assert run_cli(argv, capfd) == (0, "", "")
    assert ops.last == ("kill", ("c1", sig), {"all_processes": all_processes})


@pytest.mark.parametrize("argv,force", [
    (["delete", "c1"], False), (["delete", "-f", "c1"], True),
    (["delete", "--force", "c1"], True), (["delete", "c1", "--force"], True),
])
def test_delete(ops, capfd, parser, argv, force):
    assert run_cli(argv, capfd) == (0, "", "")
    assert ops.last == ("delete", ("c1",), {"force": force})


def test_state_field_order_and_empty_annotations(ops, capfd):
    ops.results["state"] = {"ociVersion": "1.2.0", "id": "c1", "pid": 1, "status": "running",
                            "bundle": "/b", "rootfs": "/b/rootfs", "created": "T",
                            "owner": "", "annotations": {}}
    code, out, err = run_cli(["state", "c1"], capfd)
    assert list(json.loads(out)) == ["ociVersion", "id", "pid", "status", "bundle", "rootfs",
                                     "created", "owner"]
    ops.results["state"]["annotations"] = {"b": "2", "a": "1"}
    code, out, err = run_cli(["state", "c1"], capfd)
    assert list(json.loads(out))[-2:] == ["annotations", "owner"]
    assert list(json.loads(out)["annotations"]) == ["a", "b"]


def test_state_output_is_runcs(ops, capfd, parser):
    code, out, err = run_cli(["state", "c1"], capfd)
    assert (code, err) == (0, "")
    assert ops.last == ("state", ("c1",), {})
    # json.MarshalIndent, HTML-escaped, annotations sorted, no trailing newline.
    assert out == ('{\n  "ociVersion": "1.2.0",\n  "id": "c1",\n  "pid": 4216,\n'
                   '  "status": "created",\n  "bundle": "/b",\n  "rootfs": "/b/rootfs",\n'
                   '  "created": "2026-11-23T10:55:57.657605404Z",\n  "annotations": {\n'
                   '    "a": "\\u003c\\u0026\\u003e",\n    "z": "1"\n  },\n  "owner": ""\n}')
    assert json.loads(out)["pid"] == 4216


LISTED = [dict(STATE, owner="root", bundle="/tmp/pyrunc-cli-probe"),
          dict(STATE, id="second-container", pid=0, status="stopped", owner="root",
               annotations=None)]
for _item in LISTED:
    if _item["annotations"] is None:
        del _item["annotations"]


def test_list_table(ops, capfd, parser):
    ops.results["list_containers"] = LISTED
    code, out, err = run_cli(["list"], capfd)
    assert (code, err) == (0, "")
    assert out == (
        "ID                 PID         STATUS      BUNDLE                  CREATED"
        "                          OWNER\n"
        "c1                 4216        created     /tmp/pyrunc-cli-probe   "
        "2026-11-23T10:55:57.657605404Z   root\n"
        "second-container   0           stopped     /b                      "
        "2026-11-23T10:55:57.657605404Z   root\n")


def test_list_empty_table_matches_runc(ops, capfd, parser, tmp_path):
    code, out, err = run_cli(["list"], capfd)
    runc = subprocess.run([RUNC, "--root", str(tmp_path), "list"], capture_output=True,
                          text=True)
    assert (code, out) == (runc.returncode, runc.stdout)


def test_list_json_and_quiet(ops, capfd, parser):
    assert run_cli(["list", "-f", "json"], capfd) == (0, "null\n", "")
    ops.results["list_containers"] = LISTED
    code, out, err = run_cli(["list", "--format=json"], capfd)
    assert code == 0 and out.endswith("}]\n") and "\n" not in out[:-1]
    assert json.loads(out)[0]["annotations"] == {"a": "<&>", "z": "1"}
    assert '"a":"\\u003c\\u0026\\u003e","z":"1"' in out
    assert run_cli(["list", "-q"], capfd) == (0, "c1\nsecond-container\n", "")
    # runc checks the format only when it prints a table or JSON
    assert run_cli(["list", "-q", "-f", "xml"], capfd)[0] == 0


def test_list_bad_format(ops, capfd, parser):
    code, out, err = run_cli(["list", "--format", "xml"], capfd)
    assert code == 1 and out == ""
    assert err.endswith('level=error msg="invalid format option"\n')


def test_spec_writes_config_like_runc(capfd, parser, tmp_path, monkeypatch):
    import pyrunc.spec
    seen = []

    def fake_default_spec(rootless=False):
        seen.append(rootless)
        return {"ociVersion": "1.2.0", "process": {"args": ["sh"], "env": ["A=<b>"]},
                "mounts": []}

    monkeypatch.setattr(pyrunc.spec, "default_spec", fake_default_spec, raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "b").mkdir()
    assert run_cli(["spec", "-b", "b", "--rootless"], capfd) == (0, "", "")
    assert seen == [True]
    text = (tmp_path / "b" / "config.json").read_text()
    # MarshalIndent with tabs, no trailing newline
    assert text == ('{\n\t"ociVersion": "1.2.0",\n\t"process": {\n\t\t"args": [\n\t\t\t"sh"\n'
                    '\t\t],\n\t\t"env": [\n\t\t\t"A=\\u003cb\\u003e"\n\t\t]\n\t},\n'
                    '\t"mounts": []\n}')
    monkeypatch.chdir(tmp_path / "b")
    code, out, err = run_cli(["spec"], capfd)
    assert code == 1
    assert err.endswith('msg="File config.json exists. Remove it first"\n')
    assert seen[0] is True
    code, out, err = run_cli(["spec", "--bundle", str(tmp_path / "nope")], capfd)
    assert code == 1
    assert f'chdir {tmp_path / "nope"}: no such file or directory' in err


# --- argument checks and usage errors -------------------------------------------------

@pytest.mark.parametrize("argv,message", [
    (["create"], 'pyrunc: \\"create\\" requires exactly 1 argument(s)'),
    (["state", "a", "b"], 'pyrunc: \\"state\\" requires exactly 1 argument(s)'),
    (["start"], 'pyrunc: \\"start\\" requires exactly 1 argument(s)'),
    (["delete"], 'pyrunc: \\"delete\\" requires exactly 1 argument(s)'),
    (["run"], 'pyrunc: \\"run\\" requires exactly 1 argument(s)'),
    (["kill"], 'pyrunc: \\"kill\\" requires a minimum of 1 argument(s)'),
    (["kill", "a", "9", "x"], 'pyrunc: \\"kill\\" requires a maximum of 2 argument(s)'),
    (["list", "x"], 'pyrunc: \\"list\\" requires exactly 0 argument(s)'),
    (["spec", "x"], 'pyrunc: \\"spec\\" requires exactly 0 argument(s)'),
])
def test_argument_count_errors(ops, capfd, parser, argv, message):
    code, out, err = run_cli(argv, capfd)
    assert code == 1
    assert out.startswith("Incorrect Usage.\n\nNAME:\n   pyrunc " + argv[0])
    assert err.count("\n") == 1 and err.endswith(f'level=error msg="{message}"\n')
    assert ops.calls == []


@pytest.mark.parametrize("argv,message", [
    (["state", "--foo", "c1"], "flag provided but not defined: -foo"),
    (["state", "c1", "--foo=bar"], "flag provided but not defined: -foo"),
    (["delete", "-x", "c1"], "flag provided but not defined: -x"),
    (["state", "--root", "/r", "c1"], "flag provided but not defined: -root"),  # globals
    (["create", "-b"], "flag needs an argument: -b"),
    (["create", "c1", "--pid-file"], "flag needs an argument: -pid-file"),
    (["create", "--preserve-fds", "abc", "c1"],
     'invalid value "abc" for flag -preserve-fds: parse error'),
])
def test_flag_errors_exit_1_with_one_stderr_line(ops, capfd, argv, message):
    code, out, err = run_cli(argv, capfd)
    assert code == 1
    assert out.startswith(f"Incorrect Usage: {message}\n\nNAME:\n   pyrunc {argv[0]} - ")
    assert err.count("\n") == 1
    assert err.endswith(f"msg={log.go_quote(message)}\n")
    assert ops.calls == []


def test_unknown_global_flag(ops, capfd):
    code, out, err = run_cli(["--foo", "state", "c1"], capfd)
    assert code == 1
    assert out.startswith("Incorrect Usage. flag provided but not defined: -foo\n\nNAME:\n"
                          "   pyrunc - Open Container Initiative runtime")
    assert err.count("\n") == 1


def test_usage_error_goes_to_log_file_too(ops, capfd, tmp_path):
    logfile = tmp_path / "log.json"
    code, out, err = run_cli(["--log", str(logfile), "--log-format", "json", "state",
                              "--bogus"], capfd)
    assert code == 1
    assert err == "flag provided but not defined: -bogus\n"
    entry = json.loads(logfile.read_text().splitlines()[-1])
    assert entry["level"] == "error" and entry["msg"] == "flag provided but not defined: -bogus"


def test_unknown_command_like_runc(ops, capfd):
    code, out, err = run_cli(["frobnicate", "c1"], capfd)
    assert (code, out) == (3, "")
    assert err.endswith("level=error msg=\"No help topic for 'frobnicate'\"\n")


def test_preserve_fds_go_integer_forms(ops, capfd):
    # Go's flag package parses ints with base prefixes; click only sees these forms.
    assert run_cli(["create", "--preserve-fds", "0x10", "c1"], capfd)[0] == 0
    assert ops.last[2]["preserve_fds"] == 16
    assert run_cli(["create", "--preserve-fds=010", "c1"], capfd)[0] == 0
    assert ops.last[2]["preserve_fds"] == 8


def test_bool_flag_with_value_is_refused(ops, capfd):
    code, out, err = run_cli(["delete", "--force=yes", "c1"], capfd)
    assert code == 1
    assert 'invalid boolean value \\"yes\\" for -force: parse error' in err
    assert ops.calls == []


# --- help and version -----------------------------------------------------------------

def test_version_three_lines(capfd, parser):
    code, out, err = run_cli(["--version"], capfd)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert len(lines) == 3
    assert lines[0] == "pyrunc version 0.1.0"
    assert lines[1].startswith("commit: ") and len(lines[1]) > len("commit: ")
    assert lines[2] == "spec: 1.3.0"
    assert run_cli(["-v"], capfd)[1] == out


def test_version_shape_parses_like_runcs():
    """docker's parseRuntimeVersion: the line containing "version" and "commit:"."""
    runc_lines = subprocess.run([RUNC, "--version"], capture_output=True,
                                text=True).stdout.splitlines()
    ours = clihelp.version_text().splitlines()
    assert runc_lines[0].split(" version ")[0] == "runc" and ours[0].split(" version ")[0] == \
        "pyrunc"
    assert [line.split(":")[0] for line in runc_lines[1:3]] == \
        [line.split(":")[0] for line in ours[1:3]]


@pytest.mark.parametrize("argv", [[], ["-h"], ["--help"], ["help"], ["h"],
                                   ["--root", "/x"]])
def test_app_help(capfd, parser, argv):
    code, out, err = run_cli(argv, capfd)
    assert (code, err) == (0, "")
    assert out.startswith("NAME:\n   pyrunc - Open Container Initiative runtime")
    assert "GLOBAL OPTIONS:\n   --debug " in out
    assert '--root value        root directory for storage of container state (this should ' \
           'be located in tmpfs) (default: "/run/pyrunc")' in out


@pytest.mark.parametrize("argv", [["state", "-h"], ["state", "--help"], ["help", "state"],
                                  ["state", "c1", "--help"]])
def test_command_help(ops, capfd, parser, argv):
    code, out, err = run_cli(argv, capfd)
    assert (code, err) == (0, "")
    assert out.startswith("NAME:\n   pyrunc state - output the state of a container\n\n"
                          "USAGE:\n   pyrunc state <container-id>\n")
    assert ops.calls == []


@pytest.mark.parametrize("name", ["create", "run", "start", "state", "kill", "delete",
                                  "list", "spec"])
def test_command_help_matches_runc(name):
    """urfave/cli's layout, runc's usage strings and flag texts (only `spec`'s long
    description is our own). --pidfd-socket is runc >= 1.2's, which runc 1.1.5 lacks: its
    line is left out of the comparison."""
    theirs = subprocess.run([RUNC, name, "--help"], capture_output=True,
                            text=True).stdout.replace("runc", "pyrunc")
    ours = "".join(line for line in clihelp.command_help(cli.COMMANDS[name]).splitlines(True)
                   if not line.startswith("   --pidfd-socket "))
    if name == "spec":
        for section in ("NAME:", "USAGE:", "OPTIONS:"):
            start = theirs.index(section)
            end = theirs.index("\n\n", start) if section != "OPTIONS:" else len(theirs)
            assert theirs[start:end] in ours
    else:
        assert ours == theirs


# --- error reporting ------------------------------------------------------------------

def test_error_without_log_is_one_formatted_stderr_line(ops, capfd):
    ops.raises["state"] = errors.ContainerNotExist("c1")
    code, out, err = run_cli(["state", "c1"], capfd)
    assert (code, out) == (1, "")
    assert err.count("\n") == 1
    assert err.endswith(' level=error msg="container does not exist"\n')
    assert err.startswith('time="')


def test_error_with_json_log_file(ops, capfd, tmp_path):
    logfile = tmp_path / "log.json"
    logfile.write_text('{"level":"info","msg":"earlier","time":"2026-11-23T08:58:29Z"}\n')
    ops.raises["kill"] = errors.WrongState("container not running")
    code, out, err = run_cli(["--log", str(logfile), "--log-format", "json", "kill", "c1",
                              "9"], capfd)
    assert (code, out, err) == (1, "", "container not running\n")
    lines = logfile.read_text().splitlines()
    assert len(lines) == 2
    assert json.loads(lines[-1])["msg"] == "container not running"
    assert lines[-1].startswith('{"level":"error","msg":"container not running","time":"')


def test_json_log_format_without_file(ops, capfd):
    ops.raises["delete"] = errors.ContainerNotExist("c1")
    code, out, err = run_cli(["--log-format", "json", "delete", "c1"], capfd)
    assert code == 1
    assert json.loads(err)["msg"] == "container does not exist"


def test_unexpected_exception_is_one_line_without_traceback(ops, capfd, tmp_path):
    ops.raises["start"] = KeyError("pid")
    logfile = tmp_path / "log.json"
    code, out, err = run_cli(["--log", str(logfile), "--log-format", "json", "start", "c1"],
                             capfd)
    assert (code, out) == (1, "")
    assert err == "unexpected error: KeyError: 'pid'\n"
    assert json.loads(logfile.read_text())["level"] == "error"


def test_unexpected_exception_traceback_only_with_debug(ops, capfd):
    ops.raises["start"] = ValueError("bad")
    code, out, err = run_cli(["--debug", "start", "c1"], capfd)
    assert code == 1
    assert "Traceback (most recent call last)" in err
    assert err.endswith('level=error msg="unexpected error: ValueError: bad"\n')


def test_oserror_message(ops, capfd):
    ops.raises["start"] = FileNotFoundError(2, "No such file or directory", "/run/x/state.json")
    code, out, err = run_cli(["start", "c1"], capfd)
    assert code == 1
    assert 'msg="/run/x/state.json: no such file or directory"' in err


def test_invalid_log_format(ops, capfd):
    code, out, err = run_cli(["--log-format", "xml", "state", "c1"], capfd)
    assert (code, out) == (1, "")
    assert err.endswith('level=error msg="invalid log-format: xml"\n')
    assert ops.calls == []


def test_unopenable_log_file(ops, capfd, tmp_path):
    path = tmp_path / "no-such-dir" / "log.json"
    code, out, err = run_cli(["--log", str(path), "state", "c1"], capfd)
    assert code == 1
    assert f'msg="open {path}: no such file or directory"' in err
    assert ops.calls == []


def test_warnings_go_to_the_log_file_and_else_to_stderr_as_runcs(ops, capfd, monkeypatch, tmp_path):
    """Engines pass --log (containerd's shim reads `state` with stderr combined into
    stdout): a warning then stays in the file. Without --log it is on stderr, as runc's."""
    def noisy_state(g, container_id):
        log.warning("something odd")
        return dict(STATE)
    monkeypatch.setattr(operations, "state", noisy_state)
    path = tmp_path / "log.json"
    code, out, err = run_cli(["--log", str(path), "--log-format", "json", "state", "c1"], capfd)
    assert (code, err) == (0, "")
    assert json.loads(out)["id"] == "c1"
    assert json.loads(path.read_text())["msg"] == "something odd"
    code, out, err = run_cli(["state", "c1"], capfd)
    assert code == 0 and err.endswith('level=warning msg="something odd"\n')
    assert json.loads(out)["id"] == "c1"


def test_bad_signal_reports_missing_container_first(ops, capfd):
    ops.raises["state"] = errors.ContainerNotExist("c1")
    code, out, err = run_cli(["kill", "c1", "FOO"], capfd)
    assert code == 1 and err.endswith('msg="container does not exist"\n')
    del ops.raises["state"]
    code, out, err = run_cli(["kill", "c1", "FOO"], capfd)
    assert code == 1 and err.endswith('msg="unknown signal \\"FOO\\""\n')
    assert [c[0] for c in ops.calls] == ["state", "state"]


# --- the two parsers agree ------------------------------------------------------------

AGREEMENT_CASES = [
    [], ["state", "c1"], ["--root", "/r", "state", "c1"], ["--root=/r", "--debug", "list"],
    ["-v"], ["-h"], ["--help", "state"], ["state", "-h"], ["state", "--", "-c1"],
    ["kill", "-a", "c1", "KILL"], ["kill", "c1", "--", "-9"], ["delete", "-f", "--", "c1"],
    ["create", "-b", "-weird-bundle", "c1"], ["create", "--bundle=", "c1"],
    ["create", "--pid-file", "--no-pivot", "c1"], ["create", "--preserve-fds", "-1", "c1"],
    ["create", "--preserve-fds", "+7", "c1"], ["create", "--preserve-fds", "1_000", "c1"],
    ["run", "-d", "--keep", "c1", "-b", "/x"], ["list", "-f", "json", "-q"],
    ["spec", "--rootless", "-b", "/x"], ["--log", "-", "state", "-"], ["state", ""],
    ["--root", "/a", "--root", "/b", "state", "c1"], ["delete", "-f", "-f", "c1"],
    ["--log-format", "json", "--log", "/l", "--systemd-cgroup", "start", "c1"],
    ["-root", "/r", "-debug", "state", "c1"], ["--v"], ["state", "--h"],
]


@pytest.mark.parametrize("argv", AGREEMENT_CASES)
def test_fast_parser_agrees_with_click(argv):
    fast = cli._fast_parse(argv)
    assert fast is not None, "these forms are meant for the fast path"
    assert cli._click_parse(argv).as_tuple() == fast.as_tuple()


TOKENS = st.sampled_from([
    "state", "kill", "delete", "create", "run", "list", "start", "spec", "c1", "9", "KILL",
    "--", "-", "", "--root", "-root", "--root=/r", "/r", "--log", "--log-format", "json",
    "--debug", "--systemd-cgroup", "-a", "--all", "-f", "--force", "-b", "--bundle",
    "--bundle=/b", "-b=/b", "--pid-file", "--preserve-fds", "--preserve-fds=2", "3", "0x1f",
    "-d", "--keep", "-q", "--format", "table", "-h", "--version", "--foo", "-x", "-fq",
    "--force=true", "--no-pivot", "--console-socket", "--rootless", "help",
])


@settings(max_examples=400, deadline=None)
@given(st.lists(TOKENS, max_size=7))
def test_fast_parser_never_disagrees_with_click(argv):
    """Whatever the fast path accepts, click must read identically (or both refuse)."""
    fast = cli._fast_parse(argv)
    if fast is None:
        return
    assert cli._click_parse(argv).as_tuple() == fast.as_tuple()


# --- signals ----------------------------------------------------------------------

@pytest.mark.parametrize("raw,number", [
    ("9", 9), ("15", 15), ("0", 0), ("64", 64), ("99", 99), ("-9", -9), ("+9", 9),
    ("009", 9), ("KILL", 9), ("SIGKILL", 9), ("sigkill", 9), ("kill", 9), ("Kill", 9),
    ("SiGtErM", 15), ("TERM", 15), ("HUP", 1), ("USR1", 10), ("USR2", 12), ("CHLD", 17),
    ("STKFLT", 16), ("WINCH", 28), ("PWR", 30), ("SYS", 31), ("SIGIO", 29),
])
def test_parse_signal(raw, number):
    assert parse_signal(raw) == number


@pytest.mark.parametrize("raw", [
    "FOO", "RTMIN", "RTMIN+3", "SIGRTMAX-1", "IOT", "CLD", "POLL", "UNUSED", "SIG", "",
    " 9", "9 ", "1_0", "0x9", "9.0", "SIGKILL ", "99999999999999999999",
])
def test_parse_signal_unknown(raw):
    with pytest.raises(SignalError) as info:
        parse_signal(raw)
    assert str(info.value) == f"unknown signal {log.go_quote(raw)}"
    assert isinstance(info.value, errors.PyruncError)


def test_signal_table_matches_python():
    import signal
    for name, number in SIGNALS.items():
        assert getattr(signal, name) == number
        assert signal_name(number) == name
    assert signal_name(40) == "signal 40"


# --- differential against runc -----------------------------------------------------

def pyrunc(*argv, cwd=None):
    env = dict(os.environ, PYTHONPATH=REPO)
    return subprocess.run([PYTHON, "-m", "pyrunc", *argv], capture_output=True, text=True,
                          env=env, cwd=cwd or REPO)


def runc(*argv):
    return subprocess.run([RUNC, *argv], capture_output=True, text=True)


def strip_time(text: str) -> str:
    import re
    return re.sub(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)', "T", text)


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_differential_state_missing_with_log(tmp_path, fmt):
    results = {}
    for name, tool in (("runc", runc), ("pyrunc", pyrunc)):
        logfile = tmp_path / f"{name}.log"
        result = tool("--root", str(tmp_path / name), "--log", str(logfile), "--log-format",
                      fmt, "state", "missing")
        results[name] = (result.returncode, result.stdout, result.stderr,
                         strip_time(logfile.read_text()))
    assert results["pyrunc"] == results["runc"]


@pytest.mark.parametrize("argv", [
    ["state", "missing"], ["kill", "missing", "9"], ["kill", "missing", "FOO"],
    ["delete", "missing"], ["start", "missing"], ["--log-format", "json", "state", "missing"],
    ["--log-format", "xml", "state", "missing"],
])
def test_differential_errors_without_log(tmp_path, argv):
    ours = pyrunc("--root", str(tmp_path / "p"), *argv)
    theirs = runc("--root", str(tmp_path / "r"), *argv)
    assert (ours.returncode, ours.stdout, strip_time(ours.stderr)) == \
        (theirs.returncode, theirs.stdout, strip_time(theirs.stderr))


@pytest.mark.parametrize("argv", [
    ["state"], ["state", "--foo", "x"], ["kill"], ["kill", "a", "b", "c"], ["list", "x"],
    ["--foo", "state", "x"], ["state", "--root", "/r", "x"], ["create", "-b"],
    ["frobnicate"],
])
def test_differential_usage_errors(tmp_path, argv):
    """Same exit code and the same single error line (program name aside)."""
    ours = pyrunc("--root", str(tmp_path / "p"), *argv)
    theirs = runc("--root", str(tmp_path / "r"), *argv)
    assert ours.returncode == theirs.returncode
    their_line = strip_time(theirs.stderr).replace(RUNC, "pyrunc").replace("\\n\"", "\"")
    assert strip_time(ours.stderr) == their_line
    assert ours.stdout.startswith(theirs.stdout[:16])  # "Incorrect Usage" shape, or empty


def test_differential_delete_force_missing(tmp_path):
    ours = pyrunc("--root", str(tmp_path / "p"), "delete", "--force", "missing")
    theirs = runc("--root", str(tmp_path / "r"), "delete", "--force", "missing")
    assert (ours.returncode, ours.stdout, ours.stderr) == (theirs.returncode, "", "") == \
        (0, "", "")


def test_python_dash_m_works():
    result = pyrunc("--version")
    assert result.returncode == 0 and result.stdout.startswith("pyrunc version ")


def test_hot_path_does_not_import_click():
    code = ("import sys\nfrom pyrunc import cli\ncli.run(['--root', '/nonexistent-root', "
            "'state', 'x'])\nprint('click' in sys.modules, 'logging' in sys.modules)")
    result = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=REPO))
    assert result.stdout.strip() == "False False", result.stderr


@pytest.mark.parametrize("text,value", [
    ("0", 0), ("7", 7), ("-7", -7), ("+7", 7), ("010", 8), ("0x1F", 31), ("0X1f", 31),
    ("0o17", 15), ("0b101", 5), ("1_000", 1000), ("0x_1f", 31), ("0_7", 7),
    ("9223372036854775807", (1 << 63) - 1), ("-9223372036854775808", -(1 << 63)),
    ("", None), ("-", None), ("abc", None), (" 1", None), ("1 ", None), ("08", None),
    ("0x", None), ("1__0", None), ("_1", None), ("1_", None), ("0b2", None), ("1.0", None),
    ("9223372036854775808", None), ("٣", None),
])
def test_go_parse_int(text, value):
    """strconv.ParseInt(s, 0, 64), which the Go flag package applies to --preserve-fds."""
    assert gocompat.go_parse_int(text) == value


def test_launcher_imports_the_pyrunc_installed_beside_its_interpreter():
    """The installed `pyrunc` starts its interpreter with -I -S, which also skips venv
    detection: it must still import the copy this test imports (a venv's, not the base
    interpreter's), or a venv's tests would exercise someone else's install."""
    import pyrunc
    from support import pyrunc_binary

    with open(pyrunc_binary()) as f:
        launcher = f.read()
    interpreter = launcher.splitlines()[1].split('exec "', 1)[1].split('"', 1)[0]
    path_setup = launcher.split("\ntry:\n")[0] + "\n"  # up to the import of pyrunc.cli
    result = subprocess.run([interpreter, "-I", "-S", "-c", path_setup + "import pyrunc; print(pyrunc.__file__)"],
                            cwd="/", capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == pyrunc.__file__


# What `pyrunc create` imports for the default busybox bundle (no seccomp, labels, hooks,
# console, netdevs, intelRdt, process attributes; memory-free resources: devices only).
# Engines run create many times per second and each module costs ~0.2-0.3 ms to load:
# a module that joins this set should be one the default bundle needs (docs/performance.md,
# issue 14).  lsm, hooks, console, netdev, intelrdt, process_attrs, seccomp, the absent
# controllers and cli.help must stay out.
CREATE_MODULES = {
    "pyrunc", "pyrunc._native", "pyrunc._native._lib", "pyrunc.caps", "pyrunc.cgroups",
    "pyrunc.cgroups._paths", "pyrunc.cgroups._resources", "pyrunc.cgroups.controllers",
    "pyrunc.cgroups.controllers.common", "pyrunc.cgroups.controllers.devices",
    "pyrunc.cgroups.fs", "pyrunc.cgroups.manager", "pyrunc.cli", "pyrunc.cli.commands",
    "pyrunc.cli.parse", "pyrunc.cli.table", "pyrunc.errors", "pyrunc.fastjson", "pyrunc.faults",
    "pyrunc.fds", "pyrunc.initproc", "pyrunc.launch", "pyrunc.log", "pyrunc.ns",
    "pyrunc.operations", "pyrunc.plan", "pyrunc.planner", "pyrunc.process", "pyrunc.record",
    "pyrunc.rlimits", "pyrunc.rootfs", "pyrunc.rootfs.options", "pyrunc.spec",
    "pyrunc.spec.jsontype", "pyrunc.spec.model", "pyrunc.spec.parser", "pyrunc.state",
    "pyrunc.unixsock",
}


def test_create_of_the_default_bundle_imports_only_what_it_needs(bundle, state_root, container_id):
    import re

    from support import pyrunc_binary
    launcher = pyrunc_binary()
    with open(launcher) as f:
        f.readline()
        interpreter = re.search(r'exec "([^"]+)" -I -S "\$0"', f.readline()).group(1)
    with open(state_root.parent / "importtime.txt", "w+") as err:
        # stdout to /dev/null, stderr to a file: the container's init inherits both
        result = subprocess.run([interpreter, "-X", "importtime", "-I", "-S", launcher,
                                 "--root", str(state_root), "create", "--bundle", str(bundle()),
                                 container_id], stdout=subprocess.DEVNULL, stderr=err)
        err.seek(0)
        lines = err.read().splitlines()
    assert result.returncode == 0, lines[-5:]
    imported = {line.split("|")[2].strip() for line in lines if line.startswith("import time:")}
    ours = {name for name in imported if name == "pyrunc" or name.startswith("pyrunc.")}
    v2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    host = {"pyrunc.cgroups._v2", "pyrunc.cgroups._bpf"} if v2 else {"pyrunc.cgroups._v1"}
    assert ours == CREATE_MODULES | host, (sorted(ours - CREATE_MODULES - host),
                                           sorted(CREATE_MODULES | host - ours))
