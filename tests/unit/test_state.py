"""The typed container state keeps state.json's format: a file written by an earlier
pyrunc reads into the typed fields and is written back byte for byte."""
from __future__ import annotations

import json
import os

from pyrunc.state import Container

OLD_STATE = {
    "ociVersion": "1.0.2", "id": "c1", "pid": 4242, "bundle": "/b", "rootfs": "/b/rootfs",
    "created": "2026-12-07T22:00:00.000000000Z", "annotations": {"a": "b"}, "no_new_keyring": False,
    "args0": "sh", "exec": {"process": {"args": ["sh"]}, "seccomp": None},
    "cgroup": {"mode": "unified", "dirs": {"": "/sys/fs/cgroup/c1"}, "mounts": {"": "/sys/fs/cgroup"}},
    "resources": {"devices": []}, "start_fd": 7, "pid_start": 123, "hooks": {"poststop": [{"path": "/x"}]},
    "a_key_of_a_later_version": [1, 2],
}


def _write(tmp_path, data) -> None:
    os.makedirs(tmp_path / "c1", exist_ok=True)
    (tmp_path / "c1" / "state.json").write_text(json.dumps(data))


def test_old_state_json_reads_into_typed_fields(tmp_path):
    _write(tmp_path, OLD_STATE)
    st = Container.load(str(tmp_path), "c1", lock=False).state
    assert (st.pid, st.pid_start, st.start_fd, st.args0, st.bundle) == (4242, 123, 7, "sh", "/b")
    assert st.exec_defaults == OLD_STATE["exec"] and st.cgroup == OLD_STATE["cgroup"]
    assert st.hooks == OLD_STATE["hooks"] and st.creator is None and not st.corrupt


def test_save_writes_the_same_json_back(tmp_path):
    _write(tmp_path, OLD_STATE)
    c = Container.load(str(tmp_path), "c1", lock=False)
    c.state.pid = 4243
    c.save()
    assert json.loads((tmp_path / "c1" / "state.json").read_text()) == dict(OLD_STATE, pid=4243)


def test_absent_and_corrupt_state(tmp_path):
    os.makedirs(tmp_path / "c1")
    st = Container.load(str(tmp_path), "c1", lock=False).state
    assert (st.pid, st.start_fd, st.cgroup, st.corrupt) == (0, -1, None, False)
    (tmp_path / "c1" / "state.json").write_text("{")
    assert Container.load(str(tmp_path), "c1", lock=False).state.corrupt
