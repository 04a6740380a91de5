"""Pure parsing and path arithmetic for cgroup placement: no file access here, so the
runc path semantics can be tested on any mount table (tests/unit/test_cgroups_paths.py)."""

from __future__ import annotations

from pyrunc.errors import PyruncError

# Where the hierarchies conventionally live; used to prefer the canonical mount when a
# hierarchy is mounted more than once (bind mounts inside containers, test namespaces).
CGROUP_ROOT = "/sys/fs/cgroup"

# The only named (controller-less) v1 hierarchy runc places containers in.
NAMED_HIERARCHIES = frozenset({"name=systemd"})

UNIFIED_KEY = ""


class CgroupError(PyruncError):
    """A cgroup could not be resolved, created, joined, frozen or removed; the message
    names the path or field concerned."""


class Hierarchy:
    """One mounted cgroup hierarchy.

    key: "" for cgroup2; for v1 the controller field of /proc/self/cgroup, e.g. "memory",
    "cpu,cpuacct", "name=systemd". root: the mountinfo root field (which cgroup of the
    hierarchy appears at mountpoint; "/" unless a sub-tree was bind-mounted)."""

    __slots__ = ("key", "version", "mountpoint", "root", "options")

    def __init__(self, key: str, version: int, mountpoint: str, root: str,
                 options: frozenset[str] = frozenset()):
        self.key = key
        self.version = version
        self.mountpoint = mountpoint
        self.root = root
        self.options = options

    def __repr__(self) -> str:
        return f"Hierarchy({self.key!r}, v{self.version}, {self.mountpoint!r}, root={self.root!r})"


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal.
    if "\\" not in field:
        return field
    out = []
    i = 0
    while i < len(field):
        digits = field[i + 1:i + 4]
        if field[i] == "\\" and len(digits) == 3 and digits.isdigit():
            out.append(chr(int(digits, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_cgroup_mounts(mountinfo: str) -> list[tuple[str, str, str, frozenset[str]]]:
    """(fstype, mountpoint, root, superoptions) of every cgroup/cgroup2 mount, in
    mountinfo order."""
    mounts = []
    for line in mountinfo.splitlines():
        head, sep, tail = line.partition(" - ")
        if not sep:
            continue
        after = tail.split()
        if not after or after[0] not in ("cgroup", "cgroup2"):
            continue
        before = head.split()
        if len(before) < 5:
            continue
        superopts = frozenset(after[2].split(",")) if len(after) > 2 else frozenset()
        mounts.append((after[0], _unescape(before[4]), _unescape(before[3]), superopts))
    return mounts


def detect_mode(mounts: list[tuple[str, str, str, frozenset[str]]]) -> str:
    """"unified" | "hybrid" | "legacy" from parse_cgroup_mounts() output."""
    has_v1 = any(fstype == "cgroup" for fstype, _, _, _ in mounts)
    has_v2 = any(fstype == "cgroup2" for fstype, _, _, _ in mounts)
    if any(fstype == "cgroup2" and mnt == CGROUP_ROOT for fstype, mnt, _, _ in mounts):
        return "unified"
    if has_v1:
        return "hybrid" if has_v2 else "legacy"
    if has_v2:
        return "unified"
    raise CgroupError("no cgroup filesystem is mounted (see /proc/self/mountinfo)")


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """/proc/<pid>/cgroup → {key: cgroup path}; key "" is the cgroup2 line ("0::/x")."""
    own = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        own[controllers] = path
    return own


def _prefer(current: str | None, candidate: str) -> bool:
    """Whether mount `candidate` should replace `current` for the same hierarchy."""
    if current is None:
        return True
    return not current.startswith(CGROUP_ROOT + "/") and current != CGROUP_ROOT and (
        candidate.startswith(CGROUP_ROOT + "/") or candidate == CGROUP_ROOT)


def hierarchies(mounts: list[tuple[str, str, str, frozenset[str]]], mode: str,
                own: dict[str, str]) -> list[Hierarchy]:
    """The hierarchies a container is placed in, matched to the keys of /proc/self/cgroup.

    legacy/hybrid: every mounted v1 hierarchy with at least one controller, plus
    name=systemd (runc's list); hybrid adds the cgroup2 mount. unified: the cgroup2
    mount only."""
    found: dict[str, Hierarchy] = {}
    for fstype, mountpoint, root, opts in mounts:
        if fstype == "cgroup2":
            key = UNIFIED_KEY
            version = 2
        else:
            if mode == "unified":
                continue
            key = next((k for k in own if k and frozenset(k.split(",")) <= opts), None)
            if key is None:
                continue
            names = key.split(",")
            if all(n.startswith("name=") for n in names) and not NAMED_HIERARCHIES.intersection(names):
                continue
            version = 1
        if _prefer(found[key].mountpoint if key in found else None, mountpoint):
            found[key] = Hierarchy(key, version, mountpoint, root, opts)
    result = [h for k, h in found.items() if k != UNIFIED_KEY]
    if mode == "legacy":
        return result
    if UNIFIED_KEY in found:
        result.append(found[UNIFIED_KEY])
    return result


def clean_cgroups_path(cgroups_path: str, container_id: str) -> tuple[bool, list[str]]:
    """Validate linux.cgroupsPath (runc's cgroupfs driver semantics) and return
    (is_absolute, components). Components never climb above their starting point."""
    if "\x00" in cgroups_path:
        raise CgroupError("linux.cgroupsPath: contains a nul byte")
    if looks_like_systemd(cgroups_path):
        raise CgroupError(
            f"linux.cgroupsPath {cgroups_path!r}: a systemd \"slice:prefix:name\" path needs "
            "--systemd-cgroup (the cgroupfs driver takes a path such as \"/machine/<id>\" or a relative path)")
    path = cgroups_path
    field = "linux.cgroupsPath"
    if path == "":
        path = container_id
        field = "container id"
        if not path or "/" in path:
            raise CgroupError(f"container id {container_id!r}: not usable as a cgroup name")
    absolute = path.startswith("/")
    components: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not components:
                raise CgroupError(f"{field} {path!r}: escapes the cgroup hierarchy with \"..\"")
            components.pop()
            continue
        components.append(part)
    if not components:
        raise CgroupError(f"{field} {path!r}: names no cgroup below its parent "
                          "(the container would share the cgroup of "
                          + ("the whole hierarchy" if absolute else "pyrunc itself") + ")")
    return absolute, components


def looks_like_systemd(cgroups_path: str) -> bool:
    """runc's systemd form "slice:prefix:name": three colon-separated fields, the first
    a slice name (or empty), no slashes in the first two fields."""
    parts = cgroups_path.split(":")
    if len(parts) != 3 or "/" in parts[0] or "/" in parts[1]:
        return False
    return parts[0] == "" or parts[0].endswith(".slice")


def resolve_dirs(cgroups_path: str, container_id: str, hiers: list[Hierarchy],
                 own: dict[str, str]) -> dict[str, str]:
    """{hierarchy key: absolute directory} for the container.

    absolute path → <mountpoint>/<path> in each hierarchy; relative → below the caller's
    own cgroup in that hierarchy (so depths may differ per hierarchy), on a pure cgroup2
    host below its parent (runc); empty → container_id relative."""
    absolute, components = clean_cgroups_path(cgroups_path, container_id)
    inner = "/".join(components)
    unified_only = len(hiers) == 1 and hiers[0].key == UNIFIED_KEY
    dirs = {}
    for h in hiers:
        if absolute:
            base = h.mountpoint
        else:
            own_rel = own_relative(h, own)
            if unified_only:
                # runc's fs2 rule: the caller's own cgroup most probably has processes,
                # so no controller could be enabled below it; its parent is used instead
                own_rel = own_rel.rpartition("/")[0]
            base = join(h.mountpoint, own_rel)
        dirs[h.key] = join(base, inner)
    return dirs


def own_relative(h: Hierarchy, own: dict[str, str]) -> str:
    """The caller's cgroup in hierarchy h, relative to its mountpoint."""
    if h.key not in own:
        name = "cgroup2" if h.key == UNIFIED_KEY else h.key
        raise CgroupError(f"/proc/self/cgroup: no entry for the {name} hierarchy mounted at {h.mountpoint}")
    path = own[h.key]
    root = h.root.rstrip("/")
    if path == root or path.startswith(root + "/"):
        return path[len(root):].lstrip("/")
    raise CgroupError(f"/proc/self/cgroup: own cgroup {path} in hierarchy {h.key or 'cgroup2'} "
                      f"is outside its mount {h.mountpoint} (root {h.root})")


def join(base: str, rel: str) -> str:
    if not rel:
        return base
    return base.rstrip("/") + "/" + rel


def is_below(path: str, ancestor: str) -> bool:
    """Whether `path` is strictly below `ancestor` with no "." or ".." components."""
    if not path.startswith(ancestor.rstrip("/") + "/"):
        return False
    rest = path[len(ancestor.rstrip("/")) + 1:]
    return all(part not in ("", ".", "..") for part in rest.split("/"))
