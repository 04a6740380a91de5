"""Handing a seccomp user-notification fd to the agent at `linux.seccomp.listenerPath`,
as the runtime-spec describes: one SCM_RIGHTS message carrying the fd and the
ContainerProcessState JSON."""
from __future__ import annotations

import os

from pyrunc.errors import PyruncError


def send_to_listener(pidfd: int, remote_fd: int, listener_path: str, metadata: str, state: dict) -> None:
    """Copy fd `remote_fd` out of the process behind `pidfd` and send it to the agent."""
    from pyrunc._native._lib import lib
    fd = lib.pyrunc_pidfd_getfd(pidfd, remote_fd)
    if fd < 0:
        raise PyruncError(f"copy seccomp listener fd: {os.strerror(-fd).lower()}")
    message = {
        "ociVersion": state.get("ociVersion", ""),
        "fds": ["seccompFd"],
        "pid": state.get("pid", 0),
        "metadata": metadata,
        "state": state,
    }
    import json

    from pyrunc import unixsock
    sock = unixsock.socket(unixsock.STREAM)
    try:
        try:
            unixsock.connect(sock, listener_path)
        except OSError as e:
            # runc's words (Go's net.Dial error inside)
            raise PyruncError("failed to connect with seccomp agent specified in the seccomp profile: "
                              f"dial unix {listener_path}: connect: {os.strerror(e.errno).lower()}") from None
        unixsock.send_fd(sock, json.dumps(message, separators=(",", ":")).encode(), fd)
    except OSError as e:
        raise PyruncError(f"send seccomp fd to {listener_path}: {os.strerror(e.errno).lower()}") from None
    finally:
        sock.close()
        os.close(fd)


def listener_of(seccomp: dict | None) -> dict | None:
    """{"path", "metadata"} when the profile names a listener."""
    if seccomp and seccomp.get("listenerPath"):
        return {"path": seccomp["listenerPath"], "metadata": seccomp.get("listenerMetadata", "")}
    return None
