"""Fixtures for the MS tests: real MSs with time steps removed (gaps in the slot grid); a small
simulated sub-band set."""

from __future__ import annotations

import shutil
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


#: a small 4 x 4-channel sub-band set (5 MHz channels from 130 MHz): built once, copied per test
SUBBAND_SPEC = dict(
    stations=5,
    channels=4,
    subbands=4,
    freq_start=130e6,
    chan_width=5e6,
    times=4,
    directions=2,
    sources_per_direction=1,
    seed=2,
)


@pytest.fixture(scope="session")
def subband_spec():
    """The :class:`~ddpipe.simulate.SimulationSpec` of :func:`subband_set`."""
    from ddpipe.simulate import SimulationSpec

    return SimulationSpec(**SUBBAND_SPEC)


@pytest.fixture(scope="session")
def _subband_originals(tmp_path_factory: pytest.TempPathFactory, subband_spec) -> Path:
    from ddpipe.simulate import simulate

    folder = tmp_path_factory.mktemp("subbands")
    simulate(folder / "obs.ms", subband_spec)
    return folder


@pytest.fixture
def subband_set(_subband_originals: Path, tmp_path: Path) -> Path:
    """A fresh copy of the 4-sub-band set in ``tmp_path/obs``: ``obs_SB000.ms`` … and ``obs.skymodel``."""
    dst = tmp_path / "obs"
    shutil.copytree(_subband_originals, dst)
    return dst
