"""The calibrate stage on real DP3: accuracy against the simulator's truth, chunked vs
unchunked, one DP3 per worker, chunk reuse, and failures that keep finished work."""

from __future__ import annotations

import dataclasses
import json
import stat
import textwrap
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from calibrate_helpers import make_cluster, phase_errors
from ddpipe.calibrate import CalibrationFailed, calibrate
from ddpipe.dp3.runner import find_dp3
from ddpipe.solutions.h5parm import read_h5parm

pytestmark = pytest.mark.dp3

DIRS = ("P1", "P2", "P3")


def _run(sim, cfg, client, out_dir, **kw):
    return calibrate([str(sim.ms)], str(sim.skymodel), DIRS, cfg.calibration, cfg.chunking, cfg.dp3, out_dir,
                     client, retries=0, **kw)


def test_solutions_match_truth(small_sim, cfg, cluster2, tmp_path):
    res = _run(small_sim, cfg, cluster2.client, tmp_path)
    assert len(res.chunks) == 4 and res.reused == 0
    sol = read_h5parm(res.solutions)
    assert sol.soltabs["phase000"].time.size == 24  # 48 slots / solint 2, merged over 4 chunks
    errs = phase_errors(res.solutions, small_sim.truth)
    print("phase RMS error per direction (rad):", errs)
    assert set(errs) == {"[P1]", "[P2]", "[P3]"}
    for name, e in errs.items():
        assert e < 0.05, f"{name}: {e:.3f} rad RMS vs truth"
    # the merged file is one DP3 applycal reads (checked by its own test) and h5py reads
    assert res.solutions == tmp_path / "solutions.h5"


def test_chunked_equals_unchunked_on_solint_boundaries(small_sim, cfg, cluster2, tmp_path):
    cal = dataclasses.replace(cfg.calibration, propagatesolutions=False)
    one = dataclasses.replace(cfg.chunking, n_chunks=1)
    c4 = dataclasses.replace(cfg, calibration=cal)
    c1 = dataclasses.replace(cfg, calibration=cal, chunking=one)
    r4 = _run(small_sim, c4, cluster2.client, tmp_path / "c4")
    r1 = _run(small_sim, c1, cluster2.client, tmp_path / "c1")
    a = read_h5parm(r4.solutions).soltabs["phase000"]
    b = read_h5parm(r1.solutions).soltabs["phase000"]
    np.testing.assert_array_equal(a.time, b.time)
    np.testing.assert_allclose(a.values, b.values, rtol=0, atol=1e-6)


def _recording_dp3(tmp_path: Path, body: str = "") -> Path:
    """A DP3 wrapper on disk that logs start/end (worker pid, own pid, time) and runs the real DP3."""
    real = " ".join(find_dp3())
    log = tmp_path / "dp3-calls.log"
    script = tmp_path / "DP3"
    script.write_text(textwrap.dedent(f"""\
        #!/bin/bash
        echo "start $PPID $$ $(date +%s.%N)" >> {log}
        {body}
        {real} "$@"
        rc=$?
        echo "end $PPID $$ $(date +%s.%N)" >> {log}
        exit $rc
        """))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def test_never_two_dp3_per_worker_with_three_threads(small_sim, cfg, tmp_path):
    wrapper = _recording_dp3(tmp_path)
    c = dataclasses.replace(cfg, dp3=dataclasses.replace(cfg.dp3, executable=str(wrapper)),
                            chunking=dataclasses.replace(cfg.chunking, n_chunks=6))
    h = make_cluster(tmp_path, n_workers=2, threads=3)
    try:
        res = _run(small_sim, c, h.client, tmp_path / "wd")
    finally:
        h.close()
    events = [ln.split() for ln in (tmp_path / "dp3-calls.log").read_text().splitlines()]
    starts = {pid: (ppid, float(t)) for kind, ppid, pid, t in events if kind == "start"}
    ends = {pid: float(t) for kind, ppid, pid, t in events if kind == "end"}
    assert len(starts) == len(ends) == 6
    by_worker: dict[str, list[tuple[float, float]]] = {}
    for pid, (ppid, t0) in starts.items():
        by_worker.setdefault(ppid, []).append((t0, ends[pid]))
    assert len(by_worker) == 2, "both workers should have run DP3"
    for ppid, spans in by_worker.items():
        spans.sort()
        for (a0, a1), (b0, b1) in zip(spans, spans[1:]):
            assert b0 >= a1, f"worker {ppid} ran two DP3 processes at once"
    # every task was with the scheduler before the first DP3 finished
    assert res.submitted_at < min(ends.values())
    # DP3's numthreads follows the worker's thread count
    for rec in (tmp_path / "wd" / "chunks").glob("*.done.json"):
        assert json.loads(rec.read_text())["numthreads"] == 3


def test_rerun_reuses_finished_chunks_and_force_recomputes(small_sim, cfg, cluster2, tmp_path):
    _run(small_sim, cfg, cluster2.client, tmp_path)
    chunks = sorted((tmp_path / "chunks").glob("chunk_*[0-9].h5"))
    assert len(chunks) == 4
    mtimes = [p.stat().st_mtime_ns for p in chunks]
    again = _run(small_sim, cfg, cluster2.client, tmp_path)
    assert again.reused == 4
    assert [p.stat().st_mtime_ns for p in chunks] == mtimes
    forced = _run(small_sim, cfg, cluster2.client, tmp_path, force=True)
    assert forced.reused == 0
    assert all(p.stat().st_mtime_ns != m for p, m in zip(chunks, mtimes))


@pytest.mark.parametrize("fault, expect", [
    ("exit 3", "exit code 3"),
    ("kill -SEGV $$", "killed by SIGSEGV"),
    ("sleep 600 & wait", "timed out"),
])
def test_failed_chunk_is_reported_and_only_it_recomputed(small_sim, cfg, cluster2, tmp_path, fault, expect):
    # chunk_002 starts at slot 24: find its msin.starttime from a dry plan
    from ddpipe.calibrate import plan_jobs

    jobs = plan_jobs([str(small_sim.ms)], str(small_sim.skymodel), DIRS, cfg.calibration, cfg.chunking, cfg.dp3,
                     tmp_path)
    target = dict(jobs[2].parset)["msin.starttime"]
    wrapper = _recording_dp3(tmp_path, body=f'case "$*" in *"msin.starttime={target}"*) {fault};; esac')
    bad = dataclasses.replace(cfg, dp3=dataclasses.replace(cfg.dp3, executable=str(wrapper), timeout=5.0))
    with pytest.raises(CalibrationFailed) as err:
        _run(small_sim, bad, cluster2.client, tmp_path)
    msg = str(err.value)
    assert "1 of 4 chunk(s) failed" in msg and "chunk_002" in msg and expect in msg
    assert str(tmp_path / "chunks" / "chunk_002.log") in msg
    done = sorted(p.name for p in (tmp_path / "chunks").glob("*.done.json"))
    assert done == ["chunk_000.done.json", "chunk_001.done.json", "chunk_003.done.json"]
    # no DP3 or fake-DP3 process is left over
    time.sleep(0.5)
    left = [p for p in psutil.process_iter(["cmdline"])
            if p.info["cmdline"] and any(str(wrapper) in a or "sleep 600" in a for a in p.info["cmdline"])]
    assert not left, f"orphans: {[p.info['cmdline'] for p in left]}"
    # fix the fault: only the failed chunk runs again
    mtimes = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "chunks").glob("chunk_00[013].h5")}
    good = dataclasses.replace(cfg, dp3=dataclasses.replace(cfg.dp3, executable=None))
    res = _run(small_sim, good, cluster2.client, tmp_path)
    assert res.reused == 3
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "chunks").glob("chunk_00[013].h5")} == mtimes


def _phase_vs_ref(h5: Path) -> tuple[np.ndarray, np.ndarray]:
    """Times and phases (time, freq, ant, dir) relative to the first antenna."""
    tab = read_h5parm(h5).soltabs["phase000"]
    assert tab.axes[:4] == ("time", "freq", "ant", "dir")
    return np.asarray(tab.time), np.angle(np.exp(1j * (tab.values - tab.values[:, :, :1])))


def test_propagated_solutions_are_seamless_across_chunks_with_a_lead_in(small_sim, cfg, cluster2, tmp_path):
    """With propagatesolutions, 4 chunks give the unchunked run's solutions at every interval, chunk
    starts included (issue 11: ≤ 0.003 rad), because each chunk first solves chunking.lead_in intervals
    of the chunk before and drops them; without it each chunk's first interval starts cold."""
    one = dataclasses.replace(cfg.chunking, n_chunks=1)
    r1 = _run(small_sim, dataclasses.replace(cfg, chunking=one), cluster2.client, tmp_path / "c1")
    r4 = _run(small_sim, cfg, cluster2.client, tmp_path / "c4")
    cold = dataclasses.replace(cfg, chunking=dataclasses.replace(cfg.chunking, lead_in=0))
    r0 = _run(small_sim, cold, cluster2.client, tmp_path / "cold")
    t1, p1 = _phase_vs_ref(r1.solutions)
    t4, p4 = _phase_vs_ref(r4.solutions)
    t0, p0 = _phase_vs_ref(r0.solutions)
    np.testing.assert_array_equal(t4, t1)
    np.testing.assert_array_equal(t0, t1)
    seam = np.abs(np.angle(np.exp(1j * (p4 - p1)))).reshape(len(t1), -1).max(axis=1)
    cold_seam = np.abs(np.angle(np.exp(1j * (p0 - p1)))).reshape(len(t1), -1).max(axis=1)
    starts = [6, 12, 18]  # first interval of chunks 1..3 (6 intervals of solint 2 each)
    print("max phase difference to one chunk at chunk starts (rad): lead-in", seam[starts], "cold", cold_seam[starts])
    assert seam.max() <= 0.003
    assert cold_seam[starts].max() > 2 * seam[starts].max()  # what the lead-in removes is measurable here
    # each chunk's H5parm holds its own intervals only; its record says what DP3 solved and how hard
    for k, o in enumerate(r4.chunks):
        assert read_h5parm(o.h5_path).soltabs["phase000"].time.size == 6
        rec = json.loads(Path(o.h5_path).with_suffix(".done.json").read_text())
        assert rec["lead_slots"] == (0 if k == 0 else 4)
        assert len(rec["iterations"]) == 6 and rec["maxiter"] == cfg.calibration.maxiter
        assert all(1 <= i <= cfg.calibration.maxiter + 1 for i in rec["iterations"])
    assert r4.iterations["intervals"] == 24 and 1 <= r4.iterations["mean"] <= r4.iterations["max"]
