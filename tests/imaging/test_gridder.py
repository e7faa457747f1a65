"""Gridding against the exact transform: synthetic baselines and the real DP3 test MSs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from imaging_helpers import imaging_params

from ddpipe.imaging import coords, gridder
from ddpipe.imaging.fitsio import read_image

C = 299792458.0


def _dft_points(uvw, freq, vis, weight, ll, mm):
    """Σ w Re(V e^{-2πi(ul+vm+w(n−1))}) written out independently of the module under test."""
    out = np.zeros(len(ll))
    nn = np.sqrt(1 - ll**2 - mm**2) - 1
    for c, f in enumerate(freq):
        u, v, w = (uvw * f / C).T
        ph = np.exp(-2j * np.pi * (np.outer(u, ll) + np.outer(v, mm) + np.outer(w, nn)))
        out += np.real((weight[:, c] * vis[:, c]) @ ph)
    return out


def test_grid_matches_dft_with_w_terms():
    rng = np.random.default_rng(11)
    uvw = rng.normal(size=(3000, 3)) * np.array([900.0, 900.0, 400.0])
    freq = np.array([1.2e8, 1.6e8])
    shape, cell = (128, 96), math.radians(90 / 3600)  # 3.2 x 2.4 deg: w-terms matter
    x0, y0 = 20, 100
    l0, m0 = coords.pixel_to_lm(x0, y0, shape, cell)
    n0 = math.sqrt(1 - l0**2 - m0**2)
    vis = np.stack([3.0 * np.exp(2j * np.pi * (uvw @ [l0, m0, n0 - 1]) * f / C) for f in freq], 1)
    vis += 0.3 * (rng.normal(size=vis.shape) + 1j * rng.normal(size=vis.shape))
    weight = rng.uniform(0.2, 2.0, vis.shape)
    img = gridder.grid(uvw, freq, vis.astype(np.complex64), weight.astype(np.float32), shape, gridder.Sampling(cell))
    ys, xs = np.mgrid[y0 - 6 : y0 + 7, x0 - 6 : x0 + 7]
    ll, mm = coords.pixel_to_lm(xs.ravel(), ys.ravel(), shape, cell)
    ref = _dft_points(uvw, freq, vis, weight, ll, mm).reshape(ys.shape)
    assert np.unravel_index(np.argmax(img), shape) == (y0, x0)
    assert np.abs(img[y0 - 6 : y0 + 7, x0 - 6 : x0 + 7] - ref).max() / np.abs(ref).max() < 1e-4


@pytest.mark.parametrize("shape", [(128, 128), (96, 160)])
def test_psf_from_two_quadrants_is_the_whole_psf(shape):
    """psf_image grids the upper half in two quadrants and mirrors it: the same as one gridding."""
    rng = np.random.default_rng(0)
    uvw = rng.normal(0, 800, (20_000, 3)) * [1, 1, 0.1]
    freq = np.array([1.40e8, 1.41e8])
    w = rng.random((20_000, 2)).astype(np.float32)
    cell = math.radians(20 / 3600)
    want = gridder.grid(uvw, freq, np.ones(w.shape, np.complex64), w, shape, gridder.Sampling(cell, wterm=False))
    got = gridder.psf_image(uvw, freq, w, shape, gridder.Sampling(cell))
    assert got.shape == shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-5 * want.max())


def test_degrid_is_the_dp3_sign_prediction():
    rng = np.random.default_rng(5)
    uvw = rng.normal(size=(500, 3)) * np.array([700.0, 700.0, 200.0])
    freq = np.array([1.4e8])
    shape, cell = (64, 64), math.radians(60 / 3600)
    model = np.zeros(shape)
    model[40, 25] = 2.0
    l0, m0 = coords.pixel_to_lm(25, 40, shape, cell)
    n0 = math.sqrt(1 - l0**2 - m0**2)
    expect = 2.0 * np.exp(2j * np.pi * (uvw @ [l0, m0, n0 - 1]) * freq[0] / C)
    got = gridder.degrid(uvw, freq, model, gridder.Sampling(cell, epsilon=1e-7))[:, 0]
    assert np.abs(got - expect).max() < 1e-5


def _stokes_i_from_table(ms, column):
    from casacore import tables as pt

    with pt.table(str(ms), ack=False) as t:
        d = t.getcol(column)
        flag = t.getcol("FLAG") | t.getcol("FLAG_ROW")[:, None, None]
        ws = t.getcol("WEIGHT_SPECTRUM")
        uvw = t.getcol("UVW")
    ok = ~(flag[..., 0] | flag[..., 3])
    w = np.where(ok, np.minimum(ws[..., 0], ws[..., 3]), 0.0)
    return uvw, 0.5 * (d[..., 0] + d[..., 3]), w


def _lm_from_world(ra, dec, ra0, dec0):
    l = np.cos(dec) * np.sin(ra - ra0)
    m = np.sin(dec) * np.cos(dec0) - np.cos(dec) * np.sin(dec0) * np.cos(ra - ra0)
    return l, m


@pytest.mark.parametrize(
    "key,column,size,scale",
    [
        ("tDDECal", "foursources_DATA", 2048, 8.0),  # LOFAR HBA (19" beam), four sources up to 2.4 deg out
        ("tOSKAR", "DATA", 256, 120.0),  # OSKAR simulation, 50 MHz, 8.5 deg field
    ],
)
def test_dirty_image_of_a_real_ms_matches_the_dft_at_its_sources(real_ms_readonly, tmp_path, key, column, size, scale):
    from astropy.wcs import WCS
    from casacore import tables as pt

    from ddpipe.imaging import make_image

    ms = real_ms_readonly[key]
    params = imaging_params(size=(size, size), scale=scale, weight="natural", niter=0, wgridder_accuracy=1e-6)
    res = make_image([ms], params, tmp_path / "img", data_column=column)
    dirty, header = read_image(res.dirty)
    wcs = WCS(header).celestial
    with pt.table(str(ms / "SPECTRAL_WINDOW"), ack=False) as spw:
        freq = spw.getcol("CHAN_FREQ")[0]
    ra0, dec0 = (math.radians(v) for v in (header["CRVAL1"], header["CRVAL2"]))
    uvw, vis, weight = _stokes_i_from_table(ms, column)
    # the four brightest, well separated peaks; 7x7 cut-outs around each
    work = np.abs(dirty).copy()
    worst = 0.0
    for _ in range(4):
        y, x = np.unravel_index(np.argmax(work), work.shape)
        work[max(0, y - 12) : y + 13, max(0, x - 12) : x + 13] = 0
        ys, xs = np.mgrid[max(3, y - 3) : min(size - 3, y + 4), max(3, x - 3) : min(size - 3, x + 4)]
        sky = wcs.pixel_to_world_values(xs.ravel(), ys.ravel())
        ll, mm = _lm_from_world(np.radians(sky[0]), np.radians(sky[1]), ra0, dec0)
        ref = _dft_points(uvw, freq, vis, weight, ll, mm) / weight.sum()
        worst = max(worst, np.abs(dirty[ys, xs].ravel() - ref).max() / np.abs(dirty).max())
    assert worst < 1e-3
