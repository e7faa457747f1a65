#!/usr/bin/env python
"""How fast is ``ddpipe simulate`` on this machine?

Simulates 48 stations × 32 channels × 360 slots of 10 s with 10 sources
(5 directions × 2, DD-corrupted, noise on) and prints the wall time, the time
per stage and visibilities per second (a visibility = one row × one channel,
4 correlations). Target: under 30 s on a 2-core machine. As a reference it also
times ddpipe's per-baseline DFT (``predict_rows``) on the first 20 time slots,
the path the simulator avoids by factorising per station.

Usage: python benchmarks/simulate.py [--stations 48] [--channels 32] [--times 360] [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--stations", type=int, default=48)
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--times", type=int, default=360)
    parser.add_argument("--directions", type=int, default=5)
    parser.add_argument("--sources-per-direction", type=int, default=2)
    parser.add_argument("--keep", metavar="DIR", help="write the MS here and keep it (default: a temp dir)")
    args = parser.parse_args(argv)

    import casacore.tables as pt

    from ddpipe.simulate import SimulationSpec, simulate
    from ddpipe.simulate.predict import components_from_skymodel, predict_rows
    from ddpipe.sky.skymodel import read_skymodel

    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="ddpipe-bench-sim-"))
    folder.mkdir(parents=True, exist_ok=True)
    spec = SimulationSpec(
        stations=args.stations,
        channels=args.channels,
        times=args.times,
        directions=args.directions,
        sources_per_direction=args.sources_per_direction,
        overwrite=True,
    )
    try:
        r = simulate(folder / "bench.ms", spec)
        size = sum(f.stat().st_size for f in r.ms.rglob("*") if f.is_file())
        print(
            f"simulate {r.nstations} stations x {r.nchannels} channels x {r.ntimes} slots x {r.nsources} sources "
            f"({r.ndirections} directions): {r.nrows} rows, {r.nvis} visibilities, MS {size / 1e6:.0f} MB"
        )
        print(
            f"  wall {r.seconds:.2f} s  ->  {r.nvis / r.seconds:.3g} visibilities/s "
            f"({'under' if r.seconds < 30 else 'OVER'} the 30 s target)"
        )
        for stage, sec in r.timings.items():
            print(f"    {stage:<10} {sec:7.2f} s")

        # reference: the per-baseline DFT on the first 20 slots, extrapolated
        nbl, nslot = r.nbaselines, min(20, r.ntimes)
        with pt.table(str(r.ms), ack=False) as t:
            uvw = t.getcol("UVW", 0, nbl * nslot)
        with pt.table(str(r.ms / "SPECTRAL_WINDOW"), ack=False) as t:
            freqs = t.getcell("CHAN_FREQ", 0)
        with pt.table(str(r.ms / "FIELD"), ack=False) as t:
            centre = tuple(t.getcol("PHASE_DIR")[0, 0])
        comps = components_from_skymodel(read_skymodel(r.skymodel), freqs, centre)
        tick = time.perf_counter()
        predict_rows(uvw, freqs, comps)
        per_slot = (time.perf_counter() - tick) / nslot
        print(
            f"  reference: per-baseline DFT (predict_rows, no gains) {per_slot * r.ntimes:.1f} s for all "
            f"{r.ntimes} slots (extrapolated from {nslot}); simulator's predict+corrupt "
            f"{r.timings.get('predict', float('nan')):.1f} s"
        )
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
