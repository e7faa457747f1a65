"""Solve direction-dependent gains with DP3 ddecal, one run per time chunk, on Dask.

Every chunk task is submitted up front with resources={"subprocess_slots": 1};
each worker offers one slot, so no worker ever runs two DP3 processes. Chunk
parsets, logs and H5parms are kept in WORKDIR/chunks; rerunning with the same
workdir reuses every finished chunk (--force recomputes all). The chunk
solutions are merged along time (and frequency, for several sub-band MSs) into
--out.

Example:
  ddpipe calibrate --ms sim.ms --skymodel sim.skymodel --workers 2 --out sol.h5
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "solve DD gains with DP3 ddecal per time chunk on Dask"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ms", nargs="+", required=True, metavar="MS", help="Measurement Set(s); several = sub-bands")
    parser.add_argument(
        "--skymodel", required=True, help="sky model (makesourcedb text); its patches are the directions"
    )
    parser.add_argument("--out", required=True, help="merged H5parm to write")
    parser.add_argument("--config", help="YAML config (calibration, chunking, dp3, cluster sections are used)")
    parser.add_argument("--workdir", default="ddpipe-calibrate", help="where chunk parsets/logs/H5parms go")
    parser.add_argument("--workers", type=int, help="local cluster: number of workers")
    parser.add_argument("--threads-per-worker", type=int, help="threads per worker (= DP3 numthreads)")
    parser.add_argument("--scheduler", help="use a running Dask scheduler: tcp://host:port or a scheduler file")
    parser.add_argument("--chunk-duration", type=float, help="seconds per chunk (rounded to whole solints)")
    parser.add_argument("--n-chunks", type=int, help="number of chunks (instead of --chunk-duration)")
    parser.add_argument("--mode", help="ddecal mode (scalarphase, diagonal, ...)")
    parser.add_argument("--solint", type=int, help="time slots per solution")
    parser.add_argument("--nchan", type=int, help="channels per solution (0: whole band)")
    parser.add_argument("--data-column", help="column to calibrate (default DATA)")
    parser.add_argument("--force", action="store_true", help="recompute every chunk")


def overrides_from_args(args: argparse.Namespace) -> dict:
    """CLI options as nested config values (validated like the YAML)."""
    o: dict = {"cluster": {}, "chunking": {}, "calibration": {}, "inputs": {}}
    if args.workers is not None:
        o["cluster"]["n_workers"] = args.workers
    if args.threads_per_worker is not None:
        o["cluster"]["threads_per_worker"] = args.threads_per_worker
    if args.scheduler:
        o["cluster"]["mode"] = "address"
        o["cluster"]["address"] = args.scheduler
    if args.chunk_duration is not None:
        o["chunking"]["duration"] = args.chunk_duration
        o["chunking"]["n_chunks"] = 0
    if args.n_chunks is not None:
        o["chunking"]["n_chunks"] = args.n_chunks
        if args.chunk_duration is None:
            o["chunking"]["duration"] = 0.0
    for key in ("mode", "solint", "nchan"):
        if getattr(args, key) is not None:
            o["calibration"][key] = getattr(args, key)
    if args.data_column:
        o["inputs"]["data_column"] = args.data_column
    # paths given on the command line are the current folder's, whichever folder --config is in
    o["inputs"]["ms"] = [str(Path(p).resolve()) for p in args.ms]
    o["inputs"]["skymodel"] = str(Path(args.skymodel).resolve())
    return {k: v for k, v in o.items() if v}


def run(args: argparse.Namespace) -> int:
    from ddpipe.calibrate import calibrate
    from ddpipe.cluster import open_cluster
    from ddpipe.config import load_config
    from ddpipe.sky.directions import require_directions
    from ddpipe.validation import validate

    cfg = load_config(args.config, overrides_from_args(args))
    validate(cfg, "calibrate")
    workdir = Path(args.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    skymodel, directions = require_directions(cfg.inputs.skymodel, cfg.calibration.n_directions, workdir)
    with open_cluster(cfg.cluster, workdir) as handle:
        result = calibrate(cfg, skymodel, directions, workdir, handle.client, out_h5=Path(args.out), force=args.force)
    print(
        f"{result.solutions}: {len(result.chunks)} chunk(s) ({result.reused} reused), "
        f"{len(result.directions)} direction(s), {result.wall_seconds:.1f} s"
    )
    return 0
