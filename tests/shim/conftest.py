"""containerd with pyrunc's own shim (runtime io.containerd.pyrunc.v2): fixtures in
shim_support.py (a unique module name, as tests/engines does)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "engines"))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "cri"))

from engine_support import (  # noqa: E402,F401  (fixtures are found by name)
    engine_cgroup_parent,
    engine_docker_archive,
    engine_name,
    engine_rootfs_tar,
    private_run_dirs,
)
from shim_support import ctr, shim_containerd  # noqa: E402,F401
