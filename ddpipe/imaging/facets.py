"""Direction-dependent facets: Voronoi cells around direction centres, gain correction and corruption.

A facet is the set of pixels closer (in angle) to its direction centre than to
any other. Before gridding onto a facet, the visibilities are corrected with
that direction's diagonal gains, V' = G_p⁻¹ V G_q⁻ᴴ (elementwise for diagonal
gains), and their weights scaled by |g_p g_q|² so that a weak gain does not
amplify noise. When predicting, each facet's model is corrupted with its own
gains, V = G_p M G_qᴴ, and the facets are summed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ddpipe.errors import UserError
from ddpipe.imaging.coords import pixel_grid_lmn, pixel_to_lm, radec_to_lmn
from ddpipe.solutions.gains import diagonal_pols, evaluate_gains
from ddpipe.solutions.types import Solutions


@dataclass(frozen=True)
class Facet:
    """One facet: its direction name and centre (radians), and that centre's (l, m)."""

    name: str
    ra: float
    dec: float
    l: float
    m: float


def make_facets(directions: Sequence[tuple[str, float, float]], phase_centre: tuple[float, float]) -> tuple[Facet, ...]:
    """Facets for ``(name, ra, dec)`` directions about ``phase_centre`` (radians)."""
    out = []
    names = set()
    for name, ra, dec in directions:
        if name in names:
            raise UserError(f"facet direction {name!r} is given twice; direction names must be unique")
        names.add(name)
        l, m, n = radec_to_lmn(ra, dec, *phase_centre)
        if n <= 0:
            raise UserError(f"facet direction {name!r} is more than 90 degrees from the phase centre")
        out.append(Facet(str(name), float(ra), float(dec), float(l), float(m)))
    if not out:
        raise UserError("no facet directions: the sky model has no patches with sources")
    return tuple(out)


def facet_labels(facets: Sequence[Facet], shape: tuple[int, int], cell: float) -> np.ndarray:
    """Index of the nearest facet centre (largest cosine of the angle) for every pixel.

    Returns
    -------
    numpy.ndarray
        ``(ny, nx)`` int16.
    """
    ll, mm, nn = pixel_grid_lmn(shape, cell)
    nn = np.nan_to_num(nn, nan=0.0)
    best = np.full(shape, -np.inf)
    lab = np.zeros(shape, dtype=np.int16)
    for i, f in enumerate(facets):
        fn = np.sqrt(max(0.0, 1.0 - f.l**2 - f.m**2))
        cosang = ll * f.l + mm * f.m + nn * fn
        better = cosang > best
        lab[better] = i
        best = np.where(better, cosang, best)
    return lab


def correct(vis: np.ndarray, weight: np.ndarray, gp: np.ndarray, gq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Apply inverse diagonal gains: V' = V / (g_p conj(g_q)), w' = w |g_p g_q|².

    Parameters
    ----------
    vis, weight
        ``(row, chan, 2)`` parallel hands and their weights.
    gp, gq
        ``(row, chan, 2)`` complex gains of antenna 1 and antenna 2 of each row.

    Returns
    -------
    tuple
        Corrected ``(row, chan, 2)`` complex64 visibilities and float32 weights; a
        sample with a zero or non-finite gain gets weight 0.
    """
    g = gp * np.conj(gq)
    a2 = np.abs(g) ** 2
    ok = np.isfinite(a2) & (a2 > 0)
    gs = np.where(ok, g, 1.0)
    v = np.where(ok, vis / gs, 0).astype(np.complex64)
    w = np.where(ok, weight * a2, 0).astype(np.float32)
    return v, w


def corrupt(model_vis: np.ndarray, gp: np.ndarray, gq: np.ndarray) -> np.ndarray:
    """Corrupt a Stokes-I model with diagonal gains: ``(row, chan)`` → ``(row, chan, 2)`` g_p M conj(g_q)."""
    g = gp * np.conj(gq)
    out = g * model_vis[..., None]
    return np.where(np.isfinite(out), out, 0).astype(np.complex64)


class GainTable:
    """Gains of one set of solutions on one MS's antennas, evaluated block by block.

    Parameters
    ----------
    solutions
        A :class:`ddpipe.solutions.types.Solutions` (from ``read_h5parm``).
    directions
        Direction (patch) names in facet order.
    antenna_names
        The MS's ANTENNA names in index order.
    freq
        ``(chan,)`` Hz of the MS.
    """

    def __init__(
        self, solutions: Solutions, directions: Sequence[str], antenna_names: Sequence[str], freq: np.ndarray
    ) -> None:
        where = {a: i for i, a in enumerate(solutions.antennas)}
        missing = [a for a in antenna_names if a not in where]
        self._antmap = np.array([where.get(a, -1) for a in antenna_names], dtype=np.intp)
        self._missing = missing
        self.solutions = solutions
        self.directions = tuple(directions)
        self.freq = np.asarray(freq, dtype=np.float64)

    @property
    def scalar(self) -> bool:
        """True when every soltab gives both parallel hands the same gain (Stokes I can be corrected alone)."""
        for name, st in self.solutions.soltabs.items():
            if "pol" not in st.axes:
                continue
            a, b = diagonal_pols(st.pol or (), name)
            axis = st.axes.index("pol")
            if not np.array_equal(np.take(st.values, a, axis=axis), np.take(st.values, b, axis=axis), equal_nan=True):
                return False
        return True

    def for_block(self, time: np.ndarray, ant1: np.ndarray, ant2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Gains of a block's distinct times and each row's index into them.

        Returns
        -------
        tuple
            ``gains (ntime, chan, nant_sol, ndir, 2)`` complex64 and ``index (3, row)``
            int: each row's time index and its two antennas' indices in ``gains``
            (see :meth:`pick`).
        """
        a1 = self._antmap[ant1]
        a2 = self._antmap[ant2]
        if (a1 < 0).any() or (a2 < 0).any():
            raise UserError(
                f"solutions have no gains for antenna(s) {', '.join(self._missing[:5])} "
                "of the Measurement Set; calibrate with the same MS"
            )
        utimes, tidx = np.unique(time, return_inverse=True)
        g = evaluate_gains(self.solutions, utimes, self.freq, list(self.directions)).astype(np.complex64)
        return g, np.stack([tidx, a1, a2])

    @staticmethod
    def pick(gains: np.ndarray, index: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray]:
        """``(g_p, g_q)``, each ``(row, chan, 2)``, for direction ``d`` of a block."""
        tidx, a1, a2 = index
        gd = gains[:, :, :, d, :]  # (ntime, chan, nant, 2)
        return gd[tidx, :, a1, :], gd[tidx, :, a2, :]


@dataclass(frozen=True)
class FacetBox:
    """The pixel box a facet is gridded on: its Voronoi cell's bounding box, even-sized, ≥ 32.

    ``y0, x0`` is the box's first pixel in the full ``(ny, nx)`` image (the box may
    reach past the image's edge: those pixels are dropped), ``shape`` its size and
    ``offset`` its centre's offset from the image centre in pixels (for
    :func:`ddpipe.imaging.gridder.grid`). Gridding onto the box instead of the whole
    image makes a facet's FFTs and buffers facet-sized.
    """

    index: int
    y0: int
    x0: int
    shape: tuple[int, int]
    full: tuple[int, int]

    @property
    def offset(self) -> tuple[int, int]:
        return (self.y0 + self.shape[0] // 2 - self.full[0] // 2, self.x0 + self.shape[1] // 2 - self.full[1] // 2)

    def _spans(self) -> tuple[slice, slice, slice, slice]:
        """(full-image rows, full-image cols, box rows, box cols) of the overlap."""
        (by, bx), (ny, nx) = self.shape, self.full
        fy0, fx0 = max(self.y0, 0), max(self.x0, 0)
        fy1, fx1 = min(self.y0 + by, ny), min(self.x0 + bx, nx)
        return (
            slice(fy0, fy1),
            slice(fx0, fx1),
            slice(fy0 - self.y0, fy1 - self.y0),
            slice(fx0 - self.x0, fx1 - self.x0),
        )

    def crop(self, image: np.ndarray) -> np.ndarray:
        """The box's part of a full image (zero beyond the image's edge)."""
        fy, fx, by, bx = self._spans()
        out = np.zeros(self.shape, dtype=image.dtype)
        out[by, bx] = image[fy, fx]
        return out

    def paste(self, target: np.ndarray, box_image: np.ndarray, where: np.ndarray) -> None:
        """Copy ``box_image`` into ``target`` (full image) at the full-image pixels ``where`` is True."""
        fy, fx, by, bx = self._spans()
        sel = where[fy, fx]
        target[fy, fx][sel] = box_image[by, bx][sel]


def facet_boxes(labels: np.ndarray, names: Sequence[str], min_size: int = 32) -> tuple[FacetBox, ...]:
    """One :class:`FacetBox` per facet (``names`` in facet order) of ``labels`` (see :func:`facet_labels`)."""
    full = labels.shape
    out = []
    for f, name in enumerate(names):
        ys, xs = np.nonzero(labels == f)
        if ys.size == 0:
            raise UserError(
                f"facet direction {name!r} has no pixel in the {full[1]}x{full[0]} image (nearer "
                "directions take every pixel): image a larger field (size x scale) or calibrate "
                "without that direction"
            )
        size = []
        for lo, hi in ((ys.min(), ys.max()), (xs.min(), xs.max())):
            span = int(hi - lo + 1)
            size.append(max(span + span % 2, min_size))
        y0 = int(ys.min()) - max(0, size[0] - int(ys.max() - ys.min() + 1)) // 2
        x0 = int(xs.min()) - max(0, size[1] - int(xs.max() - xs.min() + 1)) // 2
        out.append(FacetBox(f, y0, x0, (size[0], size[1]), full))
    return tuple(out)


def facet_centres(labels: np.ndarray, boxes: Sequence[FacetBox], cell: float) -> tuple[tuple[float, float, float], ...]:
    """Per box: (l, m) of its centre pixel and the largest distance (radians) of its facet's pixels from it.

    The distance includes half a pixel's diagonal, so a source anywhere in a facet
    pixel is within it (what per-facet averaging is bounded by).
    """
    out = []
    for b in boxes:
        cy, cx = b.y0 + b.shape[0] // 2, b.x0 + b.shape[1] // 2
        l0, m0 = pixel_to_lm(cx, cy, labels.shape, cell)
        ys, xs = np.nonzero(labels == b.index)
        r = float(np.sqrt(((ys - cy) ** 2 + (xs - cx) ** 2).max())) if ys.size else 0.0
        out.append((float(l0), float(m0), (r + 0.71) * cell))
    return tuple(out)


def neighbour_pairs(labels: np.ndarray) -> tuple[tuple[int, int], ...]:
    """Ordered pairs ``(f, d)``, f ≠ d, of facets whose cells share a border in ``labels``."""
    pairs = set()
    for a, b in ((labels[:, 1:], labels[:, :-1]), (labels[1:, :], labels[:-1, :])):
        edge = a != b
        pairs.update(zip(a[edge].tolist(), b[edge].tolist()))
        pairs.update(zip(b[edge].tolist(), a[edge].tolist()))
    return tuple(sorted(pairs))
