"""Crash injection for the reliability tests: `point(name)` SIGKILLs this process when
the environment variable PYRUNC_FAULT equals `name`.

The variable is read once, at import; an unset variable makes every point a string
comparison against "" (nothing else is imported or looked up on the hot path).
Named points (see docs/reliability.md for the list and what each one leaves behind):
create.*, launch.*, start.*, exec.*, delete.*, destroy.*.
"""
from __future__ import annotations

import os

_FAULT = os.environ.get("PYRUNC_FAULT", "")


def point(name: str) -> None:
    """Die here, as abruptly as possible (no cleanup, no finally), if asked to."""
    if _FAULT and name == _FAULT:
        os.kill(os.getpid(), 9)
