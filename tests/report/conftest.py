"""Fixtures of the report tests: Chromium (skipped without it, failing under CI where the test
command installs it), a small real run of the pipeline, and small real FITS images."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from reportkit import run_config

IN_CI = bool(os.environ.get("CI"))

#: the small simulated observation of the report tests: 12 stations, 4 channels, 48 slots, 3 directions
SIMULATION = dict(stations=12, channels=4, times=48, directions=3, seed=7, overwrite=True)


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of Chromium; skip without it, but fail under CI where it must be installed (as ``wsclean``)."""
    exe = shutil.which("chromium")
    if exe is None:
        msg = "chromium not on PATH (make test installs it: scripts/system-deps.sh)"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    return exe


@pytest.fixture(scope="session")
def observation(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A small simulated observation (``ddpipe simulate``): the MS, its true sky and true gains,
    and a shallow starting sky model (the brightest source per direction)."""
    from ddpipe.commands.demo import shallow_skymodel
    from ddpipe.simulate.run import simulate
    from ddpipe.simulate.spec import SimulationSpec

    d = tmp_path_factory.mktemp("report_obs")
    sim = simulate(d / "obs.ms", SimulationSpec(**SIMULATION))
    start = shallow_skymodel(sim.skymodel, d / "start.skymodel")
    return {"ms": Path(sim.ms), "sky": Path(sim.skymodel), "truth": Path(sim.truth), "start": start}


@pytest.fixture(scope="session")
def pipeline_run(observation: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The workdir of a real 2-cycle run (real DP3 on a local Dask cluster) of ``observation``."""
    from ddpipe.cli import main

    workdir = tmp_path_factory.mktemp("report_run") / "work"
    assert main(["run", str(run_config(observation, workdir))]) == 0
    return workdir
