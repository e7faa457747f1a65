"""Per-facet, baseline-dependent averaging of the corrected visibilities (what DDFacet does).

A facet is small: sources in it lie within a radius ρ of its centre, so once the
visibilities are phase-rotated to that centre they vary slowly, and can be
averaged over several time steps and channels before gridding without
smearing those sources by more than a set fraction of their peak. Long
baselines allow little averaging, short ones a lot; each baseline gets its own
time and channel factors from the loss they cause at ρ:

* ``n`` samples along a linear phase ramp of ``δ`` rad per sample keep
  ``|sin(n δ/2) / (n sin(δ/2))|`` of the amplitude;
* time: δ = 2π ρ |Δuvw| ν_max / c per time step (|Δuvw| the baseline's largest
  change between steps, measured from its rows);
* frequency: δ = 2π ρ |uvw|_max Δν / c per channel;
* the product of the two losses stays ≥ 1 − ``max_loss``.

For facet f, with H = G_f e^{+iφ_f} per sample (G_f = g_p conj(g_q) the Stokes I
gain, φ_f = 2π (u l₀ + v m₀ + w (n₀ − 1)) ν / c the phase of the facet centre):

* gridding: the averaged sample is Σ w V conj(H) / Σ w |H|², rotated back to the
  facet centre's phase at the block's weighted mean uvw, with weight Σ w |H|²
  (gain-corrected, with the gain weighting of :func:`ddpipe.imaging.facets.correct`);
* degridding: the facet model is predicted at the averaged samples, rotated to
  the centre, held constant over each block and multiplied by H (rotated back
  and corrupted), sample by sample.

The gains are applied to every sample before averaging (or after the
expansion), never averaged themselves. Averaged samples are gridded as rows of
one channel with uvw in wavelengths (frequency c). Rows must be sorted by
baseline, then time (:func:`ddpipe.imaging.prepared.read_rows` with
``by_baseline``); a :class:`FacetAverage` is built once per facet and range from
the weights and gains and reused on every pass.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from ddpipe.imaging.gridder import swap_uvw
from ddpipe.imaging.prepared import PreparedRows, stokes_weight

C = 299_792_458.0
#: rows summed per call when averaging (what stays in the CPU caches)
_CHUNK_ROWS = 16384
#: the averaging factors tried in channels; in time, the powers of two up to the MS's slot group
FACTORS = (1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 48, 64)


def kept_fraction(n: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """Amplitude kept by averaging ``n`` samples along a phase ramp of ``delta`` rad per sample."""
    n = np.asarray(n, dtype=np.float64)
    half = 0.5 * np.asarray(delta, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.abs(np.sin(n * half) / (n * np.sin(half)))
    return np.where(np.abs(half) < 1e-12, 1.0, out)


def factors(
    rate: np.ndarray,
    length: np.ndarray,
    rho: float,
    freq: np.ndarray,
    max_loss: float,
    n_chan: int,
    slot_group: int = 64,
) -> tuple[np.ndarray, np.ndarray]:
    """Time and channel factors per baseline, the largest product allowed.

    Time factors are the powers of two up to ``slot_group`` (they divide it: a block
    never spans two slot groups, see :attr:`ddpipe.imaging.msdata.MSDescription.slot_group`),
    channel factors those of :data:`FACTORS` up to the channel count.

    Parameters
    ----------
    rate
        ``(nbl,)`` metres: the baseline's largest uvw change between time steps.
    length
        ``(nbl,)`` metres: its largest |uvw|.
    rho
        Radians: the facet's largest distance from its centre.
    freq
        ``(chan,)`` Hz.
    max_loss
        Largest fraction of a source's peak averaging may cost at distance ``rho``.
    n_chan
        Channels.
    slot_group
        The MS's slot group (a power of two).
    """
    nbl = len(rate)
    if max_loss <= 0 or rho <= 0:
        return np.ones(nbl, dtype=np.int64), np.ones(nbl, dtype=np.int64)
    fmax = float(np.max(freq))
    dnu = float(np.max(np.abs(np.diff(freq)))) if len(freq) > 1 else 0.0
    d_t = 2 * np.pi * rho * rate * fmax / C
    d_f = 2 * np.pi * rho * length * dnu / C
    tf = [1 << i for i in range(max(1, slot_group).bit_length()) if (1 << i) <= slot_group]
    cf = [c for c in FACTORS if c <= max(n_chan, 1)]
    best_t = np.ones(nbl, dtype=np.int64)
    best_c = np.ones(nbl, dtype=np.int64)
    best = np.ones(nbl, dtype=np.int64)
    for t in tf:
        kt = kept_fraction(np.full(nbl, t), d_t)
        for c in cf:
            ok = kt * kept_fraction(np.full(nbl, c), d_f) >= 1.0 - max_loss
            better = ok & (t * c > best)
            best_t[better], best_c[better], best[better] = t, c, t * c
    return best_t, best_c


def facet_h(prep: PreparedRows, table: np.ndarray, tidx: np.ndarray, centre: tuple[float, float]) -> np.ndarray:
    """``(row, chan)`` complex64 H = G e^{+iφ} of one facet (see the module docstring).

    ``table`` is the facet's Stokes I gains ``(nant, ntime, chan)`` (complex64,
    contiguous), ``tidx`` each row's time index into it. A non-finite gain gives 0.
    """
    l0, m0 = centre
    n0 = np.sqrt(max(0.0, 1.0 - l0 * l0 - m0 * m0))
    a = (prep.uvw @ np.array([l0, m0, n0 - 1.0])) * (2 * np.pi / C)  # rad per Hz, per row
    freq = prep.freq
    h = table[prep.ant1, tidx]
    h *= np.conj(table[prep.ant2, tidx])
    steps = np.diff(freq)
    if len(freq) > 1 and np.allclose(steps, steps[0], rtol=1e-9, atol=0.0):
        # uniform channels: e^{i a ν_k} = e^{i a ν_0} (e^{i a Δν})^k, a product per sample instead of an exp
        z = np.empty(h.shape, dtype=np.complex128)
        z[:, 0] = np.exp(1j * a * freq[0])
        z[:, 1:] = np.exp(1j * a * steps[0])[:, None]
        np.cumprod(z, axis=1, out=z)
        h *= z.astype(np.complex64)
    else:
        h *= np.exp(1j * np.outer(a, freq)).astype(np.complex64)
    bad = ~np.isfinite(h)
    if bad.any():
        h[bad] = 0
    return h


def baseline_runs(prep: PreparedRows) -> tuple[np.ndarray, np.ndarray]:
    """Start row and row count of each baseline's run (rows sorted by baseline, then time)."""
    key = prep.ant1.astype(np.int64) * 65536 + prep.ant2
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    return starts, np.diff(np.r_[starts, len(key)])


@dataclass
class FacetAverage:
    """How one facet averages one range: blocks, their channel groups, and the averaged samples.

    ``starts`` are the first rows of the time blocks (all baselines, in row order),
    ``lengths`` their row counts; ``groups`` lists, per channel factor, the indices of
    its blocks and its channel edges. The averaged samples follow the groups in
    order, blocks by channel groups, only those with weight: ``vuw`` their weighted
    mean uvw in wavelengths as the gridder takes it (:func:`ddpipe.imaging.gridder.swap_uvw`),
    ``weight`` and ``back`` = e^{+iφ̄}, the facet centre's phase there.
    """

    starts: np.ndarray
    lengths: np.ndarray
    groups: list[tuple[np.ndarray, np.ndarray]]
    vuw: np.ndarray
    weight: np.ndarray
    back: np.ndarray
    keep: np.ndarray  # bool over all (block, channel group) samples, group by group
    n_rows: int
    n_chan: int
    row_block: np.ndarray  # (row,) int32: each row's block

    @property
    def n_samples(self) -> int:
        return len(self.weight)

    @property
    def nbytes(self) -> int:
        return sum(
            a.nbytes for a in (self.starts, self.lengths, self.vuw, self.weight, self.back, self.keep, self.row_block)
        ) + sum(b.nbytes + e.nbytes for b, e in self.groups)

    def _chunks(self) -> list[tuple[int, int, int, int]]:
        """``(first block, end block, first row, end row)`` of runs of whole blocks of ~:data:`_CHUNK_ROWS` rows."""
        cuts = np.searchsorted(self.starts, np.arange(0, self.n_rows, _CHUNK_ROWS))
        cuts = np.unique(np.r_[cuts, len(self.starts)])
        ends = np.r_[self.starts, self.n_rows]
        return [(int(a), int(b), int(ends[a]), int(ends[b])) for a, b in zip(cuts[:-1], cuts[1:])]

    def _per_group(self, blocksum: np.ndarray) -> np.ndarray:
        """``(nblock, chan)`` block sums → the averaged samples' sums (all, kept or not)."""
        parts = [np.add.reduceat(blocksum[blocks], edges, axis=1).ravel() for blocks, edges in self.groups]
        return np.concatenate(parts) if parts else np.zeros(0, blocksum.dtype)

    def average(self, vis: np.ndarray, weight: np.ndarray, h: np.ndarray) -> np.ndarray:
        """Averaged, corrected samples ``(n,)`` complex64 of ``vis (row, chan)`` for this facet.

        Runs of whole blocks at a time, so each sample is read once and its product with
        conj(H) and the weight stays in the CPU caches until it is summed.
        """
        sums = np.empty((len(self.starts), self.n_chan), dtype=np.complex64)
        buf = np.empty((min(self.n_rows, 4 * _CHUNK_ROWS), self.n_chan), dtype=np.complex64)
        for a, b, r0, r1 in self._chunks():
            x = buf[: r1 - r0] if r1 - r0 <= len(buf) else np.empty((r1 - r0, self.n_chan), np.complex64)
            np.conjugate(h[r0:r1], out=x)
            np.multiply(x, vis[r0:r1], out=x)
            np.multiply(x, weight[r0:r1], out=x)
            sums[a:b] = np.add.reduceat(x, self.starts[a:b] - r0, axis=0)
        s = self._per_group(sums)[self.keep]
        return (s / self.weight * self.back).astype(np.complex64)

    def subtract_expanded(
        self, model: np.ndarray, h: np.ndarray, target: np.ndarray, lock: threading.Lock | None = None
    ) -> None:
        """``target (row, chan) -= `` the averaged model ``(n,)`` held over each block, times H.

        Runs of blocks at a time (no sample-sized temporary); ``lock`` guards each
        subtraction when other threads subtract their facets from the same ``target``.
        """
        full = np.zeros(self.keep.size, dtype=np.complex64)
        full[self.keep] = model.reshape(-1) * np.conj(self.back)
        blocks = np.zeros((len(self.starts), self.n_chan), dtype=np.complex64)
        at = 0
        for b, edges in self.groups:
            ng = len(edges)
            widths = np.diff(np.r_[edges, self.n_chan])
            blocks[b] = np.repeat(full[at : at + len(b) * ng].reshape(len(b), ng), widths, axis=1)
            at += len(b) * ng
        buf = np.empty((min(self.n_rows, 4 * _CHUNK_ROWS), self.n_chan), dtype=np.complex64)
        for _, _, r0, r1 in self._chunks():
            x = buf[: r1 - r0] if r1 - r0 <= len(buf) else np.empty((r1 - r0, self.n_chan), np.complex64)
            np.take(blocks, self.row_block[r0:r1], axis=0, out=x, mode="clip")  # "raise" would buffer
            np.multiply(x, h[r0:r1], out=x)
            if lock is None:
                np.subtract(target[r0:r1], x, out=target[r0:r1])
            else:
                with lock:
                    np.subtract(target[r0:r1], x, out=target[r0:r1])


def plan(prep: PreparedRows, h: np.ndarray, centre: tuple[float, float], rho: float, max_loss: float) -> FacetAverage:
    """The averaging of one facet over a range (rows sorted, weights final, ``h`` from :func:`facet_h`).

    ``centre`` is the facet centre's (l, m), ``rho`` (radians) its largest distance from
    it, ``max_loss`` the largest fraction of a peak averaging may cost at ``rho``.
    """
    if not prep.by_baseline:
        raise ValueError("per-facet averaging needs rows ordered by baseline (read_rows(by_baseline=True))")
    nrow, nchan = h.shape
    bl_start, bl_len = baseline_runs(prep)
    bl_of_row = np.repeat(np.arange(len(bl_start)), bl_len)
    tidx = prep.step  # time slots counted from the MS's first: blocks align the same in every range
    # each baseline's largest |uvw| and largest uvw change per time step
    length = np.maximum.reduceat(np.linalg.norm(prep.uvw, axis=1), bl_start)
    d_uvw = np.linalg.norm(np.diff(prep.uvw, axis=0), axis=1)
    d_t = np.maximum(np.diff(tidx), 1)
    same = bl_of_row[1:] == bl_of_row[:-1]
    step = np.where(same, d_uvw / d_t, 0.0)
    rate = np.zeros(len(bl_start))
    np.maximum.at(rate, bl_of_row[1:], step)
    tf, cf = factors(rate, length, rho, prep.freq, max_loss, nchan, prep.slot_group)
    # time blocks: rows of one baseline whose time index // factor agree
    key = bl_of_row.astype(np.int64) * (int(tidx.max()) + 1) + tidx // tf[bl_of_row]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    lengths = np.diff(np.r_[starts, nrow])
    block_cf = cf[bl_of_row[starts]]
    row_cf = cf[bl_of_row]
    ws = stokes_weight(prep.weight)
    wh = ws * (np.abs(h) ** 2)
    wblock = np.add.reduceat(wh, starts, axis=0)  # (nblock, chan)
    # Σ w|H|² ν/c · uvw per block and channel: uvw_r Σ_k w_rk ν_k / c
    wnu = wh * (prep.freq / C)[None, :]
    groups, uvws, wsums = [], [], []
    for c in np.unique(block_cf):
        blocks = np.flatnonzero(block_cf == c)
        edges = np.arange(0, nchan, int(c))
        groups.append((blocks, edges))
        wsums.append(np.add.reduceat(wblock[blocks], edges, axis=1).ravel())
        # rows of these blocks (in row order): their per-row, per-group sums of w ν / c, times uvw,
        # summed per block
        rows = np.flatnonzero(row_cf == c)
        rs = np.add.reduceat(wnu[rows], edges, axis=1)  # (nrow_c, ngroup)
        inner = np.r_[0, np.cumsum(lengths[blocks])[:-1]]
        u = np.add.reduceat(prep.uvw[rows][:, None, :] * rs[:, :, None], inner, axis=0)  # (nb, ng, 3)
        uvws.append(u.reshape(-1, 3))
    wsum = np.concatenate(wsums)
    uvw = np.concatenate(uvws)
    keep = wsum > 0
    uvw = uvw[keep] / wsum[keep, None]
    l0, m0 = centre
    n0 = np.sqrt(max(0.0, 1.0 - l0 * l0 - m0 * m0))
    back = np.exp(2j * np.pi * (uvw @ np.array([l0, m0, n0 - 1.0]))).astype(np.complex64)
    row_block = np.repeat(np.arange(len(starts), dtype=np.int32), lengths)
    return FacetAverage(
        starts, lengths, groups, swap_uvw(uvw), wsum[keep].astype(np.float32), back, keep, nrow, nchan, row_block
    )
