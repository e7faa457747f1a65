"""The major/minor loop with an image-plane 'major cycle' whose answer is exact."""

from __future__ import annotations

import numpy as np
import pytest

from ddpipe.imaging.convolve import KernelConvolver
from ddpipe.imaging.cycles import CleanSettings, clean_cycles


def _setup(n=96, noise=0.0, seed=0):
    y, x = np.mgrid[: 2 * n, : 2 * n] - n
    psf2 = np.exp(-(x**2 + y**2) / 4.0) + 0.2 * np.cos(x / 2.0) * np.exp(-(x**2 + y**2) / 800.0)
    psf2 = (psf2 / psf2[n, n]).astype(np.float32)
    rng = np.random.default_rng(seed)
    sky = np.zeros((n, n), np.float32)
    sky[30, 40], sky[60, 70], sky[50, 20] = 10.0, 3.0, 1.0
    conv = KernelConvolver(psf2, (n, n))
    dirty = (conv(sky) + noise * rng.normal(size=(n, n))).astype(np.float32)
    return dirty, psf2, sky, (lambda model: (dirty - conv(model)).astype(np.float32))


def test_major_cycles_clean_down_to_the_threshold():
    dirty, psf2, sky, recompute = _setup()
    r = clean_cycles(dirty, psf2, CleanSettings(niter=10000, gain=0.1, mgain=0.8, threshold=1e-3), recompute)
    assert r.n_major >= 3  # each cycle cleans 80% of its peak: 10 Jy -> 1 mJy needs several
    assert np.abs(r.residual).max() <= 1e-3 * 1.01
    np.testing.assert_allclose(r.residual, recompute(r.model), atol=1e-6)  # the residual is the exact one
    assert r.model.sum() == pytest.approx(sky.sum(), rel=1e-3)


def test_niter_and_major_cycle_limits():
    dirty, psf2, _, recompute = _setup()
    r = clean_cycles(dirty, psf2, CleanSettings(niter=37, gain=0.1, mgain=0.8), recompute)
    assert r.n_iter == 37
    r = clean_cycles(dirty, psf2, CleanSettings(niter=10000, gain=0.1, mgain=0.5, max_major=2), recompute)
    assert r.n_major == 2


def test_auto_threshold_stops_at_sigma_times_the_noise():
    dirty, psf2, _, recompute = _setup(noise=0.05, seed=3)
    r = clean_cycles(dirty, psf2, CleanSettings(niter=100000, gain=0.1, mgain=0.8, auto_threshold=5.0), recompute)
    from ddpipe.imaging.stats import mad_rms

    sigma = mad_rms(r.residual)
    assert sigma == pytest.approx(0.05, rel=0.3)
    assert np.abs(r.residual).max() < 6 * sigma  # cleaned to about 5 sigma, not into the noise
    assert r.n_iter < 100000


def test_no_cleaning_when_niter_is_zero():
    dirty, psf2, _, recompute = _setup()
    r = clean_cycles(dirty, psf2, CleanSettings(niter=0, gain=0.1, mgain=0.8), recompute)
    assert r.n_iter == r.n_major == 0 and not r.model.any()
    np.testing.assert_array_equal(r.residual, dirty)
