"""process.*, checked from inside the container: args and PATH lookup, env, cwd, user and
groups, umask, rlimits, no_new_privs, the five capability sets, oom_score_adj; which file
descriptors reach the container; and the size of a created container's waiting init.

Expected values are runc 1.1's (checked by hand with /usr/sbin/runc on this machine) or
the kernel's rules for capabilities across execve.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import time
from pathlib import Path

import pytest

from support import pyrunc_binary, run_ok

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")

# capability numbers from linux/capability.h, index = bit
CAP_NAMES = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
]
RUNC_DEFAULT_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
DOCKER_DEFAULT_CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
]
CAP_SETS = ("bounding", "effective", "permitted", "inheritable", "ambient")
STATUS_FIELD = {
    "bounding": "CapBnd", "effective": "CapEff", "permitted": "CapPrm",
    "inheritable": "CapInh", "ambient": "CapAmb",
}
ID_MAPPING = [{"containerID": 0, "hostID": 100000, "size": 65536}]


def mask(names: list[str]) -> int:
    return sum(1 << CAP_NAMES.index(n) for n in names)


def status_fields(text: str) -> dict[str, str]:
    return {k: v.strip() for k, _, v in (line.partition(":") for line in text.splitlines()) if v}


def caps_inside(pyrunc_cmd, bundle, container_id, edit) -> dict[str, int]:
    b = bundle(edit, args=["cat", "/proc/self/status"])
    fields = status_fields(run_ok(pyrunc_cmd, b, container_id))
    return {s: int(fields[STATUS_FIELD[s]], 16) for s in CAP_SETS}


def tmpfs_at(config: dict, destination: str) -> None:
    config["mounts"].append({"destination": destination, "type": "tmpfs", "source": "tmpfs"})


# ---------------------------------------------------------------------------------------
# args, env, cwd


def test_args_looked_up_in_the_containers_path(bundle, pyrunc_cmd, container_id):
    def edit(config):
        config["process"]["env"] = ["PATH=/no/such/dir:/bin"]

    b = bundle(edit, args=["ls", "-d", "/etc"])
    assert run_ok(pyrunc_cmd, b, container_id) == "/etc\n"


def test_path_lookup_finds_a_program_only_on_the_custom_path(bundle, pyrunc_cmd, container_id):
    def edit(config):
        config["process"]["env"] = ["PATH=/opt/tools:/bin"]

    b = bundle(edit, args=["hello-tool", "one", "two"], private_rootfs=True)
    tools = b / "rootfs" / "opt" / "tools"
    tools.mkdir(parents=True)
    tool = tools / "hello-tool"
    tool.write_text('#!/bin/sh\necho "hello from $0: $*"\n')
    tool.chmod(0o755)
    assert run_ok(pyrunc_cmd, b, container_id) == "hello from /opt/tools/hello-tool: one two\n"


def test_program_missing_from_path_is_an_error(bundle, pyrunc_cmd, container_id):
    def edit(config):
        config["process"]["env"] = ["PATH=/no/such/dir"]

    b = bundle(edit, args=["ls"])
    result = pyrunc_cmd("run", "-b", str(b), container_id)
    assert result.returncode != 0
    # the message is a JSON-ish log line: the quotes around the name may be escaped
    assert "executable file not found in $PATH" in result.stderr, result.stderr
    assert 'exec: \\"ls\\"' in result.stderr or 'exec: "ls"' in result.stderr, result.stderr


def test_args_reach_the_process_verbatim(bundle, pyrunc_cmd, container_id):
    args = ["sh", "-c", 'printf "%s|" "$0" "$@"', "argv0", "a b", "", "c\nd", "$HOME"]
    b = bundle(args=args)
    assert run_ok(pyrunc_cmd, b, container_id) == "argv0|a b||c\nd|$HOME|"


def test_env_is_exactly_the_configured_one_plus_home(bundle, pyrunc_cmd, container_id):
    configured = ["PATH=/bin:/usr/bin", "FOO=bar baz", "EMPTY=", "WITH_EQUALS=a=b"]

    def edit(config):
        config["process"]["env"] = list(configured)

    b = bundle(edit, args=["env"])
    # runc sets HOME from the container's /etc/passwd when the config has none
    assert sorted(run_ok(pyrunc_cmd, b, container_id).splitlines()) == sorted(
        configured + ["HOME=/root"]
    )


@pytest.mark.parametrize(
    "uid, home", [(1000, "/home/user"), (4321, "/")], ids=["in-passwd", "not-in-passwd"]
)
def test_home_comes_from_the_containers_passwd(uid, home, bundle, pyrunc_cmd, container_id):
    def edit(config):
        config["process"]["env"] = ["PATH=/usr/bin:/bin"]
        config["process"]["user"] = {"uid": uid, "gid": uid}

    b = bundle(edit, args=["env"])
    assert sorted(run_ok(pyrunc_cmd, b, container_id).splitlines()) == [
        "HOME=" + home, "PATH=/usr/bin:/bin"
    ]


def test_configured_home_is_kept(bundle, pyrunc_cmd, container_id):
    def edit(config):
        config["process"]["env"] = ["PATH=/usr/bin:/bin", "HOME=/custom"]

    b = bundle(edit, args=["env"])
    assert sorted(run_ok(pyrunc_cmd, b, container_id).splitlines()) == [
        "HOME=/custom", "PATH=/usr/bin:/bin"
    ]


def test_duplicate_env_key_keeps_the_last_value_once(bundle, pyrunc_cmd, container_id):
    # runc sets each entry in turn (os.Setenv): one A, the last value
    def edit(config):
        config["process"]["env"] = ["PATH=/usr/bin:/bin", "A=1", "HOME=/", "A=2"]

    b = bundle(edit, args=["env"])
    assert sorted(run_ok(pyrunc_cmd, b, container_id).splitlines()) == [
        "A=2", "HOME=/", "PATH=/usr/bin:/bin"
    ]


def test_env_entry_without_equals_is_an_error(bundle, pyrunc_cmd, container_id):
    b = bundle(lambda c: c["process"]["env"].append("NOEQUALS"), args=["env"])
    result = pyrunc_cmd("run", "-b", str(b), container_id)
    assert result.returncode != 0
    assert "NOEQUALS" in result.stderr, result.stderr


def test_cwd(bundle, pyrunc_cmd, container_id):
    b = bundle(lambda c: c["process"].update(cwd="/etc"), args=["pwd"])
    assert run_ok(pyrunc_cmd, b, container_id) == "/etc\n"


def test_missing_cwd_on_a_mount_is_created(bundle, pyrunc_cmd, container_id):
    # runc creates the cwd (mode 0755) after the mounts, before pivot_root
    def edit(config):
        tmpfs_at(config, "/tmp")
        config["process"]["cwd"] = "/tmp/new/work dir"

    b = bundle(edit, args=["sh", "-c", "pwd; stat -c '%a %u' ."])
    assert run_ok(pyrunc_cmd, b, container_id) == "/tmp/new/work dir\n755 0\n"


def test_missing_cwd_in_a_readonly_rootfs_is_created(bundle, pyrunc_cmd, container_id):
    # the directory is made before the root is remounted read-only (runc does the same)
    b = bundle(lambda c: c["process"].update(cwd="/srv/app"), args=["pwd"], private_rootfs=True)
    assert run_ok(pyrunc_cmd, b, container_id) == "/srv/app\n"
    assert (b / "rootfs" / "srv" / "app").is_dir()


def test_cwd_that_is_a_file_is_an_error(bundle, pyrunc_cmd, container_id):
    b = bundle(lambda c: c["process"].update(cwd="/bin/busybox"), args=["pwd"])
    result = pyrunc_cmd("run", "-b", str(b), container_id)
    assert result.returncode != 0
    assert result.stdout == ""
    assert "not a directory" in result.stderr, result.stderr


def test_relative_cwd_is_an_error(bundle, pyrunc_cmd, container_id):
    b = bundle(lambda c: c["process"].update(cwd="etc"), args=["pwd"])
    result = pyrunc_cmd("run", "-b", str(b), container_id)
    assert result.returncode != 0
    assert "cwd" in result.stderr.lower(), result.stderr


# ---------------------------------------------------------------------------------------
# user, umask, rlimits, no_new_privs, oom_score_adj


def test_user_and_additional_gids(bundle, pyrunc_cmd, container_id):
    def edit(config):
        config["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [10, 20]}

    b = bundle(edit, args=["sh", "-c", "id; cat /proc/self/status"])
    out = run_ok(pyrunc_cmd, b, container_id)
    first, _, status = out.partition("\n")
    # as runc: the supplementary groups are exactly additionalGids
    assert first == "uid=1000(user) gid=1000(user) groups=10,20"
    fields = status_fields(status)
    assert fields["Uid"].split() == ["1000"] * 4
    assert fields["Gid"].split() == ["1000"] * 4
    assert fields["Groups"].split() == ["10", "20"]


def test_root_without_additional_gids_has_no_supplementary_groups(bundle, pyrunc_cmd, container_id):
    b = bundle(args=["cat", "/proc/self/status"])
    fields = status_fields(run_ok(pyrunc_cmd, b, container_id))
    assert fields["Uid"].split() == ["0"] * 4
    assert fields.get("Groups", "").split() == []


@pytest.mark.parametrize("umask, shown, file_mode", [(0o077, "0077", "600"), (None, "0022", "644")])
def test_umask(umask, shown, file_mode, bundle, pyrunc_cmd, container_id):
    def edit(config):
        tmpfs_at(config, "/tmp")
        if umask is not None:
            config["process"]["user"]["umask"] = umask

    b = bundle(edit, args=["sh", "-c", "umask; touch /tmp/f; stat -c %a /tmp/f"])
    assert run_ok(pyrunc_cmd, b, container_id).splitlines() == [shown, file_mode]


def test_rlimit_nofile(bundle, pyrunc_cmd, container_id):
    _, current_hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # no CAP_SYS_RESOURCE here: the hard limit may only be lowered
    hard = min(current_hard, 4096) - 1
    soft = hard // 2

    def edit(config):
        config["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": soft, "hard": hard}]

    b = bundle(edit, args=["sh", "-c", "ulimit -Sn; ulimit -Hn"])
    assert run_ok(pyrunc_cmd, b, container_id).splitlines() == [str(soft), str(hard)]


def test_rlimit_above_the_callers_hard_limit_is_an_error(bundle, pyrunc_cmd, container_id):
    _, current_hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    caps = Path("/proc/self/status").read_text()
    if int(status_fields(caps)["CapEff"], 16) & mask(["CAP_SYS_RESOURCE"]):
        pytest.skip("this machine grants CAP_SYS_RESOURCE: raising the hard limit would work")

    def edit(config):
        limit = current_hard + 1
        config["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": limit, "hard": limit}]

    b = bundle(edit)
    result = pyrunc_cmd("run", "-b", str(b), container_id)
    assert result.returncode != 0
    assert "operation not permitted" in result.stderr, result.stderr


def test_unknown_rlimit_is_an_error_naming_it(bundle, pyrunc_cmd, container_id):
    def edit(config):
        config["process"]["rlimits"].append({"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1})

    b = bundle(edit)
    result = pyrunc_cmd("run", "-b", str(b), container_id)
    assert result.returncode != 0
    assert "RLIMIT_BOGUS" in result.stderr, result.stderr


def test_several_rlimits(bundle, pyrunc_cmd, container_id):
    _, nofile_hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    _, core_hard = resource.getrlimit(resource.RLIMIT_CORE)
    core = 2048 if core_hard == resource.RLIM_INFINITY else min(core_hard, 2048)

    def edit(config):
        config["process"]["rlimits"] = [
            {"type": "RLIMIT_NOFILE", "soft": 100, "hard": min(nofile_hard, 200)},
            {"type": "RLIMIT_CORE", "soft": 0, "hard": core},
            {"type": "RLIMIT_NICE", "soft": 0, "hard": 0},
        ]

    b = bundle(edit, args=["cat", "/proc/self/limits"])
    limits = {}
    for line in run_ok(pyrunc_cmd, b, container_id).splitlines()[1:]:
        words = line.split()
        # "Max core file size  0  2048  bytes": the name is what precedes the numbers
        numbers = [i for i, w in enumerate(words) if w.isdigit() or w == "unlimited"]
        limits[" ".join(words[: numbers[0]])] = (words[numbers[0]], words[numbers[0] + 1])
    assert limits["Max open files"] == ("100", str(min(nofile_hard, 200)))
    # /proc/self/limits shows RLIMIT_CORE in bytes (the config's unit too)
    assert limits["Max core file size"] == ("0", str(core))
    assert limits["Max nice priority"] == ("0", "0")


@pytest.mark.parametrize("no_new_privileges, shown", [(True, "1"), (False, "0")])
def test_no_new_privileges(no_new_privileges, shown, bundle, pyrunc_cmd, container_id):
    b = bundle(
        lambda c: c["process"].update(noNewPrivileges=no_new_privileges),
        args=["cat", "/proc/self/status"],
    )
    assert status_fields(run_ok(pyrunc_cmd, b, container_id))["NoNewPrivs"] == shown


def test_oom_score_adj(bundle, pyrunc_cmd, container_id):
    current = int(Path("/proc/self/oom_score_adj").read_text())
    wanted = max(current, 500)  # raising needs no privilege, lowering might
    b = bundle(lambda c: c["process"].update(oomScoreAdj=wanted),
               args=["cat", "/proc/self/oom_score_adj"])
    assert run_ok(pyrunc_cmd, b, container_id) == f"{wanted}\n"


@pytest.mark.parametrize("runtime", ["pyrunc", "runc"])
def test_exec_gets_the_containers_oom_score_adj(runtime, request, bundle, container_id):
    """exec's process is placed as the init is (one placement step): runc writes the
    container's oomScoreAdj for it too."""
    cmd = request.getfixturevalue(f"{runtime}_cmd")
    current = int(Path("/proc/self/oom_score_adj").read_text())
    wanted = min(max(current, 500) + 1, 1000)  # raising needs no privilege, lowering might
    b = bundle(lambda c: c["process"].update(oomScoreAdj=wanted), args=["sleep", "60"])
    cmd("run", "-d", "-b", str(b), container_id, check=True)
    result = cmd("exec", container_id, "cat", "/proc/self/oom_score_adj", check=True)
    assert result.stdout == f"{wanted}\n"


def test_oom_score_adj_absent_is_inherited(bundle, pyrunc_cmd, container_id):
    current = int(Path("/proc/self/oom_score_adj").read_text())
    b = bundle(args=["cat", "/proc/self/oom_score_adj"])
    assert run_ok(pyrunc_cmd, b, container_id) == f"{current}\n"


# ---------------------------------------------------------------------------------------
# capabilities


def test_runc_default_capabilities(bundle, pyrunc_cmd, container_id):
    # runc spec's sets: ambient is listed but inheritable is not, so ambient stays empty
    seen = caps_inside(pyrunc_cmd, bundle, container_id, None)
    default = mask(RUNC_DEFAULT_CAPS)
    assert seen == {"bounding": default, "effective": default, "permitted": default,
                    "inheritable": 0, "ambient": 0}


def set_caps(config: dict, **sets: list[str]) -> None:
    config["process"]["capabilities"] = {name: list(value) for name, value in sets.items()}


def test_docker_default_capabilities(bundle, pyrunc_cmd, container_id):
    def edit(config):
        set_caps(config, bounding=DOCKER_DEFAULT_CAPS, effective=DOCKER_DEFAULT_CAPS,
                 permitted=DOCKER_DEFAULT_CAPS)

    seen = caps_inside(pyrunc_cmd, bundle, container_id, edit)
    default = mask(DOCKER_DEFAULT_CAPS)
    assert bin(default).count("1") == 14
    assert seen == {"bounding": default, "effective": default, "permitted": default,
                    "inheritable": 0, "ambient": 0}


def test_custom_capability_set(bundle, pyrunc_cmd, container_id):
    chosen = ["CAP_NET_BIND_SERVICE", "CAP_CHOWN"]

    def edit(config):
        set_caps(config, bounding=chosen, effective=chosen, permitted=chosen)

    seen = caps_inside(pyrunc_cmd, bundle, container_id, edit)
    assert seen == {"bounding": 0x401, "effective": 0x401, "permitted": 0x401,
                    "inheritable": 0, "ambient": 0}


def test_empty_capability_sets(bundle, pyrunc_cmd, container_id):
    seen = caps_inside(pyrunc_cmd, bundle, container_id, lambda c: set_caps(c))
    assert seen == dict.fromkeys(CAP_SETS, 0)


def test_root_without_no_new_privs_gains_its_bounding_set_on_exec(bundle, pyrunc_cmd, container_id):
    # kernel rule for uid 0 across execve: permitted = inheritable | bounding
    def edit(config):
        config["process"]["noNewPrivileges"] = False
        set_caps(config, bounding=["CAP_CHOWN", "CAP_KILL"], effective=["CAP_KILL"],
                 permitted=["CAP_KILL"])

    seen = caps_inside(pyrunc_cmd, bundle, container_id, edit)
    both = mask(["CAP_CHOWN", "CAP_KILL"])
    assert seen == {"bounding": both, "effective": both, "permitted": both,
                    "inheritable": 0, "ambient": 0}


def non_root_with_net_bind(config: dict, *, inheritable: bool) -> None:
    net_bind = ["CAP_NET_BIND_SERVICE"]
    config["process"]["user"] = {"uid": 1000, "gid": 1000}
    set_caps(config, bounding=net_bind, effective=net_bind, permitted=net_bind,
             inheritable=net_bind if inheritable else [], ambient=net_bind)


def test_ambient_capability_of_a_non_root_user(bundle, pyrunc_cmd, container_id):
    seen = caps_inside(pyrunc_cmd, bundle, container_id,
                       lambda c: non_root_with_net_bind(c, inheritable=True))
    assert seen == dict.fromkeys(CAP_SETS, 0x400)


def test_ambient_capability_not_inheritable_is_ignored(bundle, pyrunc_cmd, container_id):
    seen = caps_inside(pyrunc_cmd, bundle, container_id,
                       lambda c: non_root_with_net_bind(c, inheritable=False))
    assert seen == {"bounding": 0x400, "effective": 0, "permitted": 0,
                    "inheritable": 0, "ambient": 0}


# Serves /etc on port 80 in the background: "bound" once a client fetched a file, "refused"
# once the server died (bind failed); bounded to ~5 s.
BIND_PORT_80 = (
    "httpd -f -p 127.0.0.1:80 -h /etc 2>/dev/null & server=$!; "
    "for i in $(seq 100); do "
    "if wget -q -O /dev/null http://127.0.0.1:80/group 2>/dev/null; then echo bound; break; fi; "
    "if ! kill -0 $server 2>/dev/null; then echo refused; break; fi; "
    "sleep 0.05; done; kill $server 2>/dev/null; true"
)


@pytest.mark.parametrize("inheritable, outcome", [(True, "bound"), (False, "refused")])
def test_ambient_capability_takes_effect(inheritable, outcome, bundle, pyrunc_cmd, container_id):
    b = bundle(lambda c: non_root_with_net_bind(c, inheritable=inheritable),
               args=["sh", "-c", BIND_PORT_80])
    assert run_ok(pyrunc_cmd, b, container_id) == outcome + "\n"


def test_capabilities_in_a_user_namespace(bundle, pyrunc_cmd, container_id, userns_rootfs):
    chosen = ["CAP_CHOWN", "CAP_NET_BIND_SERVICE"]

    def edit(config):
        config["root"] = {"path": userns_rootfs, "readonly": True}
        config["linux"]["namespaces"].append({"type": "user"})
        config["linux"]["uidMappings"] = list(ID_MAPPING)
        config["linux"]["gidMappings"] = list(ID_MAPPING)
        tmpfs_at(config, "/tmp")
        set_caps(config, bounding=chosen, effective=chosen, permitted=chosen)

    script = (
        "grep Cap /proc/self/status; "
        "touch /tmp/f; chown 1000:1000 /tmp/f; stat -c %u:%g /tmp/f; "
        "touch /tmp/g; chmod 600 /tmp/g; chown 1000 /tmp/g; cat /tmp/g 2>/dev/null || echo denied"
    )
    b = bundle(edit, args=["sh", "-c", script])
    lines = run_ok(pyrunc_cmd, b, container_id).splitlines()
    fields = status_fields("\n".join(lines[:5]))
    assert {s: int(fields[STATUS_FIELD[s]], 16) for s in CAP_SETS} == {
        "bounding": 0x401, "effective": 0x401, "permitted": 0x401, "inheritable": 0, "ambient": 0}
    # CAP_CHOWN works on files of the namespace; without CAP_DAC_OVERRIDE a 0600 file of
    # another user is unreadable even for root in it
    assert lines[5:] == ["1000:1000", "denied"]


def test_additional_gids_in_a_user_namespace(bundle, pyrunc_cmd, container_id, userns_rootfs):
    def edit(config):
        config["root"] = {"path": userns_rootfs, "readonly": True}
        config["linux"]["namespaces"].append({"type": "user"})
        config["linux"]["uidMappings"] = list(ID_MAPPING)
        config["linux"]["gidMappings"] = list(ID_MAPPING)
        config["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [10, 20]}

    b = bundle(edit, args=["cat", "/proc/self/status"])
    fields = status_fields(run_ok(pyrunc_cmd, b, container_id))
    assert fields["Uid"].split() == ["1000"] * 4
    assert fields["Groups"].split() == ["10", "20"]


# ---------------------------------------------------------------------------------------
# file descriptors


def pyrunc_with_stray_fd3(state_root: Path, fd3_file: Path, *words: str, shell_prefix: str = "",
                          stdout=None, stderr=None) -> subprocess.CompletedProcess:
    """Runs `pyrunc --root STATE_ROOT WORDS...` with fd 3 open on `fd3_file` and NOT
    close-on-exec, as a shim's socket is. `shell_prefix` runs in the shell that then execs
    pyrunc (same pid, so $$ is pyrunc's pid). stdout/stderr: files for `create`, whose
    init keeps them open (a pipe would not reach EOF); captured otherwise."""
    command = [
        "/bin/sh", "-c", shell_prefix + ' exec "$@" 3<"$FD3_FILE"', "sh",
        pyrunc_binary(), "--root", str(state_root), *words,
    ]
    env = dict(os.environ, FD3_FILE=str(fd3_file))
    env.pop("LISTEN_FDS", None)
    env.pop("LISTEN_PID", None)
    return subprocess.run(command, stdin=subprocess.DEVNULL, text=True, timeout=30, env=env,
                          stdout=stdout if stdout is not None else subprocess.PIPE,
                          stderr=stderr if stderr is not None else subprocess.PIPE)


def run_with_stray_fd3(state_root: Path, fd3_file: Path, container_id: str, bundle_dir: Path,
                       *options: str, shell_prefix: str = "") -> subprocess.CompletedProcess:
    return pyrunc_with_stray_fd3(state_root, fd3_file, "run", *options, "-b", str(bundle_dir),
                                 container_id, shell_prefix=shell_prefix)


def fd_table(ls_output: str) -> dict[int, str]:
    """`ls -l /proc/self/fd` lines -> {fd: link target or ''}."""
    table = {}
    for line in ls_output.splitlines():
        words = line.split()
        if len(words) < 9 or not words[8].isdigit():
            continue
        table[int(words[8])] = words[10] if len(words) > 10 and words[9] == "->" else ""
    return table


FD_SCRIPT = (
    "ls -l /proc/self/fd 2>/dev/null; echo ---; { cat <&3; } 2>/dev/null || echo no-fd-3; "
    "echo ---; env"
)


@pytest.fixture
def fd3_file(tmp_path) -> Path:
    path = tmp_path / "stray-fd-marker"
    path.write_text("contents-of-fd-3\n")
    return path


def test_callers_stray_fd_does_not_reach_the_container(bundle, state_root, fd3_file, container_id):
    b = bundle(args=["sh", "-c", FD_SCRIPT])
    result = run_with_stray_fd3(state_root, fd3_file, container_id, b)
    assert result.returncode == 0, result.stderr
    listing, read, _ = result.stdout.split("---\n")
    table = fd_table(listing)
    # 0-2 and the directory ls itself opened to list /proc/self/fd
    assert sorted(table) == [0, 1, 2, 3], listing
    assert str(fd3_file) not in listing
    assert read == "no-fd-3\n"


def test_stray_fd_of_create_does_not_reach_the_container(
    bundle, state_root, pyrunc_cmd, fd3_file, container_id, tmp_path
):
    # the shim's path: `create` inherits its socket as fd 3, then `start`
    b = bundle(args=["sh", "-c", FD_SCRIPT])
    output, errors = tmp_path / "container-output", tmp_path / "container-errors"
    with open(output, "w") as out, open(errors, "w") as err:
        created = pyrunc_with_stray_fd3(state_root, fd3_file, "create", "-b", str(b),
                                        container_id, stdout=out, stderr=err)
    assert created.returncode == 0, errors.read_text()
    pyrunc_cmd("start", container_id, check=True)
    deadline = time.monotonic() + 10
    while json.loads(pyrunc_cmd("state", container_id, check=True).stdout)["status"] != "stopped":
        assert time.monotonic() < deadline, "container did not stop within 10 s"
        time.sleep(0.05)
    listing, read, _ = output.read_text().split("---\n")
    assert sorted(fd_table(listing)) == [0, 1, 2, 3], listing
    assert str(fd3_file) not in listing
    assert read == "no-fd-3\n"


def test_preserve_fds_passes_fd_3(bundle, state_root, fd3_file, container_id):
    b = bundle(args=["sh", "-c", FD_SCRIPT])
    result = run_with_stray_fd3(state_root, fd3_file, container_id, b, "--preserve-fds", "1")
    assert result.returncode == 0, result.stderr
    listing, read, _ = result.stdout.split("---\n")
    table = fd_table(listing)
    assert sorted(table) == [0, 1, 2, 3, 4], listing
    assert table[3] == str(fd3_file)
    assert read == "contents-of-fd-3\n"


def test_listen_fds_are_passed_with_their_environment(bundle, state_root, fd3_file, container_id):
    def edit(config):
        config["process"]["env"] = ["PATH=/bin", "HOME=/"]

    b = bundle(edit, args=["sh", "-c", FD_SCRIPT])
    # systemd's protocol: LISTEN_PID names the process the fds are meant for (pyrunc itself)
    result = run_with_stray_fd3(state_root, fd3_file, container_id, b,
                                shell_prefix="LISTEN_FDS=1 LISTEN_PID=$$")
    assert result.returncode == 0, result.stderr
    listing, read, env = result.stdout.split("---\n")
    assert fd_table(listing)[3] == str(fd3_file)
    assert read == "contents-of-fd-3\n"
    env_lines = [line for line in env.splitlines() if line.split("=", 1)[0] not in ("SHLVL", "PWD")]
    assert sorted(env_lines) == ["HOME=/", "LISTEN_FDS=1", "LISTEN_PID=1", "PATH=/bin"]


def test_listen_fds_meant_for_another_process_are_not_passed(
    bundle, state_root, fd3_file, container_id
):
    # an inherited LISTEN_FDS whose LISTEN_PID is not ours is stale (sd_listen_fds, runc)
    b = bundle(args=["sh", "-c", FD_SCRIPT])
    result = run_with_stray_fd3(state_root, fd3_file, container_id, b,
                                shell_prefix="LISTEN_FDS=1 LISTEN_PID=1")
    assert result.returncode == 0, result.stderr
    listing, read, env = result.stdout.split("---\n")
    assert str(fd3_file) not in listing
    assert read == "no-fd-3\n"
    assert "LISTEN_FDS" not in env and "LISTEN_PID" not in env


# ---------------------------------------------------------------------------------------
# the waiting init


def test_created_container_init_is_small(bundle, pyrunc_cmd, container_id):
    # a design property, not a timing: the init waiting for `start` is a small static
    # binary, not a copy of the Python interpreter (~10 MiB)
    b = bundle(args=["true"])
    pyrunc_cmd("create", "-b", str(b), container_id, check=True)
    state = json.loads(pyrunc_cmd("state", container_id, check=True).stdout)
    assert state["status"] == "created"
    fields = status_fields(Path(f"/proc/{state['pid']}/status").read_text())
    rss_kb = int(fields["VmRSS"].split()[0])
    assert rss_kb < 2048, f"created init uses {rss_kb} kB resident"
