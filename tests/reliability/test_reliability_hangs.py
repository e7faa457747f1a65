"""No hangs (issue 7, item 6): a cluster that cannot run DP3, a scheduler that is not
there, a workdir already in use and workers that vanish all end in a clear error,
in bounded time, without touching the inputs."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

import numpy as np
import psutil
import pytest
import relkit

from ddpipe.state import WorkdirLock

pytestmark = [pytest.mark.dp3, pytest.mark.slow]

ONE_CYCLE = {"cycles": [{}]}


def _one_error_line(stderr: str) -> str:
    """The CLI's error line; fails unless there is exactly one and no traceback."""
    assert "Traceback" not in stderr
    lines = [ln for ln in stderr.splitlines() if ln.startswith("ddpipe run: ")]
    assert len(lines) == 1, stderr
    return lines[0]


def _ends_within(proc: subprocess.Popen, timeout: float, log, failure: str) -> tuple[int, float]:
    """``proc``'s exit code and how long it took to end; the test fails (with the log) past ``timeout``."""
    t0 = time.monotonic()
    try:
        return proc.wait(timeout=timeout), time.monotonic() - t0
    except subprocess.TimeoutExpired:
        pytest.fail(f"{failure}:\n{relkit.tail(log)}")


def _scheduler_and_one_slot_worker(tmp_path, env, procs: list) -> tuple[str, subprocess.Popen]:
    """An external ``dask scheduler`` and its only worker offering subprocess_slots (both added to ``procs``)."""
    sched, address = relkit.start_scheduler(tmp_path, env)
    procs.append(sched)
    worker = relkit.start_worker(address, "only", tmp_path, env, slots=True)
    procs.append(worker)
    return address, worker


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_no_worker_offers_subprocess_slots_fails_within_30_s(inputs, tag, tmp_path):
    before = inputs.hashes()
    env = relkit.tagged_env(tag)
    procs: list[subprocess.Popen] = []
    try:
        sched, address = relkit.start_scheduler(tmp_path, env)
        procs.append(sched)
        procs.append(relkit.start_worker(address, "plain", tmp_path, env, slots=False))
        relkit.wait_for(lambda: "Registered to" in (tmp_path / "plain.log").read_text(), 60, "the worker to register")
        work = tmp_path / "work"
        cfg = relkit.write_config(tmp_path / "run.yaml", inputs, work, cluster={"worker_wait": 5.0}, **ONE_CYCLE)
        t0 = time.monotonic()
        res = relkit.run_ddpipe(["run", str(cfg), "--scheduler", address], env, timeout=120)
        elapsed = time.monotonic() - t0
    finally:
        relkit.stop(procs)
    assert res.returncode == 2, res.stderr[-2000:]
    line = _one_error_line(res.stderr)
    assert "none offers the 'subprocess_slots' resource" in line and address in line
    assert "dask worker" in line and "--resources subprocess_slots=1" in line
    assert elapsed < 30, f"took {elapsed:.0f} s"
    assert not list(work.glob("cycle_01/chunks/*.log")), "no DP3 may have run"
    relkit.assert_no_survivors(tag)
    assert inputs.hashes() == before


def test_unreachable_scheduler_fails_within_the_connect_timeout(inputs, tag, tmp_path):
    before = inputs.hashes()
    address = f"tcp://127.0.0.1:{_free_port()}"
    cfg = relkit.write_config(
        tmp_path / "run.yaml", inputs, tmp_path / "work", cluster={"worker_wait": 4.0}, **ONE_CYCLE
    )
    t0 = time.monotonic()
    res = relkit.run_ddpipe(["run", str(cfg), "--scheduler", address], relkit.tagged_env(tag), timeout=120)
    elapsed = time.monotonic() - t0
    assert res.returncode == 2, res.stderr[-2000:]
    line = _one_error_line(res.stderr)
    assert f"cannot reach the Dask scheduler at {address} within 4 s" in line and "dask scheduler" in line
    # the time to image cycle 0 and start Python comes first; the wait itself is bounded by worker_wait
    log = (tmp_path / "work" / "logs" / "ddpipe.log").read_text()
    assert "image:" in log
    assert elapsed < 4 + 40, f"took {elapsed:.0f} s"
    relkit.assert_no_survivors(tag)
    assert inputs.hashes() == before


def test_second_run_on_a_workdir_in_use_is_refused(inputs, tag, tmp_path):
    before = inputs.hashes()
    work = tmp_path / "work"
    cfg = relkit.write_config(tmp_path / "run.yaml", inputs, work, **ONE_CYCLE)
    marker = tmp_path / "paused"
    env = relkit.pause_env(relkit.tagged_env(tag), "ddpipe.imaging.imager:write_image", "cycle_00/image-dirty", marker)
    log = tmp_path / "first.log"
    first = relkit.start_driver(["run", str(cfg)], env, log, paused=True)
    try:
        relkit.wait_for(marker.exists, 120, "the first run to be imaging", first, log)
        listing = relkit.tree_hashes(work)
        t0 = time.monotonic()
        res = relkit.run_ddpipe(["run", str(cfg)], relkit.tagged_env(tag), timeout=60)
        elapsed = time.monotonic() - t0
        assert res.returncode == 2, res.stderr[-2000:]
        line = _one_error_line(res.stderr)
        assert f"{work} is in use by another ddpipe run (pid {first.pid}" in line and "another workdir" in line
        assert elapsed < 20
        assert relkit.tree_hashes(work) == listing, "the refused run wrote into the workdir"
        assert first.poll() is None, "the first run must go on"
    finally:
        relkit.kill_group(first)
    relkit.assert_no_survivors(tag)
    with WorkdirLock(work):  # a dead run's lock is free again
        pass
    assert inputs.hashes() == before


def test_all_slot_workers_lost_fails_instead_of_waiting_forever(inputs, fake_dp3, real_dp3, tag, tmp_path):
    """The only slot worker is SIGKILLed while its DP3 runs and none comes back: the run ends
    with a clear error within cluster.no_workers_timeout (not a hang), chunks done so far kept."""
    before = inputs.hashes()
    env = relkit.tagged_env(
        tag,
        REAL_DP3=real_dp3,
        FAKE_DP3_MATCH="cycle_01/chunks/chunk_001.",
        FAKE_DP3_ACTION="slow",
        FAKE_DP3_DELAY="300",
        FAKE_DP3_PIDS=str(tmp_path / "pids"),
    )
    procs: list[subprocess.Popen] = []
    try:
        address, worker = _scheduler_and_one_slot_worker(tmp_path, env, procs)
        work = tmp_path / "work"
        cfg = relkit.write_config(
            tmp_path / "run.yaml",
            inputs,
            work,
            dp3={"executable": str(fake_dp3)},
            cluster={"mode": "address", "address": address, "worker_wait": 60.0, "no_workers_timeout": 10.0},
            **ONE_CYCLE,
        )
        log = tmp_path / "driver.log"
        driver = relkit.start_driver(["run", str(cfg)], env, log)
        procs.append(driver)
        relkit.wait_for(lambda: (tmp_path / "pids").exists(), 180, "chunk_001's DP3 to start", driver, log)
        done_before = sorted(work.glob("cycle_01/chunks/*.done.json"))
        os.killpg(worker.pid, signal.SIGKILL)
        rc, elapsed = _ends_within(driver, 90, log, "the run hangs after losing its only worker")
    finally:
        relkit.stop(procs)
    out = log.read_text()
    assert rc == 1, out[-3000:]
    assert "Traceback" not in out
    err = out[out.index("ddpipe run: error:") :]
    assert "chunk_001" in err and "subprocess_slots" in err, err
    assert elapsed < 10 + 45
    assert all(p.exists() for p in done_before)
    pid = int((tmp_path / "pids").read_text().split()[0])
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    relkit.assert_no_survivors(tag)
    assert inputs.hashes() == before


@pytest.mark.parametrize("held_at", ["chunk_000", "chunk_002"])
def test_results_lost_with_their_worker_are_taken_from_disk(inputs, tag, tmp_path, held_at):
    """Deterministic form of the hang above (issue 17): every chunk has finished on the only
    slot worker, its H5parm and completion record are on disk, but the driver has not yet
    settled them (held before ``chunk_000``: none settled; before ``chunk_002``: while the
    outcomes are being collected) when the worker is SIGKILLed. The task results die with
    the worker; the driver must not wait for them to be recomputed (no worker is left to do
    it) but take the chunks from disk and finish, every chunk's solutions merged."""
    before = inputs.hashes()
    marker = tmp_path / "held"
    env = relkit.tagged_env(tag)
    procs: list[subprocess.Popen] = []
    try:
        address, worker = _scheduler_and_one_slot_worker(tmp_path, env, procs)
        work = tmp_path / "work"
        cfg = relkit.write_config(
            tmp_path / "run.yaml",
            inputs,
            work,
            cluster={"mode": "address", "address": address, "worker_wait": 60.0, "no_workers_timeout": 10.0},
            **ONE_CYCLE,
        )
        out = tmp_path / "solutions.h5"
        log = tmp_path / "driver.log"
        driver = relkit.start_driver(
            [
                "calibrate",
                "--config",
                str(cfg),
                "--ms",
                str(inputs.ms),
                "--skymodel",
                str(inputs.skymodel),
                "--workdir",
                str(work),
                "--out",
                str(out),
            ],
            relkit.pause_env(env, "ddpipe.calibrate:chunk_outcome_on_disk", held_at, marker),
            log,
            paused=True,
        )
        procs.append(driver)
        relkit.wait_for(marker.exists, 180, f"the driver to settle {held_at}", driver, log)
        relkit.wait_for(
            lambda: len(list(work.glob("chunks/chunk_*.done.json"))) == 4,
            180,
            "every chunk to finish on the worker",
            driver,
            log,
        )
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
        marker.unlink()
        rc, elapsed = _ends_within(driver, 60, log, "the driver waits for results that died with their worker")
    finally:
        relkit.stop(procs)
    text = log.read_text()
    assert rc == 0, text[-3000:]
    assert "4 chunk(s) (0 reused)" in text, text[-3000:]
    assert elapsed < 10 + 20, f"took {elapsed:.0f} s"
    got = relkit.solutions(out)
    assert got["phase000"].shape[0] == got["phase000/time"].shape[0] == 48 // 2  # every chunk's intervals
    assert np.all(np.isfinite(got["phase000"]))
    relkit.assert_no_survivors(tag)
    assert inputs.hashes() == before
