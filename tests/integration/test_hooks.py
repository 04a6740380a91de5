"""OCI hooks, all six stages: when each runs (create / start / delete), what it gets on
stdin (the state JSON), its args and env, which namespaces it runs in, the timeout, and
what a failing hook does to the lifecycle.

Every hook is the host's /bin/sh recording what it saw into a directory. That directory
is also bind-mounted at /mnt in the container: startContainer hooks run after pivot_root
(runc runs them from the container's init just before exec), so their /bin/sh is the
container's busybox and their output path is the container's /mnt.

Differences from runc 1.1.5 that the tests settle on the OCI runtime spec's side:
poststart runs during `start` (runc 1.1 runs it at the end of `create`), and a failing
startContainer hook fails `start` (runc 1.1's init fails after `start` has returned 0).
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Callable, Optional

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")

STAGES = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"]
CREATE_STAGES = ["prestart", "createRuntime", "createContainer"]
CONTAINER_OUTPUT_DIR = "/mnt"  # where the hook directory appears inside the container
ANNOTATIONS = {"org.pyrunc.test": "hooks", "second": "2"}


# ---------------------------------------------------------------------------------------
# Helpers


def _recording_script(directory: str, stage: str, extra: str = "") -> str:
    """Shell that saves stdin, args, env and namespaces as <directory>/<stage>.*"""
    base = f"{directory}/{stage}"
    return (
        f"cat > {base}.json;"
        f' echo "$0|$1|$HOOK_VALUE|$(pwd)" > {base}.args;'
        f" env > {base}.env;"
        # one operand per readlink: busybox's (startContainer) takes only one
        f" for ns in mnt pid uts; do readlink /proc/self/ns/$ns; done > {base}.ns;"
        f"{extra}"
    )


def _hook(directory: str, stage: str, *, extra: str = "", timeout: Optional[int] = None) -> dict:
    hook = {
        "path": "/bin/sh",
        "args": ["sh", "-c", _recording_script(directory, stage, extra), f"arg0-{stage}", "arg1"],
        "env": [f"HOOK_VALUE=env-{stage}", "OTHER=x"],
    }
    if timeout is not None:
        hook["timeout"] = timeout
    return hook


class HookRecorder:
    """The host directory the hooks write to, bind-mounted at /mnt in the container."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True)

    def bind_mount(self, config: dict) -> None:
        config["mounts"].append(
            {"destination": CONTAINER_OUTPUT_DIR, "type": "bind", "source": str(self.directory),
             "options": ["rbind", "rw"]}
        )

    def hook(self, stage: str, **kwargs) -> dict:
        # startContainer runs after pivot_root: it sees the directory at its mount point.
        directory = CONTAINER_OUTPUT_DIR if stage == "startContainer" else str(self.directory)
        return _hook(directory, stage, **kwargs)

    def ran(self) -> set[str]:
        return {p.stem for p in self.directory.glob("*.json")}

    def state(self, stage: str) -> dict:
        return json.loads((self.directory / f"{stage}.json").read_text())

    def args(self, stage: str) -> list[str]:
        return (self.directory / f"{stage}.args").read_text().strip().split("|")

    def env(self, stage: str) -> dict:
        lines = (self.directory / f"{stage}.env").read_text().splitlines()
        return dict(line.split("=", 1) for line in lines if "=" in line)

    def namespaces(self, stage: str) -> dict:
        mnt, pid, uts = (self.directory / f"{stage}.ns").read_text().split()
        return {"mnt": mnt, "pid": pid, "uts": uts}


@pytest.fixture
def recorder(tmp_path) -> HookRecorder:
    return HookRecorder(tmp_path / f"hooks-{uuid.uuid4().hex[:8]}")


def _namespaces_of(pid: int | str) -> dict:
    return {name: os.readlink(f"/proc/{pid}/ns/{name}") for name in ("mnt", "pid", "uts")}


def _state(pyrunc_cmd, container_id: str) -> dict:
    result = pyrunc_cmd("state", container_id)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def _process_gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"  # a zombie has exited
    except (FileNotFoundError, ProcessLookupError):
        return True


def _pids_with_cmdline(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    found.append(int(entry))
        except OSError:
            continue
    return [pid for pid in found if pid != os.getpid() and not _process_gone(pid)]


def _assert_nothing_left(pyrunc_cmd, state_root: Path, container_id: str, init_pid: Optional[int],
                         assert_no_residue) -> None:
    result = pyrunc_cmd("state", container_id)
    assert result.returncode != 0 and "does not exist" in result.stderr, result
    assert not (state_root / container_id).exists()
    if init_pid:
        _wait_until(lambda: _process_gone(init_pid), 5, f"the container init {init_pid} to exit")
    assert_no_residue(state_root, [container_id])


# ---------------------------------------------------------------------------------------
# All six stages in one lifecycle


def test_every_stage_runs_at_its_moment_with_state_args_and_env(
    bundle, container_id, pyrunc_cmd, recorder, tmp_path
):
    def edit(config: dict) -> None:
        recorder.bind_mount(config)
        config["annotations"] = dict(ANNOTATIONS)
        config["hooks"] = {stage: [recorder.hook(stage)] for stage in STAGES}

    bundle_dir = bundle(edit, args=["sleep", "30"])
    runtime_env = {**os.environ, "PYRUNC_TEST_RUNTIME_ONLY": "leak"}
    runtime_cwd = tmp_path

    result = pyrunc_cmd("create", "-b", str(bundle_dir), container_id, env=runtime_env, cwd=runtime_cwd)
    assert result.returncode == 0, result.stderr
    assert recorder.ran() == {"prestart", "createRuntime", "createContainer"}
    init_pid = _state(pyrunc_cmd, container_id)["pid"]

    pyrunc_cmd("start", container_id, check=True, env=runtime_env, cwd=runtime_cwd)
    assert recorder.ran() == {"prestart", "createRuntime", "createContainer", "startContainer", "poststart"}

    pyrunc_cmd("delete", "--force", container_id, check=True, env=runtime_env, cwd=runtime_cwd)
    assert recorder.ran() == set(STAGES)

    expected_status = {
        "prestart": "creating",
        "createRuntime": "creating",
        "createContainer": "creating",
        "startContainer": "created",
        "poststart": "running",  # `sleep 30` is running when start returns
        "poststop": "stopped",
    }
    for stage in STAGES:
        state = recorder.state(stage)
        assert state["ociVersion"], (stage, state)
        assert state["id"] == container_id, (stage, state)
        assert state["bundle"] == str(bundle_dir), (stage, state)
        assert state["annotations"] == ANNOTATIONS, (stage, state)
        assert state["status"] == expected_status[stage], (stage, state)
        assert recorder.args(stage)[:3] == [f"arg0-{stage}", "arg1", f"env-{stage}"], stage
        env = recorder.env(stage)
        assert env.get("OTHER") == "x", (stage, env)
        # The hook's env is exactly hook.env: nothing of the runtime's own environment.
        assert "PYRUNC_TEST_RUNTIME_ONLY" not in env, (stage, env)

    # pid (runtime-spec, State): "For hooks executed in the runtime namespace, it is the pid
    # as seen by the runtime. For hooks executed in the container namespace, it is the pid as
    # seen by the container" -- the init is pid 1 of its new pid namespace (runc: 1 too).
    pids = {stage: recorder.state(stage).get("pid") for stage in STAGES[:5]}
    assert pids == {
        "prestart": init_pid, "createRuntime": init_pid, "poststart": init_pid,
        "createContainer": 1, "startContainer": 1,
    }


def test_hook_namespaces(bundle, container_id, pyrunc_cmd, recorder):
    def edit(config: dict) -> None:
        recorder.bind_mount(config)
        config["hooks"] = {stage: [recorder.hook(stage)] for stage in STAGES[:5]}

    bundle_dir = bundle(edit, args=["sleep", "30"])
    pyrunc_cmd("create", "-b", str(bundle_dir), container_id, check=True)
    init_pid = _state(pyrunc_cmd, container_id)["pid"]
    container = _namespaces_of(init_pid)
    runtime = _namespaces_of("self")  # pyrunc runs in the test's (private) namespaces
    assert container["mnt"] != runtime["mnt"] and container["pid"] != runtime["pid"]
    pyrunc_cmd("start", container_id, check=True)

    for stage in ("prestart", "createRuntime", "poststart"):
        assert recorder.namespaces(stage) == runtime, stage
    for stage in ("createContainer", "startContainer"):
        assert recorder.namespaces(stage) == container, stage


def test_create_container_hook_sees_host_paths_and_start_container_the_rootfs(
    bundle, container_id, pyrunc_cmd, recorder
):
    """createContainer runs before pivot_root (host paths still resolve: it wrote to the
    host directory and `/bin/sh` was the host's), startContainer after it."""
    marker = f"host-only-{uuid.uuid4().hex[:8]}"
    (recorder.directory.parent / marker).write_text("x")
    host_marker = str(recorder.directory.parent / marker)

    def edit(config: dict) -> None:
        recorder.bind_mount(config)
        config["hooks"] = {
            "createContainer": [recorder.hook(
                "createContainer", extra=f" test -e {host_marker} && echo host > {recorder.directory}/cc.where")],
            "startContainer": [recorder.hook(
                "startContainer", extra=f" test -e {host_marker} || echo rootfs > /mnt/sc.where")],
        }

    bundle_dir = bundle(edit, args=["true"])
    pyrunc_cmd("create", "-b", str(bundle_dir), container_id, check=True)
    pyrunc_cmd("start", container_id, check=True)
    assert (recorder.directory / "cc.where").read_text() == "host\n"
    assert (recorder.directory / "sc.where").read_text() == "rootfs\n"


# ---------------------------------------------------------------------------------------
# Failure semantics


@pytest.mark.parametrize("stage", CREATE_STAGES)
def test_failing_create_hook_fails_create_and_leaves_nothing(
    bundle, container_id, pyrunc_cmd, recorder, state_root, assert_no_residue, stage
):
    def edit(config: dict) -> None:
        recorder.bind_mount(config)
        config["hooks"] = {
            s: [recorder.hook(s, extra=" echo hook-said-no >&2; exit 7" if s == stage else "")]
            for s in CREATE_STAGES[: CREATE_STAGES.index(stage) + 1]
        }
        # A later hook in the same stage must not run after the failure.
        config["hooks"][stage].append({"path": "/bin/sh", "args": [
            "sh", "-c", f"touch {recorder.directory}/after-failure"]})

    bundle_dir = bundle(edit, args=["true"])
    result = pyrunc_cmd("create", "-b", str(bundle_dir), container_id)
    assert result.returncode != 0
    assert stage in result.stderr, result.stderr
    assert "exit status 7" in result.stderr, result.stderr
    assert recorder.ran() == set(CREATE_STAGES[: CREATE_STAGES.index(stage) + 1])
    assert not (recorder.directory / "after-failure").exists()
    # prestart always ran (it comes first) and saw the init's host pid
    init_pid = recorder.state("prestart")["pid"]
    _assert_nothing_left(pyrunc_cmd, state_root, container_id, init_pid, assert_no_residue)


def test_failed_create_still_runs_poststop(bundle, container_id, pyrunc_cmd, recorder, state_root):
    """Spec lifecycle: a failing createRuntime hook stops the container and the lifecycle
    continues with the poststop hooks (runc 1.1 does this too)."""
    def edit(config: dict) -> None:
        config["hooks"] = {
            "createRuntime": [recorder.hook("createRuntime", extra=" exit 3")],
            "poststop": [recorder.hook("poststop")],
        }

    bundle_dir = bundle(edit, args=["true"])
    result = pyrunc_cmd("create", "-b", str(bundle_dir), container_id)
    assert result.returncode != 0
    assert recorder.ran() == {"createRuntime", "poststop"}, result.stderr
    assert recorder.state("poststop")["id"] == container_id
    assert not (state_root / container_id).exists()


def test_failing_start_container_hook_fails_start(bundle, container_id, pyrunc_cmd, recorder):
    def edit(config: dict) -> None:
        recorder.bind_mount(config)
        config["hooks"] = {
            "startContainer": [recorder.hook("startContainer", extra=" echo nope >&2; exit 9")],
            "poststart": [recorder.hook("poststart")],
        }

    # The user program leaves a mark if it ever runs.
    bundle_dir = bundle(edit, args=["sh", "-c", f"touch {CONTAINER_OUTPUT_DIR}/user-program-ran"])
    pyrunc_cmd("create", "-b", str(bundle_dir), container_id, check=True)
    init_pid = _state(pyrunc_cmd, container_id)["pid"]
    result = pyrunc_cmd("start", container_id)
    assert result.returncode != 0
    assert "startContainer" in result.stderr and "exit status 9" in result.stderr, result.stderr
    assert recorder.ran() == {"startContainer"}  # no poststart after a failed start
    _wait_until(lambda: _process_gone(init_pid), 5, "the container to be stopped")
    assert not (recorder.directory / "user-program-ran").exists()
    assert _state(pyrunc_cmd, container_id)["status"] == "stopped"
    pyrunc_cmd("delete", container_id, check=True)


def test_failing_poststart_and_poststop_hooks_are_warnings(
    bundle, container_id, pyrunc_cmd, recorder, tmp_path
):
    def edit(config: dict) -> None:
        recorder.bind_mount(config)
        config["hooks"] = {
            "poststart": [recorder.hook("poststart", extra=" exit 4"),
                          {"path": "/bin/sh", "args": ["sh", "-c", f"touch {recorder.directory}/second-poststart"]}],
            "poststop": [recorder.hook("poststop", extra=" exit 5"),
                         {"path": "/bin/sh", "args": ["sh", "-c", f"touch {recorder.directory}/second-poststop"]}],
        }

    bundle_dir = bundle(edit, args=["sh", "-c", f"touch {CONTAINER_OUTPUT_DIR}/user-program-ran; sleep 30"])
    log = tmp_path / "pyrunc.log"
    pyrunc_cmd("--log", str(log), "create", "-b", str(bundle_dir), container_id, check=True)
    result = pyrunc_cmd("--log", str(log), "start", container_id)
    assert result.returncode == 0, result.stderr
    _wait_until(lambda: (recorder.directory / "user-program-ran").exists(), 5, "the user program")
    assert _state(pyrunc_cmd, container_id)["status"] == "running"
    result = pyrunc_cmd("--log", str(log), "delete", "--force", container_id)
    assert result.returncode == 0, result.stderr
    assert pyrunc_cmd("state", container_id).returncode != 0

    # The remaining hooks of a stage still run after a failing one.
    assert (recorder.directory / "second-poststart").exists()
    assert (recorder.directory / "second-poststop").exists()
    text = log.read_text()
    poststart_lines = [line for line in text.splitlines() if "poststart" in line and "exit status 4" in line]
    poststop_lines = [line for line in text.splitlines() if "poststop" in line and "exit status 5" in line]
    assert poststart_lines and all("level=warning" in line for line in poststart_lines), text
    assert poststop_lines and all("level=warning" in line for line in poststop_lines), text


# ---------------------------------------------------------------------------------------
# Timeout


@pytest.mark.parametrize("stage", ["prestart", "createContainer"])
def test_hook_timeout_is_enforced(bundle, container_id, pyrunc_cmd, state_root, assert_no_residue, stage):
    # A unique duration: how the sleeping hook is found in /proc if it survives.
    duration = f"10.{uuid.uuid4().int % 10**6:06d}"

    def edit(config: dict) -> None:
        config["hooks"] = {stage: [{"path": "/bin/sleep", "args": ["sleep", duration], "timeout": 1}]}

    bundle_dir = bundle(edit, args=["true"])
    started = time.monotonic()
    result = pyrunc_cmd("create", "-b", str(bundle_dir), container_id, timeout=15)
    elapsed = time.monotonic() - started
    assert result.returncode != 0
    assert elapsed < 3.0, f"create took {elapsed:.1f}s with a 1s hook timeout"
    assert "timeout" in result.stderr and stage in result.stderr, result.stderr
    _wait_until(lambda: not _pids_with_cmdline(duration), 3, "the timed-out hook to be killed")
    _assert_nothing_left(pyrunc_cmd, state_root, container_id, None, assert_no_residue)


# ---------------------------------------------------------------------------------------
# stdin handling


def test_docker_like_prestart_hook_reading_stdin(bundle, container_id, pyrunc_cmd, recorder):
    """A hook in the style of docker's libnetwork-setkey: decode the state from stdin fully,
    act on it, exit 0."""
    out = recorder.directory / "seen"
    program = (
        "import json, sys\n"
        "state = json.load(sys.stdin)\n"
        f"open({str(out)!r}, 'w').write(state['id'] + ' ' + str(state['pid']) + ' ' + state['status'])\n"
    )

    def edit(config: dict) -> None:
        config["hooks"] = {"prestart": [{"path": sys.executable, "args": ["python3", "-S", "-c", program]}]}

    bundle_dir = bundle(edit, args=["true"])
    pyrunc_cmd("create", "-b", str(bundle_dir), container_id, check=True)
    state = _state(pyrunc_cmd, container_id)
    assert out.read_text() == f"{container_id} {state['pid']} creating"


def test_hook_ignoring_a_large_state_on_stdin(bundle, container_id, pyrunc_cmd, recorder):
    """A hook that never reads stdin, while the state JSON is larger than a pipe buffer
    (64 KiB), must neither hang the runtime nor count as failed."""
    def edit(config: dict) -> None:
        config["annotations"] = {f"key{i}": "v" * 200 for i in range(600)}  # ~130 KiB
        config["hooks"] = {"prestart": [{"path": "/bin/sh", "args": [
            "sh", "-c", f"touch {recorder.directory}/ignored-stdin"], "timeout": 5}]}

    bundle_dir = bundle(edit, args=["true"])
    started = time.monotonic()
    result = pyrunc_cmd("create", "-b", str(bundle_dir), container_id, timeout=20)
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 5
    assert (recorder.directory / "ignored-stdin").exists()


def test_hooks_of_a_stage_run_in_order(bundle, container_id, pyrunc_cmd, recorder):
    order = recorder.directory / "order"

    def edit(config: dict) -> None:
        config["hooks"] = {"createRuntime": [
            {"path": "/bin/sh", "args": ["sh", "-c", f"cat >/dev/null; echo {n} >> {order}"]}
            for n in range(1, 5)
        ]}

    bundle_dir = bundle(edit, args=["true"])
    pyrunc_cmd("create", "-b", str(bundle_dir), container_id, check=True)
    assert order.read_text().split() == ["1", "2", "3", "4"]


# ---------------------------------------------------------------------------------------
# What runc's hooks inherit: environment, working directory, seccomp filter, state


VOLATILE_ENV = {"PWD", "OLDPWD", "SHLVL", "_"}


def _inheriting_hook(directory: str, stage: str) -> dict:
    """A hook without `env`: it records the environment and working directory it got."""
    return {"path": "/bin/sh",
            "args": ["sh", "-c", f"env > {directory}/{stage}.env; pwd > {directory}/{stage}.pwd;"
                                 f" cat > {directory}/{stage}.json"]}


@pytest.fixture
def shared_tmp():
    """A directory every uid may write, the mapped root of a user namespace included
    (pytest's own tmp_path sits below a 0700 directory)."""
    top = tempfile.mkdtemp(prefix="pyrunc-hooks-")
    os.chmod(top, 0o777)
    try:
        yield Path(top)
    finally:
        shutil.rmtree(top, ignore_errors=True)


@pytest.mark.parametrize("userns", [False, True], ids=["no-userns", "userns"])
def test_hook_without_env_and_its_cwd_like_runc(userns, bundle, container_id, pyrunc_cmd, runc_cmd, shared_tmp,
                                               userns_rootfs):
    """A hook without `env` inherits: the runtime's environment for the stages runc runs
    itself, the container's process environment for createContainer/startContainer
    (runc runs them from its init); createContainer's working directory is the rootfs
    (before pivot_root: `touch ./x` lands in the container), startContainer's the
    process's cwd, the others' the bundle."""
    runtime_env = {**os.environ, "PYRUNC_TEST_RUNTIME_VAR": "from-the-runtime"}
    seen = {}
    for name, command in (("pyrunc", pyrunc_cmd), ("runc", runc_cmd)):
        recorder = HookRecorder(shared_tmp / f"hooks-{name}")
        recorder.directory.chmod(0o777)

        def edit(config: dict) -> None:
            recorder.bind_mount(config)
            config["root"] = {"path": userns_rootfs, "readonly": True}
            config["process"]["env"] = ["PATH=/bin:/usr/bin", "CONTAINER_VAR=from-the-container"]
            config["process"]["cwd"] = "/etc"
            if userns:
                mapping = [{"containerID": 0, "hostID": 100000, "size": 65536}]
                config["linux"]["namespaces"].append({"type": "user"})
                config["linux"]["uidMappings"] = mapping
                config["linux"]["gidMappings"] = mapping
            config["hooks"] = {stage: [_inheriting_hook(CONTAINER_OUTPUT_DIR if stage == "startContainer"
                                                        else str(recorder.directory), stage)]
                               for stage in STAGES}

        bundle_dir = bundle(edit, args=["true"], name=f"bundle-{name}")
        result = command("run", "-b", str(bundle_dir), container_id, env=runtime_env)
        assert result.returncode == 0, (name, result.stderr)
        assert recorder.ran() == set(STAGES), name
        seen[name] = {stage: ({k: v for k, v in recorder.env(stage).items() if k not in VOLATILE_ENV},
                              (recorder.directory / f"{stage}.pwd").read_text().strip().replace(
                                  str(bundle_dir), "BUNDLE"))
                      for stage in STAGES}
    for stage in STAGES:
        assert seen["pyrunc"][stage] == seen["runc"][stage], stage
    ours = seen["pyrunc"]
    for stage in ("prestart", "createRuntime", "poststart", "poststop"):
        assert ours[stage][0]["PYRUNC_TEST_RUNTIME_VAR"] == "from-the-runtime", stage
        assert ours[stage][1] == "BUNDLE", stage
    for stage in ("createContainer", "startContainer"):
        assert ours[stage][0]["CONTAINER_VAR"] == "from-the-container", stage
        assert "PYRUNC_TEST_RUNTIME_VAR" not in ours[stage][0], stage
    assert ours["createContainer"][1] == userns_rootfs
    assert ours["startContainer"][1] == "/etc"


def test_create_container_hook_relative_paths_land_in_the_rootfs(bundle, container_id, pyrunc_cmd, tmp_path):
    """A createContainer hook doing `touch ./lib/x` wrote into the host's /usr/lib when its
    working directory was the host's /."""
    marker = f"cc-{uuid.uuid4().hex[:8]}"

    def edit(config: dict) -> None:
        config["hooks"] = {"createContainer": [{"path": "/bin/sh", "args": ["sh", "-c", f"touch ./etc/{marker}"]}]}

    bundle_dir = bundle(edit, args=["cat", f"/etc/{marker}"], private_rootfs=True)
    result = pyrunc_cmd("run", "-b", str(bundle_dir), container_id)
    assert result.returncode == 0, result.stderr
    assert (bundle_dir / "rootfs" / "etc" / marker).exists()
    assert not os.path.exists(f"/etc/{marker}")


@pytest.mark.parametrize("nnp", [True, False], ids=["nnp", "no-nnp"])
def test_start_container_hook_runs_under_the_seccomp_filter_like_runc(nnp, bundle, container_id, pyrunc_cmd,
                                                                      runc_cmd, recorder):
    """runc 1.1.5 runs startContainer hooks from its init after the filter is loaded (with
    or without no_new_privs): a filter that kills mkdir kills the hook's mkdir, and the
    container fails with "error running hook".  The createContainer hook runs before the
    filter (runc: before pivot_root), so its mkdir works."""
    def edit(config: dict) -> None:
        recorder.bind_mount(config)
        config["process"]["noNewPrivileges"] = nnp
        config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                                      "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL"}]}
        config["hooks"] = {
            "createContainer": [{"path": "/bin/sh", "args": ["sh", "-c", f"mkdir {recorder.directory}/cc-$$"]}],
            "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", f"mkdir {CONTAINER_OUTPUT_DIR}/sc"]}],
        }

    bundle_dir = bundle(edit, args=["sh", "-c", f"touch {CONTAINER_OUTPUT_DIR}/user-program-ran"])
    reference = runc_cmd("run", "-b", str(bundle_dir), container_id + "-runc")
    ours = pyrunc_cmd("run", "-b", str(bundle_dir), container_id)
    assert reference.returncode == ours.returncode == 1, (reference.stderr, ours.stderr)
    for result in (reference, ours):
        assert "error running" in result.stderr and "hook" in result.stderr, result.stderr
        assert "signal: bad system call" in result.stderr, result.stderr
    assert not (recorder.directory / "sc").exists()
    assert not (recorder.directory / "user-program-ran").exists()
    assert len(list(recorder.directory.glob("cc-*"))) == 2  # one per runtime


def test_poststart_state_says_running_with_the_pid_even_after_the_exit(bundle, container_id, pyrunc_cmd,
                                                                        recorder):
    """The state given to poststart hooks is that of a started container: "running" and
    the init's pid, even when the process has already exited (it was rebuilt from the
    process's liveness: "stopped", pid 0).  runc 1.1.5 runs poststart at the end of
    create and says "created" there; the runtime-spec's poststart follows the start,
    which pyrunc keeps (see the module docstring)."""
    def edit(config: dict) -> None:
        recorder.bind_mount(config)
        config["hooks"] = {"createRuntime": [recorder.hook("createRuntime")],
                           "poststart": [recorder.hook("poststart")]}

    bundle_dir = bundle(edit, args=["true"])  # gone before or just after start returns
    pyrunc_cmd("create", "-b", str(bundle_dir), container_id, check=True)
    init_pid = _state(pyrunc_cmd, container_id)["pid"]
    pyrunc_cmd("start", container_id, check=True)
    state = recorder.state("poststart")
    assert (state["status"], state["pid"]) == ("running", init_pid), state
    assert recorder.state("createRuntime")["pid"] == init_pid


@pytest.mark.parametrize("strict", [False, True], ids=["no-seccomp", "strict-seccomp"])
@pytest.mark.parametrize("userns", [False, True], ids=["no-userns", "userns"])
def test_start_container_hook_runs_as_the_process_like_runc(userns, strict, bundle, container_id, pyrunc_cmd,
                                                            runc_cmd, shared_tmp, userns_rootfs):
    """runc runs startContainer hooks from its init right before the execve: with the
    process's user, capability sets, no_new_privs, umask, rlimits and seccomp filter
    (pyrunc ran them as root with every capability); under a strict allow-list profile
    too."""
    from test_seccomp_container import strict_profile
    script = ("id; grep -E '^(Cap|NoNewPrivs)' /proc/self/status; umask; ulimit -n;"
              " cat /proc/self/attr/current 2>/dev/null; true")
    seen = {}
    for name, command in (("pyrunc", pyrunc_cmd), ("runc", runc_cmd)):
        recorder = HookRecorder(shared_tmp / f"hooks-{name}")
        recorder.directory.chmod(0o777)

        def edit(config: dict) -> None:
            recorder.bind_mount(config)
            config["root"] = {"path": userns_rootfs, "readonly": True}
            config["process"]["user"] = {"uid": 1000, "gid": 1000, "umask": 0o027}
            config["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1024}]
            config["process"]["noNewPrivileges"] = True
            if strict:
                config["linux"]["seccomp"] = strict_profile()
            config["hooks"] = {"startContainer": [
                {"path": "/bin/sh", "args": ["sh", "-c", f"({script}) > {CONTAINER_OUTPUT_DIR}/sc.out 2>&1"]}]}
            if userns:
                mapping = [{"containerID": 0, "hostID": 100000, "size": 65536}]
                config["linux"]["namespaces"].append({"type": "user"})
                config["linux"]["uidMappings"] = mapping
                config["linux"]["gidMappings"] = mapping

        bundle_dir = bundle(edit, args=["true"], name=f"bundle-{name}")
        result = command("run", "-b", str(bundle_dir), container_id)
        assert result.returncode == 0, (name, result.stderr)
        seen[name] = (recorder.directory / "sc.out").read_text()
    assert seen["pyrunc"] == seen["runc"]
    assert seen["pyrunc"].startswith("uid=1000("), seen
    assert "NoNewPrivs:\t1" in seen["pyrunc"] and "\n0027\n512\n" in seen["pyrunc"], seen
