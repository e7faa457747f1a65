"""The simulator's random sky: faint sources a catalogue would miss, without changing the rest."""

from __future__ import annotations

import numpy as np
import pytest

from ddpipe.errors import UserError
from ddpipe.simulate.skygen import random_sky
from ddpipe.simulate.spec import SimulationSpec, check_spec
from ddpipe.sky.directions import angular_separation

CENTRE = (np.radians(150.0), np.radians(50.0))


def test_faint_sources_are_added_to_the_patches_and_leave_the_other_sources_alone():
    plain = random_sky(7, ndir=3, sources_per_direction=2, phase_centre=CENTRE, ref_freq=150e6)
    faint = random_sky(
        7, ndir=3, sources_per_direction=2, phase_centre=CENTRE, ref_freq=150e6, faint_sources=5, faint_flux=0.03
    )
    assert faint.sources[: len(plain.sources)] == plain.sources and faint.patches == plain.patches
    extra = faint.sources[len(plain.sources) :]
    assert [s.name for s in extra] == ["P1_f0", "P2_f1", "P3_f2", "P1_f3", "P2_f4"]
    for s in extra:
        patch = next(p for p in faint.patches if p.name == s.patch)
        assert s.i == 0.03 and s.type == "POINT" and s.spectral_index == (0.0,)
        assert 0.2 <= np.degrees(angular_separation(patch.ra, patch.dec, s.ra, s.dec)) <= 0.6


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"faint_sources": -1}, "faint-sources=-1"),
        ({"faint_sources": 2, "faint_flux": 0.0}, "faint-flux=0.0"),
        ({"faint_sources": 2, "skymodel": "x.skymodel"}, "not with --skymodel"),
    ],
)
def test_bad_faint_source_options_name_the_option(kw, match):
    with pytest.raises(UserError, match=match):
        check_spec(SimulationSpec(**kw))
