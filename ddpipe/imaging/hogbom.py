"""Hogbom CLEAN minor cycle on NumPy, with WSClean's "sub-minor" speed-up.

Pixels whose |residual| exceeds the stopping level are gathered once; the
Hogbom loop then runs on that short list only, updating each candidate with the
PSF value at its offset from the component, which is exact for those pixels.
When the list had to be capped (very many pixels above the level), the full
residual is brought up to date with one FFT convolution and the loop resumes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ddpipe.imaging.convolve import KernelConvolver


@dataclass(frozen=True)
class MinorResult:
    """Outcome of one minor cycle."""

    n_iter: int  # components subtracted
    peak: float  # |peak| of the candidates when the cycle stopped
    reached_stop: bool  # stopped on the level, not on the iteration limit


def _candidates(absr: np.ndarray, level: float, max_candidates: int) -> tuple[np.ndarray, float]:
    """Flat indices of pixels above ``level`` (at most ``max_candidates``) and the level used."""
    flat = absr.ravel()
    idx = np.flatnonzero(flat > level)
    if len(idx) > max_candidates:
        kth = len(idx) - max_candidates
        level = float(np.partition(flat[idx], kth)[kth])
        idx = idx[flat[idx] > level]
    return idx, level


def candidate_list(
    absr: np.ndarray,
    mask: np.ndarray | None,
    stop: float,
    max_candidates: int,
    coupling: tuple[np.ndarray, np.ndarray] | None,
) -> tuple[float, np.ndarray, float, np.ndarray | None]:
    """Where a minor cycle's loop runs: the |peak| of ``absr`` inside ``mask``, the flat indices of
    the pixels above ``stop`` (at most ``max_candidates``), the level used, and their facet indices
    (with ``coupling``; else None)."""
    if mask is not None:
        absr = np.where(mask, absr, 0)
    peak = float(absr.max()) if absr.size else 0.0
    idx, level = _candidates(absr, stop, max_candidates)
    return peak, idx, level, None if coupling is None else coupling[0].ravel()[idx]


def hogbom(
    residual: np.ndarray,
    psf: np.ndarray,
    model: np.ndarray,
    *,
    gain: float,
    stop: float,
    max_iter: int,
    mask: np.ndarray | None = None,
    max_candidates: int = 100_000,
    convolver: KernelConvolver | None = None,
    update_residual: bool = True,
    coupling: tuple[np.ndarray, np.ndarray] | None = None,
) -> MinorResult:
    """Run Hogbom CLEAN in place on ``residual`` and ``model``.

    Parameters
    ----------
    residual
        ``(ny, nx)`` float32 residual image (Jy/beam), updated in place.
    psf
        ``(py, px)`` PSF with its peak (1) on ``(py//2, px//2)``; twice the image size
        covers every offset between two pixels (a clipped PSF can make CLEAN diverge).
    model
        ``(ny, nx)`` model image (Jy/pixel); components are added in place.
    gain
        Loop gain.
    stop
        Stop when the |peak| inside the mask is at or below this level.
    max_iter, mask
        Components at most; ``(ny, nx)`` bool, True where they may go (None: everywhere).
    max_candidates
        Longest candidate list; beyond it the level is raised and the loop repeats.
    convolver
        A :class:`KernelConvolver` for ``psf`` (made on demand).
    update_residual
        Bring the whole residual up to date at the end (False: left stale, the caller
        recomputes it in a major cycle).
    coupling
        ``(labels, C)``: ``labels (ny, nx)`` int facet index and ``C (nf, nf)``; a
        component in facet ``d`` is subtracted from facet ``f`` with ``C[f, d]`` × its
        PSF (:func:`ddpipe.imaging.passes.coupling_matrix`: with direction-dependent
        corrections a component reaches other facets through the ratio of the two
        directions' gains, which keeps only that fraction of its PSF coherent).

    Returns a :class:`MinorResult`.
    """
    nx = residual.shape[1]
    psf = np.asarray(psf, dtype=np.float32)
    n_done = 0
    while True:
        peak, idx, level, reg = candidate_list(np.abs(residual), mask, stop, max_candidates, coupling)
        if peak <= stop or n_done >= max_iter:
            return MinorResult(n_done, peak, peak <= stop)
        amps, n, peak = _clean_list(
            residual.ravel()[idx].astype(np.float32),
            np.divmod(idx, nx),
            psf,
            gain=gain,
            level=level,
            budget=max_iter - n_done,
            scales=None if coupling is None else (reg, coupling[1]),
        )
        n_done += n
        delta = np.zeros_like(model)
        delta.ravel()[idx] = amps
        model += delta
        capped = level > stop
        if update_residual or capped:
            if convolver is None:
                convolver = KernelConvolver(psf, residual.shape, dtype=np.float32)
            _subtract(residual, delta, convolver, coupling, None if reg is None else np.unique(reg[amps != 0]))
        if not capped:
            # pixels that rose above the level while cleaning wait for the next major cycle
            return MinorResult(n_done, peak, peak <= stop)


def _clean_list(
    vals: np.ndarray,
    yx: tuple[np.ndarray, np.ndarray],
    psf: np.ndarray,
    *,
    gain: float,
    level: float,
    budget: int,
    scales: tuple[np.ndarray, np.ndarray] | None,
) -> tuple[np.ndarray, int, float]:
    """The Hogbom loop on a candidate list (values ``vals`` at pixels ``yx``, updated in place) down
    to ``level`` or ``budget`` components: (amplitude per candidate, components, last |peak|).
    ``scales`` is ``(facet index per candidate, C)`` as in :func:`hogbom`'s ``coupling``."""
    ys, xs = yx
    py, px = psf.shape
    cy, cx = py // 2, px // 2
    amps = np.zeros(len(vals), dtype=np.float64)
    n = 0
    peak = 0.0
    while n < budget:
        k = int(np.argmax(np.abs(vals)))
        v = float(vals[k])
        peak = abs(v)
        if peak <= level:
            break
        a = gain * v
        amps[k] += a
        dy = ys - ys[k] + cy
        dx = xs - xs[k] + cx
        ok = (dy >= 0) & (dy < py) & (dx >= 0) & (dx < px)
        if scales is not None:
            reg, cmat = scales
            vals[ok] -= np.float32(a) * cmat[reg, reg[k]][ok] * psf[dy[ok], dx[ok]]
        elif ok.all():
            vals -= np.float32(a) * psf[dy, dx]
        else:
            vals[ok] -= np.float32(a) * psf[dy[ok], dx[ok]]
        n += 1
    return amps, n, peak


def _subtract(
    residual: np.ndarray,
    delta: np.ndarray,
    convolver: KernelConvolver,
    coupling: tuple[np.ndarray, np.ndarray] | None,
    facets: np.ndarray | None,
) -> None:
    """``residual -= PSF * delta`` in place; with ``coupling``, each of ``facets``' components reaches
    facet ``f`` scaled by ``C[f, d]``."""
    if coupling is None:
        residual -= convolver(delta).astype(residual.dtype, copy=False)
        return
    labels, cmat = coupling
    for d in facets:
        part = convolver(np.where(labels == d, delta, 0))
        residual -= (cmat[labels, d] * part).astype(residual.dtype, copy=False)


def hogbom_reference(
    residual: np.ndarray, psf: np.ndarray, model: np.ndarray, *, gain: float, stop: float, max_iter: int
) -> int:
    """Textbook full-image Hogbom (slow); the reference the fast version is tested against."""
    ny, nx = residual.shape
    py, px = psf.shape
    cy, cx = py // 2, px // 2
    n = 0
    while n < max_iter:
        k = int(np.argmax(np.abs(residual)))
        y, x = divmod(k, nx)
        v = residual[y, x]
        if abs(v) <= stop:
            break
        a = gain * v
        model[y, x] += a
        y0, y1 = max(0, y - cy), min(ny, y - cy + py)
        x0, x1 = max(0, x - cx), min(nx, x - cx + px)
        residual[y0:y1, x0:x1] -= a * psf[y0 - y + cy : y1 - y + cy, x0 - x + cx : x1 - x + cx]
        n += 1
    return n
