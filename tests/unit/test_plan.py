"""The plan's wire format: the op table of pyrunc/plan.py is the one of
pyrunc/_native/plan.h (parsed here), and pyrunc-init refuses a plan of another version."""
from __future__ import annotations

import os
import re

import pytest

from pyrunc import plan as P
from pyrunc.errors import SpawnError

PLAN_H = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                      "pyrunc", "_native", "plan.h")


def _header() -> str:
    with open(PLAN_H) as f:
        return re.sub(r"/\*.*?\*/", "", f.read(), flags=re.S)


def _enum(name: str) -> dict[str, int]:
    body = re.search(r"enum " + name + r"\s*\{(.*?)\}", _header(), re.S).group(1)
    return {k: int(v) for k, v in re.findall(r"(\w+)\s*=\s*(\d+)", body)}


def _python(prefix: str, *, skip: tuple = ()) -> dict[str, int]:
    return {k: v for k, v in vars(P).items() if k.startswith(prefix) and k not in skip}


@pytest.mark.parametrize("enum, prefix", [("op_code", "OP_"), ("mount_target", "TARGET_"),
                                          ("mount_mkdir", "MKDIR_"), ("mount_source", "SOURCE_"),
                                          ("msg_type", "MSG_")])
def test_python_table_is_plan_h(enum, prefix):
    assert _python(prefix, skip=("MSG_SIZE",)) == _enum(enum)


def test_version_magic_and_message_size_are_plan_h():
    header = _header()
    assert int(re.search(r"#define PLAN_VERSION (\d+)", header).group(1)) == P.PLAN_VERSION
    assert re.search(r'#define PLAN_MAGIC "(\w+)"', header).group(1).encode() == P.PLAN_MAGIC
    fields = re.search(r"struct init_msg\s*\{(.*?)\}", header, re.S).group(1)
    assert P.MSG_SIZE == 4 * len(re.findall(r"int32_t \w+;", fields))


def test_encoder_writes_the_version():
    data = P.Plan().encode()
    assert data[:4] == P.PLAN_MAGIC and int.from_bytes(data[4:8], "little") == P.PLAN_VERSION


def _run_true(monkeypatch, version: int) -> None:
    from pyrunc.initproc import InitProcess
    monkeypatch.setattr(P, "PLAN_VERSION", version)
    plan = P.Plan()
    plan.lookup("/bin/true", "", None, what="exec: /bin/true")
    plan.exec(["/bin/true"], [], what="exec /bin/true")
    proc = InitProcess.spawn(plan)
    try:
        proc.follow()
    finally:
        proc.kill()


def test_init_runs_a_plan_of_its_version(monkeypatch):
    _run_true(monkeypatch, P.PLAN_VERSION)


def test_init_refuses_a_plan_of_another_version(monkeypatch):
    with pytest.raises(SpawnError, match="plan version .* refused"):
        _run_true(monkeypatch, P.PLAN_VERSION + 1)
