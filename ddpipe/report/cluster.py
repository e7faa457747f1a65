"""The cluster at work: every DP3 chunk task on its worker against time (a Gantt chart), coloured by
cycle, with the chunks reused from an earlier run marked, and the wall time of every stage."""

from __future__ import annotations

import json
import logging
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
from distributed import performance_report
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.patches import Patch

log = logging.getLogger(__name__)

#: the lane of the chunks solved in an earlier run
REUSED_LANE = "reused (earlier run)"


@dataclass(frozen=True)
class ChunkRecord:
    """One chunk's DP3 task, from its completion record (``chunk_NNN.done.json``, see
    :func:`ddpipe.calibrate.run_chunk`): ``started``/``finished`` epoch seconds; ``reused`` when
    it was solved before this run started."""

    cycle: int
    stem: str
    worker: str
    started: float
    finished: float
    reused: bool = False


def read_chunk_records(workdir: Path, run_started: float | None = None) -> list[ChunkRecord]:
    """Every chunk's completion record under ``workdir/cycle_NN/chunks/``; a chunk that started
    before ``run_started`` (epoch seconds) was reused by this run, not solved in it."""
    out = []
    for path in sorted(Path(workdir).glob("cycle_*/chunks/*.done.json")):
        try:
            rec = json.loads(path.read_text())
            cycle = int(path.parent.parent.name.split("_")[1])
            started, finished = float(rec["started"]), float(rec["finished"])
        except (OSError, ValueError, KeyError, IndexError):
            continue
        reused = run_started is not None and started < run_started
        out.append(
            ChunkRecord(cycle, str(rec.get("stem", path.stem)), str(rec.get("worker", "")), started, finished, reused)
        )
    return out


def unfinished_chunks(workdir: Path, cycle: int, tail: int = 5) -> list[dict[str, Any]]:
    """The chunks of ``cycle`` with a parset but no completion record (failed or never run): stem,
    log path and the log's last lines."""
    cdir = Path(workdir) / f"cycle_{cycle:02d}" / "chunks"
    out = []
    for parset in sorted(cdir.glob("*.parset")):
        stem = parset.name[: -len(".parset")]
        if (cdir / f"{stem}.done.json").exists():
            continue
        log = cdir / f"{stem}.log"
        try:
            lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()][-tail:]
        except OSError:
            lines = []
        out.append({"stem": stem, "log": str(log) if log.exists() else "", "tail": lines})
    return out


def _short_worker(worker: str) -> str:
    return re.sub(r"^(tcp|tls|inproc)://", "", worker) or "?"


def plot_gantt(records: Sequence[ChunkRecord], origin: float | None = None) -> Figure:
    """One lane per worker, one bar per chunk from its DP3 start to its finish (seconds since
    ``origin``, default the first start), coloured by cycle; the chunks reused from an earlier run
    sit hatched in their own lane at the start of their cycle's fresh chunks (their length as when
    solved). Every bar is a patch with ``gid="chunk"``."""
    fresh = [r for r in records if not r.reused]
    t0 = origin if origin is not None else min((r.started for r in fresh), default=0.0)
    lanes = sorted({_short_worker(r.worker) for r in fresh})
    if any(r.reused for r in records):
        lanes.append(REUSED_LANE)
    cycles = sorted({r.cycle for r in records})
    cmap = colormaps["tab10"]
    colour = {c: cmap(i % 10) for i, c in enumerate(cycles)}
    fig = Figure(figsize=(11, 0.55 * max(len(lanes), 1) + 1.6), layout="constrained")
    ax = fig.add_subplot()
    cycle_start = {c: min((r.started for r in fresh if r.cycle == c), default=t0) - t0 for c in cycles}
    stacked: dict[int, float] = {}
    for r in sorted(records, key=lambda r: (r.cycle, r.started)):
        width = max(r.finished - r.started, 0.01)
        if r.reused:
            x = cycle_start[r.cycle] + stacked.get(r.cycle, 0.0)
            stacked[r.cycle] = stacked.get(r.cycle, 0.0) + width
            lane, hatch, alpha = lanes.index(REUSED_LANE), "///", 0.45
        else:
            x, lane, hatch, alpha = r.started - t0, lanes.index(_short_worker(r.worker)), None, 0.9
        bars = ax.barh(
            lane, width, left=x, height=0.7, color=colour[r.cycle], ec="black", lw=0.5, alpha=alpha, hatch=hatch
        )
        bars.patches[0].set_gid("chunk")
        if width > 0.04 * max((q.finished - t0 for q in fresh), default=1.0):
            ax.text(x + width / 2, lane, r.stem.replace("chunk_", ""), ha="center", va="center", fontsize=6)
    ax.set_yticks(range(len(lanes)), lanes, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("seconds since the run started" if origin is not None else "seconds since the first chunk started")
    ax.set_title(f"DP3 chunk tasks per worker ({len(records)} chunks; hatched: reused, not run)", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    handles = [Patch(color=colour[c], label=f"cycle {c}") for c in cycles]
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))  # off the bars
    return fig


def worker_overlaps(records: Sequence[ChunkRecord]) -> int:
    """How many pairs of chunks solved in this run overlap in time on one worker (0: never two DP3
    processes on a worker at once)."""
    n = 0
    by_worker: dict[str, list[ChunkRecord]] = {}
    for r in records:
        if not r.reused:
            by_worker.setdefault(r.worker, []).append(r)
    for rs in by_worker.values():
        rs.sort(key=lambda r: r.started)
        n += sum(1 for a, b in zip(rs, rs[1:]) if b.started < a.finished)
    return n


def stage_times(summary: dict[str, Any]) -> list[tuple[str, float]]:
    """``(stage, seconds)`` in run order: the run's own stages, then every cycle's."""
    rows = [(k, float(v)) for k, v in summary.get("timings", {}).items() if k not in ("total", "report")]
    for c in summary.get("cycles", []):
        rows += [(f"cycle {c['cycle']} {k}", float(v)) for k, v in c.get("timings", {}).items()]
    return rows


def plot_stage_times(rows: Sequence[tuple[str, float]]) -> Figure:
    """Horizontal bars of the wall time per stage, in run order from the top."""
    fig = Figure(figsize=(7, 0.28 * max(len(rows), 1) + 1.2), layout="constrained")
    ax = fig.add_subplot()
    labels = [r[0] for r in rows]
    vals = np.array([r[1] for r in rows], dtype=float)
    ax.barh(range(len(rows)), vals, color="tab:blue")
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    ax.invert_yaxis()
    for i, v in enumerate(vals):
        ax.text(v, i, f" {v:.1f} s", va="center", fontsize=7)
    ax.set_xlim(0, max(float(vals.max()) if vals.size else 1.0, 1e-3) * 1.15)  # room for the labels
    ax.set_xlabel("wall time (s)")
    ax.set_title("wall time per stage", fontsize=10)
    return fig


@contextmanager
def dask_performance_report(path: Path) -> Iterator[None]:
    """Save Dask's performance report (:class:`distributed.performance_report`) of what runs inside to
    ``path``. A report that cannot be made is logged, never raised: the work inside matters more,
    and its own error is the one to see."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    report = performance_report(filename=str(path))
    try:
        report.__enter__()
    except Exception as exc:
        log.warning("no Dask performance report %s: %s", path, exc)
        report = None
    try:
        yield
    finally:
        if report is not None:
            try:
                report.__exit__(None, None, None)
            except Exception as exc:
                log.warning("no Dask performance report %s: %s", path, exc)
