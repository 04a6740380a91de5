"""linux.netDevices in the model: names as the kernel accepts them, one final name per
device, a network namespace required, and pyroute2 never imported to validate."""
import os
import subprocess
import sys

import pytest

import pyrunc.spec as spec_api
from pyrunc.errors import ConfigError
from pyrunc.netdev import valid_name
from pyrunc.spec.default import default_spec


@pytest.mark.parametrize("name, valid", [
    ("eth0", True), ("a", True), ("a" * 15, True), ("ctr%d", True),
    ("", False), ("a" * 16, False), (".", False), ("..", False), ("dev/null", False),
    ("valid:name", False), ("valid name", False), ("tab\tname", False),
])
def test_valid_name_is_the_kernels(name, valid):
    """dev_valid_name: at most IFNAMSIZ-1 bytes (runc's devValidName lets 16 through, the
    kernel refuses them), not . or .., no /, : or white space."""
    assert valid_name(name) is valid


def _parse(tmp_path, devices, namespaces=None):
    (tmp_path / "rootfs").mkdir(exist_ok=True)
    config = default_spec()
    config["linux"]["netDevices"] = devices
    if namespaces is not None:
        config["linux"]["namespaces"] = namespaces
    return spec_api.parse(config, str(tmp_path))


def test_parsed(tmp_path):
    spec = _parse(tmp_path, {"eth0": {"name": "c0"}, "eth1": {}, "eth2": {"name": ""}})
    assert spec.linux.net_devices == {"eth0": "c0", "eth1": "", "eth2": ""}


def test_joined_network_namespace_is_enough(tmp_path):
    spec = _parse(tmp_path, {"eth0": {}}, [{"type": "mount"}, {"type": "uts"}, {"type": "network", "path": "/proc/1/ns/net"}])
    assert spec.linux.net_devices == {"eth0": ""}


@pytest.mark.parametrize("devices, namespaces, expected", [
    ({"eth0": {}}, [{"type": "mount"}, {"type": "uts"}],
     "linux.netDevices: unable to move network devices without a network namespace"),
    ({"eth0": {"name": "a/b"}}, None, 'linux.netDevices.eth0: invalid network device name "a/b"'),
    ({"bad name": {}}, None, 'linux.netDevices.bad name: invalid network device name "bad name"'),
    ({"eth0": {"name": "a" * 16}}, None, f'linux.netDevices.eth0: invalid network device name "{"a" * 16}"'),
    ({"eth0": {}, "eth1": {"name": "eth0"}}, None,
     'linux.netDevices.eth1: "eth0" and "eth1" are both named "eth0" in the container'),
    ({"eth0": {"name": 5}}, None, "linux.netDevices.eth0.name: expected a string, got a number"),
    ({"eth0": "c0"}, None, "linux.netDevices.eth0: expected an object, got a string"),
    (["eth0"], None, "linux.netDevices: expected an object, got an array"),
])
def test_refused_naming_the_field(tmp_path, devices, namespaces, expected):
    with pytest.raises(ConfigError) as info:
        _parse(tmp_path, devices, namespaces)
    assert str(info.value) == f"config.json: {expected}"


def test_pyroute2_is_not_imported_on_the_create_path():
    """Validation and the create path's modules never import pyroute2: only
    netdev.move_in does, for a config that has netDevices."""
    code = ("import sys, tempfile, os\n"
            "import pyrunc.operations, pyrunc.launch, pyrunc.planner, pyrunc.netdev, pyrunc.spec\n"
            "from pyrunc.spec.default import default_spec\n"
            "d = tempfile.mkdtemp(); os.mkdir(d + '/rootfs')\n"
            "c = default_spec(); c['linux']['netDevices'] = {'eth0': {'name': 'c0'}}\n"
            "pyrunc.spec.parse(c, d)\n"
            "print('pyroute2' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert result.stdout.strip() == "False", result.stderr
