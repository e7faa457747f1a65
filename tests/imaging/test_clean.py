"""Hogbom and multiscale CLEAN on synthetic dirty images whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from ddpipe.imaging.convolve import KernelConvolver
from ddpipe.imaging.hogbom import hogbom, hogbom_reference
from ddpipe.imaging.multiscale import MultiscaleCleaner, scale_kernel


def _psf(n, seed=0):
    """A PSF with a 3-pixel main lobe and ringing sidelobes, peak 1 at (n//2, n//2)."""
    y, x = np.mgrid[:n, :n] - n // 2
    rng = np.random.default_rng(seed)
    p = np.exp(-(x**2 + y**2) / (2 * 1.5**2)) + 0.15 * np.cos(x / 2.3 + rng.uniform()) * np.cos(y / 3.1) * np.exp(
        -(x**2 + y**2) / (2 * 25.0**2)
    )
    return (p / p[n // 2, n // 2]).astype(np.float32)


def _sky(n, seed=1, count=6):
    rng = np.random.default_rng(seed)
    sky = np.zeros((n, n), np.float32)
    for _ in range(count):
        sky[rng.integers(8, n - 8), rng.integers(8, n - 8)] += rng.uniform(0.5, 5.0)
    return sky


def test_kernel_convolver_equals_shifting_the_kernel():
    rng = np.random.default_rng(3)
    img = np.zeros((24, 20))
    pts = [(2, 3, 1.0), (20, 15, -2.0), (12, 10, 0.5)]
    for y, x, a in pts:
        img[y, x] = a
    for ky, kx in ((48, 40), (24, 20), (9, 5)):
        k = rng.normal(size=(ky, kx))
        expect = np.zeros_like(img)
        for y, x, a in pts:
            for yy in range(24):
                for xx in range(20):
                    i, j = yy - y + ky // 2, xx - x + kx // 2
                    if 0 <= i < ky and 0 <= j < kx:
                        expect[yy, xx] += a * k[i, j]
        np.testing.assert_allclose(KernelConvolver(k, img.shape)(img), expect, atol=1e-10)


@pytest.mark.parametrize("max_candidates", [100_000, 50])
def test_fast_hogbom_equals_the_textbook_loop(max_candidates):
    n = 96
    psf2 = _psf(2 * n)
    dirty = KernelConvolver(psf2, (n, n))(_sky(n)).astype(np.float32)
    r1, m1 = dirty.copy(), np.zeros_like(dirty)
    res = hogbom(r1, psf2, m1, gain=0.1, stop=0.02, max_iter=5000, max_candidates=max_candidates)
    r2, m2 = dirty.copy(), np.zeros_like(dirty)
    n2 = hogbom_reference(r2, psf2, m2, gain=0.1, stop=0.02, max_iter=5000)
    assert res.reached_stop and res.n_iter == n2
    np.testing.assert_allclose(m1, m2, atol=1e-4)
    np.testing.assert_allclose(r1, r2, atol=1e-4)


def test_hogbom_recovers_point_sources_and_respects_the_mask():
    n = 128
    psf2 = _psf(2 * n, seed=2)
    sky = _sky(n, seed=5)
    dirty = KernelConvolver(psf2, (n, n))(sky).astype(np.float32)
    res_, model = dirty.copy(), np.zeros_like(dirty)
    hogbom(res_, psf2, model, gain=0.2, stop=1e-4, max_iter=20000)
    assert np.abs(res_).max() < 1e-3
    ys, xs = np.nonzero(sky)
    for y, x in zip(ys, xs):  # flux within 1 pixel of each source
        assert model[y - 1 : y + 2, x - 1 : x + 2].sum() == pytest.approx(sky[y, x], rel=2e-3)
    mask = np.zeros((n, n), bool)
    mask[: n // 2] = True
    m2 = np.zeros_like(dirty)
    hogbom(dirty.copy(), psf2, m2, gain=0.2, stop=1e-3, max_iter=5000, mask=mask)
    assert not m2[n // 2 :].any() and m2[: n // 2].any()


def test_multiscale_recovers_an_extended_source_better_than_hogbom():
    n = 128
    psf2 = _psf(2 * n, seed=4)
    sky = np.roll(scale_kernel(14, (n, n)), (10, -15), axis=(0, 1)) * 40.0
    sky[30, 90] += 4.0
    sky = sky.astype(np.float32)
    dirty = KernelConvolver(psf2, (n, n))(sky).astype(np.float32)
    ms = MultiscaleCleaner(psf2, [0, 4, 16], (n, n))
    r1, m1 = dirty.copy(), np.zeros_like(dirty)
    res = ms.clean(r1, m1, gain=0.1, stop=0.01, max_iter=5000)
    assert res.reached_stop
    assert m1.sum() == pytest.approx(sky.sum(), rel=0.02)
    assert m1[27:34, 87:94].sum() == pytest.approx(4.0, rel=0.05)
    r2, m2 = dirty.copy(), np.zeros_like(dirty)
    hogbom(r2, psf2, m2, gain=0.1, stop=0.01, max_iter=5000)
    assert np.count_nonzero(m1) > 0
    assert abs(m1.sum() - sky.sum()) < abs(m2.sum() - sky.sum())
