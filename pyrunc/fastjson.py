"""JSON without importing `json`: the `json` package imports `re` and `enum` (~6 ms),
paid by every command that reads state or a config.  Parsing uses the C scanner that
`json` itself uses; writing uses pyrunc.log.go_json (Go's encoding/json output)."""
from __future__ import annotations


_scanner = None
_canonical_encoder = None


def loads(text: str | bytes):
    """json.loads through the C scanner alone: importing `json` pulls in `re` and `enum`,
    ~6 ms of every `state`/`kill`/`delete` call.  Raises ValueError on bad input."""
    global _scanner
    if _scanner is None:
        import _json

        class _Context:
            strict = True
            object_hook = None
            object_pairs_hook = None
            parse_float = float
            parse_int = int

            @staticmethod
            def parse_constant(name):
                return float(name.replace("Infinity", "inf"))

        _scanner = _json.make_scanner(_Context())
    if isinstance(text, bytes):
        text = text.decode()
    start = len(text) - len(text.lstrip(" \t\n\r"))
    try:
        value, end = _scanner(text, start)
        if not text[end:].strip(" \t\n\r"):
            return value
    except Exception:  # noqa: BLE001 - the C scanner's errors need json.decoder: let json word them
        pass
    import json
    return json.loads(text)


def dumps(value) -> str:
    from pyrunc.log import go_json
    return go_json(value)


def canonical(value) -> str:
    """Compact JSON with the keys sorted at every level and non-ASCII escaped: a stable
    form to hash (not Go's output).  The C encoder `json` itself uses, ~14x faster than
    go_json on a seccomp profile, without importing `json`."""
    global _canonical_encoder
    if _canonical_encoder is None:
        import _json

        def not_json(obj):
            raise TypeError(f"cannot encode {type(obj).__name__} as JSON")
        # (markers, default, encoder, indent, key_separator, item_separator, sort_keys,
        # skipkeys, allow_nan)
        _canonical_encoder = _json.make_encoder(None, not_json, _json.encode_basestring_ascii, None,
                                                ":", ",", True, False, True)
    return "".join(_canonical_encoder(value, 0))
