"""Helpers of the report tests (a module of its own: ``conftest`` is a name every test folder has, so
importing from it picks whichever folder's was loaded first)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import yaml

from ddpipe.imaging.beam import Beam
from ddpipe.imaging.fitsio import ImageGeometry, write_image


def run_config(obs: dict[str, Path], workdir: Path, **over) -> Path:
    """A 2-cycle pipeline config on ``obs`` with the truth given: 4 chunks on 2 workers, 256 px images."""
    cfg = {
        "inputs": {
            "ms": [str(obs["ms"])],
            "skymodel": str(obs["start"]),
            "true_gains": str(obs["truth"]),
            "true_skymodel": str(obs["sky"]),
        },
        "workdir": str(workdir),
        "cluster": {"n_workers": 2, "threads_per_worker": 1},
        "chunking": {"duration": 0, "n_chunks": 4},
        "calibration": {"mode": "scalarphase", "solint": 2, "n_directions": 3},
        "imaging": {"size": [256, 256], "scale": 20.0, "niter": 200},
        "cycles": [{}, {}],
    }
    cfg.update(over)
    path = workdir.parent / f"{workdir.name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def write_sky_fits(path: Path, sources: list[tuple[float, float, float]], noise: float = 0.01, seed: int = 1) -> Path:
    """A 128² restored image written as ``ddpipe image`` writes it (SIN projection, beam in the header):
    Gaussian sources ``(dx_pixels, dy_pixels, peak_jy)`` about the centre plus Gaussian noise."""
    n, cell = 128, math.radians(20 / 3600)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:n, 0:n]
    data = rng.normal(0, noise, (n, n))
    for dx, dy, peak in sources:
        data += peak * np.exp(-0.5 * ((xx - n // 2 - dx) ** 2 + (yy - n // 2 - dy) ** 2) / 1.5**2)
    geom = ImageGeometry((n, n), cell, (math.radians(110.0), math.radians(50.0)), 150e6, 1e6)
    return write_image(path, data, geom, beam=Beam(60 / 3600, 40 / 3600, 30.0))
