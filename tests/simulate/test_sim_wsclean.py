"""WSClean reads a simulated MS and puts the sources where the sky model says (signs, UVW, phase centre)."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from ddpipe.simulate import SimulationSpec, simulate
from ddpipe.sky.skymodel import read_skymodel

pytestmark = [pytest.mark.wsclean, pytest.mark.filterwarnings("ignore:.datfix. made the change")]


def test_wsclean_dirty_image_peaks_on_the_brightest_source(tmp_path, wsclean):
    spec = SimulationSpec(
        stations=16,
        channels=4,
        times=60,
        interval=20.0,
        directions=3,
        sources_per_direction=2,
        noise=0.0,
        corrupt=False,
        seed=8,
    )
    r = simulate(tmp_path / "img.ms", spec)
    cmd = [
        wsclean,
        "-j",
        "1",
        "-size",
        "512",
        "512",
        "-scale",
        "20asec",
        "-weight",
        "natural",
        "-no-update-model-required",
        "-name",
        str(tmp_path / "img"),
        str(r.ms),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    with fits.open(tmp_path / "img-dirty.fits") as hdul:
        image = hdul[0].data[0, 0]
        wcs = WCS(hdul[0].header).celestial
    iy, ix = np.unravel_index(np.argmax(image), image.shape)
    ra, dec = wcs.pixel_to_world_values(ix, iy)
    sky = read_skymodel(r.skymodel)
    brightest = max(sky.sources, key=lambda s: s.i)
    sep = np.degrees(
        np.arccos(
            np.clip(
                np.sin(np.radians(dec)) * np.sin(brightest.dec)
                + np.cos(np.radians(dec)) * np.cos(brightest.dec) * np.cos(np.radians(ra) - brightest.ra),
                -1,
                1,
            )
        )
    )
    assert sep * 3600 < 30.0  # within 1.5 pixels
    flux = float(brightest.stokes_i_at(np.mean(148.5e6 + 195312.5 * np.arange(4))))
    assert abs(image.max() / flux - 1) < 0.15  # a point source peaks at its flux in a dirty image (Jy/beam)
