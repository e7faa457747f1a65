"""Fixtures for the MS tests: real MSs with time steps removed (gaps in the slot grid)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import casacore.tables as pt
import numpy as np
import pytest


@pytest.fixture
def gapped_ms(real_ms_readonly: dict[str, Path], tmp_path: Path) -> Callable[[str, int, int], Path]:
    """``gapped_ms("tOSKAR", first, n)`` → a copy without the rows of time steps first .. first+n-1."""

    def make(key: str, first: int, n: int) -> Path:
        dst = tmp_path / f"{key}-gap{first}+{n}.MS"
        with pt.table(str(real_ms_readonly[key]), ack=False) as t:
            time = t.getcol("TIME")
            steps = np.unique(time)
            drop = (time > steps[first] - 1e-3) & (time < steps[first + n - 1] + 1e-3)
            t.selectrows(np.nonzero(~drop)[0]).copy(str(dst), deep=True).close()
        return dst

    return make
