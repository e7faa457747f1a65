#!/usr/bin/env python
"""Multi-frequency deconvolution: 4 output channels against 1, and against WSClean (issue 14).

One wide-band simulated observation, uncorrupted, as LOFAR delivers it: 4 sub-band
MSs of 8 channels over 40 MHz (130-170 MHz), random sources with spectral indices
around -0.8 (``ddpipe simulate --subbands 4``). Every run images all four MSs with
the same size, scale, Briggs 0, gain, major-cycle gain and iteration count (no
threshold, so all do the same number of components), two threads.

Printed, best of ``--repeat`` runs each, measured side by side in this run:

* ddpipe ``channels_out 4`` with ``fit_spectral_pol 2`` / ddpipe ``channels_out 1``
  (target <= 1.5);
* ddpipe ``channels_out 4`` / WSClean ``-channels-out 4 -join-channels
  -fit-spectral-pol 2`` (target <= 1.0), and WSClean's own 4-vs-1 ratio;
* the MFS restored images' residual rms (ddpipe 4 and 1 channels, WSClean 4), and
  the largest difference of each channel's dirty image from WSClean's, relative to
  its peak (target <= 1e-3);
* the spectral index of the sources above 20 sigma, from the components' sky model,
  against the truth.

    python benchmarks/mfs_imaging.py [--workdir DIR] [--repeat 2] [--stations 36 --times 720]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ddpipe.config import load_config
from ddpipe.imaging import make_image
from ddpipe.imaging.fitsio import read_image
from ddpipe.imaging.stats import mad_rms
from ddpipe.quality import spectral_indices
from ddpipe.simulate import SimulationSpec, simulate
from ddpipe.sky.skymodel import read_skymodel

#: 4 sub-bands x 8 channels of 1.25 MHz from 130 MHz: 40 MHz
SUBBANDS = dict(subbands=4, channels=8, chan_width=1.25e6, freq_start=130.625e6)


def _simulate(work: Path, stations: int, times: int) -> tuple[list[Path], Path]:
    ms = work / "wide.ms"
    found = sorted(work.glob("wide_SB*.ms"))
    if len(found) == SUBBANDS["subbands"]:
        print(f"reusing {', '.join(p.name for p in found)}")
        return found, work / "wide.skymodel"
    t0 = time.perf_counter()
    spec = SimulationSpec(stations=stations, times=times, interval=10.0, corrupt=False, **SUBBANDS)
    res = simulate(ms, spec)
    print(
        f"simulated {len(res.ms_paths)} sub-band MSs: {res.nrows} rows x {res.nchannels} channels in all, "
        f"{res.nsources} sources ({time.perf_counter() - t0:.0f} s)"
    )
    return list(res.ms_paths), res.skymodel


def _wsclean(mss: list[Path], prefix: Path, args: list[str]) -> float:
    cmd = ["wsclean", "-quiet", "-j", "2", "-no-update-model-required", "-use-wgridder", "-name", str(prefix)]
    t0 = time.perf_counter()
    subprocess.run([*cmd, *args, *map(str, mss)], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, help="where MSs and images go (default: a temp dir, removed)")
    ap.add_argument("--repeat", type=int, default=2, help="runs per timing (default 2)")
    ap.add_argument("--stations", type=int, default=36)
    ap.add_argument("--times", type=int, default=720, help="10 s slots (default 720: 2 h)")
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--scale", type=float, default=5.0, help="arcsec")
    ap.add_argument("--niter", type=int, default=2000)
    ap.add_argument("--mgain", type=float, default=0.8)
    args = ap.parse_args(argv)
    if shutil.which("wsclean") is None:
        print("WSClean not found on PATH; install it with: apt-get install -y wsclean", file=sys.stderr)
        return 2
    tmp = tempfile.TemporaryDirectory(prefix="ddpipe-mfs-") if args.workdir is None else None
    work = Path(tmp.name) if tmp else args.workdir
    work.mkdir(parents=True, exist_ok=True)
    try:
        return _run(args, work)
    finally:
        if tmp is not None:
            tmp.cleanup()


def _run(args: argparse.Namespace, work: Path) -> int:
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    mss, truth = _simulate(work, args.stations, args.times)
    ws_mss = []
    for p in mss:  # WSClean opens the MSs for writing: its own copies
        copy = work / f"ws-{p.name}"
        if not copy.exists():
            shutil.copytree(p, copy)
        ws_mss.append(copy)
    base = dataclasses.replace(
        load_config().imaging,
        size=(args.size, args.size),
        scale=args.scale,
        weight="briggs",
        robust=0.0,
        niter=args.niter,
        gain=0.1,
        mgain=args.mgain,
        threshold=0.0,
        auto_threshold=0.0,
        threads=2,
    )
    ws_args = ["-size", str(args.size), str(args.size), "-scale", f"{args.scale}asec", "-weight", "briggs", "0"]
    ws_args += ["-niter", str(args.niter), "-gain", "0.1", "-mgain", str(args.mgain)]
    runs = {
        "ddpipe 1 channel": lambda: make_image(mss, base, work / "dd1"),
        "ddpipe 4 channels": lambda: make_image(
            mss, dataclasses.replace(base, channels_out=4, fit_spectral_pol=2), work / "dd4"
        ),
        "WSClean 1 channel": lambda: _wsclean(ws_mss, work / "ws1", ws_args),
        "WSClean 4 channels": lambda: _wsclean(
            ws_mss, work / "ws4", [*ws_args, "-channels-out", "4", "-join-channels", "-fit-spectral-pol", "2"]
        ),
    }
    print(
        f'\n{len(mss)} MSs, image {args.size}x{args.size} x {args.scale}", Briggs 0, {args.niter} iterations, '
        f"mgain {args.mgain}, 2 threads; best of {args.repeat}"
    )
    best: dict[str, float] = {}
    results = {}
    for _ in range(args.repeat):
        for name, fn in runs.items():
            t0 = time.perf_counter()
            out = fn()
            best[name] = min(best.get(name, math.inf), time.perf_counter() - t0)
            if not isinstance(out, float):
                results[name] = out
    for name, t in best.items():
        extra = ""
        if name in results:
            r = results[name]
            extra = f"  ({r.n_major} major cycles; minor {r.timings['minor']:.1f} s, major {r.timings['major']:.1f} s)"
        print(f"  {name:20s} {t:7.1f} s{extra}")
    dd4, dd1 = best["ddpipe 4 channels"], best["ddpipe 1 channel"]
    ws4, ws1 = best["WSClean 4 channels"], best["WSClean 1 channel"]
    print("\nratios:")
    print(f"  ddpipe 4 channels / ddpipe 1 channel      {dd4 / dd1:5.2f}x  (target <= 1.5)")
    print(f"  ddpipe 4 channels / WSClean 4 channels    {dd4 / ws4:5.2f}x  (target <= 1.0)")
    print(f"  WSClean 4 channels / WSClean 1 channel    {ws4 / ws1:5.2f}x")
    print(f"  ddpipe 1 channel / WSClean 1 channel      {dd1 / ws1:5.2f}x")
    _quality(work, results, truth)
    return 0


def _quality(work: Path, results: dict, truth: Path) -> None:
    print("\nMFS residual rms (Jy/beam):")
    for name, path in (
        ("ddpipe 1 channel", work / "dd1-residual.fits"),
        ("ddpipe 4 channels", work / "dd4-MFS-residual.fits"),
        ("WSClean 1 channel", work / "ws1-residual.fits"),
        ("WSClean 4 channels", work / "ws4-MFS-residual.fits"),
    ):
        print(f"  {name:20s} {mad_rms(read_image(path)[0]):.3g}")
    print("channel dirty images, max |ddpipe - WSClean| / WSClean peak, inner quarter (target <= 1e-3):")
    for part in ("0000", "0001", "0002", "0003", "MFS"):
        a, _ = read_image(work / f"dd4-{part}-dirty.fits")
        b, _ = read_image(work / f"ws4-{part}-dirty.fits")
        n = a.shape[0]
        q = slice(n // 4, n - n // 4)
        print(f"  {part:5s} {np.abs(a - b)[q, q].max() / np.abs(b[q, q]).max():.2e}")
    r4 = results["ddpipe 4 channels"]
    # the components within a beam (FWHM) of each source, as ddpipe.quality sums them; between the outer
    # output channels' centres (a 2-term polynomial extrapolated to the band's edges flattens a power law)
    beam = math.radians(r4.beam[0])
    found = spectral_indices(read_skymodel(r4.skymodel), read_skymodel(truth), r4.rms, beam, (135e6, 165e6))
    if found:
        err = np.array([abs(e["recovered"] - e["true"]) for e in found])
        print(
            f"spectral index of the {len(found)} point sources above 20 sigma (components within a beam): "
            f"|error| median {np.median(err):.3f}, max {err.max():.3f} (target <= 0.1)"
        )
        for e in found:
            print(f"  {e['name']:10s} true {e['true']:+.3f}  recovered {e['recovered']:+.3f}")


if __name__ == "__main__":
    sys.exit(main())
