"""The calibrate stage on real DP3: accuracy against the simulator's truth, chunked vs
unchunked, one DP3 per worker, chunk reuse, and failures that keep finished work."""

from __future__ import annotations

import dataclasses
import json
import shutil
import stat
import subprocess
import textwrap
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from calibrate_helpers import make_cluster, phase_errors

from ddpipe.calibrate import CalibrationFailed, calibrate
from ddpipe.dp3.runner import find_dp3
from ddpipe.errors import UserError
from ddpipe.solutions.compare import gain_errors
from ddpipe.solutions.h5parm import read_h5parm

pytestmark = pytest.mark.dp3

DIRS = ("P1", "P2", "P3")


def _run(sim, cfg, client, out_dir, **kw):
    cfg = dataclasses.replace(
        cfg,
        inputs=dataclasses.replace(cfg.inputs, ms=(str(sim.ms),)),
        cluster=dataclasses.replace(cfg.cluster, retries=0),
    )
    return calibrate(cfg, str(sim.skymodel), DIRS, out_dir, client, **kw)


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
    script.write_text(
        textwrap.dedent(f"""\
        #!/bin/bash
        echo "start $PPID $$ $(date +%s.%N)" >> {log}
        {body}
        {real} "$@"
        rc=$?
        echo "end $PPID $$ $(date +%s.%N)" >> {log}
        exit $rc
        """)
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def test_never_two_dp3_per_worker_with_three_threads(small_sim, cfg, tmp_path):
    wrapper = _recording_dp3(tmp_path)
    c = dataclasses.replace(
        cfg,
        dp3=dataclasses.replace(cfg.dp3, executable=str(wrapper)),
        chunking=dataclasses.replace(cfg.chunking, n_chunks=6),
    )
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
    # a reused chunk costs no DP3 time in this run and keeps its recorded iterations
    assert all(o.seconds == 0 and len(o.iterations[0]) == 6 for o in again.chunks)
    assert again.iterations[0]["intervals"] == 24
    forced = _run(small_sim, cfg, cluster2.client, tmp_path, force=True)
    assert forced.reused == 0
    assert all(p.stat().st_mtime_ns != m for p, m in zip(chunks, mtimes))


@pytest.mark.parametrize(
    "fault, expect",
    [
        ("exit 3", "exit code 3"),
        ("kill -SEGV $$", "killed by SIGSEGV"),
        ("sleep 600 & wait", "timed out"),
    ],
)
def test_failed_chunk_is_reported_and_only_it_recomputed(small_sim, cfg, cluster2, tmp_path, fault, expect):
    # chunk_002 starts at slot 24: find its msin.starttime from a dry plan
    from ddpipe.calibrate import plan_jobs

    jobs = plan_jobs(
        [str(small_sim.ms)], str(small_sim.skymodel), DIRS, cfg.calibration, cfg.chunking, cfg.dp3, tmp_path
    )
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
    left = [
        p
        for p in psutil.process_iter(["cmdline"])
        if p.info["cmdline"] and any(str(wrapper) in a or "sleep 600" in a for a in p.info["cmdline"])
    ]
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
        assert len(rec["iterations"]) == 1 and len(rec["iterations"][0]) == 6
        assert rec["maxiter"] == [cfg.calibration.maxiter]
        assert all(1 <= i <= cfg.calibration.maxiter + 1 for i in rec["iterations"][0])
    its = r4.iterations[0]
    assert len(r4.iterations) == 1 and its["intervals"] == 24 and 1 <= its["mean"] <= its["max"]


def test_a_chain_of_solves_runs_in_one_dp3_per_chunk_and_its_product_fits_the_truth(amp_sim, cfg, cluster2, tmp_path):
    """scalarphase (solint 2) then diagonal (solint 8, per channel, smoothed) in one DP3 run per chunk
    from one predict; the merged H5parm holds both solves' soltabs (losoto names), and their
    product fits the true phases and amplitudes better than the phase solve alone."""
    base = dataclasses.replace(cfg.calibration, solint=2)
    slow = dataclasses.replace(base, mode="diagonal", solint=8, nchan=1, smoothnessconstraint=4e6, maxiter=200)
    chain = dataclasses.replace(base, solves=(base, slow))
    c = dataclasses.replace(cfg, calibration=chain, chunking=dataclasses.replace(cfg.chunking, n_chunks=3))
    res = _run(amp_sim, c, cluster2.client, tmp_path / "chain")
    only = _run(amp_sim, dataclasses.replace(cfg, chunking=c.chunking), cluster2.client, tmp_path / "phase")
    sol = read_h5parm(res.solutions)
    assert set(sol.soltabs) == {"phase000", "amplitude000", "phase001"}
    assert sol.soltabs["phase000"].time.size == 24 and sol.soltabs["amplitude000"].time.size == 6
    assert sol.soltabs["amplitude000"].freq.size == 8
    for o in res.chunks:  # one DP3 run per chunk did both solves
        parset = Path(o.h5_path).with_suffix(".parset").read_text()
        assert "steps=[solve1,solve2]" in parset and "solve2.reusemodel=[solve1.*]" in parset
        assert len(o.iterations) == 2 and len(o.iterations[1]) == 2
    assert len(res.iterations) == 2
    chain_err, only_err = gain_errors(res.solutions, amp_sim.truth), gain_errors(only.solutions, amp_sim.truth)
    ph_chain, amp_chain = chain_err["phase_rms_rad"], chain_err["amplitude_rms"]
    ph_only, amp_only = only_err["phase_rms_rad"], only_err["amplitude_rms"]
    print(
        f"phase / amplitude RMS error: chain {ph_chain:.4f} rad / {amp_chain:.4f}, "
        f"phase only {ph_only:.4f} rad / {amp_only:.4f}"
    )
    assert amp_chain < 0.5 * amp_only and ph_chain < ph_only


def test_dp3_applycal_applies_every_soltab_of_a_merged_chain(amp_sim, cfg, cluster2, tmp_path):
    """DP3's applycal reads the merged chain H5parm (phase000, amplitude000, phase001) and corrects
    the data by the product evaluate_gains gives (what the imager applies)."""
    import casacore.tables as pt

    from ddpipe.dp3.runner import dp3_environment
    from ddpipe.solutions.gains import evaluate_gains

    base = dataclasses.replace(cfg.calibration, solint=2)
    slow = dataclasses.replace(base, mode="diagonal", solint=8)
    c = dataclasses.replace(cfg, calibration=dataclasses.replace(base, solves=(base, slow)))
    res = _run(amp_sim, c, cluster2.client, tmp_path / "chain")
    ms = tmp_path / "copy.ms"
    shutil.copytree(amp_sim.ms, ms)
    argv = [
        *find_dp3(),
        "checkparset=1",
        f"msin={ms}",
        "msout=.",
        "msout.datacolumn=CORR",
        "steps=[ac]",
        "ac.type=applycal",
        f"ac.parmdb={res.solutions}",
        "ac.steps=[p0,a0,p1]",
        "ac.p0.correction=phase000",
        "ac.a0.correction=amplitude000",
        "ac.p1.correction=phase001",
        "ac.direction=[P2]",
    ]
    subprocess.run(argv, env=dp3_environment(), check=True, capture_output=True)
    with pt.table(str(ms), ack=False) as t:
        data, corr, flag = t.getcol("DATA"), t.getcol("CORR"), t.getcol("FLAG")
        time, a1, a2 = t.getcol("TIME"), t.getcol("ANTENNA1"), t.getcol("ANTENNA2")
    with pt.table(str(ms / "SPECTRAL_WINDOW"), ack=False) as t:
        freqs = t.getcol("CHAN_FREQ")[0]
    sol = read_h5parm(res.solutions)
    g = evaluate_gains(sol, time, freqs, directions=["P2"])[..., 0, :]  # (row, chan, ant, pol)
    it = np.arange(len(time))
    gp, gq = g[it, :, a1], g[it, :, a2]
    want = np.stack(
        [data[..., 0] / (gp[..., 0] * np.conj(gq[..., 0])), data[..., 3] / (gp[..., 1] * np.conj(gq[..., 1]))], axis=-1
    )
    got = corr[..., [0, 3]]
    ok = ~flag[..., [0, 3]]
    np.testing.assert_allclose(got[ok], want[ok], rtol=1e-4, atol=1e-5 * np.abs(want[ok]).max())


def test_per_direction_intervals_merge_over_chunks_at_the_finest_interval(small_sim, cfg, cluster2, tmp_path):
    """solutions_per_direction [2, 1, 1] with solint 2: DP3 writes every slot (the finest
    sub-interval), repeating the coarser directions' values; chunks with their lead-ins merge into
    one solution per slot, P1 free per slot and P2/P3 constant over each interval."""
    cal = dataclasses.replace(cfg.calibration, solutions_per_direction=(2, 1, 1))
    res = _run(small_sim, dataclasses.replace(cfg, calibration=cal), cluster2.client, tmp_path)
    tab = read_h5parm(res.solutions).soltabs["phase000"]
    assert tab.axes[:4] == ("time", "freq", "ant", "dir") and tab.time.size == 48
    v = tab.values[:, 0, :, :]  # (time, ant, dir)
    pairs = v.reshape(24, 2, *v.shape[1:])
    assert np.array_equal(pairs[:, 0, :, 1:], pairs[:, 1, :, 1:])  # P2, P3: one solution per solint
    assert not np.allclose(pairs[:, 0, 1:, 0], pairs[:, 1, 1:, 0])  # P1: one per slot
    with pytest.raises(UserError, match=r"calibration.solutions_per_direction lists 4 directions"):
        too_many = dataclasses.replace(cal, solutions_per_direction=(2, 1, 1, 1))
        _run(small_sim, dataclasses.replace(cfg, calibration=too_many), cluster2.client, tmp_path / "bad")
    assert not (tmp_path / "bad" / "chunks").exists()  # refused before any DP3 ran
