"""Read what the pipeline needs from a Measurement Set, and refuse bad input early.

:func:`inspect_ms` opens the MS read-only with python-casacore, reads the main
table in row blocks (so a large MS never loads at once) and its subtables, and
returns a frozen :class:`MSInfo`. Anything the pipeline cannot work with raises
:class:`ddpipe.errors.UserError` with one line naming the path and what to do.

Times are casacore MJD seconds (UTC), angles radians, frequencies Hz.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ddpipe.errors import UserError

log = logging.getLogger(__name__)

#: Main-table columns every MS has and that ddpipe reads.
REQUIRED_COLUMNS = ("TIME", "INTERVAL", "ANTENNA1", "ANTENNA2", "UVW", "FLAG", "DATA_DESC_ID", "FIELD_ID")
#: Subtables ddpipe (and DP3) read.
REQUIRED_SUBTABLES = ("ANTENNA", "SPECTRAL_WINDOW", "POLARIZATION", "DATA_DESCRIPTION", "FIELD", "OBSERVATION")

#: casacore Stokes::StokesTypes codes → names (POLARIZATION CORR_TYPE).
CORR_NAMES = {
    1: "I", 2: "Q", 3: "U", 4: "V",
    5: "RR", 6: "RL", 7: "LR", 8: "LL",
    9: "XX", 10: "XY", 11: "YX", 12: "YY",
    13: "RX", 14: "RY", 15: "LX", 16: "LY",
    17: "XR", 18: "XL", 19: "YR", 20: "YL",
    21: "PP", 22: "PQ", 23: "QP", 24: "QQ",
}

#: Bytes of FLAG read per block (bounds memory on a large MS).
FLAG_BLOCK_BYTES = 64 * 1024 * 1024

_SPLIT_HINT = {
    "field": "split it into one MS per field first, e.g. with CASA split/mstransform (field=...)",
    "spw": "split it into one MS per spectral window first, e.g. with DP3 "
    "(msin=IN msin.band=K msin.datacolumn=DATA msout=OUT_K steps=[]) or CASA split (spw=...)",
}


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
            raise ValueError(
                f"{self.path}: flag statistics were not gathered; call inspect_ms(..., flag_stats=True)"
            )
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


def inspect_ms(path: str | os.PathLike[str], data_column: str = "DATA", flag_stats: bool = True) -> MSInfo:
    """Inspect a Measurement Set read-only.

    Parameters
    ----------
    path : str or PathLike
        The MS directory.
    data_column : str
        Visibility column the pipeline will use; it must exist.
    flag_stats : bool
        Read FLAG/FLAG_ROW (in row blocks) for the flagged fractions. When
        False those fields are None and reading is much faster on a big MS.

    Returns
    -------
    MSInfo

    Raises
    ------
    UserError
        The path is missing, is not a casacore table or not an MS, lacks the
        data column, has no rows, has more than one field or spectral window,
        or has no OBSERVATION row.
    """
    import casacore.tables as pt

    p = Path(path).expanduser()
    ms = str(p.resolve()) if p.exists() else os.path.abspath(p)
    _check_path(ms)
    try:
        t = pt.table(ms, readonly=True, ack=False)
    except RuntimeError as exc:
        raise UserError(
            f"{ms}: cannot be opened as a casacore table ({_first_line(exc)}); give a valid Measurement Set"
        ) from None
    try:
        return _inspect_open(t, ms, data_column, flag_stats)
    finally:
        t.close()


def _check_path(ms: str) -> None:
    import casacore.tables as pt

    if not os.path.exists(ms):
        raise UserError(f"{ms}: no such file or directory; check the Measurement Set path")
    if not os.path.isdir(ms):
        raise UserError(
            f"{ms}: is a file, not a Measurement Set (an MS is a casacore table directory); "
            "give the path of the MS directory"
        )
    if not pt.tableexists(ms):
        raise UserError(
            f"{ms}: is not a casacore table (no table.dat); give the path of a Measurement Set directory"
        )


def _inspect_open(t: Any, ms: str, data_column: str, flag_stats: bool) -> MSInfo:
    colnames = list(t.colnames())
    missing = [c for c in REQUIRED_COLUMNS if c not in colnames]
    if missing:
        raise UserError(
            f"{ms}: is a casacore table but not a Measurement Set (no column {', '.join(missing)}); "
            "give the path of an MS main table"
        )
    keywords = t.getkeywords()
    missing = [s for s in REQUIRED_SUBTABLES if s not in keywords]
    if missing:
        raise UserError(
            f"{ms}: is not a complete Measurement Set (no subtable {', '.join(missing)}); "
            "repair or regenerate the MS"
        )
    data_columns = tuple(c for c in colnames if c.endswith("DATA") and _is_complex(t, c))
    if data_column not in colnames:
        have = ", ".join(data_columns) if data_columns else "none"
        raise UserError(
            f"{ms}: no data column {data_column!r}; it has {have}; choose one with --data-column "
            "or inputs.data_column"
        )
    n_rows = int(t.nrows())
    if n_rows == 0:
        raise UserError(f"{ms}: the main table has zero rows; nothing to process, check the MS")
    if not t.iscelldefined(data_column, 0):
        raise UserError(
            f"{ms}: column {data_column!r} exists but holds no data; fill it or choose another "
            f"with --data-column (columns: {', '.join(data_columns)})"
        )

    sub = {name: _open_subtable(t, ms, name) for name in REQUIRED_SUBTABLES}
    try:
        meta = _read_subtables(ms, sub)
    finally:
        for s in sub.values():
            s.close()

    n_chan = len(meta["chan_freqs"])
    n_corr = len(meta["correlations"])
    scan = _scan_main(t, ms, n_chan * n_corr, flag_stats)

    if scan["interval"] <= 0:
        raise UserError(f"{ms}: INTERVAL is {scan['interval']} s (must be > 0); repair the MS")
    n_slots = int(round((scan["time_last"] - scan["time_first"]) / scan["interval"])) + 1
    gaps = slot_gaps(scan["times"], scan["interval"])
    if gaps:
        log.info("%s: %d of %d time slots have no data (%d gap(s))", ms, n_slots - scan["n_times"], n_slots, len(gaps))

    return MSInfo(
        path=ms,
        n_rows=n_rows,
        data_column=data_column,
        data_columns=data_columns,
        has_weight_spectrum="WEIGHT_SPECTRUM" in colnames,
        n_slots=n_slots,
        time_first_utc=mjd_seconds_to_iso(scan["time_first"]),
        time_last_utc=mjd_seconds_to_iso(scan["time_last"]),
        gaps=gaps,
        **{k: v for k, v in scan.items() if k not in ("ddids", "fields", "times")},
        **meta,
    )


def _is_complex(t: Any, col: str) -> bool:
    return t.getcoldesc(col).get("valueType", "") in ("complex", "dcomplex")


def _open_subtable(t: Any, ms: str, name: str) -> Any:
    import casacore.tables as pt

    try:
        return pt.table(t.getkeyword(name), readonly=True, ack=False)
    except RuntimeError as exc:
        raise UserError(
            f"{ms}: subtable {name} cannot be opened ({_first_line(exc)}); repair or regenerate the MS"
        ) from None


def _read_subtables(ms: str, sub: dict[str, Any]) -> dict[str, Any]:
    """Antennas, band, correlations, field and telescope from the subtables."""
    for name, what, hint in (("FIELD", "fields", "field"), ("SPECTRAL_WINDOW", "spectral windows", "spw"),
                             ("DATA_DESCRIPTION", "data descriptions", "spw")):
        n = sub[name].nrows()
        if n == 0:
            raise UserError(f"{ms}: the {name} table is empty; repair or regenerate the MS")
        if n > 1:
            raise UserError(
                f"{ms}: has {n} {what} ({name} rows): more than one per MS is unsupported; "
                f"{_SPLIT_HINT[hint]}"
            )
    if sub["OBSERVATION"].nrows() == 0:
        raise UserError(
            f"{ms}: the OBSERVATION table has no row (DP3 needs one, for TELESCOPE_NAME); "
            "add one, e.g. with casacore.tables addrows + putcell"
        )
    if sub["ANTENNA"].nrows() == 0:
        raise UserError(f"{ms}: the ANTENNA table is empty; repair or regenerate the MS")

    dd = sub["DATA_DESCRIPTION"]
    spw_id = int(dd.getcell("SPECTRAL_WINDOW_ID", 0))
    pol_id = int(dd.getcell("POLARIZATION_ID", 0))
    spw, pol = sub["SPECTRAL_WINDOW"], sub["POLARIZATION"]
    if spw_id != 0 or not 0 <= pol_id < pol.nrows():
        raise UserError(
            f"{ms}: DATA_DESCRIPTION row 0 points to SPECTRAL_WINDOW {spw_id} / POLARIZATION {pol_id}, "
            "which do not exist; repair the MS"
        )
    chan_freqs = np.asarray(spw.getcell("CHAN_FREQ", 0), dtype=float).ravel()
    chan_widths = np.asarray(spw.getcell("CHAN_WIDTH", 0), dtype=float).ravel()
    half = np.abs(chan_widths) / 2
    corr_type = np.asarray(pol.getcell("CORR_TYPE", pol_id)).ravel()

    field = sub["FIELD"]
    phase_dir = np.asarray(field.getcell("PHASE_DIR", 0), dtype=float).reshape(-1, 2)[0]
    ra = float(np.mod(phase_dir[0], 2 * np.pi))
    dec = float(phase_dir[1])
    measinfo = field.getcolkeywords("PHASE_DIR").get("MEASINFO", {})
    field_name = str(field.getcell("NAME", 0)) if "NAME" in field.colnames() else ""

    ant = sub["ANTENNA"]
    names = tuple(str(n) for n in ant.getcol("NAME"))
    positions = np.asarray(ant.getcol("POSITION"), dtype=float).reshape(-1, 3)

    return {
        "telescope": str(sub["OBSERVATION"].getcell("TELESCOPE_NAME", 0)),
        "antenna_names": names,
        "antenna_positions": tuple(tuple(float(x) for x in row) for row in positions),
        "chan_freqs": tuple(float(f) for f in chan_freqs),
        "chan_widths": tuple(float(w) for w in chan_widths),
        "freq_range": (float(np.min(chan_freqs - half)), float(np.max(chan_freqs + half))),
        "ref_frequency": float(spw.getcell("REF_FREQUENCY", 0)),
        "correlations": tuple(CORR_NAMES.get(int(c), f"CORR{int(c)}") for c in corr_type),
        "phase_centre": (ra, dec),
        "phase_centre_frame": str(measinfo.get("Ref", "J2000")),
        "phase_centre_sexagesimal": radec_to_sexagesimal(ra, dec),
        "field_name": field_name,
    }


def _scan_main(t: Any, ms: str, cells_per_row: int, flag_stats: bool) -> dict[str, Any]:
    """One pass over the main table in row blocks: times, intervals, baselines, flags."""
    n_rows = int(t.nrows())
    block = max(1024, FLAG_BLOCK_BYTES // max(1, cells_per_row)) if flag_stats else 1 << 20
    has_flag_row = "FLAG_ROW" in t.colnames()
    times: list[np.ndarray] = []
    intervals: dict[float, int] = {}
    pairs: set[int] = set()
    has_auto = False
    ddids: set[int] = set()
    fields: set[int] = set()
    n_flagged = 0
    n_flag_rows = 0
    n_ant_code = 1 << 20
    for start in range(0, n_rows, block):
        n = min(block, n_rows - start)
        times.append(np.unique(t.getcol("TIME", start, n)))
        vals, counts = np.unique(t.getcol("INTERVAL", start, n), return_counts=True)
        for v, c in zip(vals.tolist(), counts.tolist()):
            intervals[v] = intervals.get(v, 0) + c
        a1 = t.getcol("ANTENNA1", start, n).astype(np.int64)
        a2 = t.getcol("ANTENNA2", start, n).astype(np.int64)
        cross = a1 != a2
        has_auto = has_auto or bool((~cross).any())
        lo, hi = np.minimum(a1[cross], a2[cross]), np.maximum(a1[cross], a2[cross])
        pairs.update(np.unique(lo * n_ant_code + hi).tolist())
        ddids.update(np.unique(t.getcol("DATA_DESC_ID", start, n)).tolist())
        fields.update(np.unique(t.getcol("FIELD_ID", start, n)).tolist())
        if flag_stats:
            flag = np.asarray(t.getcol("FLAG", start, n), dtype=bool).reshape(n, -1)
            if has_flag_row:
                frow = np.asarray(t.getcol("FLAG_ROW", start, n), dtype=bool)
                n_flag_rows += int(frow.sum())
                flag = flag | frow[:, None]
            n_flagged += int(flag.sum())
    for col, ids, hint in (("FIELD_ID", fields, "field"), ("DATA_DESC_ID", ddids, "spw")):
        if ids != {0}:
            raise UserError(
                f"{ms}: rows use {col} {sorted(ids)} but only id 0 exists or is supported; "
                f"{_SPLIT_HINT[hint]}"
            )
    all_times = np.unique(np.concatenate(times))
    return {
        "time_first": float(all_times[0]),
        "time_last": float(all_times[-1]),
        "n_times": int(all_times.size),
        "interval": _weighted_median(intervals),
        "n_baselines": len(pairs),
        "has_autocorrelations": has_auto,
        "flagged_fraction": n_flagged / (n_rows * cells_per_row) if flag_stats else None,
        "flag_row_fraction": n_flag_rows / n_rows if flag_stats else None,
        "ddids": ddids,
        "fields": fields,
        "times": all_times,
    }


def slot_gaps(times: np.ndarray, interval: float) -> tuple[tuple[int, int], ...]:
    """Runs of empty slots on the grid ``times[0] + k * interval``.

    Parameters
    ----------
    times : (n_times,) float64
        Distinct TIME values, ascending.
    interval : float
        Slot width, seconds (> 0).

    Returns
    -------
    tuple of (first_slot, n_slots)
    """
    slots = np.rint((times - times[0]) / interval).astype(np.int64)
    jumps = np.nonzero(np.diff(slots) > 1)[0]
    return tuple((int(slots[j] + 1), int(slots[j + 1] - slots[j] - 1)) for j in jumps)


def _weighted_median(counts: dict[float, int]) -> float:
    """Median of values given as {value: count} (lower median for an even total)."""
    vals = sorted(counts)
    total = sum(counts.values())
    acc = 0
    for v in vals:
        acc += counts[v]
        if 2 * acc >= total:
            return float(v)
    return float(vals[-1])  # pragma: no cover


def mjd_seconds_to_iso(t: float) -> str:
    """casacore MJD seconds (UTC) → ISO 8601 string, millisecond precision."""
    from astropy.time import Time

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ERFA "dubious year" for simulated far-future dates
        return str(Time(t / 86400.0, format="mjd", scale="utc").isot)


def radec_to_sexagesimal(ra: float, dec: float) -> tuple[str, str]:
    """(RA, Dec) radians → (``hh:mm:ss.ssss``, ``±dd:mm:ss.sss``)."""
    import astropy.units as u
    from astropy.coordinates import Angle

    ra_s = Angle(ra * u.rad).wrap_at(360 * u.deg).to_string(unit=u.hour, sep=":", precision=4, pad=True)
    dec_s = Angle(dec * u.rad).to_string(unit=u.deg, sep=":", precision=3, pad=True, alwayssign=True)
    return str(ra_s), str(dec_s)


def _listify(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _listify(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_listify(v) for v in obj]
    return obj


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
