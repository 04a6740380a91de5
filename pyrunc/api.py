"""pyrunc's public Python API (see pyrunc.harness.api and docs/harness.md)."""
from pyrunc.harness.api import (Config, Container, HarnessError, HarnessTimeout, PROBE_BINARY,  # noqa: F401
                                PROBE_IN_CONTAINER, Result, load_profile, run)
from pyrunc.harness.check import CheckResult, Expectation, check  # noqa: F401
from pyrunc.harness.diff import diff_profiles  # noqa: F401
from pyrunc.harness.probe import ProbeResult, probe  # noqa: F401
from pyrunc.harness.record import Recording, record  # noqa: F401

__all__ = ["Config", "Container", "Result", "HarnessError", "HarnessTimeout", "PROBE_BINARY",
           "PROBE_IN_CONTAINER", "load_profile", "run", "record", "Recording", "check", "CheckResult", "Expectation",
           "diff_profiles", "probe", "ProbeResult"]
