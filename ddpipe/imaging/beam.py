"""Restoring beam: fit an elliptical Gaussian to the PSF main lobe; restore a model with it.

Beam parameters follow FITS: FWHM major and minor axes and the position angle
of the major axis, east of north, all in degrees. In the image layout of
``ddpipe.imaging.coords`` east is −x and north is +y.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ddpipe.imaging.convolve import KernelConvolver

SIGMA_TO_FWHM = 2.0 * math.sqrt(2.0 * math.log(2.0))


@dataclass(frozen=True)
class Beam:
    """Elliptical Gaussian beam; FWHM axes and position angle in degrees."""

    bmaj: float
    bmin: float
    bpa: float

    def as_tuple(self) -> tuple[float, float, float]:
        return (self.bmaj, self.bmin, self.bpa)


def _quad_from_beam(beam: Beam, cell: float) -> tuple[float, float, float]:
    """Coefficients (A, B, C) with exp(−(A dx² + 2B dx dy + C dy²)) the unit-peak beam, pixels."""
    cell_deg = math.degrees(cell)
    smaj = beam.bmaj / cell_deg / SIGMA_TO_FWHM
    smin = beam.bmin / cell_deg / SIGMA_TO_FWHM
    pa = math.radians(beam.bpa)
    # major-axis unit vector in (east, north) → pixel (dx, dy) = (−east, north)
    ux, uy = -math.sin(pa), math.cos(pa)
    vx, vy = -uy, ux  # minor axis
    a = ux * ux / (2 * smaj**2) + vx * vx / (2 * smin**2)
    b = ux * uy / (2 * smaj**2) + vx * vy / (2 * smin**2)
    c = uy * uy / (2 * smaj**2) + vy * vy / (2 * smin**2)
    return a, b, c


def _beam_from_quad(a: float, b: float, c: float, cell: float) -> Beam:
    """Inverse of :func:`_quad_from_beam`."""
    inv = np.array([[2 * a, 2 * b], [2 * b, 2 * c]])  # Σ⁻¹ in pixel (dx, dy)
    cov = np.linalg.inv(inv)
    vals, vecs = np.linalg.eigh(cov)
    vals = np.clip(vals, 1e-12, None)
    smin, smaj = np.sqrt(vals)
    dx, dy = vecs[:, 1]
    pa = math.degrees(math.atan2(-dx, dy))  # east of north, east = −x
    pa = (pa + 90.0) % 180.0 - 90.0
    cell_deg = math.degrees(cell)
    return Beam(float(smaj * SIGMA_TO_FWHM * cell_deg), float(smin * SIGMA_TO_FWHM * cell_deg), float(pa))


def _main_lobe(psf: np.ndarray, cut: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Offsets (dx, dy) and values of the pixels above ``cut`` connected to the centre."""
    ny, nx = psf.shape
    cy, cx = ny // 2, nx // 2
    h = 8
    while True:
        y0, y1, x0, x1 = max(0, cy - h), min(ny, cy + h + 1), max(0, cx - h), min(nx, cx + h + 1)
        box = psf[y0:y1, x0:x1]
        above = box > cut
        lobe = np.zeros_like(above)
        lobe[cy - y0, cx - x0] = True
        while True:  # flood fill by 4-neighbour dilation
            grown = lobe.copy()
            grown[1:] |= lobe[:-1]
            grown[:-1] |= lobe[1:]
            grown[:, 1:] |= lobe[:, :-1]
            grown[:, :-1] |= lobe[:, 1:]
            grown &= above
            if (grown == lobe).all():
                break
            lobe = grown
        edge = lobe[0].any() or lobe[-1].any() or lobe[:, 0].any() or lobe[:, -1].any()
        if not edge or (y1 - y0 >= ny and x1 - x0 >= nx):
            break
        h *= 2
    yy, xx = np.nonzero(lobe)
    return (xx + x0 - cx).astype(float), (yy + y0 - cy).astype(float), box[lobe].astype(float)


def upsample_centre(psf: np.ndarray, factor: int, half: int) -> np.ndarray:
    """Band-limited (Fourier) interpolation of the PSF around its centre.

    Parameters
    ----------
    psf
        ``(ny, nx)``, centre on ``(ny//2, nx//2)``.
    factor
        Samples per original pixel.
    half
        Half-width of the region in original pixels.

    Returns
    -------
    numpy.ndarray
        ``(2·half·factor + 1,)²`` samples at offsets ``k / factor``, centre in the middle.
    """
    ny, nx = psf.shape
    f = np.fft.fft2(np.fft.ifftshift(np.asarray(psf, dtype=np.float64)))
    off = np.arange(-half * factor, half * factor + 1) / factor
    ey = np.exp(2j * np.pi * np.outer(off, np.fft.fftfreq(ny)))
    ex = np.exp(2j * np.pi * np.outer(np.fft.fftfreq(nx), off))
    return np.real(ey @ f @ ex) / (ny * nx)


def fit_beam(psf: np.ndarray, cell: float, *, cut: float = 0.35, min_pixels: int = 60) -> Beam:
    """Fit a unit-peak elliptical Gaussian centred on the PSF peak to its main lobe.

    The pixels above ``cut`` that are connected to the centre are fitted by
    non-linear least squares (Gauss–Newton from a log-linear start). When the
    lobe has fewer than ``min_pixels`` pixels (a coarse pixel scale), the PSF is
    first interpolated (Fourier, exact for a band-limited PSF) onto a finer grid
    around its centre, so the fit does not depend on the pixel scale.

    Parameters
    ----------
    psf
        ``(ny, nx)``, peak 1 on ``(ny//2, nx//2)``.
    cell
        Pixel size in radians.

    Returns
    -------
    Beam
    """
    psf = np.asarray(psf, dtype=np.float64)
    dx, dy, val = _main_lobe(psf, cut)
    if 0 < len(val) < min_pixels and min(psf.shape) >= 8:
        factor = min(8, int(math.ceil(math.sqrt(min_pixels / len(val)))) + 1)
        half = int(max(np.abs(dx).max(), np.abs(dy).max())) + 2
        half = min(half, min(psf.shape) // 2 - 1)
        fine = upsample_centre(psf, factor, half)
        return fit_beam(fine / fine[fine.shape[0] // 2, fine.shape[1] // 2], cell / factor, cut=cut, min_pixels=0)
    if len(val) < 4:  # lobe narrower than a pixel: fall back to the pixel size
        d = math.degrees(cell)
        return Beam(d, d, 0.0)
    design = np.stack([dx * dx, 2 * dx * dy, dy * dy], axis=1)
    p, *_ = np.linalg.lstsq(design, -np.log(np.clip(val, 1e-6, None)), rcond=None)
    for _ in range(50):
        model = np.exp(-(design @ p))
        jac = -design * model[:, None]
        step, *_ = np.linalg.lstsq(jac, val - model, rcond=None)
        p = p + step
        if np.max(np.abs(step)) <= 1e-10 * max(1e-12, np.max(np.abs(p))):
            break
    a, b, c = p
    if a <= 0 or c <= 0 or a * c - b * b <= 0:  # not an ellipse: keep the log-linear estimate
        p, *_ = np.linalg.lstsq(design, -np.log(np.clip(val, 1e-6, None)), rcond=None)
        a, b, c = p
    return _beam_from_quad(float(a), float(b), float(c), cell)


def beam_image(beam: Beam, shape: tuple[int, int], cell: float) -> np.ndarray:
    """``(ny, nx)`` unit-peak Gaussian of ``beam`` centred on ``(ny//2, nx//2)``."""
    ny, nx = shape
    a, b, c = _quad_from_beam(beam, cell)
    y, x = np.mgrid[:ny, :nx]
    x = x - nx // 2
    y = y - ny // 2
    return np.exp(-(a * x * x + 2 * b * x * y + c * y * y))


def restore(model: np.ndarray, residual: np.ndarray, beam: Beam, cell: float, *, nthreads: int = 2) -> np.ndarray:
    """Restored image = model ⊛ beam (unit peak, so Jy/pixel → Jy/beam) + residual; ``(ny, nx)``.

    Few components are rendered directly (beam cut at 1e-7 of its peak), many by FFT.
    """
    ys, xs = np.nonzero(model)
    if len(ys) == 0:
        return residual.copy()
    ny, nx = model.shape
    a, b, c = _quad_from_beam(beam, cell)
    # half-size of the box beyond which exp(-Q) < 1e-7 (Q ≥ 16.1)
    det = a * c - b * b
    hy = int(math.ceil(math.sqrt(16.2 * a / det))) if det > 0 else ny
    hx = int(math.ceil(math.sqrt(16.2 * c / det))) if det > 0 else nx
    hy, hx = min(hy, ny), min(hx, nx)
    if len(ys) * (2 * hy + 1) * (2 * hx + 1) > 4 * ny * nx:
        conv = KernelConvolver(beam_image(beam, model.shape, cell), model.shape, nthreads)
        return (conv(model.astype(np.float64)) + residual).astype(residual.dtype)
    out = residual.astype(np.float64)
    dy, dx = np.mgrid[-hy : hy + 1, -hx : hx + 1]
    patch = np.exp(-(a * dx * dx + 2 * b * dx * dy + c * dy * dy))
    for y, x in zip(ys, xs):
        y0, y1 = max(0, y - hy), min(ny, y + hy + 1)
        x0, x1 = max(0, x - hx), min(nx, x + hx + 1)
        out[y0:y1, x0:x1] += model[y, x] * patch[y0 - y + hy : y1 - y + hy, x0 - x + hx : x1 - x + hx]
    return out.astype(residual.dtype)
