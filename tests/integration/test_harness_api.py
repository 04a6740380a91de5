"""pyrunc.api against the real kernel: output capture, stdin, exec, state, kill, and that a
Container never leaves anything behind — also when the test body raises or times out."""
from __future__ import annotations

import os
import signal

import pytest

from pyrunc.api import Config, Container, HarnessError, HarnessTimeout, run

pytestmark = pytest.mark.integration


def gone(container: Container) -> bool:
    return not os.path.exists(container.root) and (
        container._written_bundle is None or not os.path.exists(container._written_bundle))


def test_run_captures_stdout_stderr_exit_code_and_stdin(pyrunc_config):
    config = pyrunc_config.args("sh", "-c", "read line; echo out:$line; echo err >&2; exit 3")
    result = run(config, input="hello\n")
    assert (result.exit_code, result.stdout, result.stderr) == (3, "out:hello\n", "err\n")


def test_config_helpers_reach_the_process(pyrunc_config):
    config = (pyrunc_config.args("sh", "-c", 'echo "$(id -u):$(id -g) $GREETING $(pwd) $(hostname)"; '
                                 "grep CapEff /proc/self/status")
              .user(1000, 1000).env(GREETING="hi").cwd("/tmp").hostname("box").caps("CAP_KILL"))
    result = run(config)
    assert result.exit_code == 0, result.stderr
    first, second = result.stdout.splitlines()
    assert first == "1000:1000 hi /tmp box"
    assert second.split() == ["CapEff:", f"{1 << 5:016x}"]  # CAP_KILL is bit 5


def test_masked_and_readonly_path_helpers(pyrunc_config):
    config = (pyrunc_config.args("sh", "-c", "cat /etc/passwd | wc -c; touch /tmp/x; echo $?")
              .masked_paths("/etc/passwd").readonly_paths("/tmp").tmpfs("/tmp"))
    result = run(config)
    lines = result.stdout.splitlines()
    assert lines[0] == "0"  # masked: /dev/null bound over it
    assert lines[1] == "1" and "Read-only file system" in result.stderr


def test_create_start_exec_state_kill(pyrunc_container, pyrunc_config):
    container = pyrunc_container(pyrunc_config.args("sh", "-c", "echo started; exec sleep 100"))
    container.create()
    assert container.status() == "created"
    state = container.state()
    assert state["id"] == container.id and state["pid"] > 0
    container.start()
    assert container.status() == "running"
    result = container.exec("sh", "-c", "echo $FOO; id -u; cat >/dev/null; exit 4",
                            env={"FOO": "bar"}, user="1000", input="ignored")
    assert (result.exit_code, result.stdout) == (4, "bar\n1000\n")
    container.kill(signal.SIGKILL)
    assert container.wait(timeout=10).stdout == "started\n"
    assert container.status() == "stopped"
    container.delete()
    assert container.status() == "deleted"


def test_runtime_errors_raise_with_the_runtime_message(pyrunc_config):
    with pytest.raises(HarnessError, match=r'exec: "no-such-program": executable file not found in \$PATH'):
        run(pyrunc_config.args("no-such-program"))


def test_nothing_is_left_when_the_body_raises(pyrunc_config, assert_no_residue):
    config = pyrunc_config.args("sleep", "100")
    with pytest.raises(RuntimeError, match="boom"):
        with Container(config) as container:
            container.create().start()
            pid = container.state()["pid"]
            assert container.status() == "running"
            raise RuntimeError("boom")
    assert gone(container)
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"
    assert_no_residue(container.root, [container.id], grace=5)


def test_nothing_is_left_after_a_timeout(pyrunc_config, assert_no_residue):
    container = Container(pyrunc_config.args("sleep", "100"))
    with pytest.raises(HarnessTimeout, match="did not finish within 1"):
        with container:
            container.run(timeout=1)
    assert gone(container)
    assert_no_residue(container.root, [container.id], grace=5)


def test_from_bundle_and_a_given_root(tmp_path, pyrunc_rootfs, assert_no_residue):
    bundle = Config.busybox(pyrunc_rootfs, ["echo", "from the bundle"]).write_bundle(tmp_path / "b")
    root = tmp_path / "root"
    with Container(bundle, "given-id", root=root) as container:
        assert container.run().stdout == "from the bundle\n"
    assert root.is_dir()  # the caller's root stays, empty of containers
    assert [e for e in os.listdir(root) if not e.startswith(".")] == []
    assert (bundle / "config.json").exists()  # a caller's bundle is never removed
    assert_no_residue(root, ["given-id"], grace=5)
