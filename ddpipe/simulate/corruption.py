"""Direction-dependent station gains that vary smoothly in time and frequency.

Phase: TEC-like, φ_pd(t, ν) = phase_scale · x_pd(t) · ν_ref / ν, with x_pd a
smooth random function of unit RMS (a constant offset plus a few sinusoids with
periods between ``period_min`` and ``period_max`` seconds). Amplitude (optional):
a_pd(t, ν) = exp(amplitude_scale · (y_pd(t) + b_pd · (ν − ν_ref) / bandwidth)),
with y_pd of the same kind and a small linear slope b_pd across the band.
Each station and direction draws independently from a seeded stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TrueGains:
    """Per-direction scalar gains on the MS time/frequency grid.

    Attributes
    ----------
    phase
        (ntime, nchan, nant, ndir) float64 radians.
    amplitude
        (ntime, nchan, nant, ndir) float64, or None when amplitudes are all 1.
    """

    phase: np.ndarray
    amplitude: np.ndarray | None

    def complex_gains(self, times: slice | np.ndarray = slice(None)) -> np.ndarray:
        """(ntime, nchan, nant, ndir) complex128 ``amplitude · exp(i phase)`` for the selected times."""
        g = np.exp(1j * self.phase[times])
        return g if self.amplitude is None else g * self.amplitude[times]


def smooth_series(
    rng: np.random.Generator,
    t: np.ndarray,
    shape: tuple[int, ...],
    period_min: float,
    period_max: float,
    nterms: int = 4,
) -> np.ndarray:
    """Smooth random functions of time with unit RMS (in expectation).

    Parameters
    ----------
    rng
        Random generator.
    t
        (ntime,) seconds from the start.
    shape
        Batch shape, e.g. (nant, ndir).
    period_min, period_max
        Range of the sinusoid periods (seconds; log-uniform).
    nterms
        Number of sinusoids.

    Returns
    -------
    np.ndarray
        (ntime, *shape) float64: offset + Σ_k a_k sin(2π t / P_k + ψ_k); the offset
        has variance 1/2 and the sinusoids together 1/2 (a_k = ±1/√nterms), so the
        slope never exceeds 2π √nterms / period_min per second.
    """
    t = np.asarray(t, dtype=float)
    offset = rng.normal(0.0, np.sqrt(0.5), size=shape)
    periods = np.exp(rng.uniform(np.log(period_min), np.log(period_max), size=(nterms, *shape)))
    phases = rng.uniform(0.0, 2.0 * np.pi, size=(nterms, *shape))
    amps = rng.choice([-1.0, 1.0], size=(nterms, *shape)) / np.sqrt(nterms)
    tt = t.reshape((-1,) + (1,) * (len(shape) + 1))
    waves = amps[None] * np.sin(2.0 * np.pi * tt / periods[None] + phases[None])
    return offset[None] + waves.sum(axis=1)


def dd_gains(
    seed: int,
    times: np.ndarray,
    freqs: np.ndarray,
    nant: int,
    ndir: int,
    phase_scale: float,
    amplitude_scale: float,
    period_min: float = 900.0,
    period_max: float = 7200.0,
) -> TrueGains:
    """Seeded direction-dependent gains (see the module docstring).

    Parameters
    ----------
    seed
        RNG seed (own stream, independent of sky and noise).
    times
        (ntime,) MJD seconds.
    freqs
        (nchan,) Hz; ν_ref is their mean.
    nant, ndir
        Stations and directions.
    phase_scale
        RMS phase at ν_ref (radians).
    amplitude_scale
        RMS of log-amplitude; 0 gives ``amplitude=None``.
    period_min, period_max
        Time scales of the variation, seconds.

    Returns
    -------
    TrueGains
    """
    rng = np.random.default_rng([seed, 2])
    times = np.asarray(times, dtype=float)
    freqs = np.asarray(freqs, dtype=float)
    t = times - times[0]
    ref = float(freqs.mean())
    x = smooth_series(rng, t, (nant, ndir), period_min, period_max)  # (t, a, d)
    phase = phase_scale * x[:, None, :, :] * (ref / freqs)[None, :, None, None]
    amplitude = None
    if amplitude_scale > 0:
        y = smooth_series(rng, t, (nant, ndir), period_min, period_max)
        bandwidth = max(float(np.ptp(freqs)), 1.0)
        slope = rng.normal(0.0, 0.3, size=(nant, ndir))
        logamp = y[:, None, :, :] + slope[None, None] * ((freqs - ref) / bandwidth)[None, :, None, None]
        amplitude = np.exp(amplitude_scale * logamp)
    return TrueGains(phase=phase, amplitude=amplitude)
