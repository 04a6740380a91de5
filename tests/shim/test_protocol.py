"""The shim spoken to directly over ttrpc, as containerd speaks to it, with no containerd:
bad input gets a clear ttrpc error and leaves nothing behind; the generated protobuf code
is the one shim.proto gives."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from engine_support import state_dirs, wait_until
from shim_support import SHIM_NAME
from support import pyrunc_binary

NAMESPACE = "pyrunc-shim-protocol"


@pytest.fixture
def shim(private_run_dirs, tmp_path):
    """A shim started by its `start` subcommand (in a bundle dir), and a client to it."""
    from pyrunc.shim import ttrpc
    started = []

    def start(bundle, wrapper=()) -> "ttrpc.Client":
        """`wrapper`: a command line the shim's command is appended to (it runs it)."""
        result = subprocess.run([*wrapper, os.path.join(os.path.dirname(pyrunc_binary()), SHIM_NAME),
                                 "-namespace", NAMESPACE, "-address", str(tmp_path / "no-containerd.sock"),
                                 "-publish-binary", "/bin/false", "-id", bundle.name, "start"],
                                cwd=bundle, capture_output=True, text=True, timeout=20,
                                env={"PATH": os.environ["PATH"], "TTRPC_ADDRESS": ""})
        assert result.returncode == 0, result
        address = result.stdout.strip()
        assert address.startswith("unix:///run/containerd/s/")
        assert (bundle / "address").read_text() == address
        started.append((address, int((bundle / "shim.pid").read_text())))
        return ttrpc.Client(address)
    yield start
    for address, pid in started:
        # the shim exits after Shutdown; one a failed test left gets SIGKILL
        try:
            wait_until(lambda: not os.path.exists(f"/proc/{pid}/cmdline")
                       or not open(f"/proc/{pid}/cmdline").read(), 5, "the shim to exit")
        except AssertionError:
            os.kill(pid, 9)
            raise
        assert not os.path.exists(address.removeprefix("unix://")), "socket left"
        assert not os.path.exists(address.removeprefix("unix://") + ".d"), "work dir left"


def call(client, method: str, request, response_type=None):
    from pyrunc.shim import shim_pb2 as pb
    return client.call("containerd.task.v2.Task", method, request, response_type or pb.Empty)


def test_bad_input_clear_errors_nothing_left(shim, bundle, rootfs_dir, container_id):
    from pyrunc.shim import shim_pb2 as pb
    from pyrunc.shim import ttrpc
    # a config containerd's own shim would reject (runc: process.args must not be empty),
    # with the rootfs mounted by the shim from containerd's mount list
    directory = bundle(lambda c: c["process"].__setitem__("args", []), name=container_id)
    config = json.loads((directory / "config.json").read_text())
    config["root"]["path"] = "rootfs"
    (directory / "config.json").write_text(json.dumps(config))
    client = shim(directory)
    try:
        request = pb.CreateTaskRequest(id=container_id, bundle=str(directory))
        request.rootfs.add(type="bind", source=str(rootfs_dir), options=["rbind", "ro"])
        with pytest.raises(ttrpc.Error) as raised:
            call(client, "Create", request, pb.CreateTaskResponse)
        assert raised.value.code == ttrpc.INVALID_ARGUMENT
        assert "args" in raised.value.message, raised.value.message
        mounts = [line.split()[4] for line in open("/proc/self/mountinfo")]
        assert str(directory / "rootfs") not in mounts
        assert container_id not in state_dirs(f"/run/containerd/runc/{NAMESPACE}")

        # checkpoints are refused by name
        with pytest.raises(ttrpc.Error) as raised:
            call(client, "Create", pb.CreateTaskRequest(id=container_id, bundle=str(directory),
                                                        checkpoint="/tmp/x"), pb.CreateTaskResponse)
        assert raised.value.code == ttrpc.UNIMPLEMENTED and "checkpoint" in raised.value.message

        # an unknown task: NotFound, which containerd maps to errdefs.ErrNotFound
        for method, message in (("State", pb.StateRequest(id="no-such-task")),
                                ("Kill", pb.KillRequest(id="no-such-task", signal=9)),
                                ("Wait", pb.WaitRequest(id="no-such-task"))):
            with pytest.raises(ttrpc.Error) as raised:
                call(client, method, message, pb.StateResponse)
            assert raised.value.code == ttrpc.NOT_FOUND, method
            assert "no-such-task" in raised.value.message

        call(client, "Shutdown", pb.ShutdownRequest(id=container_id))
        # on the same connection, a request after Shutdown: refused by name (or the
        # connection is already closed by the exiting shim)
        try:
            call(client, "State", pb.StateRequest(id=container_id), pb.StateResponse)
            raise AssertionError("a request after Shutdown was served")
        except ttrpc.Error as error:
            assert error.code == ttrpc.UNAVAILABLE and "shutting down" in error.message
        except OSError:
            pass
    finally:
        client.close()


def test_generated_code_matches_proto(tmp_path):
    """pyrunc/shim/shim_pb2.py is what grpc_tools' protoc makes of shim.proto."""
    pytest.importorskip("grpc_tools")
    import pyrunc.shim
    source = os.path.dirname(pyrunc.shim.__file__)
    proto = os.path.join(source, "shim.proto")
    if not os.path.exists(proto):
        pytest.skip("shim.proto is not installed (only the sdist/checkout carries it)")
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{source}", f"--python_out={tmp_path}", proto],
                   check=True)
    fresh = (tmp_path / "shim_pb2.py").read_text()
    with open(os.path.join(source, "shim_pb2.py")) as f:
        assert f.read() == fresh, "regenerate pyrunc/shim/shim_pb2.py (see shim.proto)"


def test_parallel_starts_each_get_a_shim(shim, bundle, container_id):
    """Six `start`s at once, no resident shim process yet: one makes it while the others
    wait for it (a flock), then each gets its own shim (socket, Shutdown), all served by
    that one process; none may wait for ever."""
    from concurrent.futures import ThreadPoolExecutor
    from pyrunc.shim import shim_pb2 as pb
    bundles = [bundle(name=f"{container_id}-{i}") for i in range(6)]
    with ThreadPoolExecutor(len(bundles)) as pool:
        clients = list(pool.map(shim, bundles, timeout=60))
    assert len({(b / "address").read_text() for b in bundles}) == len(bundles)
    pids = {int((b / "shim.pid").read_text()) for b in bundles}
    assert len(pids) == 1, pids
    for client, directory in zip(clients, bundles):
        try:
            connected = call(client, "Connect", pb.ConnectRequest(id=directory.name), pb.ConnectResponse)
            assert connected.shim_pid == int((directory / "shim.pid").read_text())
            call(client, "Shutdown", pb.ShutdownRequest(id=directory.name))
        finally:
            client.close()


def test_start_and_delete_answered_without_python(shim, bundle, container_id, tmp_path):
    """With the resident shim process up, containerd's `start` (every container) and
    `delete` (after every shim connection closes, a clean Shutdown included) are answered
    by it through the C front: one execve, no Python started (which cost 15-130 ms)."""
    import shutil
    from pyrunc.shim import shim_pb2 as pb
    if not shutil.which("strace"):
        pytest.skip("strace is not installed")
    first, second = bundle(name=f"{container_id}-0"), bundle(name=f"{container_id}-1")
    client = shim(first)  # the cold start: makes the resident process

    def traced(action: str, directory) -> tuple[bytes, list[str]]:
        trace = tmp_path / f"{action}.strace"
        result = subprocess.run(
            ["strace", "-f", "-qq", "-e", "trace=execve", "-o", str(trace),
             os.path.join(os.path.dirname(pyrunc_binary()), SHIM_NAME), "-namespace", NAMESPACE,
             "-address", str(tmp_path / "no-containerd.sock"), "-publish-binary", "/bin/false",
             "-id", directory.name, "-bundle", str(directory), action],
            cwd=directory, capture_output=True, timeout=20, env={"PATH": os.environ["PATH"], "TTRPC_ADDRESS": ""})
        assert result.returncode == 0, result
        return result.stdout, [line for line in trace.read_text().splitlines() if "execve(" in line]

    try:
        out, execs = traced("start", second)
        assert len(execs) == 1, execs
        address = out.decode()
        assert address.startswith("unix:///run/containerd/s/") and address != (first / "address").read_text()
        assert (second / "shim.pid").read_text() == (first / "shim.pid").read_text()
        from pyrunc.shim import ttrpc
        other = ttrpc.Client(address)
        try:
            call(other, "Shutdown", pb.ShutdownRequest(id=second.name))
        finally:
            other.close()
        call(client, "Shutdown", pb.ShutdownRequest(id=first.name))
        wait_until(lambda: not os.path.exists(address.removeprefix("unix://")), 5, "the socket to go")
        out, execs = traced("delete", second)
        assert len(execs) == 1, execs
        assert pb.DeleteResponse.FromString(out).exit_status == 137
    finally:
        client.close()


@pytest.fixture
def shim_cgroup():
    """A cgroup beneath ours in every hierarchy, for a ShimCgroup option (removed after the
    shim process has left it: request this fixture before `shim`)."""
    from support import cgroup_hierarchies, cgroup_parent_below_own
    for parent in cgroup_parent_below_own(f"pyrunc-shimcg-{os.getpid()}"):
        for mountpoint in cgroup_hierarchies():
            path = mountpoint
            for part in parent.strip("/").split("/"):
                path = os.path.join(path, part)
                if not os.path.isdir(path):
                    os.mkdir(path)
                    for name in ("cpuset.cpus", "cpuset.mems"):  # v1 cpuset: empty until given
                        if os.path.exists(os.path.join(path, name)):
                            with open(os.path.join(os.path.dirname(path), name)) as f:
                                value = f.read()
                            with open(os.path.join(path, name), "w") as f:
                                f.write(value)
        try:
            yield parent
        finally:
            # the resident process stays in it until it ends (IDLE_EXIT after its last
            # task): the directories can only go once it has
            wait_until(lambda: not any(_cgroup_procs(mountpoint, parent) for mountpoint in cgroup_hierarchies()),
                       15, "the shim process to leave its ShimCgroup")


def _cgroup_procs(mountpoint: str, cgroup: str) -> str:
    try:
        with open(os.path.join(mountpoint, cgroup.strip("/"), "cgroup.procs")) as f:
            return f.read()
    except OSError:
        return ""


def runc_options(**fields):
    """CreateTaskRequest.options as containerd sends runc's shim options."""
    from pyrunc.shim import shim_pb2 as pb
    from google.protobuf import any_pb2
    return any_pb2.Any(type_url="containerd.runc.v1.Options", value=pb.RuncOptions(**fields).SerializeToString())


def test_shim_cgroup_joined_once(shim_cgroup, shim, bundle, container_id):
    """ShimCgroup: runc's shim puts itself in that cgroup. The resident process serves
    every task of the namespace, so it joins the first ShimCgroup named and refuses another
    by name (nothing created)."""
    from pyrunc.shim import shim_pb2 as pb
    from pyrunc.shim import ttrpc
    first, second = bundle(name=container_id), bundle(name=f"{container_id}-b")
    client = shim(first)
    shim_pid = int((first / "shim.pid").read_text())
    try:
        call(client, "Create", pb.CreateTaskRequest(id=container_id, bundle=str(first),
                                                    options=runc_options(shim_cgroup=shim_cgroup)),
             pb.CreateTaskResponse)
        try:
            paths = {line.split(":", 2)[1]: line.split(":", 2)[2]
                     for line in open(f"/proc/{shim_pid}/cgroup").read().splitlines()}
            if "" in paths and len(paths) > 1:  # cgroup v1: runc's shim joins the v1 hierarchies
                del paths[""]
            assert set(paths.values()) == {shim_cgroup}, paths
            with pytest.raises(ttrpc.Error) as raised:
                call(client, "Create", pb.CreateTaskRequest(id=second.name, bundle=str(second),
                                                            options=runc_options(shim_cgroup=shim_cgroup + "/x")),
                     pb.CreateTaskResponse)
            assert raised.value.code == ttrpc.FAILED_PRECONDITION, raised.value
            assert f"ShimCgroup '{shim_cgroup}/x'" in raised.value.message, raised.value.message
            assert second.name not in state_dirs(f"/run/containerd/runc/{NAMESPACE}")
        finally:
            call(client, "Delete", pb.DeleteRequest(id=container_id), pb.DeleteResponse)
        call(client, "Shutdown", pb.ShutdownRequest(id=container_id))
    finally:
        client.close()


def test_options_refused_by_name_nothing_left(shim, bundle, container_id):
    """Options pyrunc's shim cannot honour: InvalidArgument naming them, before anything
    is made."""
    from google.protobuf import any_pb2
    from pyrunc.shim import shim_pb2 as pb
    from pyrunc.shim import ttrpc
    directory = bundle(name=container_id)
    client = shim(directory)
    try:
        for options, named in ((runc_options(binary_name="crun"), "BinaryName 'crun'"),
                               (runc_options(root="relative/root"), "Root 'relative/root'"),
                               (any_pb2.Any(type_url="containerd.runhcs.v1.Options"), "containerd.runhcs.v1.Options"),
                               (any_pb2.Any(type_url="runtimeoptions.v1.Options", value=pb.RuntimeOptions(
                                   config_path=str(directory / "missing.toml")).SerializeToString()),
                                f"ConfigPath '{directory}/missing.toml': no such file or directory")):
            with pytest.raises(ttrpc.Error) as raised:
                call(client, "Create", pb.CreateTaskRequest(id=container_id, bundle=str(directory), options=options),
                     pb.CreateTaskResponse)
            assert raised.value.code == ttrpc.INVALID_ARGUMENT, raised.value
            assert named in raised.value.message, raised.value.message
        assert container_id not in state_dirs(f"/run/containerd/runc/{NAMESPACE}")
        assert not (directory / "options.json").exists()
        call(client, "Shutdown", pb.ShutdownRequest(id=container_id))
    finally:
        client.close()


def test_outstanding_waits_hold_no_thread(shim, bundle, rootfs_dir, container_id):
    """containerd keeps a Wait outstanding for every task all its life: the shim answers it
    at the exit without a thread blocked meanwhile (each one ≈ 20 kB of the process every
    pod shares), and still answers every Wait, with the exit status, once."""
    import threading
    from pyrunc.shim import shim_pb2 as pb
    from pyrunc.shim import ttrpc
    directory = bundle(lambda c: c["process"].__setitem__("args", ["sleep", "60"]),
                       name=container_id)
    config = json.loads((directory / "config.json").read_text())
    config["root"]["path"] = "rootfs"
    (directory / "config.json").write_text(json.dumps(config))
    client = shim(directory)
    pid = int((directory / "shim.pid").read_text())
    replies = []
    waiters = []
    try:
        request = pb.CreateTaskRequest(id=container_id, bundle=str(directory))
        request.rootfs.add(type="bind", source=str(rootfs_dir), options=["rbind", "ro"])
        call(client, "Create", request, pb.CreateTaskResponse)
        call(client, "Start", pb.StartRequest(id=container_id), pb.StartResponse)
        time.sleep(1.5)  # the request threads of Create and Start end (1 s idle)
        threads = len(os.listdir(f"/proc/{pid}/task"))

        def wait() -> None:
            other = ttrpc.Client((directory / "address").read_text())
            try:
                replies.append(call(other, "Wait", pb.WaitRequest(id=container_id), pb.WaitResponse))
            finally:
                other.close()
        waiters = [threading.Thread(target=wait) for _ in range(8)]
        for waiter in waiters:
            waiter.start()
        time.sleep(1.5)
        assert not replies
        # each connection has its reading thread; a Wait adds none
        assert len(os.listdir(f"/proc/{pid}/task")) <= threads + len(waiters) + 1
        call(client, "Kill", pb.KillRequest(id=container_id, signal=9))
        for waiter in waiters:
            waiter.join(10)
        assert [r.exit_status for r in replies] == [137] * len(waiters)
        call(client, "Delete", pb.DeleteRequest(id=container_id), pb.DeleteResponse)
        call(client, "Shutdown", pb.ShutdownRequest(id=container_id))
    finally:
        client.close()


def test_spawns_share_one_sealed_init(shim, bundle, rootfs_dir, container_id):
    """The resident process makes one sealed copy of pyrunc-init and every spawn executes
    it (a copy per spawn cost a memfd, an 800 kB copy and the seals each time); it stays
    sealed against writes."""
    import fcntl
    from pyrunc.shim import shim_pb2 as pb
    directories = []
    for i in range(2):
        directory = bundle(name=f"{container_id}-{i}")
        config = json.loads((directory / "config.json").read_text())
        config["root"]["path"] = "rootfs"
        (directory / "config.json").write_text(json.dumps(config))
        directories.append(directory)
    client = shim(directories[0])
    created = []
    try:
        inits = []
        for directory in directories:
            request = pb.CreateTaskRequest(id=directory.name, bundle=str(directory))
            request.rootfs.add(type="bind", source=str(rootfs_dir), options=["rbind", "ro"])
            inits.append(call(client, "Create", request, pb.CreateTaskResponse).pid)
            created.append(directory.name)
        # created, not started: each init is still pyrunc-init, run from the memfd
        executables = [os.stat(f"/proc/{pid}/exe") for pid in inits]
        assert os.readlink(f"/proc/{inits[0]}/exe").startswith("/memfd:pyrunc-init")
        assert executables[0].st_ino == executables[1].st_ino, "one sealed copy for both spawns"
        fd = os.open(f"/proc/{inits[0]}/exe", os.O_RDONLY)
        try:
            seals = fcntl.fcntl(fd, 1034)  # F_GET_SEALS
        finally:
            os.close(fd)
        assert seals & 0x8 and seals & 0x1, "sealed against writes and further seal changes"
    finally:
        for name in created:
            call(client, "Delete", pb.DeleteRequest(id=name), pb.DeleteResponse)
        call(client, "Shutdown", pb.ShutdownRequest(id=directories[0].name))
        client.close()


def test_workers_reuse_idle_threads_and_never_queue_a_call():
    """ttrpc's request threads: a call runs at once even while others block (Wait did),
    on an idle thread when there is one (no thread started per request), and an idle
    thread ends after `idle` seconds."""
    import threading
    from pyrunc.shim.ttrpc import Workers
    workers = Workers(idle=0.5)
    ran = []
    done = threading.Semaphore(0)

    def record() -> None:
        ran.append(threading.get_ident())
        done.release()
    for _ in range(10):
        workers.submit(record)
        assert done.acquire(timeout=5)
        time.sleep(0.01)  # the worker parks again
    assert len(set(ran)) == 1, "sequential calls reuse one thread"
    release = threading.Event()
    blocked = threading.Semaphore(0)

    def block() -> None:
        blocked.release()
        release.wait(10)
    for _ in range(3):
        workers.submit(block)
    assert all(blocked.acquire(timeout=5) for _ in range(3)), "a call queued behind a blocked one"
    workers.submit(record)
    assert done.acquire(timeout=5)
    release.set()
    time.sleep(1.5)
    assert not workers.parked, "idle threads end after `idle` seconds"


def resident_files(tmp_path) -> list[str]:
    """The resident shim process's control socket, work dir and cold start lock, those
    that exist, for the `shim` fixture's containerd address."""
    from pyrunc.shim.main import resident_path
    control = resident_path(str(tmp_path / "no-containerd.sock"), NAMESPACE)
    return [path for path in (control, control + ".d", control + ".lock") if os.path.exists(path)]


def exited(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] in "ZX"
    except OSError:
        return True


def test_resident_killed_next_start_and_delete_clean_up(shim, bundle, container_id, tmp_path):
    """A resident process killed by SIGKILL leaves its control socket, work dir and lock:
    the next cold `start` removes them and takes the control socket over (rather than
    serving its group alone beside a dead socket nobody removes), and `delete` removes
    a dead one's too."""
    from pyrunc.shim import shim_pb2 as pb
    first, second = bundle(name=f"{container_id}-0"), bundle(name=f"{container_id}-1")
    shim(first).close()
    killed = int((first / "shim.pid").read_text())
    control = resident_files(tmp_path)[0]
    os.kill(killed, 9)
    wait_until(lambda: exited(killed), 5, "the resident process to die")
    assert len(resident_files(tmp_path)) == 3  # what SIGKILL leaves

    client = shim(second)
    try:
        resident = int((second / "shim.pid").read_text())
        assert resident != killed
        # the new resident process listens on the control socket (the dead one's is gone)
        from pyrunc.shim.main import _connectable
        assert _connectable(control)
        assert len(resident_files(tmp_path)) == 3
        shim_delete(first, tmp_path)  # the killed one's task: the live resident's files stay
        assert _connectable(control) and len(resident_files(tmp_path)) == 3
        call(client, "Shutdown", pb.ShutdownRequest(id=second.name))
    finally:
        client.close()
    wait_until(lambda: exited(resident), 10, "the resident process to end")
    assert resident_files(tmp_path) == []

    # the same SIGKILL, cleaned up by containerd's `delete` of the dead shim's task
    third = bundle(name=f"{container_id}-2")
    shim(third).close()
    killed = int((third / "shim.pid").read_text())
    os.kill(killed, 9)
    wait_until(lambda: exited(killed), 5, "the resident process to die")
    shim_delete(third, tmp_path)
    assert resident_files(tmp_path) == []


def shim_delete(directory, tmp_path) -> None:
    """`containerd-shim-pyrunc-v2 delete` of the task of bundle `directory`, as containerd
    runs it when its shim's connection closes: its group's socket is gone afterwards."""
    from pyrunc.shim import shim_pb2 as pb
    result = subprocess.run([os.path.join(os.path.dirname(pyrunc_binary()), SHIM_NAME), "-namespace", NAMESPACE,
                             "-address", str(tmp_path / "no-containerd.sock"), "-id", directory.name,
                             "-bundle", str(directory), "delete"],
                            cwd=directory, capture_output=True, timeout=20, env={"PATH": os.environ["PATH"]})
    assert result.returncode == 0, result
    assert pb.DeleteResponse.FromString(result.stdout).exit_status == 137
    assert not os.path.exists((directory / "address").read_text().removeprefix("unix://"))


def test_resident_sigterm_ends_cleanly(shim, bundle, container_id, tmp_path):
    """SIGTERM ends the resident process as it ends runc's shim (its context cancelled):
    nothing of it is left, its groups' sockets included."""
    directory = bundle(name=container_id)
    shim(directory).close()
    resident = int((directory / "shim.pid").read_text())
    group = (directory / "address").read_text().removeprefix("unix://")
    os.kill(resident, 15)
    wait_until(lambda: exited(resident), 5, "the resident process to end")
    assert resident_files(tmp_path) == []
    assert not os.path.exists(group)


def test_resident_oom_score_above_containerd(shim, bundle, container_id):
    """As runc's shim (containerd's AdjustOOMScore): the shim's oom_score_adj is its
    parent's (containerd's) plus one, so that the OOM killer takes it before containerd.
    The resident process serves every pod of the namespace: docs/shim.md says what its
    OOM kill costs."""
    from pyrunc.shim import shim_pb2 as pb
    directory = bundle(name=container_id)
    # the parent of `start` (containerd here) at 300; `start` itself inherits it
    client = shim(directory, wrapper=["sh", "-c", 'echo 300 > /proc/$$/oom_score_adj && "$@"; exit $?', "sh"])
    try:
        resident = int((directory / "shim.pid").read_text())
        with open(f"/proc/{resident}/oom_score_adj") as f:
            assert f.read().strip() == "301"
        call(client, "Shutdown", pb.ShutdownRequest(id=container_id))
    finally:
        client.close()


@pytest.fixture
def created_task(shim, bundle, container_id):
    """A task of `sleep 60`, created (not started) with an exec process `e1` added (not
    started), and a client to its shim; deleted and shut down afterwards."""
    from pyrunc.shim import shim_pb2 as pb
    directory = bundle(args=["sleep", "60"], name=container_id)
    client = shim(directory)
    try:
        call(client, "Create", pb.CreateTaskRequest(id=container_id, bundle=str(directory)), pb.CreateTaskResponse)
        try:
            spec = pb.ExecProcessRequest(id=container_id, exec_id="e1")
            spec.spec.value = json.dumps({"args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0}}).encode()
            call(client, "Exec", spec)
            yield client
        finally:
            call(client, "Delete", pb.DeleteRequest(id=container_id), pb.DeleteResponse)
        call(client, "Shutdown", pb.ShutdownRequest(id=container_id))
    finally:
        client.close()


def test_kill_of_exec_not_started_is_a_state_error(created_task, container_id):
    """runc's shim (pkg/process/exec.go kill): an exec process never started is "process
    not created", errdefs.ErrFailedPrecondition, not NotFound (which containerd and CRI
    take for "already exited")."""
    from pyrunc.shim import shim_pb2 as pb
    from pyrunc.shim import ttrpc
    with pytest.raises(ttrpc.Error) as raised:
        call(created_task, "Kill", pb.KillRequest(id=container_id, exec_id="e1", signal=9))
    assert raised.value.code == ttrpc.FAILED_PRECONDITION, raised.value
    assert "process not created" in raised.value.message
    call(created_task, "Start", pb.StartRequest(id=container_id), pb.StartResponse)
    call(created_task, "Kill", pb.KillRequest(id=container_id, signal=9))
    call(created_task, "Wait", pb.WaitRequest(id=container_id), pb.WaitResponse)
    with pytest.raises(ttrpc.Error) as raised:  # an exited one: NotFound
        call(created_task, "Kill", pb.KillRequest(id=container_id, signal=9))
    assert raised.value.code == ttrpc.NOT_FOUND, raised.value


def test_resize_pty_without_terminal_is_no_error(created_task, container_id):
    """runc's shim (pkg/process Init.Resize, execProcess.resize): a process without a
    terminal has nothing to resize, and says so by succeeding."""
    from pyrunc.shim import shim_pb2 as pb
    for exec_id in ("", "e1"):
        call(created_task, "ResizePty", pb.ResizePtyRequest(id=container_id, exec_id=exec_id, width=80, height=24))


def test_state_as_runc_shim(created_task, container_id):
    """State as runc's shim answers it (runtime/v2/runc/v2/service.go): exited_at is Go's
    zero time until the exit (a Timestamp of 0001-01-01, never absent), id is the
    process's (exec id or task id) with exec_id unset, and an exec'd process of a paused
    container is paused (pkg/process/exec.go Status)."""
    from pyrunc.shim import shim_pb2 as pb
    go_zero_seconds = -62135596800  # Go's time.Time{}: 0001-01-01T00:00:00Z

    def state(exec_id: str = ""):
        return call(created_task, "State", pb.StateRequest(id=container_id, exec_id=exec_id), pb.StateResponse)
    for exec_id in ("e1", ""):
        got = state(exec_id)
        assert (got.id, got.exec_id, got.status) == (exec_id or container_id, "", pb.CREATED)
        assert got.HasField("exited_at") and got.exited_at.ToJsonString() == "0001-01-01T00:00:00Z", got
    call(created_task, "Start", pb.StartRequest(id=container_id), pb.StartResponse)
    call(created_task, "Pause", pb.PauseRequest(id=container_id))
    try:
        assert [state(exec_id).status for exec_id in ("e1", "")] == [pb.PAUSED, pb.PAUSED]
    finally:
        call(created_task, "Resume", pb.ResumeRequest(id=container_id))
    got = state()
    assert got.status == pb.RUNNING and got.exited_at.seconds == go_zero_seconds
    call(created_task, "Kill", pb.KillRequest(id=container_id, signal=9))
    waited = call(created_task, "Wait", pb.WaitRequest(id=container_id), pb.WaitResponse)
    assert waited.exit_status == 137 and waited.exited_at.seconds > 0
    got = state()
    assert (got.status, got.exit_status, got.exited_at) == (pb.STOPPED, 137, waited.exited_at)
    # an exec never started, deleted: runc's shim's zero time too
    deleted = call(created_task, "Delete", pb.DeleteRequest(id=container_id, exec_id="e1"), pb.DeleteResponse)
    assert deleted.exited_at.seconds == go_zero_seconds


def test_init_exit_kills_the_rest_without_own_pid_namespace(shim, bundle, container_id):
    """runc's shim (shouldKillAllOnExit): a container with no pid namespace of its own (a
    pod's shared one, the host's) keeps its other processes when its init exits; they are
    killed before the exit is reported. Kill with `all` of the exited init then succeeds, as
    `runc kill --all` of a stopped container does."""
    from pyrunc.shim import shim_pb2 as pb

    def no_pid_namespace(config):
        config["linux"]["namespaces"] = [n for n in config["linux"]["namespaces"] if n["type"] != "pid"]
    directory = bundle(no_pid_namespace, args=["sh", "-c", "sleep 60 & sleep 1"], name=container_id)
    client = shim(directory)
    try:
        call(client, "Create", pb.CreateTaskRequest(id=container_id, bundle=str(directory)), pb.CreateTaskResponse)
        try:
            call(client, "Start", pb.StartRequest(id=container_id), pb.StartResponse)

            def background() -> list[int]:
                pids = call(client, "Pids", pb.PidsRequest(id=container_id), pb.PidsResponse).processes
                found = []
                for info in pids:
                    try:
                        with open(f"/proc/{info.pid}/cmdline", "rb") as f:
                            if f.read() == b"sleep\0" + b"60\0":
                                found.append(info.pid)
                    except OSError:
                        pass
                return found
            sleeper = wait_until(background, 5, "the background sleep")[0]
            waited = call(client, "Wait", pb.WaitRequest(id=container_id), pb.WaitResponse)
            assert waited.exit_status == 0
            # SIGKILLed before the exit was reported; it dies once it is scheduled (a
            # loaded machine may take a moment), not after its 60 s
            wait_until(lambda: exited(sleeper), 2, "the init's background process to be killed")
            call(client, "Kill", pb.KillRequest(id=container_id, signal=9, all=True))
        finally:
            call(client, "Delete", pb.DeleteRequest(id=container_id), pb.DeleteResponse)
        call(client, "Shutdown", pb.ShutdownRequest(id=container_id))
    finally:
        client.close()
