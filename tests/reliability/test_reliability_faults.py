"""Faults provoked for real on a small simulated observation (issue 7, items 1-5).

Every scenario runs ``ddpipe run`` as a separate process with the real DP3 behind
a fake one that misbehaves for a single chunk, kills something with SIGKILL, or
tears an output; then it checks that the input files are byte-for-byte and
mtime-for-mtime unchanged, that nothing the run started outlives it, and that a
rerun ends with the products of an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
import relkit

pytestmark = [pytest.mark.dp3, pytest.mark.slow]

ONE_CYCLE = {"cycles": [{}]}
CHUNK = "cycle_01/chunks/chunk_002."


def _fault_env(tag: str, real_dp3: str, tmp_path: Path, action: str = "", **extra: str) -> dict[str, str]:
    env = relkit.tagged_env(
        tag, REAL_DP3=real_dp3, FAKE_DP3_MATCH=CHUNK, FAKE_DP3_ACTION=action, FAKE_DP3_PIDS=str(tmp_path / "fake-pids")
    )
    env.update(extra)
    return env


def _fake_pids(tmp_path: Path) -> list[int]:
    try:
        return [int(x) for x in (tmp_path / "fake-pids").read_text().split()]
    except OSError:
        return []


def _subset(reference: dict, got: dict) -> dict:
    return {k: reference[k] for k in got}


def _chunk_done(workdir: Path, stem: str, cycle: int = 1) -> bool:
    return (workdir / f"cycle_{cycle:02d}" / "chunks" / f"{stem}.done.json").exists()


# ----------------------------------------------------------------------------- 2. DP3 fails on one chunk


@pytest.mark.parametrize(
    "kind, why",
    [
        ("exit", "exit code 3"),
        ("segv", "killed by SIGSEGV"),
        ("hang", "timed out"),
    ],
)
def test_dp3_failure_on_one_chunk_keeps_the_others_and_rerun_solves_only_it(
    kind, why, inputs, fake_dp3, real_dp3, reference, tag, tmp_path
):
    before = inputs.hashes()
    work = tmp_path / "work"
    cfg = relkit.write_config(
        tmp_path / "run.yaml",
        inputs,
        work,
        dp3={"executable": str(fake_dp3), "timeout": 6.0},
        cluster={"retries": 0},
        **ONE_CYCLE,
    )
    t0 = time.monotonic()
    res = relkit.run_ddpipe(["run", str(cfg)], _fault_env(tag, real_dp3, tmp_path, kind))
    elapsed = time.monotonic() - t0

    assert res.returncode == 1, res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    err = res.stderr[res.stderr.index("ddpipe run: error:") :]
    assert "1 of 4 chunk(s) failed" in err
    row = next(line for line in err.splitlines() if line.strip().startswith("chunk_002"))
    log = work / "cycle_01" / "chunks" / "chunk_002.log"
    assert why in row and str(log) in row, err
    if kind == "exit":  # the log's last lines are shown
        assert "| fake DP3: injected failure (exit code 3)" in err
    if kind == "hang":
        assert elapsed < 6 + 60, "the timed-out DP3 was not stopped in time"
    # the others are kept, and nothing is left running
    assert [p.name for p in relkit.chunk_files(work)] == ["chunk_000.h5", "chunk_001.h5", "chunk_003.h5"]
    assert not (work / "cycle_01" / "chunks" / "chunk_002.done.json").exists()
    pids = _fake_pids(tmp_path)
    assert pids and not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids)
    relkit.assert_no_survivors(tag)
    kept = [p for p in (work / "cycle_01" / "chunks").iterdir() if not p.name.startswith("chunk_002")]
    stamps = relkit.mtimes(kept)

    # the fault removed: only chunk_002 is solved again
    res = relkit.run_ddpipe(["run", str(cfg)], _fault_env(tag, real_dp3, tmp_path, ""))
    assert res.returncode == 0, res.stderr[-3000:]
    assert relkit.mtimes(kept) == stamps
    assert "3 reused from an earlier run, 1 to solve" in (work / "logs" / "ddpipe.log").read_text()
    got = relkit.products(work, cycles=1)
    relkit.assert_products_equal(got, _subset(reference, got), exact=("cycle_01/solutions",))
    relkit.assert_no_survivors(tag)
    assert inputs.hashes() == before


# ----------------------------------------------------------------------------- 3. driver killed


def _start_and_kill(inputs, tag, tmp_path, env, paused, ready, config_extra=None):
    """Start ``ddpipe run`` (held by the pause hook if ``paused``), wait for ``ready(workdir)``,
    SIGKILL the driver's process group and check that nothing it started survives.

    Returns the workdir, the input hashes from before the run and the config path."""
    before = inputs.hashes()
    work = tmp_path / "work"
    cfg = relkit.write_config(tmp_path / "run.yaml", inputs, work, **(config_extra or {}))
    log = tmp_path / "driver.log"
    proc = relkit.start_driver(["run", str(cfg)], env, log, paused=paused)
    try:
        relkit.wait_for(lambda: ready(work), 180, "the stage to be under way", proc, log)
    finally:
        relkit.kill_group(proc)
    relkit.assert_no_survivors(tag)
    return work, before, cfg


def test_driver_killed_during_calibration(inputs, fake_dp3, real_dp3, reference, tag, tmp_path):
    """SIGKILL while chunk_002's DP3 runs (held up on its first attempt) and the others are done."""
    env = _fault_env(tag, real_dp3, tmp_path, "slow", FAKE_DP3_DELAY="300", FAKE_DP3_ONCE=str(tmp_path / "once"))

    def ready(work):
        return _fake_pids(tmp_path) and all(_chunk_done(work, f"chunk_00{i}") for i in (0, 1, 3))

    work, before, cfg = _start_and_kill(
        inputs, tag, tmp_path, env, False, ready, {"dp3": {"executable": str(fake_dp3)}, **ONE_CYCLE}
    )
    assert not _chunk_done(work, "chunk_002")
    kept = relkit.chunk_files(work)
    stamps = relkit.mtimes(kept)
    assert len(kept) == 3

    res = relkit.run_ddpipe(["run", str(cfg)], env)
    assert res.returncode == 0, res.stderr[-3000:]
    assert relkit.mtimes(kept) == stamps
    got = relkit.products(work, cycles=1)
    relkit.assert_products_equal(got, _subset(reference, got), exact=("cycle_01/solutions",))
    relkit.assert_no_survivors(tag)
    assert inputs.hashes() == before


def test_driver_killed_during_imaging(inputs, reference, tag, tmp_path):
    """SIGKILL inside cycle 1's imaging, after its dirty, PSF and model FITS are written."""
    marker = tmp_path / "paused"
    env = relkit.pause_env(
        relkit.tagged_env(tag), "ddpipe.imaging.imager:write_image", "cycle_01/image-residual", marker
    )
    work, before, cfg = _start_and_kill(inputs, tag, tmp_path, env, True, lambda w: marker.exists(), ONE_CYCLE)
    st = relkit.state(work)["stages"]
    assert "cycle_01/calibrate" in st and "cycle_01/image" not in st
    assert (work / "cycle_01" / "image-model.fits").exists()
    assert not (work / "cycle_01" / "image-residual.fits").exists()
    calibrated = relkit.mtimes(relkit.chunk_files(work) + [work / "cycle_01" / "solutions.h5"])

    res = relkit.run_ddpipe(["run", str(cfg)], relkit.tagged_env(tag))
    assert res.returncode == 0, res.stderr[-3000:]
    assert relkit.mtimes(list(map(Path, calibrated))) == calibrated  # calibration not redone
    # calibration was reused, yet the image is made on the cluster as cluster.imaging asks
    imaging = [ln for ln in (work / "logs" / "ddpipe.log").read_text().splitlines() if "with DD corrections" in ln]
    assert "on the Dask cluster" in imaging[-1], imaging[-1]
    got = relkit.products(work, cycles=1)
    relkit.assert_products_equal(got, _subset(reference, got), exact=("cycle_01/solutions",))
    relkit.assert_no_survivors(tag)
    assert inputs.hashes() == before


def test_driver_killed_during_skymodel_step(inputs, reference, tag, tmp_path):
    """SIGKILL inside cycle 1's sky-model step, as it is about to write skymodel.txt."""
    marker = tmp_path / "paused"
    env = relkit.pause_env(
        relkit.tagged_env(tag), "ddpipe.sky.skymodel:write_skymodel", "cycle_01/skymodel.txt", marker
    )
    work, before, cfg = _start_and_kill(inputs, tag, tmp_path, env, True, lambda w: marker.exists())
    st = relkit.state(work)["stages"]
    assert "cycle_01/image" in st and "cycle_01/skymodel" not in st
    imaged = relkit.mtimes(sorted((work / "cycle_01").glob("image-*.fits")))

    res = relkit.run_ddpipe(["run", str(cfg)], relkit.tagged_env(tag))
    assert res.returncode == 0, res.stderr[-3000:]
    assert relkit.mtimes(list(map(Path, imaged))) == imaged  # imaging not redone
    got = relkit.products(work)
    relkit.assert_products_equal(got, reference, exact=("cycle_01/solutions",))
    relkit.assert_no_survivors(tag)
    assert inputs.hashes() == before


# ----------------------------------------------------------------------------- 4. torn outputs


def _tear(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_torn_outputs_are_detected_and_recomputed(inputs, reference, tag, tmp_path):
    """After a kill in cycle 1's imaging: a truncated chunk H5parm, chunk completion record and
    merged H5parm, half-written FITS (one recorded as finished, one not) and a stray partial
    H5parm. The rerun redoes exactly those and ends with the uninterrupted run's products."""
    marker = tmp_path / "paused"
    env = relkit.pause_env(
        relkit.tagged_env(tag), "ddpipe.imaging.imager:write_image", "cycle_01/image-residual", marker
    )
    work, before, cfg = _start_and_kill(inputs, tag, tmp_path, env, True, lambda w: marker.exists(), ONE_CYCLE)
    chunks = work / "cycle_01" / "chunks"
    torn_chunk = chunks / "chunk_001.h5"
    for path in (
        torn_chunk,
        work / "cycle_01" / "solutions.h5",
        work / "cycle_00" / "image-image.fits",
        work / "cycle_01" / "image-psf.fits",
    ):
        _tear(path)
    (chunks / "chunk_002.partial.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    _tear(chunks / "chunk_003.done.json")  # a torn completion record: that chunk is solved again too
    others = [chunks / f"chunk_00{i}.{ext}" for i in (0, 2) for ext in ("h5", "done.json")]
    stamps = relkit.mtimes(others)
    torn_stamp = torn_chunk.stat().st_mtime_ns

    res = relkit.run_ddpipe(["run", str(cfg)], relkit.tagged_env(tag))
    assert res.returncode == 0, res.stderr[-3000:]
    log = (work / "logs" / "ddpipe.log").read_text()
    assert "2 reused from an earlier run, 2 to solve" in log
    assert relkit.mtimes(others) == stamps
    assert torn_chunk.stat().st_mtime_ns != torn_stamp
    assert json.loads((chunks / "chunk_003.done.json").read_text())["stem"] == "chunk_003"
    got = relkit.products(work, cycles=1)
    relkit.assert_products_equal(got, _subset(reference, got), exact=("cycle_01/solutions",))
    relkit.assert_no_survivors(tag)
    assert inputs.hashes() == before


# ----------------------------------------------------------------------------- 1. worker loss


def test_worker_killed_while_its_dp3_runs(inputs, fake_dp3, real_dp3, reference, tag, tmp_path):
    """Address mode, scheduler and 2 slot workers on 127.0.0.1: SIGKILL the process group of the
    worker running chunk_002's DP3, add a fresh worker; the chunk is rescheduled and the
    solutions equal an undisturbed run's, bit for bit."""
    before = inputs.hashes()
    env = _fault_env(tag, real_dp3, tmp_path, "slow", FAKE_DP3_DELAY="300", FAKE_DP3_ONCE=str(tmp_path / "once"))
    procs: list[subprocess.Popen] = []
    try:
        sched, address = relkit.start_scheduler(tmp_path, env)
        procs.append(sched)
        workers = {name: relkit.start_worker(address, name, tmp_path, env) for name in ("w1", "w2")}
        procs += list(workers.values())
        work = tmp_path / "work"
        cfg = relkit.write_config(
            tmp_path / "run.yaml",
            inputs,
            work,
            dp3={"executable": str(fake_dp3)},
            cluster={"mode": "address", "address": address, "worker_wait": 60.0},
            **ONE_CYCLE,
        )
        log = tmp_path / "driver.log"
        driver = relkit.start_driver(["run", str(cfg)], env, log)
        procs.append(driver)
        pid = relkit.wait_for(lambda: _fake_pids(tmp_path), 180, "chunk_002's DP3 to start", driver, log)[0]
        fake = psutil.Process(pid)
        victim = next(
            name for name, w in workers.items() if os.getpgid(fake.ppid()) == w.pid
        )  # the worker that started this DP3
        os.killpg(workers[victim].pid, signal.SIGKILL)
        workers[victim].wait(timeout=30)
        relkit.wait_for(
            lambda: not psutil.pid_exists(pid) or fake.status() == psutil.STATUS_ZOMBIE,
            10,
            "the killed worker's DP3 to die with it",
        )
        procs.append(relkit.start_worker(address, "w3", tmp_path, env))

        assert driver.wait(timeout=240) == 0, relkit.tail(log, 60)
        killed = re.search(r"Start worker at:\s+(\S+)", (tmp_path / f"{victim}.log").read_text()).group(1)
        rec = json.loads((work / "cycle_01" / "chunks" / "chunk_002.done.json").read_text())
        assert rec["worker"].startswith("tcp://127.0.0.1:") and rec["worker"] != killed
        got = relkit.products(work, cycles=1)
        relkit.assert_products_equal(got, _subset(reference, got), exact=("cycle_01/solutions",))
    finally:
        relkit.stop(procs)
    relkit.assert_no_survivors(tag)
    assert inputs.hashes() == before
