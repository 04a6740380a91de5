"""containerd runs containers through pyrunc's own shim v2 (ctr run --runtime
io.containerd.pyrunc.v2): no containerd-shim-runc-v2 and no pyrunc process per call."""
from __future__ import annotations

import os
import time

import pytest

from shim_support import RUNTIME, assert_clean


@pytest.fixture
def ctr(shim_containerd):
    names: list[str] = []
    shim_containerd.names = names
    yield shim_containerd
    assert_clean(shim_containerd, names)


def new_name(ctr, engine_name: str, suffix: str = "") -> str:
    ctr.names.append(engine_name + suffix)
    return engine_name + suffix


def test_run_exit_code_stdout_stderr_stdin(ctr, engine_name):
    name = new_name(ctr, engine_name)
    result = ctr.run(name, "sh", "-c", "read line; echo got:$line; echo oops >&2; exit 3",
                     flags=["--rm"], input="from stdin\n", check=False)
    assert result.returncode == 3, result
    assert result.stdout == "got:from stdin\n"
    assert "oops" in result.stderr
