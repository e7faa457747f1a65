"""Simulate direction-dependently corrupted Measurement Sets (``ddpipe simulate``).

Entry point: :func:`simulate` with a :class:`SimulationSpec`; see
:mod:`ddpipe.simulate.run`. The model visibilities come from ddpipe's own DFT
(:mod:`ddpipe.simulate.predict`), not from DP3.
"""

from __future__ import annotations

from ddpipe.simulate.run import output_paths, simulate
from ddpipe.simulate.spec import SimulationResult, SimulationSpec

__all__ = ["SimulationResult", "SimulationSpec", "output_paths", "simulate"]
