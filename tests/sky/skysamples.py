"""Sample sky models shared by the sky tests: every optional column, a LOFAR-style model, a random one."""

from __future__ import annotations

import math
from pathlib import Path

import casacore.tables as casacore_tables
import numpy as np

from ddpipe.dp3.parsets import MsView, dp3_argv, predict_parset
from ddpipe.dp3.runner import dp3_environment, find_dp3, run_dp3
from ddpipe.sky.model import SkyModel, Source
from ddpipe.sky.skymodel import parse_skymodel

#: Every optional column DP3 reads. Gaussians 6 deg east of the phase centre, where local north turns by ~3 deg against the
#: phase centre's; RM sources whose Q and U turn by ~1 rad across the band.
COLUMNS = """\
# (Name, Type, Patch, Ra, Dec, I, Q, U, V, ReferenceFrequency='1.5e8', SpectralIndex='[]', LogarithmicSI='true', MajorAxis, MinorAxis, Orientation, OrientationIsAbsolute, RotationMeasure, PolarizedFraction, PolarizationAngle, ReferenceWavelength, Category) = format

, , east, 30.4deg, 33.5deg
, , pol, 01:37:00, +33.00.00

gabs, GAUSSIAN, east, 30.4deg, 33.5deg, 3.0, , , , , [-0.7], , 20.0, 4.0, 35.0, true, , , , , 1
grel, GAUSSIAN, east, 30.0deg, 32.5deg, 2.0, , , , , , , 18.0, 5.0, -60.0, false, , , , , 2
gdef, GAUSSIAN, east, 0.526rad, 0.578rad, 1.0, , , , , , , 12.0, 3.0, 10.0
rm1, POINT, pol, 01:37:00, +33.00.00, 2.0, , , 0.05, , [-0.8, 0.1], , , , , , 50.0, 0.3, 0.4, , 3
rm2, POINT, pol, 01h36m10s, 33d20m00s, 1.5, 0.2, -0.1, , 140e6, [-0.5], false, , , , , -35.0, , , 2.1
rm3, POINT, pol, 24.1deg, 33.3deg, 1.0, 0.1, 0.15, , , , , , , , , 20.0, , , , 2
p1, POINT, pol, 24.3deg, 33.1deg, 0.8, 0.1, , , , , , , , , , , , , , 2
"""


#: A model as LINC/Rapthor write them (a TGSS-like field around tDDECal's phase centre,
#: 24.42 deg +33.16 deg): FORMAT-line defaults, Gaussians with absolute orientations,
#: curved log spectra and a linear one, patches.
LOFAR_LIKE = """\
FORMAT = Name, Type, Patch, Ra, Dec, I, Q, U, V, ReferenceFrequency='144000000.0', SpectralIndex='[]', LogarithmicSI='true', MajorAxis, MinorAxis, Orientation, OrientationIsAbsolute='true'

 , , Patch_1, 1:37:10.0000, 33.20.00.000
 , , Patch_2, 1:35:40.0000, 32.40.00.000
s1c0, POINT, Patch_1, 1:37:10.0000, 33.20.00.000, 4.321, 0.0, 0.0, 0.0, , [-0.78, -0.05], , , , ,
s1c1, GAUSSIAN, Patch_1, 1:37:22.5000, 33.17.30.000, 1.234, 0.0, 0.0, 0.0, , [-0.65], , 45.0, 20.0, 123.4,
s1c2, GAUSSIAN, Patch_1, 1:36:58.1250, 33.25.10.500, 0.567, 0.0, 0.0, 0.0, 150000000.0, [-0.9, 0.1, 0.02], , 18.0, 9.0, 10.0, false
s2c0, GAUSSIAN, Patch_2, 1:35:40.0000, 32.40.00.000, 2.5, 0.0, 0.0, 0.0, , [-0.7], , 30.0, 12.0, 75.0, true
s2c1, POINT, Patch_2, 1:35:31.8000, 32.44.20.200, 0.8, 0.1, -0.05, 0.0, 120000000.0, [0.2, -1.5], false, , , ,
"""


def lofar_like() -> SkyModel:
    return parse_skymodel(LOFAR_LIKE, filename="lofar_like.skymodel")


def random_model(seed: int = 3, n: int = 40) -> SkyModel:
    """Random sources over a 6-degree field in 4 patches: points and Gaussians, every spectral form."""
    rng = np.random.default_rng(seed)
    sources = []
    for k in range(n):
        gauss = k % 3 == 0
        si = tuple(float(c) for c in np.round(rng.normal(-0.7, 0.3, size=k % 4), 6))
        sources.append(
            Source(
                name=f"src{k}",
                ra=math.radians(24.42 + rng.uniform(-3, 3)),
                dec=math.radians(33.16 + rng.uniform(-3, 3)),
                i=float(rng.lognormal(0, 1)),
                type="GAUSSIAN" if gauss else "POINT",
                patch=f"P{k % 4}",
                major_axis=float(rng.uniform(10, 60)) if gauss else 0.0,
                minor_axis=float(rng.uniform(2, 10)) if gauss else 0.0,
                orientation=float(rng.uniform(0, 180)) if gauss else 0.0,
                orientation_is_absolute=bool(gauss and k % 2),
                reference_frequency=1.4e8,
                spectral_index=si,
                log_si=bool(k % 5),
            )
        )
    return SkyModel(tuple(sources))


def dp3_predict(ms: Path, skymodel: Path, column: str, work: Path) -> np.ndarray:
    """DP3 predict of ``skymodel`` into ``column`` of ``ms``; (row, chan, corr) complex."""
    parset = predict_parset(MsView(ms), skymodel=skymodel, out_column=column)
    run_dp3(
        dp3_argv(find_dp3(), parset, 1),
        log_path=work / f"{column}.log",
        timeout=300,
        env=dp3_environment(cache_dir=work / "cache"),
    )
    with casacore_tables.table(str(ms), ack=False) as t:
        return t.getcol(column)
