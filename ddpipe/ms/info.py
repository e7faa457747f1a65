"""What ddpipe knows about one Measurement Set: the frozen :class:`MSInfo` that
:func:`ddpipe.ms.inspect.inspect_ms` returns, and small formatting helpers.

Times are casacore MJD seconds (UTC), angles radians, frequencies Hz.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import astropy.units as u
import numpy as np
from astropy.coordinates import Angle
from astropy.time import Time

from ddpipe.errors import UserError


@dataclass(frozen=True)
class MSInfo:
    """What ddpipe knows about one Measurement Set (one field, one spectral window).

    Arrays are stored as tuples so that the dataclass is immutable and hashable;
    the ``*_array`` properties give NumPy views.

    Attributes
    ----------
    path : str
        Absolute path of the MS.
    n_rows : int
        Rows of the main table.
    telescope : str
        OBSERVATION TELESCOPE_NAME (row 0).
    antenna_names : tuple of str
        ANTENNA NAME, in antenna-index order.
    antenna_positions : tuple of (float, float, float)
        ANTENNA POSITION (ITRF, metres), ``(n_antennas, 3)``.
    n_baselines : int
        Distinct antenna pairs with ANTENNA1 != ANTENNA2 present in the main table.
    has_autocorrelations : bool
        Whether any row has ANTENNA1 == ANTENNA2.
    time_first, time_last : float
        First and last TIME (centre of the integration), MJD seconds (UTC).
    time_first_utc, time_last_utc : str
        The same as ISO 8601 UTC strings (millisecond precision).
    interval : float
        Median INTERVAL over rows, seconds.
    n_times : int
        Distinct TIME values.
    n_slots : int
        Slots on the regular grid ``time_first + k * interval``:
        ``round((time_last - time_first) / interval) + 1`` (what DP3 counts with
        ``msin.ntimes``). Larger than ``n_times`` when there are gaps.
    chan_freqs, chan_widths : tuple of float
        SPECTRAL_WINDOW CHAN_FREQ and CHAN_WIDTH, Hz.
    freq_range : (float, float)
        Band edges, Hz: lowest channel's lower edge, highest channel's upper edge.
    ref_frequency : float
        SPECTRAL_WINDOW REF_FREQUENCY, Hz.
    correlations : tuple of str
        Correlation names from POLARIZATION CORR_TYPE, e.g. ``("XX", "XY", "YX", "YY")``.
    phase_centre : (float, float)
        FIELD PHASE_DIR (RA, Dec), radians, in ``phase_centre_frame``.
    phase_centre_frame : str
        Reference frame of PHASE_DIR (MEASINFO Ref), e.g. ``"J2000"``.
    phase_centre_sexagesimal : (str, str)
        RA as ``hh:mm:ss.ssss``, Dec as ``±dd:mm:ss.sss``.
    field_name : str
        FIELD NAME.
    data_column : str
        The visibility column that was asked for (checked to exist).
    data_columns : tuple of str
        Complex visibility columns present whose name ends in ``DATA``.
    has_weight_spectrum : bool
        Whether WEIGHT_SPECTRUM is present.
    flagged_fraction : float or None
        Fraction of visibilities (row × channel × correlation) flagged by FLAG
        or FLAG_ROW; None when flag statistics were not gathered.
    flag_row_fraction : float or None
        Fraction of rows with FLAG_ROW set (0 when there is no FLAG_ROW column);
        None when flag statistics were not gathered.
    gaps : tuple of (int, int)
        Runs of slots with no row, as ``(first_slot, n_slots)``; empty when every
        slot of the grid has data.
    """

    path: str
    n_rows: int
    telescope: str
    antenna_names: tuple[str, ...]
    antenna_positions: tuple[tuple[float, float, float], ...]
    n_baselines: int
    has_autocorrelations: bool
    time_first: float
    time_last: float
    time_first_utc: str
    time_last_utc: str
    interval: float
    n_times: int
    n_slots: int
    chan_freqs: tuple[float, ...]
    chan_widths: tuple[float, ...]
    freq_range: tuple[float, float]
    ref_frequency: float
    correlations: tuple[str, ...]
    phase_centre: tuple[float, float]
    phase_centre_frame: str
    phase_centre_sexagesimal: tuple[str, str]
    field_name: str
    data_column: str
    data_columns: tuple[str, ...]
    has_weight_spectrum: bool
    flagged_fraction: float | None
    flag_row_fraction: float | None
    gaps: tuple[tuple[int, int], ...] = ()

    @property
    def name(self) -> str:
        """Base name of the MS directory."""
        return os.path.basename(self.path.rstrip("/"))

    @property
    def n_antennas(self) -> int:
        """Rows of the ANTENNA table."""
        return len(self.antenna_names)

    @property
    def n_chan(self) -> int:
        """Number of channels."""
        return len(self.chan_freqs)

    @property
    def n_corr(self) -> int:
        """Number of correlations."""
        return len(self.correlations)

    @property
    def chan_freqs_array(self) -> np.ndarray:
        """Channel centres, Hz, ``(n_chan,)`` float64."""
        return np.asarray(self.chan_freqs, dtype=float)

    @property
    def chan_widths_array(self) -> np.ndarray:
        """Channel widths, Hz, ``(n_chan,)`` float64."""
        return np.asarray(self.chan_widths, dtype=float)

    @property
    def antenna_positions_array(self) -> np.ndarray:
        """ITRF antenna positions, metres, ``(n_antennas, 3)`` float64."""
        return np.asarray(self.antenna_positions, dtype=float).reshape(-1, 3)

    @property
    def phase_centre_deg(self) -> tuple[float, float]:
        """Phase centre (RA, Dec) in degrees."""
        return (float(np.degrees(self.phase_centre[0])), float(np.degrees(self.phase_centre[1])))

    @property
    def duration(self) -> float:
        """Seconds spanned by the slot grid: ``n_slots * interval``."""
        return self.n_slots * self.interval

    @property
    def n_missing_slots(self) -> int:
        """Slots of the grid without data (``n_slots - n_times`` on a regular grid)."""
        return sum(n for _, n in self.gaps)

    @property
    def all_flagged(self) -> bool:
        """True when every visibility is flagged (needs ``flag_stats=True``)."""
        if self.flagged_fraction is None:
            raise ValueError(f"{self.path}: flag statistics were not gathered; call inspect_ms(..., flag_stats=True)")
        return self.flagged_fraction >= 1.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: the fields plus derived values; tuples become lists."""
        out: dict[str, Any] = _listify(asdict(self))
        out["name"] = self.name
        out["n_antennas"] = self.n_antennas
        out["n_chan"] = self.n_chan
        out["n_corr"] = self.n_corr
        out["phase_centre_deg"] = list(self.phase_centre_deg)
        out["duration"] = self.duration
        out["all_flagged"] = None if self.flagged_fraction is None else self.all_flagged
        return out


def require_unflagged(info: MSInfo) -> None:
    """Raise :class:`UserError` when every visibility of ``info`` is flagged.

    Parameters
    ----------
    info : MSInfo
        From :func:`inspect_ms` with ``flag_stats=True``.
    """
    if info.all_flagged:
        raise UserError(
            f"every visibility in {info.path} is flagged: nothing to calibrate or image; "
            "unflag the data (FLAG/FLAG_ROW) or leave this MS out of inputs.ms"
        )


def mjd_seconds_to_iso(t: float, precision: int = 3) -> str:
    """casacore MJD seconds (UTC) → ISO 8601 string with ``precision`` decimals of seconds."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ERFA "dubious year" for simulated far-future dates
        return str(Time(t / 86400.0, format="mjd", scale="utc", precision=precision).isot)


def radec_to_sexagesimal(ra: float, dec: float) -> tuple[str, str]:
    """(RA, Dec) radians → (``hh:mm:ss.ssss``, ``±dd:mm:ss.sss``)."""
    ra_s = Angle(ra * u.rad).wrap_at(360 * u.deg).to_string(unit=u.hour, sep=":", precision=4, pad=True)
    dec_s = Angle(dec * u.rad).to_string(unit=u.deg, sep=":", precision=3, pad=True, alwayssign=True)
    return str(ra_s), str(dec_s)


def _listify(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _listify(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_listify(v) for v in obj]
    return obj
