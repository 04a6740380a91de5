"""Engine fixtures: real containerd, dockerd and podman, private to this pytest process.
They live in engine_support.py (a unique module name: a second module named `conftest`
would shadow tests/conftest.py for `from conftest import ...`)."""
from engine_support import (  # noqa: F401  (fixtures are found by name)
    containerd_engine,
    docker_engine,
    engine_cgroup_parent,
    engine_docker_archive,
    engine_name,
    engine_rootfs_tar,
    podman_engine,
    private_run_dirs,
    runtime,
)
