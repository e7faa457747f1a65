"""Read what the pipeline needs from a Measurement Set, and refuse bad input early.

:func:`inspect_ms` opens the MS read-only with python-casacore, reads the main
table in row blocks (so a large MS never loads at once) and its subtables, and
returns a frozen :class:`~ddpipe.ms.info.MSInfo` (re-exported here). Anything
the pipeline cannot work with raises :class:`ddpipe.errors.UserError` with one
line naming the path and what to do.

Times are casacore MJD seconds (UTC), angles radians, frequencies Hz.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import casacore.tables as pt
import numpy as np

from ddpipe.errors import UserError
from ddpipe.ms.info import MSInfo, mjd_seconds_to_iso, radec_to_sexagesimal, require_unflagged

__all__ = ["MSInfo", "inspect_ms", "mjd_seconds_to_iso", "radec_to_sexagesimal", "require_unflagged", "slot_gaps"]

log = logging.getLogger(__name__)

#: Main-table columns every MS has and that ddpipe reads.
REQUIRED_COLUMNS = ("TIME", "INTERVAL", "ANTENNA1", "ANTENNA2", "UVW", "FLAG", "DATA_DESC_ID", "FIELD_ID")
#: Subtables ddpipe (and DP3) read.
REQUIRED_SUBTABLES = ("ANTENNA", "SPECTRAL_WINDOW", "POLARIZATION", "DATA_DESCRIPTION", "FIELD", "OBSERVATION")

#: casacore Stokes::StokesTypes codes → names (POLARIZATION CORR_TYPE).
CORR_NAMES = {
    1: "I",
    2: "Q",
    3: "U",
    4: "V",
    5: "RR",
    6: "RL",
    7: "LR",
    8: "LL",
    9: "XX",
    10: "XY",
    11: "YX",
    12: "YY",
    13: "RX",
    14: "RY",
    15: "LX",
    16: "LY",
    17: "XR",
    18: "XL",
    19: "YR",
    20: "YL",
    21: "PP",
    22: "PQ",
    23: "QP",
    24: "QQ",
}

#: Bytes of FLAG read per block (bounds memory on a large MS).
FLAG_BLOCK_BYTES = 64 * 1024 * 1024

_SPLIT_HINT = {
    "field": "split it into one MS per field first, e.g. with CASA split/mstransform (field=...)",
    "spw": "split it into one MS per spectral window first, e.g. with DP3 "
    "(msin=IN msin.band=K msin.datacolumn=DATA msout=OUT_K steps=[]) or CASA split (spw=...)",
}


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
    p = Path(path).expanduser()
    ms = str(p.resolve()) if p.exists() else os.path.abspath(p)
    _check_path(ms)
    stamp = _fingerprint(ms)
    hit = _CACHE.get((ms, data_column, flag_stats, stamp))
    if hit is not None:
        return hit
    try:
        t = pt.table(ms, readonly=True, ack=False)
    except RuntimeError as exc:
        raise UserError(
            f"{ms}: cannot be opened as a casacore table ({_first_line(exc)}); give a valid Measurement Set"
        ) from None
    try:
        info = _inspect_open(t, ms, data_column, flag_stats)
    finally:
        t.close()
    if len(_CACHE) >= _CACHE_SIZE:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[(ms, data_column, flag_stats, stamp)] = info
    return info


#: inspected MSs of this process, by (path, data column, flag statistics, fingerprint): a run checks
#: its MSs before it starts and plans each cycle's chunks from them; the FLAG scan is done once
_CACHE: dict[tuple, MSInfo] = {}
_CACHE_SIZE = 64


def _fingerprint(ms: str) -> tuple:
    """Size and modification time of the table files of the MS and its subtables: any write changes it."""
    out = []
    for f in sorted([*Path(ms).glob("table.*"), *Path(ms).glob("*/table.*")]):
        try:
            st = f.stat()
        except OSError:
            continue
        out.append((str(f.relative_to(ms)), st.st_size, st.st_mtime_ns))
    return tuple(out)


def _check_path(ms: str) -> None:
    if not os.path.exists(ms):
        raise UserError(f"{ms}: no such file or directory; check the Measurement Set path")
    if not os.path.isdir(ms):
        raise UserError(
            f"{ms}: is a file, not a Measurement Set (an MS is a casacore table directory); "
            "give the path of the MS directory"
        )
    if not pt.tableexists(ms):
        raise UserError(f"{ms}: is not a casacore table (no table.dat); give the path of a Measurement Set directory")


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
            f"{ms}: is not a complete Measurement Set (no subtable {', '.join(missing)}); repair or regenerate the MS"
        )
    data_columns = tuple(c for c in colnames if c.endswith("DATA") and _is_complex(t, c))
    if data_column not in colnames:
        have = ", ".join(data_columns) if data_columns else "none"
        raise UserError(
            f"{ms}: no data column {data_column!r}; it has {have}; choose one with --data-column or inputs.data_column"
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
    try:
        return pt.table(t.getkeyword(name), readonly=True, ack=False)
    except RuntimeError as exc:
        raise UserError(
            f"{ms}: subtable {name} cannot be opened ({_first_line(exc)}); repair or regenerate the MS"
        ) from None


def _read_subtables(ms: str, sub: dict[str, Any]) -> dict[str, Any]:
    """Antennas, band, correlations, field and telescope from the subtables."""
    for name, what, hint in (
        ("FIELD", "fields", "field"),
        ("SPECTRAL_WINDOW", "spectral windows", "spw"),
        ("DATA_DESCRIPTION", "data descriptions", "spw"),
    ):
        n = sub[name].nrows()
        if n == 0:
            raise UserError(f"{ms}: the {name} table is empty; repair or regenerate the MS")
        if n > 1:
            raise UserError(
                f"{ms}: has {n} {what} ({name} rows): more than one per MS is unsupported; {_SPLIT_HINT[hint]}"
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
                f"{ms}: rows use {col} {sorted(ids)} but only id 0 exists or is supported; {_SPLIT_HINT[hint]}"
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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
