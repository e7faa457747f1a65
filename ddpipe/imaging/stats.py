"""Robust image statistics."""

from __future__ import annotations

import numpy as np

MAD_TO_SIGMA = 1.482602218505602


def mad_rms(image: np.ndarray, mask: np.ndarray | None = None, max_samples: int = 1 << 20) -> float:
    """Noise σ from the median absolute deviation: 1.4826 · median(|x − median(x)|).

    Parameters
    ----------
    image
        Any shape; non-finite values are ignored.
    mask
        Same shape, True for the pixels to use (None: all).
    max_samples
        Above this many pixels a regular subsample of about this size is used
        (the median of a million pixels is as good as that of four).
    """
    x = np.asarray(image, dtype=np.float64).ravel()
    if mask is not None:
        x = x[np.asarray(mask).ravel()]
    if x.size > max_samples:
        x = x[:: -(-x.size // max_samples)]
    x = x[np.isfinite(x)]
    if x.size == 0:
        return 0.0
    med = np.median(x)
    return float(MAD_TO_SIGMA * np.median(np.abs(x - med)))
