"""Visibilities made ready for the imaging passes, one row range of one MS at a time.

A :class:`RowRange` names rows of a Measurement Set (paths and row numbers travel
to Dask workers, never visibilities). :func:`read_rows` reads them in blocks of
``row_block`` rows (ordered by baseline and time for per-facet averaging) and
keeps only what the passes need: Stokes I (or both parallel hands when the facet
gains differ between them), natural weights with flags applied, UVW, and the
per-row time/antenna indices into the facet gains. The
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


def plan_ranges(
    descs: tuple[MSDescription, ...], max_bytes: int, npol: int, min_parts: int = 1
) -> tuple[RowRange, ...]:
    """Split every MS into row ranges of at most ``max_bytes`` prepared (at least ``min_parts`` per MS).

    Ranges start where a slot group starts (``MSDescription.group_starts``), the nearest to
    an even split: per-facet averaging never spans two groups, so no averaging block is
    cut by a range, and the image does not depend on how many ranges (workers) there are.
    The sizes are then only about even, and a range may exceed ``max_bytes`` by a group.
    """
    out = []
    for i, d in enumerate(descs):
        per_row = range_bytes(d, 1, npol)
        rows = max(1, min(d.nrow, max_bytes // per_row))
        parts = max(min_parts, -(-d.nrow // rows))
        edges = np.linspace(0, d.nrow, min(parts, d.nrow) + 1).round().astype(int)
        if len(edges) > 2 and len(d.group_starts):
            inner = d.group_starts[np.abs(d.group_starts[None, :] - edges[1:-1, None]).argmin(axis=1)]
            edges = np.unique(np.r_[0, inner, d.nrow])
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
    by_baseline: bool = False  # rows ordered by baseline, then time (see read_rows)
    n_slots: int = 1  # the MS's time slots (MSDescription.n_slots)
    slot_group: int = 1  # MSDescription.slot_group
    weighted: bool = False
    cells: np.ndarray | None = None  # (row, chan) uv density cell per sample, kept from density() for weigh()
    #: per facet, built on the first pass and reused: its averaging (averaging.FacetAverage) and,
    #: when the engine's budget allows, its per-sample H (averaging.facet_h)
    averages: dict = field(default_factory=dict)
    h: dict = field(default_factory=dict)
    #: per output-channel group, its channels as rows of their own (:func:`ddpipe.imaging.passes.channel_view`)
    views: dict = field(default_factory=dict)

    @property
    def npol(self) -> int:
        return self.vis.shape[-1]

    @property
    def nbytes(self) -> int:
        arrays = (self.uvw, self.time, self.ant1, self.ant2, self.vis, self.weight, self.step)
        return sum(a.nbytes for a in arrays) + self.cache_bytes

    @property
    def cache_bytes(self) -> int:
        """What the per-facet caches hold, the channel groups' (which share the arrays) included."""
        return (
            sum(a.nbytes for a in self.averages.values())
            + sum(h.nbytes for h in self.h.values())
            + sum(v[0].cache_bytes for v in self.views.values() if v is not None)
        )


def read_rows(
    desc: MSDescription, rows: RowRange, npol: int, row_block: int, by_baseline: bool = False
) -> PreparedRows:
    """Read a range, ``row_block`` rows at a time, keeping ``npol`` (1: Stokes I, 2: hands).

    ``by_baseline``: order the rows by baseline, then time (each baseline's rows one
    run: what per-facet averaging needs); else they stay in the MS's order.
    """
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
    if by_baseline:
        order = np.lexsort((time, ant2, ant1))
        if np.any(order[1:] < order[:-1]):
            uvw, time, ant1, ant2 = (a[order] for a in (uvw, time, ant1, ant2))
            vis = vis[order]  # one large copy alive at a time
            weight = weight[order]
    step = np.rint((time - desc.time_range[0]) / desc.time_step).astype(np.int64)
    return PreparedRows(
        rows,
        desc.freq,
        uvw,
        time,
        ant1,
        ant2,
        vis,
        weight,
        step,
        by_baseline=by_baseline,
        n_slots=desc.n_slots,
        slot_group=desc.slot_group,
    )


def stokes_weight(weight: np.ndarray) -> np.ndarray:
    """``(row, chan)`` Stokes I weight of ``(row, chan, P)`` weights (both hands needed)."""
    return weight[..., 0] if weight.shape[-1] == 1 else np.minimum(weight[..., 0], weight[..., 1])


#: rows per step when finding density cells (their float64 temporaries stay small)
_CELL_ROWS = 32768


def _cells(prep: PreparedRows, grid: tuple[int, int], cell: float) -> np.ndarray:
    """``(row, chan)`` int32 density cell of every sample (-1 off the grid), a few rows at a time."""
    out = np.empty(prep.vis.shape[:2], dtype=np.int32)
    for a in range(0, len(out), _CELL_ROWS):
        out[a : a + _CELL_ROWS] = weighting.density_cells(prep.uvw[a : a + _CELL_ROWS], prep.freq, grid, cell)
    return out


def density(prep: PreparedRows, shape: tuple[int, int], cell: float) -> tuple[np.ndarray, float]:
    """This range's share of the uv density grid of an image ``shape`` (see :mod:`weighting`)."""
    grid = weighting.grid_shape(shape)
    dens = np.zeros((grid[0] // 2) * grid[1], dtype=np.float64)
    cells = _cells(prep, grid, cell)
    ws = stokes_weight(prep.weight)
    total = 0.0
    for a in range(0, len(cells), _CELL_ROWS):
        total += weighting.accumulate(dens, cells[a : a + _CELL_ROWS], ws[a : a + _CELL_ROWS])
    prep.cells = cells  # weigh() needs the same cells: computed once
    return dens, total


def weigh(prep: PreparedRows, factor: np.ndarray, shape: tuple[int, int], cell: float) -> None:
    """Multiply the density factor of each sample's uv cell into the weights, in place (once)."""
    if prep.weighted:
        return
    cells = prep.cells
    if cells is None:
        cells = _cells(prep, weighting.grid_shape(shape), cell)
    for a in range(0, len(cells), _CELL_ROWS):
        c = cells[a : a + _CELL_ROWS]
        f = np.where(c >= 0, factor[np.clip(c, 0, None)], 0.0).astype(np.float32)
        prep.weight[a : a + _CELL_ROWS] *= f[..., None]
    prep.weighted, prep.cells = True, None
