"""pyrunc's compiled modules in one file, read by the `pyrunc` launcher.

Engines start `pyrunc create|start|state|kill|delete` many times per second, and a
`create` imports about forty of pyrunc's modules. Through the normal import system each
costs a path search (listing site-packages and every subpackage directory), a stat, an
open and a read of its .pyc, and the checks of importlib's Python-level loader: about
40-60 µs per module before its code runs. CPython 3.11 avoids the same cost for its own
start-up modules by freezing them into the interpreter; pyrunc does the nearest thing a
package can: the build (setup.py) compiles every module of the package into
`pyrunc/code.image`, and the launcher (bin/pyrunc.in) puts a finder for it first on
`sys.meta_path`. An import of a pyrunc module is then a dict lookup, one pread and
`marshal.loads`.

The file, little-endian:

    MAGIC (4 bytes: importlib's MAGIC_NUMBER of the interpreter that built it)
    N     (4 bytes: the header's length)
    header: marshal of (this module's code, {module name: Entry tuple})
    the modules' code objects, marshalled, one after another

The launcher checks MAGIC (another interpreter gets the normal import system), executes
this module's code from the header and calls `install`. Entries name the source file the
code was compiled for (tracebacks and `__file__` point at it) and its size: a module
whose source is missing or has another size is imported the normal way, so an install
that moved or an edited source file is never shadowed by stale code. Like a pyc compiled
with `--invalidation-mode unchecked-hash` (PEP 552), the image is otherwise trusted:
every install writes it anew.

Only what the launcher needs is imported here: `marshal`, `os` and the import system's
own frozen modules are loaded by the interpreter before any of it runs.
"""
from __future__ import annotations

import marshal
import os

IMAGE_NAME = "code.image"
LOADER = "pyrunc.codeimage"  # this module: its code goes in the header
# index entry: (offset of the code after the header, its length, is a package, source path,
# source size)
OFFSET, LENGTH, IS_PACKAGE, SOURCE, SIZE = range(5)


class CodeImageFinder:
    """A meta path finder and loader for the modules of one image."""

    def __init__(self, path: str, index: dict, base: int):
        self._path = path
        self._index = index
        self._base = base

    def find_spec(self, name, path=None, target=None):
        entry = self._index.get(name)
        if entry is None:
            return None
        try:
            if os.stat(entry[SOURCE]).st_size != entry[SIZE]:
                return None
        except OSError:
            return None
        from _frozen_importlib import ModuleSpec
        spec = ModuleSpec(name, self, origin=entry[SOURCE], is_package=entry[IS_PACKAGE])
        spec.has_location = True  # __file__ is set from origin
        if entry[IS_PACKAGE]:
            spec.submodule_search_locations = [os.path.dirname(entry[SOURCE])]
        return spec

    def create_module(self, spec):
        return None  # the default module object

    def exec_module(self, module) -> None:
        entry = self._index[module.__spec__.name]
        # opened per module, not kept open: an fd of the runtime's own would sit among
        # the caller's (pyrunc.fds) and could reach a container
        fd = os.open(self._path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            data = os.pread(fd, entry[LENGTH], self._base + entry[OFFSET])
        finally:
            os.close(fd)
        exec(marshal.loads(data), module.__dict__)


def install(path: str, index: dict, base: int) -> None:
    """Import pyrunc's modules from the image at `path`, whose modules' code starts at
    byte `base` (the launcher's call, once it has read the header)."""
    import sys
    sys.meta_path.insert(0, CodeImageFinder(path, index, base))


def build(package_dir: str, installed_dir: str, magic: bytes) -> bytes:
    """The image of every module under `package_dir` (a build's copy of the package),
    compiled for the paths it will have under `installed_dir` (the package's directory
    once installed)."""
    entries, chunks, offset = {}, [], 0
    loader_code = None
    package = os.path.basename(os.path.normpath(package_dir))
    for directory, subdirs, files in os.walk(package_dir):
        subdirs[:] = sorted(d for d in subdirs if d != "__pycache__")
        for filename in sorted(f for f in files if f.endswith(".py")):
            path = os.path.join(directory, filename)
            relative = os.path.relpath(path, package_dir)
            installed = os.path.join(installed_dir, relative)
            parts = [package, *relative[:-3].split(os.sep)]
            is_package = parts[-1] == "__init__"
            name = ".".join(parts[:-1] if is_package else parts)
            with open(path, "rb") as f:
                source = f.read()
            code = compile(source, installed, "exec", dont_inherit=True)
            if name == LOADER:
                loader_code = code
            data = marshal.dumps(code)
            entries[name] = (offset, len(data), is_package, installed, len(source))
            chunks.append(data)
            offset += len(data)
    if loader_code is None:
        raise ValueError(f"{package_dir} has no {LOADER}")
    header = marshal.dumps((loader_code, entries))
    return b"".join([magic, len(header).to_bytes(4, "little"), header, *chunks])
