"""DP3: pure parset builders (:mod:`.parsets`) and the one runner (:mod:`.runner`)."""

from __future__ import annotations

from ddpipe.dp3.parsets import (
    MODE_SOLTABS,
    MsView,
    applycal_parset,
    ddecal_parset,
    dp3_argv,
    format_parset,
    h5parmpredict_parset,
    predict_parset,
)
from ddpipe.dp3.runner import DP3Error, DP3Run, dp3_environment, find_dp3, run_dp3, worker_threads

__all__ = [
    "MODE_SOLTABS",
    "DP3Error",
    "DP3Run",
    "MsView",
    "applycal_parset",
    "ddecal_parset",
    "dp3_argv",
    "dp3_environment",
    "find_dp3",
    "format_parset",
    "h5parmpredict_parset",
    "predict_parset",
    "run_dp3",
    "worker_threads",
]
