#!/usr/bin/env python
"""Benchmark chunked calibration against one unchunked run (issue 11's "seamless chunks").

On one simulated MS (default: 20 stations, 180 x 10 s, 16 channels, 4 directions,
as the issue tried it) the calibrate stage runs with real DP3 on a local Dask
cluster of 2 workers, each setting once as 1 chunk and once as 4 chunks (solint 2,
propagatesolutions on, scalarphase), side by side in one run:

* ``before``: maxiter 50, tolerance 1e-5, no lead-in (ddpipe's settings before issue 11);
* ``tolerance``: maxiter 100, tolerance 1e-4, no lead-in;
* ``lead-in``: maxiter 100, tolerance 1e-4, ``chunking.lead_in`` 2 (the defaults now);
* ``warm``: the ``lead-in`` run once more, started from its own 1-chunk solutions with
  ``ddecal.initialsolutions.h5parm`` (what a cycle 2 warm start would do).

Printed per setting: the largest phase difference (relative to the first station)
between the 4-chunk and the 1-chunk solutions at the chunk starts and elsewhere
(target ≤ 0.003 rad everywhere), the RMS phase error against the simulator's true
gains, DDECal's mean iterations per interval and the fraction stopped at maxiter,
and the DP3 seconds of the 4-chunk run (sum over chunks) relative to ``before``.
Everything also goes to ``WORKDIR/results.json``.

    python benchmarks/chunk_seams.py [--workdir DIR] [--stations 20] [--times 180]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def phases(h5: Path) -> tuple[np.ndarray, np.ndarray]:
    from ddpipe.solutions.h5parm import read_h5parm

    tab = read_h5parm(h5).soltabs["phase000"]
    return np.asarray(tab.time), np.angle(np.exp(1j * (tab.values - tab.values[:, :, :1])))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", help="where the MS and the runs go (default: a new temp dir)")
    ap.add_argument("--stations", type=int, default=20)
    ap.add_argument("--times", type=int, default=180)
    ap.add_argument("--channels", type=int, default=16)
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args(argv)

    from ddpipe.calibrate import calibrate
    from ddpipe.cluster import local_cluster
    from ddpipe.config import load_config
    from ddpipe.sky.directions import require_directions
    from ddpipe.solutions.compare import gain_errors
    from ddpipe.solutions.h5parm import read_h5parm

    work = Path(args.workdir or tempfile.mkdtemp(prefix="ddpipe-chunk-seams-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    ms = work / "sim.ms"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "ddpipe",
            "simulate",
            str(ms),
            "--stations",
            str(args.stations),
            "--times",
            str(args.times),
            "--channels",
            str(args.channels),
            "--seed",
            str(args.seed),
            "-q",
            "--overwrite",
        ],
        check=True,
    )
    sky, dirs = require_directions(str(ms.with_suffix(".skymodel")), 4, work)
    cfg = load_config(None, {})
    base_cal = dataclasses.replace(cfg.calibration, solint=2, nchan=0, propagatesolutions=True, mode="scalarphase")
    settings = {
        "before": (dataclasses.replace(base_cal, maxiter=50, tolerance=1e-5), 0, {}),
        "tolerance": (dataclasses.replace(base_cal, maxiter=100, tolerance=1e-4), 0, {}),
        "lead-in": (dataclasses.replace(base_cal, maxiter=100, tolerance=1e-4), 2, {}),
    }
    results: dict = {
        "ms": str(ms),
        "stations": args.stations,
        "times": args.times,
        "channels": args.channels,
        "settings": {},
    }
    handle = local_cluster(dataclasses.replace(cfg.cluster, n_workers=2, threads_per_worker=1), work)
    try:

        def solve(name: str, cal, lead: int, extra: dict, n_chunks: int):
            chunking = dataclasses.replace(cfg.chunking, duration=0.0, n_chunks=n_chunks, lead_in=lead)
            dp3 = dataclasses.replace(cfg.dp3, extra={**cfg.dp3.extra, **extra})
            run_cfg = dataclasses.replace(
                cfg,
                inputs=dataclasses.replace(cfg.inputs, ms=(str(ms),)),
                cluster=dataclasses.replace(cfg.cluster, retries=0),
                calibration=cal,
                chunking=chunking,
                dp3=dp3,
            )
            return calibrate(run_cfg, sky, dirs, work / f"{name}-{n_chunks}", handle.client)

        lead_one = None
        for name, (cal, lead, extra) in list(settings.items()) + [("warm", (None, None, None))]:
            if name == "warm":  # the lead-in setting, started from its own unchunked solutions
                cal, lead, _ = settings["lead-in"]
                extra = {
                    "ddecal.initialsolutions.h5parm": str(lead_one),
                    "ddecal.initialsolutions.soltab": "[phase000]",
                }
            one = solve(name, cal, lead, extra, 1)
            four = solve(name, cal, lead, extra, 4)
            if name == "lead-in":
                lead_one = one.solutions
            t1, p1 = phases(one.solutions)
            t4, p4 = phases(four.solutions)
            assert np.array_equal(t1, t4), "chunked and unchunked solution times differ"
            diff = np.abs(np.angle(np.exp(1j * (p4 - p1)))).reshape(len(t1), -1).max(axis=1)
            n_per = [read_h5parm(o.h5_path).soltabs["phase000"].time.size for o in four.chunks]
            starts = np.cumsum(n_per)[:-1]
            others = np.delete(diff, starts)
            r = {
                "max_diff_at_chunk_starts_rad": float(diff[starts].max()),
                "max_diff_elsewhere_rad": float(others.max()) if others.size else 0.0,
                "phase_rms_vs_truth_rad": gain_errors(four.solutions, ms.with_suffix(".truth.h5"))["phase_rms_rad"],
                "iterations": four.iterations[0],
                "dp3_seconds_4_chunks": sum(o.seconds for o in four.chunks),
                "dp3_seconds_1_chunk": sum(o.seconds for o in one.chunks),
            }
            results["settings"][name] = r
            print(
                f"{name:10s} chunk starts {r['max_diff_at_chunk_starts_rad']:.2e} rad, elsewhere "
                f"{r['max_diff_elsewhere_rad']:.2e} rad (target <= 3e-3); vs truth {r['phase_rms_vs_truth_rad']:.4f}"
                f" rad RMS; iterations mean {r['iterations'].get('mean')} at maxiter "
                f"{r['iterations'].get('at_maxiter')}; DP3 4 chunks {r['dp3_seconds_4_chunks']:.1f} s, "
                f"1 chunk {r['dp3_seconds_1_chunk']:.1f} s",
                flush=True,
            )
    finally:
        handle.close()
    b = results["settings"]["before"]["dp3_seconds_4_chunks"]
    for name, r in results["settings"].items():
        r["dp3_vs_before"] = r["dp3_seconds_4_chunks"] / b if b else None
    w, c = results["settings"]["warm"], results["settings"]["lead-in"]
    print(
        "DP3 time of 4 chunks relative to 'before': "
        + ", ".join(f"{n} {r['dp3_vs_before']:.2f}" for n, r in results["settings"].items())
    )
    print(
        f"warm start from the previous solutions vs cold (target <= 0.7): DP3 "
        f"{w['dp3_seconds_4_chunks'] / c['dp3_seconds_4_chunks']:.2f}, iterations "
        f"{w['iterations'].get('mean')} vs {c['iterations'].get('mean')}"
    )
    (work / "results.json").write_text(json.dumps(results, indent=1))
    print(f"results: {work / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
