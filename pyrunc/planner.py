"""The container's plan from (Spec, host facts, options), phase by phase.

`container_plan` is pure: it reads nothing from the host and changes nothing; what the
plan depends on outside the Spec comes in as `HostFacts` (read by `probe_host`) and
`PlanOptions` (the command's flags and the fds the runtime prepared).  Each facility
contributes its ops through the typed builders of `pyrunc.plan.Plan`: namespaces
(pyrunc.ns), the filesystem (pyrunc.rootfs), LSM labels (pyrunc.lsm), the process
(pyrunc.process).  tests/unit/test_planner.py asserts the plans as data.
"""
from __future__ import annotations

import errno

from pyrunc import caps, ns
from pyrunc import plan as P
from pyrunc.process import console_op, process_ops
from pyrunc.record import Record


class HostFacts(Record):
    """What the plan depends on besides the Spec."""
    cgroups: list        # rootfs.CgroupHierarchy: the container's cgroups as its cgroup mount shows them
    mounts: object       # rootfs.MountHostFacts, None without a mount namespace
    # False with the systemd driver: its cgroups appear only once the runtime has started
    # the unit (placement), and the rootfs may bind-mount them
    cgroup_dirs_before_placement: bool = True
    # the highest capability number the kernel knows (caps.last_cap()); the default, the
    # capability table's last, is for plans built without a host (tests)
    last_cap: int = caps.TABLE_LAST_CAP
    # the runtime is not root, or root of a user namespace (rootless podman runs it there):
    # it cannot open_tree the bind sources before the user namespace (that needs
    # privilege), nor needs to: its own files are reachable for it from inside the
    # namespace it makes, where the binds are done as runc does; and it can make no device
    # node, in a user namespace of the config's or not: devices are bind mounts (runc)
    rootless: bool = False


class PlanOptions(Record):
    """The command's options and what the runtime prepared for the init."""
    container_id: str
    env: list            # process.env plus the socket-activation variables
    exec_fifo_fd: int    # the init's O_PATH fd of the exec fifo (see operations.start)
    first_closed_fd: int  # fds from here on are the runtime's: close-on-exec in the init
    console_fd: int = -1  # the console socket, with process.terminal
    no_pivot: bool = False
    no_new_keyring: bool = False
    overlay_dirs: tuple = None  # (upper, work) of the union rootfs annotation
    seccomp_bpf: bytes = None   # the compiled linux.seccomp, with its filter flags
    seccomp_flags: int = 0


def probe_host(spec, cgroups: list, *, no_pivot: bool, cgroup_dirs_before_placement: bool = True) -> HostFacts:
    """Read the host facts `container_plan(spec, ...)` needs."""
    import os
    mounts = None
    types = {n.type for n in spec.linux.namespaces}
    rootless = os.geteuid() != 0 or ns.in_user_namespace()
    if "mount" in types:
        from pyrunc import rootfs
        mounts = rootfs.probe_host(spec, spec.root.path, no_pivot=no_pivot, userns="user" in types or rootless)
    return HostFacts(cgroups=cgroups, mounts=mounts, cgroup_dirs_before_placement=cgroup_dirs_before_placement,
                     last_cap=caps.last_cap(), rootless=rootless)


def container_plan(spec, host: HostFacts, opts: PlanOptions) -> P.ContainerPlan:
    """The init's plan, in phases:

    1. bind sources opened while the host's root can reach them (with a user namespace,
       not rootless; id-mapped ones always, and id-mapped there)
    2. namespaces: joined, then made (pyrunc.ns.namespace_ops), cgroup placement awaited
       where a namespace or fork needs it
    3. a new session keyring
    4. the filesystem up to the pivot: propagation, rootfs, mounts, devices, cwd
    5. placement in the cgroups; createRuntime/createContainer hooks (SYNC_HOOKS)
    6. pivot_root (or MS_MOVE, or chroot without a mount namespace)
    7. sysctls, masked and read-only paths, hostname, console, read-only /dev and /
    8. the process: rlimits, umask, cwd, LSM labels, fds, seccomp, capabilities, user,
       then READY, the wait for start, and exec
    """
    linux = spec.linux
    cp = P.ContainerPlan()
    plan = cp.plan
    types = {n.type: n.path for n in linux.namespaces}
    ctx = _rootfs_context(spec, host, opts, types) if host.mounts is not None else None
    if ctx is not None and not host.rootless:
        from pyrunc import rootfs
        rootfs.add_bind_tree_ops(plan, spec, ctx)
    ns.namespace_ops(cp, linux)
    if opts.exec_fifo_fd is not None:
        # in the init's pid namespace already, before the pivot hides the host's procfs:
        # the wait for start reopens the exec fifo through it (docs/design.md)
        plan.open_proc_fds(what="open /proc/self/fd")
    if not opts.no_new_keyring:
        _keyring_ops(plan, spec, opts.container_id)
    _root_ops(cp, spec, ctx, opts.overlay_dirs, host.cgroup_dirs_before_placement)
    _kernel_settings_ops(plan, spec, ctx)
    if spec.process.terminal:
        console_op(plan, spec.process, opts.console_fd, bind_console=True)
    if ctx is not None:
        from pyrunc import rootfs
        rootfs.add_readonly_dev(plan, spec)
        if spec.root.readonly:
            rootfs.add_readonly_root(plan)
    process_ops(cp, spec.process, last_cap=host.last_cap, seccomp_bpf=opts.seccomp_bpf,
                seccomp_flags=opts.seccomp_flags, first_closed_fd=opts.first_closed_fd, exec_fifo_fd=opts.exec_fifo_fd,
                env=opts.env, linux=linux)
    return cp


def exec_plan(process, namespaces: list[tuple[str, int]], pid: int, *, last_cap: int = caps.TABLE_LAST_CAP,
              console_fd: int = -1, seccomp_bpf: bytes | None = None, seccomp_flags: int = 0,
              first_closed_fd: int = 3, linux=None) -> P.ContainerPlan:
    """The plan of a process joining the running container whose init is `pid` (exec):
    placed in its cgroups first, then its namespaces (`namespaces`: [(type, fd)] from
    ns.open_namespaces_of), the console, and the same process setup as the init's.
    last_cap: the host's, as HostFacts.last_cap; linux: the container's personality and
    memory policy, which exec applies too."""
    cp = P.ContainerPlan()
    plan = cp.plan
    plan.sync(P.SYNC_PLACED, what="wait for the runtime to place the process")
    ns.join_ops(plan, namespaces, pid)
    if process.terminal:
        console_op(plan, process, console_fd, bind_console=False)
    process_ops(cp, process, last_cap=last_cap, seccomp_bpf=seccomp_bpf, seccomp_flags=seccomp_flags,
                first_closed_fd=first_closed_fd, exec_fifo_fd=None, env=list(process.env), linux=linux)
    return cp


def _rootfs_context(spec, host: HostFacts, opts: PlanOptions, types: dict):
    from pyrunc import rootfs
    return rootfs.RootfsContext(
        rootfs=spec.root.path, bundle=spec.bundle, userns="user" in types or host.rootless,
        netns_new="network" in types and not types["network"],
        cgroupns_new="cgroup" in types and not types["cgroup"],
        no_pivot=opts.no_pivot, cgroups=host.cgroups, host=host.mounts, mount_label=spec.linux.mount_label)


def _keyring_ops(plan: P.Plan, spec, container_id: str) -> None:
    if spec.process.selinux_label:
        from pyrunc import lsm
        # the session keyring gets the process's label (runc's SetKeyLabel)
        lsm.add_attr_op(plan, "keycreate", spec.process.selinux_label)
    plan.keyring(f"_ses.{container_id}", what="join a new session keyring")


def _hooks_sync(cp: P.ContainerPlan, spec) -> None:
    """Placement first (hooks see the init in its cgroups), then the hooks, if any."""
    cp.wait_placed()
    h = spec.hooks
    if h.prestart or h.create_runtime or h.create_container:
        cp.plan.sync(P.SYNC_HOOKS, what="run createRuntime and createContainer hooks")


def _root_ops(cp: P.ContainerPlan, spec, ctx, overlay_dirs, cgroup_dirs_before_placement: bool) -> None:
    """Phases 4-6: the filesystem, the sync points, and the change of root."""
    plan = cp.plan
    root = spec.root.path
    if ctx is None:
        # no mount namespace: nothing may be mounted (it would land on the host)
        plan.root(root, what=f"open rootfs {root}")
        _hooks_sync(cp, spec)
        plan.chroot(what=f"chroot into {root}")
        plan.root("/", what="open /")
        return
    from pyrunc import rootfs
    if not cgroup_dirs_before_placement:
        cp.wait_placed()
    rootfs.add_prepare_ops(plan, spec, ctx, overlay_dirs)
    # a missing cwd is created (runc), before the root may become read-only
    plan.mkdir(spec.process.cwd, what=f"create cwd {spec.process.cwd}")
    # the mounts above overlap with the runtime's (slow, on v1) cgroup join
    _hooks_sync(cp, spec)
    rootfs.add_pivot_ops(plan, spec, ctx)


def _kernel_settings_ops(plan: P.Plan, spec, ctx) -> None:
    """Sysctls before the read-only /proc/sys of readonlyPaths (runc's order), then the
    masked and read-only paths, the host and domain names."""
    for key, value in spec.linux.sysctl.items():
        path = key.replace(".", "/")
        plan.sysctl(path, value, what=f"write sysctl {key}",
                    reasons={errno.EXDEV: f"/proc/sys/{path} is not the kernel's procfs file "
                                          "(/proc is not procfs, or something is mounted over it)"})
    if ctx is not None:
        from pyrunc import rootfs
        rootfs.add_finish_ops(plan, spec)
    if spec.hostname:
        plan.hostname(spec.hostname, what=f"set hostname {spec.hostname!r}")
    if spec.domainname:
        plan.domainname(spec.domainname, what=f"set domainname {spec.domainname!r}")
