#!/usr/bin/env python
"""How well does chunked DP3 ddecal on Dask scale on this machine?

Simulates a demo-sized MS (24 stations, 16 channels, 180 slots of 10 s, 4
directions), splits it into 8 chunks and solves it, measured side by side in
one run:

1. ddpipe with 1 worker and with 2 workers (1 thread each, subprocess_slots=1):
   wall time, sum of DP3 process times, efficiency = sum(DP3) / (workers × wall),
   and Dask overhead per task (1-worker wall − sum(DP3), per task).
2. The same with the resource made moot and 3 threads per worker, i.e. what
   a user gets without the slot: each worker offers as many subprocess_slots as
   it has threads, so the scheduler packs chunk tasks by threads alone. Peak
   concurrent DP3 processes and their peak total memory (RSS sampled every
   50 ms), next to the slotted run's.
3. The alternative a user would pick instead: one plain DP3 ddecal over the
   whole MS with numthreads = all cores. Ratio ddpipe(2 workers) / plain DP3
   (target ≤ 1.0), and whether the solutions are identical (propagatesolutions
   is off in every run so that chunk edges cannot differ).

Usage: python benchmarks/calibration_scaling.py [--chunks 8] [--keep DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil


class DP3Sampler:
    """Polls this process's descendants for DP3 processes: peak count and peak summed RSS."""

    def __init__(self, interval: float = 0.05):
        self.interval, self.peak_n, self.peak_rss = interval, 0, 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            n, rss = 0, 0
            # only this benchmark's own process tree: the machine may be running other DP3s
            for p in me.children(recursive=True):
                try:
                    cmd = p.cmdline()
                    if any(os.path.basename(a) in ("DP3", "DP3.py") for a in cmd[:2]):
                        n += 1
                        rss += p.memory_info().rss
                except psutil.Error:
                    continue
            self.peak_n, self.peak_rss = max(self.peak_n, n), max(self.peak_rss, rss)
            self._stop.wait(self.interval)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *a):
        self._stop.set()
        self._t.join()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chunks", type=int, default=8)
    ap.add_argument("--keep", help="keep the work files in this folder")
    args = ap.parse_args()

    from ddpipe.calibrate import calibrate
    from ddpipe.cluster import SLOT, ClusterHandle, local_cluster
    from ddpipe.config import load_config
    from ddpipe.dp3.parsets import MsView, ddecal_parset, dp3_argv
    from ddpipe.dp3.runner import dp3_environment, find_dp3, run_dp3
    from ddpipe.simulate.run import simulate
    from ddpipe.simulate.spec import SimulationSpec
    from ddpipe.solutions.h5parm import read_h5parm

    root = Path(args.keep or tempfile.mkdtemp(prefix="ddpipe-calbench-"))
    root.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    sim = simulate(root / "bench.ms", SimulationSpec(seed=11, overwrite=True))
    print(
        f"simulated {sim.ms.name}: {sim.nstations} stations, {sim.ntimes} slots, {sim.nchannels} channels, "
        f"{sim.ndirections} directions in {time.perf_counter() - t:.1f} s"
    )
    base = load_config()
    cal = dataclasses.replace(base.calibration, solint=2, nchan=0, propagatesolutions=False)
    chunking = dataclasses.replace(base.chunking, duration=0.0, n_chunks=args.chunks)
    dirs = [f"P{i + 1}" for i in range(sim.ndirections)]
    ncores = os.cpu_count() or 2

    def unslotted_cluster(workers: int, threads: int):
        """Workers offering one subprocess_slots per thread: the slot no longer limits anything."""
        from distributed import Client, LocalCluster

        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=threads,
            resources={SLOT: threads},
            host="127.0.0.1",
            dashboard_address=None,
            local_directory=str(root / "dask-noslot"),
        )
        return ClusterHandle(Client(cluster), cluster, "local")

    def ddpipe_run(workers: int, threads: int, slots: bool, tag: str):
        ccfg = dataclasses.replace(base.cluster, n_workers=workers, threads_per_worker=threads, retries=0)
        h = local_cluster(ccfg, root / f"dask-{tag}") if slots else unslotted_cluster(workers, threads)
        run_cfg = dataclasses.replace(
            base,
            inputs=dataclasses.replace(base.inputs, ms=(str(sim.ms),)),
            cluster=ccfg,
            calibration=cal,
            chunking=chunking,
        )
        try:
            with DP3Sampler() as s:
                t0 = time.perf_counter()
                res = calibrate(run_cfg, str(sim.skymodel), dirs, root / tag, h.client)
                wall = time.perf_counter() - t0
        finally:
            h.close()
        dp3_sum = sum(c.seconds for c in res.chunks)
        return dict(
            wall=wall,
            dp3=dp3_sum,
            eff=dp3_sum / (workers * wall),
            n=len(res.chunks),
            peak_n=s.peak_n,
            peak_mb=s.peak_rss / 2**20,
            h5=res.solutions,
        )

    r1 = ddpipe_run(1, 1, True, "w1")
    r2 = ddpipe_run(2, 1, True, "w2")
    r2t3 = ddpipe_run(2, 3, True, "w2t3")
    rno = ddpipe_run(2, 3, False, "noslot")

    # the alternative: one DP3 over the whole MS with all cores
    parset = ddecal_parset(
        MsView(str(sim.ms)), skymodel=str(sim.skymodel), directions=dirs, h5parm=str(root / "plain.h5"), cal=cal
    )
    with DP3Sampler() as sp:
        t0 = time.perf_counter()
        run_dp3(
            dp3_argv(find_dp3(), parset, numthreads=ncores),
            log_path=root / "plain.log",
            timeout=3600,
            env=dp3_environment(),
        )
        plain = time.perf_counter() - t0
    a = read_h5parm(r2["h5"]).soltabs["phase000"].values
    b = read_h5parm(root / "plain.h5").soltabs["phase000"].values
    maxdiff = float(np.nanmax(np.abs(np.angle(np.exp(1j * (a - b))))))

    print()
    print(f"{'run':<38}{'wall s':>8}{'sum DP3 s':>11}{'eff':>7}{'peak DP3s':>10}{'peak MB':>9}")
    for name, r, w in (
        ("ddpipe 1 worker x 1 thread (slots)", r1, 1),
        ("ddpipe 2 workers x 1 thread (slots)", r2, 2),
        ("ddpipe 2 workers x 3 threads (slots)", r2t3, 2),
        ("ddpipe 2 workers x 3 threads (NO slots)", rno, 2),
    ):
        print(f"{name:<38}{r['wall']:>8.2f}{r['dp3']:>11.2f}{r['eff']:>7.2f}{r['peak_n']:>10d}{r['peak_mb']:>9.0f}")
    print(
        f"{'plain DP3, numthreads=' + str(ncores) + ', whole MS':<38}{plain:>8.2f}{plain:>11.2f}{'':>7}"
        f"{sp.peak_n:>10d}{sp.peak_rss / 2**20:>9.0f}"
    )
    print()
    overhead = (r1["wall"] - r1["dp3"]) / r1["n"]
    print(f"speed-up 2 workers vs 1:                 {r1['wall'] / r2['wall']:.2f}x (ideal 2.00x)")
    print(f"efficiency with 2 workers:               {r2['eff']:.2f} (target >= 0.9)")
    print(f"Dask overhead per task (1 worker):       {overhead:.3f} s (target < 0.2 s)")
    print(f"ddpipe 2 workers / plain DP3 all cores:  {r2['wall'] / plain:.2f} (target <= 1.0)")
    print(
        f"slots off (3 threads/worker): peak {rno['peak_n']} concurrent DP3s, {rno['peak_mb']:.0f} MB; "
        f"slots on: peak {r2t3['peak_n']}, {r2t3['peak_mb']:.0f} MB"
    )
    print(f"solutions ddpipe (8 chunks) vs plain DP3: max |phase difference| = {maxdiff:.2e} rad")
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
