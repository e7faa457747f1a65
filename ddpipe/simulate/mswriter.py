"""Create a Measurement Set that DP3 and WSClean read, and fill its rows block by block.

Main table: UVW (J2000), DATA, FLAG, WEIGHT_SPECTRUM (tiled, fixed shape
(nchan, 4)), WEIGHT, SIGMA, FLAG_ROW and the scalar index columns; cross
correlations only, rows time-major in baseline order (p < q). Subtables:
ANTENNA, FEED, SPECTRAL_WINDOW, POLARIZATION (XX XY YX YY), DATA_DESCRIPTION,
FIELD, OBSERVATION (one row with TELESCOPE_NAME), PROCESSOR; HISTORY and the
other required ones exist but stay empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import casacore.tables as pt
import numpy as np

#: casacore Stokes enum: XX XY YX YY
CORR_TYPES = np.array([9, 10, 11, 12], dtype=np.int32)
CORR_PRODUCT = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.int32)
#: MFrequency TOPO
MEAS_FREQ_TOPO = 5
_TILE_BYTES = 1 << 20


@dataclass(frozen=True)
class MSLayout:
    """What the MS describes (everything but the visibilities).

    Attributes
    ----------
    station_names
        (nst,) names.
    station_itrf
        (nst, 3) ITRF metres.
    station_diameter
        Metres.
    telescope
        OBSERVATION::TELESCOPE_NAME.
    freqs
        (nchan,) channel centres, Hz.
    chan_width
        Hz.
    times
        (ntime,) integration centres, UTC MJD seconds.
    interval
        Integration time, seconds.
    phase_centre
        (ra, dec) J2000 radians.
    field_name
        FIELD::NAME.
    spw_name
        SPECTRAL_WINDOW::NAME (``SB-000``: LOFAR's name of sub-band 0).
    """

    station_names: tuple[str, ...]
    station_itrf: np.ndarray
    station_diameter: float
    telescope: str
    freqs: np.ndarray
    chan_width: float
    times: np.ndarray
    interval: float
    phase_centre: tuple[float, float]
    field_name: str = "ddpipe-sim"
    spw_name: str = "SB-000"


def create_ms(path: str | Path, lay: MSLayout, nrow: int) -> None:
    """Create the MS at ``path`` with ``nrow`` empty rows and every subtable filled.

    Parameters
    ----------
    path
        New MS directory (must not exist).
    lay
        What to describe.
    nrow
        Number of main-table rows (ntime × nbaseline).
    """
    nchan = len(lay.freqs)
    rows_per_tile = max(1, _TILE_BYTES // (nchan * 4 * 8))
    cols = [
        pt.makearrcoldesc(
            "DATA",
            0j,
            shape=[nchan, 4],
            valuetype="complex",
            datamanagertype="TiledColumnStMan",
            datamanagergroup="TiledData",
            comment="The data column",
        ),
        pt.makearrcoldesc(
            "WEIGHT_SPECTRUM",
            0.0,
            shape=[nchan, 4],
            valuetype="float",
            datamanagertype="TiledColumnStMan",
            datamanagergroup="TiledWeightSpectrum",
            comment="Weight for each data point",
        ),
        pt.makearrcoldesc(
            "FLAG",
            False,
            shape=[nchan, 4],
            valuetype="boolean",
            datamanagertype="TiledColumnStMan",
            datamanagergroup="TiledFlag",
            comment="The data flags, array of bools with same shape as data",
        ),
        pt.makearrcoldesc("WEIGHT", 0.0, shape=[4], valuetype="float", comment="Weight for each polarization spectrum"),
        pt.makearrcoldesc(
            "SIGMA",
            0.0,
            shape=[4],
            valuetype="float",
            comment="Estimated rms noise for channel with unity bandpass response",
        ),
    ]
    dminfo = {
        f"*{k + 1}": {
            "TYPE": "TiledColumnStMan",
            "NAME": group,
            "SPEC": {"DEFAULTTILESHAPE": np.array([4, nchan, rows_per_tile], dtype=np.int32)},
            "COLUMNS": [col],
        }
        for k, (col, group) in enumerate(
            [("DATA", "TiledData"), ("WEIGHT_SPECTRUM", "TiledWeightSpectrum"), ("FLAG", "TiledFlag")]
        )
    }
    t = pt.default_ms(str(path), pt.maketabdesc(cols), dminfo)
    try:
        t.putcolkeyword("UVW", "MEASINFO", {"type": "uvw", "Ref": "J2000"})
        t.addrows(nrow)
    finally:
        t.close()
    _fill_subtables(Path(path), lay)


def _fill_subtables(ms: Path, lay: MSLayout) -> None:
    """Fill the subtables ``default_ms`` created empty (HISTORY and the rest stay empty)."""
    t_start = float(lay.times[0] - lay.interval / 2)
    t_end = float(lay.times[-1] + lay.interval / 2)
    _fill_antenna(ms, lay)
    _fill_feed(ms, len(lay.station_names), t_start, t_end)
    _fill_spectral_window(ms, lay)
    _fill_polarization(ms)
    _fill_data_description(ms)
    _fill_field(ms, lay, t_start)
    _fill_observation(ms, lay, t_start, t_end)
    _fill_processor(ms)


def _subtable(ms: Path, name: str):
    return pt.table(str(ms / name), readonly=False, ack=False)


def _fill_antenna(ms: Path, lay: MSLayout) -> None:
    """One row per station: names, ITRF positions, dish diameter."""
    nst = len(lay.station_names)
    with _subtable(ms, "ANTENNA") as t:
        t.addrows(nst)
        t.putcol("NAME", list(lay.station_names))
        t.putcol("STATION", list(lay.station_names))
        t.putcol("TYPE", ["GROUND-BASED"] * nst)
        t.putcol("MOUNT", ["X-Y"] * nst)
        t.putcol("POSITION", np.asarray(lay.station_itrf, dtype=float))
        t.putcol("OFFSET", np.zeros((nst, 3)))
        t.putcol("DISH_DIAMETER", np.full(nst, lay.station_diameter))
        t.putcol("FLAG_ROW", np.zeros(nst, dtype=bool))


def _fill_feed(ms: Path, nst: int, t_start: float, t_end: float) -> None:
    """One X/Y feed per station, valid for the whole observation and every spectral window."""
    with _subtable(ms, "FEED") as t:
        t.addrows(nst)
        t.putcol("ANTENNA_ID", np.arange(nst, dtype=np.int32))
        t.putcol("FEED_ID", np.zeros(nst, dtype=np.int32))
        t.putcol("SPECTRAL_WINDOW_ID", np.full(nst, -1, dtype=np.int32))
        t.putcol("TIME", np.full(nst, (t_start + t_end) / 2))
        t.putcol("INTERVAL", np.full(nst, t_end - t_start))
        t.putcol("NUM_RECEPTORS", np.full(nst, 2, dtype=np.int32))
        t.putcol("BEAM_ID", np.full(nst, -1, dtype=np.int32))
        t.putcol("BEAM_OFFSET", np.zeros((nst, 2, 2)))
        t.putcol("POLARIZATION_TYPE", np.array([["X", "Y"]] * nst))
        t.putcol("POL_RESPONSE", np.tile(np.eye(2, dtype=np.complex64), (nst, 1, 1)))
        t.putcol("POSITION", np.zeros((nst, 3)))
        t.putcol("RECEPTOR_ANGLE", np.tile(np.array([0.0, np.pi / 2]), (nst, 1)))


def _fill_spectral_window(ms: Path, lay: MSLayout) -> None:
    """One TOPO spectral window with the channel frequencies and widths."""
    nchan = len(lay.freqs)
    with _subtable(ms, "SPECTRAL_WINDOW") as t:
        t.addrows(1)
        freqs = np.asarray(lay.freqs, dtype=float)
        width = np.full(nchan, float(lay.chan_width))
        t.putcell("NUM_CHAN", 0, nchan)
        t.putcell("CHAN_FREQ", 0, freqs)
        t.putcell("CHAN_WIDTH", 0, width)
        t.putcell("EFFECTIVE_BW", 0, width)
        t.putcell("RESOLUTION", 0, width)
        t.putcell("REF_FREQUENCY", 0, float(freqs.mean()))
        t.putcell("TOTAL_BANDWIDTH", 0, float(width.sum()))
        t.putcell("MEAS_FREQ_REF", 0, MEAS_FREQ_TOPO)
        t.putcell("NAME", 0, lay.spw_name)
        t.putcell("NET_SIDEBAND", 0, 1)
        t.putcell("FREQ_GROUP", 0, 0)
        t.putcell("FREQ_GROUP_NAME", 0, "")
        t.putcell("IF_CONV_CHAIN", 0, 0)
        t.putcell("FLAG_ROW", 0, False)


def _fill_polarization(ms: Path) -> None:
    """One row: XX XY YX YY."""
    with _subtable(ms, "POLARIZATION") as t:
        t.addrows(1)
        t.putcell("NUM_CORR", 0, 4)
        t.putcell("CORR_TYPE", 0, CORR_TYPES)
        t.putcell("CORR_PRODUCT", 0, CORR_PRODUCT)
        t.putcell("FLAG_ROW", 0, False)


def _fill_data_description(ms: Path) -> None:
    """One row pairing spectral window 0 with polarization 0."""
    with _subtable(ms, "DATA_DESCRIPTION") as t:
        t.addrows(1)
        t.putcell("SPECTRAL_WINDOW_ID", 0, 0)
        t.putcell("POLARIZATION_ID", 0, 0)
        t.putcell("FLAG_ROW", 0, False)


def _fill_field(ms: Path, lay: MSLayout, t_start: float) -> None:
    """One field at the phase centre (phase, delay and reference directions alike)."""
    with _subtable(ms, "FIELD") as t:
        t.addrows(1)
        direction = np.array([[lay.phase_centre[0], lay.phase_centre[1]]], dtype=float)
        for col in ("PHASE_DIR", "DELAY_DIR", "REFERENCE_DIR"):
            t.putcell(col, 0, direction)
        t.putcell("NAME", 0, lay.field_name)
        t.putcell("CODE", 0, "")
        t.putcell("NUM_POLY", 0, 0)
        t.putcell("TIME", 0, t_start)
        t.putcell("SOURCE_ID", 0, -1)
        t.putcell("FLAG_ROW", 0, False)


def _fill_observation(ms: Path, lay: MSLayout, t_start: float, t_end: float) -> None:
    """One row with TELESCOPE_NAME and the time range."""
    with _subtable(ms, "OBSERVATION") as t:
        t.addrows(1)
        t.putcell("TELESCOPE_NAME", 0, lay.telescope)
        t.putcell("TIME_RANGE", 0, np.array([t_start, t_end]))
        t.putcell("OBSERVER", 0, "ddpipe simulate")
        t.putcell("PROJECT", 0, "ddpipe-sim")
        t.putcell("SCHEDULE_TYPE", 0, "")
        t.putcell("RELEASE_DATE", 0, t_end)
        t.putcell("LOG", 0, np.array(["simulated by ddpipe"]))
        t.putcell("SCHEDULE", 0, np.array([""]))
        t.putcell("FLAG_ROW", 0, False)


def _fill_processor(ms: Path) -> None:
    """One correlator row."""
    with _subtable(ms, "PROCESSOR") as t:
        t.addrows(1)
        t.putcell("TYPE", 0, "CORRELATOR")
        t.putcell("SUB_TYPE", 0, "")
        t.putcell("TYPE_ID", 0, -1)
        t.putcell("MODE_ID", 0, -1)
        t.putcell("FLAG_ROW", 0, False)


@dataclass(frozen=True)
class RowBlock:
    """Main-table rows ``start .. start + len(time) - 1``.

    Attributes
    ----------
    start
        First row.
    time
        (nrow,) MJD seconds.
    ant1, ant2
        (nrow,) int32.
    uvw
        (nrow, 3) metres (uvw[ant2] − uvw[ant1]).
    data
        (nrow, nchan, 4) complex64.
    sigma
        Noise per real/imaginary part (Jy); WEIGHT = 1/σ² (1 without noise).
    """

    start: int
    time: np.ndarray
    ant1: np.ndarray
    ant2: np.ndarray
    uvw: np.ndarray
    data: np.ndarray
    sigma: float


def write_rows(table, block: RowBlock, interval: float) -> None:
    """Put one :class:`RowBlock` into an open, writable main table."""
    n = len(block.time)
    nchan = block.data.shape[1]
    s = block.start
    sigma = block.sigma if block.sigma > 0 else 1.0
    weight = np.float32(1.0 / sigma**2)
    table.putcol("TIME", block.time, s, n)
    table.putcol("TIME_CENTROID", block.time, s, n)
    table.putcol("INTERVAL", np.full(n, interval), s, n)
    table.putcol("EXPOSURE", np.full(n, interval), s, n)
    table.putcol("ANTENNA1", block.ant1, s, n)
    table.putcol("ANTENNA2", block.ant2, s, n)
    table.putcol("UVW", block.uvw, s, n)
    table.putcol("DATA", block.data.astype(np.complex64, copy=False), s, n)
    table.putcol("FLAG", np.zeros((n, nchan, 4), dtype=bool), s, n)
    table.putcol("WEIGHT_SPECTRUM", np.full((n, nchan, 4), weight, dtype=np.float32), s, n)
    table.putcol("WEIGHT", np.full((n, 4), weight, dtype=np.float32), s, n)
    table.putcol("SIGMA", np.full((n, 4), sigma, dtype=np.float32), s, n)
    table.putcol("FLAG_ROW", np.zeros(n, dtype=bool), s, n)
    zeros = np.zeros(n, dtype=np.int32)
    for col in ("FEED1", "FEED2", "DATA_DESC_ID", "FIELD_ID", "ARRAY_ID", "OBSERVATION_ID", "PROCESSOR_ID"):
        table.putcol(col, zeros, s, n)
    table.putcol("SCAN_NUMBER", np.ones(n, dtype=np.int32), s, n)
    table.putcol("STATE_ID", np.full(n, -1, dtype=np.int32), s, n)
