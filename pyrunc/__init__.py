"""pyrunc: a runc-compatible OCI container runtime in Python with a small C core.

Deliberately import-free: engines call `pyrunc state`/`create` many times per second,
so every module is imported lazily by the subcommand that needs it.
"""

__version__ = "0.1.0"
# The OCI runtime-spec version this build implements (printed by --version and state).
OCI_VERSION = "1.3.0"  # every runtime-spec 1.3 field is handled: docs/spec-coverage.md
