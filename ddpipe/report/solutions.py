"""Solution plots for the report: per direction, phase (relative to a reference station, without
wrap-around jumps) and amplitude against time, stations grouped core/remote, and with the true
gains (simulations) the solutions minus the truth."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from ddpipe.sky.directions import angular_separation
from ddpipe.solutions.gains import evaluate_gains
from ddpipe.solutions.types import Solutions

#: line colours of the station groups
GROUP_COLOURS = ("tab:blue", "tab:orange", "tab:green")


def station_groups(names: tuple[str, ...], positions: np.ndarray) -> dict[str, list[int]]:
    """Station indices per group: LOFAR core (``CS*``) and remote (``RS*``, other names "other"),
    or for other arrays inner and outer half by distance from the array centre (the mean position)."""
    if any(n.upper().startswith(("CS", "RS")) for n in names):
        groups: dict[str, list[int]] = {"core (CS)": [], "remote (RS)": [], "other": []}
        for i, n in enumerate(names):
            key = {"CS": "core (CS)", "RS": "remote (RS)"}.get(n[:2].upper(), "other")
            groups[key].append(i)
        return {k: v for k, v in groups.items() if v}
    pos = np.asarray(positions, dtype=float).reshape(len(names), -1)
    dist = np.linalg.norm(pos - pos.mean(axis=0), axis=1) if pos.size else np.zeros(len(names))
    cut = float(np.median(dist)) if dist.size else 0.0
    inner = [i for i in range(len(names)) if dist[i] <= cut]
    outer = [i for i in range(len(names)) if dist[i] > cut]
    label = f"inner (≤ {cut / 1e3:.2g} km from centre)"
    return {k: v for k, v in ((label, inner), (f"outer (> {cut / 1e3:.2g} km)", outer)) if v}


def reference_station(groups: dict[str, list[int]], positions: np.ndarray) -> int:
    """The first station of the first group (CS001 for LOFAR; the innermost station otherwise)."""
    first = next(iter(groups.values()))
    pos = np.asarray(positions, dtype=float)
    if pos.ndim == 2 and pos.shape[0] > max(first) and not next(iter(groups)).startswith("core"):
        dist = np.linalg.norm(pos[first] - pos.mean(axis=0), axis=1)
        return first[int(np.argmin(dist))]
    return first[0]


def continuous_phase(phase: np.ndarray) -> np.ndarray:
    """``(time, station)`` radians → degrees unwrapped along time (no ±180° jumps), each station's
    track shifted by whole turns so that its mean lies within (−180°, 180°]."""
    p = np.asarray(phase, dtype=float)
    out = np.full(p.shape, np.nan)
    for s in range(p.shape[1]):
        ok = np.isfinite(p[:, s])
        if not ok.any():
            continue
        u = np.unwrap(np.angle(np.exp(1j * p[ok, s])))
        u -= 2 * np.pi * np.round(u.mean() / (2 * np.pi))
        out[ok, s] = u
    return np.degrees(out)


def solution_grid(sol: Solutions) -> tuple[np.ndarray, np.ndarray]:
    """The times (the soltab with the most) and the one frequency (the middle of that soltab's)
    on which the plots evaluate the solutions."""
    tab = max(sol.soltabs.values(), key=lambda t: t.time.size)
    times = tab.time if tab.time.size else np.zeros(1)
    freqs = tab.freq[[tab.freq.size // 2]] if tab.freq.size else np.zeros(1)
    return times, freqs


def truth_match(sol: Solutions, truth: Solutions) -> list[str]:
    """For each solved direction the nearest true one (later cycles' directions are regrouped)."""
    sr, tr = np.asarray(sol.direction_radec, float), np.asarray(truth.direction_radec, float)
    dist = angular_separation(sr[:, None, 0], sr[:, None, 1], tr[None, :, 0], tr[None, :, 1])
    return [truth.directions[k] for k in dist.argmin(axis=1)]


def _columns(sol: Solutions, truth: Solutions | None) -> list[str]:
    cols = ["phase"]
    has_amp = any(t.kind == "amplitude" for t in sol.soltabs.values())
    if has_amp:
        cols.append("amplitude")
    if truth is not None:
        cols.append("phase − truth")
        if has_amp or any(t.kind == "amplitude" for t in truth.soltabs.values()):
            cols.append("amplitude / truth − 1")
    return cols


def plot_solutions(sol: Solutions, title: str, truth: Solutions | None = None) -> Figure:
    """One row of panels per direction: phase (degrees, relative to the reference station, continuous),
    amplitude when solved, and with ``truth`` the phase and amplitude errors; XX, middle frequency.
    Each line is a station, coloured by group (:func:`station_groups`)."""
    if truth is not None and tuple(truth.antennas) != tuple(sol.antennas):
        truth = None
    groups = station_groups(sol.antennas, sol.antenna_positions)
    ref = reference_station(groups, sol.antenna_positions)
    times, freqs = solution_grid(sol)
    minutes = (times - times[0]) / 60.0
    cols = _columns(sol, truth)
    matched = truth_match(sol, truth) if truth is not None else []
    nd = len(sol.directions)
    width, height = 3.6 * len(cols) + 0.6, 1.9 * nd + 0.9
    fig = Figure(figsize=(width, height))  # fixed margins: constrained layout costs seconds with this many lines
    fig.subplots_adjust(
        left=0.75 / width, right=1 - 0.15 / width, bottom=0.5 / height, top=1 - 0.6 / height, wspace=0.35, hspace=0.12
    )
    axes = fig.subplots(nd, len(cols), squeeze=False, sharex=True)
    for d, dname in enumerate(sol.directions):
        g = evaluate_gains(sol, times, freqs, directions=[dname])[:, 0, :, 0, 0]  # (time, station) XX
        panels = {"phase": continuous_phase(np.angle(g * np.conj(g[:, [ref]]))), "amplitude": np.abs(g)}
        if truth is not None:
            t = evaluate_gains(truth, times, freqs, directions=[matched[d]])[:, 0, :, 0, 0]
            err = g * np.conj(g[:, [ref]]) * np.conj(t * np.conj(t[:, [ref]]))
            panels["phase − truth"] = np.degrees(np.angle(err))
            panels["amplitude / truth − 1"] = np.abs(g) / np.abs(t) - 1.0
        for c, col in enumerate(cols):
            ax = axes[d, c]
            for k, (gname, idx) in enumerate(groups.items()):
                colour = GROUP_COLOURS[k % len(GROUP_COLOURS)]
                lines = ax.plot(minutes, panels[col][:, idx], lw=0.7, alpha=0.75, color=colour)
                lines[0].set_label(gname)
            unit = " (deg)" if col.startswith("phase") else ""
            ax.set_ylabel(f"{dname.strip('[]')}\n{col}{unit}", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
            if d == 0:
                ax.set_title(col + (f" (ref. {sol.antennas[ref]})" if col == "phase" else ""), fontsize=9)
    for ax in axes[-1]:
        ax.set_xlabel("time (minutes)", fontsize=8)
    axes[0, 0].legend(fontsize=7, loc="best")
    fig.suptitle(title, fontsize=10)
    return fig
