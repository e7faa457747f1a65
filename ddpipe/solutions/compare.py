"""Solutions against known true gains (simulations): how far calibration got."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ddpipe.sky.directions import angular_separation
from ddpipe.solutions.gains import evaluate_gains
from ddpipe.solutions.h5parm import read_h5parm


def gain_errors(solutions: str | Path, truth: str | Path) -> dict[str, Any]:
    """The RMS phase (relative to the first station) and relative amplitude error of the
    solutions' product against the true gains, each solved direction against the nearest
    true one (by position: a later cycle's directions are regrouped and renamed).

    Returns ``{"phase_rms_rad", "amplitude_rms", "directions": {name: {...,
    "true_direction", "offset_deg"}}}``, evaluated on the truth's times and
    frequencies; ``{}`` when the two share no antennas.
    """
    sol, tru = read_h5parm(solutions), read_h5parm(truth)
    if tuple(sol.antennas) != tuple(tru.antennas):
        return {}
    ref = next(iter(tru.soltabs.values()))
    times = ref.time if ref.time.size else np.zeros(1)
    freqs = ref.freq if ref.freq.size else np.zeros(1)
    sr, tr = np.asarray(sol.direction_radec, float), np.asarray(tru.direction_radec, float)
    dist = angular_separation(sr[:, None, 0], sr[:, None, 1], tr[None, :, 0], tr[None, :, 1])
    match = dist.argmin(axis=1)
    out: dict[str, Any] = {"directions": {}}
    sums = np.zeros(2)  # Σ phase error², Σ amplitude error², over every direction
    count = 0
    for k, name in enumerate(sol.directions):  # one direction at a time: the grid can be large
        gs = evaluate_gains(sol, times, freqs, directions=[name])[:, :, :, 0]
        gt = evaluate_gains(tru, times, freqs, directions=[tru.directions[match[k]]])[:, :, :, 0]
        dphase = np.angle(gs * np.conj(gs[:, :, :1]) * np.conj(gt * np.conj(gt[:, :, :1])))
        damp = np.abs(gs) / np.abs(gt) - 1.0
        ok = np.isfinite(dphase) & np.isfinite(damp)
        sums += (np.sum(dphase[ok] ** 2), np.sum(damp[ok] ** 2))
        count += int(ok.sum())
        out["directions"][name.strip("[]")] = {
            "phase_rms_rad": float(np.sqrt(np.nanmean(dphase**2))),
            "amplitude_rms": float(np.sqrt(np.nanmean(damp**2))),
            "true_direction": tru.directions[match[k]].strip("[]"),
            "offset_deg": math.degrees(float(dist[k, match[k]])),
        }
    out["phase_rms_rad"], out["amplitude_rms"] = (float(v) for v in np.sqrt(sums / max(count, 1)))
    return out
