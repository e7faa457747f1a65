"""Absolute Gaussian orientations (``OrientationIsAbsolute=true``) in ddpipe's predict.

The real DP3 check is in ``test_dp3_columns.py``; here the geometry: the source's
(u, v, w) frame, the fast per-station predict against the per-baseline one, and
the limits where absolute and relative orientations must coincide.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from ddpipe.simulate.predict import components_from_skymodel, predict_rows, predict_stations, uvw_frame
from ddpipe.sky.model import SkyModel, Source

CENTRE = (math.radians(24.42), math.radians(33.16))
FREQS = np.array([120e6, 150e6, 180e6])


def gaussian(ra_deg: float, dec_deg: float, absolute: bool) -> Source:
    return Source(
        "g",
        math.radians(ra_deg),
        math.radians(dec_deg),
        2.0,
        type="GAUSSIAN",
        patch="P",
        major_axis=60.0,
        minor_axis=10.0,
        orientation=30.0,
        orientation_is_absolute=absolute,
    )


def test_uvw_frame_is_east_north_towards():
    ra, dec = 0.7, -0.4
    e, n, w = uvw_frame(ra, dec).T
    np.testing.assert_allclose(uvw_frame(ra, dec).T @ uvw_frame(ra, dec), np.eye(3), atol=1e-15)
    np.testing.assert_allclose(w, [math.cos(dec) * math.cos(ra), math.cos(dec) * math.sin(ra), math.sin(dec)])
    assert e[2] == 0 and n[2] > 0  # east is horizontal, north climbs towards the pole
    np.testing.assert_allclose(np.cross(e, n), w, atol=1e-15)  # right-handed


def test_rotation_turns_the_phase_centre_baselines_into_the_sources():
    src = gaussian(30.4, 33.5, True)
    comps = components_from_skymodel(SkyModel((src,)), FREQS, CENTRE)
    rot = comps.uvw_rotation[0]
    # the source's direction (l, m, n) in the phase centre's frame is the w axis of its own frame
    l, m, n = comps.lmn[0]
    np.testing.assert_allclose(rot @ np.array([l, m, n]), [0.0, 0.0, 1.0], atol=1e-12)
    relative = components_from_skymodel(SkyModel((replace(src, orientation_is_absolute=False),)), FREQS, CENTRE)
    np.testing.assert_array_equal(relative.uvw_rotation[0], np.eye(3))


def test_at_the_phase_centre_absolute_and_relative_agree():
    rng = np.random.default_rng(2)
    uvw = rng.normal(0, 3000, (200, 3))
    centre = (math.degrees(CENTRE[0]), math.degrees(CENTRE[1]))
    a, r = (
        predict_rows(uvw, FREQS, components_from_skymodel(SkyModel((gaussian(*centre, b),)), FREQS, CENTRE))
        for b in (True, False)
    )
    np.testing.assert_allclose(a, r, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("ra_deg, dec_deg", [(30.4, 33.5), (24.42, 40.0), (10.0, 60.0)])
def test_far_from_the_centre_they_differ_and_both_predicts_agree(ra_deg: float, dec_deg: float):
    rng = np.random.default_rng(3)
    nst, ntime = 7, 3
    uvw_st = rng.normal(0, 4000, (ntime, nst, 3))
    a1, a2 = np.triu_indices(nst, 1)
    uvw_rows = (uvw_st[:, a2] - uvw_st[:, a1]).reshape(-1, 3)
    vis = {}
    for absolute in (True, False):
        comps = components_from_skymodel(SkyModel((gaussian(ra_deg, dec_deg, absolute),)), FREQS, CENTRE)
        fast = predict_stations(uvw_st, a1, a2, FREQS, comps)
        slow = predict_rows(uvw_rows, FREQS, comps)
        np.testing.assert_allclose(fast, slow, rtol=1e-9, atol=1e-12)
        vis[absolute] = slow
    assert np.abs(vis[True] - vis[False]).max() > 1e-3 * np.abs(vis[False]).max()
