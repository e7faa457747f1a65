"""Simulate direction-dependently corrupted Measurement Sets (``ddpipe simulate``).

Entry point: :func:`simulate` with a :class:`SimulationSpec`; see
:mod:`ddpipe.simulate.run`. The model visibilities come from ddpipe's own DFT
(:mod:`ddpipe.simulate.predict`), not from DP3. Names are imported lazily so
that ``ddpipe --help`` does not load NumPy, casacore and h5py.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SimulationResult", "SimulationSpec", "output_paths", "simulate"]


def __getattr__(name: str) -> Any:
    if name in ("SimulationResult", "SimulationSpec"):
        from ddpipe.simulate import spec

        return getattr(spec, name)
    if name in ("simulate", "output_paths"):
        from ddpipe.simulate import run

        return getattr(run, name)
    raise AttributeError(f"module 'ddpipe.simulate' has no attribute {name!r}")
