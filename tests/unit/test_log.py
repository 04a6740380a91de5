"""pyrunc.log: runc-shaped lines, where they go, and how the file is opened."""
from __future__ import annotations

import fcntl
import json
import os
import re
import stat
import subprocess
import time

import pytest

from pyrunc import log

RUNC = "/usr/sbin/runc"
# 2026-11-23T08:58:29Z
WHEN = 1795424309.75


@pytest.fixture
def tz(monkeypatch):
    """Set TZ for this test (time.tzset), restoring the process's zone afterwards."""
    def set_zone(zone: str) -> None:
        monkeypatch.setenv("TZ", zone)
        time.tzset()
    yield set_zone
    monkeypatch.undo()
    time.tzset()


@pytest.fixture(autouse=True)
def reset_log():
    yield
    log.setup("", "text", False)


def read_lines(path) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return f.read().splitlines()


# --- line shapes ---------------------------------------------------------------------

def test_json_line_is_exactly_logrus_shape(tz):
    tz("UTC")
    line = log.format_line("error", "container does not exist", "json", WHEN)
    assert line == ('{"level":"error","msg":"container does not exist",'
                    '"time":"2026-11-23T08:58:29Z"}\n')
    assert list(json.loads(line)) == ["level", "msg", "time"]


def test_text_line_is_exactly_logrus_shape(tz):
    tz("UTC")
    line = log.format_line("error", "container does not exist", "text", WHEN)
    assert line == 'time="2026-11-23T08:58:29Z" level=error msg="container does not exist"\n'


@pytest.mark.parametrize("msg,expected", [
    ("plain", "msg=plain"),                       # logrus leaves [A-Za-z0-9-._/@^+] bare
    ("a/b.c-d_e@f^g+h", "msg=a/b.c-d_e@f^g+h"),
    ("", "msg="),
    ("two words", 'msg="two words"'),
    ('say "hi"', r'msg="say \"hi\""'),
    ("tab\there", r'msg="tab\there"'),
    ("line\nbreak", r'msg="line\nbreak"'),
    ("x=y", 'msg="x=y"'),
])
def test_text_value_quoting(tz, msg, expected):
    tz("UTC")
    assert log.format_line("warning", msg, "text", WHEN).rstrip("\n").endswith(
        f"level=warning {expected}")


@pytest.mark.parametrize("text,expected", [
    ("plain", '"plain"'),
    ('q"b\\', r'"q\"b\\"'),
    ("<a&b>", r'"\u003ca\u0026b\u003e"'),        # encoding/json's HTML escaping
    ("\n\r\t", r'"\n\r\t"'),
    ("\x00\x01\x1f\b\f", r'"\u0000\u0001\u001f\u0008\u000c"'),   # Go 1.19: no \b \f
    ("\u2028\u2029", r'"\u2028\u2029"'),
    ("é✓", '"é✓"'),                              # non-ASCII stays UTF-8
    ("\udcff", r'"\ufffd"'),                       # undecodable byte -> U+FFFD
    ("\x7f", '"\x7f"'),
])
def test_json_quote_matches_go(text, expected):
    assert log.json_quote(text) == expected


@pytest.mark.parametrize("text,expected", [
    ("FOO", '"FOO"'),
    ('a"b\\c', r'"a\"b\\c"'),
    ("\t\n\a\v", r'"\t\n\a\v"'),
    ("\x01\x7f", r'"\x01\x7f"'),
    ("é", '"é"'),
    ("\u200b", r'"\u200b"'),
    ("\udc80", r'"\x80"'),
])
def test_go_quote_matches_strconv_quote(text, expected):
    assert log.go_quote(text) == expected


def test_time_is_local_rfc3339_like_logrus(tz):
    tz("Europe/Berlin")
    assert log.rfc3339(WHEN) == "2026-11-23T09:58:29+01:00"
    tz("America/St_Johns")
    assert log.rfc3339(WHEN) == "2026-11-23T05:28:29-03:30"
    tz("UTC")
    assert log.rfc3339(WHEN) == "2026-11-23T08:58:29Z"


def test_line_matches_runc_log_line_byte_for_byte_but_time(tmp_path):
    """Differential: the same error through runc and through pyrunc.log."""
    for fmt in ("json", "text"):
        runc_log = tmp_path / f"runc.{fmt}"
        result = subprocess.run([RUNC, "--root", str(tmp_path / "root"), "--log", str(runc_log),
                                 "--log-format", fmt, "state", "missing"], capture_output=True)
        assert result.returncode == 1
        (runc_line,) = read_lines(runc_log)
        ours = log.format_line("error", "container does not exist", fmt).rstrip("\n")
        time_pattern = r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)'
        assert re.sub(time_pattern, "T", runc_line) == re.sub(time_pattern, "T", ours)


# --- destinations ---------------------------------------------------------------------

def test_error_goes_to_file_and_reports_it(tmp_path, capfd):
    path = tmp_path / "log.json"
    log.setup(str(path), "json", False)
    assert log.error("boom") is True
    (line,) = read_lines(path)
    assert json.loads(line)["msg"] == "boom"
    assert json.loads(line)["level"] == "error"
    assert capfd.readouterr() == ("", "")


def test_without_file_error_goes_to_stderr_formatted(capfd):
    log.setup("", "json", False)
    assert log.error("boom") is False
    err = capfd.readouterr().err
    assert json.loads(err)["msg"] == "boom"
    assert err.count("\n") == 1


def test_without_file_warnings_and_info_go_to_stderr_as_runcs(capfd):
    # runc (logrus at info level, writing to stderr) prints its warnings there; engines pass
    # --log, so their pipes never see them.
    log.setup("", "text", False)
    log.warning("careful")
    log.info("fyi")
    log.debug("details")
    out, err = capfd.readouterr()
    assert out == ""
    assert [line.split(" ", 1)[1] for line in err.splitlines()] == [
        "level=warning msg=careful", "level=info msg=fyi"]


def test_levels_in_file(tmp_path):
    path = tmp_path / "log"
    log.setup(str(path), "json", False)
    log.debug("d")
    log.info("i")
    log.warning("w")
    log.error("e")
    assert [json.loads(line)["level"] for line in read_lines(path)] == ["info", "warning",
                                                                       "error"]
    log.setup(str(path), "json", True)
    log.debug("d2")
    assert json.loads(read_lines(path)[-1])["msg"] == "d2"


def test_debug_without_file_goes_to_stderr(capfd):
    log.setup("", "text", True)
    log.debug("details")
    assert "level=debug msg=details" in capfd.readouterr().err


def test_file_is_appended_not_truncated(tmp_path):
    path = tmp_path / "log.json"
    path.write_text("earlier line\n")
    log.setup(str(path), "json", False)
    log.error("one")
    log.setup(str(path), "json", False)  # a second process, in effect
    log.error("two")
    lines = read_lines(path)
    assert lines[0] == "earlier line"
    assert [json.loads(line)["msg"] for line in lines[1:]] == ["one", "two"]


def test_file_is_opened_lazily(tmp_path):
    path = tmp_path / "log"
    log.setup(str(path), "json", False)
    assert not path.exists()
    log.open_now()
    assert path.exists()


def test_file_flags_and_mode(tmp_path):
    path = tmp_path / "log"
    old_umask = os.umask(0o022)
    try:
        log.setup(str(path), "text", False)
        fd = log.log_fd()
    finally:
        os.umask(old_umask)
    assert fd >= 0
    assert fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
    assert fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_APPEND
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert log.log_fd() == fd  # one fd per process


def test_log_fd_without_file():
    log.setup("", "json", False)
    assert log.log_fd() == -1
    assert not log.has_file()


def test_unopenable_file_falls_back_to_stderr_for_errors(tmp_path, capfd):
    log.setup(str(tmp_path / "missing-dir" / "log"), "json", False)
    with pytest.raises(FileNotFoundError):
        log.open_now()
    assert log.error("still seen") is False
    # one plain text line for the person reading stderr, not the file's JSON (issue 13,
    # item 31)
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and err.endswith(' level=error msg="still seen"\n'), err


def test_each_line_is_one_write(tmp_path):
    """Two processes appending at once must not interleave inside a line."""
    path = tmp_path / "log"
    script = ("import sys; from pyrunc import log; log.setup(sys.argv[1], 'json', False)\n"
              "for i in range(300): log.error('x' * 2000 + str(i))\n")
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(log.__file__)))
    procs = [subprocess.Popen(["/root/.pyenv/versions/3.11.7/bin/python3", "-c", script,
                               str(path)], env=env) for _ in range(3)]
    assert [p.wait() for p in procs] == [0, 0, 0]
    lines = read_lines(path)
    assert len(lines) == 900
    for line in lines:
        assert json.loads(line)["level"] == "error"


def test_no_logging_module_import():
    code = "import sys; import pyrunc.log; print('logging' in sys.modules)"
    out = subprocess.run(["/root/.pyenv/versions/3.11.7/bin/python3", "-S", "-c", code],
                         capture_output=True, text=True,
                         env=dict(os.environ,
                                  PYTHONPATH=os.path.dirname(os.path.dirname(log.__file__))))
    assert out.stdout.strip() == "False", out.stderr
