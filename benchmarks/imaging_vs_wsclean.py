#!/usr/bin/env python
"""Benchmark ddpipe's in-process imager against WSClean on the same simulated MS.

Both image the same Measurement Set with the same size, pixel scale,
weighting, CLEAN gain, major-cycle gain and iteration count, two threads each.
Printed:

* wall-time ratios ddpipe / WSClean for a dirty image and a 1000-iteration CLEAN
  (ddpipe in-process, as the pipeline calls it, and as a ``ddpipe image`` command);
  WSClean with ``-use-wgridder`` (the same gridding library, ducc0) and, for
  reference, with its default w-stacking gridder;
* image agreement, max |ddpipe − WSClean| / WSClean peak over the inner quarter,
  for the dirty and the restored images (the restored one also with WSClean
  given ddpipe's restoring beam, since the two fit their beams differently);
* ddpipe's peak memory (max RSS) imaging a small and a large simulated MS, the
  large one several times the size of the biggest image buffer, to show that
  streaming keeps memory bounded.

Nothing is installed: without WSClean the script says how to get it
(``apt-get install -y wsclean``) and exits 2. Timings on a shared machine
vary; each run is repeated (``--repeat``) and the best and median reported.

    python benchmarks/imaging_vs_wsclean.py [--workdir DIR] [--repeat 3] [--skip-memory]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PY = sys.executable


def _wsclean(ms: Path, prefix: Path, args: list[str], gridder: str) -> float:
    cmd = ["wsclean", "-quiet", "-j", "2", "-no-update-model-required", "-name", str(prefix)]
    if gridder == "wgridder":
        cmd.append("-use-wgridder")
    cmd += args + [str(ms)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - t0


def _ws_args(size: int, scale: float, niter: int, mgain: float) -> list[str]:
    args = [
        "-size",
        str(size),
        str(size),
        "-scale",
        f"{scale}asec",
        "-weight",
        "briggs",
        "0",
        "-niter",
        str(niter),
        "-gain",
        "0.1",
    ]
    if niter > 0:
        args += ["-mgain", str(mgain)]
    return args


def _ddpipe_cli(
    ms: Path, prefix: Path, size: int, scale: float, niter: int, mgain: float, extra: list[str] | None = None
) -> tuple[float, int]:
    """Wall time and max RSS (kB) of one ``ddpipe image`` process."""
    argv = [
        PY,
        "-m",
        "ddpipe",
        "image",
        "-q",
        "--ms",
        str(ms),
        "--size",
        str(size),
        "--scale",
        f"{scale}asec",
        "--weight",
        "briggs",
        "0",
        "--niter",
        str(niter),
        "--gain",
        "0.1",
        "--mgain",
        str(mgain),
        "--auto-threshold",
        "0",
        "--threshold",
        "0",
        "--threads",
        "2",
        "--name",
        str(prefix),
        *(extra or []),
    ]
    probe = (
        "import resource, subprocess, sys, time; t = time.perf_counter(); "
        "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL); "
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode)"
    )
    out = subprocess.run([PY, "-c", probe, *argv], check=True, capture_output=True, text=True).stdout.split()
    if out[2] != "0":
        raise RuntimeError(f"ddpipe image failed: {' '.join(argv)}")
    return float(out[0]), int(out[1])


def _agreement(a_path: Path, b_path: Path) -> float:
    from ddpipe.imaging.fitsio import read_image

    a, _ = read_image(a_path)
    b, _ = read_image(b_path)
    n0, n1 = a.shape
    q = (slice(n0 // 4, n0 - n0 // 4), slice(n1 // 4, n1 - n1 // 4))
    return float(np.abs(a[q] - b[q]).max() / np.abs(b[q]).max())


def _stats(values: list[float]) -> str:
    return f"best {min(values):6.2f} s  median {statistics.median(values):6.2f} s"


def _simulate(path: Path, **kw):
    from ddpipe.simulate import SimulationSpec, simulate

    if path.exists():
        from ddpipe.imaging.msdata import describe_ms

        print(f"reusing {path} ({describe_ms(path).nrow} rows)")
        return path
    t0 = time.perf_counter()
    res = simulate(path, SimulationSpec(corrupt=False, **kw))
    print(f"simulated {path}: {res.nrows} rows x {res.nchannels} channels ({time.perf_counter() - t0:.1f} s)")
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, help="where MSs and images go (default: a temp dir, removed)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per timing (default 3)")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--scale", type=float, default=10.0, help="arcsec")
    ap.add_argument("--niter", type=int, default=1000)
    ap.add_argument("--mgain", type=float, default=0.8)
    ap.add_argument("--skip-memory", action="store_true", help="skip the large-MS memory measurement")
    ap.add_argument("--memory-only", action="store_true", help="only the memory measurement")
    args = ap.parse_args(argv)

    if shutil.which("wsclean") is None:
        print(
            "WSClean not found on PATH; this benchmark compares against it. Install it with:\n"
            "    apt-get install -y wsclean      (Debian/Ubuntu, WSClean 3.1)",
            file=sys.stderr,
        )
        return 2
    version = [
        line.strip()
        for line in subprocess.run(["wsclean", "-version"], capture_output=True, text=True).stdout.splitlines()
        if "version" in line
    ]
    tmp = None
    if args.workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="ddpipe-bench-")
        work = Path(tmp.name)
    else:
        work = args.workdir
        work.mkdir(parents=True, exist_ok=True)
    try:
        return _run(args, work, version[0] if version else "WSClean ?")
    finally:
        if tmp is not None:
            tmp.cleanup()


def _run(args, work: Path, version: str) -> int:
    from ddpipe.config import load_config
    from ddpipe.imaging import make_image

    print(
        f"{version}; ddpipe from {Path(__file__).resolve().parent.parent}; "
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
    )
    ms = _simulate(work / "bench.ms")  # the default demo-sized MS: 24 stations, 49,680 rows x 16 channels
    if args.memory_only:
        _memory(args, work, ms)
        return 0
    ws_ms = work / "bench-wsclean.ms"
    if not ws_ms.exists():
        shutil.copytree(ms, ws_ms)  # WSClean opens the MS for writing: give it its own copy
    size, scale = args.size, args.scale
    base = dataclasses.replace(
        load_config().imaging,
        size=(size, size),
        scale=scale,
        weight="briggs",
        robust=0.0,
        gain=0.1,
        mgain=args.mgain,
        threshold=0.0,
        auto_threshold=0.0,
    )
    print(
        f'\nimage {size}x{size} x {scale}", Briggs 0, gain 0.1, mgain {args.mgain}, 2 threads; '
        f"{args.repeat} runs each\n"
    )

    times: dict[str, list[float]] = {}
    results = {}
    for label, niter in (("dirty", 0), ("clean", args.niter)):
        params = dataclasses.replace(base, niter=niter)
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            results[label] = make_image([ms], params, work / f"dd-{label}")
            times.setdefault(f"ddpipe {label}", []).append(time.perf_counter() - t0)
            times.setdefault(f"ddpipe-cli {label}", []).append(
                _ddpipe_cli(ms, work / f"ddcli-{label}", size, scale, niter, args.mgain)[0]
            )
            for gridder in ("wgridder", "wstacking"):
                times.setdefault(f"wsclean-{gridder} {label}", []).append(
                    _wsclean(ws_ms, work / f"ws-{gridder}-{label}", _ws_args(size, scale, niter, args.mgain), gridder)
                )
    for k, v in times.items():
        print(f"  {k:26s} {_stats(v)}")

    print("\nratios ddpipe / WSClean (best of each; target dirty <= 1.0, clean <= 1.5):")
    for label in ("dirty", "clean"):
        for who in ("ddpipe", "ddpipe-cli"):
            for gridder in ("wgridder", "wstacking"):
                r = min(times[f"{who} {label}"]) / min(times[f"wsclean-{gridder} {label}"])
                print(f"  {label:5s}  {who:10s} vs WSClean {gridder:9s}  {r:5.2f}x")

    # agreement (WSClean with the same gridding library)
    beam = results["clean"].beam
    _wsclean(
        ws_ms,
        work / "ws-beam-clean",
        _ws_args(size, scale, args.niter, args.mgain)
        + ["-beam-shape", f"{beam[0] * 3600}", f"{beam[1] * 3600}", f"{beam[2]}"],
        "wgridder",
    )
    from ddpipe.imaging.fitsio import read_image

    _, hw = read_image(work / "ws-wgridder-clean-image.fits")
    print(
        f'\nrestoring beams: ddpipe {beam[0] * 3600:.1f}" x {beam[1] * 3600:.1f}" PA {beam[2]:.1f};  '
        f'WSClean {hw["BMAJ"] * 3600:.1f}" x {hw["BMIN"] * 3600:.1f}" PA {hw["BPA"]:.1f}'
    )
    print("agreement, max |ddpipe - WSClean| / WSClean peak, inner quarter (target <= 1%):")
    rows = [
        ("dirty", results["dirty"].dirty, work / "ws-wgridder-dirty-dirty.fits"),
        ("restored, same beam", results["clean"].image, work / "ws-beam-clean-image.fits"),
        ("restored, own beams", results["clean"].image, work / "ws-wgridder-clean-image.fits"),
        ("residual (vs peak)", results["clean"].residual, work / "ws-beam-clean-residual.fits"),
        ("dirty vs w-stacking", results["dirty"].dirty, work / "ws-wstacking-dirty-dirty.fits"),
    ]
    for name, a, b in rows:
        if name.startswith("residual"):
            ra, _ = read_image(a)
            rb, _ = read_image(b)
            img, _ = read_image(work / "ws-beam-clean-image.fits")
            n = ra.shape[0]
            q = slice(n // 4, n - n // 4)
            value = float(np.abs(ra - rb)[q, q].max() / np.abs(img[q, q]).max())
        else:
            value = _agreement(a, b)
        print(f"  {name:22s} {100 * value:7.3f} %")
    r = results["clean"]
    print(f"  ddpipe: {r.n_iterations} iterations in {r.n_major} major cycles, residual rms {r.rms:.3g} Jy/beam")

    if not args.skip_memory:
        _memory(args, work, ms)
    return 0


def _memory(args, work: Path, small: Path) -> None:
    """Peak RSS of ``ddpipe image`` on MSs from the benchmark's to ~16x the largest image buffer.

    The two large MSs differ only in length (2x the rows): with streaming their
    peak memory is the same, set by the image size and one row block.
    """
    from ddpipe.imaging.msdata import describe_ms

    mss = [
        small,
        _simulate(work / "bench-big.ms", stations=48, times=240, channels=32),
        _simulate(work / "bench-big2.ms", stations=48, times=480, channels=32),
    ]
    size, niter = args.size, min(args.niter, 200)
    # ddpipe's largest image array: the float64 PSF accumulator, twice the image size
    # (ducc0's oversampled uv grid while gridding that PSF is larger still, and also fixed by the image size)
    psf_acc = (2 * size) ** 2 * 8
    print(
        f"\npeak memory of `ddpipe image` (max RSS), {size}x{size}, {niter} iterations, default row block "
        f"and 128 MiB cache; largest image buffer (the 2N PSF accumulator) {psf_acc / 2**20:.0f} MiB:"
    )
    for ms in mss:
        d = describe_ms(ms)
        data = d.nrow * len(d.freq) * 4 * 8
        wall, rss = _ddpipe_cli(ms, work / f"mem-{ms.stem}", size, args.scale, niter, args.mgain)
        print(
            f"  {ms.name:14s} {d.nrow:7d} rows x {len(d.freq):2d} ch, DATA {data / 2**20:6.0f} MiB "
            f"({data / psf_acc:4.1f}x the PSF buffer): peak RSS {rss / 1024:6.0f} MiB, {wall:5.1f} s"
        )


if __name__ == "__main__":
    sys.exit(main())
