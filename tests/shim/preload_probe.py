"""Run as a script by test_resident.py, in a fresh interpreter started as the resident shim
process is (`python -I -S`, sys.path given): drive pyrunc's Task service in-process through
what containerd asks of it (create, start, exec, pids, stats, pause, resume, update, state,
kill, wait, delete) on the bundle given, and print (JSON) the modules that were imported
lazily on the way, after what the resident process imports before serving, to OUTPUT (the
service points this process's fds 0-2 at /dev/null between spawns, as the resident's are).

    preload_probe.py BUNDLE ROOTFS NAMESPACE WORK_DIR preload|bare|warm OUTPUT

ROOTFS is bind-mounted on BUNDLE/rootfs by the service, as containerd's rootfs mounts are."""
from __future__ import annotations

import json
import os
import sys


def wait(service, request) -> None:
    import threading
    exited = threading.Event()
    service.wait(request).then(lambda _response: exited.set())
    exited.wait(10)


def main() -> None:
    bundle, rootfs, namespace, work_dir, mode, output = sys.argv[1:7]
    from pyrunc.shim import main as _main  # noqa: F401  (the `start` the resident forks from)
    from pyrunc.shim import resident
    from pyrunc.shim import server
    from pyrunc.shim import shim_pb2 as pb
    resident.set_comm(b"preload-probe")  # as the resident does before serving
    if mode == "preload":
        resident.preload()
    before = set(sys.modules)
    service = server.Service(namespace, work_dir)
    service.start_threads()
    container_id = os.path.basename(bundle)
    service.create(pb.CreateTaskRequest(id=container_id, bundle=bundle,
                                        rootfs=[pb.Mount(type="bind", source=rootfs, options=["rbind", "ro"])]),
                   group="probe")
    service.start(pb.StartRequest(id=container_id))
    process = json.dumps({"args": ["sleep", "60"], "cwd": "/", "env": ["PATH=/bin"],
                          "user": {"uid": 0, "gid": 0}}).encode()
    service.exec(pb.ExecProcessRequest(id=container_id, exec_id="probe-exec",
                                       spec={"type_url": "types.containerd.io/opencontainers/runtime-spec/1/Process",
                                             "value": process}))
    service.start(pb.StartRequest(id=container_id, exec_id="probe-exec"))
    service.pids(pb.PidsRequest(id=container_id))
    service.stats(pb.StatsRequest(id=container_id))
    service.pause(pb.PauseRequest(id=container_id))
    service.resume(pb.ResumeRequest(id=container_id))
    service.update(pb.UpdateTaskRequest(id=container_id, resources={"value": b'{"pids": {"limit": 100}}'}))
    service.state(pb.StateRequest(id=container_id))
    service.kill(pb.KillRequest(id=container_id, exec_id="probe-exec", signal=9))
    wait(service, pb.WaitRequest(id=container_id, exec_id="probe-exec"))
    service.delete(pb.DeleteRequest(id=container_id, exec_id="probe-exec"))
    service.kill(pb.KillRequest(id=container_id, signal=9, all=True))
    wait(service, pb.WaitRequest(id=container_id))
    service.delete(pb.DeleteRequest(id=container_id))
    service.connect(pb.ConnectRequest(id=container_id))
    service.remove_work_dir()
    with open(output, "w") as f:
        f.write(json.dumps(sorted(set(sys.modules) - before)))
    os._exit(0)  # the service's threads run on


if __name__ == "__main__":
    main()
