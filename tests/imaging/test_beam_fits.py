"""Restoring beam fit and restore; FITS header and WCS orientation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ddpipe.imaging import coords
from ddpipe.imaging.beam import Beam, beam_image, fit_beam, restore
from ddpipe.imaging.fitsio import ImageGeometry, read_image, write_image

CELL = math.radians(4 / 3600)


@pytest.mark.parametrize("bmaj,bmin,bpa", [(40, 20, 30.0), (40, 20, -60.0), (30, 30, 0.0), (24, 12, 80.0)])
def test_fit_recovers_a_gaussian_beam(bmaj, bmin, bpa):
    beam = Beam(bmaj / 3600, bmin / 3600, bpa)
    got = fit_beam(beam_image(beam, (128, 128), CELL), CELL)
    assert got.bmaj * 3600 == pytest.approx(bmaj, rel=1e-3)
    assert got.bmin * 3600 == pytest.approx(bmin, rel=1e-3)
    if bmaj != bmin:
        assert (got.bpa - bpa + 90) % 180 - 90 == pytest.approx(0, abs=0.1)


def test_beam_position_angle_is_east_of_north_on_the_sky():
    from astropy.wcs import WCS

    geom = ImageGeometry((64, 64), CELL, (1.0, 0.5), 1.4e8, 1e6)
    for pa in (0.0, 45.0, 90.0):
        img = beam_image(Beam(40 / 3600, 10 / 3600, pa), (64, 64), CELL)
        # the far half-power points of the major axis, found in the image
        y, x = np.nonzero(img > 0.45)
        i = np.argmax((x - 32) ** 2 + (y - 32) ** 2)
        wcs = WCS(_header(geom)).celestial
        ra_c, dec_c = wcs.pixel_to_world_values(32, 32)
        ra, dec = wcs.pixel_to_world_values(x[i], y[i])
        east = (ra - ra_c) * math.cos(math.radians(dec_c))
        north = dec - dec_c
        angle = math.degrees(math.atan2(east, north))
        assert (angle - pa + 90) % 180 - 90 == pytest.approx(0, abs=8)


def _header(geom):
    from astropy.io import fits

    from ddpipe.imaging.fitsio import header_cards

    h = fits.Header()
    h["NAXIS"] = 4
    h["NAXIS1"], h["NAXIS2"], h["NAXIS3"], h["NAXIS4"] = geom.shape[1], geom.shape[0], 1, 1
    for k, v in header_cards(geom):
        h[k] = v
    return h


def test_fit_of_a_real_psf_does_not_depend_on_a_coarse_pixel_scale():
    from ddpipe.imaging import gridder

    rng = np.random.default_rng(2)
    uvw = rng.normal(size=(4000, 3)) * np.array([2400.0, 1500.0, 0.0])  # elongated coverage
    uvw[np.hypot(uvw[:, 0], uvw[:, 1]) > 4400] = 0  # keep u, v below 4400 m: Nyquist for 20" cells
    freq = np.array([3.0e8])  # 1 m wavelength
    beams = []
    for arcsec, n in ((5.0, 256), (20.0, 64)):  # 9 vs 2.2 pixels across the lobe
        cell = math.radians(arcsec / 3600)
        w = np.ones((len(uvw), 1), np.float32)
        psf = gridder.grid(
            uvw, freq, np.ones((len(uvw), 1), np.complex64), w, (n, n), gridder.Sampling(cell, wterm=False)
        )
        beams.append(fit_beam(psf / psf[n // 2, n // 2], cell))
    fine, coarse = beams
    assert coarse.bmaj == pytest.approx(fine.bmaj, rel=0.01)
    assert coarse.bmin == pytest.approx(fine.bmin, rel=0.01)
    assert (coarse.bpa - fine.bpa + 90) % 180 - 90 == pytest.approx(0, abs=2)


def test_restore_direct_and_fft_agree_and_keep_point_flux_as_peak():
    rng = np.random.default_rng(0)
    beam = Beam(30 / 3600, 18 / 3600, 20.0)
    model = np.zeros((96, 96), np.float32)
    model[40, 50] = 2.5
    resid = rng.normal(scale=0.01, size=model.shape).astype(np.float32)
    few = restore(model, resid, beam, CELL)
    assert few[40, 50] == pytest.approx(2.5 + resid[40, 50], rel=1e-6)
    many = model.copy()
    many[::2, ::2] += 0.001  # enough components to take the FFT path
    np.testing.assert_allclose(restore(many, resid, beam, CELL), _direct_sum(many, resid, beam), atol=1e-5)


def _direct_sum(model, resid, beam):
    out = resid.astype(np.float64).copy()
    g = beam_image(beam, (2 * model.shape[0], 2 * model.shape[1]), CELL)
    n = model.shape[0]
    for y, x in zip(*np.nonzero(model)):
        out += model[y, x] * g[n - y : 2 * n - y, n - x : 2 * n - x]
    return out


def test_fits_file_is_valid_and_its_wcs_puts_the_phase_centre_on_crpix(tmp_path):
    from astropy.io import fits
    from astropy.wcs import WCS

    ra0, dec0 = math.radians(201.4), math.radians(-43.0)
    geom = ImageGeometry((64, 80), CELL, (ra0, dec0), 1.5e8, 2e6, date_obs=5.0e9, telescope="LOFAR")
    img = np.arange(64 * 80, dtype=np.float32).reshape(64, 80)
    path = write_image(tmp_path / "x.fits", img, geom, beam=Beam(0.01, 0.005, 30.0), extra={"DDPNITER": 7})
    with fits.open(path) as hdul:
        hdul.verify("exception")
        h = hdul[0].header
        assert hdul[0].data.shape == (1, 1, 64, 80)
    data, _ = read_image(path)
    np.testing.assert_array_equal(data, img)
    assert (h["BMAJ"], h["BMIN"], h["BPA"], h["BUNIT"], h["DDPNITER"]) == (0.01, 0.005, 30.0, "JY/BEAM", 7)
    assert h["CDELT1"] < 0 < h["CDELT2"]
    assert h["CTYPE3"] == "FREQ" and h["CTYPE4"] == "STOKES"
    wcs = WCS(h).celestial
    ra, dec = wcs.pixel_to_world_values(40, 32)  # (x, y) = (nx//2, ny//2)
    assert ra == pytest.approx(math.degrees(ra0), abs=1e-9) and dec == pytest.approx(math.degrees(dec0), abs=1e-9)
    # every pixel: astropy's SIN projection and ddpipe.imaging.coords agree
    ys, xs = np.mgrid[0:64:7, 0:80:9]
    ra, dec = wcs.pixel_to_world_values(xs.ravel(), ys.ravel())
    l, m, _ = coords.radec_to_lmn(np.radians(ra), np.radians(dec), ra0, dec0)
    px, py = coords.lm_to_pixel(l, m, (64, 80), CELL)
    np.testing.assert_allclose(px, xs.ravel(), atol=1e-6)
    np.testing.assert_allclose(py, ys.ravel(), atol=1e-6)
    assert not list(tmp_path.glob(".*.tmp"))


def test_lm_radec_round_trip():
    rng = np.random.default_rng(8)
    ra0, dec0 = 4.0, -0.7
    l, m = rng.uniform(-0.3, 0.3, 50), rng.uniform(-0.3, 0.3, 50)
    ra, dec = coords.lm_to_radec(l, m, ra0, dec0)
    l2, m2, n2 = coords.radec_to_lmn(ra, dec, ra0, dec0)
    np.testing.assert_allclose(l2, l, atol=1e-12)
    np.testing.assert_allclose(m2, m, atol=1e-12)
    np.testing.assert_allclose(n2, np.sqrt(1 - l**2 - m**2), atol=1e-12)
