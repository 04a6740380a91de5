"""pyrunc's Python API: containers as objects, for tests and tools.

    from pyrunc.api import Config, Container

    config = Config.busybox(rootfs, args=["sh", "-c", "id -u"]).user(1000, 1000)
    with Container(config) as c:
        result = c.run()
    assert result.exit_code == 0 and result.stdout == "1000\\n"

Every container lives in a private state root (a fresh directory under /tmp) unless a
`root` is given, and `close()` (the context manager's exit) force-deletes it and removes
the root and any bundle directory written for a Config, whatever happened in between.

How containers are started: through the `pyrunc` command line, in a child process whose
stdin/stdout/stderr are files. The runtime hands its own fds 0-2 to the container's init
(as runc does), so this is how output gets captured without the calling process giving
up its own stdio; it also keeps `run`'s foreground machinery (subreaper, forwarded
signals, waitpid(-1)) out of the caller, which may be pytest. Files rather than pipes: a
container (or something it left running) that keeps the fds open can never block a
read. Queries and signals (`state`, `kill`, `delete`) call pyrunc.operations in-process.
"""
from __future__ import annotations

import copy
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence, Union

from pyrunc.errors import PyruncError

PROBE_BINARY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "_native", "pyrunc-probe")
# Where Config.with_probe() bind-mounts the probe: /dev is the container's own tmpfs, so
# the mount point never has to be created in the (shared, maybe read-only) rootfs.
PROBE_IN_CONTAINER = "/dev/pyrunc-probe"

_counter = itertools.count()


class HarnessError(PyruncError):
    """A harness operation failed (the message is the runtime's error line when it has one)."""


class HarnessTimeout(HarnessError):
    """A container did not finish within the timeout (it was killed and deleted)."""


class Result:
    """What a finished process left: exit code (128+N when killed by signal N), output."""
    __slots__ = ("exit_code", "stdout", "stderr")

    def __init__(self, exit_code: int | None, stdout: str, stderr: str):
        self.exit_code = exit_code
        self.stdout = stdout
        self.stderr = stderr

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def check(self) -> "Result":
        """Raise HarnessError unless the exit code is 0; returns self for chaining."""
        if self.exit_code != 0:
            raise HarnessError(f"exit status {self.exit_code}: {self.stderr.strip()[-500:]}")
        return self

    def __repr__(self) -> str:
        return f"Result(exit_code={self.exit_code!r}, stdout={self.stdout!r}, stderr={self.stderr!r})"


def _load_json(path: str) -> Any:
    """The JSON document in `path`; HarnessError naming the path when it cannot be read or parsed."""
    try:
        with open(path) as f:
            return json.load(f)
    except OSError as e:
        raise HarnessError(f"open {path}: {os.strerror(e.errno).lower()}") from None
    except ValueError as e:
        raise HarnessError(f"{path}: invalid JSON: {e}") from None


# ---------------------------------------------------------------------------- Config
class Config:
    """An OCI config.json built in Python. Every setter returns the Config (chainable);
    `data` is the raw dict for anything the helpers do not cover."""

    def __init__(self, data: Mapping[str, Any], bundle_dir: str | os.PathLike | None = None):
        self.data: dict = copy.deepcopy(dict(data))
        self.bundle_dir = os.fspath(bundle_dir) if bundle_dir is not None else None

    # ---- constructors
    @classmethod
    def busybox(cls, rootfs: str | os.PathLike, args: Sequence[str] = ("true",), *,
                readonly: bool = True) -> "Config":
        """runc's default spec with `rootfs` (made absolute), no terminal, `args`."""
        from pyrunc.spec import default_spec
        data = default_spec()
        data["root"] = {"path": os.path.abspath(os.fspath(rootfs)), "readonly": readonly}
        data["process"]["terminal"] = False
        data["process"]["args"] = list(args)
        data["hostname"] = "pyrunc"
        return cls(data)

    @classmethod
    def from_bundle(cls, bundle: str | os.PathLike) -> "Config":
        """The bundle's config.json; a relative root.path is made absolute against it."""
        bundle = os.path.abspath(os.fspath(bundle))
        path = os.path.join(bundle, "config.json")
        data = _load_json(path)
        root = data.get("root") or {}
        if root.get("path") and not os.path.isabs(root["path"]):
            root["path"] = os.path.join(bundle, root["path"])
        return cls(data, bundle_dir=bundle)

    def copy(self) -> "Config":
        return Config(self.data, self.bundle_dir)

    # ---- process
    @property
    def process(self) -> dict:
        return self.data.setdefault("process", {})

    @property
    def linux(self) -> dict:
        return self.data.setdefault("linux", {})

    def args(self, *args: str) -> "Config":
        self.process["args"] = list(args[0] if len(args) == 1 and not isinstance(args[0], str) else args)
        return self

    def env(self, **variables: str) -> "Config":
        """Set (or replace) environment variables."""
        env = [e for e in self.process.get("env") or [] if e.partition("=")[0] not in variables]
        self.process["env"] = env + [f"{k}={v}" for k, v in variables.items()]
        return self

    def cwd(self, path: str) -> "Config":
        self.process["cwd"] = path
        return self

    def user(self, uid: int, gid: int = 0, additional_gids: Iterable[int] = ()) -> "Config":
        user: dict = {"uid": uid, "gid": gid}
        if additional_gids:
            user["additionalGids"] = list(additional_gids)
        self.process["user"] = user
        return self

    def caps(self, *names: str, ambient: bool = True) -> "Config":
        """Exactly these capabilities in every set (ambient too, so a non-root user keeps them)."""
        names_list = [n if n.startswith("CAP_") else f"CAP_{n.upper()}" for n in names]
        sets = {kind: list(names_list) for kind in ("bounding", "effective", "permitted", "inheritable")}
        if ambient:
            sets["ambient"] = list(names_list)
        self.process["capabilities"] = sets
        return self

    def no_new_privileges(self, value: bool = True) -> "Config":
        self.process["noNewPrivileges"] = value
        return self

    def hostname(self, name: str) -> "Config":
        self.data["hostname"] = name
        return self

    # ---- linux
    def seccomp(self, profile: Mapping[str, Any] | str | os.PathLike | None) -> "Config":
        """Use `profile` (a linux.seccomp dict, or a JSON file holding one or a whole
        config.json) as linux.seccomp; None removes seccomp."""
        if profile is None:
            self.linux.pop("seccomp", None)
        else:
            self.linux["seccomp"] = load_profile(profile)
        return self

    def mount(self, destination: str, source: str, type: str = "bind",
              options: Iterable[str] = ("rbind", "ro")) -> "Config":
        self.data.setdefault("mounts", []).append(
            {"destination": destination, "type": type, "source": source, "options": list(options)})
        return self

    def tmpfs(self, destination: str, options: Iterable[str] = ("nosuid", "nodev", "mode=1777")) -> "Config":
        return self.mount(destination, "tmpfs", "tmpfs", options)

    def readonly_paths(self, *paths: str) -> "Config":
        self.linux["readonlyPaths"] = list(paths)
        return self

    def masked_paths(self, *paths: str) -> "Config":
        self.linux["maskedPaths"] = list(paths)
        return self

    def namespaces(self, *kinds: str) -> "Config":
        self.linux["namespaces"] = [{"type": k} for k in kinds]
        return self

    def with_probe(self) -> "Config":
        """Bind-mount pyrunc-probe at PROBE_IN_CONTAINER (read-only, executable)."""
        if not os.path.exists(PROBE_BINARY):
            raise HarnessError(f"{PROBE_BINARY}: not built (reinstall pyrunc)")
        mounts = self.data.setdefault("mounts", [])
        if not any(m.get("destination") == PROBE_IN_CONTAINER for m in mounts):
            mounts.append({"destination": PROBE_IN_CONTAINER, "type": "bind", "source": PROBE_BINARY,
                           "options": ["bind", "ro", "nosuid", "nodev"]})
        return self

    # ---- output
    def to_dict(self) -> dict:
        return copy.deepcopy(self.data)

    def write_bundle(self, directory: str | os.PathLike) -> Path:
        """Write config.json into `directory` (created) and return it."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "config.json").write_text(json.dumps(self.data, indent=2))
        return directory


def load_profile(profile: Mapping[str, Any] | str | os.PathLike) -> dict:
    """A linux.seccomp object from a dict, or from a JSON file holding either the seccomp
    object itself or a whole config.json."""
    if isinstance(profile, Mapping):
        return copy.deepcopy(dict(profile))
    path = os.fspath(profile)
    data = _load_json(path)
    if not isinstance(data, dict):
        raise HarnessError(f"{path}: not a seccomp profile (expected a JSON object)")
    if "linux" in data or "ociVersion" in data:
        seccomp = (data.get("linux") or {}).get("seccomp")
        if not isinstance(seccomp, dict):
            raise HarnessError(f"{path}: linux.seccomp: missing")
        return seccomp
    return data


# ---------------------------------------------------------------------------- running the CLI
def pyrunc_command() -> list[str]:
    """How to run the pyrunc command line that belongs to this package: $PYRUNC_BIN, or
    this interpreter with `-m pyrunc` and this package first on sys.path."""
    override = os.environ.get("PYRUNC_BIN")
    if override:
        return [override]
    return [sys.executable, "-m", "pyrunc"]


def _cli_env() -> dict:
    env = dict(os.environ)
    package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = package_parent + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def runtime_error_of(stderr: str) -> str:
    """The msg of the runtime's `level=error` line in `stderr`, or ""."""
    for line in reversed(stderr.splitlines()):
        if "level=error" in line and 'msg="' in line:
            quoted = line.split("msg=", 1)[1]  # msg is the line's last field
            try:
                return json.loads(quoted)  # Go's strconv.Quote: \" and \\ as in JSON
            except ValueError:
                return quoted.strip('"').replace('\\"', '"')
    return ""


class _Stdio:
    """Files for a child's fds 0-2 (stdin holds `input`)."""

    def __init__(self, input: str | bytes | None):
        self.stdin = tempfile.TemporaryFile()
        if input is not None:
            self.stdin.write(input.encode() if isinstance(input, str) else input)
            self.stdin.seek(0)
        self.stdout = tempfile.TemporaryFile()
        self.stderr = tempfile.TemporaryFile()

    def read(self) -> tuple[str, str]:
        out = []
        for f in (self.stdout, self.stderr):
            f.seek(0)
            out.append(f.read().decode(errors="replace"))
        return out[0], out[1]

    def close(self) -> None:
        for f in (self.stdin, self.stdout, self.stderr):
            f.close()


# ---------------------------------------------------------------------------- Container
class Container:
    """One container: from a Config, a config dict, or a bundle directory.

    Use as a context manager (or call close()): the container is force-deleted and the
    private root and written bundle removed on exit, also when the body raises.
    """

    def __init__(self, source: Union[Config, Mapping[str, Any], str, os.PathLike],
                 id: str | None = None, *, root: str | os.PathLike | None = None):
        self.id = id or f"pyrunc-api-{os.getpid()}-{next(_counter)}-{uuid.uuid4().hex[:6]}"
        self._own_root = root is None
        # short: sockets in the state dir must fit in sun_path
        self.root = tempfile.mkdtemp(prefix="pyrunc-api-") if root is None else os.path.abspath(os.fspath(root))
        self._written_bundle: str | None = None
        if isinstance(source, (str, os.PathLike)):
            self.bundle = os.path.abspath(os.fspath(source))
        else:
            data = source.data if isinstance(source, Config) else dict(source)
            self._written_bundle = tempfile.mkdtemp(prefix="pyrunc-bundle-")
            try:
                Config(data).write_bundle(self._written_bundle)
            except BaseException:
                shutil.rmtree(self._written_bundle, ignore_errors=True)
                if self._own_root:
                    shutil.rmtree(self.root, ignore_errors=True)
                raise
            self.bundle = self._written_bundle
        self._stdio: _Stdio | None = None
        self._closed = False

    # ---- context manager
    def __enter__(self) -> "Container":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Force-delete the container and remove what this object created. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self.delete(force=True)
        except PyruncError:
            pass
        finally:
            if self._stdio is not None:
                self._stdio.close()
                self._stdio = None
            if self._written_bundle:
                shutil.rmtree(self._written_bundle, ignore_errors=True)
            if self._own_root:
                _remove_root(self.root)

    # ---- the CLI
    def _cli(self, *args: str, stdio: _Stdio, timeout: float | None) -> int:
        command = [*pyrunc_command(), "--root", self.root, *args]
        try:
            completed = subprocess.run(command, stdin=stdio.stdin, stdout=stdio.stdout, stderr=stdio.stderr,
                                       timeout=timeout, env=_cli_env())
        except subprocess.TimeoutExpired:
            self.delete(force=True)
            raise HarnessTimeout(f"container {self.id}: {' '.join(args[:1])} did not finish within {timeout} s") from None
        return completed.returncode

    def _cli_checked(self, *args: str, timeout: float | None = 60) -> None:
        stdio = _Stdio(None)
        try:
            code = self._cli(*args, stdio=stdio, timeout=timeout)
            if code != 0:
                _, err = stdio.read()
                raise HarnessError(runtime_error_of(err) or f"pyrunc {args[0]}: exit status {code}: {err.strip()}")
        finally:
            stdio.close()

    # ---- lifecycle
    def run(self, input: str | bytes | None = None, timeout: float | None = 60) -> Result:
        """Create, start and wait (`pyrunc run`); the container is deleted afterwards.
        Raise HarnessError when the runtime failed before the process ran."""
        stdio = _Stdio(input)
        try:
            code = self._cli("run", "-b", self.bundle, self.id, stdio=stdio, timeout=timeout)
            out, err = stdio.read()
        finally:
            stdio.close()
        message = runtime_error_of(err) if code != 0 else ""
        if message:
            raise HarnessError(message)
        return Result(code, out, err)

    def create(self, input: str | bytes | None = None, timeout: float | None = 60) -> "Container":
        """`pyrunc create`: the init waits for start(); its stdio are files read by output()."""
        if self._stdio is not None:
            raise HarnessError(f"container {self.id}: already created")
        self._stdio = _Stdio(input)
        code = self._cli("create", "-b", self.bundle, self.id, stdio=self._stdio, timeout=timeout)
        if code != 0:
            _, err = self._stdio.read()
            self._stdio.close()
            self._stdio = None
            raise HarnessError(runtime_error_of(err) or f"pyrunc create: exit status {code}")
        return self

    def start(self, timeout: float | None = 60) -> "Container":
        self._cli_checked("start", self.id, timeout=timeout)
        return self

    def output(self) -> tuple[str, str]:
        """What the created container's process wrote so far (stdout, stderr)."""
        if self._stdio is None:
            return "", ""
        return self._stdio.read()

    def wait(self, timeout: float = 60) -> Result:
        """Wait until the container stopped; the exit code is None (only the process that
        started it may reap it: use run() when the exit code matters)."""
        deadline = time.monotonic() + timeout
        while self.status() not in ("stopped", "deleted"):
            if time.monotonic() > deadline:
                raise HarnessTimeout(f"container {self.id}: still {self.status()} after {timeout} s")
            time.sleep(0.01)
        out, err = self.output()
        return Result(None, out, err)

    def exec(self, *args: str, input: str | bytes | None = None, timeout: float | None = 60,
             env: Mapping[str, str] | None = None, user: str | None = None, cwd: str | None = None) -> Result:
        """`pyrunc exec` in the running container; the exit code is the process's."""
        if len(args) == 1 and not isinstance(args[0], str):
            args = tuple(args[0])
        options: list[str] = []
        for key, value in (env or {}).items():
            options += ["--env", f"{key}={value}"]
        if user:
            options += ["--user", user]
        if cwd:
            options += ["--cwd", cwd]
        stdio = _Stdio(input)
        try:
            code = self._cli("exec", *options, self.id, *args, stdio=stdio, timeout=timeout)
            out, err = stdio.read()
        finally:
            stdio.close()
        return Result(code, out, err)

    # ---- queries and signals (in-process)
    def _globals(self):
        from pyrunc.operations import Globals
        return Globals(root=self.root)

    def state(self) -> dict:
        """The OCI state (`pyrunc state`); raise ContainerNotExist when it is gone."""
        from pyrunc import operations
        return operations.state(self._globals(), self.id)

    def status(self) -> str:
        """created, running, paused, stopped; "deleted" when it no longer exists."""
        from pyrunc.errors import ContainerNotExist
        try:
            return self.state()["status"]
        except ContainerNotExist:
            return "deleted"

    def kill(self, signal: int | str = "SIGTERM", all: bool = False) -> None:
        from pyrunc import operations
        if isinstance(signal, str):
            from pyrunc.signals import parse_signal
            signal = parse_signal(signal)
        operations.kill(self._globals(), self.id, int(signal), all_processes=all)

    def delete(self, force: bool = False) -> None:
        from pyrunc import operations
        operations.delete(self._globals(), self.id, force=force)


def _remove_root(root: str) -> None:
    """Remove a private state root; containers still in it are force-deleted first."""
    from pyrunc import operations
    g = operations.Globals(root=root)
    if os.path.isdir(root):
        for entry in os.listdir(root):
            if os.path.isdir(os.path.join(root, entry)) and not entry.startswith("."):
                try:
                    operations.delete(g, entry, force=True)
                except PyruncError:
                    pass
    shutil.rmtree(root, ignore_errors=True)


def run(config: Union[Config, Mapping[str, Any], str, os.PathLike], input: str | bytes | None = None,
        timeout: float | None = 60) -> Result:
    """Run a container to completion and return its Result (nothing is left behind)."""
    with Container(config) as container:
        return container.run(input=input, timeout=timeout)


__all__ = ["Config", "Container", "Result", "HarnessError", "HarnessTimeout", "load_profile", "run",
           "PROBE_BINARY", "PROBE_IN_CONTAINER"]
