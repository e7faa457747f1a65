"""ddpipe's own DFT predict: analytic cases, a naive loop, and the fast station path against the row path."""

from __future__ import annotations

import numpy as np
import pytest

from ddpipe.imaging.coords import radec_to_lmn
from ddpipe.simulate.predict import (
    ARCSEC,
    SPEED_OF_LIGHT,
    components_from_skymodel,
    gaussian_taper,
    predict_rows,
    predict_stations,
)
from ddpipe.simulate.uvw import baselines
from ddpipe.sky.model import SkyModel, Source

CENTRE = (np.radians(123.4), np.radians(48.2))
FREQS = np.array([120e6, 150e6, 180e6])


def random_sky(seed: int) -> SkyModel:
    """Points and Gaussians within ~2 deg, one polarised, with spectral indices, in two patches."""
    rng = np.random.default_rng(seed)
    sources = []
    for k in range(6):
        gaussian = k % 3 == 2
        sources.append(
            Source(
                name=f"s{k}",
                ra=CENTRE[0] + np.radians(rng.uniform(-2, 2)),
                dec=CENTRE[1] + np.radians(rng.uniform(-2, 2)),
                i=rng.uniform(0.5, 5),
                type="GAUSSIAN" if gaussian else "POINT",
                patch=f"P{k % 2 + 1}",
                q=0.3 if k == 1 else 0.0,
                u=-0.2 if k == 1 else 0.0,
                v=0.1 if k == 1 else 0.0,
                major_axis=rng.uniform(60, 300) if gaussian else 0.0,
                minor_axis=rng.uniform(20, 60) if gaussian else 0.0,
                orientation=rng.uniform(0, 180) if gaussian else 0.0,
                reference_frequency=150e6,
                spectral_index=(rng.normal(-0.7, 0.2), rng.normal(0, 0.1)),
            )
        )
    return SkyModel(sources=tuple(sources))


def naive_predict(uvw: np.ndarray, freqs: np.ndarray, sky: SkyModel, centre) -> np.ndarray:
    """Loop over rows, channels and sources; the Gaussian from its image-plane definition."""
    ra0, dec0 = centre
    out = np.zeros((len(uvw), len(freqs), 4), dtype=complex)
    for s in sky.sources:
        l = np.cos(s.dec) * np.sin(s.ra - ra0)
        m = np.sin(s.dec) * np.cos(dec0) - np.cos(s.dec) * np.sin(dec0) * np.cos(s.ra - ra0)
        n = np.sqrt(1 - l * l - m * m)
        for r, (u, v, w) in enumerate(uvw):
            for c, f in enumerate(freqs):
                lam = SPEED_OF_LIGHT / f
                vis = np.exp(2j * np.pi * (u * l + v * m + w * (n - 1)) / lam)
                if s.type == "GAUSSIAN":
                    pa = np.radians(s.orientation)
                    smaj = s.major_axis * ARCSEC / (2 * np.sqrt(2 * np.log(2)))
                    smin = s.minor_axis * ARCSEC / (2 * np.sqrt(2 * np.log(2)))
                    k_maj = (u * np.sin(pa) + v * np.cos(pa)) / lam  # spatial frequency along the major axis
                    k_min = (-u * np.cos(pa) + v * np.sin(pa)) / lam
                    vis *= np.exp(-2 * np.pi**2 * (smaj**2 * k_maj**2 + smin**2 * k_min**2))
                i, q, uu, vv = (float(x) for x in s.stokes_at(f))
                out[r, c] += vis * np.array([i + q, uu + 1j * vv, uu - 1j * vv, i - q])
    return out


def test_point_at_phase_centre_gives_its_flux():
    src = Source(
        name="c", ra=CENTRE[0], dec=CENTRE[1], i=3.5, patch="P1", reference_frequency=150e6, spectral_index=(-0.8,)
    )
    comps = components_from_skymodel(SkyModel(sources=(src,)), FREQS, CENTRE)
    rng = np.random.default_rng(1)
    uvw_st = rng.normal(0, 5000, (4, 6, 3))
    a1, a2 = baselines(6)
    want = 3.5 * (FREQS / 150e6) ** -0.8  # I(ν) = I0 (ν/ν0)^α
    for vis in (
        predict_stations(uvw_st, a1, a2, FREQS, comps),
        predict_rows(rng.normal(0, 5000, (50, 3)), FREQS, comps),
    ):
        np.testing.assert_allclose(vis[..., 0], np.broadcast_to(want, vis.shape[:2]), rtol=1e-9)
        np.testing.assert_allclose(vis[..., 3], vis[..., 0], rtol=1e-12)
        assert np.abs(vis[..., 1:3]).max() < 1e-12


def test_lmn_convention():
    lmn = np.stack(
        radec_to_lmn(
            np.array([CENTRE[0], CENTRE[0] + 0.01, CENTRE[0]]),
            np.array([CENTRE[1], CENTRE[1], CENTRE[1] + 0.01]),
            *CENTRE,
        ),
        axis=-1,
    )
    np.testing.assert_allclose(lmn[0], [0, 0, 1], atol=1e-15)
    assert lmn[1, 0] > 0 and abs(lmn[1, 1]) < 1e-4  # east (higher RA) → +l
    np.testing.assert_allclose(lmn[2], [0, np.sin(0.01), np.cos(0.01)], atol=1e-12)  # north → +m
    np.testing.assert_allclose(np.linalg.norm(lmn, axis=1), 1.0, rtol=1e-14)


def test_rows_match_a_naive_loop():
    sky = random_sky(2)
    uvw = np.random.default_rng(3).normal(0, 3000, (25, 3))
    comps = components_from_skymodel(sky, FREQS, CENTRE)
    got = predict_rows(uvw, FREQS, comps, chunk_rows=7)  # several blocks
    want = naive_predict(uvw, FREQS, sky, CENTRE)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10 * np.abs(want).max())
    assert np.abs(want[..., 1]).max() > 0.05  # the polarised source reaches XY


def test_stations_path_matches_rows_path_with_gains():
    sky = random_sky(4)
    rng = np.random.default_rng(5)
    nt, nst = 3, 7
    uvw_st = rng.normal(0, 3000, (nt, nst, 3))
    a1, a2 = baselines(nst)
    comps = components_from_skymodel(sky, FREQS, CENTRE)
    gains = rng.uniform(0.5, 1.5, (nt, 3, nst, 2)) * np.exp(1j * rng.uniform(-np.pi, np.pi, (nt, 3, nst, 2)))
    fast = predict_stations(uvw_st, a1, a2, FREQS, comps, gains=gains)
    uvw_rows = (uvw_st[:, a2] - uvw_st[:, a1]).reshape(-1, 3)
    g_rows = np.concatenate([gains[t][:, a1] * np.conj(gains[t][:, a2]) for t in range(nt)], axis=1)  # (f, row, d)
    slow = predict_rows(uvw_rows, FREQS, comps, baseline_gains=np.swapaxes(g_rows, 0, 1))
    np.testing.assert_allclose(fast, slow, rtol=1e-10, atol=1e-10 * np.abs(slow).max())
    plain = predict_rows(uvw_rows, FREQS, comps)
    assert np.abs(fast - plain).max() > 0.1 * np.abs(plain).max()  # gains change the data


def test_gaussian_taper_is_the_fourier_transform_of_the_image_gaussian():
    """Sum an image-plane elliptical Gaussian on a fine (l, m) grid: its normalised FT is the taper."""
    major, minor, pa = 200 * ARCSEC, 80 * ARCSEC, np.radians(30)
    smaj, smin = (x / (2 * np.sqrt(2 * np.log(2))) for x in (major, minor))
    grid = np.linspace(-6 * smaj, 6 * smaj, 801)
    l, m = np.meshgrid(grid, grid, indexing="ij")
    x_maj = l * np.sin(pa) + m * np.cos(pa)  # position angle north (m) through east (l)
    x_min = -l * np.cos(pa) + m * np.sin(pa)
    image = np.exp(-0.5 * (x_maj**2 / smaj**2 + x_min**2 / smin**2))
    freq = np.array([150e6])
    lam = SPEED_OF_LIGHT / freq[0]
    for u, v in [(0.0, 0.0), (300.0, 0.0), (0.0, 300.0), (250.0, -400.0), (700.0, 500.0)]:
        ft = np.sum(image * np.exp(2j * np.pi * (u * l + v * m) / lam)) / image.sum()
        taper = gaussian_taper(np.array([[u, v]]), freq, major, minor, pa)[0, 0]
        assert abs(ft - taper) < 1e-6, (u, v, ft, taper)
    # elongated north-east: visibilities fall faster along the major axis than across it
    along = gaussian_taper(np.array([[500 * np.sin(pa), 500 * np.cos(pa)]]), freq, major, minor, pa)
    across = gaussian_taper(np.array([[-500 * np.cos(pa), 500 * np.sin(pa)]]), freq, major, minor, pa)
    assert along[0, 0] < across[0, 0] < 1.0


@pytest.mark.parametrize("si", [(-0.7,), (-0.7, 0.3)])
def test_spectral_index_in_predict(si):
    src = Source(name="c", ra=CENTRE[0], dec=CENTRE[1], i=2.0, patch="P1", reference_frequency=150e6, spectral_index=si)
    comps = components_from_skymodel(SkyModel(sources=(src,)), FREQS, CENTRE)
    vis = predict_rows(np.zeros((1, 3)), FREQS, comps)[0, :, 0].real
    x = FREQS / 150e6
    expo = sum(c * np.log10(x) ** k for k, c in enumerate(si))
    np.testing.assert_allclose(vis, 2.0 * x**expo, rtol=1e-12)
    assert vis[0] > vis[1] > vis[2]  # steep spectrum: brighter at low frequency
