"""The systemd cgroup driver (`pyrunc --systemd-cgroup`), as runc's libcontainer/cgroups/systemd.

linux.cgroupsPath is "slice:prefix:name" (empty: ":runc:<container id>"). The container
gets a transient unit "<prefix>-<name>.scope" in the slice (default system.slice; a
dashed slice "a-b.slice" is /a.slice/a-b.slice), started through systemd's D-Bus API
(StartTransientUnit) with the init's pid, Delegate=yes, accounting on, DefaultDependencies
off, the resource properties runc derives from linux.resources and the
"org.systemd.property.<Name>" annotations. After that, everything goes through the
cgroupfs paths of that scope exactly as with the cgroupfs driver (the base Manager):
the full linux.resources is written there too (what systemd has no property for, and
the device eBPF program), pause/resume/kill/ps/stats/events read and write it, `update`
calls SetUnitProperties and then writes cgroupfs, delete stops the unit (StopUnit,
ResetFailedUnit) and removes what is left.

Ordering in pyrunc: create() runs before the init exists and a scope needs a pid, so
the unit is started in join(init pid); apply() before that only records the resources.
unified_path is None until then, so the init is not cloned into the (not yet existing)
scope cgroup but moved there by systemd.

This module is imported only with --systemd-cgroup or for a container whose state says
it was made by this driver; jeepney (the pure-Python D-Bus client) only when systemd
must be talked to.
"""

from __future__ import annotations

import os
import re

from pyrunc.cgroups.fs import cgroup_mounts, mode, read
from pyrunc.cgroups.manager import Manager
from pyrunc.cgroups._paths import UNIFIED_KEY, CgroupError

DEFAULT_SLICE = "system.slice"
DEFAULT_PREFIX = "runc"
ANNOTATION_PREFIX = "org.systemd.property."
_USEC_INFINITY = (1 << 64) - 1
_DEFAULT_CPU_PERIOD = 100000


def systemd_running() -> bool:
    """sd_booted(3): systemd is PID 1 when /run/systemd/system is a directory."""
    return os.path.isdir("/run/systemd/system")


def parse_cgroups_path(cgroups_path: str, container_id: str) -> tuple[str, str]:
    """(slice, unit name) from runc's "slice:prefix:name" form."""
    if not cgroups_path:
        return DEFAULT_SLICE, f"{DEFAULT_PREFIX}-{container_id}.scope"
    parts = cgroups_path.split(":")
    if len(parts) != 3:
        raise CgroupError('expected cgroupsPath to be of format "slice:prefix:name" for systemd '
                          f'cgroups, got "{cgroups_path}" instead')
    slice_, prefix, name = parts
    unit = name if name.endswith(".slice") else f"{prefix}-{name}.scope"
    return slice_ or DEFAULT_SLICE, unit


def expand_slice(slice_: str) -> str:
    """runc's ExpandSlice: "a-b.slice" → "/a.slice/a-b.slice"; "-.slice" → "/"."""
    suffix = ".slice"
    if len(slice_) < len(suffix) or not slice_.endswith(suffix) or "/" in slice_:
        raise CgroupError(f"invalid slice name: {slice_}")
    name = slice_[:-len(suffix)]
    if name == "-":
        return "/"
    path, prefix = "", ""
    for component in name.split("-"):
        if not component:
            raise CgroupError(f"invalid slice name: {slice_}")
        path += "/" + prefix + component + suffix
        prefix += component + "-"
    return path


# ---- org.systemd.property.* annotations ------------------------------------------------------

# GVariant text type keywords (what godbus' ParseVariant accepts in front of a number)
_TYPE_KEYWORDS = {"byte": "y", "int16": "n", "uint16": "q", "int32": "i", "uint32": "u",
                  "int64": "x", "uint64": "t", "double": "d", "boolean": "b", "string": "s",
                  "objectpath": "o"}
_NUMERIC = set("ynqiuxtd")


def parse_gvariant(text: str) -> tuple[str, object]:
    """A value in GVariant text format (as in `busctl` and runc's annotations), as a
    D-Bus variant (signature, value): true/false, numbers (int32 by default, a double
    with "." or "e"), 'strings' or "strings", a type keyword or @sig before a number,
    and [arrays] of those."""
    value, rest = _gvariant_value(text.strip())
    if rest.strip():
        raise ValueError(f"unexpected {rest.strip()!r}")
    return value


def _gvariant_value(text: str) -> tuple[tuple[str, object], str]:
    if text.startswith("@"):
        sig, _, rest = text[1:].partition(" ")
        (_, value), rest = _gvariant_value(rest.lstrip())
        return _coerce(sig, value), rest
    word = re.match(r"[a-z][a-z0-9]*(?=\s)", text)
    if word and word.group(0) in _TYPE_KEYWORDS:
        (_, value), rest = _gvariant_value(text[word.end():].lstrip())
        return _coerce(_TYPE_KEYWORDS[word.group(0)], value), rest
    if text[:1] in ("'", '"'):
        quote, out, i = text[0], [], 1
        while i < len(text) and text[i] != quote:
            if text[i] == "\\" and i + 1 < len(text):
                i += 1
            out.append(text[i])
            i += 1
        if i >= len(text):
            raise ValueError("unterminated string")
        return ("s", "".join(out)), text[i + 1:]
    if text.startswith("["):
        items, rest = [], text[1:].lstrip()
        while not rest.startswith("]"):
            item, rest = _gvariant_value(rest)
            items.append(item)
            rest = rest.lstrip()
            if rest.startswith(","):
                rest = rest[1:].lstrip()
            elif not rest.startswith("]"):
                raise ValueError("expected , or ] in an array")
        sigs = {sig for sig, _ in items}
        if len(sigs) > 1:
            raise ValueError("array items of different types")
        return ("a" + (sigs.pop() if sigs else "s"), [v for _, v in items]), rest[1:]
    for name, flag in (("true", True), ("false", False)):
        if text.startswith(name) and not text[len(name):len(name) + 1].isalnum():
            return ("b", flag), text[len(name):]
    number = re.match(r"[-+]?(0x[0-9a-fA-F]+|[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?)", text)
    if number:
        literal = number.group(0)
        if number.group(2) is not None or number.group(3) is not None:
            return ("d", float(literal)), text[number.end():]
        return _coerce("i", int(literal, 0)), text[number.end():]
    raise ValueError(f"cannot parse {text!r}")


_INT_RANGES = {"y": (0, 255), "n": (-(1 << 15), (1 << 15) - 1), "q": (0, (1 << 16) - 1),
               "i": (-(1 << 31), (1 << 31) - 1), "u": (0, (1 << 32) - 1),
               "x": (-(1 << 63), (1 << 63) - 1), "t": (0, (1 << 64) - 1)}


def _coerce(sig: str, value) -> tuple[str, object]:
    if sig in _INT_RANGES:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{value!r} is not an integer")
        lo, hi = _INT_RANGES[sig]
        if not lo <= value <= hi:
            raise ValueError(f"{value} out of range for type {sig}")
        return sig, value
    if sig == "d":
        return sig, float(value)
    if sig == "b" and isinstance(value, bool):
        return sig, value
    if sig in ("s", "o") and isinstance(value, str):
        return sig, value
    raise ValueError(f"{value!r} does not fit type {sig}")


def annotation_properties(annotations: dict | None) -> list[tuple[str, tuple[str, object]]]:
    """runc's initSystemdProps: each "org.systemd.property.<Name>" annotation as a unit
    property; a <name>Sec property (lowercase letter before Sec) becomes <name>USec with
    the value in microseconds."""
    props = []
    for key, text in sorted((annotations or {}).items()):
        if not key.startswith(ANNOTATION_PREFIX):
            continue
        name = key[len(ANNOTATION_PREFIX):]
        if len(name) < 3:
            raise CgroupError(f"annotation {key} name incorrect: too short")
        if not all("a" <= ch <= "z" or "A" <= ch <= "Z" for ch in name):
            raise CgroupError(f"annotation {key} name incorrect: contains non-alphabetic character")
        try:
            sig, value = parse_gvariant(text)
        except ValueError as err:
            raise CgroupError(f"annotation {key}={text} value parse error: {err}") from None
        if name.endswith("Sec") and "a" <= name[-4] <= "z":
            if sig not in _NUMERIC:
                raise CgroupError(f"annotation {key}={text} value parse error: not a number")
            name = name[:-3] + "USec"
            sig, value = "t", int(value * 1000000)
        props.append((name, (sig, value)))
    return props


# ---- linux.resources → unit properties ------------------------------------------------------


def range_to_bits(text: str, field: str) -> bytes:
    """runc's RangeToBits: "0-2,5" → the bitmask as little-endian bytes (AllowedCPUs)."""
    mask = 0
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            start, end = int(lo), int(hi) if sep else int(lo)
        except ValueError:
            raise CgroupError(f"{field}={text!r} conversion error: invalid range {part!r}") from None
        if start < 0 or end < start:
            raise CgroupError(f"{field}={text!r} conversion error: invalid range {part!r}")
        for bit in range(start, end + 1):
            mask |= 1 << bit
    if mask == 0:
        raise CgroupError(f"{field}={text!r} conversion error: empty set")
    return mask.to_bytes((mask.bit_length() + 7) // 8, "little")


def _cpu_quota(props: list, quota: int, period: int, version: int) -> None:
    """runc's addCpuQuota: CPUQuotaPeriodUSec (systemd >= 242) and CPUQuotaPerSecUSec,
    rounded up to whole percents so the cgroupfs quota written after it still fits."""
    if period and version >= 242:
        props.append(("CPUQuotaPeriodUSec", ("t", period)))
    if quota or period:
        per_sec = _USEC_INFINITY
        if quota > 0:
            per_sec = quota * 1000000 // (period or _DEFAULT_CPU_PERIOD)
            if per_sec % 10000:
                per_sec = (per_sec // 10000 + 1) * 10000
        props.append(("CPUQuotaPerSecUSec", ("t", per_sec)))


def _uint64(value: int) -> int:
    """An OCI int64 in a systemd uint64 property: -1 (unlimited) is infinity."""
    return _USEC_INFINITY if value < 0 else value


def _unified_properties(unified: dict, version: int) -> list:
    """runc's unifiedResToSystemdProps: the linux.resources.unified keys systemd has a
    property for (the rest is written to cgroupfs only)."""
    props: list = []
    memory = {"memory.high": "MemoryHigh", "memory.low": "MemoryLow", "memory.min": "MemoryMin",
              "memory.max": "MemoryMax", "memory.swap.max": "MemorySwapMax"}
    for key, raw in sorted(unified.items()):
        value = raw.strip()
        field = f"linux.resources.unified[{key!r}]"
        try:
            if key == "cpu.max":
                words = value.split()
                if not 1 <= len(words) <= 2:
                    raise ValueError(value)
                quota = 0 if words[0] == "max" else int(words[0])
                period = int(words[1]) if len(words) == 2 else _DEFAULT_CPU_PERIOD
                _cpu_quota(props, quota, period, version)
            elif key == "cpu.weight":
                props.append(("CPUWeight", ("t", int(value))))
            elif key in ("cpuset.cpus", "cpuset.mems") and version >= 244:
                name = "AllowedCPUs" if key == "cpuset.cpus" else "AllowedMemoryNodes"
                props.append((name, ("ay", range_to_bits(value, field))))
            elif key in memory:
                props.append((memory[key], ("t", _USEC_INFINITY if value == "max" else int(value))))
            elif key == "pids.max":
                props.append(("TasksMax", ("t", _USEC_INFINITY if value == "max" else int(value))))
        except ValueError:
            raise CgroupError(f"{field}: value conversion error: {value!r}") from None
    return props


def device_properties(rules: list[dict] | None, version: int) -> list:
    """runc's systemd device properties: DevicePolicy=strict and a DeviceAllow list that
    grants what the rule list (evaluated on a deny-all base, later rules win) allows.
    An allow-all result is DevicePolicy=auto with no list; a deny list on an allow-all
    base cannot be said to systemd, so it gets deny-all (the eBPF program or the v1
    devices cgroup written after it has the exact rules, as with runc)."""
    if rules is None:
        return []
    allow_all = False
    granted: dict[tuple[str, int, int], str] = {}
    denied: dict[tuple[str, int, int], str] = {}
    for r in rules:
        if r["type"] == "a":
            allow_all = r["allow"]
            granted.clear()
            denied.clear()
            continue
        key = (r["type"], r["major"], r["minor"])
        if allow_all:
            table, other = (denied, granted) if not r["allow"] else (granted, denied)
        else:
            table, other = (granted, denied) if r["allow"] else (denied, granted)
        remaining = "".join(ch for ch in other.get(key, "") if ch not in r["access"])
        if remaining:
            other[key] = remaining
        else:
            other.pop(key, None)
        if table is granted and allow_all:
            continue  # allowing on an allow-all base only lifts a deny
        if table is denied and not allow_all:
            continue  # denying on a deny-all base only takes back a grant
        table[key] = "".join(ch for ch in "rwm" if ch in table.get(key, "") + r["access"])
    empty = ("DeviceAllow", ("a(ss)", []))
    if allow_all:
        if not denied:
            return [("DevicePolicy", ("s", "auto")), empty]
        from pyrunc import log
        log.warning("systemd doesn't support blacklist device rules -- applying temporary deny-all rule")
        return [("DevicePolicy", ("s", "strict")), empty]
    entries = []
    for (dtype, major, minor), access in granted.items():
        group = "block-" if dtype == "b" else "char-"
        if major < 0:
            if minor >= 0:
                continue  # "*:n" cannot be said to systemd (runc warns and skips it too)
            path = group + "*"
        elif minor < 0:
            # runc 1.1 names the /proc/devices group ("char-pts"); {type}-{major} works
            # from systemd 240 on
            name = _device_group(dtype, major)
            if name is None and version < 240:
                continue
            path = group + (name or str(major))
        else:
            path = f"/dev/{'block' if dtype == 'b' else 'char'}/{major}:{minor}"
        entries.append((path, access))
    return [("DevicePolicy", ("s", "strict")), empty, ("DeviceAllow", ("a(ss)", entries))]


def _device_group(dtype: str, major: int) -> str | None:
    """The group name of a device major in /proc/devices ("pts" for char 136)."""
    header = "Block devices:" if dtype == "b" else "Character devices:"
    try:
        text = read("/proc/devices")
    except OSError:
        return None
    section = False
    for line in text.splitlines():
        line = line.strip()
        if line.endswith("devices:"):
            section = line == header
        elif section and line.split(" ", 1)[0] == str(major):
            return line.split(" ", 1)[1]
    return None


def resource_properties(r: dict, device_rules: list[dict] | None, cgroup_version: int,
                        version: int) -> list:
    """runc's genV2ResourcesProperties / genV1ResourcesProperties on normalized
    resources `r` (pyrunc.cgroups._resources.normalize)."""
    from pyrunc.cgroups.controllers.blkio import blkio_weight_to_io_weight
    from pyrunc.cgroups.controllers.cpu import shares_to_weight
    from pyrunc.cgroups.controllers.memory import swap_to_v2

    props = device_properties(device_rules, version)
    # normalize keeps only the sections the config has: an absent one sets nothing
    memory, cpu = r.get("memory") or {}, r.get("cpu") or {}
    mem_limit = memory.get("limit", 0)
    shares = cpu.get("shares", 0)
    weight = (r.get("blockIO") or {}).get("weight", 0)
    if cgroup_version == 2:
        if mem_limit:
            props.append(("MemoryMax", ("t", _uint64(mem_limit))))
        if memory.get("reservation", 0):
            props.append(("MemoryLow", ("t", _uint64(memory["reservation"]))))
        swap = swap_to_v2(memory.get("swap", 0), mem_limit)
        if swap:
            props.append(("MemorySwapMax", ("t", _uint64(swap))))
        if shares:
            props.append(("CPUWeight", ("t", shares_to_weight(shares))))
        if weight:
            props.append(("IOWeight", ("t", blkio_weight_to_io_weight(weight))))
    else:
        if mem_limit:
            props.append(("MemoryLimit", ("t", _uint64(mem_limit))))
        if shares:
            props.append(("CPUShares", ("t", shares)))
        if weight:
            props.append(("BlockIOWeight", ("t", weight)))
    _cpu_quota(props, cpu.get("quota", 0), cpu.get("period", 0), version)
    limit = (r.get("pids") or {}).get("limit", 0)
    if limit > 0 or limit == -1:
        props.append(("TasksMax", ("t", _uint64(limit))))
    if version >= 244:
        if cpu.get("cpus"):
            props.append(("AllowedCPUs", ("ay", range_to_bits(cpu["cpus"], "linux.resources.cpu.cpus"))))
        if cpu.get("mems"):
            props.append(("AllowedMemoryNodes", ("ay", range_to_bits(cpu["mems"], "linux.resources.cpu.mems"))))
    if cgroup_version == 2 and r.get("unified"):
        props += _unified_properties(r["unified"], version)
    return props


# ---- the D-Bus connection ------------------------------------------------------------------

SYSTEM_BUS = "/run/dbus/system_bus_socket"
PRIVATE_SOCKET = "/run/systemd/private"
_SYSTEMD = "org.freedesktop.systemd1"
_MANAGER_PATH = "/org/freedesktop/systemd1"
_MANAGER_IFACE = "org.freedesktop.systemd1.Manager"
_TIMEOUT = 30.0


class Systemd:
    """Calls to systemd's Manager object, over the system bus or, as go-systemd does for
    root when there is no bus daemon, systemd's private peer-to-peer socket."""

    _shared: "Systemd | None" = None

    def __init__(self):
        from jeepney.io.blocking import DBusConnection, DBusConnectionBase, prep_socket
        from jeepney.io.common import MessageFilters

        class Connection(DBusConnection):
            # a peer-to-peer connection (the private socket) has no bus to say Hello to
            def __init__(self, sock, hello: bool):
                DBusConnectionBase.__init__(self, sock)
                self._filters = MessageFilters()
                if hello:
                    from jeepney.bus_messages import message_bus
                    from jeepney.io.blocking import Proxy
                    self.unique_name = Proxy(message_bus, self).Hello()[0]

        errors = []
        address = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS", "")
        bus = address[len("unix:path="):] if address.startswith("unix:path=") else SYSTEM_BUS
        candidates = [(bus, True)] + ([(PRIVATE_SOCKET, False)] if os.geteuid() == 0 else [])
        for path, hello in candidates:
            try:
                self._conn = Connection(prep_socket(path, timeout=5.0), hello)
                break
            except (OSError, ValueError) as err:
                errors.append(f"{path}: {err}")
        else:
            raise CgroupError("cannot connect to systemd over D-Bus (" + "; ".join(errors) + ")")
        self._version: int | None = None

    @classmethod
    def shared(cls) -> "Systemd":
        if cls._shared is None:
            cls._shared = cls()
        return cls._shared

    def call(self, path: str, interface: str, method: str, signature: str | None = None, body=()):
        from jeepney import DBusAddress, new_method_call
        from jeepney.wrappers import DBusErrorResponse, unwrap_msg
        # the destination is routed by the bus daemon, and ignored on the private socket
        address = DBusAddress(path, bus_name=_SYSTEMD, interface=interface)
        try:
            reply = self._conn.send_and_get_reply(new_method_call(address, method, signature, body),
                                                  timeout=_TIMEOUT)
            return unwrap_msg(reply)
        except DBusErrorResponse as err:
            raise SystemdError(err.name or "", " ".join(str(x) for x in err.data)) from None
        except TimeoutError:
            raise CgroupError(f"D-Bus call {method} to systemd: no reply within {_TIMEOUT:.0f} s") from None
        except (OSError, ValueError) as err:  # ValueError: a malformed message
            raise CgroupError(f"D-Bus call {method} to systemd: {err or type(err).__name__}") from None

    def manager(self, method: str, signature: str | None = None, body=()):
        return self.call(_MANAGER_PATH, _MANAGER_IFACE, method, signature, body)

    def get(self, path: str, interface: str, name: str):
        return self.call(path, "org.freedesktop.DBus.Properties", "Get", "ss", (interface, name))[0][1]

    def version(self) -> int:
        """systemd's version number ("252.38-1~deb12u1" → 252; -1 if unknown)."""
        if self._version is None:
            text = str(self.get(_MANAGER_PATH, _MANAGER_IFACE, "Version")).lstrip('"v')
            digits = re.match(r"\d+", text)
            self._version = int(digits.group(0)) if digits else -1
        return self._version

    def wait_job(self, job: str, deadline: float) -> None:
        """Until the job object is gone (done, failed or cancelled)."""
        import time
        while True:
            try:
                self.get(job, "org.freedesktop.systemd1.Job", "State")
            except SystemdError as err:
                if err.name.endswith(("UnknownObject", "UnknownMethod", "NoSuchJob")):
                    return
                raise
            if time.monotonic() > deadline:
                raise CgroupError(f"timed out waiting for systemd job {job}")
            time.sleep(0.002)

    def active_state(self, unit: str) -> str:
        """The unit's ActiveState, or "" if systemd does not know it (any more)."""
        try:
            path = self.manager("GetUnit", "s", (unit,))[0]
            return str(self.get(path, "org.freedesktop.systemd1.Unit", "ActiveState"))
        except SystemdError as err:
            if err.name.endswith(("NoSuchUnit", "UnknownObject")):
                return ""
            raise

    def start_transient_unit(self, unit: str, properties: list) -> None:
        """runc's startUnit: start, wait for the job, check the unit is active; a unit
        of that name left over in the failed state is reset and the start retried once."""
        import time
        for attempt in (1, 2):
            try:
                job = self.manager("StartTransientUnit", "ssa(sv)a(sa(sv))",
                                   (unit, "replace", properties, []))[0]
                break
            except SystemdError as err:
                if attempt == 1 and err.name.endswith("UnitExists"):
                    self.reset_failed(unit)
                    continue
                raise CgroupError(f"unable to start unit {unit!r}: {err}") from None
        self.wait_job(job, time.monotonic() + _TIMEOUT)
        state = self.active_state(unit)
        if state != "active":
            self.reset_failed(unit)
            raise CgroupError(f"error creating systemd unit `{unit}`: got `{state or 'removed'}`")

    def stop_unit(self, unit: str) -> None:
        import time
        try:
            job = self.manager("StopUnit", "ss", (unit, "replace"))[0]
            self.wait_job(job, time.monotonic() + _TIMEOUT)
        except SystemdError as err:
            if not err.name.endswith("NoSuchUnit"):
                raise CgroupError(f"unable to stop unit {unit!r}: {err}") from None
        self.reset_failed(unit)

    def reset_failed(self, unit: str) -> None:
        try:
            self.manager("ResetFailedUnit", "s", (unit,))
        except SystemdError:
            pass  # not loaded or not failed: nothing to reset

    def set_unit_properties(self, unit: str, properties: list) -> None:
        try:
            self.manager("SetUnitProperties", "sba(sv)", (unit, True, properties))
        except SystemdError as err:
            raise CgroupError(f"unable to set unit properties: {err}") from None


class SystemdError(CgroupError):
    """An error reply from systemd (name: the D-Bus error name)."""

    def __init__(self, name: str, message: str):
        super().__init__(f"{message} ({name})" if message else name)
        self.name = name


# ---- the manager ---------------------------------------------------------------------------


class SystemdManager(Manager):
    """A container's cgroups in a transient systemd unit; cgroupfs work is the base's."""

    __slots__ = ("unit", "slice", "properties", "_pending")

    # the unit (and so its cgroup directories) is started in join(): the init must wait
    # for that before it mounts anything that names them (pyrunc.launch reads this)
    dirs_before_join = False

    def __init__(self, mode_: str, dirs: dict[str, str], mounts: dict[str, str], unit: str,
                 slice_: str, properties: list | None = None):
        # the unit's cgroups are what delete removes (those systemd has not)
        super().__init__(mode_, dirs, mounts, sorted(set(dirs.values())))
        self.unit = unit
        self.slice = slice_
        self.properties = list(properties or [])
        # (resources, linux.devices) that apply() got before the unit exists; None once
        # the unit is started (or for a manager read back from state.json)
        self._pending: tuple | None = None

    @classmethod
    def for_container(cls, cgroups_path: str, container_id: str,
                      annotations: dict | None = None) -> "SystemdManager":
        from pyrunc.cgroups import _paths

        slice_, unit = parse_cgroups_path(cgroups_path or "", container_id)
        if not systemd_running():
            raise CgroupError("systemd not running on this host, cannot use systemd cgroups manager")
        expanded = expand_slice(slice_)
        properties = annotation_properties(annotations)
        current_mode = mode()
        own = _paths.parse_proc_cgroup(read("/proc/self/cgroup"))
        init = _paths.parse_proc_cgroup(read("/proc/1/cgroup"))
        hiers = _paths.hierarchies(cgroup_mounts(), current_mode, own)
        if not hiers:
            raise CgroupError("no usable cgroup hierarchy is mounted (see /proc/self/mountinfo)")
        dirs = {}
        for h in hiers:
            base = h.mountpoint
            if current_mode != "unified" and h.key in init:
                # v1 (runc's getSubsystemPath): below pid 1's cgroup, without init.scope
                rel = _paths.own_relative(h, init)
                if rel == "init.scope" or rel.endswith("/init.scope"):
                    rel = rel[:-len("init.scope")].rstrip("/")
                base = _paths.join(base, rel)
            dirs[h.key] = _paths.join(base, (expanded.strip("/") + "/" + unit).lstrip("/"))
        return cls(current_mode, dirs, {h.key: h.mountpoint for h in hiers}, unit, slice_, properties)

    @classmethod
    def from_state(cls, d: dict) -> "SystemdManager":
        base = Manager.from_state(dict(d, systemd=None))
        sd = d.get("systemd")
        if not (isinstance(sd, dict) and isinstance(sd.get("unit"), str) and isinstance(sd.get("slice"), str)):
            raise CgroupError("state.json: cgroup.systemd: missing unit or slice")
        return cls(base.mode, base._dirs, base._mounts, sd["unit"], sd["slice"])

    def to_state(self) -> dict:
        return dict(super().to_state(), created=sorted(set(self._dirs.values())),
                    systemd={"unit": self.unit, "slice": self.slice})

    @property
    def unified_path(self) -> str | None:
        # no CLONE_INTO_CGROUP into a scope that systemd has not made yet
        return None if self._pending is not None else self._dirs.get(UNIFIED_KEY)

    def create(self, controllers=(), *, rootless: bool = False) -> None:
        if rootless:
            # runc would talk to the user's own systemd (systemdUser); pyrunc does not yet
            raise CgroupError("--systemd-cgroup for a rootless container (the user's systemd) is not supported")
        # the scope needs a pid: it is started in join(); connect now so that a host
        # without a reachable systemd fails before anything is spawned
        if self._pending is None:
            self._pending = (None, None)
        Systemd.shared()

    def apply(self, resources: dict | None, *, devices=(), update: bool = False) -> dict:
        from pyrunc.cgroups import _resources
        r = _resources.normalize(resources)
        if self._pending is not None:
            self._pending = (r, tuple(devices))
            return r
        if update:
            self._set_properties(r, None)
        return super().apply(r, devices=devices, update=update)

    def _version(self) -> int:
        return 2 if self.mode == "unified" else 1

    def _set_properties(self, r: dict, rules: list | None) -> None:
        systemd = Systemd.shared()
        props = resource_properties(r, rules, self._version(), systemd.version())
        if props:
            systemd.set_unit_properties(self.unit, props)

    def join(self, pid: int, *, unified_done: bool = False) -> None:
        if self._pending is None:
            super().join(pid, unified_done=unified_done)
            return
        resources, devices = self._pending
        systemd = Systemd.shared()
        props = [("Description", ("s", f"libcontainer container {self.unit}"))]
        if self.unit.endswith(".slice"):
            props.append(("Wants", ("as", [self.slice])))
        else:
            props += [("Slice", ("s", self.slice)), ("Delegate", ("b", True))]
        props.append(("PIDs", ("au", [pid])))
        io_accounting = "IOAccounting" if self.mode == "unified" else "BlockIOAccounting"
        props += [(name, ("b", True)) for name in
                  ("MemoryAccounting", "CPUAccounting", io_accounting, "TasksAccounting")]
        props.append(("DefaultDependencies", ("b", False)))
        if resources is not None:
            from pyrunc.cgroups.controllers.devices import device_rules
            rules = device_rules(resources.get("devices") or [], devices)
            props += resource_properties(resources, rules, self._version(), systemd.version())
        props += self.properties
        systemd.start_transient_unit(self.unit, props)
        self._pending = None
        # the hierarchies systemd does not manage (v1 net_cls, perf_event, ...) get
        # their directory as with the cgroupfs driver, then the init joins them all
        Manager.create(self)
        self.created = sorted(set(self._dirs.values()))
        super().join(pid)
        if resources is not None:
            super().apply(resources, devices=devices)

    def destroy(self) -> None:
        if systemd_running():
            try:
                Systemd.shared().stop_unit(self.unit)
            except CgroupError:
                super().destroy()
                raise
        super().destroy()

