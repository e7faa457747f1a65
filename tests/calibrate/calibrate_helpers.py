"""Comparing solutions with the simulator's true gains."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ddpipe.config import load_config

from ddpipe.solutions.h5parm import evaluate_gains, read_h5parm


def phase_errors(solutions, truth, ref_antenna: int = 0) -> dict[str, float]:
    """RMS (rad) per direction of solved minus true phase, both referenced to one station,
    at the solution times and frequencies (wrapped to ±π)."""
    sol = read_h5parm(solutions)
    tru = read_h5parm(truth)
    ph = sol.soltabs["phase000"]
    g_s = evaluate_gains(sol, ph.time, ph.freq, directions=sol.directions)[..., 0]
    g_t = evaluate_gains(tru, ph.time, ph.freq, directions=sol.directions)[..., 0]
    ps = np.angle(g_s * np.conj(g_s[:, :, ref_antenna:ref_antenna + 1]))
    pt = np.angle(g_t * np.conj(g_t[:, :, ref_antenna:ref_antenna + 1]))
    d = np.angle(np.exp(1j * (ps - pt)))
    return {n: float(np.sqrt(np.nanmean(d[..., k] ** 2))) for k, n in enumerate(sol.directions)}


def make_cluster(tmp_path: Path, n_workers: int = 2, threads: int = 1):
    from ddpipe.cluster import local_cluster

    base = load_config().cluster
    return local_cluster(dataclasses.replace(base, n_workers=n_workers, threads_per_worker=threads), tmp_path)
