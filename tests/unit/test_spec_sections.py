"""spec.parse is the one validator of config.json: every section, the facility-owned ones
(linux.resources per controller, linux.seccomp, linux.personality) included, is refused
by it with a one-line error naming the JSON path. No root needed: parsing touches nothing
on the host (tests/integration/test_spec_refusal.py shows the same through `create`)."""
import json
import os

import pytest

import pyrunc.spec as spec_api
from pyrunc.errors import ConfigError
from pyrunc.spec.default import default_spec
from spec_sections import BAD_SECTIONS, error_names, set_path


@pytest.fixture
def bundle(tmp_path):
    (tmp_path / "rootfs").mkdir()
    return tmp_path


def config_for(bundle) -> dict:
    config = default_spec()
    config["linux"]["resources"] = {"devices": [{"allow": False, "access": "rwm"}]}
    return config


@pytest.mark.parametrize("name,keys,value,field", BAD_SECTIONS, ids=[b[0] for b in BAD_SECTIONS])
def test_every_section_is_refused_naming_its_field(bundle, name, keys, value, field):
    config = config_for(bundle)
    set_path(config, keys, value)
    with pytest.raises(ConfigError) as info:
        spec_api.parse(config, str(bundle))
    assert error_names(str(info.value), field), str(info.value)


def test_the_template_itself_parses(bundle):
    spec_api.parse(config_for(bundle), str(bundle))


def test_resources_are_typed_and_normalized_by_their_controllers(bundle):
    config = config_for(bundle)
    config["linux"]["resources"]["pids"] = {"limit": 10}
    config["linux"]["resources"]["memory"] = {"limit": 1 << 20, "swappiness": -1}
    spec = spec_api.parse(config, str(bundle))
    r = spec.linux.cgroup_resources
    assert r["pids"] == {"limit": 10}
    assert r["memory"]["limit"] == 1 << 20 and r["memory"]["swappiness"] is None
    assert r["devices"][0] == {"allow": False, "type": "a", "major": -1, "minor": -1, "access": "rwm"}
    # the object as written is kept too (runc's state records it)
    assert spec.linux.resources == config["linux"]["resources"]


def test_seccomp_is_parsed_into_the_profile(bundle):
    from pyrunc.seccomp.profile import ACT_ALLOW, ACT_ERRNO, Profile
    config = config_for(bundle)
    config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}
    spec = spec_api.parse(config, str(bundle))
    profile = spec.linux.seccomp_profile
    assert isinstance(profile, Profile) and profile.default_action == ACT_ALLOW
    assert profile.rules[0].names == ("mkdir",) and profile.rules[0].action == ACT_ERRNO | 13


def test_seccomp_without_default_action_or_syscalls_is_no_filter(bundle):
    # runc loads no filter for such an object; it is not an error
    config = config_for(bundle)
    config["linux"]["seccomp"] = {"architectures": ["SCMP_ARCH_X86_64"]}
    assert spec_api.parse(config, str(bundle)).linux.seccomp_profile is None


def test_personality_is_typed(bundle):
    config = config_for(bundle)
    config["linux"]["personality"] = {"domain": "LINUX32", "flags": []}
    personality = spec_api.parse(config, str(bundle)).linux.personality
    assert (personality.domain, personality.flags) == ("LINUX32", [])


def test_process_as_written_is_kept_for_exec(bundle):
    config = config_for(bundle)
    spec = spec_api.parse(config, str(bundle))
    assert spec.process_json == config["process"]


def test_one_type_vocabulary_across_validators(bundle):
    """The spec parser, a cgroup controller and the seccomp profile word a type error alike."""
    messages = []
    for keys, value in ((["process", "oomScoreAdj"], "1"), (["linux", "resources", "pids"], {"limit": "1"}),
                        (["linux", "seccomp"], {"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": "1"})):
        config = config_for(bundle)
        set_path(config, keys, value)
        with pytest.raises(ConfigError) as info:
            spec_api.parse(config, str(bundle))
        messages.append(str(info.value))
    assert all(m.endswith(": expected an integer, got a string") or
               m.endswith(": expected an unsigned integer, got a string") for m in messages), messages


@pytest.mark.parametrize("keys, value, message", [
    (["process", "rlimits"], [None], "process.rlimits[0].type: required field is missing"),
    (["linux", "resources", "devices"], [None], "linux.resources.devices[0].allow: required field is missing"),
    (["linux", "seccomp"], {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [None]},
     "linux.seccomp.syscalls[0].names: required field is missing"),
    (["linux", "seccomp"], {"defaultAction": "SCMP_ACT_ALLOW",
                            "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [None]}]},
     "linux.seccomp.syscalls[0].args[0].index: required field is missing"),
])
def test_null_is_absent_in_every_validator(bundle, keys, value, message):
    """One implementation of the JSON type checks (pyrunc.spec.jsontype.Reader): a null
    array item is the empty object (Go's zero value) in the spec parser, the cgroup
    controllers and the seccomp profile alike, so its first required field is named."""
    config = config_for(bundle)
    set_path(config, keys, value)
    with pytest.raises(ConfigError) as info:
        spec_api.parse(config, str(bundle))
    assert str(info.value) == f"config.json: {message}"


def test_load_reads_config_once(bundle, monkeypatch):
    """After load returns, nothing reads config.json again: remove it and use the spec."""
    (bundle / "config.json").write_text(json.dumps(config_for(bundle)))
    spec = spec_api.load(str(bundle))
    os.unlink(bundle / "config.json")
    from pyrunc.operations import _exec_defaults
    assert _exec_defaults(spec)["process"]["args"] == spec.process.args
