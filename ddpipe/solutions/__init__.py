"""H5parm solutions: read/write as DP3 does, merge chunks, evaluate as gains."""

from __future__ import annotations

from ddpipe.solutions.h5parm import (
    SolTab,
    Solutions,
    direction_name,
    evaluate_gains,
    merge_along_freq,
    merge_along_time,
    read_h5parm,
    write_h5parm,
)

__all__ = [
    "SolTab",
    "Solutions",
    "direction_name",
    "evaluate_gains",
    "merge_along_freq",
    "merge_along_time",
    "read_h5parm",
    "write_h5parm",
]
