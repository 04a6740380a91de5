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
    from support import pyrunc_binary
    return pyrunc_binary()
