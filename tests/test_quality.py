"""The quality figures beyond the dynamic range (ddpipe.quality, ddpipe.solutions.compare) on
inputs whose answers are known: synthetic images with sources at given positions, solutions that
differ from the truth by set amounts."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from ddpipe.imaging.beam import Beam
from ddpipe.imaging.coords import lm_to_radec
from ddpipe.imaging.fitsio import ImageGeometry, write_image
from ddpipe.quality import FAR_BEAMS, image_figures
from ddpipe.sky.model import SkyModel, Source
from ddpipe.sky.skymodel import write_skymodel
from ddpipe.solutions import SolTab, Solutions, write_h5parm
from ddpipe.solutions.compare import gain_errors

CENTRE = (np.radians(150.0), np.radians(50.0))
CELL = np.radians(10 / 3600)
N = 256


def _images(tmp_path, sources: list[tuple[int, int, float]], noise: float = 1e-3):
    """Restored and residual FITS: Gaussian-beam sources of the given peaks at pixels (x, y), noise."""
    rng = np.random.default_rng(1)
    beam = Beam(30 / 3600, 30 / 3600, 0.0)
    geom = ImageGeometry((N, N), CELL, CENTRE, 150e6, 1e6)
    resid = rng.normal(0, noise, (N, N))
    yy, xx = np.mgrid[0:N, 0:N]
    sigma = 3.0 / 2.3548  # FWHM 30" = 3 pixels
    restored = resid.copy()
    for x, y, peak in sources:
        restored += peak * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
    r = write_image(tmp_path / "img-image.fits", restored.astype(np.float32), geom, beam=beam)
    q = write_image(tmp_path / "img-residual.fits", resid.astype(np.float32), geom, beam=beam)
    return r, q


def _radec(x: int, y: int) -> tuple[float, float]:
    """Sky position of pixel (x, y) of the images above (RA increases to the left)."""
    ra, dec = lm_to_radec(-(x - N // 2) * CELL, (y - N // 2) * CELL, *CENTRE)
    return float(ra), float(dec)


def test_flux_per_true_source_and_the_noise_far_from_all_of_them(tmp_path):
    pos = {
        "bright": (80, 90, 2.0),
        "modelled": (170, 60, 0.5),
        "faint": (140, 200, 0.05),
        "lost": (40, 220, 0.02),
        "below": (200, 180, 0.002),
    }
    measured = {"bright": 2.0, "modelled": 0.49, "faint": 0.045, "lost": 0.004, "below": 0.002}
    restored, residual = _images(tmp_path, [(x, y, measured[n]) for n, (x, y, _) in pos.items()])
    true = SkyModel(sources=tuple(Source(n, *_radec(x, y), i) for n, (x, y, i) in pos.items()))
    start = SkyModel(sources=tuple(s for s in true.sources if s.name in ("bright", "modelled")))
    tsky, ssky = write_skymodel(true, tmp_path / "true.skymodel"), write_skymodel(start, tmp_path / "start.skymodel")
    out = image_figures(restored, residual, true_skymodel=tsky, start_skymodel=ssky)
    assert out["rms_far_jy"] == pytest.approx(1e-3, rel=0.05) and out["far_beams"] == FAR_BEAMS
    got = {s["name"]: s for s in out["sources"]}
    assert got["faint"]["ratio"] == pytest.approx(0.9, abs=0.1) and got["faint"]["modelled"] is False
    assert got["modelled"]["ratio"] == pytest.approx(0.98, abs=0.02) and got["modelled"]["modelled"] is True
    # "below" (2σ) takes no part in the medians; "lost" (20σ) lost 80% of its flux
    assert out["modelled_count"] == 2 and out["unmodelled_count"] == 2
    assert out["unmodelled_min_ratio"] == pytest.approx(0.2, abs=0.1)
    assert out["unmodelled_median_ratio"] == pytest.approx(0.55, abs=0.1)
    # no true sky: only the noise, far from the CLEAN components given
    plain = image_figures(restored, residual, components=tsky)
    assert set(plain) == {"rms_far_jy", "far_beams"} and plain["rms_far_jy"] == pytest.approx(1e-3, rel=0.05)
    # the sources themselves are not noise: with nothing known, the rms far from sources is the whole image's
    assert image_figures(restored, residual)["rms_far_jy"] == pytest.approx(1e-3, rel=0.05)


def _truth(ndir: int = 2) -> Solutions:
    rng = np.random.default_rng(3)
    ants = tuple(f"CS{i:03d}" for i in range(5))
    dirs = tuple(f"[T{i}]" for i in range(ndir))
    shape = (6, 2, len(ants), ndir)
    kw = dict(
        axes=("time", "freq", "ant", "dir"),
        time=4.8e9 + 10.0 * np.arange(6),
        freq=np.array([140e6, 150e6]),
        ant=ants,
        dir=dirs,
    )
    tabs = {
        "phase000": SolTab("phase", values=rng.uniform(-3, 3, shape), weights=np.ones(shape, np.float32), **kw),
        "amplitude000": SolTab(
            "amplitude", values=rng.uniform(0.8, 1.2, shape), weights=np.ones(shape, np.float32), **kw
        ),
    }
    radec = np.array([[2.6, 0.87], [2.7, 0.9], [2.5, 0.85]][:ndir])
    return Solutions(ants, np.zeros((len(ants), 3)), dirs, radec, tabs)


def test_solutions_against_the_truth_match_directions_by_position(tmp_path):
    truth = _truth()
    # the solved directions: renamed, in the other order, a little off; T0's phase off by 0.1 rad on
    # one station, T1's amplitude 10% high everywhere
    ph = truth.soltabs["phase000"].values.copy()[..., ::-1]
    amp = truth.soltabs["amplitude000"].values.copy()[..., ::-1]
    ph[:, :, 3, 1] += 0.1
    amp[..., 0] *= 1.1
    dirs = ("[A]", "[B]")
    sol = replace(
        truth,
        directions=dirs,
        direction_radec=truth.direction_radec[::-1] + 1e-4,
        soltabs={
            "phase000": replace(truth.soltabs["phase000"], values=ph, dir=dirs),
            "amplitude000": replace(truth.soltabs["amplitude000"], values=amp, dir=dirs),
        },
    )
    write_h5parm(tmp_path / "truth.h5", truth)
    write_h5parm(tmp_path / "sol.h5", sol)
    out = gain_errors(tmp_path / "sol.h5", tmp_path / "truth.h5")
    a, b = out["directions"]["A"], out["directions"]["B"]
    assert (a["true_direction"], b["true_direction"]) == ("T1", "T0") and a["offset_deg"] < 0.01
    assert a["phase_rms_rad"] == pytest.approx(0, abs=1e-9) and a["amplitude_rms"] == pytest.approx(0.1)
    assert b["phase_rms_rad"] == pytest.approx(0.1 / np.sqrt(5)) and b["amplitude_rms"] == pytest.approx(0, abs=1e-9)
    assert out["phase_rms_rad"] == pytest.approx(0.1 / np.sqrt(10))
    # phase-only solutions: the amplitude error is the truth's own amplitude deviation, said as it is
    only = replace(sol, soltabs={"phase000": sol.soltabs["phase000"]})
    write_h5parm(tmp_path / "only.h5", only)
    assert gain_errors(tmp_path / "only.h5", tmp_path / "truth.h5")["amplitude_rms"] > 0.05


def test_a_perfect_image_of_a_gaussian_source_peaks_at_its_flux_times_the_beam_over_the_convolved_area():
    from ddpipe.quality import _gaussian_cov, expected_value, sample

    beam = _gaussian_cov(3.0, 2.0, 30.0)  # pixels
    point = Source("p", 0.0, 0.0, 2.0)
    assert expected_value(point, 0.0, 10.0, 10.0, beam, 10.0, (32, 32)) == pytest.approx((2.0, 2.0))
    # half a pixel off in x and y: the four surrounding pixels, a quarter each
    _, off = expected_value(point, 0.0, 10.5, 10.5, beam, 10.0, (32, 32))
    inv = np.linalg.inv(beam)
    want = np.mean(
        [np.exp(-0.5 * d @ inv @ d) for d in (np.array([sx, sy]) for sx in (-0.5, 0.5) for sy in (-0.5, 0.5))]
    )
    assert off == pytest.approx(2.0 * want, rel=1e-9) and off < 2.0
    # and the image of that perfect source, sampled the same way, reads the same
    yy, xx = np.mgrid[0:32, 0:32]
    d = np.stack([xx - 10.5, yy - 10.5], axis=-1)
    img = 2.0 * np.exp(-0.5 * np.einsum("...i,ij,...j->...", d, inv, d))
    assert sample(img, 10.5, 10.5) == pytest.approx(off, rel=1e-9)
    # a circular Gaussian source of FWHM 4 pixels (40") in a circular beam of 3: the peak drops by 3²/(3²+4²)
    gauss = Source("g", 0.0, 0.0, 1.0, type="GAUSSIAN", major_axis=40.0, minor_axis=40.0)
    assert expected_value(gauss, 0.0, 5.0, 5.0, _gaussian_cov(3.0, 3.0, 0.0), 10.0, (32, 32))[1] == pytest.approx(
        9 / 25
    )
    # position angle: an east-west elongated beam (PA 90) is wide in x
    ew = _gaussian_cov(4.0, 1.0, 90.0)
    assert ew[0, 0] > ew[1, 1] and abs(ew[0, 1]) < 1e-12


def test_spectral_index_from_components_near_each_bright_true_source():
    """Components (spread over a few pixels, with fitted spectra) give each bright source its index;
    flat components show the whole index as the error; faint sources are left out."""
    from ddpipe.quality import spectral_indices

    ra, dec = CENTRE
    truth = SkyModel(
        sources=(
            Source("A", ra, dec, 2.0, reference_frequency=150e6, spectral_index=(-0.8,)),
            Source("B", ra + 0.01, dec, 1.0, reference_frequency=150e6, spectral_index=(-0.3, 0.2)),
            Source("faint", ra - 0.01, dec, 0.01, reference_frequency=150e6, spectral_index=(-1.0,)),
        )
    )
    band = (140e6, 160e6)

    def spread(src, log_si=True):
        # the true spectrum split over three components a pixel apart
        return [
            replace(src, name=f"{src.name}{k}", ra=src.ra + k * CELL, i=src.i / 3, patch="p")
            if log_si
            else replace(src, name=f"{src.name}{k}", ra=src.ra + k * CELL, i=src.i / 3, spectral_index=())
            for k in (-1, 0, 1)
        ]

    comps = SkyModel(sources=tuple(spread(truth.sources[0]) + spread(truth.sources[1])))
    got = {e["name"]: e for e in spectral_indices(comps, truth, rms=0.001, radius=3 * CELL, band=band)}
    assert set(got) == {"A", "B"}  # 'faint' is below 20 sigma
    assert got["A"]["true"] == pytest.approx(-0.8) and got["A"]["recovered"] == pytest.approx(-0.8)
    assert got["B"]["recovered"] == pytest.approx(got["B"]["true"], abs=1e-9)
    flat = SkyModel(sources=tuple(spread(truth.sources[0], log_si=False)))
    got = spectral_indices(flat, truth, rms=0.001, radius=3 * CELL, band=band)
    assert got[0]["recovered"] == pytest.approx(0.0) and got[0]["true"] == pytest.approx(-0.8)
