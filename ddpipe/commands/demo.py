"""The built-in demo: simulate a direction-dependently corrupted observation and
self-calibrate it on a local Dask cluster.

It simulates a 24-station LOFAR-like MS with 4 directions whose gains wander
with time and frequency (and the same sky without corruption, for reference),
starts from a shallow sky model (the brightest source of each direction, as a
catalogue would give), runs the cycles of configs/demo.yaml, and prints each
cycle's dynamic range next to that of the uncorrupted data. The report is in
WORKDIR/report/index.html.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

HELP = "simulate a DD-corrupted observation and self-calibrate it (the main job)"

SEED = 2026


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", default="ddpipe-demo", help="where everything goes (default ./ddpipe-demo)")
    parser.add_argument("--workers", type=int, default=2, help="local Dask workers (default 2)")
    parser.add_argument("--force", action="store_true", help="recompute everything, simulation included")


def shallow_skymodel(true_sky: Path, out: Path) -> Path:
    """The brightest source of each patch: a catalogue-like starting model."""
    from ddpipe.sky.model import SkyModel
    from ddpipe.sky.skymodel import read_skymodel, write_skymodel

    model = read_skymodel(true_sky)
    keep = []
    for name in model.patch_names():
        srcs = model.sources_in(name)
        if srcs:
            keep.append(max(srcs, key=lambda s: s.i))
    write_skymodel(SkyModel(sources=tuple(keep), patches=model.patches), out)
    return out


def run(args: argparse.Namespace) -> int:
    from ddpipe.commands.run import print_table
    from ddpipe.config import load_config
    from ddpipe.pipeline import run_pipeline
    from ddpipe.simulate.run import simulate
    from ddpipe.simulate.spec import SimulationSpec

    workdir = Path(args.workdir).resolve()
    data = workdir / "data"
    data.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    ms, ref = data / "demo.ms", data / "demo-uncorrupted.ms"
    if args.force or not (ms / "table.dat").exists() or not (ref / "table.dat").exists():
        simulate(ms, SimulationSpec(seed=SEED, overwrite=True))
        simulate(ref, SimulationSpec(seed=SEED, corrupt=False, overwrite=True))
    sky = shallow_skymodel(data / "demo.skymodel", data / "start.skymodel")
    t_sim = time.monotonic() - t0
    demo_yaml = Path(__file__).resolve().parents[1] / "data" / "demo.yaml"
    cfg = load_config(
        demo_yaml,
        {
            "workdir": str(workdir),
            "inputs": {
                "ms": [str(ms)],
                "skymodel": str(sky),
                "reference_ms": [str(ref)],
                "true_gains": str(data / "demo.truth.h5"),
                "true_skymodel": str(data / "demo.skymodel"),
            },
            "cluster": {"n_workers": args.workers},
        },
    )
    summary = run_pipeline(cfg, force=args.force, timings={"simulate": t_sim})
    print_table(summary)
    print(f"demo finished in {time.monotonic() - t0:.0f} s (simulation {t_sim:.1f} s)")
    return 0
