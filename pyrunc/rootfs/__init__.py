"""The container's filesystem view as plan ops: rootfs, mounts, devices, pivot_root,
masked and read-only paths.  Every container path is resolved by pyrunc-init INSIDE the
rootfs (openat2 RESOLVE_IN_ROOT), so symlinks in an image cannot redirect a mount."""
from __future__ import annotations

import os
import stat
from pyrunc.record import record as dataclass

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


@dataclass
class CgroupHierarchy:
    """One cgroup hierarchy as the container should see it under /sys/fs/cgroup."""
    name: str        # directory below the cgroup mount ("memory", "cpu,cpuacct", "" for v2)
    fstype: str      # "cgroup" or "cgroup2"
    options: str     # mount data for a fresh mount in a cgroup namespace ("memory", "name=systemd")
    host_dir: str    # the container's cgroup directory on the host


@dataclass
class RootfsContext:
    rootfs: str
    bundle: str
    userns: bool          # the container has its own user namespace
    netns_new: bool
    cgroupns_new: bool
    no_pivot: bool
    cgroups: list[CgroupHierarchy]
    mount_label: str = ""  # linux.mountLabel: the SELinux context of the filesystems mounted


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
    # make our copy of the host's mounts stop propagating back to the host
    plan.add(P.OP_MOUNT, (root_prop, P.TARGET_HOST, P.MKDIR_NONE, P.SOURCE_LITERAL), ("", "/", "", ""),
             what="set the propagation of /")
    # runc's rootfsParentMountPrivate: the mount holding the rootfs must not be shared,
    # or the rootfs bind would propagate and pivot_root refuses a shared parent
    escaped, parent = parent_mount(ctx.rootfs)
    plan.add(P.OP_PRIVATE_IF_SHARED, (), (escaped, parent), what=f"make {parent} private")
    if overlay_dirs is not None:
        upper, work = overlay_dirs
        lowers = overlay_layers(spec)
        data = f"lowerdir={':'.join(lowers)},upperdir={upper},workdir={work}"
        plan.add(P.OP_MOUNT, (0, P.TARGET_HOST, P.MKDIR_NONE, P.SOURCE_LITERAL),
                 ("overlay", ctx.rootfs, "overlay", data), what=f"mount overlay on {ctx.rootfs}")
    plan.add(P.OP_MOUNT, (O.MS_BIND | O.MS_REC, P.TARGET_HOST, P.MKDIR_NONE, P.SOURCE_HOST),
             (ctx.rootfs, ctx.rootfs, "", ""), what=f"bind mount rootfs {ctx.rootfs}")
    plan.add(P.OP_ROOT, (), (ctx.rootfs,), what=f"open rootfs {ctx.rootfs}")
    for m in spec.mounts:
        _add_mount(plan, m, ctx)
    destinations = {os.path.normpath(m.destination): m for m in spec.mounts}
    dev = destinations.get("/dev")
    # runc: the default devices are made in the container's /dev unless it is a bind of
    # the host's (then they are there already); without a /dev mount that is the image's
    dev_is_bind = dev is not None and (dev.type == "bind" or O.parse(dev.options).is_bind)
    _add_devices(plan, spec, ctx, with_defaults=not dev_is_bind)
    if "/dev/pts" in destinations:
        plan.add(P.OP_SYMLINK, (), ("pts/ptmx", "/dev/ptmx"), what=f"symlink {ctx.rootfs}/dev/ptmx")


def add_pivot_ops(plan: P.Plan, spec, ctx: RootfsContext) -> None:
    if ctx.no_pivot:
        plan.add(P.OP_MOVE_ROOT, what=f"move rootfs {ctx.rootfs} to /")
    else:
        plan.add(P.OP_PIVOT_ROOT, what=f"pivot_root into {ctx.rootfs}")
    # runc's reOpenDevNull, once the container's /dev is there: CRIU can't dump a file
    # on a mount outside the container
    plan.add(P.OP_REOPEN_DEV_NULL, what="reopen /dev/null")
    if spec.linux.rootfs_propagation:
        # applied to the new root too, after the pivot (runc), so "shared" means shared
        plan.add(P.OP_MOUNT, (O.propagation_flags(spec.linux.rootfs_propagation), P.TARGET_IN_ROOT,
                              P.MKDIR_NONE, P.SOURCE_LITERAL), ("", "/", "", ""),
                 what=f"set the propagation of / to {spec.linux.rootfs_propagation}")


def parent_mount(path: str) -> tuple[str, str]:
    """The mount point whose mount holds `path` (the longest mount point prefix), as
    mountinfo writes it (escaped) and as a path."""
    best = ("/", "/")
    with open("/proc/self/mountinfo", "rb") as f:
        for line in f:
            raw = line.split(b" ", 5)[4].decode(errors="surrogateescape")
            point = _unescape(raw)
            if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) >= len(best[1]):
                best = (raw, point)
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
        plan.add(P.OP_MASK, (), (path, tmpfs_data), what=f"mask {path}")
    for path in spec.linux.readonly_paths:
        plan.add(P.OP_READONLY, (), (path,), what=f"make {path} read-only")


def add_readonly_root(plan: P.Plan) -> None:
    plan.add(P.OP_MOUNT, (O.MS_BIND | O.MS_REMOUNT | O.MS_RDONLY, P.TARGET_IN_ROOT, P.MKDIR_NONE,
                          P.SOURCE_LITERAL), ("", "/", "", ""), what="remount / read-only")


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


def _add_mount(plan: P.Plan, m, ctx: RootfsContext) -> None:
    opts = O.parse(m.options)
    dest = _dest(m)
    shown = f"{ctx.rootfs}{dest}"
    data = ",".join(opts.data)
    if m.type == "cgroup" or (m.type == "" and m.source == "cgroup" and not opts.is_bind):
        _add_cgroup_mount(plan, m, opts, ctx)
    elif m.type == "bind" or opts.is_bind:
        source = m.source if os.path.isabs(m.source) else os.path.join(ctx.bundle, m.source)
        try:
            is_dir = stat.S_ISDIR(os.stat(source).st_mode)
        except OSError as e:
            raise ConfigError(f"config.json: mounts: bind source {source}: {os.strerror(e.errno).lower()}")
        _bind(plan, source, dest, opts.flags, data, P.MKDIR_DIR if is_dir else P.MKDIR_FILE,
              f"mount {source} on {shown}")
    elif m.type == "sysfs" and ctx.userns and not ctx.netns_new:
        # in a user namespace, sysfs can't be mounted for a network namespace it doesn't
        # own: bind the host's (runc's rootless rule); otherwise always a fresh sysfs
        _bind(plan, "/sys", dest, opts.flags | O.MS_BIND | O.MS_REC, data, P.MKDIR_DIR, f"mount /sys on {shown}")
    else:
        source = m.source or m.type
        if m.type not in _UNLABELLED:
            data = _labelled(data, ctx.mount_label)
        plan.add(P.OP_MOUNT, (opts.flags, P.TARGET_IN_ROOT, P.MKDIR_DIR, P.SOURCE_LITERAL),
                 (source, dest, m.type, data), what=f"mount {source} on {shown}")
        if m.type == "mqueue" and ctx.mount_label:
            plan.add(P.OP_SETXATTR, (), (dest, _SELINUX_XATTR, ctx.mount_label),
                     what=f'label {shown} "{ctx.mount_label}"')
    for prop in opts.propagation:
        plan.add(P.OP_MOUNT, (prop, P.TARGET_IN_ROOT, P.MKDIR_NONE, P.SOURCE_LITERAL), ("", dest, "", ""),
                 what=f"set propagation of {shown}")


def _bind(plan: P.Plan, source: str, dest: str, flags: int, data: str, mkdir: int, what: str) -> None:
    plan.add(P.OP_MOUNT, (O.MS_BIND | (flags & O.MS_REC), P.TARGET_IN_ROOT, mkdir, P.SOURCE_HOST),
             (source, dest, "", data), what=what)
    extra = flags & ~(O.MS_BIND | O.MS_REC | O.MS_REMOUNT)
    if extra:
        plan.add(P.OP_MOUNT, (O.MS_BIND | O.MS_REMOUNT | extra, P.TARGET_IN_ROOT, P.MKDIR_NONE, P.SOURCE_LITERAL),
                 ("", dest, "", ""), what=what.replace("mount ", "remount ", 1))


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
            plan.add(P.OP_MOUNT, (base | ro, P.TARGET_IN_ROOT, P.MKDIR_DIR, P.SOURCE_LITERAL),
                     ("cgroup", dest, "cgroup2", ""), what=f"mount cgroup2 on {shown}")
        else:
            _bind(plan, h.host_dir, dest, base | ro | O.MS_BIND | O.MS_REC, "", P.MKDIR_DIR,
                  f"mount {h.host_dir} on {shown}")
        return
    plan.add(P.OP_MOUNT, (base, P.TARGET_IN_ROOT, P.MKDIR_DIR, P.SOURCE_LITERAL),
             ("tmpfs", dest, "tmpfs", _labelled("mode=755", ctx.mount_label)), what=f"mount tmpfs on {shown}")
    for h in ctx.cgroups:
        if not h.name:
            continue
        sub = f"{dest}/{h.name}"
        if ctx.cgroupns_new:
            plan.add(P.OP_MOUNT, (base | ro, P.TARGET_IN_ROOT, P.MKDIR_DIR, P.SOURCE_LITERAL),
                     ("cgroup", sub, h.fstype, h.options), what=f"mount cgroup ({h.options or h.fstype}) on {ctx.rootfs}{sub}")
        else:
            _bind(plan, h.host_dir, sub, base | ro | O.MS_BIND | O.MS_REC, "", P.MKDIR_DIR,
                  f"mount {h.host_dir} on {ctx.rootfs}{sub}")
        # co-mounted controllers ("cpu,cpuacct") are also reachable by each name (runc)
        if "," in h.name:
            for alias in h.name.split(","):
                plan.add(P.OP_SYMLINK, (), (h.name, f"{dest}/{alias}"), what=f"symlink {ctx.rootfs}{dest}/{alias}")
    if ro:
        # runc makes the tmpfs itself read-only by a superblock remount (no MS_BIND)
        plan.add(P.OP_MOUNT, (O.MS_REMOUNT | O.MS_RDONLY | base, P.TARGET_IN_ROOT, P.MKDIR_NONE,
                              P.SOURCE_LITERAL), ("", dest, "", ""), what=f"remount {shown} read-only")


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
            if not os.path.exists(path):
                raise ConfigError(f"config.json: linux.devices: {path} does not exist on the host to bind")
            plan.add(P.OP_MOUNT, (O.MS_BIND, P.TARGET_IN_ROOT, P.MKDIR_FILE, P.SOURCE_HOST), (path, path, "", ""),
                     what=f"bind mount device {path} on {ctx.rootfs}{path}")
        else:
            plan.add(P.OP_MKNOD, (mode, os.makedev(major, minor), uid, gid), (path,),
                     what=f"mknod {ctx.rootfs}{path}")
    if with_defaults:
        for target, link in DEV_SYMLINKS:
            plan.add(P.OP_SYMLINK, (), (target, link), what=f"symlink {ctx.rootfs}{link}")
        if os.path.exists("/proc/kcore"):
            plan.add(P.OP_SYMLINK, (), ("/proc/kcore", "/dev/core"), what=f"symlink {ctx.rootfs}/dev/core")
