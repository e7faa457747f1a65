"""SpectralFitter against analytic spectra: WSClean's polynomial and log-polynomial terms."""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pytest
from astropy.io import fits

from ddpipe.imaging.components import model_to_skymodel
from ddpipe.imaging.spectral import SpectralFitter
from ddpipe.simulate import SimulationSpec, simulate
from ddpipe.sky.model import Patch, SkyModel, Source
from ddpipe.sky.skymodel import read_skymodel, write_skymodel

FREQS = np.linspace(120e6, 180e6, 8)  # a 60 MHz band, like LOFAR HBA sub-band sets
WEIGHTS = np.array([1.0, 2.0, 3.0, 3.0, 2.5, 2.0, 1.5, 0.5])


def poly_spectrum(freqs: np.ndarray, nu0: float, c: list[float]) -> np.ndarray:
    """c0 + c1 x + c2 x² + ..., x = ν/ν0 − 1 (DP3's LogarithmicSI=false)."""
    x = freqs / nu0 - 1.0
    return sum(ck * x**k for k, ck in enumerate(c))


def log_spectrum(freqs: np.ndarray, nu0: float, c: list[float]) -> np.ndarray:
    """c0 (ν/ν0)^(c1 + c2 lg + ...), lg = log10(ν/ν0) (DP3's LogarithmicSI=true)."""
    lg = np.log10(freqs / nu0)
    expo = sum(ck * lg**k for k, ck in enumerate(c[1:]))
    return c[0] * (freqs / nu0) ** expo


def test_reference_frequency_is_the_weighted_mean_unless_given():
    fitter = SpectralFitter(FREQS, WEIGHTS, 2)
    assert fitter.reference_frequency == pytest.approx(np.sum(FREQS * WEIGHTS) / np.sum(WEIGHTS), rel=1e-15)
    assert SpectralFitter(FREQS, WEIGHTS, 2, ref_freq=150e6).reference_frequency == 150e6


@pytest.mark.parametrize("nterms", [1, 2, 3, 4])
def test_polynomial_recovers_exact_terms(nterms):
    fitter = SpectralFitter(FREQS, WEIGHTS, nterms)
    truth = [2.0, -1.3, 4.0, -7.0][:nterms]
    y = poly_spectrum(FREQS, fitter.reference_frequency, truth)
    np.testing.assert_allclose(fitter.fit(y), truth, rtol=0, atol=1e-9)
    np.testing.assert_allclose(fitter.smooth(y), y, rtol=0, atol=1e-12)


def test_polynomial_is_a_weighted_least_squares_fit():
    """Against the normal equations written out; a zero-weight channel has no say at all."""
    rng = np.random.default_rng(3)
    y = poly_spectrum(FREQS, 150e6, [1.0, -0.8, 0.5]) + rng.normal(0.0, 0.05, FREQS.size)
    w = WEIGHTS.copy()
    w[2] = 0.0
    fitter = SpectralFitter(FREQS, w, 3)
    x = FREQS / fitter.reference_frequency - 1.0
    a = np.vander(x, 3, increasing=True)
    naive = np.linalg.solve(a.T @ (w[:, None] * a), a.T @ (w * y))
    np.testing.assert_allclose(fitter.fit(y), naive, rtol=1e-9, atol=1e-12)
    wild = y.copy()
    wild[2] = 1e6
    np.testing.assert_allclose(fitter.fit(wild), naive, rtol=1e-9, atol=1e-12)
    unweighted = SpectralFitter(FREQS, np.ones_like(w), 3).fit(y)
    assert np.abs(unweighted - naive).max() > 1e-3  # the weights changed the answer


def test_polynomial_with_noise_is_within_its_errors():
    truth = [3.0, -2.4, 1.5]
    fitter = SpectralFitter(FREQS, WEIGHTS, 3)
    rng = np.random.default_rng(11)
    sigma = 0.01 / np.sqrt(WEIGHTS)  # weights as inverse variances
    trials = np.stack([rng.normal(0.0, sigma) for _ in range(400)], axis=1)
    y = poly_spectrum(FREQS, fitter.reference_frequency, truth)[:, None] + trials
    got = fitter.fit(y)  # (3, 400)
    x = FREQS / fitter.reference_frequency - 1.0
    a = np.vander(x, 3, increasing=True)
    expected_sd = np.sqrt(np.diag(np.linalg.inv(a.T @ (a / sigma[:, None] ** 2))))
    np.testing.assert_allclose(got.mean(axis=1), truth, atol=4 * expected_sd.max() / 20)  # unbiased
    np.testing.assert_allclose(got.std(axis=1), expected_sd, rtol=0.15)  # the optimal (weighted) errors


@pytest.mark.parametrize("flux", [2.5, -0.7])
@pytest.mark.parametrize("terms", [[-0.8], [-0.8, 0.4], [-0.7, -0.5, 1.2]])
def test_log_polynomial_recovers_exact_terms(flux, terms):
    fitter = SpectralFitter(FREQS, WEIGHTS, 1 + len(terms), log=True)
    truth = [flux, *terms]
    y = log_spectrum(FREQS, fitter.reference_frequency, truth)
    np.testing.assert_allclose(fitter.fit(y), truth, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(fitter.smooth(y), y, rtol=1e-9)


def test_log_polynomial_with_noise_is_near_the_truth_and_a_least_squares_minimum():
    truth = [1.8, -0.8, -0.3]
    fitter = SpectralFitter(FREQS, WEIGHTS, 3, log=True)
    rng = np.random.default_rng(5)
    sigma = 0.01 / np.sqrt(WEIGHTS)
    exact = log_spectrum(FREQS, fitter.reference_frequency, truth)
    y = exact + rng.normal(0.0, sigma)
    c = fitter.fit(y)
    # the linearised errors of the three terms: df/dc0 = f/c0, df/dc_k = f ln10 lg^k
    lg = np.log10(FREQS / fitter.reference_frequency)
    jac = np.stack([exact / truth[0], exact * np.log(10) * lg, exact * np.log(10) * lg**2], axis=1)
    sd = np.sqrt(np.diag(np.linalg.inv(jac.T @ (jac / sigma[:, None] ** 2))))
    assert np.all(np.abs(c - truth) < 4 * sd), (c, truth, sd)
    assert sd[1] < 0.05  # the spectral index itself is well determined

    def cost(coeffs):
        return float(np.sum(WEIGHTS * (y - fitter.evaluate(coeffs)) ** 2))

    best = cost(c)
    for k in range(3):
        for h in (1e-4, -1e-4):
            nudged = c.copy()
            nudged[k] += h
            assert cost(nudged) > best


def test_log_polynomial_of_a_faint_noisy_source_with_negative_channels():
    """Fluxes <= 0 in some channels: fitted in flux space (as WSClean), finite, the right sign."""
    fitter = SpectralFitter(FREQS, WEIGHTS, 2, log=True)
    truth = log_spectrum(FREQS, fitter.reference_frequency, [0.05, -0.8])
    y = truth + np.array([0.06, -0.03, 0.02, -0.05, 0.01, -0.02, -0.07, 0.05])
    assert np.any(y <= 0)
    c = fitter.fit(y)
    assert np.all(np.isfinite(c)) and c[0] > 0
    fitted = fitter.evaluate(c)
    assert np.sum(WEIGHTS * (y - fitted) ** 2) <= np.sum(WEIGHTS * (y - truth) ** 2)
    negative = fitter.fit(-y)
    np.testing.assert_allclose(negative, [-c[0], c[1]], rtol=1e-9)
    np.testing.assert_array_equal(fitter.fit(np.zeros(FREQS.size)), [0.0, 0.0])


def test_fewer_channels_than_terms_fits_what_it_can():
    """Two positive-weight channels and 4 terms: 2 terms fitted (WSClean's rule), the rest 0."""
    w = np.zeros(FREQS.size)
    w[[1, 5]] = [1.0, 2.0]
    for log in (False, True):
        fitter = SpectralFitter(FREQS, w, 4, log=log)
        assert fitter.fitted_terms == 2
        y = np.linspace(2.0, 1.0, FREQS.size)
        c = fitter.fit(y)
        assert c.shape == (4,) and c[2] == 0.0 and c[3] == 0.0
        np.testing.assert_allclose(fitter.evaluate(c)[[1, 5]], y[[1, 5]], rtol=1e-9)


def test_batches_match_single_components_and_smooth_is_evaluate_of_fit():
    rng = np.random.default_rng(8)
    values = np.abs(rng.normal(1.0, 0.3, (FREQS.size, 5))) + 0.1
    for log in (False, True):
        fitter = SpectralFitter(FREQS, WEIGHTS, 3, log=log)
        batch = fitter.fit(values)
        assert batch.shape == (3, 5)
        for j in range(5):
            np.testing.assert_allclose(batch[:, j], fitter.fit(values[:, j]), rtol=1e-12)
        np.testing.assert_allclose(fitter.smooth(values), fitter.evaluate(batch), rtol=1e-12)
        np.testing.assert_allclose(fitter.smooth(values[:, 0]), fitter.evaluate(batch[:, 0]), rtol=1e-12)
        smoothed = fitter.smooth(values)
        np.testing.assert_allclose(fitter.smooth(smoothed), smoothed, rtol=1e-7)  # a projection


def test_one_term_is_the_weighted_mean_in_both_forms():
    y = np.linspace(1.0, 3.0, FREQS.size)
    mean = np.sum(WEIGHTS * y) / np.sum(WEIGHTS)
    for log in (False, True):
        fitter = SpectralFitter(FREQS, WEIGHTS, 1, log=log)
        np.testing.assert_allclose(fitter.fit(y), [mean], rtol=1e-12)
        np.testing.assert_allclose(fitter.smooth(y), np.full(FREQS.size, mean), rtol=1e-12)


@pytest.mark.parametrize("log", [False, True])
def test_sky_terms_give_a_source_with_the_fitted_spectrum(log):
    """The (I, SpectralIndex, LogarithmicSI) convention is the one Source (and DP3) evaluate."""
    fitter = SpectralFitter(FREQS, WEIGHTS, 3, log=log)
    c = np.array([[1.5, -0.4], [-0.8, 0.6], [0.3, -1.1]])
    i, si, log_si = fitter.sky_terms(c)
    assert i.shape == (2,) and si.shape == (2, 2) and log_si is log
    fitted = fitter.evaluate(c)
    for j in range(2):
        src = Source(
            name=f"s{j}",
            ra=0.0,
            dec=0.0,
            i=float(i[j]),
            reference_frequency=fitter.reference_frequency,
            spectral_index=tuple(si[j]),
            log_si=log_si,
        )
        np.testing.assert_allclose(src.stokes_i_at(FREQS), fitted[:, j], rtol=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"weights": np.zeros(8)}, "every channel has zero weight"),
        ({"weights": -WEIGHTS}, "weights must be finite and >= 0"),
        ({"weights": WEIGHTS[:3]}, "same non-zero length"),
        ({"freqs": -FREQS}, "frequencies must be finite and positive"),
        ({"nterms": 0}, "nterms must be an integer >= 1"),
        ({"ref_freq": -1.0}, "ref_freq must be 0"),
    ],
)
def test_bad_inputs_are_refused_with_what_was_wrong(kwargs, match):
    args = {"freqs": FREQS, "weights": WEIGHTS, "nterms": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        SpectralFitter(**args)


def test_wrong_value_shapes_are_refused():
    fitter = SpectralFitter(FREQS, WEIGHTS, 2)
    with pytest.raises(ValueError, match="values must be"):
        fitter.fit(np.ones(3))
    with pytest.raises(ValueError, match="nterms=2"):
        fitter.evaluate(np.ones(3))


def test_the_fitter_is_frozen():
    fitter = SpectralFitter(FREQS, WEIGHTS, 2)
    with pytest.raises(AttributeError):
        fitter.nterms = 3  # type: ignore[misc]
    with pytest.raises(ValueError):
        fitter.freqs[0] = 1.0


def channel_cube(fitter: SpectralFitter, rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """(N, 32, 32) channel models: three components with different noisy spectra, one only in two channels."""
    cube = np.zeros((FREQS.size, 32, 32))
    nu0 = fitter.reference_frequency
    pixels = [(16, 16), (5, 20), (27, 9)]
    cube[:, 16, 16] = log_spectrum(FREQS, nu0, [2.0, -0.8, 0.5])
    cube[:, 5, 20] = log_spectrum(FREQS, nu0, [0.3, 0.6]) + rng.normal(0.0, 0.01, FREQS.size)
    cube[[2, 5], 27, 9] = [0.05, 0.04]
    return cube, pixels


@pytest.mark.parametrize("log", [False, True])
def test_spectral_components_survive_write_and_read(tmp_path, log):
    """model_to_skymodel → write → read → Source.stokes_i_at gives the fitted channel fluxes."""
    fitter = SpectralFitter(FREQS, WEIGHTS, 3, log=log)
    cube, pixels = channel_cube(fitter, np.random.default_rng(2))
    mfs = np.tensordot(WEIGHTS / WEIGHTS.sum(), cube, axes=1)
    centre = (np.radians(150.0), np.radians(50.0))
    sky = model_to_skymodel(mfs, np.radians(5 / 3600), centre, 150e6, channel_models=cube, fitter=fitter)
    assert len(sky.sources) == 3
    back = read_skymodel(write_skymodel(sky, tmp_path / "spectral.skymodel"))
    assert back == sky
    by_flux = sorted(back.sources, key=lambda s: -abs(s.i))
    expected = [fitter.smooth(cube[:, y, x]) for y, x in pixels]
    for src, want in zip(by_flux, expected):
        assert src.reference_frequency == fitter.reference_frequency
        assert len(src.spectral_index) == 2 and src.log_si is log
        np.testing.assert_allclose(src.stokes_i_at(FREQS), want, rtol=1e-12, atol=1e-15)
    # the bright one is exactly its analytic (log) spectrum when fitted with the log form
    if log:
        assert by_flux[0].spectral_index == pytest.approx((-0.8, 0.5), abs=1e-9)


def test_without_a_fitter_components_stay_flat():
    model = np.zeros((16, 16))
    model[8, 8], model[3, 12] = 1.5, -0.2
    sky = model_to_skymodel(model, np.radians(5 / 3600), (1.0, 0.5), 140e6)
    assert [s.i for s in sky.sources] == [-0.2, 1.5]
    assert all(s.reference_frequency == 140e6 and s.spectral_index == () for s in sky.sources)


def test_channel_models_and_fitter_come_together():
    fitter = SpectralFitter(FREQS, WEIGHTS, 2)
    model = np.zeros((16, 16))
    with pytest.raises(ValueError, match="together"):
        model_to_skymodel(model, 1e-5, (1.0, 0.5), 140e6, fitter=fitter)
    with pytest.raises(ValueError, match="together"):
        model_to_skymodel(model, 1e-5, (1.0, 0.5), 140e6, channel_models=np.zeros((8, 16, 16)))
    with pytest.raises(ValueError, match=r"channel_models must be \(N=8, 16, 16\)"):
        model_to_skymodel(model, 1e-5, (1.0, 0.5), 140e6, channel_models=np.zeros((4, 16, 16)), fitter=fitter)


def _brightest_wsclean_component(path) -> tuple[float, float, list[float], bool]:
    """(ReferenceFrequency, I, SpectralIndex, LogarithmicSI) of the brightest entry of a WSClean source list."""
    row = re.compile(r"^[^,]*,POINT,[^,]*,[^,]*,([^,]*),\[([^\]]*)\],([^,]*),([^,]*),")
    found = [row.match(line).groups() for line in path.read_text().splitlines()[1:] if line.strip()]
    i, si, log_si, nu0 = max(found, key=lambda g: abs(float(g[0])))
    return float(nu0), float(i), [float(c) for c in si.split(",")], log_si == "true"


@pytest.mark.wsclean
@pytest.mark.parametrize("log", [False, True])
def test_terms_match_wsclean_source_list(tmp_path, wsclean, log):
    """WSClean 3.1 joined-channel CLEAN: its -save-source-list terms and reference frequency are
    what SpectralFitter makes of its channel model images and image weights (WSCIMGWG)."""
    centre = (np.radians(150.0), np.radians(50.0))
    src = Source("a", *centre, 2.0, patch="P", reference_frequency=150e6, spectral_index=(-0.8, -0.6))
    write_skymodel(SkyModel(sources=(src,), patches=(Patch("P", *centre),)), tmp_path / "in.skymodel")
    spec = SimulationSpec(
        stations=16,
        channels=8,
        freq_start=122e6,
        chan_width=7.5e6,
        times=40,
        interval=30.0,
        ra=centre[0],
        dec=centre[1],
        noise=0.0,
        corrupt=False,
        skymodel=str(tmp_path / "in.skymodel"),
    )
    ms = simulate(tmp_path / "sim.ms", spec).ms
    fit_arg = "-fit-spectral-log-pol" if log else "-fit-spectral-pol"
    cmd = [wsclean, "-quiet", "-j", "2", "-no-update-model-required", "-data-column", "DATA", "-size", "256", "256"]
    cmd += ["-scale", "30asec", "-niter", "300", "-mgain", "0.8", "-channels-out", "4", "-join-channels"]
    cmd += [fit_arg, "3", "-save-source-list", "-name", str(tmp_path / "ws"), str(ms)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=600)
    headers = [fits.getheader(tmp_path / f"ws-{k:04d}-model.fits") for k in range(4)]
    models = np.stack([fits.getdata(tmp_path / f"ws-{k:04d}-model.fits")[0, 0] for k in range(4)])
    freqs = np.array([h["CRVAL3"] for h in headers])
    fitter = SpectralFitter(freqs, np.array([h["WSCIMGWG"] for h in headers]), 3, log=log)
    nu0, i, si, log_si = _brightest_wsclean_component(tmp_path / "ws-sources.txt")
    assert log_si is log
    assert fitter.reference_frequency == pytest.approx(nu0, rel=1e-6)  # WSClean sums the weights in float32
    # WSClean 3.1 with -fit-spectral-log-pol now and then leaves one NaN pixel in a channel
    # model (not in its source list; seen in 2 of 4 identical runs): look past it
    y, x = np.unravel_index(np.abs(np.nan_to_num(models, nan=0.0).sum(axis=0)).argmax(), models.shape[1:])
    got_i, got_si, _ = fitter.sky_terms(fitter.fit(models[:, y, x].astype(float)))
    assert float(got_i) == pytest.approx(i, rel=1e-5)
    np.testing.assert_allclose(got_si, si, rtol=1e-4, atol=1e-5)
    assert abs(i - 2.0 * (nu0 / 150e6) ** -0.8) < 0.05  # and WSClean found the simulated source


def test_log_fit_of_noise_never_runs_away():
    """Pure-noise channel fluxes (mixed signs): a log-polynomial fit can run away to a spike whose
    terms overflow; such a component gets its weighted mean, flat, and every fit stays finite."""
    freqs = np.array([135e6, 145e6, 155e6, 165e6])
    spike = np.array([-2.88604545, 0.16566183, -1.02054441, -0.9526843])  # ran away before: terms -3e4
    c = SpectralFitter(freqs, np.ones(4), 2, log=True).fit(spike)
    assert c[1] == 0 and c[0] == pytest.approx(spike.mean())
    for nterms in (2, 3):
        f = SpectralFitter(freqs, np.ones(4), nterms, log=True)
        rng = np.random.default_rng(0)
        values = rng.normal(0.0, 1.0, (4, 2000))
        smoothed = f.smooth(values)
        assert np.all(np.isfinite(f.fit(values))) and np.all(np.isfinite(smoothed))
        assert np.abs(smoothed).max() <= 10 * np.abs(values).max()
