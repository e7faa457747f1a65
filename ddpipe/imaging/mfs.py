"""Joined-channel (multi-frequency) Hogbom CLEAN, as WSClean's ``-join-channels`` does it.

With N output channels the residual is a cube ``(N, ny, nx)``, one image per
channel group, each with its own PSF. Peaks are found on the multi-frequency
(MFS) image, the channels' weighted average (each channel weighted by its
visibility weight sum, as the MFS image the passes make); a component's value in
each channel is that channel's residual at the peak, smoothed by the spectral fit
when one is asked for (``-fit-spectral-pol`` / ``-fit-spectral-log-pol``,
:class:`ddpipe.imaging.spectral.SpectralFitter`), and each channel subtracts its
own value times its own PSF. The loop runs on a candidate list as
:func:`ddpipe.imaging.hogbom.hogbom` does (exact for the candidates; the full
cube is brought up to date only when the list had to be capped).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ddpipe.imaging.convolve import KernelConvolver
from ddpipe.imaging.hogbom import MinorResult, candidate_list

#: per-channel values of a component → the values it subtracts (the spectral fit), or None
Smoother = Callable[[np.ndarray], np.ndarray] | None


@dataclass(frozen=True)
class Channels:
    """How the output channels combine: their weights (visibility weight sums) and the fit."""

    weights: np.ndarray  # (N,)
    smooth: Smoother = None

    @property
    def normalised(self) -> np.ndarray:
        total = float(np.sum(self.weights))
        if total <= 0:
            return np.full(len(self.weights), 1.0 / len(self.weights))
        return (np.asarray(self.weights, dtype=np.float64) / total).astype(np.float32)

    def mfs(self, cube: np.ndarray) -> np.ndarray:
        """The weighted average ``(ny, nx)`` of a ``(N, ny, nx)`` cube."""
        return np.tensordot(self.normalised, cube, axes=1).astype(np.float32, copy=False)


def joined_hogbom(
    residual: np.ndarray,
    psfs: np.ndarray,
    model: np.ndarray,
    channels: Channels,
    *,
    gain: float,
    stop: float,
    max_iter: int,
    mask: np.ndarray | None = None,
    max_candidates: int = 100_000,
    coupling: tuple[np.ndarray, np.ndarray] | None = None,
) -> MinorResult:
    """Joined-channel Hogbom in place on ``residual`` and ``model`` (both ``(N, ny, nx)``).

    Parameters
    ----------
    residual, model
        Residual cube (Jy/beam) and model cube (Jy/pixel), float32, updated in place.
    psfs
        ``(N, py, px)`` PSF of each channel, peak 1 on ``(py//2, px//2)``.
    channels
        The channel weights (peaks are found on the weighted average) and the spectral fit.
    gain, stop, max_iter, mask, max_candidates, coupling
        As in :func:`ddpipe.imaging.hogbom.hogbom`; ``stop`` applies to the MFS image.

    Returns a :class:`~ddpipe.imaging.hogbom.MinorResult` (``peak`` of the MFS image).
    """
    n_chan, ny, nx = residual.shape
    psfs = np.asarray(psfs, dtype=np.float32)
    wn = channels.normalised
    flat = residual.reshape(n_chan, -1)
    n_done = 0
    convolvers: list[KernelConvolver] | None = None
    while True:
        peak, idx, level, reg = candidate_list(np.abs(channels.mfs(residual)), mask, stop, max_candidates, coupling)
        if peak <= stop or n_done >= max_iter:
            return MinorResult(n_done, peak, peak <= stop)
        amps, n, peak = _clean_list(
            flat[:, idx].astype(np.float32),
            np.divmod(idx, nx),
            psfs,
            wn,
            channels.smooth,
            gain=gain,
            level=level,
            budget=max_iter - n_done,
            scales=None if coupling is None else (reg, coupling[1]),
        )
        n_done += n
        delta = np.zeros_like(model)
        delta.reshape(n_chan, -1)[:, idx] = amps
        model += delta
        if level <= stop:
            # pixels that rose above the level while cleaning wait for the next major cycle
            return MinorResult(n_done, peak, peak <= stop)
        # the list was capped: bring the whole cube up to date and go on
        if convolvers is None:
            convolvers = [KernelConvolver(p, (ny, nx), dtype=np.float32) for p in psfs]
        _subtract(residual, delta, convolvers, coupling)


def _clean_list(
    vals: np.ndarray,
    yx: tuple[np.ndarray, np.ndarray],
    psfs: np.ndarray,
    wn: np.ndarray,
    smooth: Smoother,
    *,
    gain: float,
    level: float,
    budget: int,
    scales: tuple[np.ndarray, np.ndarray] | None,
) -> tuple[np.ndarray, int, float]:
    """The joined loop on a candidate list: ``vals (N, k)`` per-channel values at pixels ``yx``
    (updated in place), down to ``level`` on their weighted average or ``budget`` components:
    (amplitudes ``(N, k)``, components, last MFS |peak|)."""
    ys, xs = yx
    n_chan, py, px = psfs.shape
    cy, cx = py // 2, px // 2
    flat_psf = psfs.reshape(n_chan, -1)
    # a PSF twice the image size covers every offset between two candidates: no bounds checks
    inside = len(ys) == 0 or (np.ptp(ys) <= min(cy, py - 1 - cy) and np.ptp(xs) <= min(cx, px - 1 - cx))
    at = ys.astype(np.int64) * px + xs
    amps = np.zeros(vals.shape, dtype=np.float64)
    mfs = wn @ vals
    n, peak = 0, 0.0
    while n < budget:
        k = int(np.argmax(np.abs(mfs)))
        peak = abs(float(mfs[k]))
        if peak <= level:
            break
        v = vals[:, k].astype(np.float64)
        a = gain * (v if smooth is None else np.asarray(smooth(v), dtype=np.float64))
        amps[:, k] += a
        ok = slice(None)
        offset = at - at[k] + (cy * px + cx)
        if not inside:
            dy, dx = ys - ys[k] + cy, xs - xs[k] + cx
            ok = np.flatnonzero((dy >= 0) & (dy < py) & (dx >= 0) & (dx < px))
            offset = offset[ok]
        p = np.take(flat_psf, offset, axis=1)  # (N, m)
        if scales is not None:
            reg, cmat = scales
            p *= cmat[reg[ok], reg[k]]
        p *= a.astype(np.float32)[:, None]
        vals[:, ok] -= p
        mfs[ok] -= wn @ p
        n += 1
    return amps, n, peak


def _subtract(
    residual: np.ndarray,
    delta: np.ndarray,
    convolvers: list[KernelConvolver],
    coupling: tuple[np.ndarray, np.ndarray] | None,
) -> None:
    """``residual[c] -= PSF_c * delta[c]`` for every channel (with ``coupling``, as in Hogbom)."""
    for c, conv in enumerate(convolvers):
        if coupling is None:
            residual[c] -= conv(delta[c]).astype(residual.dtype, copy=False)
            continue
        labels, cmat = coupling
        for d in np.unique(labels[delta[c] != 0]):
            part = conv(np.where(labels == d, delta[c], 0))
            residual[c] -= (cmat[labels, d] * part).astype(residual.dtype, copy=False)
