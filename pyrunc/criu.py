"""CRIU's RPC as runc speaks it: `criu swrk 3` on one end of a SOCK_SEQPACKET pair, one
protobuf `criu_req` per message, `criu_resp` back (notifications in between).

Only the part of CRIU's images/rpc.proto that checkpoint/restore use is encoded here, by
hand: protobuf's wire format for these messages is varints and length-delimited fields,
and a dependency on the protobuf runtime (plus generated code) for that would be heavier
than the codec. Imported by `pyrunc checkpoint|restore` only.
"""
from __future__ import annotations

import os
import shutil
import struct

from pyrunc.errors import PyruncError

# criu_req_type
DUMP, RESTORE, PRE_DUMP, NOTIFY, FEATURE_CHECK, VERSION = 1, 2, 4, 6, 9, 10
TYPE_NAMES = {0: "EMPTY", 1: "DUMP", 2: "RESTORE", 3: "CHECK", 4: "PRE_DUMP", 5: "PAGE_SERVER",
              6: "NOTIFY", 7: "CPUINFO_DUMP", 8: "CPUINFO_CHECK", 9: "FEATURE_CHECK",
              10: "VERSION", 11: "WAIT_PID", 12: "PAGE_SERVER_CHLD", 13: "SINGLE_PRE_DUMP"}
# criu_cg_mode, as runc's --manage-cgroups-mode names them
CG_MODES = {"soft": 3, "full": 4, "strict": 5}

_VARINT, _BYTES = 0, 2

# message name -> {field name: (number, kind)}; kind: "int", "bool", "str", "enum", a
# message name, or ("repeated", kind)
SCHEMA: dict[str, dict[str, tuple]] = {
    "criu_req": {"type": (1, "enum"), "opts": (2, "criu_opts"), "notify_success": (3, "bool"),
                 "keep_open": (4, "bool"), "features": (5, "criu_features"), "pid": (6, "int")},
    "criu_resp": {"type": (1, "enum"), "success": (2, "bool"), "dump": (3, "criu_dump_resp"),
                  "restore": (4, "criu_restore_resp"), "notify": (5, "criu_notify"),
                  "cr_errno": (7, "int"), "features": (8, "criu_features"),
                  "cr_errmsg": (9, "str"), "version": (10, "criu_version"), "status": (11, "int")},
    "criu_opts": {
        "images_dir_fd": (1, "int"), "pid": (2, "int"), "leave_running": (3, "bool"),
        "ext_unix_sk": (4, "bool"), "tcp_established": (5, "bool"),
        "evasive_devices": (6, "bool"), "shell_job": (7, "bool"), "file_locks": (8, "bool"),
        "log_level": (9, "int"), "log_file": (10, "str"), "ps": (11, "criu_page_server_info"),
        "notify_scripts": (12, "bool"), "root": (13, "str"), "parent_img": (14, "str"),
        "track_mem": (15, "bool"), "auto_dedup": (16, "bool"), "work_dir_fd": (17, "int"),
        "veths": (19, ("repeated", "criu_veth_pair")),
        "ext_mnt": (23, ("repeated", "ext_mount_map")), "manage_cgroups": (24, "bool"),
        "cg_root": (25, ("repeated", "cgroup_root")), "rst_sibling": (26, "bool"),
        "inherit_fd": (27, ("repeated", "inherit_fd")), "manage_cgroups_mode": (34, "enum"),
        "external": (37, ("repeated", "str")), "empty_ns": (38, "int"),
        "join_ns": (39, ("repeated", "join_namespace")), "freeze_cgroup": (44, "str"),
        "lazy_pages": (48, "bool"), "status_fd": (49, "int"), "orphan_pts_master": (50, "bool"),
        "config_file": (51, "str"), "lsm_profile": (53, "str"), "lsm_mount_context": (63, "str"),
    },
    "criu_page_server_info": {"address": (1, "str"), "port": (2, "int")},
    "criu_veth_pair": {"if_in": (1, "str"), "if_out": (2, "str")},
    "ext_mount_map": {"key": (1, "str"), "val": (2, "str")},
    "cgroup_root": {"ctrl": (1, "str"), "path": (2, "str")},
    "inherit_fd": {"key": (1, "str"), "fd": (2, "int")},
    "join_namespace": {"ns": (1, "str"), "ns_file": (2, "str")},
    "criu_features": {"mem_track": (1, "bool"), "lazy_pages": (2, "bool")},
    "criu_notify": {"script": (1, "str"), "pid": (2, "int")},
    "criu_dump_resp": {"restored": (1, "bool")},
    "criu_restore_resp": {"pid": (1, "int")},
    "criu_version": {"major_number": (1, "int"), "minor_number": (2, "int"), "gitid": (3, "str"),
                     "sublevel": (4, "int"), "extra": (5, "int"), "name": (6, "str")},
}


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int32/int64 are ten-byte two's complement
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def encode(message: str, values: dict) -> bytes:
    """`values` (field name -> value; None and absent fields are left out) as the wire
    bytes of `message`."""
    fields = SCHEMA[message]
    out = bytearray()
    for name, value in values.items():
        if value is None:
            continue
        number, kind = fields[name]
        items = value if isinstance(kind, tuple) else [value]
        kind = kind[1] if isinstance(kind, tuple) else kind
        for item in items:
            if kind in ("int", "bool", "enum"):
                out += _varint(number << 3 | _VARINT) + _varint(int(item))
            else:
                data = item.encode() if kind == "str" else encode(kind, item)
                out += _varint(number << 3 | _BYTES) + _varint(len(data)) + data
    return bytes(out)


def decode(message: str, data: bytes) -> dict:
    """The fields of `message` found in `data` (unknown fields skipped)."""
    by_number = {number: (name, kind) for name, (number, kind) in SCHEMA[message].items()}
    out: dict = {}
    i = 0
    while i < len(data):
        key, i = _read_varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == _VARINT:
            value, i = _read_varint(data, i)
        elif wire == _BYTES:
            length, i = _read_varint(data, i)
            value, i = data[i:i + length], i + length
        elif wire in (1, 5):  # fixed64 / fixed32: not in these messages, skipped
            i += 8 if wire == 1 else 4
            continue
        else:
            raise PyruncError(f"criu: malformed {message} (wire type {wire})")
        if number not in by_number:
            continue
        name, kind = by_number[number]
        repeated = isinstance(kind, tuple)
        kind = kind[1] if repeated else kind
        if kind == "bool":
            value = bool(value)
        elif kind in ("int", "enum"):
            value = value - (1 << 64) if value >= 1 << 63 else value
        elif kind == "str":
            value = value.decode(errors="replace")
        else:
            value = decode(kind, value)
        if repeated:
            out.setdefault(name, []).append(value)
        else:
            out[name] = value
    return out


def _read_varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(data):
            raise PyruncError("criu: truncated message")
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i
        shift += 7


class CriuError(PyruncError):
    """CRIU refused a request (or its RPC broke); the message is runc's."""


def resolve_binary(criu: str) -> str:
    """The criu executable (the global --criu flag), with Go's exec error wording."""
    if "/" in criu:
        if not os.path.exists(criu):
            raise CriuError(f"CRIU version check failed: fork/exec {criu}: no such file or directory")
        return criu
    found = shutil.which(criu)
    if found is None:
        raise CriuError(f'CRIU version check failed: exec: "{criu}": executable file not found in $PATH')
    return found


class Swrk:
    """One `criu swrk` process: start it, send a request, follow its answers.

    `extra_fds` become the criu process's fds 4, 5, ... (3 is the RPC socket); its 0-2
    are ours."""

    def __init__(self, binary: str, extra_fds: list[int] = ()) -> None:
        import socket
        import subprocess
        self._sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        fd_map = [theirs.fileno(), *extra_fds]
        # in the child: fds 3.. as listed (pass_fds keeps numbers, so move them; first
        # above every target, so no placement overwrites a source not yet placed)
        def place_fds() -> None:
            import fcntl
            moved = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3 + len(fd_map)) for fd in fd_map]
            for target, fd in enumerate(moved, start=3):
                os.dup2(fd, target, inheritable=True)
        try:
            self.process = subprocess.Popen([binary, "swrk", "3"], preexec_fn=place_fds,
                                            close_fds=False)
        finally:
            theirs.close()

    @property
    def pid(self) -> int:
        return self.process.pid

    def call(self, req_type: int, opts: dict | None = None, features: dict | None = None,
             on_notify=None) -> dict:
        """Send one request; answer notifications with on_notify(script, pid, fds) (then
        "success"); return the final response. A failed response raises CriuError."""
        import socket
        self._send({"type": req_type, "opts": opts, "features": features})
        while True:
            try:
                data, ancdata, _flags, _addr = self._sock.recvmsg(1 << 20, socket.CMSG_SPACE(64))
            except OSError as err:
                raise CriuError(f"criu: {os.strerror(err.errno).lower()}") from None
            received = [fd for level, kind, raw in ancdata
                        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS
                        for fd in struct.unpack(f"{len(raw) // 4}i", raw[:len(raw) // 4 * 4])]
            if not data:
                raise CriuError(f"criu failed: type {TYPE_NAMES.get(req_type, req_type)}: "
                                "unexpected EOF")
            resp = decode("criu_resp", data)
            kind = resp.get("type", 0)
            if not resp.get("success"):
                for fd in received:
                    os.close(fd)
                raise CriuError(f"criu failed: type {TYPE_NAMES.get(kind, kind)} errno "
                                f"{resp.get('cr_errno', 0)}")
            if kind != NOTIFY:
                return resp
            notify = resp.get("notify", {})
            try:
                if on_notify is not None:
                    on_notify(notify.get("script", ""), notify.get("pid", 0), received)
            finally:
                for fd in received:
                    os.close(fd)
            self._send({"type": NOTIFY, "notify_success": True})

    def _send(self, req: dict) -> None:
        try:
            self._sock.send(encode("criu_req", req))
        except OSError as err:
            raise CriuError(f"criu: {os.strerror(err.errno).lower()}") from None

    def close(self, kill: bool = False) -> int:
        """Close the socket (criu exits then) and reap criu; its exit status."""
        self._sock.close()
        if kill:
            try:
                self.process.kill()
            except ProcessLookupError:
                pass
        return self.process.wait()


def version(binary: str) -> int:
    """CRIU's version as runc counts it (major*10000 + minor*100 + sublevel)."""
    swrk = Swrk(binary)
    try:
        resp = swrk.call(VERSION)
    except CriuError as err:
        raise CriuError(f"CRIU version check failed: {err}") from None
    finally:
        swrk.close()
    v = resp.get("version", {})
    return v.get("major_number", 0) * 10000 + v.get("minor_number", 0) * 100 + v.get("sublevel", 0)


def first_error(log_path: str) -> str:
    """The first "Error" line of a CRIU log, without its timestamp ("" if none)."""
    try:
        with open(log_path, errors="replace") as f:
            for line in f:
                if "Error" in line:
                    text = line.strip()
                    if text.startswith("(") and ")" in text:
                        text = text.split(")", 1)[1].strip()
                    return text
    except OSError:
        pass
    return ""
