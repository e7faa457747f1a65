"""Read what imaging needs from a Measurement Set, in row blocks of bounded size.

Only the two parallel-hand correlations are kept (XX, YY or RR, LL; a
single-correlation MS is used for both). A sample's weight is
WEIGHT_SPECTRUM (else WEIGHT spread over channels), set to zero where FLAG or
FLAG_ROW is set or the data are not finite, so downstream code needs no flags.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from ddpipe.errors import UserError

log = logging.getLogger(__name__)

#: casacore Stokes enum values of the parallel hands, preferred pairs first.
_PAIRS = ((9, 12), (5, 8))  # (XX, YY), (RR, LL)
_SINGLE = (1, 9, 12, 5, 8)  # I, XX, YY, RR, LL


#: the largest slot group. Small groups let row ranges split an MS evenly (with 64 on
#: issue 10's 720 slots, two ranges got 384 and 336 slots: one Dask worker ran 10%
#: longer than the other); per-facet averaging over more than 16 time slots gained
#: nothing measurable there (the short baselines average channels instead; samples
#: gridded per facet: 0.2285 of all with groups of 64, 0.2286 with 16)
MAX_SLOT_GROUP = 16


@dataclass(frozen=True)
class MSDescription:
    """What the imager needs to know about one MS (one field, one spectral window)."""

    path: str
    data_column: str
    nrow: int
    freq: np.ndarray = field(compare=False, repr=False)  # (chan,) Hz
    chan_width: np.ndarray = field(compare=False, repr=False)  # (chan,) Hz
    phase_centre: tuple[float, float] = (0.0, 0.0)  # (ra, dec) radians, J2000
    corr_index: tuple[int, int] = (0, 0)  # positions of the two parallel hands in the corr axis
    weight_column: str = "WEIGHT_SPECTRUM"
    time_range: tuple[float, float] = (0.0, 0.0)  # MJD seconds
    time_step: float = 1.0  # seconds between time slots (the smallest; 1 for a single slot)
    n_slots: int = 1  # time slots from the first to the last
    #: slots per group (a power of two, at most :data:`MAX_SLOT_GROUP`, at least 8 groups when the MS
    #: has the slots): per-facet averaging never spans two groups, and row ranges start on a group
    slot_group: int = 1
    #: rows where a new slot group starts (rows in time order; empty when they are not)
    group_starts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64), compare=False, repr=False)
    telescope: str = ""
    antenna_names: tuple[str, ...] = ()


def describe_ms(path: str | Path, data_column: str = "DATA") -> MSDescription:
    """Open ``path`` read-only and check it can be imaged.

    Raises
    ------
    UserError
        Not an MS, missing column, several spectral windows or fields, no parallel-hand correlations.
    """
    from casacore import tables as pt

    p = Path(path)
    if not (p / "table.dat").is_file():
        raise UserError(f"{p}: not a Measurement Set (no table.dat); check the --ms path")
    try:
        t = pt.table(str(p), ack=False)
    except RuntimeError as exc:
        raise UserError(f"{p}: cannot open as a casacore table ({exc}); is it a Measurement Set?") from None
    with t:
        cols = t.colnames()
        if data_column not in cols:
            have = ", ".join(c for c in cols if c.endswith("DATA")) or "none"
            raise UserError(f"{p}: no column {data_column!r} to image (data columns present: {have}); "
                            "choose one with --data-column")
        nrow = t.nrows()
        if nrow == 0:
            raise UserError(f"{p}: the main table has no rows; nothing to image")
        weight_column = "WEIGHT_SPECTRUM"
        if "WEIGHT_SPECTRUM" not in cols or not t.iscelldefined("WEIGHT_SPECTRUM", 0):
            weight_column = "WEIGHT"
        ddids = np.unique(t.getcol("DATA_DESC_ID"))
        fields = np.unique(t.getcol("FIELD_ID"))
        times = t.getcol("TIME")
    if len(ddids) != 1:
        raise UserError(f"{p}: {len(ddids)} data descriptions (spectral windows) in one MS; "
                        "split it into one MS per spectral window (e.g. with DP3) and pass each with --ms")
    if len(fields) != 1:
        raise UserError(f"{p}: {len(fields)} fields in one MS; split it into one MS per field first")
    dd = pt.table(str(p / "DATA_DESCRIPTION"), ack=False)
    spw_id = int(dd.getcol("SPECTRAL_WINDOW_ID")[ddids[0]])
    pol_id = int(dd.getcol("POLARIZATION_ID")[ddids[0]])
    dd.close()
    spw = pt.table(str(p / "SPECTRAL_WINDOW"), ack=False)
    freq = np.asarray(spw.getcol("CHAN_FREQ")[spw_id], dtype=np.float64)
    width = np.abs(np.asarray(spw.getcol("CHAN_WIDTH")[spw_id], dtype=np.float64))
    spw.close()
    pol = pt.table(str(p / "POLARIZATION"), ack=False)
    corr = [int(c) for c in pol.getcol("CORR_TYPE")[pol_id]]
    pol.close()
    fld = pt.table(str(p / "FIELD"), ack=False)
    phase = fld.getcol("PHASE_DIR")[int(fields[0])][0]
    fld.close()
    telescope = ""
    if (p / "OBSERVATION").is_dir():
        obs = pt.table(str(p / "OBSERVATION"), ack=False)
        if obs.nrows():
            telescope = str(obs.getcol("TELESCOPE_NAME")[0])
        obs.close()
    ant = pt.table(str(p / "ANTENNA"), ack=False)
    antenna_names = tuple(str(a) for a in ant.getcol("NAME")) if ant.nrows() else ()
    ant.close()
    idx = None
    for a, b in _PAIRS:
        if a in corr and b in corr:
            idx = (corr.index(a), corr.index(b))
            break
    if idx is None:
        single = [c for c in _SINGLE if c in corr]
        if not single:
            raise UserError(f"{p}: correlations {corr} have no parallel hands (XX/YY, RR/LL or I) "
                            "to form Stokes I from")
        idx = (corr.index(single[0]),) * 2
    steps = np.diff(np.unique(times))
    steps = steps[steps > 1e-6]
    time_step = float(steps.min()) if steps.size else 1.0
    slots = np.rint((times - times.min()) / time_step).astype(np.int64)
    n_slots = int(slots.max()) + 1
    group = MAX_SLOT_GROUP
    while group > 1 and n_slots < 8 * group:
        group //= 2
    in_order = bool(np.all(np.diff(times) >= 0))
    starts = np.flatnonzero(np.diff(slots // group) != 0) + 1 if in_order else np.zeros(0, dtype=np.int64)
    return MSDescription(
        path=str(p), data_column=data_column, nrow=nrow, freq=freq, chan_width=width,
        time_step=time_step, n_slots=n_slots, slot_group=group, group_starts=starts.astype(np.int64),
        phase_centre=(float(phase[0]) % (2 * np.pi), float(phase[1])), corr_index=idx,
        weight_column=weight_column, time_range=(float(times.min()), float(times.max())),
        telescope=telescope, antenna_names=antenna_names,
    )


@dataclass(frozen=True)
class VisBlock:
    """A block of consecutive rows: the parallel hands and their weights.

    Shapes: ``uvw (row, 3)`` float64 metres, ``time (row,)`` float64 MJD s,
    ``ant1, ant2 (row,)`` int32, ``vis (row, chan, 2)`` complex64 (or None when not
    read), ``weight (row, chan, 2)`` float32 (zero where flagged).
    """

    start: int
    uvw: np.ndarray
    time: np.ndarray
    ant1: np.ndarray
    ant2: np.ndarray
    weight: np.ndarray
    vis: np.ndarray | None = None

    @property
    def nrow(self) -> int:
        return len(self.time)


def iter_blocks(desc: MSDescription, row_block: int, *, with_vis: bool = True,
                column: str | None = None, start: int = 0, stop: int | None = None) -> Iterator[VisBlock]:
    """Yield :class:`VisBlock` of at most ``row_block`` rows, in row order.

    Parameters
    ----------
    desc
        From :func:`describe_ms`.
    row_block
        Rows per block; bounds the memory used (about ``row_block × chan × 40`` bytes).
    with_vis
        Read the data column too (else only metadata and weights).
    column
        Data column to read instead of ``desc.data_column``.
    start, stop
        Rows ``[start, stop)`` only (default: all).
    """
    from casacore import tables as pt

    col = column or desc.data_column
    i0, i1 = desc.corr_index
    # read only the two parallel hands: (blc, trc, inc) over (chan, corr)
    sl = ([0, i0], [-1, i1], [1, max(1, i1 - i0)])

    def hands(t, name: str, start: int, n: int) -> np.ndarray:
        a = t.getcolslice(name, *sl, start, n)
        return a if i1 != i0 else np.concatenate([a, a], axis=-1)

    with pt.table(desc.path, ack=False) as t:
        stop = desc.nrow if stop is None else min(stop, desc.nrow)
        for start in range(start, stop, row_block):
            n = min(row_block, stop - start)
            bad = hands(t, "FLAG", start, n)
            bad |= t.getcol("FLAG_ROW", start, n)[:, None, None]
            if desc.weight_column == "WEIGHT_SPECTRUM":
                weight = hands(t, "WEIGHT_SPECTRUM", start, n).astype(np.float32, copy=False)
            else:
                w = t.getcol("WEIGHT", start, n)[:, [i0, i1]].astype(np.float32)
                weight = np.repeat(w[:, None, :], bad.shape[1], axis=1)
            vis = None
            if with_vis:
                vis = hands(t, col, start, n).astype(np.complex64, copy=False)
                bad |= ~np.isfinite(vis)
                vis[bad] = 0
            weight[bad] = 0
            weight[~np.isfinite(weight) | (weight < 0)] = 0
            yield VisBlock(
                start=start, uvw=t.getcol("UVW", start, n), time=t.getcol("TIME", start, n),
                ant1=t.getcol("ANTENNA1", start, n).astype(np.int32),
                ant2=t.getcol("ANTENNA2", start, n).astype(np.int32), weight=weight, vis=vis,
            )


def stokes_i(vis: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stokes I = (A + B)/2 of the parallel hands and its weight min(wA, wB) (as WSClean).

    Parameters
    ----------
    vis
        ``(row, chan, 2)`` complex.
    weight
        ``(row, chan, 2)`` real; a sample is used only when both hands have weight.

    Returns
    -------
    tuple
        ``(row, chan)`` complex64 visibilities and ``(row, chan)`` float32 weights.
    """
    w = np.minimum(weight[..., 0], weight[..., 1]).astype(np.float32)
    v = (0.5 * (vis[..., 0] + vis[..., 1])).astype(np.complex64)
    v[w == 0] = 0
    return v, w
