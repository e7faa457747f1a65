"""Plan the time chunks calibration will use on each MS: one DP3 run per chunk,
selected with msin.starttime / msin.ntimes, edges on solution-interval
boundaries. Give exactly one of --chunk-duration and --n-chunks. DP3 reads each
chunk after the first from --lead-in solution intervals earlier (chunking.lead_in)
and ddpipe drops those intervals' solutions: the table shows both.
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
    parser.add_argument(
        "--lead-in",
        type=int,
        default=None,
        metavar="N",
        help="solution intervals DP3 solves before each chunk and ddpipe drops (default: chunking.lead_in's default)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    from ddpipe.config import load_config
    from ddpipe.errors import UserError
    from ddpipe.ms.chunks import chunk_time_range, plan_chunks
    from ddpipe.ms.info import mjd_seconds_to_iso
    from ddpipe.ms.inspect import inspect_ms

    lead_in = load_config(None).chunking.lead_in if args.lead_in is None else args.lead_in
    if lead_in < 0:
        raise UserError(f"--lead-in {lead_in}: must be >= 0 (solution intervals)")
    out = []
    tables = []
    for path in args.ms:
        info = inspect_ms(path, flag_stats=False)
        chunks = plan_chunks(info, duration=args.chunk_duration or 0.0, n_chunks=args.n_chunks or 0, solint=args.solint)
        rows = []
        for c in chunks:
            lo, hi = chunk_time_range(c, info)
            read = c.with_lead_in(lead_in * args.solint)
            rows.append(
                {
                    "index": c.index,
                    "start_slot": c.start_slot,
                    "n_slots": c.n_slots,
                    "start_time": c.start_time,
                    "start_utc": mjd_seconds_to_iso(c.start_time),
                    "duration": c.duration,
                    "time_range": [lo, hi],
                    "lead_slots": c.start_slot - read.start_slot,
                    "dp3_msin": read.dp3_msin(),  # what DP3 reads: the lead-in, then the chunk
                }
            )
        out.append(
            {
                "ms": info.path,
                "n_slots": info.n_slots,
                "interval": info.interval,
                "solint": args.solint,
                "lead_in": lead_in,
                "chunks": rows,
            }
        )
        lines = [
            f"{info.path}: {info.n_slots} slots of {info.interval:.6g} s, solint {args.solint}, "
            f"{len(chunks)} chunk(s)"
            + (f", {info.n_missing_slots} slot(s) without data" if info.gaps else "")
            + f"; DP3 reads {lead_in} solution interval(s) before each chunk, then drops them",
            f"  {'index':>5}  {'start (UTC)':<23}  {'first slot':>10}  {'slots':>6}  {'seconds':>10}  "
            f"{'DP3 from slot':>13}",
        ]
        lines += [
            f"  {r['index']:>5}  {r['start_utc']:<23}  {r['start_slot']:>10}  {r['n_slots']:>6}  "
            f"{r['duration']:>10.3f}  {r['start_slot'] - r['lead_slots']:>13}"
            for r in rows
        ]
        tables.append("\n".join(lines))
    print(json.dumps(out, indent=2) if args.json else "\n\n".join(tables))
    return 0
