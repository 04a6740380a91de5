"""pyrunc's pytest plugin (entry point `pytest11: pyrunc`), loaded by every pytest that
runs where pyrunc is installed. Everything it provides is a fixture whose name starts
with `pyrunc_` or `assert_`; nothing runs unless a test asks for it.

    def test_profile_denies_mkdir(pyrunc_config, assert_denied, assert_allowed):
        pyrunc_config.seccomp("my-profile.json")
        assert_denied("mkdir", errno.EPERM, "/tmp/x")
        assert_allowed("getpid")

Fixtures (containers need root; they skip the test otherwise):

    pyrunc_rootfs      session: a busybox rootfs built offline from busybox-static
    pyrunc_config      a fresh pyrunc.api.Config on that rootfs (args ["true"], no terminal,
                       read-only root, runc's default namespaces/caps/mounts); the
                       assert_* helpers below run their probe with it
    pyrunc_container   factory: pyrunc_container(config=None, **Container kwargs) -> Container;
                       every container is closed (force-deleted, root removed) at teardown
    pyrunc_run         pyrunc_run(config=None, input=None, timeout=60) -> Result
    assert_denied      assert_denied(syscall, errno, *args, config=None) -> ProbeResult
    assert_allowed     assert_allowed(syscall, *args, config=None) -> ProbeResult
    assert_cap         assert_cap(name, present=True, sets=("effective",), config=None)
    pyrunc_record      pyrunc_record(config=None, **kw) -> Recording (profile(), report())
    pyrunc_check       pyrunc_check(profile, config=None, **kw) -> CheckResult
"""
from __future__ import annotations

import errno as errnos
import os
from typing import Any, Callable

import pytest


def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("pyrunc containers need root")


@pytest.fixture(scope="session")
def pyrunc_rootfs(tmp_path_factory):
    """Path of a busybox rootfs shared by the session (mounted read-only by default)."""
    from pyrunc.harness.rootfs import build_busybox_rootfs
    if not os.path.exists("/bin/busybox"):
        pytest.skip("/bin/busybox is missing (install busybox-static)")
    return build_busybox_rootfs(tmp_path_factory.mktemp("pyrunc-busybox") / "rootfs")


@pytest.fixture
def pyrunc_config(pyrunc_rootfs):
    from pyrunc.harness.api import Config
    return Config.busybox(pyrunc_rootfs)


@pytest.fixture
def pyrunc_container(pyrunc_config) -> Any:
    from pyrunc.harness.api import Container
    made: list = []

    def factory(config=None, **kwargs):
        _need_root()
        container = Container(pyrunc_config if config is None else config, **kwargs)
        made.append(container)
        return container

    yield factory
    for container in made:
        container.close()


@pytest.fixture
def pyrunc_run(pyrunc_config) -> Callable:
    from pyrunc.harness.api import run

    def run_config(config=None, input=None, timeout: float = 60):
        _need_root()
        return run(pyrunc_config if config is None else config, input=input, timeout=timeout)

    return run_config


def _errno_name(value: int) -> str:
    return errnos.errorcode.get(value, str(value)) if value else "success"


@pytest.fixture
def assert_denied(pyrunc_config) -> Callable:
    """assert_denied(syscall, errno, *args, config=None): the syscall fails with `errno`."""
    from pyrunc.harness.probe import probe

    def check(syscall, expected_errno: int, *args, config=None):
        _need_root()
        result = probe(pyrunc_config if config is None else config, syscall, *args)
        assert result.errno == expected_errno, (
            f"{syscall}{args!r}: expected {_errno_name(expected_errno)}, got "
            f"{_errno_name(result.errno)} (ret {result.ret})")
        return result

    return check


@pytest.fixture
def assert_allowed(pyrunc_config) -> Callable:
    """assert_allowed(syscall, *args, config=None, errno_ok=()): the syscall succeeds
    (or fails with one of `errno_ok`, for calls whose arguments the kernel refuses)."""
    from pyrunc.harness.probe import probe

    def check(syscall, *args, config=None, errno_ok: tuple[int, ...] = ()):
        _need_root()
        result = probe(pyrunc_config if config is None else config, syscall, *args)
        assert result.errno == 0 or result.errno in errno_ok, (
            f"{syscall}{args!r}: expected success, got {_errno_name(result.errno)}")
        return result

    return check


@pytest.fixture
def assert_cap(pyrunc_config) -> Callable:
    """assert_cap(name, present=True, sets=("effective",), config=None)."""
    from pyrunc.harness.probe import capabilities

    def check(name: str, present: bool = True, sets=("effective",), config=None):
        _need_root()
        name = name if name.startswith("CAP_") else f"CAP_{name.upper()}"
        found = capabilities(pyrunc_config if config is None else config)
        for kind in sets:
            has = name in found[kind]
            assert has == present, (f"{name} {'missing from' if present else 'present in'} the {kind} set "
                                    f"({', '.join(sorted(found[kind])) or 'empty'})")
        return found

    return check


@pytest.fixture
def pyrunc_record(pyrunc_config) -> Callable:
    from pyrunc.harness.record import record

    def run_record(config=None, **kwargs):
        _need_root()
        return record(pyrunc_config if config is None else config, **kwargs)

    return run_record


@pytest.fixture
def pyrunc_check(pyrunc_config) -> Callable:
    from pyrunc.harness.check import check

    def run_check(profile, config=None, **kwargs):
        _need_root()
        return check(pyrunc_config if config is None else config, profile, **kwargs)

    return run_check
