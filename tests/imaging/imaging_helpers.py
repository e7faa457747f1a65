"""Shared constants and helpers of the imaging tests (imported by conftest and the tests)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from ddpipe.config import load_config

#: point sources (name, RA offset deg, Dec offset deg, flux Jy) about the phase centre
POINTS = (("A", 0.0, 0.0, 5.0), ("B", 0.55, 0.30, 3.0), ("C", -0.40, -0.45, 2.0), ("D", -0.35, 0.50, 1.0))
CENTRE = (math.radians(150.0), math.radians(55.0))
SMALL = dict(stations=16, times=60, channels=4, interval=20.0)


def imaging_params(**kw):
    """The packaged imaging defaults with ``kw`` replaced."""
    return dataclasses.replace(load_config().imaging, **kw)


def point_radec() -> list[tuple[str, float, float, float]]:
    """(name, ra, dec, flux) of POINTS, radians."""
    ra0, dec0 = (math.degrees(a) for a in CENTRE)
    out = []
    for name, dra, ddec, flux in POINTS:
        dec = dec0 + ddec
        out.append((name, math.radians(ra0 + dra / math.cos(math.radians(dec))), math.radians(dec), flux))
    return out


def point_skymodel(path: Path) -> Path:
    """Write POINTS as a makesourcedb sky model, one patch per source."""
    rows = point_radec()
    lines = ["# (Name, Type, Patch, Ra, Dec, I) = format", ""]
    lines += [f", , P{n}, {math.degrees(ra)}deg, {math.degrees(dec)}deg" for n, ra, dec, _ in rows]
    lines.append("")
    lines += [f"{n}, POINT, P{n}, {math.degrees(ra)}deg, {math.degrees(dec)}deg, {f}" for n, ra, dec, f in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


#: spectral index (log, one term) of each of POINTS in the wide-band fixture, at WIDE_REF_FREQ
POINT_SPECTRAL_INDEX = {"A": -0.8, "B": -0.3, "C": -1.2, "D": 0.0}
WIDE_REF_FREQ = 150e6
#: 16 channels of 2.5 MHz from 131.25 MHz: a 40 MHz band (130-170 MHz)
WIDE = dict(stations=16, times=60, channels=16, interval=20.0, freq_start=131.25e6, chan_width=2.5e6)


def spectral_point_skymodel(path: Path) -> Path:
    """POINTS with the spectra of POINT_SPECTRAL_INDEX (LogarithmicSI true), one patch per source."""
    rows = point_radec()
    lines = ["# (Name, Type, Patch, Ra, Dec, I, ReferenceFrequency, SpectralIndex, LogarithmicSI) = format", ""]
    lines += [f", , P{n}, {math.degrees(ra)}deg, {math.degrees(dec)}deg" for n, ra, dec, _ in rows]
    lines.append("")
    lines += [
        f"{n}, POINT, P{n}, {math.degrees(ra)}deg, {math.degrees(dec)}deg, {f}, {WIDE_REF_FREQ}, "
        f"[{POINT_SPECTRAL_INDEX[n]}], true"
        for n, ra, dec, f in rows
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def need_wsclean() -> None:
    """Skip without WSClean, but fail under CI where it must be installed (as the root conftest's need_tool)."""
    import os
    import shutil

    import pytest

    if shutil.which("wsclean") is None:
        msg = "wsclean not on PATH (apt-get install -y wsclean; make test installs it)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
