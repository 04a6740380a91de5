"""The in-process operations API (what `run` in the foreground, the harness and other
Python callers use) must leave the caller as it found it: no zombie children, no fds."""
from __future__ import annotations

import os
import time
import uuid

from rel_support import fd_count, zombie_children


def test_api_lifecycle_leaves_no_zombie_or_fd(state_root, bundle):
    from pyrunc import operations
    g = operations.Globals(root=str(state_root))
    b = bundle(args=["sleep", "60"])
    zombies_before, fds_before = zombie_children(), fd_count()
    cid = f"api{uuid.uuid4().hex[:8]}"
    operations.create(g, cid, str(b))
    pid = operations.state(g, cid)["pid"]
    operations.start(g, cid)
    operations.delete(g, cid, force=True)
    deadline = time.monotonic() + 2
    while pid in zombie_children() and time.monotonic() < deadline:
        time.sleep(0.02)
    leftover = sorted(set(zombie_children()) - set(zombies_before))
    try:
        assert fd_count() == fds_before
        assert leftover == [], (f"the container's init (pid {pid}) is a child of the caller and stays "
                                f"a zombie after delete: {leftover}")
    finally:
        for z in leftover:  # reap so the rest of the session is not affected
            try:
                os.waitpid(z, os.WNOHANG)
            except ChildProcessError:
                pass
