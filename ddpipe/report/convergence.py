"""Convergence over the cycles: dynamic range, image noise and (simulations) solution error, flux
recovered and spectral index error, as a line plot and a table, from the figures ``summary.json`` holds."""

from __future__ import annotations

import html
from typing import Any

import numpy as np
from matplotlib.figure import Figure

#: (key, column heading, scale, format) of the convergence table and panels
FIGURES = (
    ("dynamic_range", "dynamic range", 1.0, ".0f"),
    ("rms_mjy", "image rms (mJy/beam)", 1e3, ".3g"),
    ("rms_far_mjy", "noise far from sources (mJy/beam)", 1e3, ".3g"),
    ("phase_err_rad", "phase error vs truth (rad)", 1.0, ".3f"),
    ("flux_ratio", "flux recovered (median ratio)", 1.0, ".2f"),
    ("spectral_index_err", "spectral index error (median)", 1.0, ".3f"),
)


def convergence_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per image: before calibration (cycle 0) and each cycle, with the figures of
    :data:`FIGURES` (None where unknown: no truth, no reference)."""
    rows = []
    entries = []
    if summary.get("before"):
        entries.append((0, "before", summary["before"], summary.get("before_quality") or {}))
    for c in summary.get("cycles", []):
        entries.append((c["cycle"], f"cycle {c['cycle']}", c["image"], c.get("quality") or {}))
    for n, label, img, q in entries:
        qi, qs = q.get("image", {}), q.get("solutions", {})
        flux = qi.get("unmodelled_median_ratio") if qi.get("unmodelled_count") else None
        if flux is None:
            flux = qi.get("modelled_median_ratio", qi.get("all_median_ratio"))
        rows.append(
            {
                "cycle": n,
                "label": label,
                "dynamic_range": img.get("dynamic_range"),
                "rms_mjy": img.get("rms"),
                "rms_far_mjy": qi.get("rms_far_jy"),
                "phase_err_rad": qs.get("phase_rms_rad"),
                "flux_ratio": flux,
                "spectral_index_err": qi.get("spectral_index_median_error"),
            }
        )
    return rows


def plot_convergence(rows: list[dict[str, Any]], reference_dr: float | None = None) -> Figure:
    """One panel per figure of :data:`FIGURES` that any row has, against the cycle (0: before)."""
    present = [f for f in FIGURES if any(r.get(f[0]) is not None for r in rows)]
    ncol = min(max(len(present), 1), 3)
    nrow = -(-max(len(present), 1) // ncol)
    fig = Figure(figsize=(3.1 * ncol + 0.3, 2.7 * nrow + 0.2), layout="constrained")
    axes = fig.subplots(nrow, ncol, squeeze=False).ravel()
    for ax in axes[len(present) :]:
        ax.set_visible(False)
    for ax, (key, label, scale, _) in zip(axes, present):
        pts = [(r["cycle"], r[key] * scale) for r in rows if r.get(key) is not None]
        x, y = np.array(pts, dtype=float).T
        ax.plot(x, y, "o-", color="tab:blue")
        if key == "dynamic_range" and reference_dr:
            ax.axhline(reference_dr, color="tab:green", ls="--", lw=1, label="uncorrupted reference")
            ax.legend(fontsize=7)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("cycle (0: before calibration)", fontsize=8)
        ax.set_xticks(sorted({int(v) for v in x}))
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    return fig


def convergence_table(rows: list[dict[str, Any]]) -> str:
    """The same figures as an HTML table (blank where unknown)."""
    head = "".join(f"<th>{html.escape(f[1])}</th>" for f in FIGURES)
    body = []
    for r in rows:
        cells = "".join(f"<td>{'' if r.get(k) is None else format(r[k] * s, spec)}</td>" for k, _, s, spec in FIGURES)
        body.append(f"<tr><td>{html.escape(r['label'])}</td>{cells}</tr>")
    return f'<table class="numbers"><tr><th>image</th>{head}</tr>\n' + "\n".join(body) + "\n</table>"
