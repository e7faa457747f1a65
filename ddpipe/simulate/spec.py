"""What to simulate (:class:`SimulationSpec`) and what came out (:class:`SimulationResult`)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from ddpipe.errors import UserError
from ddpipe.sky.angles import AngleError, parse_angle

LAYOUTS = ("lofar", "ska-low")
#: Default declination per layout (degrees): high in the sky at the site.
DEFAULT_DEC_DEG = {"lofar": 50.0, "ska-low": -30.0}


@dataclass(frozen=True)
class SimulationSpec:
    """Parameters of one simulated observation (defaults: the demo-sized MS).

    Attributes
    ----------
    stations
        Number of stations.
    layout
        ``'lofar'`` or ``'ska-low'``.
    channels
        Number of channels (per sub-band).
    subbands
        Number of sub-band MSs of contiguous frequency (1: one MS). Sub-band ``k``
        holds channels ``k * channels .. (k + 1) * channels - 1`` of the band.
    freq_start
        Centre of the first channel, Hz.
    chan_width
        Channel width, Hz.
    times
        Number of time slots.
    interval
        Integration time, seconds.
    start
        Start of the observation, UTC ISO date-time.
    ra, dec
        Phase centre, J2000 radians; None: the RA that transits at mid-observation
        and a declination high at the site.
    directions
        Number of random patches (ignored with ``skymodel``).
    sources_per_direction
        Random sources per patch.
    faint_sources, faint_flux
        Extra point sources of ``faint_flux`` Jy spread over the patches (see
        :func:`ddpipe.simulate.skygen.random_sky`; not with ``skymodel``).
    skymodel
        A sky model file to use instead of the random sky (its patches are the directions).
    noise
        Thermal noise per visibility, Jy (σ of the real and of the imaginary part).
    phase_scale
        RMS of the direction-dependent phases at the band centre, radians.
    amplitude_scale
        RMS of the log-amplitudes (0: amplitudes stay 1).
    corrupt
        Apply the gains (False: the same sky and noise without corruption).
    seed
        Seed of every random stream (layout, sky, gains, noise).
    overwrite
        Replace existing outputs.
    """

    stations: int = 24
    layout: str = "lofar"
    channels: int = 16
    subbands: int = 1
    freq_start: float = 148.5e6
    chan_width: float = 195312.5
    times: int = 180
    interval: float = 10.0
    start: str = "2026-01-01T00:00:00"
    ra: float | None = None
    dec: float | None = None
    directions: int = 4
    sources_per_direction: int = 3
    faint_sources: int = 0
    faint_flux: float = 0.05
    skymodel: str | None = None
    noise: float = 0.5
    phase_scale: float = 1.0
    amplitude_scale: float = 0.0
    corrupt: bool = True
    seed: int = 1
    overwrite: bool = False


@dataclass(frozen=True)
class SimulationResult:
    """Outputs of :func:`ddpipe.simulate.simulate` and their sizes.

    Attributes
    ----------
    ms, skymodel, truth
        The MS (the first sub-band's with ``subbands`` > 1), the true sky model
        (``sim.skymodel``) and the true gains (``sim.truth.h5``, over the whole band).
    nstations, nbaselines, ntimes, nchannels, ndirections, nsources
        Sizes (``nchannels``: of the whole band, all sub-bands).
    nrows
        Main-table rows (ntimes × nbaselines) per MS.
    nvis
        Visibilities (rows × channels of all MSs; each has 4 correlations).
    seconds
        Wall time of the whole simulation.
    timings
        Seconds per stage (``uvw``, ``predict``, ``noise``, ``write``...).
    """

    ms: Path
    skymodel: Path
    truth: Path
    nstations: int
    nbaselines: int
    ntimes: int
    nchannels: int
    ndirections: int
    nsources: int
    nrows: int
    nvis: int
    seconds: float
    timings: Mapping[str, float] = field(default_factory=dict)
    #: every MS written, in frequency order (``(ms,)`` for one sub-band)
    ms_paths: tuple[Path, ...] = ()


def _positive_int(value: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"{what}={value!r}: expected a whole number ≥ 1")


def _positive(value: float, what: str, allow_zero: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        bound = "≥ 0" if allow_zero else "> 0"
        raise UserError(f"{what}={value!r}: expected a finite number {bound}")


def check_spec(spec: SimulationSpec) -> None:
    """Raise :class:`UserError` naming the option when ``spec`` is not simulatable."""
    _positive_int(spec.stations, "stations")
    if spec.stations < 2:
        raise UserError(f"stations={spec.stations}: need at least 2 stations for a baseline")
    if spec.layout not in LAYOUTS:
        raise UserError(f"layout={spec.layout!r}: expected one of {', '.join(LAYOUTS)}")
    for name in ("channels", "subbands", "times", "directions", "sources_per_direction"):
        _positive_int(getattr(spec, name), name.replace("_", "-"))
    for name in ("freq_start", "chan_width", "interval"):
        _positive(getattr(spec, name), name.replace("_", "-"))
    for name in ("noise", "phase_scale", "amplitude_scale"):
        _positive(getattr(spec, name), name.replace("_", "-"), allow_zero=True)
    if isinstance(spec.faint_sources, bool) or not isinstance(spec.faint_sources, int) or spec.faint_sources < 0:
        raise UserError(f"faint-sources={spec.faint_sources!r}: expected a whole number ≥ 0")
    if spec.faint_sources:
        _positive(spec.faint_flux, "faint-flux")
        if spec.skymodel:
            raise UserError("faint-sources: not with --skymodel (add them to the sky model instead)")
    if spec.subbands > 999:
        raise UserError(f"subbands={spec.subbands}: at most 999 (named SB000..SB998)")
    if spec.amplitude_scale > 2.0:
        raise UserError(f"amplitude-scale={spec.amplitude_scale}: expected a fraction (RMS of log-amplitude) ≤ 2")
    if spec.ra is not None and not (math.isfinite(spec.ra)):
        raise UserError(f"ra={spec.ra!r}: not a finite angle")
    if spec.dec is not None and not (math.isfinite(spec.dec) and abs(spec.dec) <= math.pi / 2):
        raise UserError(
            f"dec={math.degrees(spec.dec) if math.isfinite(spec.dec) else spec.dec!r} deg: must lie within ±90 deg"
        )
    if isinstance(spec.seed, bool) or not isinstance(spec.seed, int) or spec.seed < 0:
        raise UserError(f"seed={spec.seed!r}: expected a whole number ≥ 0")
    start_mjd_seconds(spec.start)


def start_mjd_seconds(start: str) -> float:
    """UTC ISO date-time (``2026-01-01T00:00:00``) → MJD seconds (casacore TIME)."""
    from astropy.time import Time

    try:
        return float(Time(start, format="isot", scale="utc").mjd) * 86400.0
    except ValueError:
        raise UserError(f"start={start!r}: not a date-time; use e.g. 2026-01-01T00:00:00 (UTC)") from None


_NUMBER = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$")


def parse_sky_angle(text: str, what: str) -> float:
    """A CLI angle → radians: a bare number is degrees; otherwise the sky-model forms.

    ``what`` is ``'ra'`` (``hh:mm:ss`` in hours) or ``'dec'`` (``dd:mm:ss`` in degrees);
    ``12.5deg``, ``0.2rad``, ``12h30m``, ``+48.13.00`` work for both.
    """
    if _NUMBER.match(text):
        value = math.radians(float(text))
    else:
        try:
            value = parse_angle(text, colon_unit="h" if what == "ra" else "deg")
        except AngleError as exc:
            raise UserError(f"--{what} {text!r}: {exc}") from None
    if what == "ra" and not 0.0 <= value < 2 * math.pi:
        raise UserError(f"--ra {text!r}: right ascension must lie in [0, 360) deg, i.e. [00:00:00, 24:00:00)")
    if what == "dec" and not abs(value) <= math.pi / 2:
        raise UserError(f"--dec {text!r}: declination must lie within ±90 deg")
    return value
