#!/usr/bin/env python
"""Benchmark ddpipe's facet imaging against WSClean 3.1's facet mode (issue 10).

For each direction count (default 4, 8 and 16) one observation is simulated
with ``ddpipe simulate`` (default the issue's size: 36 stations x 720 times of
10 s x 32 channels, about 0.75 GB) and imaged four ways, one after the other,
each as its own process with the same image and CLEAN settings (2048² at 5",
Briggs 0, 2000 iterations, auto-threshold 3, mgain 0.8, gain 0.1, 2 threads,
column DATA):

(a) ``ddpipe image --h5parm TRUTH --skymodel SKY``: facet imaging with the
    simulator's true gains (so that imaging alone is measured, not
    calibration), facets centred on the sky model's patches;
(b) ``wsclean -facet-regions F.reg -apply-facet-solutions TRUTH phase000``
    with the same facets, written by ``ddpipe facets``;
(c) ``ddpipe image --no-facets``: plain imaging;
(d) ``wsclean`` plain.

Measured per run: wall time of the process, its peak memory (``ru_maxrss``
from ``os.wait4``), the residual rms (MAD of the residual image's inner
quarter, i.e. the central half in each axis) and the CLEAN iterations and
major cycles done (FITS keywords). Printed: a table and the ratios the issue
asks for, each with its target:

* time ddpipe facet / WSClean facet (≤ 1.0), and their residual rms;
* time ddpipe facet / ddpipe plain at 8 directions (≤ 3);
* ddpipe facet time at 16 / at 4 directions (≤ 1.5);
* time ddpipe plain / WSClean plain (≤ 1.0);
* peak RSS ddpipe plain / WSClean plain (≤ 1.3).

Everything printed is also written to ``WORKDIR/results.json``. WSClean runs
with its default gridder (what users run; ``--wsclean-wgridder`` for the one
ddpipe uses). Timings on a shared machine vary: note the load average printed.

    python benchmarks/facet_imaging.py [--workdir DIR] [--directions 4 8 16] [--small] [--keep]

``--small`` is a smoke run of a minute or two (16 stations x 60 times x 8
channels, 512² at 20", the same field). Without ``--keep`` each observation's
MS and images are deleted once measured; the logs, region files and
``results.json`` stay. A kept MS is reused by a later run with the same sizes.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

PY = sys.executable

#: The issue's observation and image; --small keeps the field (size x scale) and shrinks the rest.
FULL = dict(stations=36, times=720, interval=10.0, channels=32, size=2048, scale=5.0)
SMALL = dict(stations=16, times=60, interval=10.0, channels=8, size=512, scale=20.0)
CLEAN = dict(weight="0", niter=2000, auto_threshold=3.0, mgain=0.8, gain=0.1, threads=2)

RUNS = ("ddpipe facet", "WSClean facet", "ddpipe plain", "WSClean plain")


@dataclass
class Measured:
    """One imaging run: what it cost and what it left."""

    label: str
    seconds: float
    max_rss_mib: float
    returncode: int
    log: str
    residual_rms: float | None = None  # Jy/beam, MAD of the inner quarter
    minor: int | None = None
    major: int | None = None


def run_measured(label: str, argv: list[str], log: Path) -> Measured:
    """Run ``argv`` with its output to ``log``; wall time, peak RSS (MiB) and exit code of that process."""
    with open(log, "w") as fh:
        fh.write(f"$ {shlex.join(argv)}\n")
        fh.flush()
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT)
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4: tell Popen
    return Measured(label, seconds, usage.ru_maxrss / 1024.0, proc.returncode, str(log))


def residual_stats(prefix: Path, m: Measured) -> None:
    """Fill ``m`` from PREFIX-residual.fits: MAD rms of the inner quarter, iterations, major cycles."""
    from astropy.io import fits

    with fits.open(f"{prefix}-residual.fits") as hdul:
        data = np.asarray(hdul[0].data, dtype=np.float64).squeeze()
        head = hdul[0].header
    ny, nx = data.shape
    q = data[ny // 4 : ny - ny // 4, nx // 4 : nx - nx // 4]
    m.residual_rms = float(1.4826 * np.median(np.abs(q - np.median(q))))
    for key, attr in (("MINOR", "minor"), ("MAJOR", "major")):
        for prefix_key in ("DDP", "WSC"):
            if prefix_key + key in head:
                setattr(m, attr, int(head[prefix_key + key]))


def simulate(dirpath: Path, sizes: dict, ndir: int, seed: int) -> tuple[Path, Path, Path, float]:
    """``ddpipe simulate`` into ``dirpath/sim.ms`` (reused when a kept one has the same sizes)."""
    ms, sky, truth = dirpath / "sim.ms", dirpath / "sim.skymodel", dirpath / "sim.truth.h5"
    spec = dict(
        stations=sizes["stations"],
        times=sizes["times"],
        interval=sizes["interval"],
        channels=sizes["channels"],
        directions=ndir,
        seed=seed,
    )
    marker = dirpath / "sim.json"
    if (
        ms.is_dir()
        and sky.is_file()
        and truth.is_file()
        and marker.is_file()
        and json.loads(marker.read_text()) == spec
    ):
        print(f"  reusing {ms}")
        return ms, sky, truth, 0.0
    argv = [PY, "-m", "ddpipe", "simulate", str(ms), "--overwrite", "-q"]
    for key, value in spec.items():
        argv += [f"--{key}", f"{value:g}" if isinstance(value, float) else str(value)]
    t0 = time.perf_counter()
    r = subprocess.run(argv, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"simulation failed ({shlex.join(argv)}):\n{r.stderr[-2000:]}")
    seconds = time.perf_counter() - t0
    marker.write_text(json.dumps(spec))
    print(f"  simulated {ms} in {seconds:.1f} s")
    return ms, sky, truth, seconds


def ddpipe_argv(ms: Path, prefix: Path, sizes: dict, extra: list[str]) -> list[str]:
    """``ddpipe image`` as a user types it, with the benchmark's settings."""
    c = CLEAN
    return [
        PY,
        "-m",
        "ddpipe",
        "image",
        "--ms",
        str(ms),
        "--name",
        str(prefix),
        "--data-column",
        "DATA",
        "--size",
        str(sizes["size"]),
        "--scale",
        f"{sizes['scale']:g}asec",
        "--weight",
        "briggs",
        c["weight"],
        "--niter",
        str(c["niter"]),
        "--auto-threshold",
        f"{c['auto_threshold']:g}",
        "--mgain",
        f"{c['mgain']:g}",
        "--gain",
        f"{c['gain']:g}",
        "--threads",
        str(c["threads"]),
        *extra,
    ]


def wsclean_argv(ms: Path, prefix: Path, sizes: dict, extra: list[str], wgridder: bool) -> list[str]:
    """WSClean 3.1 with the same settings (and ``-no-update-model-required``: it would write MODEL_DATA)."""
    c = CLEAN
    n = str(sizes["size"])
    return [
        "wsclean",
        "-j",
        str(c["threads"]),
        "-no-update-model-required",
        "-data-column",
        "DATA",
        "-temp-dir",
        str(prefix.parent),
        "-name",
        str(prefix),
        "-size",
        n,
        n,
        "-scale",
        f"{sizes['scale']:g}asec",
        "-weight",
        "briggs",
        c["weight"],
        "-niter",
        str(c["niter"]),
        "-auto-threshold",
        f"{c['auto_threshold']:g}",
        "-mgain",
        f"{c['mgain']:g}",
        "-gain",
        f"{c['gain']:g}",
        *(["-use-wgridder"] if wgridder else []),
        *extra,
        str(ms),
    ]


def bench_directions(work: Path, ndir: int, sizes: dict, args: argparse.Namespace) -> dict:
    """Simulate one observation with ``ndir`` directions and image it the four ways."""
    from ddpipe.cli import main as ddpipe_main

    d = work / f"dirs{ndir:02d}"
    d.mkdir(parents=True, exist_ok=True)
    print(f"\n{ndir} directions:")
    ms, sky, truth, sim_seconds = simulate(d, sizes, ndir, args.seed)
    reg = d / "facets.reg"
    rc = ddpipe_main(
        [
            "facets",
            "--ms",
            str(ms),
            "--skymodel",
            str(sky),
            "--h5parm",
            str(truth),
            "-q",
            "--size",
            str(sizes["size"]),
            "--scale",
            f"{sizes['scale']:g}asec",
            "--out",
            str(reg),
        ]
    )
    if rc != 0:
        raise SystemExit(f"ddpipe facets failed (exit {rc}) for {ms}")
    plan = {
        "ddpipe facet": ddpipe_argv(ms, d / "dd-facet", sizes, ["--h5parm", str(truth), "--skymodel", str(sky)]),
        "WSClean facet": wsclean_argv(
            ms,
            d / "ws-facet",
            sizes,
            ["-facet-regions", str(reg), "-apply-facet-solutions", str(truth), "phase000"],
            args.wsclean_wgridder,
        ),
        "ddpipe plain": ddpipe_argv(ms, d / "dd-plain", sizes, ["--no-facets"]),
        "WSClean plain": wsclean_argv(ms, d / "ws-plain", sizes, [], args.wsclean_wgridder),
    }
    out = {}
    for label, argv in plan.items():
        prefix = Path(argv[argv.index("--name" if label.startswith("ddpipe") else "-name") + 1])
        m = run_measured(label, argv, d / f"{prefix.name}.log")
        if m.returncode == 0:
            residual_stats(prefix, m)
            print(
                f"  {label:14s} {m.seconds:8.1f} s  {m.max_rss_mib:7.0f} MiB  residual rms "
                f"{1e3 * m.residual_rms:.3f} mJy/beam"
            )
        else:
            tail = Path(m.log).read_text().splitlines()[-5:]
            print(f"  {label:14s} FAILED (exit {m.returncode}), see {m.log}:\n    " + "\n    ".join(tail))
        out[label] = m
    if not args.keep:
        shutil.rmtree(ms, ignore_errors=True)
        for f in [*d.glob("*.fits"), *d.glob("*-sources.txt")]:
            f.unlink()
    return {"simulate_seconds": sim_seconds, "runs": out}


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def ratios(results: dict[int, dict]) -> list[dict]:
    """The issue's ratios: ``name, directions, value, target`` (None where a run is missing or failed)."""

    def get(n: int, label: str, attr: str) -> float | None:
        m = results.get(n, {}).get("runs", {}).get(label)
        return getattr(m, attr) if m is not None and m.returncode == 0 else None

    rows = []
    for n in sorted(results):
        rows.append(
            dict(
                name="time ddpipe facet / WSClean facet",
                directions=n,
                target=1.0,
                value=_ratio(get(n, "ddpipe facet", "seconds"), get(n, "WSClean facet", "seconds")),
            )
        )
        rows.append(
            dict(
                name="residual rms ddpipe facet / WSClean facet",
                directions=n,
                target=None,
                value=_ratio(get(n, "ddpipe facet", "residual_rms"), get(n, "WSClean facet", "residual_rms")),
            )
        )
    rows.append(
        dict(
            name="time ddpipe facet / ddpipe plain",
            directions=8,
            target=3.0,
            value=_ratio(get(8, "ddpipe facet", "seconds"), get(8, "ddpipe plain", "seconds")),
        )
    )
    rows.append(
        dict(
            name="time ddpipe facet, 16 / 4 directions",
            directions=None,
            target=1.5,
            value=_ratio(get(16, "ddpipe facet", "seconds"), get(4, "ddpipe facet", "seconds")),
        )
    )
    for n in sorted(results):
        rows.append(
            dict(
                name="time ddpipe plain / WSClean plain",
                directions=n,
                target=1.0,
                value=_ratio(get(n, "ddpipe plain", "seconds"), get(n, "WSClean plain", "seconds")),
            )
        )
    for n in sorted(results):
        rows.append(
            dict(
                name="peak RSS ddpipe plain / WSClean plain",
                directions=n,
                target=1.3,
                value=_ratio(get(n, "ddpipe plain", "max_rss_mib"), get(n, "WSClean plain", "max_rss_mib")),
            )
        )
    return rows


def print_report(results: dict[int, dict], rows: list[dict]) -> None:
    print(f"\n{'dirs':>4}  {'run':14s} {'wall s':>8} {'peak MiB':>9} {'rms mJy/beam':>13} {'minor':>6} {'major':>5}")
    for n in sorted(results):
        for label in RUNS:
            m = results[n]["runs"][label]
            if m.returncode != 0:
                print(f"{n:4d}  {label:14s} {'failed, exit ' + str(m.returncode):>8}")
                continue
            print(
                f"{n:4d}  {label:14s} {m.seconds:8.1f} {m.max_rss_mib:9.0f} {1e3 * m.residual_rms:13.3f} "
                f"{m.minor if m.minor is not None else '?':>6} {m.major if m.major is not None else '?':>5}"
            )
    print("\nratios (target):")
    for r in rows:
        where = f"{r['directions']:2d} dirs" if r["directions"] else "        "
        if r["value"] is None:
            missing = r["directions"] not in results
            text, verdict = "   n/a", "(needs that direction count)" if missing else "(a run failed)"
        else:
            text = f"{r['value']:6.2f}"
            verdict = "" if r["target"] is None else ("ok" if r["value"] <= r["target"] else "MISSED")
        target = f"<= {r['target']:g}" if r["target"] is not None else "lower is better for ddpipe"
        print(f"  {r['name']:42s} {where}  {text}  ({target}) {verdict}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--workdir", type=Path, help="where MSs, images, logs and results.json go (default: a new temp dir)"
    )
    ap.add_argument("--directions", type=int, nargs="+", default=[4, 8, 16], help="direction counts (default 4 8 16)")
    ap.add_argument("--small", action="store_true", help='a smoke run: 16 stations x 60 x 8 channels, 512x512 at 20"')
    ap.add_argument("--keep", action="store_true", help="keep the simulated MSs and the images")
    ap.add_argument("--seed", type=int, default=1, help="simulation seed (default 1)")
    ap.add_argument(
        "--wsclean-wgridder",
        action="store_true",
        help="give WSClean -use-wgridder (ducc0, as ddpipe) instead of its default w-stacking gridder",
    )
    args = ap.parse_args(argv)
    if shutil.which("wsclean") is None:
        print(
            "WSClean not found on PATH; this benchmark compares against it. Install it with:\n"
            "    apt-get install -y wsclean      (Debian/Ubuntu, WSClean 3.1)",
            file=sys.stderr,
        )
        return 2
    if any(n < 1 for n in args.directions):
        ap.error("--directions: counts must be at least 1")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="ddpipe-facet-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    sizes = SMALL if args.small else FULL
    version = next(
        (
            ln.strip()
            for ln in subprocess.run(["wsclean", "-version"], capture_output=True, text=True).stdout.splitlines()
            if "version" in ln
        ),
        "?",
    )
    load = os.getloadavg()[0]
    print(
        f"{version}; ddpipe from {Path(__file__).resolve().parent.parent}; load average "
        f"{load:.2f} on {os.cpu_count()} cores; workdir {work}"
    )
    print(
        f"observation {sizes['stations']} stations x {sizes['times']} x {sizes['interval']:g} s x "
        f'{sizes["channels"]} channels; image {sizes["size"]}x{sizes["size"]} at {sizes["scale"]:g}", Briggs '
        f"{CLEAN['weight']}, niter {CLEAN['niter']}, auto-threshold {CLEAN['auto_threshold']:g}, mgain "
        f"{CLEAN['mgain']:g}, gain {CLEAN['gain']:g}, {CLEAN['threads']} threads; WSClean gridder "
        f"{'wgridder' if args.wsclean_wgridder else 'default (w-stacking)'}"
    )
    results = {n: bench_directions(work, n, sizes, args) for n in dict.fromkeys(args.directions)}
    rows = ratios(results)
    print_report(results, rows)
    report = {
        "wsclean": version,
        "sizes": sizes,
        "clean": CLEAN,
        "seed": args.seed,
        "small": args.small,
        "wsclean_wgridder": args.wsclean_wgridder,
        "load_average": [load, os.getloadavg()[0]],
        "directions": {
            str(n): {"simulate_seconds": r["simulate_seconds"], "runs": {k: asdict(m) for k, m in r["runs"].items()}}
            for n, r in results.items()
        },
        "ratios": rows,
    }
    path = work / "results.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten {path}")
    failed = [m for r in results.values() for m in r["runs"].values() if m.returncode != 0]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
