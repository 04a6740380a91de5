"""Build hooks that pyproject.toml cannot express; the metadata lives in pyproject.toml.

Two native artefacts, both built by `build_ext` so that every way of building makes them:
`pip install .` (build → build_ext into build_lib), `pip install -e .` (editable mode) and
`python setup.py build_ext --inplace` (into the source tree):

- pyrunc/_native/_lib*.so (build.py: spawn) and _seccomp*.so (seccomp_build.py, linked
  with -lseccomp): cffi modules, out-of-line API mode (cffi_modules below; cffi wraps
  whatever build_ext class is in cmdclass, so ours still runs);
- pyrunc/_native/pyrunc-init: pyrunc/_native/init.c compiled into a STATIC executable,
  installed as package data next to the cffi module. Static because the runtime execs it
  from a sealed memfd inside namespaces where no dynamic loader or libc can be found.

Besides them `build_scripts` writes the launcher (bin/pyrunc.in, naming this interpreter),
the shim's C commands, and pyrunc/code.image, the package's modules compiled into one file
that the launcher imports from (pyrunc/codeimage.py).
"""
from __future__ import annotations

import glob
import os
import shlex
import subprocess

from setuptools import setup
from setuptools.command.build_ext import build_ext
from distutils.command.build_scripts import build_scripts  # setuptools provides distutils

NATIVE_DIR = os.path.join("pyrunc", "_native")
INIT_SOURCE = os.path.join(NATIVE_DIR, "init.c")
INIT_EXECUTABLE = "pyrunc-init"
INIT_CFLAGS = ["-static", "-O2", "-Wall"]
# pyrunc-probe (pyrunc.harness): performs raw syscalls inside containers; static like
# pyrunc-init because it is bind-mounted into whatever rootfs a test uses.
PROBE_SOURCE = os.path.join(NATIVE_DIR, "probe.c")
PROBE_EXECUTABLE = "pyrunc-probe"


LAUNCHER_TEMPLATE = os.path.join("bin", "pyrunc.in")
CODE_IMAGE_SOURCE = os.path.join("pyrunc", "codeimage.py")
# the installed launchers: name -> template
LAUNCHERS = {"pyrunc": LAUNCHER_TEMPLATE}
# containerd's shim commands, compiled (static) from one C front that hands `start` and
# `delete` to the resident shim process and execs FALLBACK_CODE when there is none
SHIM_SOURCE = os.path.join(NATIVE_DIR, "shim_front.c")
SHIM_COMMANDS = ("containerd-shim-pyrunc-v2", "containerd-shim-pyrunc-node-v2")
SHIM_FALLBACK_CODE = ("import sys; del sys.argv[0]; sys.path.extend({dirs}); "
                      "from pyrunc.shim.main import main; main()")


class build_launcher(build_scripts):
    """Install bin/pyrunc.in as `pyrunc` (and the shim's launchers, LAUNCHERS), naming the
    interpreter that builds it (the one pip installs for) so the launcher can start it
    with -I -S, and the directories that interpreter imports from, as `site` computes them
    in the installing environment (a venv's own, Debian's dist-packages...): under -S the
    launcher cannot ask `site`."""

    def run(self) -> None:
        import sys
        self.mkpath(self.build_dir)
        for name, template in LAUNCHERS.items():
            with open(template) as f:
                text = (f.read().replace("@PYTHON@", sys.executable)
                        .replace("@SITE_DIRS@", repr(_import_dirs())))
            target = os.path.join(self.build_dir, name)
            with open(target, "w") as f:
                f.write(text)
            os.chmod(target, 0o755)
        self._build_shim_commands()
        self._build_code_image()

    def _build_code_image(self) -> None:
        """pyrunc/code.image (pyrunc/codeimage.py): the package's modules compiled for
        where they are installed, which the launcher imports them from. Written here,
        after build_py and build_ext, into the build's copy of the package."""
        import importlib.util
        spec = importlib.util.spec_from_file_location("pyrunc.codeimage", CODE_IMAGE_SOURCE)
        codeimage = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(codeimage)
        package = os.path.join(self.get_finalized_command("build_py").build_lib, "pyrunc")
        image = codeimage.build(package, os.path.join(_import_dirs()[0], "pyrunc"),
                                importlib.util.MAGIC_NUMBER)
        with open(os.path.join(package, codeimage.IMAGE_NAME), "wb") as f:
            f.write(image)

    def _build_shim_commands(self) -> None:
        """Compile SHIM_SOURCE once per interpreter and import path (they go in its
        shim_config.h) and install it under each of SHIM_COMMANDS."""
        import json
        import shutil
        import sys
        import tempfile
        code = SHIM_FALLBACK_CODE.format(dirs=repr(_import_dirs()))
        with tempfile.TemporaryDirectory() as scratch:
            with open(os.path.join(scratch, "shim_config.h"), "w") as f:
                # JSON string literals are valid C string literals for this ASCII text
                f.write(f"#define PYTHON {json.dumps(sys.executable)}\n"
                        f"#define FALLBACK_CODE {json.dumps(code)}\n")
            built = os.path.join(scratch, "shim")
            command = [*shlex.split(os.environ.get("CC", "gcc")), *INIT_CFLAGS, "-I", scratch,
                       "-o", built, SHIM_SOURCE]
            self.announce("compiling " + " ".join(command), level=2)
            try:
                subprocess.run(command, check=True)
            except (OSError, subprocess.CalledProcessError) as error:
                raise SystemExit(f"error: building {SHIM_SOURCE} failed: {error}") from None
            for name in SHIM_COMMANDS:
                target = os.path.join(self.build_dir, name)
                shutil.copyfile(built, target)
                os.chmod(target, 0o755)


def _import_dirs() -> list[str]:
    """Where this interpreter installs packages (pip's purelib/platlib: pyrunc itself goes
    there, perhaps for the first time), then its other existing site directories
    (dependencies from the distribution's packages, a venv's system site)."""
    import site
    import sysconfig
    paths = sysconfig.get_paths()
    dirs = [paths["purelib"], paths["platlib"],
            *(d for d in site.getsitepackages() if os.path.isdir(d))]
    return list(dict.fromkeys(os.path.normpath(d) for d in dirs))


class build_ext_with_init(build_ext):
    """build_ext that also compiles pyrunc-init (skipped when it is newer than its sources)."""

    def run(self) -> None:
        super().run()
        self._build_init()
        self._build_init(PROBE_SOURCE, PROBE_EXECUTABLE)

    def _init_output_path(self, executable: str = INIT_EXECUTABLE) -> str:
        # Editable installs (PEP 660) set editable_mode; both it and --inplace build into
        # the source tree, where the package is imported from.
        if self.inplace or getattr(self, "editable_mode", False):
            return os.path.join(NATIVE_DIR, executable)
        return os.path.join(self.build_lib, NATIVE_DIR, executable)

    def _build_init(self, source: str = INIT_SOURCE, executable: str = INIT_EXECUTABLE) -> None:
        output = self._init_output_path(executable)
        sources = [source] + sorted(glob.glob(os.path.join(NATIVE_DIR, "*.h")))
        if not self.force and os.path.exists(output):
            newest_source = max(os.path.getmtime(path) for path in sources)
            if os.path.getmtime(output) >= newest_source:
                return
        os.makedirs(os.path.dirname(output), exist_ok=True)
        compiler = shlex.split(os.environ.get("CC", "gcc"))
        temporary = output + ".tmp"
        command = [*compiler, *INIT_CFLAGS, "-o", temporary, source]
        self.announce("compiling " + " ".join(command), level=2)
        try:
            subprocess.run(command, check=True)
        except (OSError, subprocess.CalledProcessError) as error:
            raise SystemExit(f"error: building {output} failed: {error}") from None
        os.chmod(temporary, 0o755)
        os.replace(temporary, output)

    def get_outputs(self) -> list[str]:
        # Listed so that `install --record` and wheel RECORD account for the executable.
        return [*super().get_outputs(), self._init_output_path(),
                self._init_output_path(PROBE_EXECUTABLE)]


setup(
    cmdclass={"build_ext": build_ext_with_init, "build_scripts": build_launcher},
    # a launcher instead of a console_scripts entry point: see bin/pyrunc.in
    scripts=sorted(set(LAUNCHERS.values())),
    cffi_modules=[
        os.path.join(NATIVE_DIR, "build.py") + ":ffibuilder",
        os.path.join(NATIVE_DIR, "seccomp_build.py") + ":ffibuilder",
    ],
)
