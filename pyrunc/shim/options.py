"""Runtime options of a task (docs/shim.md, "Runtime options"): what containerd passes in
CreateTaskRequest.options, read as containerd-shim-runc-v2 reads them and applied to
pyrunc's operations in-process.

Three forms arrive:
- `containerd.runc.v1.Options` (runc's shim's own message): from Go clients
  (containerd.WithRuntime(..., &options.Options{...})).
- `containerd.linux.runc.CreateOptions`: what ctr's --no-pivot (containerd.WithNoPivotRoot,
  WithNoNewKeyring) sends a runtime not named io.containerd.runc*; its fields that
  configure a restore (open_tcp, file_locks, ...) have nothing to act on here, since
  this shim refuses checkpoint/restore by name.
- `runtimeoptions.v1.Options`: what containerd's CRI (and `ctr run --runtime-config-path`)
  sends any runtime other than io.containerd.runc.v2. Its config_path names a TOML file
  of runc's options, keyed as in a CRI runc handler's options table (`SystemdCgroup =
  true`, `Root = "..."`); containerd 1.7 and later send the handler's options table itself
  as config_body when there is no ConfigPath.

An option pyrunc cannot honour is refused by name (InvalidArgument), never ignored."""
from __future__ import annotations

import os

RUNC_OPTIONS = "containerd.runc.v1.Options"
RUNTIME_OPTIONS = "runtimeoptions.v1.Options"
CREATE_OPTIONS = "containerd.linux.runc.CreateOptions"
PROCESS_DETAILS = "containerd.runc.v1.ProcessDetails"
# <bundle>/options.json, as runc's shim writes it: the `delete` subcommand finds Root there
OPTIONS_FILE = "options.json"

# the proto field of each TOML key of a CRI runc options table (Go's field names; the
# CRI decodes them case-insensitively, and so does this)
_TOML_KEYS = {
    "nopivotroot": "no_pivot_root", "nonewkeyring": "no_new_keyring", "shimcgroup": "shim_cgroup",
    "iouid": "io_uid", "iogid": "io_gid", "binaryname": "binary_name", "root": "root",
    "criupath": "criu_path", "systemdcgroup": "systemd_cgroup", "criuimagepath": "criu_image_path",
    "criuworkpath": "criu_work_path",
}
# the runtimeoptions.v1.Options keys of a CRI options table that containerd 1.7 also puts
# in config_body: not runc options
_RUNTIME_OPTIONS_KEYS = {"typeurl", "configpath"}


class OptionsError(Exception):
    """A runtime option pyrunc's shim cannot honour: the message names it."""


def from_any(any_value):
    """The RuncOptions message of a CreateTaskRequest.options Any (empty when unset)."""
    from pyrunc.shim import shim_pb2 as pb
    options = pb.RuncOptions()
    if not any_value.type_url and not any_value.value:
        return options
    kind = any_value.type_url.rpartition("/")[2]  # typeurl writes no prefix; Go's anypb would
    try:
        if kind == RUNC_OPTIONS:
            options.ParseFromString(any_value.value)
        elif kind == CREATE_OPTIONS:
            create = pb.CreateOptions.FromString(any_value.value)
            for name in ("no_pivot_root", "no_new_keyring", "shim_cgroup", "io_uid", "io_gid",
                         "criu_work_path", "criu_image_path"):
                setattr(options, name, getattr(create, name))
        elif kind == RUNTIME_OPTIONS:
            runtime = pb.RuntimeOptions.FromString(any_value.value)
            if runtime.type_url and runtime.type_url.rpartition("/")[2] != RUNC_OPTIONS:
                raise OptionsError(f"runtime options: TypeUrl {runtime.type_url!r}: pyrunc's shim reads "
                                   f"runc's options ({RUNC_OPTIONS}) only")
            if runtime.config_path:
                _from_toml_file(runtime.config_path, options)
            elif runtime.config_body:
                _from_toml(runtime.config_body.decode(errors="replace"), "the runtime's options table", options)
        else:
            raise OptionsError(f"runtime options of type {any_value.type_url!r}: pyrunc's shim takes "
                               f"{RUNC_OPTIONS}, {CREATE_OPTIONS} or {RUNTIME_OPTIONS}")
    except ValueError as error:  # protobuf's DecodeError is one
        raise OptionsError(f"runtime options of type {any_value.type_url!r}: {error}") from None
    check(options)
    return options


def _from_toml_file(path: str, options) -> None:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as error:
        raise OptionsError(f"runtime options ConfigPath {path!r}: {error.strerror.lower()}") from None
    _from_toml(text, f"runtime options file {path}", options)


def _from_toml(text: str, where: str, options) -> None:
    import tomllib
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise OptionsError(f"{where}: {error}") from None
    for key, value in table.items():
        if key.lower() in _RUNTIME_OPTIONS_KEYS:
            continue
        field = _TOML_KEYS.get(key.lower())
        if field is None:
            raise OptionsError(f"{where}: unknown option {key!r} (runc's options: NoPivotRoot, NoNewKeyring, "
                               "ShimCgroup, IoUid, IoGid, BinaryName, Root, CriuPath, SystemdCgroup, "
                               "CriuImagePath, CriuWorkPath)")
        expected = type(getattr(options, field))
        if type(value) is not expected or (expected is int and not 0 <= value < 1 << 32):
            raise OptionsError(f"{where}: {key} = {value!r}: expected "
                               f"{ {bool: 'true or false', int: 'a uid or gid', str: 'a string'}[expected] }")
        setattr(options, field, value)


def check(options) -> None:
    """Refuse what pyrunc's shim cannot do, by the option's name."""
    if options.binary_name and os.path.basename(options.binary_name) != "pyrunc":
        raise OptionsError(f"BinaryName {options.binary_name!r}: pyrunc's shim runs pyrunc in-process and "
                           "starts no runtime binary (use io.containerd.runc.v2 to run another one)")
    if options.root and not os.path.isabs(options.root):
        raise OptionsError(f"Root {options.root!r}: not an absolute path")


def state_root(options, namespace: str) -> str:
    """pyrunc's --root for the task: runc's shim's <Root>/<namespace>, Root defaulting to
    /run/containerd/runc."""
    from pyrunc.shim.main import STATE_ROOT
    return os.path.join(options.root or STATE_ROOT, namespace)


def write(bundle: str, options) -> None:
    """<bundle>/options.json as runc's shim writes it (the message's JSON names, defaults
    left out)."""
    from pyrunc.log import go_json
    fields = {field.name: value for field, value in options.ListFields()}
    with open(os.path.join(bundle, OPTIONS_FILE), "w") as f:
        f.write(go_json(fields))


def read_root(bundle: str) -> str:
    """Root from <bundle>/options.json ("" when there is none)."""
    from pyrunc import fastjson
    try:
        with open(os.path.join(bundle, OPTIONS_FILE), "rb") as f:
            return fastjson.loads(f.read()).get("root") or ""
    except (OSError, ValueError, AttributeError):
        return ""
