"""make_image end to end on simulated and real Measurement Sets."""

from __future__ import annotations

import math

import numpy as np
import pytest
from imaging_helpers import imaging_params, point_radec

from ddpipe.errors import UserError
from ddpipe.imaging import make_image
from ddpipe.imaging.fitsio import read_image

PARAMS = dict(
    size=(512, 512),
    scale=15.0,
    weight="briggs",
    robust=0.0,
    niter=3000,
    gain=0.1,
    mgain=0.8,
    threshold=0.0,
    auto_threshold=2.0,
)


def _world_to_pixel(header, ra, dec):
    from astropy.wcs import WCS

    x, y = WCS(header).celestial.world_to_pixel_values(math.degrees(ra), math.degrees(dec))
    return float(x), float(y)


@pytest.fixture(scope="module")
def points_image(sim_points, tmp_path_factory):
    out = tmp_path_factory.mktemp("points_img") / "pts"
    return make_image([sim_points.ms], imaging_params(**PARAMS), out)


def test_clean_recovers_the_simulated_fluxes_within_2_percent(points_image):
    model, header = read_image(points_image.model)
    ys, xs = np.nonzero(model)
    for name, ra, dec, flux in point_radec():
        x, y = _world_to_pixel(header, ra, dec)
        near = (xs - x) ** 2 + (ys - y) ** 2 <= 4.0**2
        assert model[ys[near], xs[near]].sum() == pytest.approx(flux, rel=0.02), name
    assert model.sum() == pytest.approx(sum(p[3] for p in point_radec()), rel=0.02)


def test_point_sources_land_on_their_pixels_through_the_fits_wcs(points_image):
    image, header = read_image(points_image.image)
    model, _ = read_image(points_image.model)
    for name, ra, dec, flux in point_radec():
        x, y = _world_to_pixel(header, ra, dec)
        xi, yi = int(round(x)), int(round(y))
        box = image[yi - 4 : yi + 5, xi - 4 : xi + 5]
        py, px = np.unravel_index(np.argmax(box), box.shape)
        assert (py - 4, px - 4) == (0, 0), name  # the brightest pixel is the one the WCS names
        sub = model[yi - 4 : yi + 5, xi - 4 : xi + 5]
        cy, cx = (np.array(np.nonzero(sub)) * sub[np.nonzero(sub)]).sum(1) / sub.sum()
        assert math.hypot(cx - 4 - (x - xi), cy - 4 - (y - yi)) < 0.25, name  # centroid within 1/4 pixel


def test_image_result_and_products(points_image):
    r = points_image
    assert set(r.paths) == {"dirty", "psf", "model", "residual", "image"}
    for p in r.paths.values():
        assert p.is_file() and p.name.endswith(".fits")
    image, h = read_image(r.image)
    assert r.peak == pytest.approx(image.max())
    resid, _ = read_image(r.residual)
    assert 0 < r.rms < 0.01 and r.dynamic_range == pytest.approx(r.peak / r.rms)
    assert np.abs(resid).max() < 0.05  # cleaned down to the noise
    psf, hp = read_image(r.psf)
    assert psf[256, 256] == pytest.approx(1.0, abs=1e-6) and psf.max() == pytest.approx(1.0, abs=1e-6)
    bmaj, bmin, bpa = r.beam
    assert (h["BMAJ"], h["BMIN"], h["BPA"]) == pytest.approx((bmaj, bmin, bpa))
    assert 20 / 3600 < bmin <= bmaj < 120 / 3600
    assert r.n_components == len(r.components.sources) > 0
    assert [p.name for p in r.components.patches] == ["image"]
    assert set(r.timings) >= {"dirty", "minor", "major", "restore", "write", "total"}
    from ddpipe.sky.skymodel import read_skymodel

    back = read_skymodel(r.skymodel)
    assert sum(s.i for s in back.sources) == pytest.approx(sum(s.i for s in r.components.sources), rel=1e-6)


def test_components_get_one_patch_per_facet(sim_points, tmp_path):
    from ddpipe.sky.skymodel import read_skymodel

    dirs = [(f"P{n}", ra, dec) for n, ra, dec, _ in point_radec()]
    r = make_image([sim_points.ms], imaging_params(**{**PARAMS, "niter": 300}), tmp_path / "f", facet_directions=dirs)
    assert [p.name for p in r.components.patches] == ["PA", "PB", "PC", "PD"]
    truth = {f"P{n}": f for n, _, _, f in point_radec()}
    for patch, flux in truth.items():
        got = sum(s.i for s in r.components.sources_in(patch))
        assert got == pytest.approx(flux, rel=0.1), patch
    assert {s.patch for s in read_skymodel(r.skymodel).sources} == set(truth)


def test_streaming_from_disk_in_small_blocks_gives_the_same_image(sim_points, tmp_path):
    p = imaging_params(**{**PARAMS, "niter": 200})
    a = make_image([sim_points.ms], p, tmp_path / "a")
    b = make_image(
        [sim_points.ms], imaging_params(**{**PARAMS, "niter": 200, "row_block": 700, "cache_mb": 0}), tmp_path / "b"
    )
    peak = np.abs(read_image(a.dirty)[0]).max()
    for k in ("dirty", "residual", "image"):
        ia, _ = read_image(a.paths[k])
        ib, _ = read_image(b.paths[k])
        # blocks are gridded separately: equal to the gridder's accuracy (1e-4 of the data's norm)
        np.testing.assert_allclose(ib, ia, atol=1e-5 * peak)


def test_dirty_only_and_a_clean_mask(sim_points, tmp_path):
    r = make_image([sim_points.ms], imaging_params(**{**PARAMS, "niter": 0}), tmp_path / "d")
    dirty, _ = read_image(r.dirty)
    for k in ("residual", "image"):
        np.testing.assert_array_equal(read_image(r.paths[k])[0], dirty)
    assert not read_image(r.model)[0].any() and r.skymodel is None and r.n_major == 0
    mask = np.zeros((512, 512), bool)
    mask[:256] = True  # southern half only
    m = make_image([sim_points.ms], imaging_params(**{**PARAMS, "niter": 300}), tmp_path / "m", mask=mask)
    model, _ = read_image(m.model)
    assert model[:256].any() and not model[256:].any()


def test_multiscale_end_to_end(sim_points, tmp_path):
    p = imaging_params(**{**PARAMS, "multiscale": True, "multiscale_scales": (0, 4, 12), "niter": 1500})
    r = make_image([sim_points.ms], p, tmp_path / "ms")
    model, _ = read_image(r.model)
    assert model.sum() == pytest.approx(11.0, rel=0.03)
    assert r.rms < 0.01


def test_real_toskar_cleans_down(real_ms_readonly, tmp_path):
    # (tDDECal's 6 snapshots of 8 stations give a PSF with near-unity grating lobes that no
    # Hogbom CLEAN survives -- WSClean 3.1 diverges on it too -- so the real-data CLEAN is tOSKAR's)
    p = imaging_params(size=(256, 256), scale=120.0, weight="briggs", niter=1000, auto_threshold=0.0)
    r = make_image([real_ms_readonly["tOSKAR"]], p, tmp_path / "o")
    dirty, _ = read_image(r.dirty)
    resid, _ = read_image(r.residual)
    assert r.n_iterations > 100 and r.n_major >= 2
    assert np.abs(resid).max() < 0.02 * np.abs(dirty).max()


def test_bad_input_is_a_user_error(real_ms_readonly, sim_points, tmp_path):
    p = imaging_params(size=(64, 64), scale=60.0, niter=0)
    with pytest.raises(UserError, match="every visibility is flagged"):
        make_image([real_ms_readonly["tDish"]], p, tmp_path / "dish")
    with pytest.raises(UserError, match="phase centre differs"):
        make_image([real_ms_readonly["tDDECal"], real_ms_readonly["tOSKAR"]], p, tmp_path / "two")
    with pytest.raises(UserError, match="no data column 'CORRECTED_DATA'"):
        make_image([sim_points.ms], p, tmp_path / "c", data_column="CORRECTED_DATA")
    with pytest.raises(UserError, match="must be even"):
        make_image([sim_points.ms], imaging_params(size=(63, 64), scale=60.0, niter=0), tmp_path / "odd")
    with pytest.raises(UserError, match="mask has shape"):
        make_image([sim_points.ms], p, tmp_path / "mk", mask=np.ones((32, 32), bool))
    with pytest.raises(UserError, match="is not a casacore table"):
        make_image([tmp_path], p, tmp_path / "nope")
