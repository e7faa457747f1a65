"""Honest quality figures of a cycle: more than the dynamic range.

A dynamic range can improve while calibration gets worse: phase solutions on
short intervals absorb noise and flux the sky model lacks, and the image then
looks cleaner than the uncorrupted data's. So every cycle also reports:

* the image noise far from sources: the MAD σ of the residual image more than
  :data:`FAR_BEAMS` restoring-beam widths from every known source (the true sky
  when given, else the CLEAN components);
* with the true sky (simulations, ``inputs.true_skymodel``): the flux recovered
  for every true source: the restored image at its true position (bilinear
  between pixels) over what a perfect image gives there, sampled alike (the
  true source, point or Gaussian, at the image frequency, convolved with the
  restoring beam), separately for the sources the starting sky model had and
  for those it lacked (the unmodelled ones, which calibration may suppress);
  a faint source's figure carries the noise (σ/S);
* with the true sky and the CLEAN components: the spectral index of every true
  point source above :data:`SPECTRAL_SNR` σ, from the components within a beam
  of it (summed; :func:`spectral_indices`), against the truth — flat-spectrum
  components (one output channel) show the whole index as their error;
* with the true gains (``inputs.true_gains``): the RMS phase (relative to the
  first station) and relative amplitude error of the solutions' product against
  them, each solved direction against the nearest true one
  (:func:`ddpipe.solutions.compare.gain_errors`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from astropy.wcs import WCS

from ddpipe.imaging.fitsio import read_image
from ddpipe.imaging.stats import mad_rms
from ddpipe.sky.skymodel import read_skymodel

#: the noise is measured this many restoring-beam FWHM away from every known source
FAR_BEAMS = 5.0
#: flux figures are given for sources at least this many σ (far from sources) bright
MIN_SNR = 5.0
#: spectral indices are compared for true point sources at least this many σ bright
SPECTRAL_SNR = 20.0


def _gaussian_cov(fwhm_maj: float, fwhm_min: float, pa_deg: float) -> np.ndarray:
    """2x2 covariance, in pixels of (x, y) with x towards -RA (FITS CDELT1 < 0), of a Gaussian with these
    FWHM axes (pixels) and position angle (degrees from north through east)."""
    t = np.radians(pa_deg)
    u = np.array([-np.sin(t), np.cos(t)])  # major axis: north is +y, east is -x
    v = np.array([np.cos(t), np.sin(t)])
    k = 1.0 / (8 * np.log(2))  # FWHM² → σ²
    return k * (fwhm_maj**2 * np.outer(u, u) + fwhm_min**2 * np.outer(v, v))


def _bilinear(x: float, y: float, shape: tuple[int, int]) -> list[tuple[int, int, float]]:
    """The pixels ``(iy, ix)`` around ``(x, y)`` and their bilinear weights (inside ``shape``)."""
    x0, y0 = int(np.floor(x)), int(np.floor(y))
    fx, fy = x - x0, y - y0
    out = []
    for iy, wy in ((y0, 1 - fy), (y0 + 1, fy)):
        for ix, wx in ((x0, 1 - fx), (x0 + 1, fx)):
            if 0 <= iy < shape[0] and 0 <= ix < shape[1] and wx * wy > 0:
                out.append((iy, ix, wx * wy))
    return out


def sample(image: np.ndarray, x: float, y: float) -> float:
    """``image`` at the (sub-pixel) position ``(x, y)``, bilinearly interpolated."""
    return float(sum(w * image[iy, ix] for iy, ix, w in _bilinear(x, y, image.shape)))


def expected_value(
    source: Any, freq: float, x: float, y: float, beam_cov: np.ndarray, cell_arcsec: float, shape: tuple[int, int]
) -> tuple[float, float]:
    """True flux at ``freq`` and what a perfect restored image gives at ``(x, y)`` sampled as
    :func:`sample` samples: the source (point or Gaussian) convolved with the beam, in Jy/beam,
    on the surrounding pixels, interpolated bilinearly (a point source between pixels reads up to
    ~15% low on a beam of 3 pixels, a Gaussian one lower still: the same happens to the measured value)."""
    true = float(source.stokes_i_at(freq)) if freq > 0 else float(source.i)
    cov = beam_cov
    if source.type.upper() == "GAUSSIAN" and source.major_axis > 0:
        cov = beam_cov + _gaussian_cov(
            source.major_axis / cell_arcsec, source.minor_axis / cell_arcsec, source.orientation
        )
    scale = np.sqrt(np.linalg.det(beam_cov) / np.linalg.det(cov))
    inv = np.linalg.inv(cov)
    value = 0.0
    for iy, ix, w in _bilinear(x, y, shape):
        d = np.array([ix - x, iy - y])
        value += w * float(np.exp(-0.5 * d @ inv @ d))
    return true, true * scale * value


def image_figures(
    restored: str | Path,
    residual: str | Path,
    *,
    true_skymodel: str | Path | None = None,
    start_skymodel: str | Path | None = None,
    components: str | Path | None = None,
) -> dict[str, Any]:
    """Noise far from sources and, with the true sky, the flux recovered per source.

    Parameters
    ----------
    restored, residual
        The cycle's restored and residual FITS images.
    true_skymodel
        The true sky (simulations); its sources are the "known sources" and are measured.
    start_skymodel
        The pipeline's starting sky model: true sources not in it (by name) are the unmodelled ones.
    components
        CLEAN components (sky model): the known sources when there is no true sky.

    Returns
    -------
    dict
        ``rms_far_jy`` always; with ``true_skymodel`` also ``sources`` (one entry per true source:
        ``name, true_jy, measured_jy, ratio, snr, modelled``) and the medians and minima of
        ``ratio`` over the sources above :data:`MIN_SNR` σ, modelled and unmodelled apart.
    """
    image, header = read_image(restored)
    resid, _ = read_image(residual)
    wcs = WCS(header).celestial
    cell = abs(float(header["CDELT2"]))  # degrees
    bmaj = float(header.get("BMAJ", 3 * cell))
    known = read_skymodel(true_skymodel) if true_skymodel else (read_skymodel(components) if components else None)
    pix = np.zeros((0, 2))
    if known is not None and known.sources:
        ra = np.degrees([s.ra for s in known.sources])
        dec = np.degrees([s.dec for s in known.sources])
        pix = np.column_stack(wcs.world_to_pixel_values(ra, dec))  # (x, y), 0-based
    far = _far_mask(image.shape, pix, FAR_BEAMS * bmaj / cell)
    rms = mad_rms(resid, far) if far.any() else mad_rms(resid)
    out: dict[str, Any] = {"rms_far_jy": rms, "far_beams": FAR_BEAMS}
    if not true_skymodel or known is None:
        return out
    start = {s.name for s in read_skymodel(start_skymodel).sources} if start_skymodel else None
    out["sources"] = _source_fluxes(image, header, known, pix, rms, start)
    out.update(_ratio_summary(out["sources"], start))
    if components and str(header.get("CTYPE3", "")).upper() == "FREQ":
        freq, width = float(header["CRVAL3"]), abs(float(header.get("CDELT3", 0.0)))
        band = (freq - width / 4, freq + width / 4)  # the middle half: no extrapolation of a fit
        found = spectral_indices(read_skymodel(components), known, rms, np.radians(bmaj), band)
        out["spectral_index"] = found
        err = [abs(e["recovered"] - e["true"]) for e in found]
        out["spectral_index_median_error"] = float(np.median(err)) if err else None
        out["spectral_index_max_error"] = float(np.max(err)) if err else None
    return out


def spectral_indices(
    components: Any, truth: Any, rms: float, radius: float, band: tuple[float, float]
) -> list[dict[str, Any]]:
    """Spectral index between the two frequencies of ``band`` (Hz), true and recovered, of every
    true point source at least :data:`SPECTRAL_SNR` × ``rms`` bright (at the band's centre).

    The recovered flux at each frequency is the sum over the CLEAN ``components`` (sky models)
    within ``radius`` radians of the source: CLEAN spreads an off-pixel source over a few.
    """
    f = np.asarray(band, dtype=float)
    comps = [c for c in components.sources if c.type == "POINT"]
    if not comps or f[0] <= 0 or f[1] <= f[0]:
        return []
    cra = np.array([c.ra for c in comps])
    cdec = np.array([c.dec for c in comps])
    out = []
    for s in truth.sources:
        true = s.stokes_i_at(f)
        if s.type != "POINT" or np.any(true <= 0) or np.sqrt(true[0] * true[1]) < SPECTRAL_SNR * rms:
            continue
        near = np.hypot((cra - s.ra) * np.cos(s.dec), cdec - s.dec) < radius
        got = sum((comps[k].stokes_i_at(f) for k in np.flatnonzero(near)), np.zeros(2))
        if np.all(got > 0):
            lf = np.log(f[1] / f[0])
            out.append(
                {
                    "name": s.name,
                    "true": float(np.log(true[1] / true[0]) / lf),
                    "recovered": float(np.log(got[1] / got[0]) / lf),
                }
            )
    return out


def _far_mask(shape: tuple[int, ...], pix: np.ndarray, radius: float) -> np.ndarray:
    """True more than ``radius`` pixels from every ``(x, y)`` in ``pix``."""
    ny, nx = shape
    far = np.ones(shape, dtype=bool)
    for x, y in pix:  # each disk within its own box: hundreds of CLEAN components cost nothing
        x0, x1 = max(int(np.floor(x - radius)), 0), min(int(np.ceil(x + radius)) + 1, nx)
        y0, y1 = max(int(np.floor(y - radius)), 0), min(int(np.ceil(y + radius)) + 1, ny)
        if x0 >= x1 or y0 >= y1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1]
        far[y0:y1, x0:x1] &= (xx - x) ** 2 + (yy - y) ** 2 > radius**2
    return far


def _source_fluxes(
    image: np.ndarray, header: Any, known: Any, pix: np.ndarray, rms: float, start: set[str] | None
) -> list[dict[str, Any]]:
    """Per known source in the image: the restored image at its true position against a
    perfect image's there."""
    ny, nx = image.shape
    cell = abs(float(header["CDELT2"]))  # degrees
    bmaj = float(header.get("BMAJ", 3 * cell))
    freq = float(header.get("CRVAL3", 0.0)) if str(header.get("CTYPE3", "")).upper() == "FREQ" else 0.0
    beam_cov = _gaussian_cov(bmaj / cell, float(header.get("BMIN", bmaj)) / cell, float(header.get("BPA", 0.0)))
    sources = []
    for s, (x, y) in zip(known.sources, pix):
        if not (0 <= x <= nx - 1 and 0 <= y <= ny - 1):
            continue
        measured = sample(image, x, y)  # at the true position: no bias from picking the brightest pixel
        true, expected = expected_value(s, freq, x, y, beam_cov, cell * 3600, image.shape)
        sources.append(
            {
                "name": s.name,
                "true_jy": true,
                "expected_jy_per_beam": expected,
                "measured_jy": measured,
                "ratio": measured / expected if expected else None,
                "snr": expected / rms if rms > 0 else None,
                "modelled": None if start is None else s.name in start,
            }
        )
    return sources


def _ratio_summary(sources: list[dict[str, Any]], start: set[str] | None) -> dict[str, Any]:
    """Median and minimum flux ratio over the sources above :data:`MIN_SNR` σ: modelled and
    unmodelled apart when the starting sky model is known, else ``all``."""
    out: dict[str, Any] = {}
    for label, want in (("modelled", True), ("unmodelled", False)):
        r = [
            e["ratio"]
            for e in sources
            if e["ratio"] is not None and (e["snr"] or 0) >= MIN_SNR and (start is None or e["modelled"] == want)
        ]
        if start is None and want is False:
            break
        key = "all" if start is None else label
        out[f"{key}_median_ratio"] = float(np.median(r)) if r else None
        out[f"{key}_min_ratio"] = float(np.min(r)) if r else None
        out[f"{key}_count"] = len(r)
    return out
