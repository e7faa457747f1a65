#!/usr/bin/env python
"""Benchmark a chain of solves (fast phases, then slow diagonal gains) in one DP3 run per chunk.

On one simulated MS with fast phase errors and slow amplitude errors (default: 24
stations, 180 x 10 s, 16 channels, 4 directions, ``--amplitude-scale 0.2``) the
calibrate stage runs with real DP3 on a local Dask cluster of 2 workers, 4 chunks,
side by side in one run:

* ``chain``: ``calibration.solves`` = scalarphase (solint 1) then diagonal (solint
  ``--slow-solint``, a solution per channel, smoothed over ``--smoothness`` Hz), both
  in one DP3 run per chunk from one predict (keepmodel/reusemodel);
* ``separate``: the same two solves as two DP3 runs per chunk, the second predicting
  the model again, corrupted by the first solve's solutions (``ddecal.applycal``);
* ``phase only``: the first solve alone;
* ``phase+diag+phase``: the chain with a second fast phase solve after the slow gains;
* ``scalar+diag``: a fast scalar (amplitude and phase) solve, then the slow diagonal one.

Printed: DP3 seconds (sum over chunks) of each and the ratio chain / separate
(target ≤ 0.7), and the RMS phase (relative to the first station) and relative
amplitude error of each result's gains against the simulator's true gains, per
direction (targets: ≤ 0.03 rad and ≤ 2 %).

With ``--pipeline``, two 3-cycle self-calibrations of the same MS follow (the
demo's imaging, starting from the brightest source of each direction): phase-only
cycles, and a phase-only cycle followed by two chain cycles; per cycle the
dynamic range against the uncorrupted reference's (target ≥ 0.9×) and the quality
figures (:mod:`ddpipe.quality`). Also written to ``WORKDIR/results.json``.

    python benchmarks/solve_chain.py [--workdir DIR] [--stations 24] [--slow-solint 10] [--pipeline]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", help="where the MS and the runs go (default: a new temp dir)")
    ap.add_argument("--stations", type=int, default=24)
    ap.add_argument("--times", type=int, default=180)
    ap.add_argument("--channels", type=int, default=16)
    ap.add_argument("--slow-solint", type=int, default=10)
    ap.add_argument("--smoothness", type=float, default=2e6, help="Hz (the slow solve's smoothnessconstraint)")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--pipeline", action="store_true", help="also self-calibrate: phase-only vs chain cycles")
    args = ap.parse_args(argv)

    from ddpipe.calibrate import calibrate
    from ddpipe.cluster import local_cluster
    from ddpipe.config import load_config
    from ddpipe.sky.directions import require_directions
    from ddpipe.solutions.compare import gain_errors

    work = Path(args.workdir or tempfile.mkdtemp(prefix="ddpipe-solve-chain-")).resolve()
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
            "--amplitude-scale",
            "0.2",
            "-q",
            "--overwrite",
        ],
        check=True,
    )
    truth = ms.with_suffix(".truth.h5")
    sky, dirs = require_directions(str(ms.with_suffix(".skymodel")), 4, work)
    cfg = load_config(None, {})
    fast = dataclasses.replace(cfg.calibration, mode="scalarphase", solint=1, nchan=0)
    slow = dataclasses.replace(
        cfg.calibration,
        mode="diagonal",
        solint=args.slow_solint,
        nchan=1,
        smoothnessconstraint=args.smoothness,
        maxiter=200,
    )
    chunking = dataclasses.replace(cfg.chunking, duration=0.0, n_chunks=4)
    handle = local_cluster(dataclasses.replace(cfg.cluster, n_workers=2, threads_per_worker=1), work)
    results: dict = {
        "ms": str(ms),
        "stations": args.stations,
        "times": args.times,
        "channels": args.channels,
        "slow_solint": args.slow_solint,
        "smoothness_hz": args.smoothness,
        "runs": {},
    }
    try:

        def solve(name, cal, extra=None):
            dp3 = dataclasses.replace(cfg.dp3, extra={**cfg.dp3.extra, **(extra or {})})
            run_cfg = dataclasses.replace(
                cfg,
                inputs=dataclasses.replace(cfg.inputs, ms=(str(ms),)),
                cluster=dataclasses.replace(cfg.cluster, retries=0),
                calibration=cal,
                chunking=chunking,
                dp3=dp3,
            )
            res = calibrate(run_cfg, sky, dirs, work / name, handle.client)
            return res, sum(o.seconds for o in res.chunks)

        chain, t_chain = solve("chain", dataclasses.replace(fast, solves=(fast, slow)))
        first, t_first = solve("separate-1", fast)
        second, t_second = solve(
            "separate-2",
            slow,
            {"ddecal.applycal.parmdb": str(first.solutions), "ddecal.applycal.correction": "phase000"},
        )
        runs = {
            "chain": (chain.solutions, t_chain, chain.iterations),
            "phase only": (first.solutions, t_first, first.iterations),
        }
        for name, solves in (
            ("phase+diag+phase", (fast, slow, fast)),
            ("scalar+diag", (dataclasses.replace(fast, mode="scalar"), slow)),
        ):
            res, seconds = solve(name.replace("+", "-"), dataclasses.replace(fast, solves=solves))
            runs[name] = (res.solutions, seconds, res.iterations)
        # the separate runs' product: both files' soltabs as one chain
        from ddpipe.solutions.h5parm import read_h5parm, write_h5parm
        from ddpipe.solutions.merge import chain_soltabs

        both = work / "separate.h5"
        both.unlink(missing_ok=True)
        write_h5parm(both, chain_soltabs([read_h5parm(first.solutions), read_h5parm(second.solutions)]))
        runs["separate"] = (both, t_first + t_second, first.iterations + second.iterations)
    finally:
        handle.close()
    for name, (h5, seconds, its) in runs.items():
        err = gain_errors(h5, truth)["directions"]
        results["runs"][name] = {"dp3_seconds": seconds, "errors": err, "iterations": its}
        worst_p = max(e["phase_rms_rad"] for e in err.values())
        worst_a = max(e["amplitude_rms"] for e in err.values())
        print(
            f"{name:16s} DP3 {seconds:6.1f} s; worst direction: phase {worst_p:.4f} rad RMS (target <= 0.03), "
            f"amplitude {100 * worst_a:.2f}% RMS (target <= 2%); iterations "
            + ", ".join(f"{i.get('mean')} (at maxiter {i.get('at_maxiter')})" for i in its)
        )
    ratio = results["runs"]["chain"]["dp3_seconds"] / results["runs"]["separate"]["dp3_seconds"]
    results["chain_over_separate"] = ratio
    print(f"chain in one DP3 run / the same solves as separate runs: {ratio:.2f} (target <= 0.7)")
    if args.pipeline:
        results["pipelines"] = pipelines(work, ms, args)
    (work / "results.json").write_text(json.dumps(results, indent=1))
    print(f"results: {work / 'results.json'}")
    return 0


def pipelines(work: Path, ms: Path, args: argparse.Namespace) -> dict:
    """Phase-only cycles against a phase cycle then two chain cycles, with the uncorrupted reference."""
    from ddpipe.commands.demo import shallow_skymodel
    from ddpipe.config import load_config
    from ddpipe.pipeline import run_pipeline

    ref = work / "sim-uncorrupted.ms"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "ddpipe",
            "simulate",
            str(ref),
            "--stations",
            str(args.stations),
            "--times",
            str(args.times),
            "--channels",
            str(args.channels),
            "--seed",
            str(args.seed),
            "--amplitude-scale",
            "0.2",
            "--no-corrupt",
            "-q",
            "--overwrite",
        ],
        check=True,
    )
    start = shallow_skymodel(ms.with_suffix(".skymodel"), work / "start.skymodel")
    demo_yaml = Path(__file__).resolve().parents[1] / "ddpipe" / "data" / "demo.yaml"
    fast = {"mode": "scalarphase", "solint": 1}
    slow = {
        "mode": "diagonal",
        "solint": args.slow_solint,
        "nchan": 1,
        "smoothnessconstraint": args.smoothness,
        "maxiter": 200,
    }
    plans = {
        "phase only": [{"calibration": fast}] * 3,
        "phase, then chain": [{"calibration": fast}] + [{"calibration": {"solves": [fast, slow]}}] * 2,
    }
    out = {}
    for name, cycles in plans.items():
        cfg = load_config(
            demo_yaml,
            {
                "workdir": str(work / f"run-{name.replace(' ', '-').replace(',', '')}"),
                "cycles": cycles,
                "inputs": {
                    "ms": [str(ms)],
                    "skymodel": str(start),
                    "reference_ms": [str(ref)],
                    "true_gains": str(ms.with_suffix(".truth.h5")),
                    "true_skymodel": str(ms.with_suffix(".skymodel")),
                },
            },
        )
        summary = run_pipeline(cfg)
        rq = summary.reference_quality.get("image", {})
        rows = []
        for c in summary.cycles:
            img, sol = c.quality.get("image", {}), c.quality.get("solutions", {})
            rows.append(
                {
                    "cycle": c.cycle,
                    "mode": c.mode,
                    "dynamic_range": c.image.dynamic_range,
                    "reference_dynamic_range": c.reference_dynamic_range,
                    "rms_far_jy": img.get("rms_far_jy"),
                    "unmodelled_median_ratio": img.get("unmodelled_median_ratio"),
                    "phase_rms_rad": sol.get("phase_rms_rad"),
                    "amplitude_rms": sol.get("amplitude_rms"),
                }
            )
            r = rows[-1]
            print(
                f"{name:18s} cycle {c.cycle} {c.mode:22s} DR {r['dynamic_range']:6.0f} "
                f"({r['dynamic_range'] / r['reference_dynamic_range']:.2f} of the reference's; target >= 0.9), "
                f"noise far {1e3 * r['rms_far_jy']:.2f} mJy "
                f"(reference {1e3 * rq.get('rms_far_jy', float('nan')):.2f}), "
                f"unmodelled flux {r['unmodelled_median_ratio']:.2f} "
                f"(reference {rq.get('unmodelled_median_ratio', float('nan')):.2f}), "
                f"phase {r['phase_rms_rad']:.3f} rad, amplitude {100 * r['amplitude_rms']:.1f}%",
                flush=True,
            )
        out[name] = rows
    return out


if __name__ == "__main__":
    sys.exit(main())
