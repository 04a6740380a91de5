"""What Go gives runc for free, written out for pyrunc to answer as runc does: strconv's
number and bool syntax, time.ParseDuration, docker/go-units' RAMInBytes and text/tabwriter.
Pure functions of strings (no I/O), so that the command line and its tests share them."""
from __future__ import annotations


def go_parse_bool(text: str) -> bool | None:
    """strconv.ParseBool."""
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    return None


def go_parse_int(text: str) -> int | None:
    """strconv.ParseInt(text, 0, 64), what Go's flag package uses for int flags: a sign,
    then decimal, 0x/0o/0b or leading-0 octal, "_" only between digits."""
    body = text[1:] if text[:1] in ("+", "-") else text
    if not body:
        return None
    base, digits = 10, body
    if body[0] == "0":
        prefix = body[1:2].lower()
        if len(body) >= 3 and prefix in ("b", "o", "x"):
            base, digits = {"b": 2, "o": 8, "x": 16}[prefix], body[2:]
        else:
            base, digits = 8, body[1:]
    value = 0
    for ch in digits:
        if ch == "_":
            continue
        digit = "0123456789abcdefghijklmnopqrstuvwxyz".find(ch.lower()) if ch.isascii() else -1
        if digit < 0 or digit >= base:
            return None
        value = value * base + digit
    if "_" in body and not _underscores_ok(body):
        return None
    if text[:1] == "-":
        value = -value
    if not -(1 << 63) <= value < (1 << 63):
        return None
    return value


def _underscores_ok(body: str) -> bool:
    # strconv's underscoreOK: each "_" sits between digits (a base prefix counts as one).
    saw = "^"
    i = 0
    hexadecimal = False
    if len(body) >= 2 and body[0] == "0" and body[1].lower() in "box":
        i, saw, hexadecimal = 2, "0", body[1].lower() == "x"
    for ch in body[i:]:
        if ch.isdigit() and ch.isascii() or hexadecimal and ch.lower() in "abcdef":
            saw = "0"
        elif ch == "_":
            if saw != "0":
                return False
            saw = "_"
        else:
            if saw == "_":
                return False
            saw = "!"
    return saw != "_"


def go_parse_decimal(text: str, signed: bool) -> int | None:
    """strconv.ParseUint(text, 10, 64), or ParseInt when `signed` (a leading "-" only):
    what runc update applies to its CPU flags."""
    body = text[1:] if signed and text[:1] == "-" else text
    return int(text) if body.isascii() and body.isdigit() else None


def ram_in_bytes(text: str) -> int | None:
    """docker/go-units RAMInBytes: a number with an optional binary unit (k, m, g, t, p,
    optionally followed by b or ib), case-insensitive: "64m" = 64 MiB."""
    import re
    match = re.fullmatch(r"(\d+(?:\.\d+)?) ?([kKmMgGtTpP])?(?:[iI]?[bB])?", text)
    if not match:
        return None
    number = float(match.group(1))
    unit = (match.group(2) or "").lower()
    return int(number * (1024 ** " kmgtp".index(unit or " ")))


def go_duration(text: str) -> float | None:
    """time.ParseDuration: "5s", "100ms", "1m30s", "1.5h" → seconds (None if invalid)."""
    import re
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    if text in ("0", "+0", "-0"):
        return 0.0
    body = text.lstrip("+-")
    parts = re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)", body)
    if not body or "".join(n + u for n, u in parts) != body:
        return None
    total = sum(float(n) * units[u] for n, u in parts)
    return -total if text.startswith("-") else total


def tabwriter(rows: list[list[str]], minwidth: int, padding: int) -> str:
    """Go's text/tabwriter with padchar ' ': every cell but a line's last is padded to
    its column's width, max(minwidth, widest cell + padding)."""
    widths: list[int] = []
    for row in rows:
        for column, cell in enumerate(row[:-1]):
            width = max(minwidth, len(cell) + padding)
            if column == len(widths):
                widths.append(width)
            elif width > widths[column]:
                widths[column] = width
    lines = []
    for row in rows:
        cells = [cell.ljust(widths[column]) for column, cell in enumerate(row[:-1])]
        lines.append("".join(cells) + (row[-1] if row else "") + "\n")
    return "".join(lines)
