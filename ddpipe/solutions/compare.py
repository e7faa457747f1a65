"""Solutions against known true gains (simulations): how far calibration got."""

from __future__ import annotations

import os

import numpy as np

from ddpipe.solutions.gains import evaluate_gains
from ddpipe.solutions.h5parm import read_h5parm


def phase_rms_vs_truth(solutions: str | os.PathLike[str], truth: str | os.PathLike[str],
                       ref_antenna: int = 0) -> dict[str, float]:
    """RMS (rad) per direction of solved minus true phase, both relative to one station, at the
    solutions' times and frequencies (first hand), wrapped to ±π."""
    sol = read_h5parm(solutions)
    tru = read_h5parm(truth)
    ph = sol.soltabs["phase000"]
    g_s = evaluate_gains(sol, ph.time, ph.freq, directions=sol.directions)[..., 0]
    g_t = evaluate_gains(tru, ph.time, ph.freq, directions=sol.directions)[..., 0]
    ps = np.angle(g_s * np.conj(g_s[:, :, ref_antenna:ref_antenna + 1]))
    pt = np.angle(g_t * np.conj(g_t[:, :, ref_antenna:ref_antenna + 1]))
    d = np.angle(np.exp(1j * (ps - pt)))
    return {n: float(np.sqrt(np.nanmean(d[..., k] ** 2))) for k, n in enumerate(sol.directions)}
