"""The container's filesystem view as plan ops: rootfs, mounts, devices, pivot_root,
masked and read-only paths.  Every container path is resolved by pyrunc-init INSIDE the
rootfs (openat2 RESOLVE_IN_ROOT), so symlinks in an image cannot redirect a mount."""
from __future__ import annotations

import errno
import os
import stat
from pyrunc.record import Record

from pyrunc import plan as P
from pyrunc.errors import ConfigError
from pyrunc.rootfs import options as O

# runc's default devices (libcontainer/specconv AllowedDevices with a path)
DEFAULT_DEVICES = (
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/tty", 5, 0),
    ("/dev/urandom", 1, 9),
    ("/dev/random", 1, 8),
)

DEV_SYMLINKS = (
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
)

OVERLAY_ANNOTATION = "run.pyrunc.overlay"
OVERLAY_LOWER_ANNOTATION = "run.pyrunc.overlay.lowerdirs"


class CgroupHierarchy(Record):
    """One cgroup hierarchy as the container should see it under /sys/fs/cgroup."""
    name: str        # directory below the cgroup mount ("memory", "cpu,cpuacct", "" for v2)
    fstype: str      # "cgroup" or "cgroup2"
    options: str     # mount data for a fresh mount in a cgroup namespace ("memory", "name=systemd")
    host_dir: str    # the container's cgroup directory on the host


class MountHostFacts(Record):
    """What the mount plan needs to know about the host, read once by `probe_host` (the
    plan builders read nothing themselves, so tests give them made-up facts)."""
    rootfs_parent: tuple[str, str]   # the mount holding the rootfs: (as mountinfo escapes it, path)
    pseudo_mounts: list[tuple[str, str]]  # --no-pivot: the host's full procfs/sysfs (fstype, mount point)
    bind_sources: dict[str, int]     # bind source -> its st_mode, or -errno when stat fails
    host_devices: frozenset[str]     # with a user namespace: the device paths the host has (to bind)
    kcore: bool                      # the host has /proc/kcore (the /dev/core symlink)


def probe_host(spec, rootfs: str, *, no_pivot: bool, userns: bool) -> MountHostFacts:
    """Read the host facts the mount plan of `spec` depends on."""
    sources: dict[str, int] = {}
    for m in spec.mounts:
        if m.type != "bind" and "bind" not in m.options and "rbind" not in m.options:
            continue  # not a bind (the quick test: parsing every mount's options costs)
        source = _bind_source(m, O.parse(m.options), spec.bundle)
        if source is not None and source not in sources:
            try:
                sources[source] = os.stat(source).st_mode
            except OSError as e:
                sources[source] = -e.errno
    devices = frozenset(p for p in (*(d[0] for d in DEFAULT_DEVICES), *(d.path for d in spec.linux.devices))
                        if userns and os.path.exists(p))
    return MountHostFacts(rootfs_parent=parent_mount(rootfs), pseudo_mounts=host_pseudo_mounts() if no_pivot else [],
                          bind_sources=sources, host_devices=devices, kcore=os.path.exists("/proc/kcore"))


class RootfsContext(Record):
    rootfs: str
    bundle: str
    userns: bool          # the container has its own user namespace
    netns_new: bool
    cgroupns_new: bool
    no_pivot: bool
    cgroups: list[CgroupHierarchy]
    host: MountHostFacts
    mount_label: str = ""  # linux.mountLabel: the SELinux context of the filesystems mounted
    # bind sources opened by the init before it enters its user namespace (runc's mount
    # fds): {index in spec.mounts: OP_OPEN_TREE slot}, set by add_bind_tree_ops
    bind_trees: dict = None


def overlay_layers(spec) -> list[str] | None:
    """Lower directories (top first) when the union rootfs annotation is set, else None."""
    if spec.annotations.get(OVERLAY_ANNOTATION, "").lower() not in ("1", "true", "yes"):
        return None
    mount_ns = spec.linux.namespace("mount")
    if mount_ns is None or mount_ns.path:
        # the overlay would be mounted where the caller lives, over the image itself
        raise ConfigError(f"config.json: annotations.{OVERLAY_ANNOTATION}: the union rootfs needs a new "
                          "mount namespace (linux.namespaces has none)")
    lowers = [spec.root.path]
    extra = spec.annotations.get(OVERLAY_LOWER_ANNOTATION, "")
    for path in filter(None, extra.split(":")):
        path = path if os.path.isabs(path) else os.path.join(spec.bundle, path)
        if not os.path.isdir(path):
            raise ConfigError(f"config.json: annotations.{OVERLAY_LOWER_ANNOTATION}: {path} is not a directory")
        lowers.append(path)
    return lowers


def add_prepare_ops(plan: P.Plan, spec, ctx: RootfsContext, overlay_dirs: tuple[str, str] | None) -> None:
    """Everything before pivot_root: propagation, the rootfs bind, mounts, devices."""
    root_prop = O.MS_SLAVE | O.MS_REC
    if spec.linux.rootfs_propagation:
        root_prop = O.propagation_flags(spec.linux.rootfs_propagation)
    if root_prop & O.MS_UNBINDABLE:
        # an unbindable / can't give the rootfs its self-bind: it becomes unbindable
        # after the pivot (add_pivot_ops); runc 1.1.5 fails here, crun does this
        root_prop = O.MS_SLAVE | O.MS_REC
    # make our copy of the host's mounts stop propagating back to the host
    plan.mount("", "/", flags=root_prop, target_kind=P.TARGET_HOST, what="set the propagation of /")
    # runc's rootfsParentMountPrivate: the mount holding the rootfs must not be shared,
    # or the rootfs bind would propagate and pivot_root refuses a shared parent
    escaped, parent = ctx.host.rootfs_parent
    plan.private_if_shared(escaped, parent, what=f"make {parent} private")
    if overlay_dirs is not None:
        upper, work = overlay_dirs
        lowers = overlay_layers(spec)
        data = f"lowerdir={':'.join(lowers)},upperdir={upper},workdir={work}"
        plan.mount("overlay", ctx.rootfs, "overlay", data, flags=0, target_kind=P.TARGET_HOST,
                   what=f"mount overlay on {ctx.rootfs}")
    plan.mount(ctx.rootfs, ctx.rootfs, flags=O.MS_BIND | O.MS_REC, target_kind=P.TARGET_HOST,
               source_kind=P.SOURCE_HOST, what=f"bind mount rootfs {ctx.rootfs}")
    plan.root(ctx.rootfs, what=f"open rootfs {ctx.rootfs}")
    for index, m in enumerate(spec.mounts):
        _add_mount(plan, m, ctx, (ctx.bind_trees or {}).get(index))
    destinations = {os.path.normpath(m.destination): m for m in spec.mounts}
    dev = destinations.get("/dev")
    # runc: the default devices are made in the container's /dev unless it is a bind of
    # the host's (then they are there already); without a /dev mount that is the image's
    dev_is_bind = dev is not None and (dev.type == "bind" or O.parse(dev.options).is_bind)
    _add_devices(plan, spec, ctx, with_defaults=not dev_is_bind)
    if "/dev/pts" in destinations:
        plan.symlink("pts/ptmx", "/dev/ptmx", what=f"symlink {ctx.rootfs}/dev/ptmx")


def add_pivot_ops(plan: P.Plan, spec, ctx: RootfsContext) -> None:
    if ctx.no_pivot:
        add_hide_host_procfs_ops(plan, ctx)
        plan.move_root(what=f"move rootfs {ctx.rootfs} to /")
    else:
        plan.pivot_root(what=f"pivot_root into {ctx.rootfs}")
    # runc's reOpenDevNull, once the container's /dev is there: CRIU can't dump a file
    # on a mount outside the container
    plan.reopen_dev_null(what="reopen /dev/null")
    if spec.linux.rootfs_propagation:
        # applied to the new root too, after the pivot (runc), so "shared" means shared
        plan.mount("", "/", flags=O.propagation_flags(spec.linux.rootfs_propagation),
                   what=f"set the propagation of / to {spec.linux.rootfs_propagation}")


def parent_mount(path: str) -> tuple[str, str]:
    """The mount point whose mount holds `path` (the longest mount point prefix), as
    mountinfo writes it (escaped) and as a path."""
    best = ("/", "/")
    target = path.encode(errors="surrogateescape")
    with open("/proc/self/mountinfo", "rb") as f:
        lines = f.read().split(b"\n")
    for line in lines:
        fields = line.split(b" ", 5)
        if len(fields) < 5:
            continue
        raw = fields[4]
        # compared as bytes (most mount points are not a prefix): decoded only when one is
        if b"\\" not in raw and not (target == raw or target.startswith(raw.rstrip(b"/") + b"/")):
            continue
        raw_text = raw.decode(errors="surrogateescape")
        point = _unescape(raw_text)
        if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) >= len(best[1]):
            best = (raw_text, point)
    return best


def _unescape(text: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo
    if "\\" not in text:
        return text
    import re
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def add_finish_ops(plan: P.Plan, spec) -> None:
    """After pivot_root: masked and read-only paths, then a read-only root."""
    # a masked directory gets a tmpfs, labelled like the container's other tmpfs (runc)
    tmpfs_data = _labelled("", spec.linux.mount_label)
    for path in spec.linux.masked_paths:
        plan.mask(path, tmpfs_data, what=f"mask {path}")
    for path in spec.linux.readonly_paths:
        plan.readonly(path, what=f"make {path} read-only")


def add_bind_tree_ops(plan: P.Plan, spec, ctx: RootfsContext) -> None:
    """Bind sources opened as detached copies of their mounts before the init enters
    its namespaces, while it has the host's credentials.  With a user namespace every
    bind source is (the init can still reach what only the host's root can: a source
    inside a 0700 directory), as runc hands its mount fds over; an id-mapped bind always
    is, and is id-mapped there: the kernel maps only a detached mount, and only for a
    caller privileged over the filesystem and the map's namespace.  The binds then move
    those copies into place.  Sets ctx.bind_trees."""
    ctx.bind_trees = {}
    for index, m in enumerate(spec.mounts):
        opts = O.parse(m.options)
        source = _bind_source(m, opts, ctx.bundle)
        idmapped = opts.idmap is not None or bool(m.uid_mappings)
        if source is None or not (ctx.userns or idmapped):
            continue
        slot = ctx.bind_trees[index] = len(ctx.bind_trees)
        plan.open_tree(slot, bool(opts.flags & O.MS_REC), source, what=f"open bind source {source}")
        if idmapped:
            _add_idmap_ops(plan, spec, index, slot, source, bool(opts.idmap))


def _add_idmap_ops(plan: P.Plan, spec, index: int, tree_slot: int, source: str, recursive: bool) -> None:
    """runc 1.2+: the mount's own mappings, else (idmap/ridmap alone) the container's
    user namespace: the one it joins, or a new one with its mappings."""
    m = spec.mounts[index]
    uid_maps, gid_maps, ns_path = m.uid_mappings, m.gid_mappings, ""
    if not uid_maps:
        user_ns = spec.linux.namespace("user")
        ns_path = user_ns.path
        uid_maps, gid_maps = spec.linux.uid_mappings, spec.linux.gid_mappings
    if ns_path:
        uid_map = gid_map = ""
    else:
        uid_map, gid_map = _id_map_text(uid_maps), _id_map_text(gid_maps)
    # one namespace per mount, in the tree's slot number: made and used at once
    plan.userns_fd(tree_slot, uid_map, gid_map, ns_path, what=f"make the user namespace of mounts[{index}]",
                   # writing another user namespace's maps takes CAP_SETUID/CAP_SETGID over
                   # the host's ids: runc refuses id-mapped mounts for rootless containers
                   reasons={errno.EPERM: "id-mapped mounts need root on the host: operation not permitted"})
    plan.idmap_tree(tree_slot, tree_slot, recursive, what=f"id-map mounts[{index}] source {source}", reasons={
        errno.EINVAL: "its filesystem does not support id-mapped mounts"})


def _id_map_text(mappings) -> str:
    return "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in mappings)


def host_pseudo_mounts() -> list[tuple[str, str]]:
    """The full procfs and sysfs mounts of the host as this process sees them now, the
    init's mount namespace being a copy of them: [(fstype, mount point)]."""
    out = []
    with open("/proc/self/mountinfo", "rb") as f:
        for line in f:
            fields = line.split(b" ")
            dash = fields.index(b"-")
            root, fstype = fields[3], fields[dash + 1]
            if root == b"/" and fstype in (b"proc", b"sysfs"):
                out.append((fstype.decode(), _unescape(fields[4].decode(errors="surrogateescape"))))
    return out


def add_hide_host_procfs_ops(plan: P.Plan, ctx: RootfsContext) -> None:
    """--no-pivot: no full procfs/sysfs of the host may stay in the container's mount
    namespace (runc's msMoveRoot)."""
    inside = ctx.rootfs.rstrip("/") + "/"
    for fstype, point in ctx.host.pseudo_mounts:
        if point == ctx.rootfs or point.startswith(inside):
            continue
        plan.hide_mount(point, what=f"hide the host's {fstype} on {point}")


def add_readonly_dev(plan: P.Plan, spec) -> None:
    """A /dev mounted "ro": read-only once everything under it is in place (runc's
    finalizeRootfs remounts it so, with MS_BIND to be allowed in a user namespace)."""
    for m in spec.mounts:
        if _is_dev(m):
            flags = O.parse(m.options).flags
            if flags & O.MS_RDONLY:
                keep = flags & ~(O.MS_BIND | O.MS_REC | O.MS_REMOUNT)
                plan.mount("", "/dev", flags=keep | O.MS_BIND | O.MS_REMOUNT | O.MS_RDONLY,
                           what="remount /dev read-only")


def add_readonly_root(plan: P.Plan) -> None:
    plan.mount("", "/", flags=O.MS_BIND | O.MS_REMOUNT | O.MS_RDONLY, what="remount / read-only")


def _dest(m) -> str:
    return m.destination if m.destination.startswith("/") else "/" + m.destination


# filesystems that get no SELinux context option (runc): proc and sysfs can't be labelled;
# mqueue gets its mount point's label by setxattr instead (older kernels refuse the option)
_UNLABELLED = frozenset({"proc", "sysfs", "mqueue"})
_SELINUX_XATTR = "security.selinux"


def _labelled(data: str, mount_label: str) -> str:
    if not mount_label:
        return data
    from pyrunc.lsm import format_mount_label
    return format_mount_label(data, mount_label)


# the files under /proc a bind may cover (lxcfs emulates them); runc's checkProcMount
PROC_BIND_DESTINATIONS = frozenset({
    "/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat", "/proc/swaps", "/proc/uptime",
    "/proc/loadavg", "/proc/slabinfo", "/proc/net/dev", "/proc/sys/kernel/ns_last_pid",
})


def _is_dev(m) -> bool:
    return os.path.normpath(_dest(m)) == "/dev"


def _ordinary_dir(fstype: str) -> dict[int, str]:
    # runc's check (and wording) for proc and sysfs: never mounted through a symlink
    return {errno.ENOTDIR: f'filesystem "{fstype}" must be mounted on ordinary directory'}


def _is_cgroup(m, opts: O.MountOptions) -> bool:
    return m.type == "cgroup" or (m.type == "" and m.source == "cgroup" and not opts.is_bind)


def _bind_source(m, opts: O.MountOptions, bundle: str) -> str | None:
    """The host path of a bind mount's source, None for other mounts."""
    if _is_cgroup(m, opts) or not (m.type == "bind" or opts.is_bind):
        return None
    return m.source if os.path.isabs(m.source) else os.path.join(bundle, m.source)


def _add_mount(plan: P.Plan, m, ctx: RootfsContext, tree_slot: int | None) -> None:
    opts = O.parse(m.options)
    flags = opts.flags
    if _is_dev(m):
        # devpts, shm, mqueue, devices and links go under /dev first: a read-only /dev
        # becomes read-only at the end (add_readonly_dev), as runc's finalizeRootfs
        flags &= ~O.MS_RDONLY
    dest = _dest(m)
    shown = f"{ctx.rootfs}{dest}"
    data = ",".join(opts.data)
    source = _bind_source(m, opts, ctx.bundle)
    if _is_cgroup(m, opts):
        _add_cgroup_mount(plan, m, opts, ctx)
    elif source is not None:
        mode = ctx.host.bind_sources[source]
        if mode < 0:
            raise ConfigError(f"config.json: mounts: bind source {source}: {os.strerror(-mode).lower()}")
        is_dir = stat.S_ISDIR(mode)
        # runc refuses a bind that resolves inside /proc but for the lxcfs files
        guard = os.path.normpath(dest) not in PROC_BIND_DESTINATIONS
        _bind(plan, source, dest, flags, data, P.MKDIR_DIR if is_dir else P.MKDIR_FILE,
              f"mount {source} on {shown}", tree_slot=tree_slot, not_on_procfs=guard,
              reasons={errno.EXDEV: f'"{shown}" cannot be mounted because it is inside /proc'} if guard else None)
    elif m.type == "sysfs" and ctx.userns and not ctx.netns_new:
        # in a user namespace, sysfs can't be mounted for a network namespace it doesn't
        # own: bind the host's (runc's rootless rule); otherwise always a fresh sysfs
        _bind(plan, "/sys", dest, flags | O.MS_BIND | O.MS_REC, data, P.MKDIR_ORDINARY_DIR,
              f"mount /sys on {shown}", reasons=_ordinary_dir("sysfs"))
    else:
        source = m.source or m.type
        if m.type not in _UNLABELLED:
            data = _labelled(data, ctx.mount_label)
        mkdir = P.MKDIR_ORDINARY_DIR if m.type in ("proc", "sysfs") else P.MKDIR_DIR
        plan.mount(source, dest, m.type, data, flags=flags, mkdir=mkdir, what=f"mount {source} on {shown}",
                   reasons=_ordinary_dir(m.type) if mkdir == P.MKDIR_ORDINARY_DIR else None)
        if m.type == "mqueue" and ctx.mount_label:
            plan.setxattr(dest, _SELINUX_XATTR, ctx.mount_label,
                          what=f'label {shown} "{ctx.mount_label}"')
    for prop in opts.propagation:
        plan.mount("", dest, flags=prop, what=f"set propagation of {shown}")
    if opts.rec_attr_set or opts.rec_attr_clr:
        # runc's setRecAttr, after the mount and its propagation; runc does it for binds
        # only and drops the options silently elsewhere, pyrunc applies them to any mount
        plan.mount_setattr(dest, opts.rec_attr_set, opts.rec_attr_clr,
                           what=f"set the recursive attributes of {shown}")


def _bind(plan: P.Plan, source: str, dest: str, flags: int, data: str, mkdir: int, what: str,
          tree_slot: int | None = None, not_on_procfs: bool = False, reasons: dict[int, str] | None = None) -> None:
    # tree_slot: the source's copy opened before the user namespace (add_bind_tree_ops)
    source_kind, slot = (P.SOURCE_HOST, 0) if tree_slot is None else (P.SOURCE_TREE, tree_slot)
    plan.mount(source, dest, "", data, flags=O.MS_BIND | (flags & O.MS_REC), mkdir=mkdir, source_kind=source_kind,
               tree_slot=slot, not_on_procfs=not_on_procfs, what=what, reasons=reasons)
    extra = flags & ~(O.MS_BIND | O.MS_REC | O.MS_REMOUNT)
    if extra:
        plan.mount("", dest, flags=O.MS_BIND | O.MS_REMOUNT | extra, what=what.replace("mount ", "remount ", 1))


def _add_cgroup_mount(plan: P.Plan, m, opts: O.MountOptions, ctx: RootfsContext) -> None:
    """runc's cgroup mount: cgroup2 directly on a unified host; on v1 a tmpfs with one
    mount per hierarchy, read-only when the mount says so.  Without a cgroup namespace the container's own cgroup directories are
    bound, so the container sees its limits and nothing above them."""
    dest = _dest(m)
    shown = f"{ctx.rootfs}{dest}"
    ro = opts.flags & O.MS_RDONLY
    base = opts.flags & (O.MS_NOSUID | O.MS_NODEV | O.MS_NOEXEC | O.MS_RELATIME)
    unified_only = len(ctx.cgroups) == 1 and ctx.cgroups[0].fstype == "cgroup2" and ctx.cgroups[0].name == ""
    if unified_only:
        h = ctx.cgroups[0]
        if ctx.cgroupns_new:
            plan.mount("cgroup", dest, "cgroup2", flags=base | ro, mkdir=P.MKDIR_DIR, what=f"mount cgroup2 on {shown}")
        else:
            _bind(plan, h.host_dir, dest, base | ro | O.MS_BIND | O.MS_REC, "", P.MKDIR_DIR,
                  f"mount {h.host_dir} on {shown}")
        return
    plan.mount("tmpfs", dest, "tmpfs", _labelled("mode=755", ctx.mount_label), flags=base, mkdir=P.MKDIR_DIR,
               what=f"mount tmpfs on {shown}")
    for h in ctx.cgroups:
        if not h.name:
            continue
        sub = f"{dest}/{h.name}"
        if ctx.cgroupns_new:
            plan.mount("cgroup", sub, h.fstype, h.options, flags=base | ro, mkdir=P.MKDIR_DIR,
                       what=f"mount cgroup ({h.options or h.fstype}) on {ctx.rootfs}{sub}")
        else:
            _bind(plan, h.host_dir, sub, base | ro | O.MS_BIND | O.MS_REC, "", P.MKDIR_DIR,
                  f"mount {h.host_dir} on {ctx.rootfs}{sub}")
        # co-mounted controllers ("cpu,cpuacct") are also reachable by each name (runc)
        if "," in h.name:
            for alias in h.name.split(","):
                plan.symlink(h.name, f"{dest}/{alias}", what=f"symlink {ctx.rootfs}{dest}/{alias}")
    if ro:
        # runc makes the tmpfs itself read-only by a superblock remount (no MS_BIND)
        plan.mount("", dest, flags=O.MS_REMOUNT | O.MS_RDONLY | base, what=f"remount {shown} read-only")


def _add_devices(plan: P.Plan, spec, ctx: RootfsContext, with_defaults: bool) -> None:
    wanted: dict[str, tuple[int, int, int, int, int]] = {}  # path -> (mode, major, minor, uid, gid)
    if with_defaults:
        for path, major, minor in DEFAULT_DEVICES:
            wanted[path] = (stat.S_IFCHR | 0o666, major, minor, 0, 0)
    for d in spec.linux.devices:
        kind = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}[d.type]
        mode = d.file_mode if d.file_mode is not None else 0o666
        wanted[d.path] = (kind | (mode & 0o7777), d.major, d.minor, d.uid or 0, d.gid or 0)
    for path, (mode, major, minor, uid, gid) in wanted.items():
        if ctx.userns:
            # mknod is not allowed in a user namespace: bind the host's node (never chown it)
            if path not in ctx.host.host_devices:
                raise ConfigError(f"config.json: linux.devices: {path} does not exist on the host to bind")
            plan.mount(path, path, flags=O.MS_BIND, mkdir=P.MKDIR_FILE, source_kind=P.SOURCE_HOST,
                       what=f"bind mount device {path} on {ctx.rootfs}{path}")
        else:
            plan.mknod(path, mode, os.makedev(major, minor), uid, gid,
                       what=f"mknod {ctx.rootfs}{path}")
    if with_defaults:
        for target, link in DEV_SYMLINKS:
            plan.symlink(target, link, what=f"symlink {ctx.rootfs}{link}")
        if ctx.host.kcore:
            plan.symlink("/proc/kcore", "/dev/core", what=f"symlink {ctx.rootfs}/dev/core")
