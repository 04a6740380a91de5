"""`pyrunc checkpoint` and `pyrunc restore`: a container's processes saved to images and
brought back by CRIU, driven over its RPC (`criu swrk`, see pyrunc.criu) as runc 1.1
does it (libcontainer's Checkpoint/Restore):

- checkpoint: CRIU freezes the container through its cgroup freezer, dumps the process
  tree with its namespaces and mounts into --image-path and (unless --leave-running or
  --pre-dump) kills it; the container is then deleted. Mounts whose source lies outside
  the container (bind mounts, cgroup binds, /dev/null over masked files, device nodes)
  are declared to CRIU as external by their destination; `descriptors.json` in the
  images records the init's stdio (pipes are handed back at restore).
- restore: a new state directory and cgroup as `create` makes them, the rootfs bound on
  `<state>/criu-root` (CRIU wants a mount point for its root), CRIU's RESTORE with the
  external mounts mapped to their sources; the restored init becomes a child of this
  process (rst_sibling), is recorded like a started container's init, and state, kill,
  exec, pause, delete work on it as on any container.

Imported only by these two commands.
"""
from __future__ import annotations

import os

from pyrunc import criu
from pyrunc.errors import PyruncError, WrongState
from pyrunc.state import Container

DESCRIPTORS = "descriptors.json"
CRIU_ROOT = "criu-root"
CONFIG_ANNOTATION = "org.criu.config"
DEFAULT_CRIU_CONFIG = "/etc/criu/runc.conf"
_CLONE_NEWNET = 0x40000000
_LOG_LEVEL = 4


class Options:
    """The flags checkpoint and restore share (runc's CriuOpts)."""

    def __init__(self, opts: dict) -> None:
        self.image_path = os.path.abspath(opts.get("image_path") or "checkpoint")
        self.work_path = os.path.abspath(opts["work_path"]) if opts.get("work_path") else ""
        self.parent_path = opts.get("parent_path", "")
        self.leave_running = opts.get("leave_running", False)
        self.tcp_established = opts.get("tcp_established", False)
        self.ext_unix_sk = opts.get("ext_unix_sk", False)
        self.shell_job = opts.get("shell_job", False)
        self.file_locks = opts.get("file_locks", False)
        self.pre_dump = opts.get("pre_dump", False)
        self.auto_dedup = opts.get("auto_dedup", False)
        self.lazy_pages = opts.get("lazy_pages", False)
        self.status_fd = opts.get("status_fd", -1)
        self.lsm_profile = opts.get("lsm_profile", "")
        self.lsm_mount_context = opts.get("lsm_mount_context", "")
        # False when a failed checkpoint removes the directory CRIU logged into
        self.log_kept = True
        self.page_server = None
        server = opts.get("page_server", "")
        if server:
            address, _, port = server.rpartition(":")
            if not address or not port:
                raise PyruncError("Use --page-server ADDRESS:PORT to specify page server")
            if not port.isdigit():
                raise PyruncError("Invalid port number")
            self.page_server = {"address": address.strip("[]"), "port": int(port)}
        mode = opts.get("manage_cgroups_mode", "")
        if mode and mode not in criu.CG_MODES:
            raise PyruncError("Invalid manage cgroups mode")
        self.cgroups_mode = criu.CG_MODES.get(mode) if mode else None
        # runc does not manage network devices: the network namespace is always empty
        self.empty_ns = _CLONE_NEWNET
        for name in opts.get("empty_ns", ()):
            if name != "network":
                raise PyruncError(f'namespace "{name}" is not supported')

    def rpc(self) -> dict:
        """The criu_opts fields both directions set from the flags."""
        return {"log_level": _LOG_LEVEL, "manage_cgroups": True, "notify_scripts": True,
                "shell_job": self.shell_job, "tcp_established": self.tcp_established,
                "ext_unix_sk": self.ext_unix_sk, "file_locks": self.file_locks,
                "empty_ns": self.empty_ns, "orphan_pts_master": True,
                "auto_dedup": self.auto_dedup, "lazy_pages": self.lazy_pages,
                "manage_cgroups_mode": self.cgroups_mode}


# --------------------------------------------------------------------------- checkpoint
def checkpoint(g, container_id: str, opts: dict) -> None:
    c = Container.load(g.root, container_id)
    try:
        status = c.status()
        if status in ("created", "stopped", "creating"):
            raise WrongState(f"Container cannot be checkpointed in {status} state")
        made = _make_dirs(opts)
        try:
            options = Options(opts)
            options.log_kept = (options.work_path or options.image_path) not in made
            _check_parent(options)
            _dump(g, c, options)
        except BaseException:
            for path in reversed(made):
                _remove_tree(path)
            raise
        done = not (options.leave_running or options.pre_dump)
    finally:
        c.unlock()
    if done:
        from pyrunc import operations
        operations.delete(g, container_id, force=True)


def _make_dirs(opts: dict) -> list[str]:
    """runc creates the image directory (and the work directory) before anything else;
    returns the ones made here, which a failed checkpoint removes again."""
    made: list[str] = []
    image_path = os.path.abspath(opts.get("image_path") or "checkpoint")
    # the image path with its parents (runc's MkdirAll), the work path alone (its Mkdir)
    missing = []
    path = image_path
    while not os.path.lexists(path) and path != "/":
        missing.insert(0, path)
        path = os.path.dirname(path)
    if opts.get("work_path"):
        missing.append(os.path.abspath(opts["work_path"]))
    try:
        for path in missing:
            try:
                os.mkdir(path, 0o700)
                made.append(path)
            except FileExistsError:
                pass
    except OSError as err:
        for done in reversed(made):
            os.rmdir(done)
        raise PyruncError(f"mkdir {path}: {os.strerror(err.errno).lower()}") from None
    return made


def _check_parent(options: Options) -> None:
    parent = options.parent_path
    if not parent:
        return
    if os.path.isabs(parent):
        raise PyruncError("--parent-path must be relative")
    import stat
    real = os.path.join(options.image_path, parent)
    try:
        mode = os.stat(real).st_mode
    except OSError as err:
        raise PyruncError(f"invalid --parent-path: stat {real}: {os.strerror(err.errno).lower()}") from None
    if not stat.S_ISDIR(mode):
        raise PyruncError(f"invalid --parent-path: stat {real}: not a directory")


def _dump(g, c: Container, options: Options) -> None:
    from pyrunc import spec as specmod
    binary = criu.resolve_binary(g.criu)
    criu_version = criu.version(binary)
    s = specmod.load(c.state.bundle, creating=False)
    mgr = _manager(c)
    image_fd = os.open(options.image_path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    work_fd = -1
    try:
        rpc = options.rpc()
        rpc.update(images_dir_fd=image_fd, log_file="dump.log", root=s.root.path, pid=c.pid,
                   leave_running=options.leave_running)
        if options.work_path:
            work_fd = os.open(options.work_path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            rpc["work_dir_fd"] = work_fd
        _config_file(rpc, s)
        external = [_external_namespace(s, kind) for kind in ("network", "pid")]
        rpc["external"] = [e for e in external if e]
        freezer = _freezer_dir(mgr)
        if freezer:
            rpc["freeze_cgroup"] = freezer
        if options.page_server:
            rpc["ps"] = options.page_server
        if options.parent_path:
            rpc["parent_img"] = options.parent_path
            rpc["track_mem"] = True
        features = {}
        if options.pre_dump:
            features["mem_track"] = True
        if options.lazy_pages:
            features["lazy_pages"] = True
            if options.status_fd != -1:
                _check_status_fd(options.status_fd)
                if criu_version < 31500:
                    # newer CRIU says "status-ready" instead (see _status_ready)
                    rpc["status_fd"] = options.status_fd
        if features:
            _check_features(binary, features)
        if not options.pre_dump:
            rpc["ext_mnt"] = [{"key": dest, "val": dest} for dest, _source in _external_mounts(s, mgr)]
            rpc["ext_mnt"] += [{"key": path, "val": "/dev/null"} for path in _masked_files(s, c.pid)]
            _write_descriptors(options.image_path, c.pid)

        def on_notify(script: str, _pid: int, _fds: list[int]) -> None:
            if script == "post-dump":
                # runc marks the state dir while the images are complete and the
                # processes not yet killed
                with open(c.path("checkpoint"), "w"):
                    pass
            elif script == "status-ready":
                _status_ready(options)

        _run(binary, criu.PRE_DUMP if options.pre_dump else criu.DUMP, rpc, options,
             "dump.log", on_notify)
    finally:
        os.close(image_fd)
        if work_fd >= 0:
            os.close(work_fd)


def _check_status_fd(fd: int) -> None:
    import fcntl
    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    except OSError as err:
        raise PyruncError(f"invalid --status-fd argument {fd}: {os.strerror(err.errno).lower()}") from None
    if not flags & (os.O_WRONLY | os.O_RDWR):
        raise PyruncError(f"invalid --status-fd argument {fd}: not writable")


def _status_ready(options: Options) -> None:
    """The lazy-pages server is up: one NUL byte to --status-fd, then close it."""
    if options.status_fd == -1:
        return
    try:
        os.write(options.status_fd, b"\0")
    except OSError as err:
        from pyrunc import log
        log.warning(f"can't write \\0 to status fd: {os.strerror(err.errno).lower()}")
    finally:
        os.close(options.status_fd)
        options.status_fd = -1


def _check_features(binary: str, wanted: dict) -> None:
    swrk = criu.Swrk(binary)
    try:
        resp = swrk.call(criu.FEATURE_CHECK, features=wanted)
    except criu.CriuError as err:
        raise PyruncError(f"CRIU feature check failed: {err}") from None
    finally:
        swrk.close()
    have = resp.get("features", {})
    missing = [{"mem_track": "MemTrack", "lazy_pages": "LazyPages"}[name]
               for name in wanted if not have.get(name)]
    if missing:
        raise PyruncError(f"criu is missing features: [{' '.join(missing)}]")


def _run(binary: str, req_type: int, rpc: dict, options: Options, log_name: str, on_notify,
         extra_fds=(), on_started=None) -> dict:
    """One request to a fresh `criu swrk` (its stdio are ours: restore's pipes reach the
    restored process through them); a failure becomes one line naming CRIU's first error
    and the log."""
    swrk = criu.Swrk(binary, extra_fds=list(extra_fds))
    try:
        if on_started is not None:
            on_started(swrk.pid, rpc)
        resp = swrk.call(req_type, rpc, on_notify=on_notify)
    except criu.CriuError as err:
        # CRIU answered (it has undone its work by then) or its socket broke: let it exit
        swrk.close()
        log_path = os.path.join(options.work_path or options.image_path, log_name)
        reason = criu.first_error(log_path)
        detail = f": {reason}" if reason else ""
        where = f" (log file: {log_path})" if options.log_kept else ""
        raise PyruncError(f"{err}{detail}{where}") from None
    except BaseException:
        swrk.close(kill=True)
        raise
    # pre-dump: criu waits for more requests, and closing the socket ends it (not cleanly)
    status = swrk.close()
    if status != 0 and req_type != criu.PRE_DUMP:
        raise PyruncError(f"criu failed: exit status {status}")
    return resp


def _config_file(rpc: dict, s) -> None:
    """runc's org.criu.config annotation: a file CRIU reads after the RPC options (empty:
    none); without it /etc/criu/runc.conf."""
    if CONFIG_ANNOTATION in s.annotations:
        if s.annotations[CONFIG_ANNOTATION]:
            rpc["config_file"] = s.annotations[CONFIG_ANNOTATION]
    else:
        rpc["config_file"] = DEFAULT_CRIU_CONFIG


def _ns_key(kind: str) -> str:
    return "extRoot" + {"network": "Net", "pid": "Pid"}[kind] + "NS"


def _external_namespace(s, kind: str) -> str:
    """A namespace the container joined by path is not CRIU's to dump: declared as
    external ("net[<inode>]:extRootNetNS"), handed back by fd at restore."""
    ns = s.linux.namespace(kind)
    if ns is None or not ns.path:
        return ""
    inode = os.stat(ns.path).st_ino
    return f"{'net' if kind == 'network' else 'pid'}[{inode}]:{_ns_key(kind)}"


def _manager(c: Container):
    return c.cgroup_manager()


def _freezer_dir(mgr) -> str:
    if mgr is None:
        return ""
    paths = mgr.paths
    for key, path in paths.items():
        if key and "freezer" in key.split(","):
            return path
    return paths.get("", "") if mgr.mode == "unified" else ""


def _external_mounts(s, mgr) -> list[tuple[str, str]]:
    """(destination, host source) of every mount whose source is outside the container:
    bind mounts, the cgroup directories bound when there is no cgroup namespace, and
    device nodes (bound from the host in a user namespace; harmless otherwise, as in
    runc, which lists them all)."""
    from pyrunc.rootfs import options as mount_options
    out = []
    cgroupns = s.linux.namespace("cgroup") is not None
    for m in s.mounts:
        dest = os.path.normpath("/" + m.destination.lstrip("/"))
        opts = mount_options.parse(m.options)
        if m.type == "cgroup" or (m.type == "" and m.source == "cgroup" and not opts.is_bind):
            if cgroupns or mgr is None:
                continue
            from pyrunc.launch import cgroup_hierarchies
            hiers = cgroup_hierarchies(mgr)
            if len(hiers) == 1 and hiers[0].name == "":
                out.append((dest, hiers[0].host_dir))
            else:
                out += [(f"{dest}/{h.name}", h.host_dir) for h in hiers if h.name]
        elif m.type == "bind" or opts.is_bind:
            source = m.source if os.path.isabs(m.source) else os.path.join(s.bundle, m.source)
            out.append((dest, source))
    out += [(d.path, d.path) for d in s.linux.devices]
    return out


def _masked_files(s, pid: int) -> list[str]:
    """Masked paths that are files: /dev/null is bound over them (directories get a
    tmpfs, which CRIU dumps itself)."""
    import stat
    out = []
    for path in s.linux.masked_paths:
        try:
            st = os.stat(f"/proc/{pid}/root/{path.lstrip('/')}")
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode):
            out.append(path)
    return out


def _write_descriptors(image_path: str, pid: int) -> None:
    """runc's descriptors.json: what the init's stdio were (pipe:[N] for a pipe)."""
    import json
    names = []
    for fd in range(3):
        try:
            names.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            names.append("")
    path = os.path.join(image_path, DESCRIPTORS)
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600), "w") as f:
        f.write(json.dumps(names, separators=(",", ":")))


# --------------------------------------------------------------------------- restore
def restore(g, container_id: str, bundle: str, opts: dict, *, detach: bool = False,
            pid_file: str = "", console_socket: str = "", no_pivot: bool = False) -> int:
    """Restore the container from its images; detached return 0, otherwise wait for it
    like `run` and return its exit code (the container is deleted afterwards)."""
    options = Options(opts)
    from pyrunc import spec as specmod
    s = specmod.load(bundle)
    if s.process.terminal and not console_socket:
        raise PyruncError("cannot restore a container with a terminal without --console-socket")
    if not s.process.terminal and console_socket:
        raise PyruncError("cannot use console socket if runc will not detach or allocate tty")
    if not detach:
        from pyrunc._native import set_subreaper
        set_subreaper()
    pid = _restore(g, container_id, s, options, pid_file=pid_file, console_socket=console_socket)
    if detach:
        return 0
    from pyrunc import operations
    code = operations._wait_foreground(pid, None)
    try:
        operations.delete(g, container_id, force=True)
    except PyruncError:
        pass
    return code


def _restore(g, container_id: str, s, options: Options, *, pid_file: str,
             console_socket: str) -> int:
    from pyrunc import cgroups, operations
    from pyrunc.state import now_rfc3339, proc_stat
    c = Container.reserve(g.root, container_id)
    mgr = None
    root_mounted = ""
    restored = {}
    opened: list[int] = []
    try:
        binary = criu.resolve_binary(g.criu)
        criu.version(binary)
        descriptors = _read_descriptors(options.image_path)
        image_fd = os.open(options.image_path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        opened.append(image_fd)
        st = c.state
        st.oci_version, st.id, st.pid = s.oci_version, container_id, 0
        st.bundle, st.rootfs, st.created = s.bundle, s.root.path, now_rfc3339()
        st.annotations, st.no_new_keyring, st.args0 = s.annotations, False, s.process.args[0]
        st.exec_defaults, st.hooks = operations._exec_defaults(s), operations._hooks_state(s)
        mgr = cgroups.Manager.for_container(s.linux.cgroups_path, container_id, g.systemd_cgroup,
                                            annotations=s.annotations)
        st.cgroup = dict(mgr.to_state(), created=sorted(set(mgr.paths.values())))
        c.save()
        mgr.create()
        st.resources = mgr.apply(s.linux.cgroup_resources, devices=s.linux.devices)
        st.cgroup = mgr.to_state()
        c.save()
        root = c.path(CRIU_ROOT)
        os.mkdir(root, 0o755)
        _mount(s.root.path, root, _MS_BIND | _MS_REC)
        root_mounted = root
        _make_mountpoints(s)

        rpc = options.rpc()
        rpc.update(images_dir_fd=image_fd, log_file="restore.log", root=root,
                   evasive_devices=True, rst_sibling=True)
        if options.work_path:
            os.makedirs(options.work_path, 0o700, exist_ok=True)
            work_fd = os.open(options.work_path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            opened.append(work_fd)
            rpc["work_dir_fd"] = work_fd
        if options.lsm_profile:
            rpc["lsm_profile"] = options.lsm_profile
        if options.lsm_mount_context:
            rpc["lsm_mount_context"] = options.lsm_mount_context
        _config_file(rpc, s)
        extra_fds, rpc["inherit_fd"], rpc["join_ns"] = _restore_namespaces(s, opened)
        rpc["ext_mnt"] = [{"key": dest, "val": source} for dest, source in _external_mounts(s, mgr)]
        if s.linux.masked_paths:
            rpc["ext_mnt"].append({"key": "/dev/null", "val": "/dev/null"})
        rpc["inherit_fd"] += [{"key": name, "fd": fd} for fd, name in enumerate(descriptors)
                              if "pipe:" in name]

        def on_started(criu_pid: int, request: dict) -> None:
            # the restored tasks are created by criu: it must be in the cgroup first
            mgr.join(criu_pid)
            request["cg_root"] = _cgroup_roots(criu_pid)

        def on_notify(script: str, pid: int, fds: list[int]) -> None:
            if script == "setup-namespaces" and (s.hooks.prestart or s.hooks.create_runtime):
                from pyrunc import hooks as hookmod
                from pyrunc.record import as_dict
                state = dict(c.oci_state(), pid=pid, status="creating")
                hookmod.run_all([as_dict(h) for h in s.hooks.prestart], state, "prestart")
                hookmod.run_all([as_dict(h) for h in s.hooks.create_runtime], state, "createRuntime")
            elif script == "post-restore":
                restored["pid"] = pid
            elif script == "orphan-pts-master" and fds and console_socket:
                from pyrunc import unixsock
                sock = unixsock.socket(unixsock.STREAM)
                try:
                    unixsock.connect(sock, console_socket)
                    unixsock.send_fd(sock, b"/dev/ptmx", fds[0])
                finally:
                    sock.close()
            elif script == "status-ready":
                _status_ready(options)

        resp = _run(binary, criu.RESTORE, rpc, options, "restore.log", on_notify,
                    extra_fds=extra_fds, on_started=on_started)
        pid = restored.get("pid") or resp.get("restore", {}).get("pid", 0)
        stat = proc_stat(pid) if pid else None
        if stat is None:
            raise PyruncError("criu: the restored process is gone")
        c.state.pid, c.state.pid_start = pid, stat[2]
        if pid_file:
            operations._write_pid_file(pid_file, pid)
        c.save()
    except BaseException:
        if restored.get("pid"):
            try:
                os.kill(restored["pid"], 9)
            except ProcessLookupError:
                pass
        if root_mounted:
            _umount(root_mounted)
            root_mounted = ""
        operations._destroy(c, mgr)
        raise
    finally:
        for fd in opened:
            os.close(fd)
        if root_mounted:
            _umount(root_mounted)
            try:
                os.rmdir(root_mounted)
            except OSError:
                pass
        c.unlock()
    return pid


def _read_descriptors(image_path: str) -> list[str]:
    import json
    path = os.path.join(image_path, DESCRIPTORS)
    try:
        with open(path) as f:
            names = json.load(f)
    except OSError as err:
        raise PyruncError(f"open {path}: {os.strerror(err.errno).lower()}") from None
    except ValueError as err:
        raise PyruncError(f"{path}: invalid JSON: {err}") from None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise PyruncError(f"{path}: must be a list of strings")
    return names


def _restore_namespaces(s, opened: list[int]) -> tuple[list[int], list[dict], list[dict]]:
    """Namespaces given by path: network and pid are handed to CRIU as inherited fds
    (their key as at dump), the others joined by path (runc's handleRestoringNamespaces)."""
    extra_fds: list[int] = []
    inherit: list[dict] = []
    join: list[dict] = []
    names = {"network": "net", "mount": "mnt", "ipc": "ipc", "uts": "uts", "user": "user",
             "time": "time"}
    for ns in s.linux.namespaces:
        if not ns.path:
            continue
        if ns.type in ("network", "pid"):
            try:
                fd = os.open(ns.path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                raise PyruncError(f"Requested network namespace {ns.path} does not exist") from None
            opened.append(fd)
            # criu's fds: 0-2 stdio, 3 the RPC socket, then these in order
            inherit.append({"key": _ns_key(ns.type), "fd": 4 + len(extra_fds)})
            extra_fds.append(fd)
        elif ns.type == "cgroup":
            raise PyruncError("Do not know how to handle namespace cgroup")
        else:
            join.append({"ns": names[ns.type], "ns_file": ns.path})
    return extra_fds, inherit, join


def _cgroup_roots(pid: int) -> list[dict]:
    roots = []
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _hid, controllers, path = line.rstrip("\n").split(":", 2)
            roots.append({"ctrl": controllers, "path": path})
    return roots


def _make_mountpoints(s) -> None:
    """As create would: every mount's destination exists in the rootfs (CRIU mounts on
    them), except below a tmpfs, whose content CRIU restores itself."""
    tmpfs = [os.path.normpath("/" + m.destination.lstrip("/")) for m in s.mounts if m.type == "tmpfs"]
    for m in s.mounts:
        dest = os.path.normpath("/" + m.destination.lstrip("/"))
        if any(dest.startswith(t + "/") for t in tmpfs):
            continue
        target = os.path.join(s.root.path, dest.lstrip("/"))
        if os.path.lexists(target):
            continue
        source = m.source if os.path.isabs(m.source) else os.path.join(s.bundle, m.source)
        is_bind = m.type == "bind" or "bind" in m.options or "rbind" in m.options
        try:
            if is_bind and not os.path.isdir(source):
                os.makedirs(os.path.dirname(target), exist_ok=True)
                os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
            else:
                os.makedirs(target, exist_ok=True)
        except OSError as err:
            raise PyruncError(f"create criu restore mountpoint for {dest} mount: "
                              f"{os.strerror(err.errno).lower()}") from None


_MS_BIND, _MS_REC, _MNT_DETACH = 0x1000, 0x4000, 2


def _libc():
    import ctypes
    return ctypes.CDLL(None, use_errno=True)


def _mount(source: str, target: str, flags: int) -> None:
    import ctypes
    if _libc().mount(source.encode(), target.encode(), None, flags, None) != 0:
        errno = ctypes.get_errno()
        raise PyruncError(f"mount {source} on {target}: {os.strerror(errno).lower()}")


def _umount(target: str) -> None:
    _libc().umount2(target.encode(), _MNT_DETACH)


def _remove_tree(path: str) -> None:
    from pyrunc.state import _remove_tree as remove
    remove(path)
