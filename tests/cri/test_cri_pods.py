"""Pods through Kubernetes' exact path to a runtime: a CRI v1 client (what the kubelet
speaks) → containerd's CRI plugin → containerd-shim-runc-v2 → the handler's binary. Every
scenario runs with the RuntimeClass handler `pyrunc` and with `runc` as the control, and
checks what the container sees (ExecSync) as well as what the host sees (namespaces,
cgroups, processes, runtime state). See cri_support.py for how containerd is kept private.
"""
from __future__ import annotations

import json
import os
import time

import grpc
import pytest

from cri_support import (  # noqa: F401  (fixtures are found by name)
    BUSYBOX_IMAGE,
    HANDLERS,
    KUBELET_MASKED_PATHS,
    KUBELET_READONLY_PATHS,
    NODE_HOSTNAME,
    PAUSE_IMAGE,
    POD_SUBNET_PREFIX,
    RUNC,
    Pod,
    cgroup_dirs_below,
    cgroup_file,
    cri,
    cri_cgroup_parent,
    cri_images,
    processes_in_cgroups,
    residue_of,
    unique_name,
    wait_until,
)

MiB = 1 << 20
POD_SYSCTLS = {"kernel.shm_rmid_forced": "1", "net.ipv4.ip_unprivileged_port_start": "1234"}
# The v1 hierarchies a runtime must put every container process in (ENGINES.md: stats,
# update and pause read the cgroup of linux.cgroupsPath in each of them).
CONTROLLERS = ("blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "memory", "pids")


@pytest.fixture(scope="module", params=HANDLERS)
def handler(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def pod(cri, handler):
    """A pod with its own network (CNI bridge), run with `handler`; removed at the end and
    checked to leave nothing."""
    pod = Pod(cri, handler, unique_name(f"pod-{handler}"), sysctls=POD_SYSCTLS)
    try:
        pod.run()
        yield pod
    finally:
        if pod.id:
            netns = sandbox_netns_path(pod)
            pod.remove()
            problems = residue_of(pod, netns)
            assert not problems, f"after removing pod {pod.name}: {problems}"


@pytest.fixture(scope="module")
def app(pod) -> str:
    """A long-running container in the module's pod (pid 1 of its own pid namespace)."""
    return pod.run_container("app", ["sleep", "3600"], envs={"GREETING": "hello pod"},
                             resources=dict(oom_score_adj=500))


# ---------------------------------------------------------------------------------------
# Host-side views


def namespace_of(pid: int, kind: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{kind}")


def cgroups_of(pid: int) -> dict[str, str]:
    """controller (or hierarchy name) -> cgroup path, from /proc/<pid>/cgroup (v1 only)."""
    result = {}
    for line in open(f"/proc/{pid}/cgroup").read().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(","):
            if controller:
                result[controller] = path
    return result


def cmdline_of(pid: int) -> list[str]:
    return open(f"/proc/{pid}/cmdline", "rb").read().decode().split("\0")[:-1]


def assert_runs(pid: int, expected: list[str]) -> None:
    """The container's init has exec'd `expected`: `start` returns once the user process
    is released, which may be a moment before its execve (runc's init too)."""
    try:
        wait_until(lambda: cmdline_of(pid) == expected, 5, f"pid {pid} to exec {expected}")
    except AssertionError:
        assert cmdline_of(pid) == expected


def state_written_by(cri, container_id: str) -> str:
    """Which runtime wrote the container's state dir in the shim's runtime root: runc's
    state.json (libcontainer) has init_process_pid, pyrunc's has pid."""
    path = os.path.join(cri.runtime_root(), container_id, "state.json")
    with open(path) as f:
        data = json.load(f)
    if "init_process_pid" in data:
        return "runc"
    if "pid" in data:
        return "pyrunc"
    return f"unknown ({sorted(data)})"


def sandbox_netns_path(pod: Pod) -> str:
    spec = pod.info()["runtimeSpec"]
    return next((n.get("path", "") for n in spec["linux"]["namespaces"] if n["type"] == "network"), "")


def bundle_namespaces(cri, container_id: str) -> dict[str, str]:
    """type -> path ("" = a new namespace) from the config.json the runtime was given."""
    config = json.loads((cri.bundle(container_id) / "config.json").read_text())
    return {n["type"]: n.get("path", "") for n in config["linux"]["namespaces"]}


def assert_in_cgroup(cri, pid: int, container_id: str) -> None:
    expected = f"{cri.cgroup_parent}/{container_id}"
    found = cgroups_of(pid)
    wrong = {c: found.get(c) for c in CONTROLLERS if found.get(c) != expected}
    assert not wrong, f"pid {pid} should be in {expected} in every hierarchy; it is in {wrong}"


# ---------------------------------------------------------------------------------------
# The runtime service itself


def test_version_and_status(cri):
    version = cri.client.Version(version="v1")
    assert version.runtime_name == "containerd"
    assert version.runtime_api_version == "v1"
    assert version.runtime_version.startswith("1.")

    def conditions():
        found = {c.type: c.status for c in cri.client.Status(verbose=True).status.conditions}
        return found if found.get("NetworkReady") else None

    # NetworkReady turns true once the CNI config syncer has loaded our conflist.
    found = wait_until(conditions, 20, "the CRI plugin to report NetworkReady")
    assert found == {"RuntimeReady": True, "NetworkReady": True}
    info = json.loads(cri.client.Status(verbose=True).info["config"])
    runtimes = info["containerd"]["runtimes"]
    assert runtimes["pyrunc"]["runtimeType"] == "io.containerd.runc.v2"
    assert runtimes["pyrunc"]["options"]["BinaryName"] == cri.pyrunc
    assert runtimes["runc"]["options"]["BinaryName"] == RUNC


def test_images_are_known_to_cri(cri):
    for reference in (BUSYBOX_IMAGE, PAUSE_IMAGE):
        image = cri.client.ImageStatus(image=cri.client.pb.ImageSpec(image=reference)).image
        assert reference in image.repo_tags, f"{reference}: {image}"
        assert image.size > 0
    listed = {tag for image in cri.client.ListImages().images for tag in image.repo_tags}
    assert {BUSYBOX_IMAGE, PAUSE_IMAGE} <= listed


# ---------------------------------------------------------------------------------------
# Sandbox and containers


def test_pod_sandbox_status(cri, pod, handler):
    pb = cri.client.pb
    status = pod.status().status
    assert status.id == pod.id
    assert status.state == pb.SANDBOX_READY
    assert status.runtime_handler == handler
    assert status.metadata.name == pod.name
    assert status.labels["pyrunc-test"] == pod.name
    assert status.created_at > 0
    assert status.network.ip.startswith(POD_SUBNET_PREFIX), status.network
    assert status.linux.namespaces.options.network == pb.POD
    assert status.linux.namespaces.options.pid == pb.CONTAINER

    info = pod.info()
    assert info["runtimeHandler"] == handler
    expected_binary = cri.pyrunc if handler == "pyrunc" else RUNC
    assert expected_binary in json.dumps(info["runtimeOptions"]), info["runtimeOptions"]
    # The sandbox's init: catatonit in pause mode, from our offline pause image.
    sandbox_pid = pod.pid()
    assert_runs(sandbox_pid, ["/catatonit", "-P"])
    assert_in_cgroup(cri, sandbox_pid, pod.id)
    assert cgroup_file("cpu", f"{cri.cgroup_parent}/{pod.id}", "cpu.shares") == "2"
    # Its own network and UTS namespaces, not containerd's (the "node").
    for kind in ("net", "uts", "ipc", "mnt"):
        assert namespace_of(sandbox_pid, kind) != namespace_of(cri.pid, kind), kind
    assert state_written_by(cri, pod.id) == handler


def test_container_joins_sandbox_namespaces(cri, pod, handler):
    pb = cri.client.pb
    sandbox_pid = pod.pid()
    container_id = pod.create("joiner", ["sleep", "3600"])
    try:
        status = pod.container_status(container_id).status
        assert status.state == pb.CONTAINER_CREATED
        assert status.metadata.name == "joiner"
        # CRI's CreateContainer only records the container: the runtime's `create` and
        # `start` both happen in StartContainer.
        assert not cri.bundle(container_id).exists()

        pod.start(container_id)
        # What the runtime was asked: join the sandbox's ipc, uts and net by path; new
        # pid and mount namespaces.
        namespaces = bundle_namespaces(cri, container_id)
        assert namespaces["ipc"] == f"/proc/{sandbox_pid}/ns/ipc"
        assert namespaces["uts"] == f"/proc/{sandbox_pid}/ns/uts"
        assert namespaces["network"] in (f"/proc/{sandbox_pid}/ns/net", sandbox_netns_path(pod))
        assert namespaces["pid"] == "" and namespaces["mount"] == ""
        status = pod.container_status(container_id).status
        assert status.state == pb.CONTAINER_RUNNING
        assert status.started_at >= status.created_at > 0
        pid = pod.container_pid(container_id)
        assert_runs(pid, ["sleep", "3600"])
        for kind in ("ipc", "uts", "net"):
            assert namespace_of(pid, kind) == namespace_of(sandbox_pid, kind), kind
        for kind in ("pid", "mnt"):
            assert namespace_of(pid, kind) != namespace_of(sandbox_pid, kind), kind
        assert_in_cgroup(cri, pid, container_id)
        assert state_written_by(cri, container_id) == handler
        listed = pod.rpc("ListContainers", filter=pb.ContainerFilter(pod_sandbox_id=pod.id)).containers
        assert container_id in [c.id for c in listed]
    finally:
        pod.stop_container(container_id, 0)
        pod.remove_container(container_id)


def test_exec_sync_stdout_stderr_exit_code(pod, app):
    response = pod.exec(app, ["sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 3"])
    assert response.stdout == b"to-stdout\n"
    assert response.stderr == b"to-stderr\n"
    assert response.exit_code == 3
    response = pod.exec(app, ["true"])
    assert (response.exit_code, response.stdout, response.stderr) == (0, b"", b"")


def test_exec_sync_sees_the_pod(pod, app):
    output = pod.sh(app, r"""
echo "pid1: $(tr '\0' ' ' < /proc/1/cmdline)"
echo "self is pid 1: $([ $$ = 1 ] && echo yes || echo no)"
echo "hostname: $(hostname)"
echo "shm_rmid_forced: $(cat /proc/sys/kernel/shm_rmid_forced)"
echo "ip_unprivileged_port_start: $(cat /proc/sys/net/ipv4/ip_unprivileged_port_start)"
echo "greeting: $GREETING"
echo "uid: $(id -u) $(id -g)"
echo "eth0: $(ip -4 addr show dev eth0 | grep -o 'inet [0-9.]*')"
echo "pid1 fds: $(ls /proc/1/fd | sort -n | tr '\n' ' ')"
echo "oom_score_adj: $(cat /proc/1/oom_score_adj) $(cat /proc/self/oom_score_adj)"
echo "resolv.conf: $(grep -E '^(nameserver|search)' /etc/resolv.conf | tr '\n' ' ')"
echo "/etc/hostname: $(cat /etc/hostname)"
echo "shm: $(grep -c ' /dev/shm ' /proc/self/mounts)"
echo "userns: $(unshare -U true 2>&1 && echo ok)"
""")
    pod_ip = pod.status().status.network.ip
    assert output.splitlines() == [
        "pid1: sleep 3600 ",
        "self is pid 1: no",
        f"hostname: {pod.name}",
        "shm_rmid_forced: 1",
        "ip_unprivileged_port_start: 1234",
        "greeting: hello pod",
        "uid: 0 0",
        f"eth0: inet {pod_ip}",
        # nothing but stdio: the shim's stray fd 3 (its socket) must not reach the init
        "pid1 fds: 0 1 2 ",
        # the container's oomScoreAdj, for its init and for an exec'd process
        "oom_score_adj: 500 500",
        "resolv.conf: search pyrunc.test nameserver 127.0.0.53 ",
        f"/etc/hostname: {pod.name}",
        "shm: 1",
        # no seccomp profile asked for: unconfined (the locked-down container's differs)
        "userns: ok",
    ]


def test_sysfs_is_the_pods(pod, app):
    """The container's /sys is a sysfs of the pod's network namespace (the one it joined
    by path), as runc mounts it: its interfaces are the pod's, and nothing of the host's
    /sys (e.g. the host's whole cgroup tree) lies beneath the container's mounts."""
    output = pod.sh(app, "ls /sys/class/net | tr '\\n' ' '; echo; "
                         "sed 1,2d /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\\n' ' '; echo; "
                         "cut -d' ' -f5 /proc/self/mountinfo | grep '^/sys' | sort")
    sys_class_net, proc_net_dev, *mountpoints = output.splitlines()
    assert proc_net_dev.split() == ["eth0", "lo"]
    problems = []
    if sorted(sys_class_net.split()) != ["eth0", "lo"]:
        problems.append(f"/sys/class/net shows {sys_class_net.split()}, not the pod's [eth0, lo]")
    stacked = sorted({m for m in mountpoints if mountpoints.count(m) > 1})
    if stacked:
        problems.append(f"mounted more than once (shadowed mounts beneath): {stacked}")
    assert not problems, "; ".join(problems)


def test_exec_sync_timeout(cri, pod, app):
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as raised:
        cri.client.ExecSync(container_id=app, cmd=["sleep", "30"], timeout=2, deadline=60)
    elapsed = time.monotonic() - started
    assert "timeout" in raised.value.details(), raised.value.details()
    assert 1.9 <= elapsed < 15, f"ExecSync with timeout 2 returned after {elapsed:.1f}s"
    # The timed-out process is killed, and the container still takes execs.
    app_cgroup = f"{cri.cgroup_parent}/{app}"
    wait_until(lambda: not [p for p in processes_in_cgroups([app_cgroup]) if "sleep 30" in p],
               10, "the timed-out `sleep 30` to be killed")
    assert pod.sh(app, "echo alive") == "alive\n"


def test_cgroup_limits_create_update_and_inside(cri, pod):
    pb = cri.client.pb
    container_id = pod.create("limited", ["sleep", "3600"], resources=dict(
        cpu_period=100000, cpu_quota=50000, cpu_shares=512, memory_limit_in_bytes=64 * MiB,
        cpuset_cpus="0"))
    path = f"{cri.cgroup_parent}/{container_id}"
    has_swap = os.path.exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")

    def limits() -> dict[str, str]:
        found = {
            "memory": cgroup_file("memory", path, "memory.limit_in_bytes"),
            "quota": cgroup_file("cpu", path, "cpu.cfs_quota_us"),
            "period": cgroup_file("cpu", path, "cpu.cfs_period_us"),
            "shares": cgroup_file("cpu", path, "cpu.shares"),
            "cpus": cgroup_file("cpuset", path, "cpuset.cpus"),
        }
        if has_swap:
            found["memsw"] = cgroup_file("memory", path, "memory.memsw.limit_in_bytes")
        return found

    def expected(memory: int, quota: int, shares: int) -> dict[str, str]:
        values = {"memory": str(memory), "quota": str(quota), "period": "100000",
                  "shares": str(shares), "cpus": "0"}
        if has_swap:
            values["memsw"] = str(memory)  # CRI sets swap = memory when none is asked
        return values

    try:
        # CRI's StartContainer runs the runtime's `create` (which applies the limits) and
        # then `start`: the first moment the host can read them.
        pod.start(container_id)
        assert limits() == expected(64 * MiB, 50000, 512), pod.diagnose()
        # Raising memory (memsw must grow first) ...
        pod.rpc("UpdateContainerResources", container_id=container_id, linux=pb.LinuxContainerResources(
            cpu_period=100000, cpu_quota=25000, cpu_shares=256, memory_limit_in_bytes=96 * MiB))
        assert limits() == expected(96 * MiB, 25000, 256)
        # ... and lowering it (memory must shrink first).
        pod.rpc("UpdateContainerResources", container_id=container_id, linux=pb.LinuxContainerResources(
            cpu_period=100000, cpu_quota=30000, cpu_shares=300, memory_limit_in_bytes=48 * MiB))
        assert limits() == expected(48 * MiB, 30000, 300)

        # The container sees its own cgroup, read-only, at /sys/fs/cgroup/<hierarchy>.
        inside = pod.sh(container_id, "cat /sys/fs/cgroup/memory/memory.limit_in_bytes "
                                      "/sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.shares")
        assert inside.split() == [str(48 * MiB), "30000", "300"]
        write = pod.exec(container_id, ["sh", "-c", "echo 1 > /sys/fs/cgroup/memory/memory.limit_in_bytes"])
        assert write.exit_code != 0
        assert b"Read-only file system" in write.stderr, write.stderr
        mounts = pod.sh(container_id, "cat /proc/self/mounts")
        options = {f[1]: f[3].split(",") for f in (line.split() for line in mounts.splitlines())}
        assert "ro" in options["/sys/fs/cgroup/memory"], options.get("/sys/fs/cgroup/memory")
        assert cgroup_file("memory", path, "memory.limit_in_bytes") == str(48 * MiB)
    finally:
        pod.stop_container(container_id, 0)
        pod.remove_container(container_id)


def test_container_stats(cri, pod, app):
    pb = cri.client.pb
    before = pod.rpc("ContainerStats", container_id=app).stats
    assert before.attributes.id == app
    assert before.attributes.metadata.name == "app"
    assert before.cpu.timestamp > 0 and before.memory.timestamp > 0
    assert before.memory.usage_bytes.value > 0, before.memory
    # CPU burnt by an exec'd process counts: it must run in the container's cgroup.
    pod.sh(app, "i=0; while [ $i -lt 40000 ]; do i=$((i+1)); done")
    after = pod.rpc("ContainerStats", container_id=app).stats
    burnt = after.cpu.usage_core_nano_seconds.value - before.cpu.usage_core_nano_seconds.value
    assert burnt >= 20_000_000, f"only {burnt} ns of CPU accounted to the container"

    listed = pod.rpc("ListContainerStats", filter=pb.ContainerStatsFilter(pod_sandbox_id=pod.id)).stats
    by_id = {s.attributes.id: s for s in listed}
    assert app in by_id, list(by_id)
    assert by_id[app].cpu.usage_core_nano_seconds.value >= after.cpu.usage_core_nano_seconds.value
    assert by_id[app].memory.working_set_bytes.value > 0


def test_stop_container_by_sigterm(cri, pod):
    pb = cri.client.pb
    name = "graceful"
    container_id = pod.run_container(name, ["sh", "-c",
        'trap "echo got SIGTERM; exit 0" TERM; echo ready; while :; do sleep 1 & wait $!; done'])
    try:
        wait_until(lambda: "ready" in pod.container_log(name), 20, "the container to trap SIGTERM")
        elapsed = pod.stop_container(container_id, 30)
        assert elapsed < 10, f"StopContainer took {elapsed:.1f}s: SIGTERM was not delivered"
        status = pod.container_status(container_id).status
        assert status.state == pb.CONTAINER_EXITED
        assert (status.exit_code, status.reason) == (0, "Completed")
        assert status.finished_at >= status.started_at > 0
        assert "got SIGTERM" in pod.container_log(name)
    finally:
        pod.remove_container(container_id)


def test_stop_container_ignoring_sigterm(cri, pod):
    pb = cri.client.pb
    name = "stubborn"
    container_id = pod.run_container(name, ["sh", "-c",
        'trap "echo ignoring SIGTERM" TERM; echo ready; while :; do sleep 1; done'])
    try:
        wait_until(lambda: "ready" in pod.container_log(name), 20, "the container to trap SIGTERM")
        elapsed = pod.stop_container(container_id, 2)
        assert 1.9 <= elapsed < 15, f"StopContainer with timeout 2 took {elapsed:.1f}s"
        status = pod.container_status(container_id).status
        assert status.state == pb.CONTAINER_EXITED
        assert (status.exit_code, status.reason) == (137, "Error")
        assert "ignoring SIGTERM" in pod.container_log(name)
    finally:
        pod.remove_container(container_id)


def test_container_exiting_on_its_own(cri, pod):
    name = "seven"
    # The working directory is not in the image: the runtime creates it (as runc does).
    container_id = pod.run_container(name, ["sh", "-c", "pwd; echo bye; exit 7"],
                                     working_dir="/srv/not/in/image")
    try:
        status = pod.wait_exited(container_id)
        assert (status.exit_code, status.reason) == (7, "Error")
        # (a container this short may finish before containerd stamps started_at)
        assert status.finished_at > 0 and status.started_at > 0
        assert pod.container_log(name) == "/srv/not/in/image\nbye"
        # An exited container takes no exec.
        with pytest.raises(AssertionError, match="ExecSync failed"):
            pod.exec(container_id, ["true"])
    finally:
        pod.remove_container(container_id)


def test_oom_killed_container(cri, pod):
    """A container going over its memory limit is killed by the kernel in its own cgroup;
    the shim learns it from that cgroup's OOM events, so CRI reports OOMKilled."""
    pb = cri.client.pb
    # 48 MiB: the runtime's own init runs in the cgroup before the exec (runc's Go init
    # alone can come near 16 MiB); dd's 256 MiB buffer is far over it.
    container_id = pod.run_container("hog", ["dd", "if=/dev/zero", "of=/dev/null", "bs=256M", "count=1"],
                                     resources=dict(memory_limit_in_bytes=48 * MiB))
    try:
        status = pod.wait_exited(container_id)
        # The shim's OOM event can reach the CRI plugin just after the exit event (which
        # sets reason "Error" first): wait a moment for the OOM to be recorded.
        try:
            wait_until(lambda: pod.container_status(container_id).status.reason == "OOMKilled", 5,
                       "reason OOMKilled")
        except AssertionError:
            pass
        status = pod.container_status(container_id).status
        assert (status.exit_code, status.reason) == (137, "OOMKilled"), (status.exit_code, status.reason)
    finally:
        pod.remove_container(container_id)


def test_locked_down_container(cri, pod):
    pb = cri.client.pb
    container_id = pod.run_container("locked", ["sleep", "3600"], security=dict(
        run_as_user=pb.Int64Value(value=65534),
        run_as_group=pb.Int64Value(value=65534),
        capabilities=pb.Capability(drop_capabilities=["ALL"]),
        no_new_privs=True,
        seccomp=pb.SecurityProfile(profile_type=pb.SecurityProfile.RuntimeDefault),
        readonly_rootfs=True,
        masked_paths=KUBELET_MASKED_PATHS,
        readonly_paths=KUBELET_READONLY_PATHS,
    ))
    try:
        masked = " ".join(KUBELET_MASKED_PATHS)
        output = pod.sh(container_id, rf"""
echo "ids: $(id -u) $(id -g)"
for pid in 1 self; do
    grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/$pid/status |
        tr -s '\t ' ' ' | sed "s/^/$pid /"
done
echo "root write: $(touch /probe 2>&1 | grep -o 'Read-only file system')"
echo "userns: $(unshare -U true 2>&1 | grep -o 'Operation not permitted')"
for p in {masked}; do
    if [ -d $p ]; then echo "masked $p dir $(ls -A $p 2>/dev/null | wc -l)"
    elif [ -e $p ]; then echo "masked $p $(stat -c %t:%T $p)"
    else echo "masked $p absent"; fi
done
""")
        lines = output.splitlines()
        assert lines[0] == "ids: 65534 65534"
        zero = "0000000000000000"
        for who in ("1", "self"):
            status = dict(l.split(" ", 2)[1:] for l in lines if l.startswith(who + " "))
            assert status == {"CapInh:": zero, "CapPrm:": zero, "CapEff:": zero, "CapBnd:": zero,
                              "CapAmb:": zero, "NoNewPrivs:": "1", "Seccomp:": "2"}, (who, status)
        assert "root write: Read-only file system" in lines
        # RuntimeDefault refuses CLONE_NEWUSER without CAP_SYS_ADMIN (unconfined allows it)
        assert "userns: Operation not permitted" in lines
        for path in KUBELET_MASKED_PATHS:
            if os.path.isdir(path):
                expected = f"masked {path} dir 0"
            elif os.path.exists(path):
                expected = f"masked {path} 1:3"  # /dev/null bound over it
            else:
                expected = f"masked {path} absent"
            assert expected in lines, (expected, [l for l in lines if l.startswith("masked")])

        mountinfo = pod.sh(container_id, "cat /proc/self/mountinfo")
        options = {}
        for line in mountinfo.splitlines():
            fields = line.split()
            options[fields[4]] = fields[5].split(",")  # the last mount on a path wins
        for path in KUBELET_READONLY_PATHS:
            if os.path.exists(path):
                assert "ro" in options.get(path, []), (path, options.get(path))
        assert "ro" in options["/"], options["/"]
    finally:
        pod.stop_container(container_id, 0)
        pod.remove_container(container_id)


def test_tty_container(cri, pod):
    name = "terminal"
    container_id = pod.run_container(name, ["sh", "-c", "tty; echo tty-ready; exec sleep 3600"], tty=True)
    try:
        wait_until(lambda: "tty-ready" in pod.container_log(name), 20, "the tty container's output")
        log = pod.container_log(name).replace("\r", "")
        assert log.splitlines()[:2] == ["/dev/pts/0", "tty-ready"], log
        output = pod.sh(container_id, "for fd in 0 1 2; do readlink /proc/1/fd/$fd; done; "
                                      "cut -d' ' -f7 /proc/1/stat")
        lines = output.split()
        assert lines[:3] == ["/dev/pts/0"] * 3
        assert lines[3] != "0", "pid 1 has no controlling terminal"
    finally:
        pod.stop_container(container_id, 0)
        pod.remove_container(container_id)


def test_remove_running_container(cri, pod):
    """RemoveContainer on a running container stops it by force first (kubelet relies on
    it when it gives up on a container)."""
    pb = cri.client.pb
    container_id = pod.run_container("doomed", ["sleep", "3600"])
    pid = pod.container_pid(container_id)
    pod.remove_container(container_id)
    listed = pod.rpc("ListContainers", filter=pb.ContainerFilter(id=container_id)).containers
    assert not listed
    wait_until(lambda: not os.path.exists(f"/proc/{pid}"), 10, f"pid {pid} to be gone")
    assert not cri.bundle(container_id).exists()
    assert container_id not in cri.runtime_state_ids()
    wait_until(lambda: not [d for d in cgroup_dirs_below(cri.cgroup_parent) if d.endswith("/" + container_id)],
               10, "the container's cgroups to be removed")


# ---------------------------------------------------------------------------------------
# A shared-pid pod, a host-network pod, and the end of a pod


def test_shared_pid_namespace_pod(cri, handler):
    """shareProcessNamespace: containers join the sandbox's pid namespace by path, the
    sandbox's catatonit is their pid 1, and when a container's init exits its leftover
    children must go with it (the shim's `kill --all ID 9`, then the runtime's `delete`)."""
    pb = cri.client.pb
    pod = Pod(cri, handler, unique_name(f"sharedpid-{handler}"), share_pid=True)
    try:
        pod.run()
        sandbox_pid = pod.pid()
        watcher = pod.run_container("watcher", ["sleep", "3600"])
        parent = pod.run_container("parent", ["sh", "-c", "sleep 3602 & exec sleep 3601"])
        assert bundle_namespaces(cri, watcher)["pid"] == f"/proc/{sandbox_pid}/ns/pid"
        assert namespace_of(pod.container_pid(watcher), "pid") == namespace_of(sandbox_pid, "pid")
        output = pod.sh(watcher, "tr '\\0' ' ' < /proc/1/cmdline; echo; "
                                 "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline; echo; done")
        lines = [l.strip() for l in output.splitlines()]
        assert lines[0] == "/catatonit -P"
        assert {"sleep 3600", "sleep 3601", "sleep 3602"} <= set(lines), lines

        parent_cgroup = f"{cri.cgroup_parent}/{parent}"
        assert len(processes_in_cgroups([parent_cgroup])) == 2
        pod.stop_container(parent, 10)
        status = pod.container_status(parent).status
        assert (status.state, status.exit_code) == (pb.CONTAINER_EXITED, 143)
        # The background `sleep 3602` outlived the init (it is catatonit's now).
        wait_until(lambda: not processes_in_cgroups([parent_cgroup]), 10,
                   "the exited container's leftover child to be killed")
        assert "sleep 3602" not in pod.sh(watcher, "cat /proc/[0-9]*/cmdline | tr '\\0' ' '")
    finally:
        if pod.id:
            pod.remove()
    problems = residue_of(pod)
    assert not problems, problems


def test_host_network_pod(cri, handler):
    pb = cri.client.pb
    pod = Pod(cri, handler, unique_name(f"hostnet-{handler}"), host_network=True,
              sysctls={"kernel.shm_rmid_forced": "1"})
    try:
        pod.run()
        status = pod.status().status
        assert status.state == pb.SANDBOX_READY
        assert status.linux.namespaces.options.network == pb.NODE
        sandbox_pid = pod.pid()
        container_id = pod.run_container("hostnet", ["sleep", "3600"])
        pid = pod.container_pid(container_id)
        # The node's network and UTS namespaces are containerd's (private to the test).
        for kind in ("net", "uts"):
            assert namespace_of(sandbox_pid, kind) == namespace_of(cri.pid, kind), kind
            assert namespace_of(pid, kind) == namespace_of(cri.pid, kind), kind
        assert namespace_of(pid, "ipc") == namespace_of(sandbox_pid, "ipc") != namespace_of(cri.pid, "ipc")
        output = pod.sh(container_id, "hostname; cat /proc/sys/kernel/shm_rmid_forced; "
                                      "sed 1,2d /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort")
        lines = output.splitlines()
        assert lines[:2] == [NODE_HOSTNAME, "1"]
        node_devices = sorted(line.split(":")[0].strip()
                              for line in open(f"/proc/{cri.pid}/net/dev").read().splitlines()[2:])
        assert lines[2:] == node_devices
        assert "lo" in node_devices
        # A sysfs of the node's network namespace (containerd's here), not the machine's.
        sys_class_net = pod.sh(container_id, "ls /sys/class/net").split()
        assert sorted(sys_class_net) == node_devices, (
            f"/sys/class/net shows {sys_class_net}, the node's interfaces are {node_devices}")
    finally:
        if pod.id:
            pod.remove()
    problems = residue_of(pod)
    assert not problems, problems


def test_stop_and_remove_pod_leaves_nothing(cri, handler):
    pb = cri.client.pb
    pod = Pod(cri, handler, unique_name(f"gone-{handler}"), sysctls=POD_SYSCTLS)
    try:
        pod.run()
        netns = sandbox_netns_path(pod)
        assert netns and os.path.exists(cri.in_namespace(netns)), netns
        sandbox_pid = pod.pid()
        running = pod.run_container("running", ["sleep", "3600"])
        running_pid = pod.container_pid(running)
        exited = pod.run_container("exited", ["true"])
        assert pod.wait_exited(exited).exit_code == 0
        created = pod.create("created", ["sleep", "3600"])

        pod.rpc("StopPodSandbox", pod_sandbox_id=pod.id)
        assert pod.status(verbose=False).status.state == pb.SANDBOX_NOTREADY
        status = pod.container_status(running).status
        assert (status.state, status.exit_code) == (pb.CONTAINER_EXITED, 137)
        for pid in (sandbox_pid, running_pid):
            wait_until(lambda: not os.path.exists(f"/proc/{pid}"), 10, f"pid {pid} to be gone")
        # Idempotent, as the kubelet expects.
        pod.rpc("StopPodSandbox", pod_sandbox_id=pod.id)

        pod.rpc("RemovePodSandbox", pod_sandbox_id=pod.id)
        for container_id in (running, exited, created):
            assert not cri.bundle(container_id).exists()
        problems = residue_of(pod, netns)
        assert not problems, f"{problems}\n{pod.diagnose()}"
        pod.id = ""  # removed: nothing for the cleanup below
    finally:
        if pod.id:
            pod.remove()
