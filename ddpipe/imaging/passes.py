"""One pass over a range of visibilities: residual (or dirty) images per facet box, and the PSF.

:func:`grid_rows` is the kernel every pass runs, in the driver or in a Dask task,
on one :class:`~ddpipe.imaging.prepared.PreparedRows`: it predicts each facet's
model onto that facet's box (:class:`~ddpipe.imaging.facets.FacetBox`), corrupts
it with that direction's gains and subtracts it, then grids the residual once per
facet, corrected with that direction's inverse gains, onto the facet's box. Plain
imaging is the same with one box, the whole image, and no gains. The partial
sums of all ranges add up (:meth:`PassPartial.add`) and :func:`finish` turns
them into the residual image (each facet normalised by its own weight sum, kept
on its Voronoi cell) and the PSF.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Mapping

import numpy as np

from ddpipe.imaging import averaging, gridder
from ddpipe.imaging.facets import FacetBox, correct, corrupt
from ddpipe.imaging.prepared import PreparedRows, stokes_weight

#: model components of one box: (rows, cols, values) in box pixels
Components = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class PassSpec:
    """What every pass of one image needs besides the data (small: it travels to Dask workers).

    ``boxes`` holds one box per facet, or a single box covering the whole image for
    plain imaging (``facets`` False).
    """

    shape: tuple[int, int]
    cell: float
    boxes: tuple[FacetBox, ...]
    facets: bool
    epsilon: float = 1e-4
    nthreads: int = 2
    #: ``(f, d)``: facets f and d share a border; the dirty pass images how a facet-d
    #: component appears in facet f (:func:`facet_response`)
    neighbours: tuple[tuple[int, int], ...] = ()
    #: pixels across the image of that response
    response_size: int = 128
    #: per box: (l, m) of its centre and the radius (radians) its facet reaches from it
    centres: tuple[tuple[float, float, float], ...] = ()
    #: per-facet averaging (:mod:`ddpipe.imaging.averaging`) may cost a source at a facet's far
    #: edge at most this fraction of its peak; 0: no averaging
    max_loss: float = 0.01
    #: keep each facet's per-sample H between passes (the engine decides, from its memory budget)
    cache_h: bool = False
    #: output channels (WSClean's ``-channels-out``): the N + 1 frequency edges (Hz) of N channel
    #: groups, each imaged on its own; () is one group, the whole band
    channel_edges: tuple[float, ...] = ()

    @property
    def n_channels(self) -> int:
        return max(1, len(self.channel_edges) - 1)

    @property
    def averaged(self) -> bool:
        """Facet passes average per facet (Stokes I data only; see :func:`grid_rows`)."""
        return self.facets and self.max_loss > 0 and len(self.centres) == len(self.boxes)

    @property
    def sampling(self) -> gridder.Sampling:
        return gridder.Sampling(self.cell, self.epsilon, self.nthreads)

    @classmethod
    def plain(cls, shape: tuple[int, int], cell: float, **kw) -> "PassSpec":
        return cls(shape, cell, (FacetBox(0, 0, 0, tuple(shape), tuple(shape)),), False, **kw)


@dataclass
class PassPartial:
    """Unnormalised sums of one pass over some rows: per box image (float64) and weight sum, PSF."""

    images: list[np.ndarray]
    wsum: np.ndarray
    psf: np.ndarray | None = None
    psf_wsum: float = 0.0
    coupling: np.ndarray | None = None  # (nf, nf) complex sums, see facet_coupling
    responses: dict | None = None  # {(f, d) or "psf": unnormalised response image}, see facet_response
    response_wsum: float = 0.0
    #: with several output channels: each channel group's own sums (the fields above are their total)
    channels: list["PassPartial"] | None = None

    def add(self, other: "PassPartial") -> "PassPartial":
        """Sum in place (``other`` is from other rows of the same image); returns self."""
        for a, b in zip(self.images, other.images):
            a += b
        self.wsum += other.wsum
        if other.psf is not None:
            self.psf = other.psf.copy() if self.psf is None else self.psf + other.psf
            self.psf_wsum += other.psf_wsum
        if other.coupling is not None:
            self.coupling = other.coupling.copy() if self.coupling is None else self.coupling + other.coupling
        if other.responses:
            self.responses = {k: v + (self.responses or {}).get(k, 0) for k, v in other.responses.items()}
            self.response_wsum += other.response_wsum
        if other.channels is not None:
            for a, b in zip(self.channels, other.channels):
                a.add(b)
        return self

    @classmethod
    def zeros(cls, spec: "PassSpec", want_psf: tuple[int, int] | None) -> "PassPartial":
        """The sums of no rows (a channel group a range has no channels in)."""
        out = cls([np.zeros(b.shape) for b in spec.boxes], np.zeros(len(spec.boxes)))
        if want_psf is not None:
            out.psf = np.zeros(want_psf, dtype=np.float32)
        return out


class RowGains:
    """Per-row gains of a range: ``table (ntime, chan, nant, ndir, P)`` and each row's indices."""

    def __init__(self, table: np.ndarray, index: np.ndarray):
        self.table, self.index = table, index

    def pick(self, d: int) -> tuple[np.ndarray, np.ndarray]:
        """``(g_p, g_q)``, each ``(row, chan, P)``, of direction ``d``."""
        tidx, a1, a2 = self.index
        gd = self.table[:, :, :, d, :]
        return gd[tidx, :, a1, :], gd[tidx, :, a2, :]


def _stokes(vis: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(row, chan)`` Stokes I and its weight from ``(row, chan, P)`` (P = 1 is Stokes I already)."""
    if vis.shape[-1] == 1:
        return vis[..., 0], weight[..., 0]
    w = np.minimum(weight[..., 0], weight[..., 1])
    v = (0.5 * (vis[..., 0] + vis[..., 1])).astype(np.complex64)
    v[w == 0] = 0
    return v, w


def _box_model(box: FacetBox, comps: Components) -> np.ndarray:
    m = np.zeros(box.shape, dtype=np.float32)
    ys, xs, vals = comps
    np.add.at(m, (ys, xs), vals.astype(np.float32))
    return m


def grid_rows(
    prep: PreparedRows,
    spec: PassSpec,
    gains: RowGains | None,
    components: Mapping[int, Components] | None = None,
    want_psf: tuple[int, int] | None = None,
) -> PassPartial:
    """Grid the residual of one range onto every box (and the PSF when ``want_psf`` gives its shape).

    Parameters
    ----------
    prep
        Weighted rows (:func:`ddpipe.imaging.prepared.weigh` done).
    spec
        Image and boxes.
    gains
        Facet gains of these rows (None: no correction).
    components
        ``{box index: (ys, xs, values)}`` of the model, Jy/pixel, in box pixels; with
        several output channels ``values`` is ``(channel, component)``.
    want_psf
        ``(py, px)`` of the PSF to grid (2-D, no w-term), or None.

    With several output channels (``spec.channel_edges``) each channel group is gridded
    on its own with its own model values (:attr:`PassPartial.channels`); the top-level
    sums are their total, the multi-frequency (MFS) image. The facet coupling is measured
    once, on the whole band.
    """
    if spec.n_channels == 1:
        return _grid_group(prep, spec, gains, components, want_psf, measure=True)
    parts = []
    for g in range(spec.n_channels):
        view = channel_view(prep, spec.channel_edges[g], spec.channel_edges[g + 1])
        if view is None:
            parts.append(PassPartial.zeros(spec, want_psf))
            continue
        sub, chans = view
        comps = None if components is None else {d: (y, x, v[g]) for d, (y, x, v) in components.items()}
        sub_gains = None if gains is None else RowGains(gains.table[:, chans], gains.index)
        parts.append(_grid_group(sub, spec, sub_gains, comps, want_psf, measure=False))
    out = PassPartial([np.zeros(b.shape) for b in spec.boxes], np.zeros(len(spec.boxes)))
    for part in parts:
        out.add(part)
    out.channels = parts
    if want_psf is not None and gains is not None:
        _measure_coupling(out, prep, spec, gains, stokes_weight(prep.weight))
    return out


def channel_view(prep: PreparedRows, lo: float, hi: float) -> tuple[PreparedRows, slice | np.ndarray] | None:
    """The channels of ``prep`` in ``[lo, hi)`` Hz as rows of their own (sharing ``prep``'s arrays,
    keeping their own per-facet caches between passes) and their channel selection; None if none."""
    key = (lo, hi)
    if key not in prep.views:
        idx = np.flatnonzero((prep.freq >= lo) & (prep.freq < hi))
        if idx.size == 0:
            prep.views[key] = None
        else:
            sel = slice(int(idx[0]), int(idx[-1]) + 1) if np.all(np.diff(idx) == 1) else idx
            sub = replace(
                prep,
                freq=prep.freq[sel],
                vis=prep.vis[:, sel],
                weight=prep.weight[:, sel],
                cells=None,
                averages={},
                h={},
                views={},
            )
            prep.views[key] = (sub, sel)
    return prep.views[key]


def _grid_group(
    prep: PreparedRows,
    spec: PassSpec,
    gains: RowGains | None,
    components: Mapping[int, Components] | None,
    want_psf: tuple[int, int] | None,
    measure: bool,
) -> PassPartial:
    """:func:`grid_rows` for one channel group (``measure``: also the facet coupling, with the PSF)."""
    uvw, freq, sampling = prep.uvw, prep.freq, spec.sampling
    ws = stokes_weight(prep.weight)
    images, wsum = [], np.zeros(len(spec.boxes))
    if gains is None and prep.npol == 1 and len(spec.boxes) == 1:
        # plain imaging: one temporary of the data's size at most
        box = spec.boxes[0]
        v = prep.vis[..., 0]
        if components and 0 in components:
            mv = gridder.degrid(uvw, freq, _box_model(box, components[0]), sampling, mask=ws > 0, offset=box.offset)
            v = np.subtract(v, mv, out=mv)
        images.append(gridder.grid(uvw, freq, v, ws, box.shape, sampling, offset=box.offset).astype(np.float64))
        wsum[0] = float(ws.sum(dtype=np.float64))
        del v
    elif gains is not None and prep.npol == 1 and spec.averaged:
        _grid_averaged(prep, spec, gains, components, ws, images, wsum)
    else:
        res = prep.vis
        if components:
            sel = ws > 0
            res = res.copy()
            for d, comps in components.items():
                box = spec.boxes[d]
                mv = gridder.degrid(uvw, freq, _box_model(box, comps), sampling, mask=sel, offset=box.offset)
                res -= mv[..., None] if gains is None else corrupt(mv, *gains.pick(d))
        for f, box in enumerate(spec.boxes):
            if gains is None:
                v, w = _stokes(res, prep.weight)
            else:
                v, w = _stokes(*correct(res, prep.weight, *gains.pick(f)))
            images.append(gridder.grid(uvw, freq, v, w, box.shape, sampling, offset=box.offset).astype(np.float64))
            wsum[f] = float(w.sum(dtype=np.float64))
    out = PassPartial(images, wsum)
    if want_psf is not None:
        out.psf = gridder.psf_image(uvw, freq, ws, want_psf, sampling)  # float32: it is twice the image
        out.psf_wsum = float(ws.sum(dtype=np.float64))
        if gains is not None and measure:
            _measure_coupling(out, prep, spec, gains, ws)
    return out


def _measure_coupling(out: PassPartial, prep: PreparedRows, spec: PassSpec, gains: RowGains, ws: np.ndarray) -> None:
    """The facet coupling and scattered responses of these rows into ``out``."""
    # the time slots measured are the same whatever the ranges: about 16 of them
    every = max(1, prep.n_slots // COUPLING_SLOTS)
    out.coupling = facet_coupling(gains, ws, len(spec.boxes), np.flatnonzero(prep.step % every == 0))
    out.responses, out.response_wsum = facet_response(prep, spec, gains, ws)


def _facet_h(prep: PreparedRows, spec: PassSpec, gains: RowGains, f: int) -> np.ndarray:
    h = prep.h.get(f)
    if h is None:
        table = np.ascontiguousarray(gains.table[:, :, :, f, 0].transpose(2, 0, 1))
        h = averaging.facet_h(prep, table, gains.index[0], spec.centres[f][:2])
        if spec.cache_h:
            prep.h[f] = h
    return h


def _facet_average(prep: PreparedRows, spec: PassSpec, f: int, h: np.ndarray) -> averaging.FacetAverage:
    avg = prep.averages.get(f)
    if avg is None:
        l0, m0, rho = spec.centres[f]
        avg = prep.averages[f] = averaging.plan(prep, h, (l0, m0), rho, spec.max_loss)
    return avg


_ONE_CHANNEL = np.array([averaging.C])  # averaged samples: uvw in wavelengths

#: facets processed side by side in one pass at most (in the first pass each builds its corrections
#: and averaging plan, a few sample-sized temporaries)
_MAX_FACET_THREADS = 4


def _grid_averaged(
    prep: PreparedRows,
    spec: PassSpec,
    gains: RowGains,
    components: Mapping[int, Components] | None,
    ws: np.ndarray,
    images: list,
    wsum: np.ndarray,
) -> None:
    """The facet pass with per-facet averaging: predict each facet's model at its averaged samples,
    expand, corrupt and subtract sample by sample; then average the residual, corrected, per facet
    and grid that (see :mod:`ddpipe.imaging.averaging`).

    Facets run side by side in threads (the gridder and the large NumPy operations release the
    GIL), each gridder call with its share of the threads: the per-sample NumPy work, one thread
    each, then overlaps the gridding instead of leaving cores idle.
    """
    n = len(spec.boxes)
    workers = max(1, min(spec.nthreads, n, _MAX_FACET_THREADS))
    sampling = replace(spec.sampling, nthreads=max(1, spec.nthreads // workers))
    res = prep.vis[..., 0]
    lock = threading.Lock()

    def predict(d: int) -> None:
        h = _facet_h(prep, spec, gains, d)
        avg = _facet_average(prep, spec, d, h)
        if avg.n_samples == 0:
            return
        box = spec.boxes[d]
        mv = gridder.degrid(
            avg.vuw, _ONE_CHANNEL, _box_model(box, components[d]), sampling, offset=box.offset, swapped=True
        )
        avg.subtract_expanded(mv, h, res, lock)

    def image(f: int) -> np.ndarray:
        box = spec.boxes[f]
        h = _facet_h(prep, spec, gains, f)
        avg = _facet_average(prep, spec, f, h)
        if avg.n_samples == 0:
            return np.zeros(box.shape)
        v = avg.average(res, ws, h)
        wsum[f] = float(avg.weight.sum(dtype=np.float64))
        return gridder.grid(
            avg.vuw,
            _ONE_CHANNEL,
            v[:, None],
            avg.weight[:, None],
            box.shape,
            sampling,
            offset=box.offset,
            swapped=True,
        ).astype(np.float64)

    with ThreadPoolExecutor(workers) as pool:
        if components:
            res = res.copy()
            list(pool.map(predict, list(components)))
        images.extend(pool.map(image, range(n)))


def _stokes_gain(gains: RowGains, d: int) -> np.ndarray:
    """``(row, chan)`` Stokes I gain product g_p conj(g_q) of direction ``d`` (hands averaged)."""
    gp, gq = gains.pick(d)
    g = gp * np.conj(gq)
    return np.where(np.isfinite(g), g, 0).mean(axis=-1)


#: the scattered response is measured on every this many time steps
RESPONSE_EVERY = 4
#: the facet coupling is measured on about this many time slots, evenly spread
COUPLING_SLOTS = 16


def facet_response(prep: PreparedRows, spec: PassSpec, gains: RowGains, ws: np.ndarray) -> tuple[dict, float]:
    """How a facet-``d`` point source at the centre of a ``response_size``² image appears in facet
    ``f``'s corrected image: ``{(f, d): Σ w G_d conj(G_f) e^{...}, "psf": Σ w e^{...}}`` and Σ w
    (2-D, unnormalised), for every neighbour pair.

    Its centre is the coherent coupling; the rest, minus that fraction of the PSF, is
    what the gain ratio scatters, which no minor cycle can know. Measured on every
    :data:`RESPONSE_EVERY`-th time step, with that subsample's own PSF: the near-in
    response does not change, the cost drops as much. G is the first hand's gain
    product (an estimate: it only sets the major-cycle gain). The pair (d, f) is
    (f, d) mirrored through the centre (its data are the complex conjugate).
    """
    n = min(spec.response_size, *spec.shape)
    n += n % 2
    tidx, a1, a2 = gains.index
    sel = np.flatnonzero(prep.step % RESPONSE_EVERY == 0)  # the same slots whatever the ranges
    t, p, q = tidx[sel], a1[sel], a2[sel]
    uvw, w = prep.uvw[sel], ws[sel]
    flat = replace(spec.sampling, wterm=False)
    out = {"psf": gridder.grid(uvw, prep.freq, np.ones(w.shape, np.complex64), w, (n, n), flat).astype(np.float64)}
    for f, d in spec.neighbours:
        if (f, d) in out:
            continue
        ratio = gains.table[:, :, :, d, 0] * np.conj(gains.table[:, :, :, f, 0])  # (time, chan, ant)
        ratio = np.ascontiguousarray(ratio.transpose(2, 0, 1))
        v = ratio[p, t] * np.conj(ratio[q, t])
        v[~np.isfinite(v)] = 0
        img = gridder.grid(uvw, prep.freq, v.astype(np.complex64), w, (n, n), flat).astype(np.float64)
        out[(f, d)] = img
        out[(d, f)] = np.roll(img[::-1, ::-1], 1, axis=(0, 1))
    return out, float(w.sum(dtype=np.float64))


def scatter_level(total: PassPartial) -> float:
    """The largest scattered response between neighbouring facets, relative to the PSF peak.

    For each neighbour pair, the response image (:func:`facet_response`, normalised by
    its weight sum and facet f's mean |G_f|²) minus its centre value times the
    response's PSF; its largest absolute value. 0 when the facets' gains are alike or
    the data average the scatter away.
    """
    worst = 0.0
    resp = total.responses or {}
    if "psf" not in resp or total.response_wsum <= 0:
        return worst
    psf = resp["psf"] / total.response_wsum
    n = psf.shape[0]
    for key, img in resp.items():
        if key == "psf" or total.wsum[key[0]] <= 0:
            continue
        gain2 = total.wsum[key[0]] / total.psf_wsum if total.psf_wsum > 0 else 1.0
        r = img / (total.response_wsum * gain2)
        # (row and column 0 of a mirrored response wrap around: left out)
        worst = max(worst, float(np.abs(r - r[n // 2, n // 2] * psf)[1:, 1:].max()))
    return worst


def facet_coupling(gains: RowGains, weight: np.ndarray, n_facets: int, rows: np.ndarray | None = None) -> np.ndarray:
    """``S[f, d] = Σ w G_d conj(G_f)`` over ``rows`` (default all); ``(nf, nf)`` complex.

    A component of facet ``d`` appears in facet ``f``'s corrected image through the
    gain ratio G_d / G_f of every sample: its mean, ``S[f, d] / S[f, f]``, is how much
    of the PSF it leaves there (1 on its own facet, near 0 where the two directions'
    gains are unrelated); the rest scatters like noise. G is the Stokes I product
    g_p conj(g_q) (the hands averaged when they differ).
    """
    sel = slice(None) if rows is None else rows
    sub = RowGains(gains.table, gains.index[:, sel])
    w = weight[sel]
    prods = [_stokes_gain(sub, d) for d in range(n_facets)]
    s = np.zeros((n_facets, n_facets), dtype=np.complex128)
    for f in range(n_facets):
        wf = w * np.conj(prods[f])
        for d in range(n_facets):
            s[f, d] = np.sum(wf * prods[d], dtype=np.complex128)
    return s


def coupling_matrix(sums: np.ndarray) -> np.ndarray:
    """``C[f, d]``: the fraction of a facet-``d`` component's PSF seen in facet ``f`` (real, C[d, d] = 1)."""
    diag = np.real(np.diag(sums)).copy()
    diag[diag <= 0] = np.inf
    c = np.real(sums) / diag[:, None]
    np.fill_diagonal(c, 1.0)
    return np.clip(c, -1.0, 1.0).astype(np.float32)


def split_model(model: np.ndarray, spec: PassSpec, labels: np.ndarray | None) -> dict[int, Components]:
    """The model's non-zero pixels per box, in box pixels (each facet's own pixels only). A
    ``(N, ny, nx)`` model (joined channels) gives values ``(N, component)``."""
    ys, xs = np.nonzero(model if model.ndim == 2 else np.any(model != 0, axis=0))
    if ys.size == 0:
        return {}
    vals = model[..., ys, xs]
    out = {}
    if not spec.facets:
        return {0: (ys, xs, vals)}
    lab = labels[ys, xs]
    for box in spec.boxes:
        sel = lab == box.index
        if sel.any():
            out[box.index] = (ys[sel] - box.y0, xs[sel] - box.x0, vals[..., sel])
    return out


def finish(
    total: PassPartial, spec: PassSpec, labels: np.ndarray | None, what: str
) -> tuple[np.ndarray, np.ndarray | None]:
    """Residual image ``(ny, nx)`` float32 in Jy/beam and the normalised PSF (float32) or None.

    The facet coupling (:func:`coupling_matrix`) of a pass that made the PSF stays in
    ``total.coupling``.

    Raises
    ------
    ValueError
        Nothing had weight (``what`` names the data for the caller's message).
    """
    if not np.any(total.wsum > 0):
        raise ValueError(what)
    residual = np.zeros(spec.shape, dtype=np.float64)
    for box, img, w in zip(spec.boxes, total.images, total.wsum):
        if w > 0:
            where = np.ones(spec.shape, dtype=bool) if not spec.facets else labels == box.index
            box.paste(residual, img / w, where)
    psf = None
    if total.psf is not None:
        psf = (total.psf / total.psf_wsum).astype(np.float32)
    return residual.astype(np.float32), psf


def finish_channels(
    total: PassPartial, spec: PassSpec, labels: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Per output channel (:attr:`PassPartial.channels`): the residual cube ``(N, ny, nx)``, the PSF
    cube or None, and each channel's weight (its Stokes I weight sum; 0 for a channel without data,
    whose images are 0)."""
    cubes, psfs, weights = [], [], []
    for part in total.channels:
        weight = part.psf_wsum if part.psf is not None else float(part.wsum.sum())
        try:
            residual, psf = finish(part, spec, labels, "")
        except ValueError:  # no weight in this channel
            residual, psf = np.zeros(spec.shape, np.float32), None
            weight = 0.0
        if part.psf is not None and psf is None:
            psf = np.zeros(part.psf.shape, np.float32)
        cubes.append(residual)
        psfs.append(psf)
        weights.append(weight)
    psf_cube = np.stack(psfs) if psfs[0] is not None else None
    return np.stack(cubes), psf_cube, np.asarray(weights)
