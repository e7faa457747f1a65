"""Evaluate H5parm solutions as complex diagonal gains on a time/frequency grid."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ddpipe.errors import UserError
from ddpipe.solutions.types import SolTab, Solutions, direction_name

#: pol names taken as the (first, second) diagonal entries
_DIAGONAL = (("XX", "YY"), ("RR", "LL"))


def nearest_index(grid: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Index of the nearest ``grid`` point for each ``x`` (clamped at the ends).

    Parameters
    ----------
    grid
        (n,) axis values, any order.
    x
        (m,) query values.

    Returns
    -------
    np.ndarray
        (m,) int indices into ``grid``; ties go to the lower grid value.
    """
    grid = np.asarray(grid, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    if grid.size == 1:
        return np.zeros(x.shape, dtype=np.intp)
    order = np.argsort(grid, kind="stable")
    g = grid[order]
    hi = np.clip(np.searchsorted(g, x), 1, g.size - 1)
    lo = hi - 1
    pick = np.where(x - g[lo] <= g[hi] - x, lo, hi)
    return order[pick]


def evaluate_gains(
    sol: Solutions,
    times: np.ndarray,
    freqs: np.ndarray,
    directions: Sequence[str] | None = None,
) -> np.ndarray:
    """Complex diagonal gains ``amplitude * exp(i * phase)`` on a time/frequency grid.

    Nearest-neighbour in time and frequency as DP3 ``applycal`` does; scalar
    soltabs (no pol axis) apply to both diagonal entries; soltabs without a
    time, freq or dir axis are constant along it. Without an amplitude soltab
    the amplitude is 1, without a phase soltab the phase is 0; several soltabs
    of one kind combine (phases add, amplitudes multiply). Flagged (NaN)
    solutions stay NaN.

    Parameters
    ----------
    sol
        Solutions to evaluate.
    times
        (ntime,) MJD seconds.
    freqs
        (nfreq,) Hz.
    directions
        Direction names to return, in this order (``'P1'`` or ``'[P1]'``);
        default ``sol.directions``.

    Returns
    -------
    np.ndarray
        (ntime, nfreq, nant, ndir, 2) complex128; antennas in ``sol.antennas`` order,
        last axis (XX, YY).

    Raises
    ------
    UserError
        An unknown direction, an antenna missing from a soltab, a soltab of
        another kind (tec, rotation...) or a full-Jones (XY/YX) pol axis.
    """
    times = np.atleast_1d(np.asarray(times, dtype=np.float64))
    freqs = np.atleast_1d(np.asarray(freqs, dtype=np.float64))
    if directions is None:
        directions = sol.directions or next((t.dir for t in sol.soltabs.values() if t.dir), ("",))
    dirs = tuple(direction_name(d) if d else d for d in directions)
    shape = (times.size, freqs.size, len(sol.antennas), len(dirs), 2)
    phase = np.zeros(shape, dtype=np.float64)
    amp = np.ones(shape, dtype=np.float64)
    for name in sorted(sol.soltabs):
        st = sol.soltabs[name]
        if st.kind not in ("phase", "amplitude"):
            raise UserError(
                f"soltab {name}: kind '{st.kind}' cannot be evaluated as a gain; "
                "only phase and amplitude soltabs are supported"
            )
        v = _on_grid(st, name, sol.antennas, dirs, times, freqs)
        if st.kind == "phase":
            phase = phase + v
        else:
            amp = amp * v
    return amp * np.exp(1j * phase)


def _on_grid(
    st: SolTab,
    name: str,
    antennas: tuple[str, ...],
    dirs: tuple[str, ...],
    times: np.ndarray,
    freqs: np.ndarray,
) -> np.ndarray:
    """Soltab values picked onto (time, freq, ant, dir, 2), broadcastable (size-1 axes where missing)."""
    v = st.values
    picks: dict[str, np.ndarray] = {}
    if "time" in st.axes:
        picks["time"] = nearest_index(st.time, times)
    if "freq" in st.axes:
        picks["freq"] = nearest_index(st.freq, freqs)
    if "ant" in st.axes:
        where = {a: i for i, a in enumerate(st.ant)}
        missing = [a for a in antennas if a not in where]
        if missing:
            raise UserError(f"soltab {name}: no solutions for antenna(s) {', '.join(missing[:5])}")
        picks["ant"] = np.array([where[a] for a in antennas], dtype=np.intp)
    if "dir" in st.axes:
        where = {d: i for i, d in enumerate(st.dir)}
        missing = [d for d in dirs if d not in where]
        if missing:
            raise UserError(f"soltab {name}: no direction {', '.join(missing)}; it has {', '.join(st.dir)}")
        picks["dir"] = np.array([where[d] for d in dirs], dtype=np.intp)
    if "pol" in st.axes:
        picks["pol"] = diagonal_pols(st.pol or (), name)
    for axis, idx in picks.items():
        v = np.take(v, idx, axis=st.axes.index(axis))
    canonical = ("time", "freq", "ant", "dir", "pol")
    present = [a for a in canonical if a in st.axes]
    v = np.transpose(v, [st.axes.index(a) for a in present])
    full_shape = [v.shape[present.index(a)] if a in present else 1 for a in canonical]
    return v.reshape(full_shape)


def diagonal_pols(pol: tuple[str, ...], name: str) -> np.ndarray:
    if len(pol) == 1:
        return np.array([0, 0], dtype=np.intp)
    for a, b in _DIAGONAL:
        if a in pol and b in pol:
            if len(pol) > 2:
                raise UserError(
                    f"soltab {name}: pol axis {pol} is full-Jones; only diagonal or scalar solutions can be evaluated"
                )
            return np.array([pol.index(a), pol.index(b)], dtype=np.intp)
    if len(pol) == 2:
        return np.array([0, 1], dtype=np.intp)
    raise UserError(f"soltab {name}: cannot tell the diagonal from pol axis {pol}")
