"""linux.intelRdt: the container's resctrl group (runc 1.4's libcontainer/intelrdt).

- `check(rdt)`, before create changes anything: a config that asks what this host's
  resctrl cannot do is refused with runc's words (no resctrl mounted, no L3/MB);
  a bare closID is accepted and has no effect where resctrl is not mounted, as
  runc 1.1.5 accepts it;
- `plan(root, container_id, rdt)` → the `Group` record the state keeps: the CLOS group
  directory (`<resctrl>/<closID>`, or `<resctrl>/<container id>` without one), whether
  delete removes it (not a closID's: it may be shared and managed by someone else),
  and the monitoring group `mon_groups/<container id>` with `enableMonitoring`;
- `apply(group, rdt, pid)` when the init is placed: the group made (a closID without
  schemata must exist already), its schemata written (l3CacheSchema, memBwSchema,
  then each `schemata` line: a later line for the same resource wins, as the spec
  says `schemata` does), the pid written to `tasks` and to the monitoring group's;
- `join(group, pid)` for an exec'd process, `set_schemata` for update, `destroy(group)`.

`root` is the resctrl mount point (`resctrl_root()`), a parameter so that the unit
tests run the same code against a fake tree.
"""
from __future__ import annotations

import os

from pyrunc.errors import PyruncError


def resctrl_root() -> str | None:
    """Where resctrl is mounted, or None."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            head, _, tail = line.partition(" - ")
            if tail.split(" ", 1)[0] == "resctrl":
                return head.split()[4]
    return None


def check(rdt, root: str | None = None) -> None:
    """Refuse what `rdt` (spec.model.IntelRdt or None) asks of this host."""
    if rdt is None:
        return
    if root is None:
        root = resctrl_root()
    for value, feature, field, name in ((rdt.l3_cache_schema, "L3", "l3CacheSchema", "CAT"),
                                         (rdt.mem_bw_schema, "MB", "memBwSchema", "MBA")):
        if value and (root is None or not os.path.isdir(f"{root}/info/{feature}")):
            raise PyruncError(f"intelRdt.{field} is specified in config, but Intel RDT/{name} is not enabled")
    if root is None:
        for asked, field in ((rdt.schemata, "schemata"), (rdt.enable_monitoring, "enableMonitoring")):
            if asked:
                raise PyruncError(f"intelRdt.{field} is specified in config, but Intel RDT is not supported "
                                  "or enabled")
    elif rdt.enable_monitoring and not os.path.isdir(f"{root}/info/L3_MON"):
        raise PyruncError("intelRdt.enableMonitoring is specified in config, but Intel RDT monitoring is not enabled")


def plan(root: str, container_id: str, rdt) -> dict:
    """The group record (state.json's "intel_rdt") for `rdt` under `root`."""
    path = os.path.join(root, rdt.clos_id or container_id)
    monitor = os.path.join(path, "mon_groups", container_id) if rdt.enable_monitoring else ""
    return {"path": path, "remove": not rdt.clos_id, "monitor": monitor}


def _schemata(rdt) -> str:
    lines = [line for line in (rdt.l3_cache_schema, rdt.mem_bw_schema, *rdt.schemata) if line]
    return "".join(line + "\n" for line in lines)


def _write(directory: str, name: str, text: str) -> None:
    path = os.path.join(directory, name)
    try:
        # as runc's os.WriteFile (resctrl makes the files; O_CREAT finds them there)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)
    except OSError as e:
        status = _last_cmd_status(directory)
        detail = f", last_cmd_status: {status}" if status else ""
        raise PyruncError(f"intelRdt: write {path}: {os.strerror(e.errno).lower()}{detail}") from None


def _last_cmd_status(directory: str) -> str:
    """resctrl's own explanation of the last failed write (info/last_cmd_status)."""
    root = os.path.dirname(directory.rstrip("/").split("/mon_groups/")[0])
    try:
        with open(os.path.join(root, "info", "last_cmd_status")) as f:
            return f.read().strip()
    except OSError:
        return ""


def apply(group: dict, rdt, pid: int) -> None:
    path = group["path"]
    text = _schemata(rdt)
    if not group["remove"] and not text and not os.path.isdir(path):
        raise PyruncError(f"intelRdt.closID: clos dir {path} not accessible (must be pre-created when "
                          "l3CacheSchema, memBwSchema and schemata are empty)")
    os.makedirs(path, 0o755, exist_ok=True)
    if text:
        _write(path, "schemata", text)
    join(group, pid)


def join(group: dict, pid: int) -> None:
    """Put `pid` in the group (and its monitoring group)."""
    _write(group["path"], "tasks", str(pid))
    if group["monitor"]:
        os.makedirs(group["monitor"], 0o755, exist_ok=True)
        _write(group["monitor"], "tasks", str(pid))


def set_schemata(group: dict, l3_cache_schema: str, mem_bw_schema: str) -> None:
    """`update --l3-cache-schema/--mem-bw-schema`."""
    text = "".join(line + "\n" for line in (l3_cache_schema, mem_bw_schema) if line)
    if text:
        _write(group["path"], "schemata", text)


def destroy(group: dict) -> None:
    """Remove what create made: the monitoring group, and the CLOS group unless it was
    named by closID; a group already gone is fine. As runc's os.RemoveAll: a resctrl
    group goes with rmdir, its files being the kernel's; a tree of plain files (not
    resctrl) is emptied first."""
    import shutil
    dirs = [group["monitor"]] if group.get("monitor") else []
    if group.get("remove"):
        dirs.append(group["path"])
    for directory in dirs:
        try:
            os.rmdir(directory)
        except FileNotFoundError:
            pass
        except OSError:
            shutil.rmtree(directory, ignore_errors=True)
