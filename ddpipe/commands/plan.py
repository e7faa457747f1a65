"""Plan the time chunks calibration will use on each MS: one DP3 run per chunk,
selected with msin.starttimeslot / msin.ntimes, edges on solution-interval
boundaries. Give exactly one of --chunk-duration and --n-chunks.
"""

from __future__ import annotations

import argparse
import json

HELP = "show the time chunks of a Measurement Set (--chunk-duration S | --n-chunks N)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ms", nargs="+", metavar="MS", help="Measurement Set(s)")
    how = parser.add_mutually_exclusive_group(required=True)
    how.add_argument("--chunk-duration", type=float, metavar="S", help="seconds per chunk")
    how.add_argument("--n-chunks", type=int, metavar="N", help="number of chunks")
    parser.add_argument(
        "--solint", type=int, default=1, metavar="N", help="time slots per solution interval (default 1)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    from ddpipe.ms.chunks import chunk_time_range, plan_chunks
    from ddpipe.ms.info import mjd_seconds_to_iso
    from ddpipe.ms.inspect import inspect_ms

    out = []
    tables = []
    for path in args.ms:
        info = inspect_ms(path, flag_stats=False)
        chunks = plan_chunks(
            info, duration=args.chunk_duration or 0.0, n_chunks=args.n_chunks or 0, solint=args.solint
        )
        rows = []
        for c in chunks:
            lo, hi = chunk_time_range(c, info)
            rows.append(
                {
                    "index": c.index,
                    "start_slot": c.start_slot,
                    "n_slots": c.n_slots,
                    "start_time": c.start_time,
                    "start_utc": mjd_seconds_to_iso(c.start_time),
                    "duration": c.duration,
                    "time_range": [lo, hi],
                    "dp3_msin": c.dp3_msin(),
                }
            )
        out.append({"ms": info.path, "n_slots": info.n_slots, "interval": info.interval,
                    "solint": args.solint, "chunks": rows})
        lines = [
            f"{info.path}: {info.n_slots} slots of {info.interval:.6g} s, solint {args.solint}, "
            f"{len(chunks)} chunk(s)" + (f", {info.n_missing_slots} slot(s) without data" if info.gaps else ""),
            f"  {'index':>5}  {'start (UTC)':<23}  {'first slot':>10}  {'slots':>6}  {'seconds':>10}",
        ]
        lines += [
            f"  {r['index']:>5}  {r['start_utc']:<23}  {r['start_slot']:>10}  {r['n_slots']:>6}  "
            f"{r['duration']:>10.3f}"
            for r in rows
        ]
        tables.append("\n".join(lines))
    print(json.dumps(out, indent=2) if args.json else "\n\n".join(tables))
    return 0
