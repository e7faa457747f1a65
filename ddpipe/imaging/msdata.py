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
from casacore import tables as pt

from ddpipe.errors import UserError
from ddpipe.ms.inspect import inspect_ms

log = logging.getLogger(__name__)

#: casacore Stokes enum values of the parallel hands, preferred pairs first.
_PAIRS = (("XX", "YY"), ("RR", "LL"))
_SINGLE = ("I", "XX", "YY", "RR", "LL")


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
    time_step: float = 1.0  # seconds between time slots: the MS's INTERVAL (MSInfo.interval)
    n_slots: int = 1  # time slots from the first to the last
    #: slots per group (a power of two, at most :data:`MAX_SLOT_GROUP`, at least 8 groups when the MS
    #: has the slots): per-facet averaging never spans two groups, and row ranges start on a group
    slot_group: int = 1
    #: rows where a new slot group starts (rows in time order; empty when they are not)
    group_starts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64), compare=False, repr=False)
    telescope: str = ""
    antenna_names: tuple[str, ...] = ()


def describe_ms(path: str | Path, data_column: str = "DATA") -> MSDescription:
    """What the imager needs of ``path``, read-only, on top of :func:`ddpipe.ms.inspect.inspect_ms`.

    The MS is checked by the same reader, with the same rules, as everywhere else
    (one field and one spectral window, the data column present and filled, ...);
    this adds what imaging alone needs: the weight column, the parallel hands and
    the time-slot grid of the rows.

    Raises
    ------
    UserError
        What :func:`~ddpipe.ms.inspect.inspect_ms` refuses, or no parallel-hand correlations.
    """
    info = inspect_ms(path, data_column=data_column, flag_stats=False)
    p = Path(info.path)
    with pt.table(str(p), ack=False) as t:
        weight_column = "WEIGHT_SPECTRUM"
        if not info.has_weight_spectrum or not t.iscelldefined("WEIGHT_SPECTRUM", 0):
            weight_column = "WEIGHT"
        times = t.getcol("TIME")
    corr = list(info.correlations)
    idx = None
    for a, b in _PAIRS:
        if a in corr and b in corr:
            idx = (corr.index(a), corr.index(b))
            break
    if idx is None:
        single = [c for c in _SINGLE if c in corr]
        if not single:
            raise UserError(
                f"{p}: correlations {', '.join(corr)} have no parallel hands (XX/YY, RR/LL or I) to form Stokes I from"
            )
        idx = (corr.index(single[0]),) * 2
    # the slot grid everywhere in ddpipe (and DP3's msin.ntimes): time_first + k * interval
    time_step, n_slots = float(info.interval), int(info.n_slots)
    slots = np.rint((times - info.time_first) / time_step).astype(np.int64)
    group = MAX_SLOT_GROUP
    while group > 1 and n_slots < 8 * group:
        group //= 2
    in_order = bool(np.all(np.diff(times) >= 0))
    starts = np.flatnonzero(np.diff(slots // group) != 0) + 1 if in_order else np.zeros(0, dtype=np.int64)
    return MSDescription(
        path=str(p),
        data_column=data_column,
        nrow=info.n_rows,
        freq=np.asarray(info.chan_freqs, dtype=np.float64),
        chan_width=np.abs(np.asarray(info.chan_widths, dtype=np.float64)),
        time_step=time_step,
        n_slots=n_slots,
        slot_group=group,
        group_starts=starts.astype(np.int64),
        phase_centre=info.phase_centre,
        corr_index=idx,
        weight_column=weight_column,
        time_range=(float(times.min()), float(times.max())),
        telescope=info.telescope,
        antenna_names=tuple(info.antenna_names),
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


def iter_blocks(
    desc: MSDescription,
    row_block: int,
    *,
    with_vis: bool = True,
    column: str | None = None,
    start: int = 0,
    stop: int | None = None,
) -> Iterator[VisBlock]:
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
                start=start,
                uvw=t.getcol("UVW", start, n),
                time=t.getcol("TIME", start, n),
                ant1=t.getcol("ANTENNA1", start, n).astype(np.int32),
                ant2=t.getcol("ANTENNA2", start, n).astype(np.int32),
                weight=weight,
                vis=vis,
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
