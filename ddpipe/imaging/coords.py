"""Sky ↔ direction cosines ↔ pixel, in the image layout used throughout ``ddpipe.imaging``.

Images are NumPy arrays of shape ``(ny, nx)``, exactly the data layout of the
FITS files written (axis 1 = RA, axis 2 = Dec). The phase centre sits on pixel
``(ny // 2, nx // 2)`` (FITS CRPIX = N/2 + 1), RA increases to the left
(CDELT1 < 0) as in WSClean::

    l = -(x - nx/2) * cell        m = (y - ny/2) * cell

with ``l`` towards east (increasing RA) and ``m`` towards north, both direction
cosines of the SIN projection about the phase centre.
"""

from __future__ import annotations

import numpy as np


def radec_to_lmn(
    ra: np.ndarray | float, dec: np.ndarray | float, ra0: float, dec0: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Direction cosines of (ra, dec) about the phase centre (ra0, dec0), radians.

    Returns
    -------
    l, m, n
        Arrays of the broadcast shape of ``ra`` and ``dec``.
    """
    ra = np.asarray(ra, dtype=float)
    dec = np.asarray(dec, dtype=float)
    dra = ra - ra0
    cd = np.cos(dec)
    l = cd * np.sin(dra)
    m = np.sin(dec) * np.cos(dec0) - cd * np.sin(dec0) * np.cos(dra)
    n = np.sin(dec) * np.sin(dec0) + cd * np.cos(dec0) * np.cos(dra)
    return l, m, n


def lm_to_radec(l: np.ndarray | float, m: np.ndarray | float, ra0: float, dec0: float) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`radec_to_lmn` for the front hemisphere (n >= 0); radians, RA in [0, 2π)."""
    l = np.asarray(l, dtype=float)
    m = np.asarray(m, dtype=float)
    n = np.sqrt(np.clip(1.0 - l * l - m * m, 0.0, None))
    dec = np.arcsin(np.clip(m * np.cos(dec0) + n * np.sin(dec0), -1.0, 1.0))
    ra = ra0 + np.arctan2(l, n * np.cos(dec0) - m * np.sin(dec0))
    return np.mod(ra, 2 * np.pi), dec


def lm_to_pixel(
    l: np.ndarray | float, m: np.ndarray | float, shape: tuple[int, int], cell: float
) -> tuple[np.ndarray, np.ndarray]:
    """Fractional pixel (x, y), 0-based, of direction cosines; ``shape`` is (ny, nx), ``cell`` radians."""
    ny, nx = shape
    x = nx // 2 - np.asarray(l, dtype=float) / cell
    y = ny // 2 + np.asarray(m, dtype=float) / cell
    return x, y


def pixel_to_lm(
    x: np.ndarray | float, y: np.ndarray | float, shape: tuple[int, int], cell: float
) -> tuple[np.ndarray, np.ndarray]:
    """Direction cosines (l, m) of pixel (x, y), 0-based; inverse of :func:`lm_to_pixel`."""
    ny, nx = shape
    l = -(np.asarray(x, dtype=float) - nx // 2) * cell
    m = (np.asarray(y, dtype=float) - ny // 2) * cell
    return l, m


def pixel_grid_lmn(shape: tuple[int, int], cell: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(l, m, n) of every pixel centre; each ``(ny, nx)`` float64. n is NaN beyond the horizon."""
    ny, nx = shape
    l = -(np.arange(nx) - nx // 2) * cell
    m = (np.arange(ny) - ny // 2) * cell
    ll, mm = np.meshgrid(l, m)
    r2 = ll * ll + mm * mm
    with np.errstate(invalid="ignore"):
        nn = np.where(r2 <= 1.0, np.sqrt(np.clip(1.0 - r2, 0.0, None)), np.nan)
    return ll, mm, nn
