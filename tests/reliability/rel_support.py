"""Shared helpers of the reliability suite (imported by its tests as `rel_support`): host measurements (processes, zombies, mounts,
cgroups, fds, state dirs, overlay dirs, sockets), a console-socket receiver, a bounded
runner for the installed pyrunc with extra environment (fault injection), and counts that
PYRUNC_FULL=1 raises to the full soak/parallel sizes.
"""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

FULL = os.environ.get("PYRUNC_FULL", "") not in ("", "0")


def count(ci: int, full: int) -> int:
    """The CI count, or the full one under PYRUNC_FULL=1 (PYRUNC_SOAK_COUNT overrides)."""
    return full if FULL else ci


# ------------------------------------------------------------------- measurements
def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def own_cgroup_dirs() -> list[str]:
    """This process's cgroup directory in every mounted hierarchy (where containers
    without cgroupsPath get theirs)."""
    own = {}
    for line in _read("/proc/self/cgroup").splitlines():
        _hid, controllers, path = line.split(":", 2)
        own[controllers] = path
    dirs = []
    for line in _read("/proc/self/mountinfo").splitlines():
        head, _, tail = line.partition(" - ")
        fields, after = head.split(), tail.split()
        if after[0] not in ("cgroup", "cgroup2"):
            continue
        root, mountpoint = fields[3], fields[4]
        if after[0] == "cgroup2":
            path = own.get("")
        else:
            opts = set(after[2].split(","))
            path = next((p for c, p in own.items() if c and set(c.split(",")) <= opts), None)
        if path is None or not (path + "/").startswith(root.rstrip("/") + "/"):
            continue
        dirs.append(os.path.join(mountpoint, path[len(root.rstrip("/")):].strip("/")))
    return sorted(set(dirs))


def cgroups_named(prefix: str) -> list[str]:
    """Cgroup directories (any depth below our own cgroups) whose name starts with prefix."""
    found = []
    for base in own_cgroup_dirs():
        for top, subdirs, _files in os.walk(base):
            for name in subdirs:
                if name.startswith(prefix):
                    found.append(os.path.join(top, name))
            # our containers are direct children; deeper walks only cost time
            subdirs[:] = [d for d in subdirs if d.startswith(prefix)]
    return sorted(found)


def processes_matching(prefix: str, markers: list[str]) -> list[tuple[int, str, str]]:
    """(pid, state letter, comm) of every process in a cgroup whose last components start
    with `prefix`, or whose command line mentions a marker (state root, bundle dir)."""
    marks = [m.encode() for m in markers if m]
    found = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        pid = int(entry)
        try:
            stat = _read(f"/proc/{pid}/stat")
            cg = _read(f"/proc/{pid}/cgroup")
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        comm = stat[stat.find("(") + 1:stat.rfind(")")]
        state = stat[stat.rfind(")") + 2]
        ours = any(m in cmdline for m in marks)
        if not ours:
            for line in cg.splitlines():
                path = line.split(":", 2)[2]
                if any(part.startswith(prefix) for part in path.split("/")):
                    ours = True
                    break
        if ours:
            found.append((pid, state, comm))
    return found


def zombie_children() -> list[int]:
    """Zombies whose parent is this process (ours to reap: a leak if they stay)."""
    me = str(os.getpid())
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = _read(f"/proc/{entry}/stat")
        except OSError:
            continue
        rest = stat[stat.rfind(")") + 2:].split()
        if rest[0] == "Z" and rest[1] == me:
            out.append(int(entry))
    return out


def mount_lines(pid: str = "self") -> list[str]:
    """Mount points (field 5) and sources of `pid`'s mount namespace, sorted."""
    out = []
    for line in _read(f"/proc/{pid}/mountinfo").splitlines():
        head, _, tail = line.partition(" - ")
        fields = head.split()
        out.append(f"{fields[4]} {tail}")
    return sorted(out)


def unix_sockets(markers: list[str]) -> list[str]:
    """Bound unix socket paths (/proc/net/unix) that mention a marker."""
    out = []
    for line in _read("/proc/net/unix").splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 8 and any(m and m in parts[7] for m in markers):
            out.append(parts[7])
    return out


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


class Snapshot:
    """Everything a container lifecycle could leave behind, as numbers and lists."""

    def __init__(self, prefix: str, state_root: Path, markers: list[str]):
        self.prefix = prefix
        self.state_root = Path(state_root)
        procs = processes_matching(prefix, [str(state_root), *markers])
        self.processes = [p for p in procs if p[1] != "Z"]
        zombies = {p[0]: p for p in procs if p[1] == "Z"}
        for z in zombie_children():
            zombies.setdefault(z, (z, "Z", "child of the test process"))
        self.zombies = sorted(zombies.values())
        self.mounts = mount_lines("self")
        self.host_mounts = mount_lines("1") if os.access("/proc/1/mountinfo", os.R_OK) else []
        self.cgroups = cgroups_named(prefix)
        self.fds = fd_count()
        self.state_dirs = sorted(e.name for e in self.state_root.iterdir()
                                 if e.is_dir() and e.name != ".pyrunc-cache") if self.state_root.is_dir() else []
        self.overlay_dirs = sorted(str(p) for p in self.state_root.glob("*/overlay")) if self.state_root.is_dir() else []
        # bound sockets under the state root or a bundle dir; the console
        # receiver's own socket is the test's, not pyrunc's
        self.sockets = unix_sockets([str(state_root), *[m for m in markers if not m.endswith(".sock")]])

    def numbers(self) -> dict[str, int]:
        return {"processes": len(self.processes), "zombies": len(self.zombies),
                "mounts": len(self.mounts), "host_mounts": len(self.host_mounts),
                "cgroups": len(self.cgroups), "fds": self.fds, "state_dirs": len(self.state_dirs),
                "overlay_dirs": len(self.overlay_dirs), "sockets": len(self.sockets)}


def settle(prefix: str, state_root: Path, markers: list[str], timeout: float = 10.0) -> Snapshot:
    """A snapshot once killed processes are gone (bounded: returns what is left)."""
    deadline = time.monotonic() + timeout
    while True:
        snap = Snapshot(prefix, state_root, markers)
        if (not snap.processes and not snap.zombies and not snap.cgroups) or time.monotonic() > deadline:
            return snap
        time.sleep(0.05)


def assert_same(before: Snapshot, after: Snapshot, label: str) -> None:
    b, a = before.numbers(), after.numbers()
    print(f"\n{label}: before {b}\n{label}: after  {a}")
    problems = []
    if after.processes:
        problems.append(f"processes left: {after.processes}")
    new_zombies = [z for z in after.zombies if z not in before.zombies]
    if new_zombies:
        problems.append(f"zombies left: {new_zombies}")
    if after.mounts != before.mounts:
        problems.append(f"mounts changed: +{sorted(set(after.mounts) - set(before.mounts))} "
                        f"-{sorted(set(before.mounts) - set(after.mounts))}")
    added_host = sorted(set(after.host_mounts) - set(before.host_mounts))
    ours_on_host = [m for m in added_host if before.prefix in m or str(before.state_root) in m]
    if ours_on_host:
        problems.append(f"host mounts added: {ours_on_host}")
    if after.cgroups:
        problems.append(f"cgroups left: {after.cgroups}")
    if after.fds != before.fds:
        problems.append(f"fds in the test process: {before.fds} -> {after.fds}")
    if after.state_dirs:
        problems.append(f"state dirs left: {after.state_dirs}")
    if after.overlay_dirs:
        problems.append(f"overlay dirs left: {after.overlay_dirs}")
    if after.sockets:
        problems.append(f"sockets left: {after.sockets}")
    assert not problems, f"{label}: " + "; ".join(problems)


# ------------------------------------------------------------------- console socket
class ConsoleReceiver:
    """A console socket (runc's --console-socket protocol): accepts connections, takes the
    pty master each one sends (SCM_RIGHTS) and keeps it until close()."""

    def __init__(self, directory: str):
        self.path = os.path.join(directory, f"console-{os.getpid()}-{id(self):x}.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self.sock.bind(self.path)
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.masters: list[int] = []
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            with conn:
                conn.settimeout(10)
                try:
                    _msg, fds, _flags, _addr = socket.recv_fds(conn, 4096, 4)
                except OSError:
                    continue
                for fd in fds:
                    os.set_inheritable(fd, False)
                self.masters.extend(fds)

    def wait_master(self, n: int, timeout: float = 10) -> int:
        deadline = time.monotonic() + timeout
        while len(self.masters) < n:
            assert time.monotonic() < deadline, "no pty master received on the console socket"
            time.sleep(0.005)
        return self.masters[n - 1]

    def close_masters(self) -> None:
        while self.masters:
            os.close(self.masters.pop())

    def close(self) -> None:
        self._stop = True
        self._thread.join(timeout=5)
        self.close_masters()
        self.sock.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


# ------------------------------------------------------------------- runner
def run_pyrunc(binary: str, root: Path, *args, env_extra: dict | None = None, timeout: float = 30,
               input: bytes | None = None) -> subprocess.CompletedProcess:
    """The installed pyrunc with `--root root`; stdout/stderr through files (a container
    holding its stdio open cannot hang the call); every call bounded by `timeout`."""
    env = dict(os.environ)
    env.pop("PYRUNC_FAULT", None)
    if env_extra:
        env.update(env_extra)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.run([binary, "--root", str(root), *map(str, args)], stdout=out, stderr=err,
                              stdin=subprocess.DEVNULL if input is None else None, input=input,
                              env=env, timeout=timeout)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(proc.args, proc.returncode,
                                           out.read().decode(errors="replace"),
                                           err.read().decode(errors="replace"))


# ------------------------------------------------------------------- results
# Errors a racing call may legitimately report (the container is in another state, or
# another call removed it first).
KNOWN_ERRORS = [
    r"container does not exist",
    r"container with given ID already exists",
    r"cannot start an already (created|running|paused|creating) container",
    r"cannot start a container that has stopped",
    r"cannot start container: .+",
    r"container not running",
    r"no such process",
    r"container \S+ is (paused|creating|created), not running",
    r"cannot delete container \S+ that is not stopped: \w+",
    r"container not paused",
]
_LINE = re.compile(r'^time="[^"]+" level=error msg="(.*)"$')


EXEC_FAILED, EXEC_PREFIX = 255, "exec failed: "


def assert_documented(result, what: str) -> str:
    """The message of a failed call ("" on success), asserting its shape."""
    assert "Traceback" not in result.stderr, f"{what}: traceback\n{result.stderr}"
    if result.returncode == 0:
        return ""
    assert result.returncode in (1, EXEC_FAILED), f"{what}: exit {result.returncode}: {result.stderr}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"{what}: expected one error line, got {lines}"
    match = _LINE.match(lines[0])
    assert match, f"{what}: not a runc-shaped log line: {lines[0]}"
    message = match.group(1)
    # runc exec ends its failures with 255 and "exec failed: <the cause>"
    assert (result.returncode == EXEC_FAILED) == message.startswith(EXEC_PREFIX), \
        f"{what}: exit {result.returncode}: {message}"
    message = message.removeprefix(EXEC_PREFIX)
    assert any(re.fullmatch(p, message) for p in KNOWN_ERRORS), f"{what}: undocumented error: {message}"
    return message


def truthful_state(binary, root, cid) -> str | None:
    """The status `state` reports (None: does not exist), checked against /proc."""
    result = run_pyrunc(binary, root, "state", cid)
    message = assert_documented(result, f"state {cid}")
    if message:
        assert message == "container does not exist"
        return None
    st = json.loads(result.stdout)
    assert st["id"] == cid
    assert st["status"] in ("creating", "created", "running", "paused", "stopped"), st
    if st["status"] == "stopped":
        assert st["pid"] == 0
    elif st["status"] == "creating" and st["pid"] == 0:
        pass  # the init is not spawned (or not recorded) yet; its creator is alive
    else:
        with open(f"/proc/{st['pid']}/stat") as f:
            proc_state = f.read().rsplit(")", 1)[1].split()[0]
        assert proc_state not in ("Z", "X"), f"{cid}: state says {st['status']} but pid {st['pid']} is dead"
        if st["status"] == "paused":
            # v1 freezer: a frozen task sleeps in the refrigerator (D/S), never R
            assert proc_state in ("D", "S", "T", "t"), proc_state
    # the state file itself is valid JSON (never half-written); a state dir whose create
    # died before the first save has none, and must then read as stopped
    try:
        with open(root / cid / "state.json") as f:
            json.load(f)
    except FileNotFoundError:
        assert st["status"] == "stopped", st
    listed = json.loads(run_pyrunc(binary, root, "list", "--format", "json").stdout or "null") or []
    assert cid in [c["id"] for c in listed]
    return st["status"]


def reap_zombie_children() -> None:
    """Reap zombies of this process (a failing test's leftovers must not hit later tests)."""
    for pid in zombie_children():
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
