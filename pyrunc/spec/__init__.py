"""The OCI runtime spec: `load`/`parse` config.json into the typed model of `model.py`,
`parse_process` for `exec --process`, and `default_spec` for the `spec` command.

Submodules are imported inside the functions so that `import pyrunc.spec` costs nothing
on paths that never read a config (state, kill, delete). The parser lives in `parser.py`,
not `parse.py`: importing a submodule named `parse` would rebind `pyrunc.spec.parse` from
this function to the module.
"""
from __future__ import annotations


if False:  # typing only (importing `typing` costs ~3 ms on the create path)
    from pyrunc.spec.model import Process, Spec


def load(bundle_dir: str, *, creating: bool = True) -> "Spec":
    """Read and validate `<bundle_dir>/config.json`; raises ConfigError naming the field.

    creating=True (create/run) requires `process` and `root.path` and checks the rootfs
    directory; creating=False accepts a config without them and skips filesystem checks.
    """
    from pyrunc.spec.parser import load_spec

    return load_spec(bundle_dir, creating=creating)


def parse(raw: object, bundle_dir: str, *, creating: bool = True) -> "Spec":
    """Validate an already decoded config.json (relative paths resolve against bundle_dir)
    into the complete model: every section, linux.resources (by the cgroup controllers)
    and linux.seccomp (by pyrunc.seccomp.profile) included. Touches nothing on the host
    (with creating=True it stats the rootfs)."""
    from pyrunc.spec.parser import parse_spec

    return parse_spec(raw, bundle_dir, creating=creating)


def parse_process(raw: object, where: str = "process", source: str = "") -> "Process":
    """Validate a process object; errors read `<source>: <where>.args: must not be empty`
    (the "<source>: " part only when source is given, e.g. the --process file name)."""
    from pyrunc.spec.parser import parse_process as _parse_process

    return _parse_process(raw, where, source)


def default_spec(rootless: bool = False) -> dict:
    """What `runc spec [--rootless]` writes, as a fresh dict; `render()` gives the text."""
    from pyrunc.spec.default import default_spec as _default_spec

    return _default_spec(rootless)


def render(spec: dict) -> str:
    """config.json text formatted exactly as runc writes it (tabs, no final newline)."""
    from pyrunc.spec.default import render as _render

    return _render(spec)
