"""ddpipe: direction-dependent self-calibration with DP3 on Dask and facet imaging on NumPy."""

from __future__ import annotations

__version__ = "0.1.0"
