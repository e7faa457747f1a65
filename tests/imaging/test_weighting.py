"""Density weighting against naive loops, and against its defining properties."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ddpipe.imaging import weighting

C = 299792458.0


def _samples(seed=0, nrow=400):
    rng = np.random.default_rng(seed)
    uvw = rng.normal(size=(nrow, 3)) * np.array([300.0, 300.0, 50.0])
    freq = np.array([1.0e8, 1.3e8, 1.6e8])
    w = rng.uniform(0.5, 2.0, size=(nrow, len(freq)))
    w[rng.random(w.shape) < 0.1] = 0.0  # flagged samples
    return uvw, freq, w


def test_grid_shape_is_wscleans_padded_size():
    # WSClean 3.1 pads 1.2x and rounds up to a multiple of 4 (its log: 1024 -> 1232, 512 -> 616, 130 -> 156)
    assert weighting.grid_shape((1024, 1024)) == (1232, 1232)
    assert weighting.grid_shape((512, 130)) == (616, 156)
    assert weighting.grid_shape((1000, 2000)) == (1200, 2400)


def test_density_cells_match_a_naive_loop():
    uvw, freq, _ = _samples()
    grid, cell = (64, 48), math.radians(60 / 3600)
    cells = weighting.density_cells(uvw, freq, grid, cell)
    H, W = grid
    for r in range(0, len(uvw), 37):
        for c, f in enumerate(freq):
            u, v = uvw[r, 0] * f / C, uvw[r, 1] * f / C
            if v < 0:
                u, v = -u, -v
            x = math.floor(u * W * cell + W // 2)
            y = math.floor(v * H * cell)
            expect = y * W + x if (0 <= x < W and y < H // 2) else -1
            assert cells[r, c] == expect


def test_uniform_weights_sum_to_one_per_occupied_cell():
    uvw, freq, w = _samples(1)
    grid, cell = (64, 64), math.radians(60 / 3600)
    cells = weighting.density_cells(uvw, freq, grid, cell)
    dens = np.zeros((grid[0] // 2) * grid[1])
    total = weighting.accumulate(dens, cells, w)
    assert total == pytest.approx(w[cells >= 0].sum())
    wim = weighting.apply(weighting.finish(dens, total, "uniform"), cells, w)
    per_cell = np.bincount(cells[(cells >= 0) & (w > 0)], weights=wim[(cells >= 0) & (w > 0)], minlength=dens.size)
    occupied = dens > 0
    np.testing.assert_allclose(per_cell[occupied], 1.0, rtol=1e-5)
    assert not wim[w == 0].any()


def test_briggs_goes_from_uniform_to_natural():
    uvw, freq, w = _samples(2)
    grid, cell = (64, 64), math.radians(60 / 3600)
    cells = weighting.density_cells(uvw, freq, grid, cell)
    dens = np.zeros((grid[0] // 2) * grid[1])
    total = weighting.accumulate(dens, cells, w)
    nat = weighting.apply(weighting.finish(dens, total, "natural"), cells, w)
    uni = weighting.apply(weighting.finish(dens, total, "uniform"), cells, w)
    b_hi = weighting.apply(weighting.finish(dens, total, "briggs", 5.0), cells, w)
    b_lo = weighting.apply(weighting.finish(dens, total, "briggs", -5.0), cells, w)
    ok = w > 0
    # weights only matter up to a constant factor
    assert np.allclose(b_hi[ok] / b_hi[ok].sum(), nat[ok] / nat[ok].sum(), rtol=2e-3)
    assert np.allclose(b_lo[ok] / b_lo[ok].sum(), uni[ok] / uni[ok].sum(), rtol=2e-3)
    b0 = weighting.apply(weighting.finish(dens, total, "briggs", 0.0), cells, w)
    # robust 0 by the formula: w / (1 + W f²), f² = 25 / (Σ W² / Σ w)
    f2 = 25.0 / (np.dot(dens, dens) / total)
    expect = np.where(cells >= 0, w / (1 + dens[np.clip(cells, 0, None)] * f2), 0)
    np.testing.assert_allclose(b0, expect, rtol=1e-5)


def test_rank_filter_matches_a_naive_window_loop():
    rng = np.random.default_rng(4)
    g = rng.exponential(size=(20, 30))
    g[rng.random(g.shape) < 0.6] = 0.0
    g[5, 7] = 50.0  # an isolated heavy cell
    got = weighting.rank_filter(g, 3.0, 8)
    expect = g.copy()
    d = 4
    for y in range(20):
        for x in range(30):
            if g[y, x] == 0:
                continue
            win = g[max(0, y - d) : min(20, y + d), max(0, x - d) : min(30, x + d)]
            mean = win[win != 0].mean()
            if g[y, x] > 3 * mean:
                expect[y, x] = 3 * mean
    np.testing.assert_allclose(got, expect, rtol=1e-12)
    assert got[5, 7] < 50.0
