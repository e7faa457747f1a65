"""Sets of sub-band Measurement Sets: glob patterns in ``inputs.ms`` and the rules a set obeys.

LOFAR delivers an observation as one MS per sub-band (``L123456_SB000_uv.MS`` …).
:func:`expand_patterns` turns config entries like ``obs/SB*.MS`` into the MSs they
match, each pattern's matches in frequency order. :func:`check_subband_set` refuses,
with one line naming the MS and the fix, a set that calibration and imaging cannot
treat as one observation:

* an MS whose channels are not evenly spaced (e.g. missing its middle channels);
* the same MS listed twice;
* MSs with different phase centres, antennas or time slots: calibration solves
  each MS on the same time chunks and merges the solutions along frequency
  (:func:`ddpipe.solutions.merge.merge_along_freq`), which needs the same times and
  antennas in every part;
* MSs whose frequency ranges overlap.

Gaps in frequency between sub-bands and sub-bands with different channel counts or
widths are handled: every MS is solved on its own channels, the merged solutions hold
each sub-band's frequencies, and the imager looks up the solution nearest to each
channel. A gap is logged.
"""

from __future__ import annotations

import glob
import logging
import math
import os
from typing import Sequence

import numpy as np

from ddpipe.errors import UserError
from ddpipe.ms.info import MSInfo
from ddpipe.ms.inspect import inspect_ms

log = logging.getLogger(__name__)

#: phase centres closer than this (radians, ~0.1 arcsec) are the same
SAME_DIRECTION = 5e-7
#: channel spacings (and band edges) agreeing to this fraction of a channel are the same
CHANNEL_TOLERANCE = 1e-3


def expand_patterns(paths: Sequence[str], key: str, data_column: str = "DATA") -> tuple[str, ...]:
    """Replace each glob pattern in ``paths`` by the MSs it matches, in frequency order.

    Parameters
    ----------
    paths
        Absolute paths; an entry that exists is kept as it is, one with ``*``, ``?`` or
        ``[`` that does not is a pattern.
    key
        Config key the paths come from (``inputs.ms``), for messages.
    data_column
        Passed to :func:`~ddpipe.ms.inspect.inspect_ms`, which reads each match's first
        channel frequency (SPECTRAL_WINDOW CHAN_FREQ).

    Returns
    -------
    tuple of str
        The entries with every pattern's matches in its place, sorted by first channel
        frequency (then by name).

    Raises
    ------
    UserError
        A pattern that matches nothing; a match that is not a readable MS.
    """
    out: list[str] = []
    for path in paths:
        if not glob.has_magic(path) or os.path.exists(path):
            out.append(path)
            continue
        matches = sorted(glob.glob(path))
        if not matches:
            raise UserError(f"{key}: the pattern {path!r} matches nothing; check the folder and the pattern")
        infos = [inspect_ms(m, data_column=data_column, flag_stats=False) for m in matches]
        ordered = sorted(zip(infos, matches), key=lambda im: (im[0].chan_freqs[0], im[1]))
        log.debug("%s: %s matches %d MSs", key, path, len(matches))
        out.extend(m for _, m in ordered)
    return tuple(out)


def check_subband_set(infos: Sequence[MSInfo], key: str = "inputs.ms", calibrate: bool = True) -> None:
    """Raise :class:`UserError` when the MSs of ``key`` cannot be processed as one observation.

    Parameters
    ----------
    infos
        The inspected MSs, in the order of the config.
    key
        Config key they come from, for messages.
    calibrate
        They will be calibrated: the same antennas and time slots in every MS too
        (imaging alone does not need them).
    """
    for info in infos:
        check_even_channels(info, key)
    if len(infos) < 2:
        return
    first = infos[0]
    seen: dict[str, MSInfo] = {}
    for info in infos:
        if info.path in seen:
            raise UserError(f"{key}: {info.path} is listed twice; give each sub-band once")
        seen[info.path] = info
        _check_same_direction(first, info, key)
        if calibrate:
            _check_same_antennas(first, info, key)
            _check_same_times(first, info, key)
    _check_frequencies(infos, key)


def check_even_channels(info: MSInfo, key: str) -> None:
    """One MS's channels must be evenly spaced and no further apart than they are wide: a missing
    channel (e.g. the middle ones cut out) should be flagged, not removed."""
    freqs = np.asarray(info.chan_freqs, dtype=float)
    if freqs.size < 2:
        return
    step = np.abs(np.diff(freqs))
    usual = float(np.median(step))
    width = float(np.median(np.abs(info.chan_widths)))
    bad = np.flatnonzero(np.abs(step - usual) > CHANNEL_TOLERANCE * usual)
    if bad.size:
        k = int(bad[0])
        what = f"{_mhz(step[k])} MHz between channels {k} and {k + 1} where the others are {_mhz(usual)} MHz apart"
    elif usual > width * (1 + CHANNEL_TOLERANCE):
        what = f"channels {_mhz(usual)} MHz apart but {_mhz(width)} MHz wide"
    else:
        return
    raise UserError(
        f"{key}: {info.path} has unevenly spaced channels ({what}: channels are missing); "
        "give the complete sub-band (flag bad channels instead of removing them)"
    )


def _check_same_direction(first: MSInfo, info: MSInfo, key: str) -> None:
    """The same phase centre (and frame) as the first MS."""
    if info.phase_centre_frame != first.phase_centre_frame or _separation(info, first) > SAME_DIRECTION:
        raise UserError(
            f"{key}: {info.path} has phase centre {' '.join(info.phase_centre_sexagesimal)} "
            f"{info.phase_centre_frame} but {first.path} has {' '.join(first.phase_centre_sexagesimal)} "
            f"{first.phase_centre_frame}; give sub-bands of one field, or phase-shift this one first "
            "(DP3 phaseshift step)"
        )


def _check_same_antennas(first: MSInfo, info: MSInfo, key: str) -> None:
    """The same antennas, in the same order, as the first MS (solutions are merged per antenna)."""
    if info.antenna_names != first.antenna_names:
        raise UserError(
            f"{key}: {info.path} has antennas {_few(info.antenna_names)} but {first.path} has "
            f"{_few(first.antenna_names)}; give sub-bands of one observation (the same stations in the same order)"
        )


def _check_same_times(first: MSInfo, info: MSInfo, key: str) -> None:
    """The same slot grid (first time, interval, number of slots) as the first MS."""
    same = (
        math.isclose(info.interval, first.interval, rel_tol=1e-6)
        and abs(info.time_first - first.time_first) < 1e-3 * first.interval
        and info.n_slots == first.n_slots
    )
    if not same:
        raise UserError(
            f"{key}: {info.path} has {info.n_slots} time slots of {info.interval:g} s from {info.time_first_utc} "
            f"but {first.path} has {first.n_slots} of {first.interval:g} s from {first.time_first_utc}; "
            "sub-bands are calibrated on the same time chunks: give MSs of the same time range "
            "(cut them to it, e.g. with DP3 msin.starttime/msin.endtime)"
        )


def _check_frequencies(infos: Sequence[MSInfo], key: str) -> None:
    """No two MSs share frequencies; gaps between neighbours are logged."""
    ordered = sorted(infos, key=lambda i: i.freq_range[0])
    for low, high in zip(ordered, ordered[1:]):
        width = min(abs(low.chan_widths[-1]), abs(high.chan_widths[0]))
        overlap = low.freq_range[1] - high.freq_range[0]
        if overlap > CHANNEL_TOLERANCE * width:
            raise UserError(
                f"{key}: {high.path} ({_mhz(high.freq_range[0])}-{_mhz(high.freq_range[1])} MHz) overlaps "
                f"{low.path} ({_mhz(low.freq_range[0])}-{_mhz(low.freq_range[1])} MHz); "
                "give each frequency once (leave one of them out)"
            )
        if -overlap > CHANNEL_TOLERANCE * width:
            log.info(
                "%s: a gap of %s MHz between %s and %s (solutions and images have no data there)",
                key,
                _mhz(-overlap),
                low.path,
                high.path,
            )


def _separation(a: MSInfo, b: MSInfo) -> float:
    """Angle between the phase centres of two MSs, radians."""
    (ra1, dec1), (ra2, dec2) = a.phase_centre, b.phase_centre
    c = math.sin(dec1) * math.sin(dec2) + math.cos(dec1) * math.cos(dec2) * math.cos(ra1 - ra2)
    s = math.hypot(
        math.cos(dec2) * math.sin(ra1 - ra2),
        math.cos(dec1) * math.sin(dec2) - math.sin(dec1) * math.cos(dec2) * math.cos(ra1 - ra2),
    )
    return math.atan2(s, c)


def _mhz(hz: float) -> str:
    return f"{hz / 1e6:.6g}"


def _few(names: Sequence[str]) -> str:
    return ", ".join(names[:3]) + (f" ... ({len(names)})" if len(names) > 3 else f" ({len(names)})")
