"""Container state on disk: `<root>/<id>/state.json`, written atomically, guarded by a
per-container flock, with the status derived from the live process.

A container's init is identified by (pid, start time), never by pid alone, so a reused
pid is never mistaken for the container.
"""
from __future__ import annotations

import fcntl
import os
import time

from pyrunc import fastjson
from pyrunc.errors import ContainerExists, ContainerNotExist, PyruncError


class Busy(PyruncError):
    """Another command holds the container's lock for longer than we wait."""

STATE_FILE = "state.json"
INIT_COMM = "pyrunc-init"  # comm of the init until it execs the user's program
EXEC_FIFO = "exec.fifo"  # in the state dir: the init waits for `start` on it (runc's name)
CACHE_DIR = ".pyrunc-cache"
# how long a command waits for another one on the same container (create holds the lock
# through its hooks); then it fails with one line instead of hanging
LOCK_TIMEOUT = 30.0  # <root>/.pyrunc-cache: compiled seccomp filters; not a container

_ID_EXTRA = frozenset("_+-.")


def validate_id(container_id: str) -> None:
    # runc: "invalid id format"; also keeps ids from escaping the state root
    # runc's ^[\w+-\.]+$, without importing `re` on every state/kill/delete
    if (not container_id or container_id in (".", "..", CACHE_DIR)
            or not all(ch.isascii() and (ch.isalnum() or ch in _ID_EXTRA) for ch in container_id)):
        raise PyruncError(f"invalid container id format: {container_id!r}")


def proc_stat(pid: int) -> tuple[str, str, int] | None:
    """(comm, state letter, start time in clock ticks) of a live pid, or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode(errors="replace")
    except OSError:
        return None
    lpar, rpar = data.find("("), data.rfind(")")
    fields = data[rpar + 2:].split()
    return data[lpar + 1:rpar], fields[0], int(fields[19])


class ContainerState:
    """state.json as typed fields.  The JSON object itself is kept (`json`) and written
    back as it is, so the on-disk format stays what every pyrunc wrote and keys this
    version does not know survive a save."""
    __slots__ = ("json",)

    def __init__(self, json: dict | None = None):
        self.json = {} if json is None else json


# (attribute, state.json key, value when absent)
_STATE_FIELDS = (
    ("oci_version", "ociVersion", ""),
    ("id", "id", ""),
    ("pid", "pid", 0),
    ("pid_start", "pid_start", None),    # the init's start time: (pid, start) names it
    ("bundle", "bundle", ""),
    ("rootfs", "rootfs", ""),
    ("created", "created", ""),
    ("annotations", "annotations", None),
    ("creator", "creator", None),        # [pid, start time] of the `create` still working
    ("no_new_keyring", "no_new_keyring", False),
    ("args0", "args0", ""),
    ("exec_defaults", "exec", None),     # {"process", "seccomp", "personality", "memory_policy"} for exec
    ("cgroup", "cgroup", None),          # cgroups.Manager.to_state()
    ("resources", "resources", None),    # the linux.resources applied (create, update)
    ("hooks", "hooks", None),            # the hooks later commands run
    ("intel_rdt", "intel_rdt", None),    # pyrunc.intelrdt.plan(): the resctrl group(s) to remove
    ("start_fd", "start_fd", -1),        # an earlier pyrunc's start socket: its peer's fd in the init
    ("corrupt", "corrupt", False),       # state.json did not parse
)


def _state_field(key: str, absent):
    return property(lambda self: self.json.get(key, absent),
                    lambda self, value: self.json.__setitem__(key, value),
                    lambda self: self.json.pop(key, None))


for _attr, _key, _absent in _STATE_FIELDS:
    setattr(ContainerState, _attr, _state_field(_key, _absent))


class Container:
    """One container's state directory, locked for the lifetime of the object's use."""

    def __init__(self, root: str, container_id: str):
        validate_id(container_id)
        self.root = root
        self.id = container_id
        self.dir = os.path.join(root, container_id)
        self.state = ContainerState()
        self._lock_fd = -1
        self._cgroup_manager = None

    # -- locking -------------------------------------------------------------------
    def lock(self, timeout: float | None = LOCK_TIMEOUT) -> None:
        """flock the state directory (waiting at most `timeout` seconds, None: forever);
        re-checks that it was not deleted meanwhile."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except FileNotFoundError:
                raise ContainerNotExist(self.id) from None
            if not self._flock(fd, deadline):
                os.close(fd)
                raise Busy(f"container {self.id} is busy: another pyrunc command holds it "
                           f"(waited {timeout:g}s)")
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.dir))
            except FileNotFoundError:
                same = False
            if same:
                self._lock_fd = fd
                return
            os.close(fd)  # deleted (and maybe re-created) while we waited: start over
            if not os.path.isdir(self.dir):
                raise ContainerNotExist(self.id)

    @staticmethod
    def _flock(fd: int, deadline: float | None) -> bool:
        if deadline is None:
            fcntl.flock(fd, fcntl.LOCK_EX)
            return True
        delay = 0.001
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(delay)
                delay = min(delay * 2, 0.05)

    def unlock(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> "Container":
        return self

    def __exit__(self, *exc) -> None:
        self.unlock()

    # -- lifecycle of the directory ------------------------------------------------
    @classmethod
    def reserve(cls, root: str, container_id: str) -> "Container":
        """Create the state directory exclusively and lock it (create's first step)."""
        c = cls(root, container_id)
        os.makedirs(root, mode=0o711, exist_ok=True)
        try:
            os.mkdir(c.dir, 0o711)
        except FileExistsError:
            raise ContainerExists(container_id) from None
        c.lock(None)
        return c

    @classmethod
    def load(cls, root: str, container_id: str, lock: bool = True,
             timeout: float | None = LOCK_TIMEOUT) -> "Container":
        c = cls(root, container_id)
        if lock:
            c.lock(timeout)
        try:
            with open(os.path.join(c.dir, STATE_FILE)) as f:
                c.state = ContainerState(fastjson.loads(f.read()))
        except FileNotFoundError:
            if not os.path.isdir(c.dir):
                c.unlock()
                raise ContainerNotExist(container_id) from None
            pass  # reserved but create died before writing: status "stopped"
        except ValueError:
            c.state.corrupt = True
        return c

    def save(self) -> None:
        tmp = os.path.join(self.dir, f".{STATE_FILE}.tmp")
        with open(tmp, "w") as f:
            f.write(fastjson.dumps(self.state.json))
        os.replace(tmp, os.path.join(self.dir, STATE_FILE))

    def remove(self) -> None:
        """Remove the state directory (its contents are ours: state, socket, overlay)."""
        _remove_tree(self.dir)
        self.unlock()

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    # -- status ----------------------------------------------------------------------
    @property
    def pid(self) -> int:
        return int(self.state.pid)

    def cgroup_manager(self):
        """The cgroups.Manager of the container's cgroups, None when it has none."""
        if self._cgroup_manager is None and self.state.cgroup:
            from pyrunc.cgroups import Manager
            self._cgroup_manager = Manager.from_state(self.state.cgroup)
        return self._cgroup_manager

    def init_alive(self) -> bool:
        pid = self.pid
        if pid <= 0:
            return False
        st = proc_stat(pid)
        return st is not None and st[1] not in ("Z", "X") and st[2] == self.state.pid_start

    def status(self) -> str:
        """creating | created | running | paused | stopped, from the live process."""
        if not self.state.pid:
            creator = self.state.creator
            if creator:
                st = proc_stat(creator[0])
                if st and st[2] == creator[1]:
                    return "creating"
            return "stopped"
        st = proc_stat(self.pid)
        if st is None or st[1] in ("Z", "X") or st[2] != self.state.pid_start:
            return "stopped"
        if st[0] == INIT_COMM:
            return "created"
        if self.state.cgroup:
            try:
                if self.cgroup_manager().frozen():
                    return "paused"
            except OSError:
                pass
        return "running"

    def oci_state(self) -> dict:
        """runc's `state` JSON object."""
        d = self.state
        status = self.status()
        out = {
            "ociVersion": d.oci_version,
            "id": self.id,
            "pid": self.pid if status != "stopped" else 0,
            "status": status,
            "bundle": d.bundle,
            "rootfs": d.rootfs,
            "created": d.created,
            "owner": "",
        }
        if d.annotations:
            out["annotations"] = d.annotations
        return out


def now_rfc3339() -> str:
    """UTC time with nanoseconds, as runc's state JSON writes it."""
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000)) + f".{ns % 1_000_000_000:09d}Z"


def list_ids(root: str) -> list[str]:
    try:
        return sorted(e for e in os.listdir(root) if e != CACHE_DIR and os.path.isdir(os.path.join(root, e)))
    except FileNotFoundError:
        return []


def cache_dir(root: str, kind: str) -> str:
    return os.path.join(root, CACHE_DIR, kind)


def _remove_tree(path: str) -> None:
    """shutil.rmtree without importing shutil (~3 ms on every delete); errors ignored.
    Symlinks are removed, never followed."""
    try:
        entries = list(os.scandir(path))
    except OSError:
        entries = []
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            _remove_tree(entry.path)
        else:
            try:
                os.unlink(entry.path)
            except OSError:
                pass
    try:
        os.rmdir(path)
    except OSError:
        pass

