#!/usr/bin/env python
"""Where does the demo's time go? Wall time per pipeline stage, and how well calibration uses the workers.

Runs the built-in demo (``ddpipe demo --workdir TMP --workers N``, the real
main job: simulation, three self-cal cycles of DP3 ddecal on a local Dask
cluster plus facet imaging, report) in a fresh temporary workdir, then reads
what the run recorded and prints:

1. the wall time split by stage: simulate, image before calibration, reference
   image, then per cycle calibrate / image / skymodel, and the report;
   "other" is the rest of the process's wall time (start-up and imports, input
   checks, starting and stopping the Dask cluster);
2. the calibrate stage's share of ideal parallel efficiency, per cycle and
   overall: the sum of the DP3 process seconds of the cycle's chunks (the
   ``dp3_seconds`` of each ``chunk_NNN.done.json``, else the chunk records of
   ``state.json``) divided by (workers × calibrate stage wall seconds). 100 %
   would be every worker running DP3 for the whole stage; the rest is Dask
   scheduling, DP3 start-up waiting for a slot, the last chunk running alone,
   planning and merging. The same ratio over the DP3 busy window (first chunk
   start to last chunk end) separates the tail from planning and merging.

Sources of each figure: ``summary.json`` (``timings`` and ``cycles[].timings``)
for the stages; the demo's own last line (``simulation X s``) for the
simulation, and the file times of ``summary.json`` and ``report/index.html``
for the report when ``summary.json`` does not carry them. The machine's load
average before and after is printed: other jobs on the machine inflate every
figure.

With ``--issue-size`` it runs issue 10's case instead of the demo: ``ddpipe
simulate`` of 36 stations x 720 x 10 s x 32 channels (about 0.75 GB) with 8
directions, then ``ddpipe run`` of one self-cal cycle on it (8 time chunks on 2
workers, scalarphase solint 1, a 2048² image of 5" with 8 facets, Briggs 0,
2000 iterations, auto-threshold 3, mgain 0.8, imaging passes on the workers),
starting from the simulator's sky model; the same tables follow. Takes about
five minutes plus the simulation.

Usage: python benchmarks/pipeline.py [--workers 2] [--keep DIR] [--json OUT.json] [--issue-size]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class CycleCalibration:
    """DP3 use of one cycle's calibrate stage.

    Attributes
    ----------
    cycle : int
    wall : float
        Calibrate stage wall seconds (``summary.json``).
    dp3_seconds : float
        Sum of the chunks' DP3 process wall seconds.
    n_chunks : int
    window : float
        Seconds from the first chunk's DP3 start to the last one's end.
    workers_seen : int
        Distinct Dask workers that ran a chunk.
    """

    cycle: int
    wall: float
    dp3_seconds: float
    n_chunks: int
    window: float
    workers_seen: int

    def efficiency(self, n_workers: int) -> float:
        """sum(DP3 seconds) / (n_workers × stage wall)."""
        return self.dp3_seconds / (n_workers * self.wall) if self.wall > 0 else float("nan")

    def window_efficiency(self, n_workers: int) -> float:
        """sum(DP3 seconds) / (n_workers × DP3 busy window)."""
        return self.dp3_seconds / (n_workers * self.window) if self.window > 0 else float("nan")


@dataclass
class Breakdown:
    """Stage wall times (seconds, in run order) and the calibration figures."""

    stages: list[tuple[str, float]] = field(default_factory=list)
    calibration: list[CycleCalibration] = field(default_factory=list)
    wall: float = 0.0
    notes: list[str] = field(default_factory=list)


def chunk_records(workdir: Path, cycle: int) -> list[dict[str, Any]]:
    """The chunk completion records of one cycle: ``{dp3_seconds, started, finished, worker}`` each.

    From ``cycle_NN/chunks/*.done.json``; when there are none, from the
    ``state.json`` chunk records of that cycle (``seconds`` → ``dp3_seconds``).
    """
    out = []
    for f in sorted((workdir / f"cycle_{cycle:02d}" / "chunks").glob("*.done.json")):
        rec = json.loads(f.read_text())
        out.append({k: rec[k] for k in ("dp3_seconds", "started", "finished", "worker")})
    if out:
        return out
    state = workdir / "state.json"
    if state.exists():
        chunks = json.loads(state.read_text()).get("chunks", {})
        for name, rec in sorted(chunks.items()):
            if name.startswith(f"cycle_{cycle:02d}/") and not rec.get("reused"):
                out.append(
                    {
                        "dp3_seconds": rec["seconds"],
                        "started": rec["started"],
                        "finished": rec["finished"],
                        "worker": rec["worker"],
                    }
                )
    return out


def analyse(workdir: Path, wall: float, simulate_seconds: float | None) -> Breakdown:
    """Read a finished demo workdir into a :class:`Breakdown`.

    Parameters
    ----------
    workdir
        The demo's workdir (holds ``summary.json``).
    wall
        Wall seconds of the whole ``ddpipe demo`` process.
    simulate_seconds
        The simulation's seconds as the demo printed them (None if not found).
    """
    summary = json.loads((workdir / "summary.json").read_text())
    t = summary.get("timings", {})
    b = Breakdown(wall=wall)
    sim = t.get("simulate", simulate_seconds)
    if sim is None:
        b.notes.append("simulate: not in summary.json nor in the demo's output")
    else:
        b.stages.append(("simulate", float(sim)))
    b.stages.append(("image before calibration", float(t.get("image_before", 0.0))))
    if "reference" in t:
        b.stages.append(("reference image", float(t["reference"])))
    for c in summary["cycles"]:
        n = c["cycle"]
        ct = c["timings"]
        for stage in ("calibrate", "image", "skymodel"):
            b.stages.append((f"cycle {n} {stage}", float(ct.get(stage, 0.0))))
        recs = chunk_records(workdir, n)
        if recs:
            window = max(r["finished"] for r in recs) - min(r["started"] for r in recs)
            b.calibration.append(
                CycleCalibration(
                    n,
                    float(ct["calibrate"]),
                    sum(float(r["dp3_seconds"]) for r in recs),
                    len(recs),
                    window,
                    len({r["worker"] for r in recs}),
                )
            )
        else:
            b.notes.append(f"cycle {n}: no chunk records (all chunks reused?)")
    if "report" in t:
        b.stages.append(("report", float(t["report"])))
    else:
        page, js = workdir / "report" / "index.html", workdir / "summary.json"
        if page.exists() and js.exists():
            b.stages.append(("report", max(0.0, page.stat().st_mtime - js.stat().st_mtime)))
            b.notes.append(
                "report: from the file times of summary.json and report/index.html "
                "(summary.json has no 'report' timing)"
            )
    b.stages.append(
        ("other (start-up, input checks, Dask cluster start/stop)", max(0.0, wall - sum(s for _, s in b.stages)))
    )
    return b


def format_breakdown(b: Breakdown, n_workers: int) -> str:
    """The printed tables."""
    lines = [f"{'stage':<58}{'seconds':>9}{'share':>8}"]
    for name, s in b.stages:
        lines.append(f"{name:<58}{s:>9.1f}{100 * s / b.wall:>7.1f}%")
    lines.append(f"{'total (wall time)':<58}{b.wall:>9.1f}{100.0:>7.1f}%")
    lines.append("")
    lines.append(f"calibrate stage, {n_workers} worker(s): efficiency = sum(DP3 s) / (workers x stage wall s)")
    lines.append(
        f"{'cycle':<8}{'chunks':>7}{'workers':>8}{'sum DP3 s':>11}{'stage s':>9}{'efficiency':>12}"
        f"{'DP3 window s':>14}{'in window':>11}"
    )
    for c in b.calibration:
        lines.append(
            f"{c.cycle:<8}{c.n_chunks:>7}{c.workers_seen:>8}{c.dp3_seconds:>11.1f}{c.wall:>9.1f}"
            f"{100 * c.efficiency(n_workers):>11.1f}%{c.window:>14.1f}"
            f"{100 * c.window_efficiency(n_workers):>10.1f}%"
        )
    if b.calibration:
        dp3 = sum(c.dp3_seconds for c in b.calibration)
        wall = sum(c.wall for c in b.calibration)
        window = sum(c.window for c in b.calibration)
        lines.append(
            f"{'overall':<8}{sum(c.n_chunks for c in b.calibration):>7}{'':>8}{dp3:>11.1f}{wall:>9.1f}"
            f"{100 * dp3 / (n_workers * wall):>11.1f}%{window:>14.1f}"
            f"{100 * dp3 / (n_workers * window):>10.1f}%"
        )
    lines.extend(f"note: {n}" for n in b.notes)
    return "\n".join(lines)


def run_demo(workdir: Path, workers: int) -> tuple[float, float | None, str]:
    """Run ``ddpipe demo`` in a subprocess; returns (wall seconds, simulation seconds, stdout)."""
    argv = [sys.executable, "-m", "ddpipe", "demo", "--workdir", str(workdir), "--workers", str(workers)]
    log = workdir.parent / "demo.log"
    t0 = time.monotonic()
    with open(log, "wb") as err:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL)
    wall = time.monotonic() - t0
    out = proc.stdout.decode(errors="replace")
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-20:]
        raise SystemExit(f"ddpipe demo failed (exit {proc.returncode}); last log lines:\n" + "\n".join(tail))
    m = re.search(r"simulation ([0-9.]+) s", out)
    return wall, (float(m.group(1)) if m else None), out


#: issue 10's observation and the one-cycle run on it (see the module docstring)
ISSUE_SIZE = dict(stations=36, times=720, interval=10, channels=32, directions=8, seed=1)
ISSUE_CONFIG = """\
inputs:
  ms: [{ms}]
  skymodel: {sky}
workdir: {workdir}
cluster:
  n_workers: {workers}
  threads_per_worker: 1
  imaging: true
chunking:
  duration: 0
  n_chunks: 8
calibration:
  mode: scalarphase
  solint: 1
  n_directions: 8
imaging:
  size: [2048, 2048]
  scale: 5.0
  weight: briggs
  robust: 0.0
  niter: 2000
  auto_threshold: 3.0
  mgain: 0.8
cycles:
  - {{}}
"""


def run_issue_size(root: Path, workers: int) -> tuple[Path, float, float, str]:
    """Simulate issue 10's MS and run one cycle on it; (workdir, wall of the run, simulation seconds, output)."""
    sim = root / "sim"
    sim.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "ddpipe", "simulate", str(sim / "obs.ms"), "-q", "--overwrite"]
    for k, v in ISSUE_SIZE.items():
        argv += [f"--{k}", str(v)]
    t0 = time.monotonic()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    sim_seconds = time.monotonic() - t0
    workdir = root / "run"
    cfg = root / "issue10.yaml"
    cfg.write_text(ISSUE_CONFIG.format(ms=sim / "obs.ms", sky=sim / "obs.skymodel", workdir=workdir, workers=workers))
    log = root / "run.log"
    t0 = time.monotonic()
    with open(log, "wb") as err:
        proc = subprocess.run(
            [sys.executable, "-m", "ddpipe", "run", str(cfg)],
            stdout=subprocess.PIPE,
            stderr=err,
            stdin=subprocess.DEVNULL,
        )
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-20:]
        raise SystemExit(f"ddpipe run failed (exit {proc.returncode}); last log lines:\n" + "\n".join(tail))
    return workdir, wall, sim_seconds, proc.stdout.decode(errors="replace")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2, help="local Dask workers (default 2, the demo's)")
    ap.add_argument("--keep", metavar="DIR", help="run in DIR (must not exist) and keep it")
    ap.add_argument("--json", metavar="OUT", help="also write the figures as JSON")
    ap.add_argument(
        "--issue-size",
        action="store_true",
        help="issue 10's 0.75 GB observation, one cycle with 8 facets, instead of the demo",
    )
    args = ap.parse_args()

    if args.keep:
        root = Path(args.keep).resolve()
        if root.exists():
            ap.error(f"--keep {root}: exists; give a new folder (the benchmark needs a fresh run)")
        root.mkdir(parents=True)
    else:
        root = Path(tempfile.mkdtemp(prefix="ddpipe-bench-pipeline-"))
    load_before = os.getloadavg()
    try:
        if args.issue_size:
            workdir, wall, sim, out = run_issue_size(root, args.workers)
            b = analyse(workdir, wall, None)
            b.notes = [n for n in b.notes if not n.startswith("simulate:")]
            b.stages.insert(0, ("simulate (ddpipe simulate, before the run)", sim))
            b.wall += sim
            b.stages[-1] = (b.stages[-1][0], max(0.0, b.wall - sum(t for _, t in b.stages[:-1])))
        else:
            workdir = root / "demo"
            wall, sim, out = run_demo(workdir, args.workers)
            b = analyse(workdir, wall, sim)
        load_after = os.getloadavg()
        print(out.rstrip())
        print()
        print(
            f"machine: {os.cpu_count()} cores; load average (1, 5, 15 min) before "
            f"{' '.join(f'{x:.2f}' for x in load_before)}, after {' '.join(f'{x:.2f}' for x in load_after)}"
        )
        print(format_breakdown(b, args.workers))
        if args.json:
            data = {
                "workers": args.workers,
                "wall": b.wall,
                "stages": dict(b.stages),
                "calibration": [
                    asdict(c)
                    | {"efficiency": c.efficiency(args.workers), "window_efficiency": c.window_efficiency(args.workers)}
                    for c in b.calibration
                ],
                "load_before": load_before,
                "load_after": load_after,
                "notes": b.notes,
            }
            Path(args.json).write_text(json.dumps(data, indent=1))
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
