"""Shared by the H5parm tests: DP3 applycal of an H5parm's soltabs, read back."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import casacore.tables as pt
import numpy as np


def dp3_applycal(dp3: Callable, ms: Path, h5: Path, tables: Sequence[str], direction: str) -> np.ndarray:
    """Run DP3 applycal of ``tables`` (in that order) from ``h5`` for ``direction`` on ``ms``'s DATA
    into CORR_DP3 (with the ``dp3`` fixture) and return CORR_DP3, (row, chan, corr)."""
    steps = {f"ac.s{k}.correction": name for k, name in enumerate(tables)}
    dp3(
        {
            "msin": str(ms),
            "msout": ".",
            "msout.datacolumn": "CORR_DP3",
            "steps": "[ac]",
            "ac.type": "applycal",
            "ac.parmdb": str(h5),
            "ac.steps": "[" + ",".join(f"s{k}" for k in range(len(tables))) + "]",
            **steps,
            "ac.direction": f"[{direction}]",
        },
        "applycal",
    )
    with pt.table(str(ms), ack=False) as t:
        return t.getcol("CORR_DP3")
