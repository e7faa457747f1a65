"""DDECal's iterations per interval, read from DP3's log, and the lead-in in the chunk parsets
(no DP3 run here: see test_calibrate.py for the real thing)."""

from __future__ import annotations

import dataclasses

import pytest

from ddpipe.calibrate import ChunkOutcome, dp3_iterations, iteration_summary, plan_jobs
from ddpipe.ms.inspect import inspect_ms

LOG = """MsReader
  input MS:           /data/x.ms
DDECal ddecal.
  max iter:            50
Iterations taken: [51,12, 7]
DDECal solve2.
Iterations taken: [3]
"""


def test_iterations_are_read_from_dp3s_log():
    assert dp3_iterations(LOG) == ((51, 12, 7), (3,))
    assert dp3_iterations("MsReader\n  nothing solved\n") == ()


def test_iteration_summary_counts_intervals_that_stopped_at_maxiter():
    a = ChunkOutcome("chunk_000", "a.h5", iterations=((51, 12), (3,)), maxiter=(50, 3))
    b = ChunkOutcome("chunk_001", "b.h5", iterations=((7,), (1,)), maxiter=(50, 3))
    reused = ChunkOutcome("chunk_002", "c.h5", reused=True)
    assert iteration_summary([a, b, reused]) == [
        {"intervals": 3, "mean": 23.3, "max": 51, "at_maxiter": 0.3333},
        {"intervals": 2, "mean": 2.0, "max": 3, "at_maxiter": 0.5},
    ]
    assert iteration_summary([reused]) == []


@pytest.mark.parametrize("lead_in", [0, 2])
def test_chunk_parsets_start_a_lead_in_earlier_and_keep_only_their_own_intervals(small_sim, cfg, tmp_path, lead_in):
    chunking = dataclasses.replace(cfg.chunking, lead_in=lead_in)
    jobs = plan_jobs(
        [str(small_sim.ms)], str(small_sim.skymodel), ("P1", "P2", "P3"), cfg.calibration, chunking, cfg.dp3, tmp_path
    )
    info = inspect_ms(small_sim.ms, flag_stats=False)
    solint = cfg.calibration.solint
    assert [j.start_slot for j in jobs] == [0, 12, 24, 36] and all(j.n_slots == 12 for j in jobs)
    for j in jobs:
        p = dict(j.parset)
        lead = min(lead_in * solint, j.start_slot)
        assert j.lead_slots == lead
        assert int(p["msin.ntimes"]) == j.n_slots + lead
        if lead:
            first = info.time_first + j.start_slot * info.interval
            assert j.keep_from == pytest.approx(first - info.interval / 2)
        else:
            assert j.keep_from is None
    # the lead-in is part of what a chunk's reuse record hashes
    if lead_in:
        base = plan_jobs(
            [str(small_sim.ms)],
            str(small_sim.skymodel),
            ("P1", "P2", "P3"),
            cfg.calibration,
            dataclasses.replace(cfg.chunking, lead_in=0),
            cfg.dp3,
            tmp_path,
        )
        assert jobs[0].parset_hash == base[0].parset_hash and jobs[1].parset_hash != base[1].parset_hash


def test_a_chunk_failure_is_one_frozen_type_that_pickles_and_reads_as_its_cause():
    import pickle

    from ddpipe.calibrate import ChunkFailed, ChunkFailure, failure_table

    dp3 = ChunkFailure("chunk_001", "/w/chunk_001.log", returncode=3, tail=("a", "b" * 300))
    killed = ChunkFailure("chunk_002", "/w/chunk_002.log", signal="SIGSEGV")
    slow = ChunkFailure("chunk_003", "/w/chunk_003.log", timed_out=True, returncode=-9)
    other = ChunkFailure("chunk_004", "/w/chunk_004.log", error="DP3 exited 0 with an unusable H5parm: x")
    assert [f.reason for f in (dp3, killed, slow, other)] == [
        "exit code 3",
        "killed by SIGSEGV",
        "timed out",
        "DP3 exited 0 with an unusable H5parm: x",
    ]
    back = pickle.loads(pickle.dumps(ChunkFailed("chunk_001: DP3 failed", dp3)))
    assert back.failure == dp3 and str(back) == "chunk_001: DP3 failed"
    with pytest.raises(dataclasses.FrozenInstanceError):
        dp3.returncode = 0  # type: ignore[misc]
    table = failure_table({f.stem: f for f in (other, dp3)}, 8).splitlines()
    assert table[0].startswith("2 of 8 chunk(s) failed")
    assert table[1].split()[:3] == ["chunk_001", "exit", "code"] and table[2] == "      | a"
    assert table[3].endswith("...") and len(table[3]) == 6 + 200 + 2
