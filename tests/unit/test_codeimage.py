"""pyrunc/code.image (pyrunc/codeimage.py): the build compiles the package into one file
and the launcher imports pyrunc's modules from it; a module whose source changed, or an
image of another interpreter, goes through the normal import system."""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# what the launcher runs before `from pyrunc.cli import main`, then reports where two
# modules came from (printed as JSON: loader class, __file__)
PROBE = """
import json
import pyrunc.operations, pyrunc.spec.model
print(json.dumps({name: [type(sys.modules[name].__spec__.loader).__name__, sys.modules[name].__file__]
                  for name in ("pyrunc.operations", "pyrunc.spec.model")}))
"""


def _codeimage():
    spec = importlib.util.spec_from_file_location("pyrunc.codeimage", os.path.join(REPO, "pyrunc", "codeimage.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _launcher_prelude(site_dir: str) -> str:
    with open(os.path.join(REPO, "bin", "pyrunc.in")) as f:
        text = f.read()
    prelude = text.split("try:\n    from pyrunc.cli import main")[0]
    return prelude.replace("@SITE_DIRS@", repr([site_dir])).split("\n", 1)[1]  # without the sh line


@pytest.fixture
def installed(tmp_path):
    """A copy of the package in a site directory of its own, with its image."""
    site = tmp_path / "site"
    shutil.copytree(os.path.join(REPO, "pyrunc"), site / "pyrunc",
                    ignore=shutil.ignore_patterns("__pycache__", "*.so", "pyrunc-init", "pyrunc-probe"))
    image = _codeimage().build(str(site / "pyrunc"), str(site / "pyrunc"), importlib.util.MAGIC_NUMBER)
    (site / "pyrunc" / "code.image").write_bytes(image)
    return site


def _where(site, tmp_path) -> dict:
    import json
    script = tmp_path / "probe.py"
    script.write_text(_launcher_prelude(str(site)) + PROBE)
    result = subprocess.run([sys.executable, "-I", "-S", str(script)], capture_output=True, text=True,
                            cwd="/")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_launcher_imports_pyrunc_from_the_image(installed, tmp_path):
    where = _where(installed, tmp_path)
    assert where["pyrunc.operations"] == ["CodeImageFinder", str(installed / "pyrunc" / "operations.py")]
    assert where["pyrunc.spec.model"][0] == "CodeImageFinder"


def test_a_changed_source_is_imported_from_itself(installed, tmp_path):
    with open(installed / "pyrunc" / "operations.py", "a") as f:
        f.write("\nEDITED = True\n")
    where = _where(installed, tmp_path)
    assert where["pyrunc.operations"][0] == "SourceFileLoader"
    assert where["pyrunc.spec.model"][0] == "CodeImageFinder"


def test_an_image_of_another_interpreter_is_not_used(installed, tmp_path):
    image = installed / "pyrunc" / "code.image"
    data = bytearray(image.read_bytes())
    data[0:4] = b"\0\0\r\n"  # no interpreter's magic number
    image.write_bytes(bytes(data))
    assert _where(installed, tmp_path)["pyrunc.operations"][0] == "SourceFileLoader"


def test_a_damaged_image_is_not_used(installed, tmp_path):
    image = installed / "pyrunc" / "code.image"
    image.write_bytes(image.read_bytes()[:64])
    assert _where(installed, tmp_path)["pyrunc.operations"][0] == "SourceFileLoader"


def test_no_image_in_the_first_package_found_means_none(installed, tmp_path):
    """The launcher must not take another install's image: the import system finds the
    first site directory's pyrunc, which has none here."""
    first = tmp_path / "first"
    shutil.copytree(installed, first, ignore=shutil.ignore_patterns("code.image"))
    script = tmp_path / "probe.py"
    script.write_text(_launcher_prelude(str(first)).replace(repr([str(first)]), repr([str(first), str(installed)]))
                      + PROBE)
    result = subprocess.run([sys.executable, "-I", "-S", str(script)], capture_output=True, text=True, cwd="/")
    assert result.returncode == 0, result.stderr
    assert '"SourceFileLoader", "' + str(first) in result.stdout


def test_the_installed_pyrunc_has_an_image_it_uses(tmp_path):
    """The install under test (setup.py's build writes the image): its launcher imports
    pyrunc's modules from it."""
    from support import pyrunc_binary
    launcher = pyrunc_binary()
    with open(launcher) as f:
        f.readline()
        interpreter = re.search(r'exec "([^"]+)" -I -S "\$0"', f.readline()).group(1)
        text = f.read()
    script = tmp_path / "probe.py"
    script.write_text(text.split("try:\n    from pyrunc.cli import main")[0] + PROBE)
    result = subprocess.run([interpreter, "-I", "-S", str(script)], capture_output=True, text=True, cwd="/")
    assert result.returncode == 0, result.stderr
    assert '"CodeImageFinder"' in result.stdout, result.stdout
