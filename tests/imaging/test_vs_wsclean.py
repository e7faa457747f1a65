"""Pixel-by-pixel agreement with WSClean 3.1 (same MS, size, scale and weighting)."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from imaging_helpers import imaging_params, need_wsclean

from ddpipe.imaging import make_image
from ddpipe.imaging.fitsio import read_image

pytestmark = pytest.mark.wsclean


def _wsclean(ms, prefix, *args):
    cmd = [
        "wsclean",
        "-quiet",
        "-j",
        "2",
        "-no-update-model-required",
        "-use-wgridder",
        "-name",
        str(prefix),
        *args,
        str(ms),
    ]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=600)


@pytest.mark.parametrize("weight,tol", [("natural", 1e-4), ("uniform", 1e-4), ("briggs", 1e-3)])
def test_dirty_image_matches_wsclean(sim_points, tmp_path, weight, tol):
    need_wsclean()
    ms = tmp_path / "copy.ms"
    shutil.copytree(sim_points.ms, ms)  # WSClean opens the MS for writing: never the shared one
    wargs = ["briggs", "0"] if weight == "briggs" else [weight]
    _wsclean(ms, tmp_path / "ws", "-size", "256", "256", "-scale", "30asec", "-weight", *wargs, "-niter", "0")
    r = make_image(
        [sim_points.ms],
        imaging_params(size=(256, 256), scale=30.0, weight=weight, robust=0.0, niter=0),
        tmp_path / "dd",
    )
    ws, hw = read_image(tmp_path / "ws-dirty.fits")
    ours, ho = read_image(r.dirty)
    q = slice(64, 192)  # inner quarter, as the benchmark
    assert np.abs(ours - ws)[q, q].max() / np.abs(ws[q, q]).max() < tol
    for key in ("CRPIX1", "CRPIX2", "CDELT1", "CDELT2", "CRVAL1", "CRVAL2", "CRVAL3"):
        assert ho[key] == pytest.approx(hw[key], rel=1e-9, abs=1e-9), key


def test_channel_dirty_images_match_wsclean_channels_out(sim_wide, tmp_path):
    """``channels_out 4``: each output channel's dirty image (and the MFS one) agrees with WSClean's
    ``-channels-out 4 -join-channels`` within 1e-3 of its peak, with the same frequency in the header.
    (``-join-channels`` turns on WSClean's MF weighting, one density grid for all channels, which is
    what ddpipe does; without it each channel's Briggs weights come from its own grid.)"""
    need_wsclean()
    ms = tmp_path / "copy.ms"
    shutil.copytree(sim_wide.ms, ms)
    _wsclean(ms, tmp_path / "ws", "-size", "256", "256", "-scale", "30asec", "-weight", "briggs", "0", "-niter", "0",
             "-channels-out", "4", "-join-channels")  # fmt: skip
    make_image(
        [sim_wide.ms],
        imaging_params(size=(256, 256), scale=30.0, weight="briggs", robust=0.0, niter=0, channels_out=4),
        tmp_path / "dd",
    )
    q = slice(64, 192)
    for part in ("0000", "0001", "0002", "0003", "MFS"):
        ws, hw = read_image(tmp_path / f"ws-{part}-dirty.fits")
        ours, ho = read_image(tmp_path / f"dd-{part}-dirty.fits")
        assert np.abs(ours - ws)[q, q].max() / np.abs(ws[q, q]).max() < 1e-3, part
        assert ho["CRVAL3"] == pytest.approx(hw["CRVAL3"], rel=1e-9), part
