"""Fixtures for the imaging tests: small simulated Measurement Sets made once per session.

``ddpipe.simulate`` predicts with its own DFT, independently of the imaging code,
so images of these MSs can be checked against the sky that went in.
"""

from __future__ import annotations

import dataclasses

import pytest
from imaging_helpers import CENTRE, SMALL, WIDE, point_skymodel, spectral_point_skymodel


@pytest.fixture(scope="session")
def sim_points(tmp_path_factory: pytest.TempPathFactory):
    """An uncorrupted MS of four point sources (fluxes in POINTS), low noise; the SimulationResult."""
    from ddpipe.simulate import SimulationSpec, simulate

    root = tmp_path_factory.mktemp("sim_points")
    sky = point_skymodel(root / "input.skymodel")
    spec = SimulationSpec(**SMALL, ra=CENTRE[0], dec=CENTRE[1], skymodel=str(sky), noise=0.02, corrupt=False, seed=7)
    return simulate(root / "points.ms", spec)


@pytest.fixture(scope="session")
def sim_dd(tmp_path_factory: pytest.TempPathFactory):
    """The same random sky and noise twice: DD-corrupted (with its true-gains H5parm) and uncorrupted."""
    from ddpipe.simulate import SimulationSpec, simulate

    root = tmp_path_factory.mktemp("sim_dd")
    spec = SimulationSpec(**SMALL, seed=3, noise=0.2, phase_scale=1.0, amplitude_scale=0.1)
    corrupted = simulate(root / "dd.ms", spec)
    clean = simulate(root / "clean.ms", dataclasses.replace(spec, corrupt=False))
    return corrupted, clean


@pytest.fixture(scope="session")
def sim_wide(tmp_path_factory: pytest.TempPathFactory):
    """POINTS with spectral indices over a 40 MHz band (16 channels), uncorrupted, low noise."""
    from ddpipe.simulate import SimulationSpec, simulate

    root = tmp_path_factory.mktemp("sim_wide")
    sky = spectral_point_skymodel(root / "input.skymodel")
    spec = SimulationSpec(**WIDE, ra=CENTRE[0], dec=CENTRE[1], skymodel=str(sky), noise=0.02, corrupt=False, seed=11)
    return simulate(root / "wide.ms", spec)
