"""FITS images with a full celestial WCS, laid out like WSClean's.

Axes: RA---SIN (CDELT1 < 0, RA increasing to the left), DEC--SIN, FREQ,
STOKES (I); reference pixel N/2 + 1 on the phase centre; data shape
``(1, 1, ny, nx)`` float32. Written atomically (temporary name + os.replace).
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits

from ddpipe.fileio import atomic_write
from ddpipe.imaging.beam import Beam


@dataclass(frozen=True)
class ImageGeometry:
    """Where an image sits on the sky and in frequency."""

    shape: tuple[int, int]  # (ny, nx)
    cell: float  # radians
    phase_centre: tuple[float, float]  # (ra, dec) radians
    freq: float  # Hz, centre of the band
    bandwidth: float  # Hz
    date_obs: float = 0.0  # MJD seconds of the first sample (0: unknown)
    telescope: str = ""


def _value(v: object) -> str:
    """A FITS card value field (columns 11-80)."""
    if isinstance(v, bool):
        return f"{'T' if v else 'F':>20}"
    if isinstance(v, (int, np.integer)):
        return f"{int(v):>20}"
    if isinstance(v, (float, np.floating)):
        t = repr(float(v)).upper()  # shortest exact form; FITS wants an upper-case exponent
        if "." not in t and "E" not in t and "N" not in t and "I" not in t:
            t += ".0"
        elif "E" in t and "." not in t:
            t = t.replace("E", ".0E")
        return f"{t:>20}"
    text = str(v).replace("'", "''")
    return f"'{text:<8}'"


def _card(key: str, value: object) -> str:
    card = f"{key:<8}= {_value(value)}"
    if len(card) > 80:
        raise ValueError(f"FITS card {key} too long: {card!r}")
    return f"{card:<80}"


def header_cards(
    geom: ImageGeometry, *, bunit: str = "JY/BEAM", beam: Beam | None = None, extra: dict | None = None
) -> list[tuple[str, object]]:
    """(keyword, value) pairs of the image header after the structural keywords, WSClean's order."""
    ny, nx = geom.shape
    ra0, dec0 = geom.phase_centre
    cell_deg = math.degrees(geom.cell)
    cards: list[tuple[str, object]] = [("BSCALE", 1.0), ("BZERO", 0.0), ("BUNIT", bunit)]
    if beam is not None:
        cards += [("BMAJ", beam.bmaj), ("BMIN", beam.bmin), ("BPA", beam.bpa)]
    cards += [
        ("EQUINOX", 2000.0),
        ("RADESYS", "FK5"),
        ("BTYPE", "Intensity"),
        ("ORIGIN", "ddpipe"),
        ("CTYPE1", "RA---SIN"),
        ("CRPIX1", float(nx // 2 + 1)),
        ("CRVAL1", math.degrees(ra0) % 360.0),
        ("CDELT1", -cell_deg),
        ("CUNIT1", "deg"),
        ("CTYPE2", "DEC--SIN"),
        ("CRPIX2", float(ny // 2 + 1)),
        ("CRVAL2", math.degrees(dec0)),
        ("CDELT2", cell_deg),
        ("CUNIT2", "deg"),
        ("CTYPE3", "FREQ"),
        ("CRPIX3", 1.0),
        ("CRVAL3", float(geom.freq)),
        ("CDELT3", float(geom.bandwidth) if geom.bandwidth > 0 else 1.0),
        ("CUNIT3", "Hz"),
        ("CTYPE4", "STOKES"),
        ("CRPIX4", 1.0),
        ("CRVAL4", 1.0),
        ("CDELT4", 1.0),
        ("CUNIT4", ""),
        ("SPECSYS", "TOPOCENT"),
    ]
    if geom.date_obs > 0:
        when = _MJD0 + datetime.timedelta(seconds=geom.date_obs)
        cards.append(("DATE-OBS", when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]))
        cards.append(("MJD-OBS", geom.date_obs / 86400.0))
    if geom.telescope:
        cards.append(("TELESCOP", geom.telescope))
    cards += list((extra or {}).items())
    return cards


_MJD0 = datetime.datetime(1858, 11, 17)


def write_image(
    path: str | Path,
    image: np.ndarray,
    geom: ImageGeometry,
    *,
    bunit: str = "JY/BEAM",
    beam: Beam | None = None,
    extra: dict | None = None,
) -> Path:
    """Write ``image`` ``(ny, nx)`` as a 4-axis FITS file at ``path`` atomically; returns the path.

    The file is written directly (no astropy import on this path: it costs half a
    second of start-up); astropy reads it back in the tests.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ny, nx = image.shape
    cards = [
        ("SIMPLE", True),
        ("BITPIX", -32),
        ("NAXIS", 4),
        ("NAXIS1", nx),
        ("NAXIS2", ny),
        ("NAXIS3", 1),
        ("NAXIS4", 1),
        ("EXTEND", True),
    ]
    cards += header_cards(geom, bunit=bunit, beam=beam, extra=extra)
    head = "".join(_card(k, v) for k, v in cards) + f"{'END':<80}"
    head += " " * (-len(head) % 2880)
    data = np.ascontiguousarray(image, dtype=">f4").tobytes()
    return atomic_write(path, head.encode("ascii") + data + b"\0" * (-len(data) % 2880))


def read_image(path: str | Path) -> tuple[np.ndarray, "object"]:
    """Read a 2-D image (``(ny, nx)`` float64) and its header from a FITS file with ≥ 2 axes."""
    with fits.open(path) as hdul:
        data = np.asarray(hdul[0].data, dtype=np.float64)
        header = hdul[0].header.copy()
    while data.ndim > 2:
        data = data[0]
    return data, header
