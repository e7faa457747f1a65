#!/usr/bin/env python
"""What does TLS cost the local cluster?

`cluster.security.tls` is on by default in every mode, local included (a loopback
scheduler is reachable by every user of a shared login node). This measures the price,
side by side in one run, alternating the two settings so that the machine's noise falls
on both:

1. cluster start + close (``open_cluster``) with TLS and with plain TCP;
2. the whole demo pipeline (``ddpipe run`` of ``configs/demo.yaml`` on a simulated
   demo-sized MS: 3 self-cal cycles, 4 DP3 chunks each, the images as Dask tasks whose
   grids come back over the wire) with TLS and with plain TCP.

Prints each median and the ratio TLS / plain TCP (target: no measurable cost, i.e.
within the run-to-run spread).

Usage: python benchmarks/cluster_tls.py [--repeats 2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from ddpipe.cluster import open_cluster
from ddpipe.config import load_config

REPO = Path(__file__).resolve().parents[1]


def cluster_start(tls: bool, workdir: Path) -> float:
    cfg = load_config().cluster
    cfg = dataclasses.replace(cfg, security=dataclasses.replace(cfg.security, tls=tls))
    t0 = time.perf_counter()
    with open_cluster(cfg, workdir) as handle:
        handle.client.submit(sum, [1], pure=False).result()
    return time.perf_counter() - t0


def pipeline(tls: bool, folder: Path, ms: Path, i: int) -> float:
    config = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    config["inputs"] = {"ms": [str(ms)], "skymodel": str(ms.with_suffix(".skymodel"))}
    config["workdir"] = str(folder / f"run-{'tls' if tls else 'tcp'}-{i}")
    config.setdefault("cluster", {})["security"] = {"tls": tls}
    path = folder / f"cfg-{'tls' if tls else 'tcp'}-{i}.yaml"
    path.write_text(yaml.safe_dump(config))
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ddpipe", "run", str(path), "-q"], check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--keep", type=Path, default=None, help="work here and keep the files")
    args = ap.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="ddpipe-tls-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        ms = folder / "demo.ms"
        subprocess.run([sys.executable, "-m", "ddpipe", "simulate", str(ms), "--overwrite", "-q"], check=True)
        starts: dict[bool, list[float]] = {True: [], False: []}
        runs: dict[bool, list[float]] = {True: [], False: []}
        for i in range(args.repeats * 3):
            for tls in (i % 2 == 0, i % 2 != 0):  # alternate which goes first
                starts[tls].append(cluster_start(tls, folder / "start"))
        for i in range(args.repeats):
            for tls in (i % 2 == 0, i % 2 != 0):
                runs[tls].append(pipeline(tls, folder, ms, i))
                print(f"  pipeline {'TLS' if tls else 'TCP'} run {i + 1}: {runs[tls][-1]:.1f} s", flush=True)
        for what, d in (("cluster start+close", starts), ("demo pipeline (3 cycles)", runs)):
            tls, tcp = statistics.median(d[True]), statistics.median(d[False])
            spread = max(d[False]) - min(d[False])
            print(
                f"{what:26s} TLS {tls:7.2f} s  plain TCP {tcp:7.2f} s  ratio {tls / tcp:.3f}  "
                f"(TCP run-to-run spread {spread:.2f} s, n={len(d[True])})"
            )
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
