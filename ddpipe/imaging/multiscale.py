"""Multiscale CLEAN (Cornwell 2008, with WSClean-style per-scale sub-minor loops).

Scale ``s`` (pixels) is a circular Gaussian of FWHM ``s`` normalised to unit
sum (``s = 0`` is a delta). Each round convolves the residual with every scale,
normalises by that scale's PSF peak so a point source reads the same on every
scale, picks the scale with the highest biased peak, cleans that scale image on
its candidate pixels with the twice-smoothed PSF, and updates the full residual
and the model by FFT.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ddpipe.imaging.convolve import KernelConvolver
from ddpipe.imaging.hogbom import MinorResult, _candidates

FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


def scale_kernel(scale: float, shape: tuple[int, int]) -> np.ndarray:
    """``(ny, nx)`` unit-sum Gaussian of FWHM ``scale`` pixels centred on ``(ny//2, nx//2)``."""
    ny, nx = shape
    k = np.zeros(shape, dtype=np.float64)
    if scale <= 0:
        k[ny // 2, nx // 2] = 1.0
        return k
    sig = scale * FWHM_TO_SIGMA
    h = int(np.ceil(4 * sig))
    y, x = np.mgrid[-h : h + 1, -h : h + 1]
    g = np.exp(-(x * x + y * y) / (2 * sig * sig))
    y0, x0 = ny // 2 - h, nx // 2 - h
    ys = slice(max(0, y0), min(ny, y0 + 2 * h + 1))
    xs = slice(max(0, x0), min(nx, x0 + 2 * h + 1))
    k[ys, xs] = g[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0]
    return k / k.sum()


class MultiscaleCleaner:
    """Per-image precomputation (scale kernels, smoothed PSFs) for :meth:`clean`."""

    def __init__(
        self,
        psf: np.ndarray,
        scales: Sequence[float],
        image_shape: tuple[int, int] | None = None,
        *,
        scale_bias: float = 0.6,
        nthreads: int = 2,
    ) -> None:
        self.shape = tuple(image_shape or psf.shape)
        self.psf_shape = psf.shape
        self.scales = sorted(float(s) for s in scales) or [0.0]
        py, px = psf.shape
        c = (py // 2, px // 2)
        smax = max(self.scales) or 1.0
        self.bias = [1.0 - scale_bias * s / smax for s in self.scales]
        self.kernel_conv = [KernelConvolver(scale_kernel(s, self.shape), self.shape, nthreads) for s in self.scales]
        psf64 = psf.astype(np.float64)
        self.psf_s, self.psf_ss = [], []
        for s in self.scales:
            kc = KernelConvolver(scale_kernel(s, psf.shape), psf.shape, nthreads)
            ps = kc(psf64)  # K_s * PSF
            self.psf_s.append(ps)
            self.psf_ss.append(kc(ps))  # K_s * K_s * PSF
        self.psf_s_peak = [float(p[c]) for p in self.psf_s]
        self.psf_ss_peak = [float(p[c]) for p in self.psf_ss]
        self.psf_s_conv = [KernelConvolver(p, self.shape, nthreads) for p in self.psf_s]

    def clean(
        self,
        residual: np.ndarray,
        model: np.ndarray,
        *,
        gain: float,
        stop: float,
        max_iter: int,
        mask: np.ndarray | None = None,
        subminor_depth: float = 0.2,
        max_candidates: int = 100_000,
    ) -> MinorResult:
        """Clean in place until the |peak| of ``residual`` (inside ``mask``) is at most ``stop``.

        Parameters
        ----------
        residual
            ``(ny, nx)`` float32, Jy/beam; updated in place.
        model
            ``(ny, nx)``, Jy/pixel; updated in place.
        gain
            Loop gain of the sub-minor loops.
        stop
            Stopping level (Jy/beam, point-source units).
        max_iter
            Components at most (a component on any scale counts one).
        subminor_depth
            A sub-minor loop on one scale stops once its peak fell by this fraction.
        """
        ny, nx = self.shape
        py, px = self.psf_shape
        cy, cx = py // 2, px // 2
        n_done = 0
        peak = 0.0
        while n_done < max_iter:
            best = None
            for i, kc in enumerate(self.kernel_conv):
                rs = residual.astype(np.float64) if self.scales[i] == 0 else kc(residual)
                ns = rs / self.psf_s_peak[i]
                a = np.abs(ns)
                if mask is not None:
                    a = np.where(mask, a, 0)
                p = float(a.max())
                if i == 0:
                    peak = p
                if best is None or p * self.bias[i] > best[0]:
                    best = (p * self.bias[i], i, ns, a, p)
            if peak <= stop:
                return MinorResult(n_done, peak, True)
            _, i, ns, absn, p = best
            level = max(stop, (1.0 - subminor_depth) * p)
            idx, level = _candidates(absn, level, max_candidates)
            ys, xs = np.divmod(idx, nx)
            vals = ns.ravel()[idx].copy()
            amps = np.zeros(len(idx))
            pss = self.psf_ss[i] / self.psf_s_peak[i]
            to_flux = self.psf_s_peak[i] / self.psf_ss_peak[i]
            n_before = n_done
            while n_done < max_iter:
                k = int(np.argmax(np.abs(vals)))
                v = vals[k]
                if abs(v) <= level:
                    break
                a = gain * v * to_flux  # total flux of this scale component
                amps[k] += a
                dy = ys - ys[k] + cy
                dx = xs - xs[k] + cx
                ok = (dy >= 0) & (dy < py) & (dx >= 0) & (dx < px)
                vals[ok] -= a * pss[dy[ok], dx[ok]]
                n_done += 1
            if n_done == n_before:
                return MinorResult(n_done, peak, peak <= stop)
            delta = np.zeros(self.shape)
            delta.ravel()[idx] = amps
            model += (delta if self.scales[i] == 0 else self.kernel_conv[i](delta)).astype(model.dtype)
            residual -= self.psf_s_conv[i](delta).astype(residual.dtype)
        return MinorResult(n_done, peak, peak <= stop)
