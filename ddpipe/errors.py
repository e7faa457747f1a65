"""Exceptions that the CLI turns into one clear line and an exit code.

`UserError` (exit 2) is for bad input the user can fix: a missing path, a bad
config key, a malformed sky model. `PipelineError` (exit 1) is for a runtime
failure such as a DP3 crash. Messages name the culprit and what to do.
"""

from __future__ import annotations


class DdpipeError(Exception):
    """Base class of ddpipe's own errors; `exit_code` is what the CLI returns."""

    exit_code = 1


class UserError(DdpipeError):
    """Bad input: path, Measurement Set, config, sky model, H5parm, CLI argument."""

    exit_code = 2


class PipelineError(DdpipeError):
    """A runtime failure (a DP3 run failed, a worker died too often...)."""

    exit_code = 1
