"""One handler per command: the flag values and arguments parsed from the flags table
become one `pyrunc.operations` call, whose result is written as runc writes it (JSON
layouts, tables, exit codes). No Linux logic here."""
from __future__ import annotations

import os
import sys

from pyrunc.cli import describe_error, fail, strerror, write_all, write_stdout
from pyrunc.log import go_json


def _do_create(g, opts: dict, args: list[str]) -> int:
    from pyrunc import operations
    operations.create(g, args[0], _bundle_dir(opts["bundle"]),
                      pid_file=_abs_or_empty(opts["pid_file"]),
                      console_socket=opts["console_socket"], pidfd_socket=opts["pidfd_socket"],
                      no_pivot=opts["no_pivot"], no_new_keyring=opts["no_new_keyring"],
                      preserve_fds=opts["preserve_fds"])
    return 0


def _do_run(g, opts: dict, args: list[str]) -> int:
    from pyrunc import operations
    # --no-subreaper is accepted and ignored: the foreground pyrunc reaps its own init.
    return operations.run(g, args[0], _bundle_dir(opts["bundle"]),
                          pid_file=_abs_or_empty(opts["pid_file"]),
                          console_socket=opts["console_socket"], pidfd_socket=opts["pidfd_socket"],
                          no_pivot=opts["no_pivot"], no_new_keyring=opts["no_new_keyring"],
                          preserve_fds=opts["preserve_fds"], detach=opts["detach"],
                          keep=opts["keep"])


# runc exec ends every failure after its arguments are read with "exec failed: ..." and
# this exit code (fatalWithCode), so that callers can tell it from the process's own codes.
EXEC_FAILED = 255


def _do_exec(g, opts: dict, args: list[str]) -> int:
    from pyrunc import operations
    from pyrunc.errors import PyruncError
    try:
        # a flag's value, read before runc's exec starts (its IntSlice flag): exit 1
        gids = tuple(int(x) for x in opts["additional_gids"])
    except ValueError:
        raise PyruncError("invalid additional-gids: must be numbers") from None
    try:
        return operations.exec_process(
            g, args[0], process_file=_abs_or_empty(opts["process"]), args=tuple(args[1:]),
            cwd=opts["cwd"], env=opts["env"], user=opts["user"], additional_gids=gids,
            caps=opts["cap"], no_new_privs=opts["no_new_privs"], tty=opts["tty"],
            detach=opts["detach"], pid_file=_abs_or_empty(opts["pid_file"]),
            console_socket=opts["console_socket"], pidfd_socket=opts["pidfd_socket"],
            preserve_fds=opts["preserve_fds"],
            ignore_paused=opts["ignore_paused"], cgroup=opts["cgroup"],
            apparmor=opts["apparmor"], process_label=opts["process_label"])
    except Exception as err:  # noqa: BLE001 - every failure must become one log line
        fail(f"exec failed: {describe_error(err)}", g.debug, err)
        return EXEC_FAILED


def _do_pause(g, opts: dict, args: list[str]) -> int:
    from pyrunc import operations
    operations.pause(g, args[0])
    return 0


def _do_resume(g, opts: dict, args: list[str]) -> int:
    from pyrunc import operations
    operations.resume(g, args[0])
    return 0


def _do_ps(g, opts: dict, args: list[str]) -> int:
    """runc ps: JSON is the pid list; the table is ps(1) output (default `-ef`, or the
    given ps options) limited to the container's processes."""
    from pyrunc import operations
    from pyrunc.errors import PyruncError
    pids = operations.ps_pids(g, args[0])
    fmt = opts["format"]
    if fmt == "json":
        # json.Encoder.Encode of a nil slice (no process): "null"
        write_stdout((go_json(pids) if pids else "null") + "\n")
        return 0
    if fmt != "table":
        raise PyruncError("invalid format option")
    import subprocess
    ps_args = args[1:] or ["-ef"]
    try:
        out = subprocess.run(["ps", *ps_args], capture_output=True, text=True, check=True,
                             env={"PATH": os.environ.get("PATH") or "/usr/bin:/bin"}).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        raise PyruncError(f"ps: {err}") from None
    lines = out.splitlines()
    if not lines:
        return 0
    header = lines[0].split()
    if "PID" not in header:
        raise PyruncError("couldn't find PID field in ps output")
    column = header.index("PID")
    wanted = set(pids)
    rows = [lines[0]] + [line for line in lines[1:]
                         if len(line.split()) > column and line.split()[column].isdigit()
                         and int(line.split()[column]) in wanted]
    write_stdout("\n".join(rows) + "\n")
    return 0


def _do_features(g, opts: dict, args: list[str]) -> int:
    from pyrunc.features import features
    write_stdout(go_json(features(), "    ") + "\n")
    return 0


def _do_start(g, opts: dict, args: list[str]) -> int:
    from pyrunc import operations
    operations.start(g, args[0])
    return 0


def _do_state(g, opts: dict, args: list[str]) -> int:
    from pyrunc import operations
    state = operations.state(g, args[0])
    # json.MarshalIndent output, no trailing newline (runc writes the bytes as they are).
    write_stdout(go_json(_runc_state_order(state), "  "))
    return 0


def _do_kill(g, opts: dict, args: list[str]) -> int:
    from pyrunc import operations
    from pyrunc.signals import SignalError, parse_signal
    container_id = args[0]
    raw = args[1] if len(args) > 1 else ""
    try:
        sig = parse_signal(raw or "SIGTERM")
    except SignalError:
        # runc looks the container up before parsing the signal: a missing container
        # reports "container does not exist" whatever the signal says.
        operations.state(g, container_id)
        raise
    operations.kill(g, container_id, sig, all_processes=opts["all"])
    return 0


def _do_delete(g, opts: dict, args: list[str]) -> int:
    from pyrunc import operations
    operations.delete(g, args[0], force=opts["force"])
    return 0


def _do_list(g, opts: dict, args: list[str]) -> int:
    from pyrunc import operations
    containers = operations.list_containers(g)
    if opts["quiet"]:
        write_stdout("".join(f"{c['id']}\n" for c in containers))
        return 0
    fmt = opts["format"]
    if fmt == "table":
        rows = [["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]]
        rows += [[str(c.get("id", "")), str(c.get("pid", 0)), str(c.get("status", "")),
                  str(c.get("bundle", "")), str(c.get("created", "")),
                  str(c.get("owner", ""))] for c in containers]
        from pyrunc.gocompat import tabwriter
        write_stdout(tabwriter(rows, minwidth=12, padding=3))
    elif fmt == "json":
        # json.Encoder.Encode of a nil slice: "null"; always one trailing newline.
        items = [_runc_state_order(c) for c in containers]
        write_stdout((go_json(items) if items else "null") + "\n")
    else:
        from pyrunc.errors import PyruncError
        raise PyruncError("invalid format option")
    return 0


def _do_spec(g, opts: dict, args: list[str]) -> int:
    from pyrunc.errors import PyruncError
    from pyrunc.spec import default_spec
    bundle = opts["bundle"]
    if bundle:
        try:
            os.chdir(bundle)
        except OSError as err:
            raise PyruncError(f"chdir {bundle}: {strerror(err)}") from None
    data = go_json(default_spec(opts["rootless"]), "\t").encode("utf-8", "replace")
    try:
        fd = os.open("config.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    except FileExistsError:
        raise PyruncError("File config.json exists. Remove it first") from None
    except OSError as err:
        raise PyruncError(f"open config.json: {strerror(err)}") from None
    try:
        write_all(fd, data)
    finally:
        os.close(fd)
    return 0


def _do_update(g, opts: dict, args: list[str]) -> int:
    """runc update: -r FILE|- (JSON LinuxResources, other flags ignored) or the flags."""
    from pyrunc import operations
    from pyrunc.errors import PyruncError
    if opts["resources"]:
        import json
        source = opts["resources"]
        try:
            if source == "-":
                text = sys.stdin.read()
            else:
                with open(source) as f:
                    text = f.read()
            resources = json.loads(text)
        except OSError as err:
            raise PyruncError(f"open {source}: {strerror(err)}") from None
        except ValueError as err:
            raise PyruncError(f"--resources: invalid JSON: {err}") from None
        if not isinstance(resources, dict):
            raise PyruncError("--resources: must be a JSON object")
    else:
        resources = update_flags_to_resources(opts)
    operations.update(g, args[0], resources, l3_cache_schema=opts.get("l3_cache_schema") or "",
                      mem_bw_schema=opts.get("mem_bw_schema") or "")
    return 0


def update_flags_to_resources(opts: dict) -> dict:
    """runc update's flags as a LinuxResources object (unset flags stay zero)."""
    from pyrunc.gocompat import go_parse_decimal, ram_in_bytes
    from pyrunc.errors import PyruncError
    memory: dict = {}
    for flag, key in (("memory", "limit"), ("memory_reservation", "reservation"),
                      ("memory_swap", "swap"), ("kernel_memory", "kernel"),
                      ("kernel_memory_tcp", "kernelTCP")):
        text = opts.get(flag) or ""
        if text:
            value = -1 if text == "-1" else ram_in_bytes(text)
            if value is None:
                raise PyruncError(f"invalid value for {flag.replace('_', '-')}: {text}")
            memory[key] = value
    cpu: dict = {}
    for flag, key, signed in (("cpu_period", "period", False), ("cpu_quota", "quota", True),
                              ("cpu_share", "shares", False), ("cpu_rt_period", "realtimePeriod", False),
                              ("cpu_rt_runtime", "realtimeRuntime", True)):
        text = opts.get(flag) or ""
        if text:
            value = go_parse_decimal(text, signed)
            if value is None:
                raise PyruncError(f"invalid value for {flag.replace('_', '-')}: {text}")
            cpu[key] = value
    if opts.get("cpuset_cpus"):
        cpu["cpus"] = opts["cpuset_cpus"]
    if opts.get("cpuset_mems"):
        cpu["mems"] = opts["cpuset_mems"]
    if opts.get("blkio_weight", 0) < 0:
        raise PyruncError(f"invalid value for blkio-weight: {opts['blkio_weight']}")
    return {"memory": memory, "cpu": cpu, "pids": {"limit": opts.get("pids_limit", 0)},
            "blockIO": {"weight": opts.get("blkio_weight", 0)}}




def _do_events(g, opts: dict, args: list[str]) -> int:
    from pyrunc import operations
    from pyrunc.gocompat import go_duration
    interval = go_duration(opts["interval"] or "5s")
    if interval is None:
        from pyrunc.errors import PyruncError
        raise PyruncError(f'invalid value "{opts["interval"]}" for flag -interval: parse error')
    try:
        for event in operations.events(g, args[0], stats=opts["stats"], interval=interval):
            write_stdout(go_json(event) + "\n")
    except BrokenPipeError:
        return 0
    return 0


def _do_checkpoint(g, opts: dict, args: list[str]) -> int:
    from pyrunc import checkpoint
    checkpoint.checkpoint(g, args[0], opts)
    return 0


def _do_restore(g, opts: dict, args: list[str]) -> int:
    from pyrunc import checkpoint
    # --no-subreaper is accepted and ignored, as for run
    return checkpoint.restore(g, args[0], _bundle_dir(opts["bundle"]), opts,
                              detach=opts["detach"], pid_file=_abs_or_empty(opts["pid_file"]),
                              console_socket=opts["console_socket"], no_pivot=opts["no_pivot"])


def _do_check(g, opts: dict, args: list[str]) -> int:
    from pyrunc.check import check_bundle
    problems = check_bundle(_bundle_dir(opts["bundle"]))
    write_stdout("".join(p + "\n" for p in problems))
    return 1 if problems else 0


def _do_profile(g, opts: dict, args: list[str]) -> int:
    from pyrunc.harness.cli import main
    return main(g, args)


HANDLERS = {"create": _do_create, "run": _do_run, "start": _do_start, "state": _do_state,
             "exec": _do_exec, "pause": _do_pause, "resume": _do_resume, "ps": _do_ps,
             "features": _do_features, "update": _do_update, "events": _do_events,
             "kill": _do_kill, "delete": _do_delete, "list": _do_list, "spec": _do_spec,
             "profile": _do_profile, "check": _do_check, "checkpoint": _do_checkpoint,
             "restore": _do_restore}


def _bundle_dir(bundle: str) -> str:
    # runc chdirs into the bundle and records the working directory: always absolute.
    return os.path.abspath(bundle) if bundle else os.getcwd()


def _abs_or_empty(path: str) -> str:
    # runc resolves --pid-file against the caller's cwd before it chdirs to the bundle.
    return os.path.abspath(path) if path else ""


_STATE_FIELDS = ("ociVersion", "id", "pid", "status", "bundle", "rootfs", "created",
                 "annotations", "owner")


def _runc_state_order(state: dict) -> dict:
    """A state object laid out as runc's Go struct marshals it: its field order
    (annotations before owner), annotations omitted when empty (omitempty) and sorted
    (Go sorts map keys); unknown keys follow."""
    ordered = {key: state[key] for key in _STATE_FIELDS if key in state}
    ordered.update((key, value) for key, value in state.items() if key not in ordered)
    annotations = ordered.get("annotations")
    if not annotations:
        ordered.pop("annotations", None)
    elif isinstance(annotations, dict):
        ordered["annotations"] = dict(sorted(annotations.items()))
    return ordered


