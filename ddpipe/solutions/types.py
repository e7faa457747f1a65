"""Solution data types: one H5parm solset in memory.

These are the frozen dataclasses passed between the calibration, merge, imaging
and simulation stages. They mirror the H5parm layout that DP3 writes (see
:mod:`ddpipe.solutions.h5parm`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

#: Axis names an H5parm soltab may use, in DP3's order.
KNOWN_AXES = ("time", "freq", "ant", "dir", "pol")


@dataclass(frozen=True)
class SolTab:
    """One solution table (e.g. ``phase000``).

    Attributes
    ----------
    kind
        The soltab TITLE: ``'phase'`` (radians) or ``'amplitude'``; other
        losoto kinds (``'tec'``, ...) are read and written but not evaluated.
    axes
        Axis names in storage order, e.g. ``('time', 'freq', 'ant', 'dir')``
        or ``(..., 'pol')``. An axis a soltab does not have is left out.
    values
        float64, shape ``tuple(len(axis) for axis in axes)``.
    weights
        float32, same shape; 0 marks a flagged solution.
    time
        (ntime,) float64 MJD seconds (casacore TIME convention); empty if the
        soltab has no time axis.
    freq
        (nfreq,) float64 Hz; empty if the soltab has no freq axis.
    ant
        Antenna names.
    dir
        Direction names as DP3 writes them (``'[P1]'``); empty if no dir axis.
    pol
        Polarisation names (``('XX', 'YY')``) or None without a pol axis.
    """

    kind: str
    axes: tuple[str, ...]
    values: np.ndarray
    weights: np.ndarray
    time: np.ndarray
    freq: np.ndarray
    ant: tuple[str, ...]
    dir: tuple[str, ...]
    pol: tuple[str, ...] | None = None

    def axis_values(self, axis: str) -> np.ndarray | tuple[str, ...] | None:
        """The coordinate values of ``axis`` (time, freq, ant, dir or pol)."""
        if axis not in KNOWN_AXES:
            raise KeyError(axis)
        return getattr(self, axis)

    def expected_shape(self) -> tuple[int, ...]:
        """The shape ``values`` must have given ``axes`` and the axis coordinates."""
        shape = []
        for axis in self.axes:
            vals = self.axis_values(axis)
            shape.append(0 if vals is None else len(vals))
        return tuple(shape)


@dataclass(frozen=True)
class Solutions:
    """One solset: antennas, directions and its soltabs.

    Attributes
    ----------
    antennas
        Antenna names (the solset's ``antenna`` table).
    antenna_positions
        (nant, 3) float64 ITRF metres.
    directions
        Direction names, ``'[P1]'``-style (the solset's ``source`` table).
    direction_radec
        (ndir, 2) float64 RA, Dec in radians.
    soltabs
        Soltab name (``'phase000'``, ``'amplitude000'``) → :class:`SolTab`.
    """

    antennas: tuple[str, ...]
    antenna_positions: np.ndarray
    directions: tuple[str, ...]
    direction_radec: np.ndarray
    soltabs: Mapping[str, SolTab]

    def soltabs_of_kind(self, kind: str) -> tuple[SolTab, ...]:
        """All soltabs whose TITLE is ``kind``, in name order."""
        return tuple(self.soltabs[k] for k in sorted(self.soltabs) if self.soltabs[k].kind == kind)


def direction_name(patch: str) -> str:
    """The H5parm direction name DP3 uses for a patch: ``'P1'`` → ``'[P1]'``."""
    return patch if patch.startswith("[") and patch.endswith("]") else f"[{patch}]"
