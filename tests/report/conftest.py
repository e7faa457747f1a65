"""Fixtures of the report tests: Chromium (skipped without it, failing under CI where the test
command installs it), a small real run of the pipeline, and small real FITS images."""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

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


def run_config(obs: dict[str, Path], workdir: Path, **over) -> Path:
    """A 2-cycle pipeline config on ``obs`` with the truth given: 4 chunks on 2 workers, 256 px images."""
    cfg = {
        "inputs": {
            "ms": [str(obs["ms"])],
            "skymodel": str(obs["start"]),
            "true_gains": str(obs["truth"]),
            "true_skymodel": str(obs["sky"]),
        },
        "workdir": str(workdir),
        "cluster": {"n_workers": 2, "threads_per_worker": 1},
        "chunking": {"duration": 0, "n_chunks": 4},
        "calibration": {"mode": "scalarphase", "solint": 2, "n_directions": 3},
        "imaging": {"size": [256, 256], "scale": 20.0, "niter": 200},
        "cycles": [{}, {}],
    }
    cfg.update(over)
    path = workdir.parent / f"{workdir.name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="session")
def pipeline_run(observation: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The workdir of a real 2-cycle run (real DP3 on a local Dask cluster) of ``observation``."""
    from ddpipe.cli import main

    workdir = tmp_path_factory.mktemp("report_run") / "work"
    assert main(["run", str(run_config(observation, workdir))]) == 0
    return workdir


def write_sky_fits(path: Path, sources: list[tuple[float, float, float]], noise: float = 0.01, seed: int = 1) -> Path:
    """A 128² restored image written as ``ddpipe image`` writes it (SIN projection, beam in the header):
    Gaussian sources ``(dx_pixels, dy_pixels, peak_jy)`` about the centre plus Gaussian noise."""
    from ddpipe.imaging.beam import Beam
    from ddpipe.imaging.fitsio import ImageGeometry, write_image

    n, cell = 128, math.radians(20 / 3600)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:n, 0:n]
    data = rng.normal(0, noise, (n, n))
    for dx, dy, peak in sources:
        data += peak * np.exp(-0.5 * ((xx - n // 2 - dx) ** 2 + (yy - n // 2 - dy) ** 2) / 1.5**2)
    geom = ImageGeometry((n, n), cell, (math.radians(110.0), math.radians(50.0)), 150e6, 1e6)
    return write_image(path, data, geom, beam=Beam(60 / 3600, 40 / 3600, 30.0))
