"""Comparing solutions with the simulator's true gains."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ddpipe.config import load_config
from ddpipe.solutions.compare import gain_errors


def phase_errors(solutions, truth) -> dict[str, float]:
    """RMS (rad) per direction of solved minus true phase, relative to the first station
    (ddpipe.solutions.compare.gain_errors), keyed as the H5parm names the directions."""
    return {f"[{k}]": v["phase_rms_rad"] for k, v in gain_errors(solutions, truth)["directions"].items()}


def make_cluster(tmp_path: Path, n_workers: int = 2, threads: int = 1):
    from ddpipe.cluster import local_cluster

    base = load_config().cluster
    return local_cluster(dataclasses.replace(base, n_workers=n_workers, threads_per_worker=threads), tmp_path)
