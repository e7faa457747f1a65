"""plan_chunks / chunk_time_range: edge cases, invariants, and the slot grid against the real TIME column."""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime
from pathlib import Path

import casacore.tables as pt
import numpy as np
import pytest

from ddpipe.errors import UserError
from ddpipe.ms.chunks import Chunk, chunk_time_range, plan_chunks
from ddpipe.ms.inspect import MSInfo, inspect_ms, slot_gaps


@pytest.fixture(scope="module")
def oskar(real_ms_readonly: dict[str, Path]) -> MSInfo:
    """tOSKAR: 600 slots of 0.3 s, no gaps."""
    return inspect_ms(real_ms_readonly["tOSKAR"], flag_stats=False)


def _slots(chunks: tuple[Chunk, ...]) -> list[int]:
    return [c.n_slots for c in chunks]


def _check_invariants(chunks: tuple[Chunk, ...], info: MSInfo, solint: int) -> None:
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert chunks[0].start_slot == 0 and chunks[-1].end_slot == info.n_slots
    for a, b in zip(chunks, chunks[1:]):
        assert a.end_slot == b.start_slot
        assert chunk_time_range(a, info)[1] == pytest.approx(chunk_time_range(b, info)[0])
    for c in chunks:
        assert c.n_slots > 0 and c.start_slot % solint == 0
        assert c.ms == info.path
        assert c.start_time == pytest.approx(info.time_first + c.start_slot * info.interval)
        assert c.duration == pytest.approx(c.n_slots * info.interval)
    for c in chunks[:-1]:
        assert c.n_slots % solint == 0


def test_a_lead_in_starts_whole_solints_earlier_and_never_before_the_ms(oskar: MSInfo) -> None:
    chunks = plan_chunks(oskar, n_chunks=3, solint=10)
    first, second = chunks[0], chunks[1]
    assert first.with_lead_in(20) == first  # nothing before slot 0
    led = second.with_lead_in(20)
    assert (led.index, led.start_slot, led.end_slot) == (1, second.start_slot - 20, second.end_slot)
    assert led.start_time == pytest.approx(oskar.time_first + led.start_slot * oskar.interval)
    assert led.interval == pytest.approx(second.interval)
    assert second.with_lead_in(10**6).start_slot == 0


def test_exact_multiple(oskar: MSInfo) -> None:
    # 60 s = 200 slots = 20 solints of 10
    chunks = plan_chunks(oskar, duration=60.0, solint=10)
    assert _slots(chunks) == [200, 200, 200]
    _check_invariants(chunks, oskar, 10)


def test_remainder_goes_to_a_shorter_last_chunk(oskar: MSInfo) -> None:
    # 50 s / (10 × 0.3 s) = 16.7 → 17 solints = 170 slots; 600 = 3 × 170 + 90
    chunks = plan_chunks(oskar, duration=50.0, solint=10)
    assert _slots(chunks) == [170, 170, 170, 90]
    _check_invariants(chunks, oskar, 10)


@pytest.mark.parametrize(
    ("duration", "solint", "per_chunk"),
    [
        (10.0, 7, 35),  # 10 s = 33.3 slots → 4.76 solints → 5 solints
        (9.0, 7, 28),  # 30 slots → 4.29 → 4 solints
        (0.01, 7, 7),  # less than one solint → one solint
        (0.3, 1, 1),  # one slot
    ],
)
def test_duration_is_rounded_to_whole_solints(oskar: MSInfo, duration: float, solint: int, per_chunk: int) -> None:
    chunks = plan_chunks(oskar, duration=duration, solint=solint)
    assert all(c.n_slots == per_chunk for c in chunks[:-1])
    assert 0 < chunks[-1].n_slots <= per_chunk
    assert len(chunks) == -(-600 // per_chunk)
    _check_invariants(chunks, oskar, solint)


def test_n_chunks_shares_solints_evenly(oskar: MSInfo) -> None:
    # 600 slots / solint 7 = 85 full solints + one of 5 slots = 86 solints; 4 chunks: 22, 22, 21, 21
    chunks = plan_chunks(oskar, n_chunks=4, solint=7)
    assert _slots(chunks) == [154, 154, 147, 145]
    _check_invariants(chunks, oskar, 7)
    assert plan_chunks(oskar, n_chunks=3, solint=1) == plan_chunks(oskar, duration=60.0, solint=1)


def test_more_chunks_than_solints(oskar: MSInfo, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="ddpipe.ms.chunks"):
        chunks = plan_chunks(oskar, n_chunks=1000, solint=100)
    assert _slots(chunks) == [100] * 6
    assert "1000 chunks asked but only 6 solution intervals" in caplog.text
    _check_invariants(chunks, oskar, 100)
    # a partial last solint counts as one
    assert _slots(plan_chunks(oskar, n_chunks=50, solint=110)) == [110] * 5 + [50]


@pytest.mark.parametrize(
    "kwargs", [{"n_chunks": 1}, {"duration": 1e6}, {"duration": 180.0}, {"n_chunks": 1, "solint": 1000}]
)
def test_one_chunk(oskar: MSInfo, kwargs: dict) -> None:
    (chunk,) = plan_chunks(oskar, **kwargs)
    assert (chunk.start_slot, chunk.n_slots, chunk.start_time) == (0, 600, oskar.time_first)
    msin = chunk.dp3_msin()
    assert msin == {"msin": oskar.path, "msin.starttime": chunk.dp3_starttime, "msin.ntimes": "600"}
    # half a slot before the first slot, to the microsecond
    start = (datetime.fromisoformat(msin["msin.starttime"]) - datetime(1858, 11, 17)).total_seconds()
    assert start == pytest.approx(oskar.time_first - 0.15, abs=1e-6)


@pytest.mark.parametrize("n_slots", [1, 2, 5, 6, 7, 13, 100, 101])
@pytest.mark.parametrize("solint", [1, 2, 3, 7])
@pytest.mark.parametrize("n_chunks", [1, 2, 3, 5, 40])
def test_invariants_n_chunks(oskar: MSInfo, n_slots: int, solint: int, n_chunks: int) -> None:
    info = dataclasses.replace(oskar, n_slots=n_slots)
    chunks = plan_chunks(info, n_chunks=n_chunks, solint=solint)
    n_solints = -(-n_slots // solint)
    assert len(chunks) == min(n_chunks, n_solints)
    sizes = [-(-c.n_slots // solint) for c in chunks]  # solints per chunk
    assert max(sizes) - min(sizes) <= 1
    _check_invariants(chunks, info, solint)


@pytest.mark.parametrize("n_slots", [1, 6, 13, 101])
@pytest.mark.parametrize("solint", [1, 3])
@pytest.mark.parametrize("duration", [0.1, 0.9, 1.0, 2.9, 30.0])
def test_invariants_duration(oskar: MSInfo, n_slots: int, solint: int, duration: float) -> None:
    info = dataclasses.replace(oskar, n_slots=n_slots, interval=1.0)
    chunks = plan_chunks(info, duration=duration, solint=solint)
    per_chunk = max(1, round(duration / solint)) * solint
    assert all(c.n_slots == per_chunk for c in chunks[:-1])
    _check_invariants(chunks, info, solint)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({}, r"give exactly one of duration .* and n_chunks"),
        (
            {"duration": 60.0, "n_chunks": 2},
            r"give exactly one of duration \(seconds, got 60.0\) and n_chunks \(got 2\)",
        ),
        ({"duration": -1.0}, r"must not be negative"),
        ({"n_chunks": -2}, r"must not be negative"),
        ({"n_chunks": 2, "solint": 0}, r"solint: 0 is not a whole number >= 1"),
        ({"n_chunks": 2, "solint": 2.5}, r"solint: 2.5 is not a whole number"),
        ({"n_chunks": 2, "solint": True}, r"solint: True is not a whole number"),
    ],
)
def test_bad_arguments(oskar: MSInfo, kwargs: dict, pattern: str) -> None:
    with pytest.raises(UserError, match=pattern):
        plan_chunks(oskar, **kwargs)


@pytest.mark.parametrize("key", ["tOSKAR", "tDDECal", "tDish"])
def test_time_ranges_select_the_chunks_rows(key: str, real_ms_readonly: dict[str, Path]) -> None:
    """Rows with lo <= TIME < hi per chunk: every row exactly once, each slot's rows in one chunk."""
    info = inspect_ms(real_ms_readonly[key], flag_stats=False)
    with pt.table(str(real_ms_readonly[key]), ack=False) as t:
        time = t.getcol("TIME")
    for n_chunks in (1, 2, 3, info.n_slots):
        chunks = plan_chunks(info, n_chunks=n_chunks)
        owner = np.full(time.shape, -1)
        for c in chunks:
            lo, hi = chunk_time_range(c, info)
            sel = (time >= lo) & (time < hi)
            assert (owner[sel] == -1).all()
            owner[sel] = c.index
            # the chunk's distinct times are exactly its slots (no gaps in these MSs)
            assert np.unique(time[sel]).size == c.n_slots
        assert (owner >= 0).all()


def test_slot_gaps() -> None:
    t = 1000.0 + 2.0 * np.array([0, 1, 2, 5, 6, 9, 10, 11])  # slots 3-4 and 7-8 missing
    t[3] += 0.01  # jitter well below half an interval is still slot 5
    assert slot_gaps(t, 2.0) == ((3, 2), (7, 2))
    assert slot_gaps(t[:3], 2.0) == ()
    assert slot_gaps(np.array([5.0]), 1.0) == ()


def test_gaps_in_the_info_and_the_plan(gapped_ms, caplog: pytest.LogCaptureFixture) -> None:
    info = inspect_ms(gapped_ms("tOSKAR", 100, 20))
    assert (info.n_times, info.n_slots, info.gaps, info.n_missing_slots) == (580, 600, ((100, 20),), 20)
    with caplog.at_level(logging.WARNING, logger="ddpipe.ms.chunks"):
        chunks = plan_chunks(info, duration=3.0)  # 10-slot chunks: 10 and 11 lie in the gap
    assert len(chunks) == 60
    assert "chunk 10 (slots 100-109) falls in a gap" in caplog.text
    assert "chunk 11 (slots 110-119) falls in a gap" in caplog.text
    assert "chunk 9 " not in caplog.text and "chunk 12 " not in caplog.text
