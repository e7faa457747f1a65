"""Direction-dependent gains: TEC-like (phase ∝ 1/ν), smooth in time, seeded, with the requested scale."""

from __future__ import annotations

import numpy as np

from ddpipe.simulate.corruption import dd_gains

TIMES = 4.9e9 + 10.0 * np.arange(360)
FREQS = 120e6 + 2e6 * np.arange(16)


def test_phase_is_inverse_in_frequency():
    g = dd_gains(1, TIMES[:20], FREQS, nant=5, ndir=3, phase_scale=1.0, amplitude_scale=0.0)
    scaled = g.phase * FREQS[None, :, None, None]
    np.testing.assert_allclose(scaled, np.broadcast_to(scaled[:, :1], scaled.shape), rtol=1e-12)
    assert g.amplitude is None
    np.testing.assert_allclose(np.abs(g.complex_gains()), 1.0)


def test_scale_and_smoothness():
    g = dd_gains(2, TIMES, FREQS, nant=60, ndir=8, phase_scale=0.7, amplitude_scale=0.1)
    centre = np.argmin(np.abs(FREQS - FREQS.mean()))
    ph = g.phase[:, centre] * FREQS[centre] / FREQS.mean()  # at ν_ref
    rms = np.sqrt(np.mean(ph**2))
    assert 0.7 * 0.75 < rms < 0.7 * 1.25
    step = np.abs(np.diff(ph, axis=0))
    assert step.max() < 0.7 * 2 * np.pi * 10.0 / 900.0 * 2  # slope bound: 4 terms, periods ≥ 900 s
    assert np.median(step) < 0.02 * 0.7  # 10 s steps: smooth on solution-interval scales
    assert np.abs(ph[-1] - ph[0]).mean() > 10 * step.mean()  # but it does wander over the hour
    curvature = np.abs(np.diff(ph, 2, axis=0))
    assert curvature.max() < 0.15 * step.max()  # smooth (a random walk would give ~1.4)
    loga = np.log(g.amplitude[:, centre])
    assert 0.1 * 0.7 < np.sqrt(np.mean(loga**2)) < 0.1 * 1.4
    assert np.abs(np.diff(loga, axis=0)).max() < 0.1 * 2 * np.pi * 10.0 / 900.0 * 2  # same slope bound
    assert np.ptp(np.log(g.amplitude), axis=1).max() > 0  # amplitudes change (gently) across the band


def test_seeded_and_independent_per_station_and_direction():
    a = dd_gains(3, TIMES[:50], FREQS, nant=6, ndir=4, phase_scale=1.0, amplitude_scale=0.05)
    b = dd_gains(3, TIMES[:50], FREQS, nant=6, ndir=4, phase_scale=1.0, amplitude_scale=0.05)
    c = dd_gains(4, TIMES[:50], FREQS, nant=6, ndir=4, phase_scale=1.0, amplitude_scale=0.05)
    np.testing.assert_array_equal(a.phase, b.phase)
    np.testing.assert_array_equal(a.amplitude, b.amplitude)
    assert np.abs(a.phase - c.phase).mean() > 0.1
    flat = a.phase[:, 0].reshape(50, -1)
    corr = np.corrcoef(flat.T)
    assert np.abs(corr[np.triu_indices_from(corr, 1)]).mean() < 0.9  # not one common screen
