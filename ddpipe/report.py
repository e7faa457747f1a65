"""The run report: ``summary.json`` and ``report/index.html`` with matplotlib PNGs
(restored image per cycle, solution phases/amplitudes vs time per direction,
stage timings)."""

from __future__ import annotations

import html
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from ddpipe.fileio import atomic_write
from ddpipe.imaging.stats import mad_rms

log = logging.getLogger(__name__)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_image(fits_path: str | Path, png: Path, title: str) -> Path:
    """The restored image with a symmetric-log-ish stretch (−3σ … peak)."""
    from astropy.io import fits

    plt = _plt()
    data = np.squeeze(fits.getdata(fits_path)).astype(float)
    finite = data[np.isfinite(data)]
    sigma = mad_rms(finite) if finite.size else 1.0
    vmax = float(finite.max()) if finite.size else 1.0
    fig, ax = plt.subplots(figsize=(5.2, 5))
    im = ax.imshow(data, origin="lower", cmap="inferno", vmin=-3 * sigma, vmax=max(vmax * 0.2, 10 * sigma))
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("x (pixels, RA increases to the left)")
    ax.set_ylabel("y (pixels)")
    fig.colorbar(im, ax=ax, label="Jy/beam", shrink=0.85)
    fig.tight_layout()
    fig.savefig(png, dpi=90)
    plt.close(fig)
    return png


def plot_solutions(h5: str | Path, png: Path, title: str) -> Path:
    """Phases (referenced to the first antenna) and amplitudes vs time, one panel row per direction."""
    from ddpipe.solutions.h5parm import read_h5parm

    plt = _plt()
    sol = read_h5parm(h5)
    tabs = sorted(sol.soltabs.values(), key=lambda t: t.kind != "phase")
    ndir = len(sol.directions)
    fig, axes = plt.subplots(ndir, len(tabs), figsize=(5 * len(tabs), 1.9 * ndir + 0.8), squeeze=False, sharex=True)
    for c, tab in enumerate(tabs):
        vals = np.asarray(tab.values, dtype=float)
        axes_names = list(tab.axes)
        # to (time, ant, dir): first frequency, first polarisation
        for ax_name in ("pol", "freq"):
            if ax_name in axes_names:
                i = axes_names.index(ax_name)
                vals = np.take(vals, 0, axis=i)
                axes_names.pop(i)
        vals = np.transpose(vals, [axes_names.index(a) for a in ("time", "ant", "dir")])
        t = (tab.time - tab.time[0]) / 60.0
        for d in range(ndir):
            ax = axes[d, c]
            v = vals[:, :, d]
            if tab.kind == "phase":
                v = np.unwrap(np.angle(np.exp(1j * (v - v[:, :1]))), axis=0)
            ax.plot(t, v, lw=0.7, alpha=0.8)
            ax.set_ylabel(f"{tab.dir[d].strip('[]')}\n{'rad' if tab.kind == 'phase' else 'amp'}", fontsize=8)
            if d == 0:
                ax.set_title(f"{tab.kind} (each line a station)", fontsize=9)
        axes[-1, c].set_xlabel("minutes")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(png, dpi=80)
    plt.close(fig)
    return png


def plot_timings(summary: dict[str, Any], png: Path) -> Path:
    plt = _plt()
    labels, vals = [], []
    for k, v in summary["timings"].items():
        if k != "total":
            labels.append(k)
            vals.append(v)
    for c in summary["cycles"]:
        for k, v in c["timings"].items():
            labels.append(f"cycle {c['cycle']} {k}")
            vals.append(v)
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(labels) + 1))
    ax.barh(labels[::-1], vals[::-1], color="tab:blue")
    ax.set_xlabel("seconds")
    ax.set_title("wall time per stage", fontsize=10)
    fig.tight_layout()
    fig.savefig(png, dpi=80)
    plt.close(fig)
    return png


def write_summary(workdir: Path, run: Any) -> Path:
    """``summary.json`` in the workdir and beside the HTML page (written last, complete)."""
    text = json.dumps(run.to_json(), indent=1)
    (Path(workdir) / "report").mkdir(parents=True, exist_ok=True)
    atomic_write(Path(workdir) / "report" / "summary.json", text)
    atomic_write(Path(workdir) / "summary.json", text)
    return Path(workdir) / "summary.json"


def _fmt(v: Any, spec: str, scale: float = 1.0) -> str:
    return "" if v is None else format(v * scale, spec)


def quality_table(rows: list[tuple[str, dict[str, Any]]]) -> str:
    """HTML table of the quality figures (:mod:`ddpipe.quality`) per image; empty without any."""
    if not any(q for _, q in rows):
        return ""
    body = []
    for name, q in rows:
        img, sol = q.get("image", {}), q.get("solutions", {})
        flux = []
        for label in ("modelled", "unmodelled", "all"):
            if img.get(f"{label}_count"):
                flux.append(
                    f"{label} {_fmt(img.get(f'{label}_median_ratio'), '.2f')} "
                    f"(min {_fmt(img.get(f'{label}_min_ratio'), '.2f')}, {img[f'{label}_count']} sources)"
                )
        body.append(
            f"<tr><td>{html.escape(name)}</td><td>{_fmt(img.get('rms_far_jy'), '.3g', 1e3)}</td>"
            f"<td>{html.escape('; '.join(flux))}</td><td>{_fmt(sol.get('phase_rms_rad'), '.4f')}</td>"
            f"<td>{_fmt(sol.get('amplitude_rms'), '.2f', 100)}</td></tr>"
        )
    return (
        "<h2>Quality beyond the dynamic range</h2>\n<p>Noise: MAD σ of the residual more than "
        "5 beams from every known source. Flux: the restored image at each true source's position over a "
        "perfect image's there (the true source convolved with the restoring beam, sampled alike), "
        "median (and minimum) over the sources above 5σ, apart for those the starting sky model had "
        "and lacked. Solutions: RMS error of the solved gains against the true ones (phase relative "
        "to the first station).</p>\n<table><tr><th>image</th><th>noise far from sources (mJy/beam)</th>"
        "<th>flux recovered</th><th>phase error (rad)</th><th>amplitude error (%)</th></tr>\n"
        + "\n".join(body)
        + "\n</table>"
    )


def write_report(workdir: Path, run: Any) -> Path:
    """Write ``report/index.html`` and its PNGs; returns the HTML path."""
    workdir = Path(workdir)
    rdir = workdir / "report"
    rdir.mkdir(parents=True, exist_ok=True)
    summary = run.to_json()
    rows, figs = [], []
    if run.before is not None:
        rows.append(("before calibration", "-", run.before, None))
        figs.append(plot_image(run.before.restored, rdir / "image_cycle_00.png", "before calibration"))
    for c in run.cycles:
        rows.append((f"cycle {c.cycle}", c.mode, c.image, c.reference_dynamic_range))
        figs.append(
            plot_image(
                c.image.restored,
                rdir / f"image_cycle_{c.cycle:02d}.png",
                f"cycle {c.cycle} ({c.mode}), DR {c.image.dynamic_range:.0f}",
            )
        )
        h5 = workdir / f"cycle_{c.cycle:02d}" / "solutions.h5"
        if h5.exists():
            figs.append(plot_solutions(h5, rdir / f"solutions_cycle_{c.cycle:02d}.png", f"cycle {c.cycle} solutions"))
    figs.append(plot_timings(summary, rdir / "timings.png"))
    quality = quality_table(
        [("before calibration", run.before_quality)]
        + [(f"cycle {c.cycle}", c.quality) for c in run.cycles]
        + [("uncorrupted reference", run.reference_quality)]
    )
    table = "\n".join(
        f"<tr><td>{html.escape(n)}</td><td>{html.escape(m)}</td><td>{s.rms:.3g}</td><td>{s.peak:.3g}</td>"
        f"<td>{s.dynamic_range:.0f}</td><td>{'' if r is None else f'{r:.0f}'}</td><td>{s.n_components}</td></tr>"
        for n, m, s, r in rows
    )
    imgs = "\n".join(
        f'<figure><img src="{f.name}" alt="{f.stem}"><figcaption>{f.stem}</figcaption></figure>' for f in figs
    )
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>ddpipe report</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #bbb;padding:4px 10px;text-align:right}}figure{{display:inline-block;margin:8px}}
img{{max-width:520px}}</style></head><body>
<h1>ddpipe self-calibration report</h1>
<p>Workdir: <code>{html.escape(str(workdir))}</code>. Stage wall times are in the bar chart below.
Machine-readable: <a href="summary.json">summary.json</a>.</p>
<table><tr><th>image</th><th>mode</th><th>rms (Jy/beam)</th><th>peak (Jy/beam)</th><th>dynamic range</th>
<th>reference DR (uncorrupted)</th><th>components</th></tr>
{table}
</table>
{quality}
{imgs}
</body></html>
"""
    atomic_write(rdir / "index.html", page)
    return rdir / "index.html"
