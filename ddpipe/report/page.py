"""``report/index.html``: one section per cycle with its figures (PNGs beside the page) and their
captions, the convergence over the cycles, the cluster at work, and what failed, if anything."""

from __future__ import annotations

import html
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from ddpipe.fileio import atomic_write
from ddpipe.report.cluster import (
    plot_gantt,
    plot_stage_times,
    read_chunk_records,
    stage_times,
    unfinished_chunks,
    worker_overlaps,
)
from ddpipe.report.convergence import convergence_rows, convergence_table, plot_convergence
from ddpipe.report.images import SkyImage, brightest_per_direction, plot_cutouts, plot_sky, safe_facets
from ddpipe.report.solutions import plot_solutions
from ddpipe.solutions.h5parm import read_h5parm
from ddpipe.solutions.types import Solutions

log = logging.getLogger(__name__)

#: PNG resolution: the figures are sized in inches for a 1300 px wide page at this many dots per inch
DPI = 90

CSS = """body{font-family:system-ui,sans-serif;font-size:15px;line-height:1.4;max-width:1260px;margin:1em auto;
padding:0 1em;color:#222}
h1{font-size:1.6em}h2{border-bottom:2px solid #ccc;padding-bottom:.2em;margin-top:1.6em}h3{font-size:1.05em}
nav a{margin-right:1em}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #bbb;padding:3px 9px;text-align:right}
th{background:#f2f2f2}td:first-child,th:first-child{text-align:left}
figure{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start;margin:14px 0}
figure img{max-width:100%;height:auto;border:1px solid #ddd}
figcaption{flex:1 1 230px;font-size:.9em;color:#333}
.failed{background:#fff0f0;border:1px solid #d66;padding:.6em 1em}
pre{white-space:pre-wrap;font-size:.85em;margin:0}
"""


@dataclass(frozen=True)
class RunFailure:
    """Why a run stopped: the cycle it was in (None: before any cycle) and the error's message."""

    cycle: int | None
    error: str


@dataclass
class _Page:
    """What the page is built from, as it is built: one HTML block per section."""

    rdir: Path
    sections: list[str] = field(default_factory=list)

    def figure(self, fig: Figure, name: str, caption: str, alt: str) -> str:
        fig.savefig(self.rdir / name, dpi=DPI)
        return (
            f'<figure><img src="{html.escape(name)}" alt="{html.escape(alt)}">'
            f"<figcaption>{caption}</figcaption></figure>"
        )


def _residual(restored: str | Path) -> Path:
    p = Path(restored)
    return p.with_name(p.name.replace("-image.fits", "-residual.fits"))


def _directions(sol: Solutions) -> list[tuple[str, float, float]]:
    return [(d.strip("[]"), float(r[0]), float(r[1])) for d, r in zip(sol.directions, sol.direction_radec)]


def _sky_section(page: _Page, label: str, tag: str, restored: str | Path, sol: Solutions | None) -> str:
    """The restored image with its residual (and facets when there are solutions)."""
    if not Path(restored).is_file():
        return f"<p>No image: {html.escape(str(restored))} is missing.</p>"
    img = SkyImage.read(restored)
    res = _residual(restored)
    resid = SkyImage.read(res) if res.is_file() else None
    polys = safe_facets(img, _directions(sol)) if sol is not None else ()
    facets = (
        f" Dashed: the {len(polys)} facets (Voronoi cells of the direction centres, named there) each corrected "
        "with its own direction's solutions."
        if polys
        else ""
    )
    caption = (
        f"<b>{html.escape(label)}</b>: restored image (left) on an asinh stretch from −3σ to the peak, so "
        "that both the sources and the noise show; the residual (right) on a linear scale symmetric about "
        f"zero, ±5σ. The ellipse in the corner is the restoring beam (BMAJ/BMIN/BPA).{facets}"
    )
    fig = plot_sky(img, resid, label, polys)
    return page.figure(fig, f"image_{tag}.png", caption, f"{label} restored and residual image")


def _solutions_section(page: _Page, label: str, tag: str, sol: Solutions, truth: Solutions | None) -> str:
    extra = (
        " The right-hand columns: the solutions minus the true gains (simulation), phase relative to the "
        "same reference station in both, amplitude as a ratio."
        if truth is not None and tuple(truth.antennas) == tuple(sol.antennas)
        else ""
    )
    caption = (
        f"<b>{html.escape(label)} solutions</b>, one row per direction: phase relative to the reference station "
        "(unwrapped in time, so a track crossing ±180° continues instead of jumping) and, when solved, "
        f"amplitude; first polarisation, middle frequency. Each line is a station, coloured by group.{extra}"
    )
    return page.figure(plot_solutions(sol, f"{label} solutions", truth), f"solutions_{tag}.png", caption, label)


def _read_solutions(path: Path) -> Solutions | None:
    try:
        return read_h5parm(path) if path.is_file() else None
    except Exception as exc:  # a torn file must not cost the report
        log.warning("report: cannot read %s: %s", path, exc)
        return None


def failure_table(workdir: Path, failure: RunFailure) -> str:
    """The error, and the chunks of the failed cycle that have no completion record, with the last
    lines of their DP3 logs."""
    where = f"cycle {failure.cycle}" if failure.cycle is not None else "before the first cycle"
    rows = []
    if failure.cycle is not None:
        for c in unfinished_chunks(workdir, failure.cycle):
            log_cell = html.escape(c["log"]) if c["log"] else "(no log)"
            tail = html.escape("\n".join(c["tail"]))
            rows.append(f"<tr><td>{html.escape(c['stem'])}</td><td>{log_cell}</td><td><pre>{tail}</pre></td></tr>")
    chunks = (
        '<table class="failures"><tr><th>chunk</th><th>DP3 log</th><th>last lines of the log</th></tr>\n'
        + "\n".join(rows)
        + "\n</table>"
        if rows
        else "<p>No chunk of this cycle lacks its completion record: the error came after calibration.</p>"
    )
    return (
        f'<div class="failed" id="failure"><h2>The run failed in {html.escape(where)}</h2>\n'
        f"<pre>{html.escape(failure.error)}</pre>\n<h3>Unfinished chunks</h3>\n{chunks}\n"
        "<p>Finished chunks and stages are kept; a rerun resumes from here.</p></div>"
    )


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
        "<h3>Quality beyond the dynamic range</h3>\n<p>Noise: MAD σ of the residual more than "
        "5 beams from every known source. Flux: the restored image at each true source's position over a "
        "perfect image's there (the true source convolved with the restoring beam, sampled alike), "
        "median (and minimum) over the sources above 5σ, apart for those the starting sky model had "
        "and lacked. Solutions: RMS error of the solved gains against the true ones (phase relative "
        "to the first station).</p>\n<table><tr><th>image</th><th>noise far from sources (mJy/beam)</th>"
        "<th>flux recovered</th><th>phase error (rad)</th><th>amplitude error (%)</th></tr>\n"
        + "\n".join(body)
        + "\n</table>"
    )


def _fmt(v: Any, spec: str, scale: float = 1.0) -> str:
    return "" if v is None else format(v * scale, spec)


def _convergence_section(page: _Page, run: Any, summary: dict[str, Any]) -> str:
    rows = convergence_rows(summary)
    fig = plot_convergence(rows, summary.get("reference_dynamic_range"))
    caption = (
        "<b>Convergence</b>: per cycle (0: before calibration) the dynamic range (peak over residual rms; "
        "dashed: the uncorrupted reference data imaged alike), the residual rms, the noise far from known "
        "sources and, for simulations, the phase error of the solutions against the true gains and the "
        "median flux recovered (restored over perfect image, at the true sources the starting model lacked)."
    )
    quality = quality_table(
        [("before calibration", run.before_quality)]
        + [(f"cycle {c.cycle}", c.quality) for c in run.cycles]
        + [("uncorrupted reference", run.reference_quality)]
    )
    return (
        '<section id="convergence"><h2>Convergence</h2>\n'
        + page.figure(fig, "convergence.png", caption, "convergence over the cycles")
        + convergence_table(rows)
        + quality
        + "</section>"
    )


def _cluster_section(page: _Page, workdir: Path, summary: dict[str, Any], started: float | None) -> str:
    records = read_chunk_records(workdir, started)
    parts = ['<section id="cluster"><h2>The cluster at work</h2>']
    if records:
        overlaps = worker_overlaps(records)
        caption = (
            f"<b>DP3 chunk tasks</b>: each bar one chunk's DP3 run on its Dask worker, from start to finish "
            f"(completion records <code>cycle_NN/chunks/*.done.json</code>), coloured by cycle; hatched, in their "
            f"own lane: chunks solved by an earlier run and reused (drawn at their cycle's start, as long as "
            f"they took then). {len(records)} chunks; "
            + (
                "no worker ran two DP3 processes at once."
                if overlaps == 0
                else f"<b>{overlaps} overlapping pairs of chunks on one worker</b>."
            )
        )
        parts.append(page.figure(plot_gantt(records, started), "gantt.png", caption, "Gantt chart of DP3 chunks"))
    rows = stage_times(summary)
    if rows:
        caption = "<b>Wall time per stage</b>, in run order (the report itself is not included)."
        parts.append(page.figure(plot_stage_times(rows), "timings.png", caption, "wall time per stage"))
    links = sorted(page.rdir.glob("dask-calibrate-cycle_*.html"))
    if links:
        items = "".join(f'<li><a href="{html.escape(p.name)}">{html.escape(p.name)}</a></li>' for p in links)
        parts.append(
            "<p>Dask's own performance reports of the calibrate stages (task stream, worker profiles, "
            "bandwidth). They load Bokeh's JavaScript from its CDN, so they need a network connection; "
            f"this page does not.</p><ul>{items}</ul>"
        )
    return "\n".join(parts) + "</section>"


def _cutout_section(page: _Page, workdir: Path, images: list[tuple[str, str]], sol: Solutions | None) -> str:
    """The brightest source of each (first cycle's) direction in the last image, in every image."""
    present = [(label, path) for label, path in images if Path(path).is_file()]
    if sol is None or len(present) < 2:
        return ""
    sky = [(label, SkyImage.read(path)) for label, path in present]
    targets = brightest_per_direction(sky[-1][1], _directions(sol))
    caption = (
        "<b>The brightest source of each direction</b> (its facet's brightest pixel in the last image), "
        "cycle by cycle: each row on one asinh stretch, so the source sharpening and its sidelobes "
        "fading as calibration improves is seen directly. Boxes of 48 pixels."
    )
    fig = plot_cutouts(sky, targets)
    return (
        '<section id="cutouts"><h2>Brightest source per direction</h2>\n'
        + page.figure(fig, "cutouts.png", caption, "cutouts of the brightest source per direction")
        + "</section>"
    )


def _cycle_section(
    page: _Page, workdir: Path, c: Any, truth: Solutions | None, failure: RunFailure | None
) -> tuple[str, Solutions | None]:
    tag = f"cycle_{c.cycle:02d}"
    sol = _read_solutions(workdir / tag / "solutions.h5")
    ref = f", uncorrupted reference {c.reference_dynamic_range:.0f}" if c.reference_dynamic_range else ""
    head = (
        f'<section class="cycle" id="{tag}"><h2>Cycle {c.cycle}: {html.escape(c.mode)}, {c.n_directions} '
        f"direction(s)</h2>\n<p>Dynamic range {c.image.dynamic_range:.0f}{ref}; residual rms "
        f"{c.image.rms * 1e3:.3g} mJy/beam; peak {c.image.peak:.3g} Jy/beam; {c.image.n_components} CLEAN "
        f"components; {c.chunks} chunk(s), {c.chunks_reused} reused.</p>"
    )
    parts = [head, _sky_section(page, f"cycle {c.cycle}", tag, c.image.restored, sol)]
    if sol is not None:
        parts.append(_solutions_section(page, f"cycle {c.cycle}", tag, sol, truth))
    dask = page.rdir / f"dask-calibrate-{tag}.html"
    if dask.is_file():
        parts.append(f'<p>Dask performance report of this calibration: <a href="{dask.name}">{dask.name}</a>.</p>')
    return "\n".join(parts) + "</section>", sol


def _failed_cycle_section(workdir: Path, failure: RunFailure) -> str:
    tag = f"cycle_{failure.cycle:02d}"
    return (
        f'<section class="cycle" id="{tag}"><h2>Cycle {failure.cycle}: failed</h2>\n'
        f'<p>This cycle did not finish: see <a href="#failure">the failure</a> above.</p></section>'
    )


def write_report(
    workdir: Path,
    run: Any,
    *,
    true_gains: str | Path | None = None,
    started: float | None = None,
    failure: RunFailure | None = None,
) -> Path:
    """Write ``report/index.html`` and its PNGs; returns the HTML path.

    Parameters
    ----------
    workdir
        The run's workdir (images, solutions and chunk records are read from it).
    run
        The :class:`ddpipe.pipeline.RunSummary` so far.
    true_gains
        The true gains (simulations): the solution plots show the solutions minus the truth.
    started
        When the run started (epoch seconds): chunks solved before are marked reused.
    failure
        Why the run stopped, when it did: the page opens with it.
    """
    workdir = Path(workdir)
    page = _Page(workdir / "report")
    page.rdir.mkdir(parents=True, exist_ok=True)
    summary = run.to_json()
    truth = _read_solutions(Path(true_gains)) if true_gains else None
    if failure is not None:
        page.sections.append(failure_table(workdir, failure))
    page.sections.append(_convergence_section(page, run, summary))
    images: list[tuple[str, str]] = []
    cycles = []
    if run.before is not None:
        images.append(("before", run.before.restored))
        sky = _sky_section(page, "before calibration", "cycle_00", run.before.restored, None)
        cycles.append(f'<section class="cycle" id="cycle_00"><h2>Before calibration</h2>\n{sky}</section>')
    first_sol = None
    for c in run.cycles:
        images.append((f"cycle {c.cycle}", c.image.restored))
        text, sol = _cycle_section(page, workdir, c, truth, failure)
        cycles.append(text)
        first_sol = first_sol or sol
    if failure is not None and failure.cycle is not None:
        cycles.append(_failed_cycle_section(workdir, failure))
    page.sections.append(_cutout_section(page, workdir, images, first_sol))
    page.sections.extend(cycles)
    page.sections.append(_cluster_section(page, workdir, summary, started))
    atomic_write(page.rdir / "index.html", _html(workdir, page.sections))
    return page.rdir / "index.html"


def _html(workdir: Path, sections: list[str]) -> str:
    ids = [s.split('id="', 1)[1].split('"', 1)[0] for s in sections if 'id="' in s[:80]]
    nav = " ".join(f'<a href="#{i}">{i.replace("_", " ")}</a>' for i in ids)
    body = "\n".join(s for s in sections if s)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ddpipe report</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{CSS}</style></head><body>
<h1>ddpipe self-calibration report</h1>
<p>Workdir: <code>{html.escape(str(workdir))}</code>. Machine-readable: <a href="summary.json">summary.json</a>.
Every figure is also a PNG beside this page.</p>
<nav>{nav}</nav>
{body}
</body></html>
"""


def write_summary(workdir: Path, run: Any) -> Path:
    """``summary.json`` in the workdir and beside the HTML page (written last, complete)."""
    text = json.dumps(run.to_json(), indent=1)
    (Path(workdir) / "report").mkdir(parents=True, exist_ok=True)
    atomic_write(Path(workdir) / "report" / "summary.json", text)
    atomic_write(Path(workdir) / "summary.json", text)
    return Path(workdir) / "summary.json"


def write_failed_report(
    workdir: Path,
    run: Any,
    cycle: int | None,
    error: BaseException,
    *,
    true_gains: str | Path | None = None,
    started: float | None = None,
) -> Path | None:
    """The report of a run that stopped in ``cycle`` with ``error``; never raises (the run's own
    error is the one to see), returns None when the report could not be written."""
    try:
        path = write_report(workdir, run, true_gains=true_gains, started=started, failure=RunFailure(cycle, str(error)))
    except Exception:
        log.exception("report: could not write the report of the failed run")
        return None
    log.info("report of the failed run: %s", path)
    return path
