"""Fixtures of the reliability suite; the helpers live in rel_support.py."""
from __future__ import annotations

import os
import tempfile

import pytest

from rel_support import ConsoleReceiver


@pytest.fixture
def console_receiver():
    directory = tempfile.mkdtemp(prefix="rcon-")
    receiver = ConsoleReceiver(directory)
    try:
        yield receiver
    finally:
        receiver.close()
        os.rmdir(directory)


@pytest.fixture
def pyrunc_bin() -> str:
    import sys
    import sysconfig
    override = os.environ.get("PYRUNC_BIN")
    if override:
        return override
    for directory in (os.path.dirname(sys.executable), sysconfig.get_path("scripts")):
        candidate = os.path.join(directory, "pyrunc")
        if os.access(candidate, os.X_OK):
            return candidate
    pytest.fail("pyrunc is not installed (run ./setup.sh)")
