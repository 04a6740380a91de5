"""pyrunc.criu's hand-written protobuf codec against CRIU's own: Debian's criu package
ships pycriu's generated rpc_pb2 (for /usr/bin/python3 with python3-protobuf). Requests
pyrunc encodes must parse there to the same fields, and responses CRIU encodes must
decode here. Skips where criu (and so pycriu) is not installed."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from pyrunc import criu

DEBIAN_PYTHON = "/usr/bin/python3"
PYCRIU = "/usr/lib/python3/dist-packages/pycriu/rpc_pb2.py"

pytestmark = pytest.mark.skipif(not (os.path.exists(PYCRIU) and os.access(DEBIAN_PYTHON, os.X_OK)),
                                reason="Debian's criu package (pycriu's rpc_pb2) is not installed")

# Runs under Debian's python: argv[1] is "parse" (hex criu_req -> JSON of its fields) or
# "build" (JSON criu_resp fields -> hex).
_PYCRIU_SCRIPT = """
import json, sys
sys.path.insert(0, "/usr/lib/python3/dist-packages")
from google.protobuf import json_format
from pycriu import rpc_pb2
if sys.argv[1] == "parse":
    req = rpc_pb2.criu_req()
    req.ParseFromString(bytes.fromhex(sys.argv[2]))
    print(json.dumps(json_format.MessageToDict(req, preserving_proto_field_name=True,
                                               use_integers_for_enums=True)))
else:
    resp = json_format.ParseDict(json.loads(sys.argv[2]), rpc_pb2.criu_resp())
    print(resp.SerializeToString().hex())
"""


def _pycriu(*args: str) -> str:
    result = subprocess.run([DEBIAN_PYTHON, "-c", _PYCRIU_SCRIPT, *args], capture_output=True,
                            text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


RESTORE_REQUEST = {
    "type": criu.RESTORE,
    "opts": {
        "images_dir_fd": 7, "log_level": 4, "log_file": "restore.log", "root": "/run/x/criu-root",
        "manage_cgroups": True, "notify_scripts": True, "rst_sibling": True, "evasive_devices": True,
        "empty_ns": 0x40000000, "orphan_pts_master": True, "manage_cgroups_mode": 3,
        "ext_mnt": [{"key": "/data", "val": "/srv/data"}, {"key": "/dev/null", "val": "/dev/null"}],
        "inherit_fd": [{"key": "pipe:[1234]", "fd": 1}, {"key": "extRootNetNS", "fd": 4}],
        "cg_root": [{"ctrl": "", "path": "/pod/c1"}, {"ctrl": "cpu,cpuacct", "path": "/c1"}],
        "join_ns": [{"ns": "uts", "ns_file": "/proc/1/ns/uts"}],
        "external": ["net[4026531992]:extRootNetNS"],
        "ps": {"address": "10.0.0.1", "port": 27},
        "config_file": "/etc/criu/runc.conf", "status_fd": -1,
    },
}


def test_requests_parse_in_criu_own_codec():
    parsed = json.loads(_pycriu("parse", criu.encode("criu_req", RESTORE_REQUEST).hex()))
    assert parsed == RESTORE_REQUEST


def test_pre_dump_and_notify_acknowledgement():
    request = {"type": criu.PRE_DUMP, "opts": {"images_dir_fd": 3, "pid": 4242, "parent_img": "../parent",
                                              "track_mem": True, "leave_running": False}}
    parsed = json.loads(_pycriu("parse", criu.encode("criu_req", request).hex()))
    # proto2 keeps explicitly set false booleans too
    assert parsed == request
    ack = json.loads(_pycriu("parse", criu.encode("criu_req", {"type": criu.NOTIFY, "notify_success": True}).hex()))
    assert ack == {"type": criu.NOTIFY, "notify_success": True}


@pytest.mark.parametrize("response", [
    {"type": criu.NOTIFY, "success": True, "notify": {"script": "post-restore", "pid": 31337}},
    {"type": criu.RESTORE, "success": True, "restore": {"pid": 31337}},
    {"type": criu.DUMP, "success": False, "cr_errno": -22, "cr_errmsg": "bad", "dump": {"restored": False}},
    {"type": criu.VERSION, "success": True,
     "version": {"major_number": 3, "minor_number": 17, "sublevel": 1, "gitid": "abc"}},
    {"type": criu.FEATURE_CHECK, "success": True, "features": {"mem_track": True, "lazy_pages": False}},
])
def test_responses_from_criu_own_codec_decode(response):
    assert criu.decode("criu_resp", bytes.fromhex(_pycriu("build", json.dumps(response)))) == response
