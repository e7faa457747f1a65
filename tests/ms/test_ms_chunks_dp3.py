"""The real DP3 reads exactly the slots of each planned chunk (Chunk.dp3_msin), with and without gaps."""

from __future__ import annotations

from pathlib import Path

import casacore.tables as pt
import numpy as np
import pytest

from ddpipe.dp3 import dp3_argv, find_dp3, run_dp3
from ddpipe.ms.chunks import Chunk, chunk_time_range, plan_chunks
from ddpipe.ms.inspect import MSInfo, inspect_ms

pytestmark = pytest.mark.dp3


def _dp3_copy(msin: dict[str, str], out: Path) -> tuple[np.ndarray, np.ndarray]:
    """Run DP3 with the given msin keys and no steps; return (TIME, all-flagged per row) of its output."""
    parset = {**msin, "msout": str(out), "steps": "[]"}
    run_dp3(dp3_argv(find_dp3(), parset, 1), log_path=out.with_suffix(".log"), timeout=120)
    with pt.table(str(out), ack=False) as t:
        flags = t.getcol("FLAG").reshape(t.nrows(), -1).all(axis=1)
        return t.getcol("TIME"), flags


def _grid(chunk: Chunk, info: MSInfo) -> np.ndarray:
    return info.time_first + np.arange(chunk.start_slot, chunk.end_slot) * info.interval


@pytest.mark.parametrize("key", ["tOSKAR", "tDish"])  # (DP3 cannot copy tDDECal: dangling 'sky' keyword)
def test_each_chunk_is_read_exactly(key: str, real_ms_readonly: dict[str, Path], tmp_path: Path) -> None:
    ms = real_ms_readonly[key]
    info = inspect_ms(ms)
    with pt.table(str(ms), ack=False) as t:
        ms_time = t.getcol("TIME")
    for chunk in plan_chunks(info, n_chunks=3, solint=1):
        time, _ = _dp3_copy(chunk.dp3_msin(), tmp_path / f"chunk{chunk.index}.MS")
        lo, hi = chunk_time_range(chunk, info)
        expected = ms_time[(ms_time >= lo) & (ms_time < hi)]
        np.testing.assert_array_equal(np.unique(time), np.unique(expected))
        assert time.size == expected.size


def test_chunks_stay_on_the_grid_across_gaps(gapped_ms, tmp_path: Path) -> None:
    """Slots 100-119 removed: the chunk over the gap gets them as flagged slots, the next starts on time."""
    info = inspect_ms(gapped_ms("tOSKAR", 100, 20))
    chunks = plan_chunks(info, duration=9.0)  # 30 slots each
    over_gap, after_gap = chunks[3], chunks[4]
    assert (over_gap.start_slot, after_gap.start_slot) == (90, 120)

    time, flagged = _dp3_copy(over_gap.dp3_msin(), tmp_path / "over.MS")
    steps = np.unique(time)
    np.testing.assert_allclose(steps, _grid(over_gap, info), rtol=0, atol=1e-3)
    in_gap = time > info.time_first + 99.5 * info.interval
    assert flagged[in_gap].all() and not flagged[~in_gap].any()

    time, flagged = _dp3_copy(after_gap.dp3_msin(), tmp_path / "after.MS")
    np.testing.assert_allclose(np.unique(time), _grid(after_gap, info), rtol=0, atol=1e-3)
    assert not flagged.any()

    # Why dp3_msin uses msin.starttime: msin.starttimeslot counts the time steps present,
    # so after a 20-slot gap it starts 20 slots late (DP3 6.6).
    by_slot = {"msin": info.path, "msin.starttimeslot": str(after_gap.start_slot), "msin.ntimes": "30"}
    time, _ = _dp3_copy(by_slot, tmp_path / "by_slot.MS")
    assert time.min() == pytest.approx(info.time_first + 140 * info.interval, abs=1e-3)
