"""The process facility: the part of a plan that turns the set-up init into the
container's process (rlimits, umask, cwd, LSM labels, stdio, seccomp, capabilities,
user, the program's lookup, exec) and its console.

Pure builders over `pyrunc.plan.Plan`, shared by the container's init
(`planner.container_plan`), `exec` (`planner.exec_plan`) and startContainer hooks
(`hooks`); what they need from the host comes in as arguments.
"""
from __future__ import annotations

import errno

from pyrunc.plan import ContainerPlan, Plan

# the PATH a program is searched in when process.env sets none (runc's)
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def process_ops(cp: ContainerPlan, process, *, last_cap: int, seccomp_bpf: bytes | None, seccomp_flags: int,
                first_closed_fd: int, exec_fifo_fd: int | None, env: list[str],
                program: str = "", home: bool = True, linux=None) -> None:
    """The process part, after the filesystem: rlimits, user, capabilities, seccomp, exec.

    seccomp goes as late as possible: right before the wait for `start` when
    no_new_privileges lets an unprivileged process load it, else before the capabilities
    are dropped (runc); either way at create, so that a bad filter or a missing notify
    agent fails create.  Nothing after the filter may need a call the workload's profile
    might not allow: the inherited fds are marked close-on-exec and the stdio given to
    the user before it (close_range, fstatfs, fchown), and what follows it is only what
    runc's init does there (prctl, capset, set*id, stat, access, reading /etc/passwd,
    write, read, close, execve).
    last_cap: the highest capability number the host's kernel knows (caps.last_cap(), a
    host fact): capabilities above it are left out, the bounding set is dropped up to it.
    exec_fifo_fd: the init's O_PATH fd of the state dir's exec fifo, for a container's
    init (it waits for `start` by opening the fifo for writing).
    program: the file to execute with process.args (default: args[0] searched in PATH);
    home: add HOME from the user's passwd entry when env has none.
    linux: the container's linux section (personality, memoryPolicy), None for a hook.
    """
    from pyrunc import caps, rlimits
    from pyrunc.spec.model import Capabilities

    plan = cp.plan
    # runc's nsexec makes every container process (init and exec) a session leader; CRIU
    # refuses to dump a tree whose session leader is outside it
    plan.setsid(what="create a session")
    for rl in process.rlimits:
        plan.rlimit(rlimits.rlimit_number(rl.type), rl.soft, rl.hard, what=f"set {rl.type}")
    # runc's default umask when process.user.umask is absent
    umask = process.user.umask if process.user.umask is not None else 0o022
    plan.umask(umask, what="set umask")
    plan.chdir(process.cwd, what=f"chdir to cwd ({process.cwd!r})")
    # LSM labels for the execve, set while still root and before any seccomp filter (runc)
    if process.apparmor_profile or process.selinux_label:
        from pyrunc import lsm  # only for a process that has a label
        if process.apparmor_profile:
            lsm.add_attr_op(plan, "apparmor", process.apparmor_profile)
        if process.selinux_label:
            lsm.add_attr_op(plan, "exec", process.selinux_label)
    # personality, CPU affinity, scheduler, I/O priority, memory policy: as late as
    # possible, but while still root (CAP_SYS_NICE) and before any seccomp filter
    if (process.scheduler or process.io_priority or process.exec_cpu_affinity
            or (linux is not None and (linux.personality or linux.memory_policy))):
        from pyrunc import process_attrs  # only for a config that has one
        process_attrs.add_ops(plan, process, linux)
    # before the filter too: the user gets its stdio pipes (fstatfs, fchown)
    plan.close_fds(first_closed_fd, process.user.uid,
                   what="mark inherited file descriptors close-on-exec, give the user its stdio")
    if seccomp_bpf is not None and not process.no_new_privileges:
        plan.seccomp(seccomp_flags, seccomp_bpf, what="load seccomp filter")
    # no capabilities object means empty sets, as in runc
    c = process.capabilities if process.capabilities is not None else Capabilities()
    plan.bounding(caps.mask(caps.split_by_kernel(c.bounding, last_cap)[0]), last_cap,
                  what="drop capabilities from the bounding set")
    user = process.user
    plan.user(user.uid, user.gid, user.additional_gids,
              what=f"set user to {user.uid}:{user.gid}")
    known = {k: caps.mask(caps.split_by_kernel(getattr(c, k), last_cap)[0])
             for k in ("effective", "permitted", "inheritable", "ambient")}
    # ambient capabilities must be permitted and inheritable (runc drops the rest)
    ambient = known["ambient"] & known["permitted"] & known["inheritable"]
    plan.capset(known["effective"], known["permitted"], known["inheritable"], ambient,
                what="set capabilities")
    if process.no_new_privileges:
        plan.no_new_privs(what="set no_new_privs")
    path = next((e[5:] for e in env if e.startswith("PATH=")), DEFAULT_PATH)
    program = program or process.args[0]
    plan.lookup(program, path, process.user.uid if home else -1, what=f'exec: "{program}"')
    if seccomp_bpf is not None and process.no_new_privileges:
        plan.seccomp(seccomp_flags, seccomp_bpf, what="load seccomp filter")
    if exec_fifo_fd is not None:
        plan.ready(what="report the container created")
        plan.wait_exec_fifo(exec_fifo_fd, what="wait for start")
    plan.exec(process.args, dedupe_env(env), what=f"exec {process.args[0]}")


def console_op(plan: Plan, process, socket_fd: int, *, bind_console: bool) -> None:
    """process.terminal: the init makes a pty, sends its master over the console socket
    and makes the slave its stdio (bind_console: bound over /dev/console, for an init)."""
    size = process.console_size
    plan.console(socket_fd, size.height if size else 0, size.width if size else 0, bind_console,
                 process.user.uid, what="set up the console",
                 reasons={errno.ELOOP: "/dev/console is a symlink in the rootfs: the console is not "
                                       "bound through it"} if bind_console else None)


def dedupe_env(env: list[str]) -> list[str]:
    """One entry per name: the first position, the last value (runc)."""
    values: dict[str, str] = {}
    for entry in env:
        values[entry.partition("=")[0]] = entry
    return list(values.values())
