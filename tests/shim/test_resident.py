"""The resident shim process (pyrunc/shim/resident.py): what it loads before serving."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


def _python(code_or_script: list[str], **kwargs) -> subprocess.CompletedProcess:
    """A fresh interpreter started as the resident process is: -I -S, the installed
    package's sys.path given explicitly."""
    code = (f"import sys; sys.path.extend({[p for p in sys.path if p]!r}); "
            "sys.argv = sys.argv[1:]; ")
    return subprocess.run([sys.executable, "-I", "-S", "-c", code + "import runpy; runpy.run_path(sys.argv[0], run_name='__main__')",
                           *code_or_script], capture_output=True, text=True, timeout=60, **kwargs)


def test_every_preloaded_name_imports(tmp_path):
    """A module that moved or was renamed must not stay listed (its ImportError was
    silently passed over: the resident then loaded it on the first create instead)."""
    from pyrunc.shim import resident
    script = tmp_path / "imports.py"
    script.write_text("import importlib, json, sys\nfrom pyrunc.shim import resident\nbad = []\n"
                      "for name in resident.PRELOAD:\n"
                      "    try:\n        importlib.import_module(name)\n"
                      "    except ImportError as error:\n        bad.append(f'{name}: {error}')\n"
                      "print(json.dumps(bad))\n")
    result = _python([str(script)])
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [], "resident.PRELOAD names that do not import"
    assert len(set(resident.PRELOAD)) == len(resident.PRELOAD)


@pytest.fixture
def probe(bundle, rootfs_dir, container_id, tmp_path, private_run_dirs):
    """Runs preload_probe.py on a bundle with a seccomp profile and a long-running init."""
    config = bundle.template()
    config["process"]["args"] = ["sleep", "60"]
    config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                                  "syscalls": [{"names": ["kexec_load"], "action": "SCMP_ACT_ERRNO"}]}
    path = bundle.write(config, name=container_id)

    def run(mode: str) -> list[str]:
        output = tmp_path / f"{mode}.json"
        result = _python([os.path.join(HERE, "preload_probe.py"), str(path), str(rootfs_dir), "pyrunc-preload-probe",
                          str(tmp_path / "work"), mode, str(output)])
        assert result.returncode == 0 and output.exists(), result
        return json.loads(output.read_text())
    return run


def test_preload_is_what_the_task_service_imports(probe):
    """resident.PRELOAD is exactly what the Task service imports on its paths (create,
    start, exec, pids, stats, pause, resume, update, state, kill, wait, delete) beyond what
    the resident has loaded anyway: with it loaded, a create imports nothing more; and
    nothing is listed that these paths do not use (each module costs memory in the one
    process every pod shares). Measured once the profile's seccomp program is cached, as
    for every container but the first of each profile: the compiler and libseccomp (with
    dataclasses, inspect, ast...: ≈ 1.5 MB) load only on a cache miss."""
    from pyrunc.shim import resident
    probe("warm")  # compiles and caches the seccomp program
    lazily_imported = probe("bare")
    assert sorted(resident.PRELOAD) == lazily_imported
    assert probe("preload") == [], "imported on the Task service's paths despite the preload"
