"""Comparing solutions with the simulator's true gains."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ddpipe.config import load_config

from ddpipe.solutions.compare import phase_rms_vs_truth


def phase_errors(solutions, truth, ref_antenna: int = 0) -> dict[str, float]:
    """RMS (rad) per direction of solved minus true phase (see ddpipe.solutions.compare)."""
    return phase_rms_vs_truth(solutions, truth, ref_antenna)


def make_cluster(tmp_path: Path, n_workers: int = 2, threads: int = 1):
    from ddpipe.cluster import local_cluster

    base = load_config().cluster
    return local_cluster(dataclasses.replace(base, n_workers=n_workers, threads_per_worker=threads), tmp_path)
