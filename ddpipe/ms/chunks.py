"""Split an MS's regular time-slot grid into chunks for calibration.

A chunk is a *view*: DP3 reads it from the parent MS (nothing is copied), and
its edges fall on solution-interval boundaries of the slot grid
``time_first + k * interval``, so chunked solutions equal one unchunked run.

Selecting a chunk in DP3 (measured with DP3 6.6, see tests/ms/test_ms_chunks_dp3.py):
``msin.ntimes`` counts slots of the grid (missing ones are inserted, flagged), and
so does ``msin.starttime`` (rounded up to the next grid slot); but
``msin.starttimeslot`` counts the time steps *present* in the MS. On an MS
with gaps, ``msin.starttimeslot=start_slot`` therefore starts too late.
:meth:`Chunk.dp3_msin` gives ``msin.starttime`` half a slot before the chunk's
first slot, which is right with or without gaps; ``start_slot`` equals DP3's
``msin.starttimeslot`` only when ``info.gaps`` is empty.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from ddpipe.errors import UserError
from ddpipe.ms.info import MSInfo, mjd_seconds_to_iso

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Chunk:
    """One time chunk of one MS.

    Attributes
    ----------
    index : int
        0-based position of the chunk in its MS.
    ms : str
        Absolute path of the parent MS.
    start_slot : int
        First slot (0-based, DP3's ``msin.starttimeslot``).
    n_slots : int
        Slots in the chunk (DP3's ``msin.ntimes``).
    start_time : float
        Centre of the first slot, MJD seconds (UTC).
    duration : float
        ``n_slots * interval``, seconds.
    """

    index: int
    ms: str
    start_slot: int
    n_slots: int
    start_time: float
    duration: float

    @property
    def end_slot(self) -> int:
        """One past the last slot."""
        return self.start_slot + self.n_slots

    @property
    def interval(self) -> float:
        """Slot width, seconds."""
        return self.duration / self.n_slots

    @property
    def dp3_starttime(self) -> str:
        """``msin.starttime`` for DP3: UTC ISO time (microseconds) half a slot before the first slot.

        DP3 rounds a start time up to the next slot of its grid, so this selects
        ``start_slot`` exactly, whatever the rounding of the string.
        """
        return mjd_seconds_to_iso(self.start_time - self.interval / 2, precision=6)

    def with_lead_in(self, slots: int) -> "Chunk":
        """This chunk started ``slots`` earlier (at most back to slot 0): what DP3 solves for a lead-in.

        The lead-in slots belong to the chunk before; their solutions are only there to
        start this chunk's first interval warm, and are dropped (``chunking.lead_in``).
        """
        slots = max(0, min(int(slots), self.start_slot))
        return Chunk(
            self.index,
            self.ms,
            self.start_slot - slots,
            self.n_slots + slots,
            self.start_time - slots * self.interval,
            self.duration + slots * self.interval,
        )

    def dp3_msin(self) -> dict[str, str]:
        """DP3 parset keys selecting exactly this chunk's slots, gaps or not.

        Returns
        -------
        dict
            ``msin``, ``msin.starttime`` (:attr:`dp3_starttime`) and ``msin.ntimes``.
        """
        return {"msin": self.ms, "msin.starttime": self.dp3_starttime, "msin.ntimes": str(self.n_slots)}


def plan_chunks(info: MSInfo, duration: float = 0.0, n_chunks: int = 0, solint: int = 1) -> tuple[Chunk, ...]:
    """Split the slot grid of ``info`` into chunks on solution-interval boundaries.

    Parameters
    ----------
    info : MSInfo
        The MS (its ``n_slots``, ``interval``, ``time_first``).
    duration : float
        Seconds per chunk, rounded to a whole number of ``solint`` slots (at
        least one solint); the last chunk holds what is left. 0 to use ``n_chunks``.
    n_chunks : int
        Number of chunks; solints are shared out as evenly as possible (earlier
        chunks get the extra ones). More chunks than solints gives one chunk per
        solint, with a warning. 0 to use ``duration``.
    solint : int
        Slots per solution interval (the longest one used on these chunks).

    Returns
    -------
    tuple of Chunk
        Contiguous, covering slots ``0 .. info.n_slots - 1``; only the last
        chunk may end in a partial solint.

    Raises
    ------
    UserError
        Both or neither of ``duration`` and ``n_chunks`` given, or a negative
        value, or ``solint < 1``.
    """
    if isinstance(solint, bool) or not isinstance(solint, int) or solint < 1:
        raise UserError(f"solint: {solint!r} is not a whole number >= 1; give slots per solution interval")
    if duration < 0 or n_chunks < 0:
        raise UserError(f"chunking: duration {duration!r} / n_chunks {n_chunks!r} must not be negative")
    if (duration > 0) == (n_chunks > 0):
        raise UserError(
            f"chunking: give exactly one of duration (seconds, got {duration!r}) and n_chunks "
            f"(got {n_chunks!r}); set the other to 0"
        )
    n_solints = math.ceil(info.n_slots / solint)
    if duration > 0:
        per_chunk = max(1, round(duration / (solint * info.interval)))
        sizes = [per_chunk] * (n_solints // per_chunk)
        if n_solints % per_chunk:
            sizes.append(n_solints % per_chunk)
    else:
        if n_chunks > n_solints:
            log.warning(
                "%s: %d chunks asked but only %d solution intervals of %d slot(s): making %d chunks",
                info.name,
                n_chunks,
                n_solints,
                solint,
                n_solints,
            )
            n_chunks = n_solints
        base, extra = divmod(n_solints, n_chunks)
        sizes = [base + 1] * extra + [base] * (n_chunks - extra)
    chunks = []
    slot = 0
    for i, size in enumerate(sizes):
        n = min(size * solint, info.n_slots - slot)
        chunks.append(
            Chunk(
                index=i,
                ms=info.path,
                start_slot=slot,
                n_slots=n,
                start_time=info.time_first + slot * info.interval,
                duration=n * info.interval,
            )
        )
        slot += n
    _warn_empty_chunks(chunks, info)
    return tuple(chunks)


def _warn_empty_chunks(chunks: list[Chunk], info: MSInfo) -> None:
    for c in chunks:
        if any(g0 <= c.start_slot and c.end_slot <= g0 + gn for g0, gn in info.gaps):
            log.warning(
                "%s: chunk %d (slots %d-%d) falls in a gap of the data: DP3 will see only flagged slots",
                info.name,
                c.index,
                c.start_slot,
                c.end_slot - 1,
            )


def chunk_time_range(chunk: Chunk, info: MSInfo) -> tuple[float, float]:
    """Time edges of a chunk, MJD seconds: ``[start, end)`` holding its slots' TIME centres.

    ``start`` is half an interval before the first slot centre, ``end`` half an
    interval after the last one, so ``start <= TIME < end`` selects the chunk's
    rows and adjacent chunks share an edge.

    Parameters
    ----------
    chunk : Chunk
        From :func:`plan_chunks` on ``info``.
    info : MSInfo
        The parent MS.

    Returns
    -------
    (float, float)
    """
    half = info.interval / 2
    first = info.time_first + chunk.start_slot * info.interval
    return first - half, first + (chunk.n_slots - 1) * info.interval + half
