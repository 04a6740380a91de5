"""The installed `pyrunc` launcher (bin/pyrunc.in, written by setup.py's build_launcher)
imports the pyrunc installed with it, whatever the interpreter's site layout.

It runs its interpreter with -I -S, so `site` computes nothing for it; a venv made from
Debian's /usr/bin/python3 keeps its packages in lib/python3.X/site-packages while Debian's
`site` names dist-packages directories once the venv is not detected (issue 13, item 32).
Each case makes a fresh venv and pip-installs this checkout into it (~10 s)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEBIAN_PYTHON = "/usr/bin/python3"


def _interpreters() -> list:
    base = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    cases = [pytest.param(DEBIAN_PYTHON, id="debian")]
    if base != os.path.realpath(DEBIAN_PYTHON):
        cases.append(pytest.param(base, id="base-of-this-interpreter"))  # pyenv's here
    return cases


@pytest.mark.parametrize("interpreter", _interpreters())
def test_venv_install_runs_its_own_pyrunc(interpreter, tmp_path):
    if not os.access(interpreter, os.X_OK):
        pytest.skip(f"{interpreter} is not installed")
    venv = tmp_path / "venv"
    made = subprocess.run([interpreter, "-m", "venv", str(venv)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"{interpreter} cannot make a venv (Debian: python3-venv): {made.stderr.strip()}")
    installed = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
         "--disable-pip-version-check", REPO],
        capture_output=True, text=True, timeout=600, cwd=str(tmp_path))
    assert installed.returncode == 0, installed.stderr[-3000:]
    result = subprocess.run([str(venv / "bin" / "pyrunc"), "--version"], capture_output=True,
                            text=True, timeout=60, cwd="/")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("pyrunc version ")
    # the venv's own copy, not one the base interpreter happens to have
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import pyrunc; print(pyrunc.__file__)"],
        capture_output=True, text=True, cwd="/")
    with open(venv / "bin" / "pyrunc") as f:
        launcher = f.read()
    assert str(venv) in launcher.split("from pyrunc.cli import main")[0]
    assert where.stdout.strip().startswith(str(venv))
