"""The hardening-profile harness: a Python API for containers (pyrunc.api), a pytest
plugin, and seccomp profile record/check/diff (`pyrunc profile ...`). Import-free, like
the rest of pyrunc: import the submodule you need."""
