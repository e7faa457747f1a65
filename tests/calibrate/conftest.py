"""A small simulated DD-corrupted MS (made once per session) and local Dask clusters."""

from __future__ import annotations

import dataclasses

import pytest
from calibrate_helpers import make_cluster

from ddpipe.config import load_config


@pytest.fixture(scope="session")
def small_sim(tmp_path_factory):
    """14 stations, 4 channels, 48 slots of 10 s, 3 directions (read-only: copy to write)."""
    from ddpipe.simulate.run import simulate
    from ddpipe.simulate.spec import SimulationSpec

    d = tmp_path_factory.mktemp("cal_sim")
    res = simulate(d / "sim.ms", SimulationSpec(stations=14, channels=4, times=48, directions=3, seed=7))
    return res


@pytest.fixture
def cfg():
    """The default config with 4 chunks of 6 solints (solint 2) and a short DP3 timeout."""
    base = load_config()
    return dataclasses.replace(
        base,
        chunking=dataclasses.replace(base.chunking, duration=0.0, n_chunks=4),
        calibration=dataclasses.replace(base.calibration, solint=2, nchan=0),
        dp3=dataclasses.replace(base.dp3, timeout=120.0),
    )


@pytest.fixture(scope="module")
def cluster2(tmp_path_factory):
    """A module-wide local cluster: 2 workers x 1 thread, one subprocess slot each."""
    h = make_cluster(tmp_path_factory.mktemp("dask"))
    yield h
    h.close()


@pytest.fixture(scope="session")
def amp_sim(tmp_path_factory):
    """As small_sim, with 8 channels and slow amplitude errors of 20% RMS (read-only: copy to write)."""
    from ddpipe.simulate.run import simulate
    from ddpipe.simulate.spec import SimulationSpec

    d = tmp_path_factory.mktemp("cal_amp_sim")
    return simulate(
        d / "sim.ms", SimulationSpec(stations=14, channels=8, times=48, directions=3, seed=7, amplitude_scale=0.2)
    )
