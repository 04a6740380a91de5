"""runc-shaped log lines (logrus text or JSON), hand-written: stdlib `logging` costs more
import time than a `pyrunc state` call may spend.

Where lines go, as runc 1.1.5 does it:
- with `--log FILE`: every line at or above the level (info, or debug with --debug) is
  appended to FILE;
- without it: the same lines go to stderr, formatted (logrus's default output). So a
  warning (an ignored capability, a relative mount destination) reaches whoever runs
  `pyrunc run` by hand, as runc's does.

containerd's shim shows the last `"level":"error"` JSON line of the --log file, so the
shape is fixed: `{"level":"error","msg":"...","time":"2026-11-23T08:58:29Z"}` (keys
sorted, as logrus writes them). Times are RFC 3339 in local time, seconds, like logrus
(`Z` when the zone is UTC).
"""
from __future__ import annotations

import os
import time

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}

_path = ""
_format = "text"
_debug = False
_fd = -1


def setup(path: str, fmt: str, debug: bool) -> None:
    """Configure the process's logging; the file is opened on first use (or `open_now`).
    `fmt` is "text" or "json" (the CLI validates it; anything else counts as text)."""
    global _path, _format, _debug, _fd
    if _fd >= 0:
        try:
            os.close(_fd)
        except OSError:
            pass
    _path, _format, _debug, _fd = path, fmt, debug, -1


def open_now() -> None:
    """Open the --log file at once so a bad path fails the command before it acts, as
    runc does; raises OSError."""
    if _path and _fd < 0:
        _open()


def log_fd() -> int:
    """The --log file's fd (O_APPEND, O_CLOEXEC), opening it if needed, for handing to the
    native init; -1 when logging goes to stderr or the file cannot be opened."""
    if not _path:
        return -1
    try:
        return _open()
    except OSError:
        return -1


def debugging() -> bool:
    """True with --debug: callers skip building debug lines otherwise."""
    return _debug


def has_file() -> bool:
    """True when lines go to a --log file rather than stderr."""
    return bool(_path)


def debug(msg: str) -> bool:
    return _emit("debug", msg)


def info(msg: str) -> bool:
    return _emit("info", msg)


def warning(msg: str) -> bool:
    return _emit("warning", msg)


def error(msg: str) -> bool:
    """Log an error line; True when it went to the --log file (the caller then also
    prints the bare message on stderr, as runc does), False when it went to stderr."""
    return _emit("error", msg)


def format_line(level: str, msg: str, fmt: str, when: float | None = None) -> str:
    """One log line with its newline, in logrus's text or JSON shape."""
    stamp = rfc3339(time.time() if when is None else when)
    if fmt == "json":
        return f'{{"level":"{level}","msg":{json_quote(msg)},"time":"{stamp}"}}\n'
    return f'time="{stamp}" level={level} msg={_text_value(msg)}\n'


def rfc3339(when: float) -> str:
    """Go's time.RFC3339 for a local time: 2026-11-23T08:58:29Z or ...T09:58:29+01:00."""
    tm = time.localtime(when)
    offset = tm.tm_gmtoff or 0
    if offset == 0:
        zone = "Z"
    else:
        sign = "+" if offset > 0 else "-"
        minutes = abs(offset) // 60
        zone = f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"
    return time.strftime("%Y-%m-%dT%H:%M:%S", tm) + zone


def _open() -> int:
    global _fd
    if _fd < 0:
        _fd = os.open(_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
    return _fd


def _emit(level: str, msg: str) -> bool:
    threshold = LEVELS["debug"] if _debug else LEVELS["info"]
    if LEVELS[level] < threshold:
        return False
    fmt = _format
    if _path:
        try:
            # One write(2) per line: O_APPEND keeps concurrent writers' lines whole.
            os.write(_open(), format_line(level, msg, _format).encode("utf-8", "replace"))
            return True
        except OSError:
            # an error must still reach someone: a person reads stderr now, so one plain
            # text line (runc prints its JSON there)
            fmt = "text"
    _write_stderr(format_line(level, msg, fmt).encode("utf-8", "replace"))
    return False


def _write_stderr(data: bytes) -> None:
    try:
        os.write(2, data)
    except OSError:
        pass  # stderr closed or a dead pipe: nothing better to do


# --- Go string quoting -------------------------------------------------------------

def _build_json_escapes() -> dict[int, str]:
    table = {c: f"\\u{c:04x}" for c in range(0x20)}
    table.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t",
                  ord('"'): '\\"', ord("\\"): "\\\\",
                  # encoding/json escapes HTML characters by default; logrus keeps that.
                  ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026",
                  0x2028: "\\u2028", 0x2029: "\\u2029"})
    # Lone surrogates (undecodable argv bytes under surrogateescape) are invalid UTF-8;
    # Go writes U+FFFD for those.
    table.update({c: "\\ufffd" for c in range(0xD800, 0xE000)})
    return table


# built on first use: its 2,000-odd entries cost ~0.1 ms, and most commands (`create`
# without --log-format json) never quote a JSON string
_JSON_ESCAPES: dict[int, str] | None = None


def json_quote(text: str) -> str:
    """A JSON string literal exactly as Go's encoding/json writes it."""
    global _JSON_ESCAPES
    if _JSON_ESCAPES is None:
        _JSON_ESCAPES = _build_json_escapes()
    return '"' + text.translate(_JSON_ESCAPES) + '"'


_GO_SIMPLE_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
                      "\t": "\\t", "\v": "\\v", "\\": "\\\\", '"': '\\"'}


def go_quote(text: str) -> str:
    """Go's strconv.Quote (what `%q` prints): used in runc's messages, e.g.
    `unknown signal "FOO"`."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in _GO_SIMPLE_ESCAPES:
            out.append(_GO_SIMPLE_ESCAPES[ch])
        elif 0xDC80 <= code <= 0xDCFF:  # an undecodable byte kept by surrogateescape
            out.append(f"\\x{code - 0xDC00:02x}")
        elif ch.isprintable():
            out.append(ch)
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


_BARE_TEXT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                             "0123456789-._/@^+")


def _text_value(text: str) -> str:
    # logrus's TextFormatter quotes a value only if it holds a character outside this set.
    if all(ch in _BARE_TEXT_CHARS for ch in text):
        return text
    return go_quote(text)


def go_json(value: object, indent: str | None = None, _depth: int = 0) -> str:
    """JSON exactly as Go's encoding/json writes it: compact, or MarshalIndent with
    `indent` (key order kept; HTML characters escaped as \\u003c etc.)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return json_quote(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e21 else repr(value)
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [(json_quote(str(k)), go_json(v, indent, _depth + 1)) for k, v in value.items()]
        if indent is None:
            return "{" + ",".join(f"{k}:{v}" for k, v in items) + "}"
        inner = "\n" + indent * (_depth + 1)
        return ("{" + inner + ("," + inner).join(f"{k}: {v}" for k, v in items)
                + "\n" + indent * _depth + "}")
    if isinstance(value, (list, tuple)):
        if not value:
            return "[]"
        items = [go_json(v, indent, _depth + 1) for v in value]
        if indent is None:
            return "[" + ",".join(items) + "]"
        inner = "\n" + indent * (_depth + 1)
        return "[" + inner + ("," + inner).join(items) + "\n" + indent * _depth + "]"
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")
