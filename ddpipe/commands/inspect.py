"""Inspect Measurement Sets: antennas, baselines, times, band, correlations, phase centre,
data columns and flagged fraction, as a readable report or JSON (--json).

Bad input (a missing path, something that is not an MS, a missing data column,
an empty MS, several fields or spectral windows) ends with one line and exit 2.
"""

from __future__ import annotations

import argparse
import json
import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ddpipe.ms.info import MSInfo

HELP = "show what ddpipe reads from Measurement Sets (report or --json)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ms", nargs="+", metavar="MS", help="Measurement Set(s)")
    parser.add_argument("--json", action="store_true", help="print one JSON list, one object per MS")
    parser.add_argument(
        "--data-column", default="DATA", metavar="COL", help="visibility column to check (default DATA)"
    )
    parser.add_argument(
        "--no-flags", action="store_true", help="skip reading FLAG (faster on a big MS; no flagged fraction)"
    )


def run(args: argparse.Namespace) -> int:
    from ddpipe.ms.inspect import inspect_ms

    infos = [inspect_ms(p, data_column=args.data_column, flag_stats=not args.no_flags) for p in args.ms]
    if args.json:
        print(json.dumps([i.to_dict() for i in infos], indent=2))
    else:
        print("\n\n".join(format_report(i) for i in infos))
    return 0


def format_report(info: MSInfo) -> str:
    """A readable multi-line report of one :class:`~ddpipe.ms.info.MSInfo`."""
    f0, f1 = info.freq_range
    ra_d, dec_d = info.phase_centre_deg
    ra_s, dec_s = info.phase_centre_sexagesimal
    gaps = f" ({info.n_missing_slots} missing in {len(info.gaps)} gap(s))" if info.gaps else ""
    if info.flagged_fraction is None:
        flags = "not read (--no-flags)"
    else:
        flags = f"{100 * info.flagged_fraction:.2f}% of visibilities, {100 * info.flag_row_fraction:.2f}% of rows"
        if info.all_flagged:
            flags += "  <- EVERYTHING FLAGGED: nothing to calibrate or image"
    names = ", ".join(info.antenna_names[:8]) + (", ..." if info.n_antennas > 8 else "")
    chan_w = info.chan_widths[0] if len(set(info.chan_widths)) == 1 else math.nan
    lines = [
        f"{info.path}",
        f"  telescope      {info.telescope}",
        f"  rows           {info.n_rows}",
        f"  antennas       {info.n_antennas}: {names}",
        f"  baselines      {info.n_baselines} cross-correlation"
        + (" + autocorrelations" if info.has_autocorrelations else " (no autocorrelations)"),
        f"  time           {info.time_first_utc} .. {info.time_last_utc} UTC "
        f"(MJD s {info.time_first:.3f} .. {info.time_last:.3f})",
        f"  integration    {info.interval:.6g} s; {info.n_times} time(s), {info.n_slots} slot(s){gaps}, "
        f"{info.duration:.6g} s",
        f"  channels       {info.n_chan} x {chan_w / 1e3:.6g} kHz"
        if not math.isnan(chan_w)
        else f"  channels       {info.n_chan} (unequal widths)",
        f"  band           {f0 / 1e6:.6f} .. {f1 / 1e6:.6f} MHz (ref {info.ref_frequency / 1e6:.6f} MHz)",
        f"  correlations   {' '.join(info.correlations)}",
        f"  phase centre   {ra_s} {dec_s} {info.phase_centre_frame} "
        f"({ra_d:.6f} deg, {dec_d:.6f} deg; field {info.field_name or '-'})",
        f"  data columns   {', '.join(info.data_columns) or 'none'} (using {info.data_column})",
        f"  weights        {'WEIGHT_SPECTRUM' if info.has_weight_spectrum else 'WEIGHT only'}",
        f"  flagged        {flags}",
    ]
    return "\n".join(lines)
