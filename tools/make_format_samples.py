#!/usr/bin/env python
"""Write the real-format sample set in ``tests/data/formats/``: sky models and H5parms as the LOFAR tools write them.

Each file is written by the tool it is named after, from a model or solutions made
here (nothing is copied from elsewhere):

``lofar-like.skymodel``
    the hand-written seed (committed, read here): a LINC/Rapthor-style model
    (format-line defaults, absolute orientations, curved spectra, patches)
``ddpipe.skymodel``
    ddpipe's rewrite of the seed plus rotation-measure sources and categories
``lsmtool.skymodel``, ``lsmtool-tessellate.skymodel``
    lsmtool 1.9's write of the seed, as loaded and after ``group('tessellate')``
``ddpipe-solutions.h5``
    ddpipe's H5parm: phases and amplitudes of two time chunks merged, on the
    stations, times and band of the tDDECal test MS
``losoto-smoothed.h5``
    the same after losoto 2.7's ``smooth`` (mean over time)

``tests/sky/test_sky_samples.py`` and ``tests/solutions/test_h5parm_samples.py`` read each
with ddpipe, lsmtool, losoto and DP3, and check that this script still writes the
committed files (lsmtool's dated history lines aside).

Usage::

    python tools/make_format_samples.py            # rewrite tests/data/formats/
    python tools/make_format_samples.py --out DIR  # write elsewhere
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import lsmtool
import numpy as np
from losoto.h5parm import h5parm
from losoto.operations import smooth

from ddpipe.sky.model import SkyModel
from ddpipe.sky.skymodel import parse_skymodel, read_skymodel, write_skymodel
from ddpipe.solutions import SolTab, Solutions, merge_along_time, write_h5parm

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "tests" / "data" / "formats"

#: The hand-written seed (committed, not written here): a LINC/Rapthor-style model around the
#: phase centre of the tDDECal test MS (24.42 deg, +33.16 deg).
SEED = "lofar-like.skymodel"

#: Rotation-measure sources (both forms DP3 reads) and categories, added to ddpipe's sample in Patch_3.
EXTRA = "\n".join(
    [
        "FORMAT = Name, Type, Patch, Ra, Dec, I, Q, U, V, ReferenceFrequency='144e6', RotationMeasure, "
        "PolarizedFraction, PolarizationAngle, ReferenceWavelength, Category",
        ", , Patch_3, 1:39:00.0000, 33.00.00.000",
        "rm1, POINT, Patch_3, 1:39:02.0000, 33.01.00.000, 1.5, , , 0.001, , 25.0, 0.2, 0.7, , 1",
        "rm2, POINT, Patch_3, 1:38:58.0000, 32.59.00.000, 1.1, 0.05, 0.08, , , -12.0, , , 2.2, 3",
    ]
)


def sky_samples(out: Path, seed: Path) -> None:
    model = read_skymodel(seed)
    extra = parse_skymodel(EXTRA, filename="EXTRA")
    write_skymodel(SkyModel(model.sources + extra.sources, model.patches), out / "ddpipe.skymodel")
    lsm = lsmtool.load(str(seed))
    lsm.write(str(out / "lsmtool.skymodel"), clobber=True)
    lsm.group("tessellate", targetFlux=4.0, method="wmean")
    lsm.write(str(out / "lsmtool-tessellate.skymodel"), clobber=True)


#: The stations, times (MJD s) and band of the tDDECal test MS, so that DP3 can apply the samples to it.
ANTENNAS = ("CS001HBA0", "CS002HBA0", "CS002HBA1", "CS004HBA1", "RS106HBA", "RS208HBA", "RS305HBA", "RS307HBA")
TIMES = 4871282390.0 + np.arange(6) * 10.0
FREQS = np.array([134.32e6, 134.42e6])


def solutions() -> Solutions:
    """Two time chunks of phase and amplitude solutions (8 stations, 3 directions, 2 solution channels)."""
    rng = np.random.default_rng(16)
    dirs = ("[Patch_1]", "[Patch_2]", "[Patch_3]")
    parts = []
    for time in (TIMES[:3], TIMES[3:]):
        shape = (time.size, FREQS.size, len(ANTENNAS), len(dirs))
        weights = np.ones(shape, np.float32)
        weights[1, 0, 2, 1] = 0  # one flagged solution
        axes = ("time", "freq", "ant", "dir")
        tab = SolTab("phase", axes, rng.uniform(-np.pi, np.pi, shape), weights, time, FREQS, ANTENNAS, dirs)
        amp = replace(tab, kind="amplitude", values=rng.uniform(0.7, 1.3, shape))
        parts.append(
            Solutions(
                antennas=ANTENNAS,
                antenna_positions=np.array([[3826577.0 + 500 * j, 461022.0, 5064892.0] for j in range(len(ANTENNAS))]),
                directions=dirs,
                direction_radec=np.array([[0.4238, 0.5818], [0.4173, 0.5702], [0.4320, 0.5760]]),
                soltabs={"phase000": tab, "amplitude000": amp},
            )
        )
    return merge_along_time(parts)


def h5_samples(out: Path) -> None:
    write_h5parm(out / "ddpipe-solutions.h5", solutions())
    shutil.copy(out / "ddpipe-solutions.h5", out / "losoto-smoothed.h5")
    h5 = h5parm(str(out / "losoto-smoothed.h5"), readonly=False)
    try:
        ss = h5.getSolset("sol000")
        for name in ss.getSoltabNames():
            st = ss.getSoltab(name, useCache=True)
            if smooth.run(st, axesToSmooth=["time"], mode="mean", log=st.getType() == "amplitude") != 0:
                raise RuntimeError(f"losoto smooth failed on {name}")
    finally:
        h5.close()


def make_samples(out: Path) -> list[Path]:
    """Write the sample set into ``out`` (created if missing); returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out) as tmp:  # all or nothing
        sky_samples(Path(tmp), DEFAULT_OUT / SEED)
        h5_samples(Path(tmp))
        written = sorted(Path(tmp).iterdir())
        for f in written:
            f.replace(out / f.name)
    return [out / f.name for f in written]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"folder (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    for f in make_samples(args.out):
        print(f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
