"""Passes over the visibilities: density weighting, and residual (or dirty) image plus PSF.

Each pass streams every MS block by block (:class:`~ddpipe.imaging.msdata.BlockSource`
keeps the blocks in memory when they fit). With facets, a pass predicts each
facet's model, corrupts it with that direction's gains and subtracts, then grids
the residual once per facet with that direction's inverse gains; each facet's
image is normalised by its own weight sum and keeps its Voronoi cell.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ddpipe.errors import UserError
from ddpipe.imaging import gridder, weighting
from ddpipe.imaging.facets import Facet, GainTable, correct, corrupt
from ddpipe.imaging.msdata import BlockSource, MSDescription, VisBlock, stokes_i


@dataclass(frozen=True)
class PassSetup:
    """Everything a pass over the data needs; built once per image."""

    descs: tuple[MSDescription, ...]
    source: BlockSource
    shape: tuple[int, int]
    cell: float
    epsilon: float
    nthreads: int
    factor: np.ndarray  # density-weighting factor per uv cell (ones for natural)
    facets: tuple[Facet, ...]  # empty: no direction-dependent correction
    gains: tuple[GainTable | None, ...]  # per MS, None without correction
    memo: dict = field(default_factory=dict)  # per-block arrays kept while the data are cached


def density_factor(source: BlockSource, shape: tuple[int, int], cell: float, mode: str,
                   robust: float = 0.0) -> np.ndarray:
    """Uniform/Briggs weighting factor grid (see :mod:`ddpipe.imaging.weighting`) from one pass
    over the weights and UVW of every MS."""
    grid = weighting.grid_shape(shape)
    density = np.zeros((grid[0] // 2) * grid[1], dtype=np.float64)
    total = 0.0
    for i, d in enumerate(source.descs):
        for blk in source.blocks(i, with_vis=False):
            w = np.minimum(blk.weight[..., 0], blk.weight[..., 1])
            cells = weighting.density_cells(blk.uvw, d.freq, grid, cell)
            total += weighting.accumulate(density, cells, w)
    return weighting.finish(density, total, mode, robust, grid=grid)


def _imaging_weight(setup: PassSetup, key: tuple, uvw: np.ndarray, freq: np.ndarray,
                    w: np.ndarray) -> np.ndarray:
    """Natural weights ``w (row, chan)`` times the density factor of each sample's uv cell.

    Samples beyond the padded uv grid (finer than the pixel scale can represent)
    get weight 0 in every weighting mode, as WSClean does.
    """
    cells = setup.memo.get(("cells",) + key)
    if cells is None:
        cells = weighting.density_cells(uvw, freq, weighting.grid_shape(setup.shape), setup.cell)
        if setup.source.caching:
            setup.memo[("cells",) + key] = cells
    return weighting.apply(setup.factor, cells, w)


def _stokes_i_block(setup: PassSetup, key: tuple, blk: VisBlock, freq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stokes I visibilities and imaging weights of a block (kept while the data are cached)."""
    got = setup.memo.get(("stokes",) + key)
    if got is None:
        v, w = stokes_i(blk.vis, blk.weight)
        got = (v, _imaging_weight(setup, key, blk.uvw, freq, w))
        if setup.source.caching:
            setup.memo[("stokes",) + key] = got
    return got


def residual_pass(setup: PassSetup, labels: np.ndarray | None, model: np.ndarray | None, *,
                   psf_shape: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """One pass over every MS: (residual image in Jy/beam, PSF of ``psf_shape`` or None).

    The residual is data − model (corrupted per facet when correcting), gridded
    with the imaging weights and normalised by their sum (per facet). The PSF is
    the 2-D one (no w-term: the minor cycle treats the PSF as shift-invariant
    anyway and the major cycles are exact), which makes one twice the image size
    cheap enough to cover every offset between two pixels.
    """
    shape, cell = setup.shape, setup.cell
    nf = max(1, len(setup.facets))
    acc = np.zeros((nf,) + shape, dtype=np.float64)
    wsum = np.zeros(nf)
    want_psf = psf_shape is not None
    psf_acc = np.zeros(psf_shape, dtype=np.float64) if want_psf else None
    psf_wsum = 0.0
    have_model = model is not None and bool(np.any(model))
    facet_models = []
    if have_model and setup.facets:
        facet_models = [(d, np.where(labels == d, model, 0).astype(np.float32)) for d in range(nf)]
        facet_models = [(d, m) for d, m in facet_models if np.any(m)]
    kw = dict(epsilon=setup.epsilon, nthreads=setup.nthreads)
    for i, (desc, gt) in enumerate(zip(setup.descs, setup.gains)):
        freq = desc.freq
        for blk in setup.source.blocks(i):
            key = (i, blk.start)
            if gt is None:
                v, wim = _stokes_i_block(setup, key, blk, freq)
                if have_model:
                    v = v - gridder.degrid(blk.uvw, freq, model, cell, mask=wim > 0, **kw)
                acc[0] += gridder.grid(blk.uvw, freq, v, wim, shape, cell, **kw)
                wsum[0] += float(wim.sum(dtype=np.float64))
            else:
                g, index = gt.for_block(blk.time, blk.ant1, blk.ant2)
                res = blk.vis
                if facet_models:
                    sel = np.minimum(blk.weight[..., 0], blk.weight[..., 1]) > 0
                    res = blk.vis.copy()
                    for d, fm in facet_models:
                        mv = gridder.degrid(blk.uvw, freq, fm, cell, mask=sel, **kw)
                        gp, gq = gt.pick(g, index, d)
                        res -= corrupt(mv, gp, gq)
                for f in range(nf):
                    gp, gq = gt.pick(g, index, f)
                    vc, wc = correct(res, blk.weight, gp, gq)
                    v, w = stokes_i(vc, wc)
                    wim = _imaging_weight(setup, key, blk.uvw, freq, w)
                    acc[f] += gridder.grid(blk.uvw, freq, v, wim, shape, cell, **kw)
                    wsum[f] += float(wim.sum(dtype=np.float64))
                if want_psf:
                    _, wim = _stokes_i_block(setup, key, blk, freq)
            if want_psf:
                ones = np.ones(wim.shape, dtype=np.complex64)
                psf_acc += gridder.grid(blk.uvw, freq, ones, wim, psf_shape, cell, do_wgridding=False, **kw)
                psf_wsum += float(wim.sum(dtype=np.float64))
    if not np.any(wsum > 0):
        names = ", ".join(d.path for d in setup.descs)
        raise UserError(f"{names}: every visibility is flagged or has zero weight (column "
                        f"{setup.descs[0].data_column}); there is nothing to image")
    if setup.facets:
        residual = np.zeros(shape, dtype=np.float64)
        for f in range(nf):
            if wsum[f] > 0:
                residual += np.where(labels == f, acc[f] / wsum[f], 0)
    else:
        residual = acc[0] / wsum[0]
    psf = None
    if want_psf:
        psf = (psf_acc / psf_wsum).astype(np.float32)
    return residual.astype(np.float32), psf
