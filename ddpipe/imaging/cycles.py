"""Major/minor-cycle CLEAN (Cotton–Schwab) around a function that recomputes the residual.

The loop itself knows nothing about visibilities: ``recompute(model)`` returns
the exact residual image of a model (a pass over the data in ``make_image``,
or an image-plane convolution in the tests). Stopping follows WSClean: each
minor cycle cleans down to ``max(threshold, auto_threshold × MAD rms, (1 −
mgain) × peak)``; CLEAN ends when the peak is at the threshold, after ``niter``
components, or after ``max_major`` major cycles.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ddpipe.imaging.hogbom import MinorResult, hogbom
from ddpipe.imaging.mfs import Channels, joined_hogbom
from ddpipe.imaging.multiscale import MultiscaleCleaner
from ddpipe.imaging.stats import mad_rms

log = logging.getLogger(__name__)

#: a major cycle whose exact residual peak exceeds the level its minor cycle cleaned to by this
#: factor shows the minor cycle's PSF model is off: the major-cycle gain is lowered
OVERSHOOT = 1.2
#: the major-cycle gain is never lowered below this
MIN_MGAIN = 0.5


@dataclass(frozen=True)
class CleanSettings:
    """What the major/minor loop needs from the imaging config."""

    niter: int
    gain: float
    mgain: float
    threshold: float = 0.0
    auto_threshold: float = 0.0
    max_major: int = 20


@dataclass(frozen=True)
class CleanResult:
    """Final model (Jy/pixel) and residual (Jy/beam), ``(ny, nx)`` float32 (``(N, ny, nx)`` with joined
    channels), and the bookkeeping."""

    model: np.ndarray
    residual: np.ndarray
    n_iter: int
    n_major: int
    seconds_minor: float
    seconds_major: float


def clean_cycles(
    dirty: np.ndarray,
    psf2: np.ndarray,
    settings: CleanSettings,
    recompute: Callable[[np.ndarray], np.ndarray],
    *,
    mask: np.ndarray | None = None,
    cleaner: MultiscaleCleaner | None = None,
    coupling: tuple[np.ndarray, np.ndarray] | None = None,
    channels: Channels | None = None,
) -> CleanResult:
    """Deconvolve ``dirty`` with major cycles.

    Parameters
    ----------
    dirty
        ``(ny, nx)`` float32 dirty image, Jy/beam.
    psf2
        ``(2ny, 2nx)`` PSF, peak 1 at its centre.
    settings
        Gains, limits and thresholds.
    recompute
        ``model (ny, nx) → residual (ny, nx)``: the exact residual of a model.
    mask
        ``(ny, nx)`` bool, where components may go.
    cleaner
        A multiscale cleaner to use instead of Hogbom.
    coupling
        ``(labels, C)`` facet coupling for Hogbom (see :func:`ddpipe.imaging.hogbom.hogbom`).
    channels
        Joined channels (:mod:`ddpipe.imaging.mfs`): ``dirty``, ``psf2``, the model and what
        ``recompute`` takes and returns have a leading channel axis; thresholds and peaks
        are those of the MFS image.
    """
    residual = dirty.astype(np.float32, copy=True)
    model = np.zeros(dirty.shape, dtype=np.float32)
    n_iter, n_major, t_minor, t_major = 0, 0, 0.0, 0.0
    mgain, reached = settings.mgain, None  # reached: the level the last minor cycle cleaned down to
    while n_iter < settings.niter and n_major < settings.max_major:
        t0 = time.perf_counter()
        mfs = residual if channels is None else channels.mfs(residual)
        rms = mad_rms(mfs)
        stop = max(settings.threshold, settings.auto_threshold * rms)
        absr = np.abs(mfs) if mask is None else np.where(mask, np.abs(mfs), 0)
        peak = float(absr.max())
        if peak <= stop:
            t_minor += time.perf_counter() - t0
            break
        mgain = _major_gain(mgain, peak, reached, n_major + 1)
        minor_stop = max(stop, (1.0 - mgain) * peak)
        res = _minor_cycle(
            residual, psf2, model, settings, minor_stop, settings.niter - n_iter, mask, cleaner, coupling, channels
        )
        n_iter += res.n_iter
        reached = minor_stop if res.reached_stop else None
        t_minor += time.perf_counter() - t0
        log.info(
            "major cycle %d: peak %.4g Jy/beam, rms %.3g, stop %.4g; %d components (total %d)",
            n_major + 1,
            peak,
            rms,
            minor_stop,
            res.n_iter,
            n_iter,
        )
        if res.n_iter == 0:
            break
        t0 = time.perf_counter()
        residual = recompute(model).astype(np.float32, copy=False)
        t_major += time.perf_counter() - t0
        n_major += 1
    return CleanResult(model, residual, n_iter, n_major, t_minor, t_major)


def _major_gain(mgain: float, peak: float, reached: float | None, major: int) -> float:
    """The major-cycle gain for the next minor cycle: lowered when the exact residual's ``peak`` is well
    above the level ``reached`` the last minor cycle believed it had cleaned to. Then the minor cycle's
    PSF model of the image is off (with facets: the response in other facets), so it cleans less deep."""
    if reached is None or peak <= OVERSHOOT * reached or mgain <= MIN_MGAIN:
        return mgain
    new = max(MIN_MGAIN, 1.0 - 2.0 * (1.0 - mgain))
    log.info(
        "major cycle %d: peak %.4g Jy/beam after cleaning to %.4g; major-cycle gain %.2g -> %.2g",
        major,
        peak,
        reached,
        mgain,
        new,
    )
    return new


def _minor_cycle(
    residual: np.ndarray,
    psf2: np.ndarray,
    model: np.ndarray,
    settings: CleanSettings,
    stop: float,
    budget: int,
    mask: np.ndarray | None,
    cleaner: MultiscaleCleaner | None,
    coupling: tuple[np.ndarray, np.ndarray] | None,
    channels: Channels | None,
) -> MinorResult:
    """One minor cycle down to ``stop`` (at most ``budget`` components): multiscale, Hogbom or joined."""
    if channels is not None:
        return joined_hogbom(
            residual,
            psf2,
            model,
            channels,
            gain=settings.gain,
            stop=stop,
            max_iter=budget,
            mask=mask,
            coupling=coupling,
        )
    if cleaner is not None:
        return cleaner.clean(residual, model, gain=settings.gain, stop=stop, max_iter=budget, mask=mask)
    return hogbom(
        residual,
        psf2,
        model,
        gain=settings.gain,
        stop=stop,
        max_iter=budget,
        mask=mask,
        update_residual=False,
        coupling=coupling,
    )
