"""Namespaces, checked from inside the container: each new namespace type differs from
the caller's, a type left out is shared with the caller, joining by path lands in the
other container's namespaces, user namespaces map ids, cgroup and time namespaces
virtualise what they should, a new network namespace has lo up.

"The caller" is the pytest process (itself in a private mount+IPC namespace): pyrunc
inherits its namespaces, so anything not made new must read the same inode as
os.readlink(f"/proc/self/ns/{name}") here.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from support import init_pid, run_ok

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")

# spec namespace type -> file under /proc/<pid>/ns
NS_FILES = {
    "pid": "pid",
    "network": "net",
    "mount": "mnt",
    "ipc": "ipc",
    "uts": "uts",
    "cgroup": "cgroup",
    "user": "user",
    "time": "time",
}
RUNC_DEFAULT_NAMESPACES = ["pid", "network", "ipc", "uts", "mount"]
ID_MAPPING = [{"containerID": 0, "hostID": 100000, "size": 65536}]

# Prints "<ns file> <link>" for every namespace type, as seen by a process in the container.
PRINT_NAMESPACES = (
    "for n in " + " ".join(NS_FILES.values())
    + "; do echo \"$n $(readlink /proc/self/ns/$n)\"; done"
)


def caller_namespaces() -> dict[str, str]:
    return {f: os.readlink(f"/proc/self/ns/{f}") for f in NS_FILES.values()}


def parse_namespaces(stdout: str) -> dict[str, str]:
    seen = {}
    for line in stdout.splitlines():
        name, _, link = line.partition(" ")
        if name in NS_FILES.values():
            seen[name] = link
    assert set(seen) == set(NS_FILES.values()), f"incomplete namespace listing: {stdout!r}"
    assert all(link.startswith(f"{name}:[") for name, link in seen.items()), seen
    return seen


def set_namespaces(config: dict, types: list[str]) -> None:
    config["linux"]["namespaces"] = [{"type": t} for t in types]
    if "uts" not in types:
        # runc refuses a hostname without a private UTS namespace
        config.pop("hostname", None)
    if "user" in types:
        config["linux"]["uidMappings"] = list(ID_MAPPING)
        config["linux"]["gidMappings"] = list(ID_MAPPING)


def use_rootfs(config: dict, rootfs: str) -> None:
    config["root"] = {"path": rootfs, "readonly": True}


# ---------------------------------------------------------------------------------------
# new namespaces differ, missing ones are the caller's


@pytest.mark.parametrize("ns_type", list(NS_FILES))
def test_new_namespace_differs_and_the_rest_are_the_callers(
    ns_type, bundle, pyrunc_cmd, container_id, userns_rootfs
):
    # A mount namespace is always made (pivot_root needs it); the user namespace keeps
    # runc's defaults too, since sysfs/mqueue/proc need the namespaces it would own.
    if ns_type == "user":
        types = RUNC_DEFAULT_NAMESPACES + ["user"]
    else:
        types = ["mount"] if ns_type == "mount" else ["mount", ns_type]

    def edit(config):
        set_namespaces(config, types)
        if ns_type == "user":
            use_rootfs(config, userns_rootfs)

    b = bundle(edit, args=["sh", "-c", PRINT_NAMESPACES])
    inside = parse_namespaces(run_ok(pyrunc_cmd, b, container_id))
    caller = caller_namespaces()
    expected_new = {NS_FILES[t] for t in types}
    differing = {name for name in NS_FILES.values() if inside[name] != caller[name]}
    assert differing == expected_new, (inside, caller)


def test_all_eight_namespaces_at_once(bundle, pyrunc_cmd, container_id, userns_rootfs):
    def edit(config):
        set_namespaces(config, list(NS_FILES))
        use_rootfs(config, userns_rootfs)

    b = bundle(edit, args=["sh", "-c", PRINT_NAMESPACES])
    inside = parse_namespaces(run_ok(pyrunc_cmd, b, container_id))
    caller = caller_namespaces()
    assert [n for n in NS_FILES.values() if inside[n] == caller[n]] == []


@pytest.mark.parametrize("left_out", ["network", "ipc", "uts", "pid"])
def test_namespace_left_out_of_the_config_is_the_callers(
    left_out, bundle, pyrunc_cmd, container_id
):
    types = [t for t in RUNC_DEFAULT_NAMESPACES if t != left_out]
    b = bundle(lambda c: set_namespaces(c, types), args=["sh", "-c", PRINT_NAMESPACES])
    inside = parse_namespaces(run_ok(pyrunc_cmd, b, container_id))
    caller = caller_namespaces()
    name = NS_FILES[left_out]
    assert inside[name] == caller[name]
    for t in types:  # and the configured ones are still new
        assert inside[NS_FILES[t]] != caller[NS_FILES[t]], t


def test_container_process_is_pid_1(bundle, pyrunc_cmd, container_id):
    script = "echo $$; cat /proc/1/cmdline | tr '\\0' ' '; echo; ps -o pid,args; true"
    b = bundle(args=["sh", "-c", script])
    lines = run_ok(pyrunc_cmd, b, container_id).splitlines()
    assert lines[0] == "1"
    assert lines[1].strip().startswith("sh -c echo $$")
    # only the shell (pid 1) and ps are in the new pid namespace ("; true" keeps sh from
    # exec'ing ps in its place)
    pids = sorted(int(line.split()[0]) for line in lines[3:] if line.strip())
    assert pids[0] == 1 and len(pids) == 2, lines


def test_unknown_namespace_type_is_an_error(bundle, pyrunc_cmd, container_id, state_root):
    def edit(config):
        config["linux"]["namespaces"].append({"type": "bogusns"})

    b = bundle(edit)
    result = pyrunc_cmd("run", "-b", str(b), container_id)
    assert result.returncode != 0
    assert "bogusns" in result.stderr, result.stderr
    assert pyrunc_cmd("state", container_id).returncode != 0  # nothing was left behind


# ---------------------------------------------------------------------------------------
# joining namespaces by path


def test_join_another_containers_namespaces_by_path(bundle, pyrunc_cmd, container_id):
    sleeper_id = container_id + "-a"

    def edit_sleeper(config):
        config["hostname"] = "sleeper-host"

    a = bundle(edit_sleeper, args=["sleep", "60"])
    pyrunc_cmd("run", "-d", "-b", str(a), sleeper_id, check=True)
    sleeper_pid = init_pid(pyrunc_cmd, sleeper_id)
    joined = {"network": "net", "ipc": "ipc", "uts": "uts", "pid": "pid"}

    def edit_joiner(config):
        config.pop("hostname", None)  # the joined UTS namespace keeps the sleeper's name
        config["linux"]["namespaces"] = [{"type": "mount"}] + [
            {"type": t, "path": f"/proc/{sleeper_pid}/ns/{f}"} for t, f in joined.items()
        ]

    script = "hostname; echo ---; ps -o pid,args; echo ---; " + PRINT_NAMESPACES
    b = bundle(edit_joiner, args=["sh", "-c", script])
    try:
        out = run_ok(pyrunc_cmd, b, container_id)
        hostname, ps_out, ns_out = out.split("---\n")
        assert hostname.strip() == "sleeper-host"
        processes = {}
        for line in ps_out.splitlines()[1:]:
            pid, _, args = line.strip().partition(" ")
            processes[int(pid)] = args.strip()
        # the sleeper is pid 1 of the shared pid namespace; the joiner's shell is another pid
        assert processes.get(1) == "sleep 60", ps_out
        assert any(args.startswith("sh -c hostname") for pid, args in processes.items() if pid != 1)
        inside = parse_namespaces(ns_out)
        for t, f in joined.items():
            assert inside[f] == os.readlink(f"/proc/{sleeper_pid}/ns/{f}"), t
        assert inside["mnt"] != os.readlink(f"/proc/{sleeper_pid}/ns/mnt")
        assert inside["mnt"] != os.readlink("/proc/self/ns/mnt")
    finally:
        pyrunc_cmd("delete", "--force", sleeper_id)


# ---------------------------------------------------------------------------------------
# user namespace


def test_user_namespace_maps_root_to_host_100000(bundle, pyrunc_cmd, container_id, userns_rootfs):
    def edit(config):
        set_namespaces(config, RUNC_DEFAULT_NAMESPACES + ["user"])
        use_rootfs(config, userns_rootfs)
        config["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"})

    script = (
        "cat /proc/self/uid_map /proc/self/gid_map; id -u; id -g; "
        "touch /tmp/made-inside; stat -c %u:%g /tmp/made-inside; stat -c %u /bin/busybox"
    )
    b = bundle(edit, args=["sh", "-c", script])
    lines = run_ok(pyrunc_cmd, b, container_id).splitlines()
    assert lines[0].split() == ["0", "100000", "65536"]
    assert lines[1].split() == ["0", "100000", "65536"]
    assert lines[2:5] == ["0", "0", "0:0"]
    # host root owns the rootfs and is not mapped: the overflow uid
    assert lines[5] == "65534"


def run_userns_sleeper(bundle, pyrunc_cmd, container_id: str, rootfs: str) -> int:
    """`run -d` a `sleep 60` in runc's default namespaces plus a user namespace (the
    default mapping); its init's host pid."""
    def edit(config):
        set_namespaces(config, RUNC_DEFAULT_NAMESPACES + ["user"])
        use_rootfs(config, rootfs)

    b = bundle(edit, args=["sleep", "60"])
    pyrunc_cmd("run", "-d", "-b", str(b), container_id, check=True)
    return init_pid(pyrunc_cmd, container_id)


def test_user_namespace_init_runs_as_host_uid_100000(
    bundle, pyrunc_cmd, container_id, userns_rootfs
):
    pid = run_userns_sleeper(bundle, pyrunc_cmd, container_id, userns_rootfs)
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    assert status["Uid"].split() == ["100000"] * 4
    assert status["Gid"].split() == ["100000"] * 4
    assert Path(f"/proc/{pid}/uid_map").read_text().split() == ["0", "100000", "65536"]
    assert os.readlink(f"/proc/{pid}/ns/user") != os.readlink("/proc/self/ns/user")
    pyrunc_cmd("kill", container_id, "9", check=True)


def test_join_another_containers_user_namespace_by_path(
    bundle, pyrunc_cmd, container_id, userns_rootfs
):
    sleeper_id = container_id + "-a"
    sleeper_pid = run_userns_sleeper(bundle, pyrunc_cmd, sleeper_id, userns_rootfs)

    def edit_joiner(config):
        use_rootfs(config, userns_rootfs)
        config.pop("hostname", None)
        config["linux"]["namespaces"] = [
            {"type": "mount"}, {"type": "pid"}, {"type": "ipc"},
            {"type": "user", "path": f"/proc/{sleeper_pid}/ns/user"},
            {"type": "network", "path": f"/proc/{sleeper_pid}/ns/net"},
        ]
        config["linux"]["uidMappings"] = list(ID_MAPPING)
        config["linux"]["gidMappings"] = list(ID_MAPPING)

    script = "cat /proc/self/uid_map; id -u; id -g; " + PRINT_NAMESPACES
    b = bundle(edit_joiner, args=["sh", "-c", script])
    try:
        lines = run_ok(pyrunc_cmd, b, container_id).splitlines()
        assert lines[0].split() == ["0", "100000", "65536"]
        assert lines[1:3] == ["0", "0"]  # root of the joined namespace, as runc makes it
        inside = parse_namespaces("\n".join(lines[3:]))
        assert inside["user"] == os.readlink(f"/proc/{sleeper_pid}/ns/user")
        assert inside["net"] == os.readlink(f"/proc/{sleeper_pid}/ns/net")
        for name in ("pid", "ipc", "mnt"):  # made new, owned by the joined user namespace
            assert inside[name] != os.readlink(f"/proc/{sleeper_pid}/ns/{name}"), name
    finally:
        pyrunc_cmd("delete", "--force", sleeper_id)


# ---------------------------------------------------------------------------------------
# uts, cgroup and time namespaces, loopback


def test_uts_namespace_hostname_and_domainname(bundle, pyrunc_cmd, container_id):
    def edit(config):
        config["hostname"] = "inside-host"
        config["domainname"] = "inside.test"  # runtime-spec 1.1 (runc 1.1 ignores it)

    b = bundle(edit, args=["sh", "-c", "hostname; cat /proc/sys/kernel/domainname"])
    assert run_ok(pyrunc_cmd, b, container_id).splitlines() == ["inside-host", "inside.test"]
    assert os.uname().nodename != "inside-host"


def test_cgroup_namespace_shows_root_paths(bundle, pyrunc_cmd, container_id):
    b = bundle(
        lambda c: set_namespaces(c, RUNC_DEFAULT_NAMESPACES + ["cgroup"]),
        args=["cat", "/proc/self/cgroup"],
    )
    lines = run_ok(pyrunc_cmd, b, container_id).splitlines()
    assert lines, "empty /proc/self/cgroup"
    assert [line for line in lines if line.split(":", 2)[2] != "/"] == []

    # control: without the cgroup namespace the container's own cgroup path shows
    plain = bundle(args=["cat", "/proc/self/cgroup"])
    other_id = container_id + "-plain"
    lines = run_ok(pyrunc_cmd, plain, other_id).splitlines()
    assert any(line.split(":", 2)[2].endswith("/" + other_id) for line in lines), lines


def test_time_namespace_boottime_offset(bundle, pyrunc_cmd, container_id):
    offset = 100000

    def edit(config):
        set_namespaces(config, RUNC_DEFAULT_NAMESPACES + ["time"])
        config["linux"]["timeOffsets"] = {"boottime": {"secs": offset, "nanosecs": 0}}

    b = bundle(edit, args=["cat", "/proc/uptime"])
    before = float(Path("/proc/uptime").read_text().split()[0])
    inside = float(run_ok(pyrunc_cmd, b, container_id).split()[0])
    after = float(Path("/proc/uptime").read_text().split()[0])
    assert before + offset <= inside <= after + offset, (before, inside, after)


def test_time_namespace_without_offsets_keeps_the_clock(bundle, pyrunc_cmd, container_id):
    def edit(config):
        set_namespaces(config, RUNC_DEFAULT_NAMESPACES + ["time"])

    b = bundle(edit, args=["sh", "-c", "cat /proc/uptime; readlink /proc/self/ns/time"])
    before = float(Path("/proc/uptime").read_text().split()[0])
    out = run_ok(pyrunc_cmd, b, container_id).splitlines()
    after = float(Path("/proc/uptime").read_text().split()[0])
    assert before <= float(out[0].split()[0]) <= after
    assert out[1] != os.readlink("/proc/self/ns/time")


def test_new_network_namespace_has_loopback_up(bundle, pyrunc_cmd, container_id):
    # Traffic over lo with httpd + wget: ping would need CAP_NET_RAW, which the default
    # caps lack (and busybox nc may quit on stdin EOF before printing what it received).
    script = (
        "cat /sys/class/net/lo/flags; ls /sys/class/net; ip -o link show lo; "
        "httpd -f -p 127.0.0.1:8080 -h /etc & server=$!; "
        "for i in $(seq 100); do "
        "wget -q -O - http://127.0.0.1:8080/group 2>/dev/null && break; sleep 0.05; done; "
        "kill $server; wait; true"
    )
    b = bundle(args=["sh", "-c", script])
    lines = run_ok(pyrunc_cmd, b, container_id).splitlines()
    flags = int(lines[0], 16)
    assert flags & 0x1, f"lo is down (flags {lines[0]})"  # IFF_UP
    assert lines[1].split() == ["lo"]  # a fresh namespace: nothing but lo
    assert "UP" in lines[2].split("<", 1)[1].split(">", 1)[0].split(",")
    assert lines[3] == "root:x:0:", lines  # /etc/group served over 127.0.0.1
