#!/usr/bin/env python
"""Benchmark the DD facet image with its passes on Dask workers against the same image in-process.

On one simulated MS (default: issue 10's size, 36 stations x 720 x 10 s x 32
channels, about 0.75 GB, 8 directions, with the simulator's true gains as the
solutions) and the same imaging settings as ``benchmarks/facet_imaging.py``
(2048² at 5", Briggs 0, 2000 iterations, auto-threshold 3, mgain 0.8), it times
side by side in one run:

* ``make_image`` in this process with 2 gridder threads (what ``ddpipe image`` does);
* ``make_image`` with a ``LocalCluster`` of 2 workers x 1 thread, each offering
  ``subprocess_slots=1`` (what ``ddpipe run`` does with ``cluster.imaging: true``).

Printed: both wall times and their ratio (target ≤ 1.1: no loss on one node), how
the imaging tasks spread over the workers (tasks and compute seconds per worker,
from Dask's task stream), and the largest pixel difference between the two
restored images relative to the peak. The task stream is also saved as Dask's
HTML performance report in the workdir.

    python benchmarks/imaging_dask.py [--workdir DIR] [--small] [--directions 8]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FULL = dict(stations=36, times=720, channels=32, size=2048, scale=5.0)
SMALL = dict(stations=16, times=60, channels=8, size=512, scale=20.0)


def simulate(out: Path, sim: dict, directions: int, seed: int) -> Path:
    ms = out / "sim.ms"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "ddpipe",
            "simulate",
            str(ms),
            "--stations",
            str(sim["stations"]),
            "--times",
            str(sim["times"]),
            "--channels",
            str(sim["channels"]),
            "--directions",
            str(directions),
            "--seed",
            str(seed),
            "-q",
            "--overwrite",
        ],
        check=True,
    )
    return ms


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", help="where the MS, images and report go (default: a new temp dir)")
    ap.add_argument("--directions", type=int, default=8)
    ap.add_argument("--small", action="store_true", help="a smoke run on a small MS")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", action="store_true", help="keep the simulated MS")
    args = ap.parse_args(argv)

    from distributed import Client, LocalCluster, get_task_stream, performance_report

    from ddpipe.config import load_config
    from ddpipe.imaging import make_image
    from ddpipe.imaging.fitsio import read_image
    from ddpipe.sky.directions import patch_directions
    from ddpipe.sky.skymodel import read_skymodel
    from ddpipe.solutions.h5parm import read_h5parm

    sim = SMALL if args.small else FULL
    work = Path(args.workdir or tempfile.mkdtemp(prefix="ddpipe-imaging-dask-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    ms = simulate(work, sim, args.directions, args.seed)
    print(
        f"simulated {ms} ({sim['stations']} stations x {sim['times']} x {sim['channels']} channels, "
        f"{args.directions} directions) in {time.perf_counter() - t0:.1f} s",
        flush=True,
    )
    sol = read_h5parm(ms.with_suffix(".truth.h5"))
    dirs = patch_directions(read_skymodel(ms.with_suffix(".skymodel")))
    cfg = load_config(None, {})
    params = dataclasses.replace(
        cfg.imaging,
        size=[sim["size"]] * 2,
        scale=sim["scale"],
        weight="briggs",
        robust=0.0,
        niter=2000,
        auto_threshold=3.0,
        mgain=0.8,
        gain=0.1,
    )

    t0 = time.perf_counter()
    local = make_image([ms], params, work / "inproc", solutions=sol, facet_directions=dirs)
    t_local = time.perf_counter() - t0
    print(f"in-process, 2 threads:          {t_local:7.1f} s ({local.n_major} major cycles)", flush=True)

    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        resources={"subprocess_slots": 1},
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
        processes=True,
        local_directory=str(work / "dask"),
    )
    try:
        with Client(cluster) as client:
            with performance_report(filename=str(work / "imaging-dask-report.html")), get_task_stream(client) as ts:
                t0 = time.perf_counter()
                dask = make_image([ms], params, work / "dask", solutions=sol, facet_directions=dirs, client=client)
                t_dask = time.perf_counter() - t0
            tasks = list(ts.data)
    finally:
        cluster.close()
    print(f"Dask, 2 workers x 1 thread:     {t_dask:7.1f} s ({dask.n_major} major cycles)")
    per_worker: dict[str, list[float]] = {}
    for t in tasks:
        busy = sum(s["stop"] - s["start"] for s in t["startstops"] if s["action"] == "compute")
        per_worker.setdefault(t["worker"], []).append(busy)
    for w, busy in sorted(per_worker.items()):
        print(f"  {w}: {len(busy)} imaging tasks, {sum(busy):.1f} s computing")
    a, b = read_image(local.image)[0], read_image(dask.image)[0]
    diff = float(np.abs(a - b).max() / np.abs(a).max())
    ratio = t_dask / t_local
    print(f"ratio Dask / in-process: {ratio:.2f} (target <= 1.1); restored images differ by {diff:.2e} of the peak")
    print(f"task stream: {work / 'imaging-dask-report.html'}")
    result = {
        "in_process_s": t_local,
        "dask_s": t_dask,
        "ratio": ratio,
        "max_diff_over_peak": diff,
        "workers": {w: {"tasks": len(v), "compute_s": sum(v)} for w, v in per_worker.items()},
        "major_cycles": [local.n_major, dask.n_major],
        "size": sim,
        "directions": args.directions,
    }
    (work / "results.json").write_text(json.dumps(result, indent=1))
    if not args.keep:
        shutil.rmtree(ms, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
