"""Plan building without root: plans for representative Specs, asserted as data.

`planner.container_plan` is pure, so each case gives it a Spec (parsed from a config
dict), made-up host facts and options, and compares the decoded op sequence
(pyrunc.plan.decode) with the expected one.  Nothing here touches the host."""
from __future__ import annotations

import copy
import os
import stat

import pytest

from pyrunc import planner
from pyrunc import plan as P
from pyrunc import spec as specmod
from pyrunc.rootfs import DEFAULT_DEVICES, CgroupHierarchy, MountHostFacts

CGROUPS = [CgroupHierarchy("", "cgroup2", "", "/sys/fs/cgroup/test")]
EXEC_FIFO_FD = 10


def _host(**overrides) -> planner.HostFacts:
    mounts = dict(rootfs_parent=("/", "/"), pseudo_mounts=[("proc", "/proc"), ("sysfs", "/sys")],
                  bind_sources={"/src": stat.S_IFDIR | 0o755, "/sys": stat.S_IFDIR | 0o755, "/missing": -2},
                  host_devices=frozenset(d for d, _, _ in DEFAULT_DEVICES),
                  kcore=False)
    mounts.update(overrides)
    return planner.HostFacts(cgroups=CGROUPS, mounts=MountHostFacts(**mounts))


def _spec(tmp_path, edit=None, rootless=False):
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir(exist_ok=True)
    raw = specmod.default_spec(rootless=rootless)
    raw["process"]["terminal"] = False
    if edit:
        edit(raw)
    return specmod.parse(copy.deepcopy(raw), str(tmp_path))


def _plan(spec, host=None, **options):
    if host is None:
        host = _host() if spec.linux.namespace("mount") else planner.HostFacts(cgroups=CGROUPS, mounts=None)
    opts = planner.PlanOptions(container_id="ctr", env=list(spec.process.env), exec_fifo_fd=EXEC_FIFO_FD,
                               first_closed_fd=3, **options)
    cp = planner.container_plan(spec, host, opts)
    return cp, P.decode(cp.plan.encode())


def names(ops) -> list[str]:
    return [name for name, _, _ in ops]


def _ns(t: str) -> int:
    from pyrunc import ns
    return ns.flag(t)


def test_plain(tmp_path):
    from pyrunc.rootfs import options as O
    s = _spec(tmp_path)
    cp, ops = _plan(s)
    root = s.root.path
    # the default namespaces are all made by the clone: nothing left to unshare
    assert cp.clone_flags == _ns("pid") | _ns("network") | _ns("ipc") | _ns("uts") | _ns("mount")
    assert names(ops) == [
        "loopback_up",
        "open_proc_fds",                                          # for the wait on the exec fifo
        "keyring",
        "mount", "private_if_shared", "mount", "root",           # propagation of /, the rootfs bind
        *["mount"] * 8,                                           # the mounts; cgroup: bind + remount ro
        *["mknod"] * 6, *["symlink"] * 4, "symlink",              # devices, /dev links, /dev/ptmx
        "mkdir", "sync", "pivot_root", "reopen_dev_null",
        *["mask"] * len(s.linux.masked_paths), *["readonly"] * len(s.linux.readonly_paths),
        "hostname", "mount",                                      # root.readonly: remount / ro
        "setsid", "rlimit", "umask", "chdir", "close_fds", "bounding", "user", "capset", "no_new_privs", "lookup",
        "ready", "wait_exec_fifo", "exec"]
    assert ops[2] == ("keyring", (), ("_ses.ctr",))
    assert ops[3] == ("mount", (O.MS_SLAVE | O.MS_REC, P.TARGET_HOST, P.MKDIR_NONE, P.SOURCE_LITERAL),
                      ("", "/", "", ""))
    assert ops[5] == ("mount", (O.MS_BIND | O.MS_REC, P.TARGET_HOST, P.MKDIR_NONE, P.SOURCE_HOST),
                      (root, root, "", ""))
    assert ops[6] == ("root", (), (root,))
    assert ops[7] == ("mount", (0, P.TARGET_IN_ROOT, P.MKDIR_ORDINARY_DIR, P.SOURCE_LITERAL),
                      ("proc", "/proc", "proc", ""))
    assert ops[names(ops).index("sync")] == ("sync", (P.SYNC_PLACED,), ())
    assert ops[-3:] == [("ready", (), ()), ("wait_exec_fifo", (EXEC_FIFO_FD,), ()),
                        ("exec", (1,), ("sh", *s.process.env))]


def test_userns_unshares_user_first_and_binds_devices(tmp_path):
    s = _spec(tmp_path, rootless=True)
    cp, ops = _plan(s)
    assert cp.clone_flags == 0  # nothing at clone with a user namespace
    n = names(ops)
    assert ops[0] == ("open_tree", (0, 1), ("/sys",))  # the rootless /sys bind, opened as the host's root
    assert ops[1:10] == [("unshare", (_ns("user"),), ()),
                        # dumpable while the runtime writes the id maps (a rootless one must)
                        ("dumpable", (1,), ()), ("sync", (P.SYNC_USERNS,), ()), ("dumpable", (0,), ()),
                        ("setresid", (0, 0), ()),
                        ("unshare", (_ns("ipc") | _ns("uts") | _ns("mount"),), ()),
                        ("unshare", (_ns("pid"),), ()), ("sync", (P.SYNC_PLACED,), ()), ("fork", (), ())]
    assert "mknod" not in n
    binds = [o for o in ops if o[0] == "mount" and o[2][0] == o[2][1] and o[2][0].startswith("/dev/")]
    assert [o[2][0] for o in binds] == [d for d, _, _ in DEFAULT_DEVICES]


def test_rootless_runtime_binds_from_inside_the_user_namespace(tmp_path):
    """A runtime that is not root cannot open_tree its bind sources before the user
    namespace (that needs privilege): the binds take their source from the host path,
    inside the namespaces it made, as runc's rootless binds do."""
    s = _spec(tmp_path, rootless=True)
    host = _host()
    host.rootless = True
    _cp, ops = _plan(s, host=host)
    assert "open_tree" not in names(ops)
    sys_bind = next(o for o in ops if o[0] == "mount" and o[2][1] == "/sys")
    assert sys_bind[1][3] == P.SOURCE_HOST and sys_bind[2][0] == "/sys"


def test_joined_namespaces_come_first_in_join_order(tmp_path):
    def edit(raw):
        kept = [n for n in raw["linux"]["namespaces"] if n["type"] not in ("network", "ipc")]
        raw["linux"]["namespaces"] = kept + [{"type": "network", "path": "/proc/1/ns/net"},
                                             {"type": "ipc", "path": "/proc/1/ns/ipc"}]
    cp, ops = _plan(_spec(tmp_path, edit))
    assert ops[:2] == [("setns", (_ns("ipc"),), ("/proc/1/ns/ipc",)),
                       ("setns", (_ns("network"),), ("/proc/1/ns/net",))]
    assert not cp.clone_flags & (_ns("network") | _ns("ipc"))
    assert "loopback_up" not in names(ops)  # a joined network namespace is left alone


def test_no_mount_namespace_chroots_and_mounts_nothing(tmp_path):
    def edit(raw):
        raw["linux"]["namespaces"] = [n for n in raw["linux"]["namespaces"] if n["type"] != "mount"]
        raw["mounts"] = []
        del raw["linux"]["maskedPaths"], raw["linux"]["readonlyPaths"]
    s = _spec(tmp_path, edit)
    _, ops = _plan(s)
    n = names(ops)
    assert "mount" not in n and "pivot_root" not in n and "mknod" not in n
    i = n.index("root")
    assert n[i:i + 4] == ["root", "sync", "chroot", "root"]
    assert ops[i][2] == (s.root.path,) and ops[i + 3][2] == ("/",)


def test_terminal_adds_the_console_bound_over_dev_console(tmp_path):
    s = _spec(tmp_path, lambda raw: raw["process"].update(terminal=True, consoleSize={"height": 24, "width": 80}))
    cp, ops = _plan(s, console_fd=7)
    console = [o for o in ops if o[0] == "console"]
    assert console == [("console", (7, 24, 80, 1, 0), ())]
    n = names(ops)
    assert n.index("readonly") < n.index("console") < n.index("umask")
    assert os.strerror(40).lower() not in cp.plan.describe(n.index("console"), 40)  # runc's wording instead


def test_hooks_add_their_sync_point_after_placement_before_pivot(tmp_path):
    s = _spec(tmp_path, lambda raw: raw.update(hooks={"createRuntime": [{"path": "/bin/true"}]}))
    _, ops = _plan(s)
    n = names(ops)
    i = n.index("pivot_root")
    assert ops[i - 2:i] == [("sync", (P.SYNC_PLACED,), ()), ("sync", (P.SYNC_HOOKS,), ())]
    assert ("sync", (P.SYNC_HOOKS,), ()) not in _plan(_spec(tmp_path))[1]


@pytest.mark.parametrize("no_new_privileges", [True, False])
def test_seccomp_filter_position(tmp_path, no_new_privileges):
    s = _spec(tmp_path, lambda raw: raw["process"].update(noNewPrivileges=no_new_privileges))
    _, ops = _plan(s, seccomp_bpf=b"\x06\0\0\0\0\0\xff\x7f", seccomp_flags=1)
    n = names(ops)
    assert ops[n.index("seccomp")] == ("seccomp", (1,), (b"\x06\0\0\0\0\0\xff\x7f",))
    if no_new_privileges:  # as late as possible: right before the wait for start
        assert n[n.index("seccomp") - 1:n.index("seccomp") + 2] == ["lookup", "seccomp", "ready"]
    else:  # before the capabilities are dropped
        assert n[n.index("seccomp") - 1:n.index("seccomp") + 2] == ["close_fds", "seccomp", "bounding"]


@pytest.mark.parametrize("readonly", [True, False])
def test_readonly_root_is_remounted_after_everything_else(tmp_path, readonly):
    from pyrunc.rootfs import options as O
    _, ops = _plan(_spec(tmp_path, lambda raw: raw["root"].update(readonly=readonly)))
    remount = ("mount", (O.MS_BIND | O.MS_REMOUNT | O.MS_RDONLY, P.TARGET_IN_ROOT, P.MKDIR_NONE, P.SOURCE_LITERAL),
               ("", "/", "", ""))
    assert (remount in ops) == readonly
    if readonly:
        assert ops[ops.index(remount) + 1][0] == "setsid"  # the process part follows


def test_masked_and_readonly_paths_after_pivot_and_sysctl(tmp_path):
    def edit(raw):
        raw["linux"].update(maskedPaths=["/proc/kcore", "/sys/firmware"], readonlyPaths=["/proc/sys"],
                            sysctl={"kernel.msgmax": "8192"})
    _, ops = _plan(_spec(tmp_path, edit))
    n = names(ops)
    i = n.index("pivot_root")
    assert ops[i + 1] == ("reopen_dev_null", (), ())  # stdio on the host's /dev/null: the container's
    assert ops[i + 2:i + 6] == [("sysctl", (), ("kernel/msgmax", "8192")), ("mask", (), ("/proc/kcore", "")),
                                ("mask", (), ("/sys/firmware", "")), ("readonly", (), ("/proc/sys",))]


def test_bind_mount_uses_the_host_facts(tmp_path):
    def edit(raw):
        raw["mounts"].append({"destination": "/mnt", "type": "bind", "source": "/src", "options": ["rbind", "ro"]})
    _, ops = _plan(_spec(tmp_path, edit))
    from pyrunc.rootfs import options as O
    binds = [o for o in ops if o[0] == "mount" and o[2][1] == "/mnt"]
    assert binds == [("mount", (O.MS_BIND | O.MS_REC, P.TARGET_IN_ROOT, P.MKDIR_DIR, P.SOURCE_HOST, 0, 1),
                      ("/src", "/mnt", "", "")),
                     ("mount", (O.MS_BIND | O.MS_REMOUNT | O.MS_RDONLY, P.TARGET_IN_ROOT, P.MKDIR_NONE,
                                P.SOURCE_LITERAL), ("", "/mnt", "", ""))]


def test_missing_bind_source_is_a_config_error(tmp_path):
    from pyrunc.errors import ConfigError
    s = _spec(tmp_path, lambda raw: raw["mounts"].append({"destination": "/mnt", "type": "bind",
                                                          "source": "/missing", "options": ["bind"]}))
    with pytest.raises(ConfigError, match="bind source /missing: no such file or directory"):
        _plan(s)


def test_no_pivot_hides_the_host_pseudo_filesystems(tmp_path):
    _, ops = _plan(_spec(tmp_path), no_pivot=True)
    n = names(ops)
    i = n.index("move_root")
    assert ops[i - 2:i] == [("hide_mount", (), ("/proc",)), ("hide_mount", (), ("/sys",))]
    assert "pivot_root" not in n


def test_no_new_keyring(tmp_path):
    assert "keyring" not in names(_plan(_spec(tmp_path), no_new_keyring=True)[1])


def test_exec_plan_places_joins_and_runs_the_process(tmp_path):
    s = _spec(tmp_path, lambda raw: raw["process"].update(terminal=True))
    cp = planner.exec_plan(s.process, [("ipc", 20), ("pid", 21), ("mount", 22)], 1234, console_fd=9,
                           first_closed_fd=5)
    ops = P.decode(cp.plan.encode())
    assert ops[:6] == [("sync", (P.SYNC_PLACED,), ()),
                       ("setns", (_ns("ipc"),), ("/proc/self/fd/20",)),
                       ("setns", (_ns("pid"),), ("/proc/self/fd/21",)),
                       ("setns", (_ns("mount"),), ("/proc/self/fd/22",)),
                       ("fork", (), ()),
                       ("console", (9, 0, 0, 0, 0), ())]
    assert names(ops)[6:] == ["setsid", "rlimit", "umask", "chdir", "close_fds", "bounding", "user", "capset", "no_new_privs",
                              "lookup", "exec"]
    assert ops[10] == ("close_fds", (5, 0), ())


def test_capabilities_follow_the_host_facts_last_cap(tmp_path):
    """The kernel's last capability is a host fact, not read while building: names above
    it are left out of every set and the bounding set is dropped up to it."""
    def edit(raw):
        for kind in ("bounding", "effective", "permitted"):
            raw["process"]["capabilities"][kind] = ["CAP_KILL", "CAP_BPF"]  # 5, 39
    s = _spec(tmp_path, edit)
    for last_cap, kept in ((40, (1 << 5) | (1 << 39)), (38, 1 << 5)):
        host = planner.HostFacts(cgroups=CGROUPS, mounts=_host().mounts, last_cap=last_cap)
        ops = dict((name, ints) for name, ints, _ in _plan(s, host)[1] if name in ("bounding", "capset"))
        assert ops["bounding"] == (kept, last_cap)
        assert ops["capset"][:2] == (kept, kept)
        exec_ops = P.decode(planner.exec_plan(s.process, [], 1, last_cap=last_cap).plan.encode())
        assert [ints for name, ints, _ in exec_ops if name == "bounding"] == [(kept, last_cap)]


# --- process attributes (pyrunc.process_attrs): personality, scheduler, I/O priority,
# memory policy, CPU affinity, as ops before the fds are handed over and any filter loads

def _process_part(ops) -> list:
    start = names(ops).index("chdir")
    return ops[start + 1:names(ops).index("close_fds")]


def test_process_attributes_ops(tmp_path):
    def edit(raw):
        raw["process"]["scheduler"] = {"policy": "SCHED_RR", "priority": 4,
                                       "flags": ["SCHED_FLAG_RESET_ON_FORK"]}
        raw["process"]["ioPriority"] = {"class": "IOPRIO_CLASS_RT", "priority": 2}
        raw["process"]["execCPUAffinity"] = {"initial": "0", "final": "1,3-4"}
        raw["linux"]["memoryPolicy"] = {"mode": "MPOL_INTERLEAVE", "nodes": "0-1",
                                        "flags": ["MPOL_F_STATIC_NODES"]}
        raw["linux"]["personality"] = {"domain": "LINUX32"}
    _, ops = _plan(_spec(tmp_path, edit))
    assert _process_part(ops) == [
        ("personality", (8,), ()),
        ("sched_affinity", (), ((0b11010).to_bytes(8, "little"),)),
        ("sched_setattr", (2, 1, 0, 4, 0, 0, 0), ()),
        ("ioprio_set", ((1 << 13) | 2,), ()),
        ("set_mempolicy", (3 | 1 << 15,), ((0b11).to_bytes(8, "little"),)),
    ]


def test_initial_affinity_without_final_resets_to_every_cpu(tmp_path):
    from pyrunc.process_attrs import ALL_CPUS
    def edit(raw):
        raw["process"]["execCPUAffinity"] = {"initial": "1"}
    _, ops = _plan(_spec(tmp_path, edit))
    assert _process_part(ops) == [("sched_affinity", (), (ALL_CPUS,))]


def test_no_process_attributes_no_ops(tmp_path):
    _, ops = _plan(_spec(tmp_path))
    assert _process_part(ops) == []


def test_exec_plan_carries_the_containers_personality_and_memory_policy(tmp_path):
    from pyrunc.spec.model import Linux, MemoryPolicy, Personality
    s = _spec(tmp_path)
    linux = Linux(personality=Personality(domain="LINUX32"), memory_policy=MemoryPolicy(mode="MPOL_LOCAL"))
    cp = planner.exec_plan(s.process, [], 1, linux=linux)
    ops = P.decode(cp.plan.encode())
    assert _process_part(ops) == [("personality", (8,), ()), ("set_mempolicy", (4,), (b"",))]


def test_deadline_scheduler_op(tmp_path):
    def edit(raw):
        raw["process"]["scheduler"] = {"policy": "SCHED_DEADLINE", "runtime": 10, "deadline": 20, "period": 30}
    _, ops = _plan(_spec(tmp_path, edit))
    assert _process_part(ops) == [("sched_setattr", (6, 0, 0, 0, 10, 20, 30), ())]
