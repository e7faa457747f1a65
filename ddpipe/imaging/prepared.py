"""Visibilities made ready for the imaging passes, one row range of one MS at a time.

A :class:`RowRange` names rows of a Measurement Set (paths and row numbers travel
to Dask workers, never visibilities). :func:`read_rows` reads them in blocks of
``row_block`` rows, orders them by baseline and time, and keeps only what the passes need: Stokes I (or both parallel
hands when the facet gains differ between them), natural weights with flags
applied, UVW, and the per-row time/antenna indices into the facet gains. The
density weighting is folded into the weights once (:func:`weigh`), so every later
pass grids a whole range in one gridder call (a call per small block pays the
padded FFTs and w-planes every time: measured 10× the cost on a 0.75 GB MS).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ddpipe.imaging import weighting
from ddpipe.imaging.msdata import MSDescription, iter_blocks, stokes_i

#: bytes a sample of a range takes per kept polarisation (complex64 visibility + float32 weight)
_SAMPLE_BYTES = 12
#: bytes a row takes besides its samples (uvw, time, antennas, gain indices)
_ROW_BYTES = 3 * 8 + 8 + 2 * 4 + 3 * 8


@dataclass(frozen=True)
class RowRange:
    """Rows ``[start, start + nrow)`` of the ``ms_index``-th MS."""

    ms_index: int
    start: int
    nrow: int


def range_bytes(desc: MSDescription, nrow: int, npol: int) -> int:
    """Memory a prepared range of ``nrow`` rows takes (see :class:`PreparedRows`)."""
    return nrow * (len(desc.freq) * _SAMPLE_BYTES * npol + _ROW_BYTES)


def plan_ranges(descs: tuple[MSDescription, ...], max_bytes: int, npol: int, min_parts: int = 1
                ) -> tuple[RowRange, ...]:
    """Split every MS into row ranges of at most ``max_bytes`` prepared (at least ``min_parts`` per MS)."""
    out = []
    for i, d in enumerate(descs):
        per_row = range_bytes(d, 1, npol)
        rows = max(1, min(d.nrow, max_bytes // per_row))
        parts = max(min_parts, -(-d.nrow // rows))
        edges = np.linspace(0, d.nrow, min(parts, d.nrow) + 1).round().astype(int)
        out.extend(RowRange(i, int(a), int(b - a)) for a, b in zip(edges[:-1], edges[1:]) if b > a)
    return tuple(out)


@dataclass
class PreparedRows:
    """The rows of one :class:`RowRange`, ready to grid.

    Shapes: ``uvw (row, 3)`` float64 metres; ``vis (row, chan, P)`` complex64 (P = 1:
    Stokes I; P = 2: the parallel hands); ``weight (row, chan, P)`` float32, natural
    weights (0 where flagged) until :func:`weigh` multiplies in the density factor
    (0 off the uv grid); ``time (row,)`` MJD seconds; ``ant1, ant2 (row,)`` int32.
    """

    rows: RowRange
    freq: np.ndarray
    uvw: np.ndarray
    time: np.ndarray
    ant1: np.ndarray
    ant2: np.ndarray
    vis: np.ndarray
    weight: np.ndarray
    #: (row,) int64 time slot of each row, counted from the MS's first (the same in every range)
    step: np.ndarray
    weighted: bool = False
    cells: np.ndarray | None = None  # (row, chan) uv density cell per sample, kept from density() for weigh()
    #: per facet, built on the first pass and reused: its averaging (averaging.FacetAverage) and,
    #: when the engine's budget allows, its per-sample H (averaging.facet_h)
    averages: dict = field(default_factory=dict)
    h: dict = field(default_factory=dict)

    @property
    def npol(self) -> int:
        return self.vis.shape[-1]

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.uvw, self.time, self.ant1, self.ant2, self.vis, self.weight, self.step)) + \
            sum(a.nbytes for a in self.averages.values()) + sum(h.nbytes for h in self.h.values())


def read_rows(desc: MSDescription, rows: RowRange, npol: int, row_block: int) -> PreparedRows:
    """Read a range, ``row_block`` rows at a time, keeping ``npol`` (1: Stokes I, 2: hands)."""
    n, nchan = rows.nrow, len(desc.freq)
    vis = np.empty((n, nchan, npol), dtype=np.complex64)
    weight = np.empty((n, nchan, npol), dtype=np.float32)
    uvw = np.empty((n, 3))
    time = np.empty(n)
    ant1 = np.empty(n, dtype=np.int32)
    ant2 = np.empty(n, dtype=np.int32)
    for blk in iter_blocks(desc, row_block, start=rows.start, stop=rows.start + n):
        s = slice(blk.start - rows.start, blk.start - rows.start + blk.nrow)
        if npol == 1:
            v, w = stokes_i(blk.vis, blk.weight)
            vis[s, :, 0], weight[s, :, 0] = v, w
        else:
            vis[s], weight[s] = blk.vis, blk.weight
        uvw[s], time[s], ant1[s], ant2[s] = blk.uvw, blk.time, blk.ant1, blk.ant2
    # by baseline, then time: each baseline's rows are one run (what per-facet averaging needs)
    order = np.lexsort((time, ant2, ant1))
    if np.any(order[1:] < order[:-1]):
        uvw, time, ant1, ant2, vis, weight = (a[order] for a in (uvw, time, ant1, ant2, vis, weight))
    step = np.rint((time - desc.time_range[0]) / desc.time_step).astype(np.int64)
    return PreparedRows(rows, desc.freq, uvw, time, ant1, ant2, vis, weight, step)


def stokes_weight(weight: np.ndarray) -> np.ndarray:
    """``(row, chan)`` Stokes I weight of ``(row, chan, P)`` weights (both hands needed)."""
    return weight[..., 0] if weight.shape[-1] == 1 else np.minimum(weight[..., 0], weight[..., 1])


def density(prep: PreparedRows, shape: tuple[int, int], cell: float) -> tuple[np.ndarray, float]:
    """This range's share of the uv density grid of an image ``shape`` (see :mod:`weighting`)."""
    grid = weighting.grid_shape(shape)
    dens = np.zeros((grid[0] // 2) * grid[1], dtype=np.float64)
    cells = weighting.density_cells(prep.uvw, prep.freq, grid, cell)
    total = weighting.accumulate(dens, cells, stokes_weight(prep.weight))
    prep.cells = cells.astype(np.int32)  # weigh() needs the same cells: computed once
    return dens, total


def weigh(prep: PreparedRows, factor: np.ndarray, shape: tuple[int, int], cell: float) -> None:
    """Multiply the density factor of each sample's uv cell into the weights, in place (once)."""
    if prep.weighted:
        return
    cells = prep.cells
    if cells is None:
        cells = weighting.density_cells(prep.uvw, prep.freq, weighting.grid_shape(shape), cell)
    f = np.where(cells >= 0, factor[np.clip(cells, 0, None)], 0.0).astype(np.float32)
    prep.weight *= f[..., None]
    prep.weighted, prep.cells = True, None
