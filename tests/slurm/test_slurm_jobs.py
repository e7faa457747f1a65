"""The SLURM scripts and ``cluster: {mode: slurm}`` on a real single-node SLURM.

Each test submits real jobs and then checks what SLURM, Dask and DP3 left on
disk: the job's state and exit code, the workers the scheduler saw (with their
``subprocess_slots``), the solutions, the per-chunk DP3 records (never two DP3
runs at once on one worker) and that no process of the job is still alive.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from ddpipe.solutions.h5parm import read_h5parm

REPO = Path(__file__).resolve().parents[2]
RUN_SCRIPT = REPO / "slurm" / "ddpipe-run.sbatch"
WORKERS_SCRIPT = REPO / "slurm" / "ddpipe-workers.sbatch"

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(300)]


def _job_env(slurm, tmp_path: Path, **extra: str) -> dict[str, str]:
    """Everything on 127.0.0.1, this Python for scheduler and workers, scratch under tmp_path."""
    env = dict(slurm.env)
    env.update(
        DDPIPE_PYTHON=sys.executable,
        DDPIPE_INTERFACE="lo",
        DDPIPE_DASHBOARD_ADDRESS="127.0.0.1:0",
        DDPIPE_LOCAL_DIR=str(tmp_path / "scratch"),
        DDPIPE_WORKER_WAIT="90",
        DDPIPE_SHUTDOWN_TIMEOUT="20",
    )
    env.update(extra)
    return env


def _submit(
    slurm,
    tmp_path: Path,
    script: Path,
    *command: str,
    env: dict[str, str],
    workers: int = 1,
    time_limit: str = "00:05:00",
) -> str:
    """sbatch ``script`` on one node with ``workers`` tasks of 1 CPU; the job log is tmp_path/job-<id>.out."""
    return slurm.sbatch(
        "--nodes=1",
        f"--ntasks-per-node={workers}",
        "--cpus-per-task=1",
        f"--time={time_limit}",
        f"--output={tmp_path}/job-%j.out",
        str(script),
        *command,
        env=env,
        cwd=tmp_path,
    )  # fmt: skip


def _read_log(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else f"(no {path})"


def _done_records(chunk_dir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(chunk_dir.glob("chunk_*.done.json"))]


def _assert_one_dp3_at_a_time(records: list[dict]) -> None:
    by_worker: dict[str, list[tuple[float, float]]] = {}
    for r in records:
        by_worker.setdefault(r["worker"], []).append((r["started"], r["finished"]))
    for worker, spans in by_worker.items():
        spans.sort()
        for (_, end), (start, _) in zip(spans, spans[1:]):
            assert start >= end - 1e-3, f"two DP3 runs overlapped on {worker}: {spans}"


def _tiny_config(path: Path, ms: Path, workdir: Path) -> Path:
    path.write_text(
        "inputs:\n"
        f"  ms: [{ms}]\n"
        f"  skymodel: {ms.with_suffix('.skymodel')}\n"
        f"workdir: {workdir}\n"
        "chunking: {duration: 0, n_chunks: 4}\n"
        "imaging: {size: [256, 256], scale: 30.0, niter: 200}\n"
        "cycles:\n"
        "  - calibration: {mode: scalarphase}\n"
    )
    return path


@pytest.mark.dp3
@pytest.mark.slow
def test_batch_script_runs_the_pipeline_with_slot_workers(slurm, sim_ms, tmp_path):
    """sbatch ddpipe-run.sbatch: scheduler + 2 srun workers (1 thread each) + `ddpipe run` in address mode."""
    workdir = tmp_path / "work"
    config = _tiny_config(tmp_path / "tiny.yaml", sim_ms, workdir)
    env = _job_env(slurm, tmp_path, DDPIPE_CONFIG=str(config))
    t0 = time.monotonic()
    job = _submit(slurm, tmp_path, RUN_SCRIPT, env=env, workers=2, time_limit="00:10:00")
    slurm.wait_gone(job, timeout=240)
    log = _read_log(tmp_path / f"job-{job}.out")
    state = slurm.job_state(job)
    assert state["JobState"] == "COMPLETED" and state["ExitCode"] == "0:0", f"{state}\n{log}"
    run_dir = tmp_path / f"ddpipe-slurm-{job}"

    # the scheduler saw both workers, each with one subprocess_slots and one thread, on 127.0.0.1
    seen = json.loads((run_dir / "workers.json").read_text())
    assert seen["expected"] == 2
    assert seen["scheduler"].startswith("tls://127.0.0.1:")  # TLS by default, with the run's own certificate
    for name in ("ddpipe-tls.crt", "ddpipe-tls.key"):
        assert (run_dir / "security" / name).stat().st_mode & 0o777 == 0o600
    workers = seen["workers"]
    assert len(workers) == 2, workers
    for addr, w in workers.items():
        assert addr.startswith("tls://127.0.0.1:")
        assert w["resources"] == {"subprocess_slots": 1.0}
        assert w["nthreads"] == 1
        assert w["memory_limit"] == 4096 * 2**20  # --mem-per-cpu=4G x 1 thread
    assert "2 of 2 worker(s) joined with subprocess_slots=1" in log

    # the pipeline ran in address mode and wrote merged solutions over all 40 time slots
    assert "connected to tls://127.0.0.1:" in log and "2 worker(s) with subprocess_slots" in log
    assert "plain TCP" not in log
    sol = read_h5parm(workdir / "cycle_01" / "solutions.h5")
    phase = sol.soltabs["phase000"]
    assert len(sol.directions) == 4 and len(sol.antennas) == 12
    assert phase.values.shape[phase.axes.index("time")] == 40
    assert np.all(np.isfinite(phase.values)) and np.ptp(phase.values) > 0.01
    assert (workdir / "cycle_01" / "image-image.fits").is_file()

    # every chunk ran on one of those workers, one DP3 at a time per worker, numthreads = 1
    records = _done_records(workdir / "cycle_01" / "chunks")
    assert len(records) == 4
    assert {r["worker"] for r in records} <= set(workers)
    assert {r["numthreads"] for r in records} == {1}
    _assert_one_dp3_at_a_time(records)

    # orderly shutdown: logs kept, scheduler file and node-local scratch removed, nothing running
    assert (run_dir / "scheduler.log").is_file()
    worker_logs = sorted(run_dir.glob("worker-*.log"))
    assert len(worker_logs) == 2
    for wl in worker_logs:
        assert "End worker" in wl.read_text(), f"{wl} shows no orderly worker exit"
    assert not (run_dir / "scheduler.json").exists()
    assert list((tmp_path / "scratch").iterdir()) == []
    assert "finished with exit code 0" in log
    slurm.assert_nothing_left()
    assert time.monotonic() - t0 < 240


def test_batch_script_runs_a_given_command_and_reports_its_failure(slurm, sim_ms, tmp_path):
    """Arguments replace `ddpipe run`; --scheduler is appended; the job's exit code is the command's."""
    env = _job_env(slurm, tmp_path)
    # a missing sky model is a user error (exit 2) that must come back as the job's exit code
    job = _submit(
        slurm,
        tmp_path,
        RUN_SCRIPT,
        "ddpipe",
        "calibrate",
        "--ms",
        str(sim_ms),
        "--skymodel",
        str(tmp_path / "nope.skymodel"),
        "--out",
        str(tmp_path / "sol.h5"),
        "--workdir",
        str(tmp_path / "cal"),
        env=env,
    )
    slurm.wait_gone(job, timeout=120)
    log = _read_log(tmp_path / f"job-{job}.out")
    state = slurm.job_state(job)
    assert state["JobState"] == "FAILED" and state["ExitCode"] == "2:0", f"{state}\n{log}"
    assert re.search(r"running: ddpipe calibrate .* --scheduler \S+/scheduler\.json", log), log
    assert "nope.skymodel" in log
    assert not (tmp_path / "sol.h5").exists()
    assert list((tmp_path / "scratch").iterdir()) == []
    slurm.assert_nothing_left()


PROBE = """
import json, os, subprocess, sys
from distributed import Client

sched_file = sys.argv[sys.argv.index("--scheduler") + 1]
address = json.load(open(sched_file))["address"]
bare = {k: v for k, v in os.environ.items() if not k.startswith("DASK_DISTRIBUTED__COMM__")}
try_bare = "from distributed import Client; Client(%r, timeout=5)" % address
out = subprocess.run([sys.executable, "-c", try_bare], env=bare, capture_output=True, text=True)
print("WITHOUT-CERT", "refused" if out.returncode else "CONNECTED", out.stderr.strip().splitlines()[-1:])
with Client(scheduler_file=sched_file, timeout=30) as client:  # the run's certificate, from the job's env
    pid = client.submit(os.getpid, resources={"subprocess_slots": 1}, pure=False).result(timeout=60)
    print("WITH-CERT", address, "ran on", pid != os.getpid())
"""


def test_batch_script_scheduler_admits_only_holders_of_the_run_certificate(slurm, tmp_path):
    """The run's scheduler speaks TLS: a client without the run's certificate is refused; the job's own
    processes (which get it through Dask's config in their environment) connect and run a slot task."""
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    env = _job_env(slurm, tmp_path)
    job = _submit(slurm, tmp_path, RUN_SCRIPT, sys.executable, str(probe), env=env)
    slurm.wait_gone(job, timeout=150)
    log = _read_log(tmp_path / f"job-{job}.out")
    state = slurm.job_state(job)
    assert state["JobState"] == "COMPLETED" and state["ExitCode"] == "0:0", f"{state}\n{log}"
    assert "WITHOUT-CERT refused" in log, log
    assert re.search(r"WITH-CERT tls://127\.0\.0\.1:\d+ ran on True", log), log
    sec = tmp_path / f"ddpipe-slurm-{job}" / "security"
    assert sorted(p.name for p in sec.iterdir()) == ["ddpipe-tls.crt", "ddpipe-tls.key"]
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in sec.iterdir())
    assert sec.stat().st_mode & 0o777 == 0o700
    slurm.assert_nothing_left()


@pytest.mark.parametrize(
    "knobs, needle",
    [
        ({"DDPIPE_TLS_KEY": "{key}"}, "DDPIPE_TLS_CA_FILE is not set"),
        ({"DDPIPE_TLS_CA_FILE": "{crt}", "DDPIPE_TLS_CERT": "{crt}", "DDPIPE_TLS_KEY": "{loose}"}, "mode 644"),
        ({"DDPIPE_TLS_CA_FILE": "{crt}", "DDPIPE_TLS_CERT": "{nope}", "DDPIPE_TLS_KEY": "{key}"}, "does not exist"),
        ({"DDPIPE_TLS": "maybe"}, "expected yes or no"),
    ],
)
def test_batch_script_refuses_bad_tls_settings_before_starting_anything(slurm, tmp_path, knobs, needle):
    from ddpipe.security import new_certificate

    files = new_certificate(tmp_path / "sec")
    loose = tmp_path / "loose.key"
    loose.write_bytes(files.key.read_bytes())
    loose.chmod(0o644)
    paths = {"key": files.key, "crt": files.cert, "loose": loose, "nope": tmp_path / "nope.crt"}
    env = _job_env(slurm, tmp_path, **{k: v.format(**paths) for k, v in knobs.items()})
    job = _submit(slurm, tmp_path, RUN_SCRIPT, "true", env=env, time_limit="00:02:00")
    slurm.wait_gone(job, timeout=110)
    log = _read_log(tmp_path / f"job-{job}.out")
    assert slurm.job_state(job)["ExitCode"] == "2:0", log
    errors = [line for line in log.splitlines() if "error:" in line]
    assert len(errors) == 1 and needle in errors[0], log
    assert "scheduler on" not in log  # nothing started
    slurm.assert_nothing_left()


def test_batch_script_refuses_a_missing_config_before_starting_anything(slurm, tmp_path):
    env = _job_env(slurm, tmp_path, DDPIPE_CONFIG=str(tmp_path / "missing.yaml"))
    job = _submit(slurm, tmp_path, RUN_SCRIPT, env=env, time_limit="00:02:00")
    slurm.wait_gone(job, timeout=60)
    log = _read_log(tmp_path / f"job-{job}.out")
    assert slurm.job_state(job)["ExitCode"] == "2:0", log
    assert f"DDPIPE_CONFIG={tmp_path / 'missing.yaml'} does not exist" in log
    assert not (tmp_path / f"ddpipe-slurm-{job}").exists() or not any((tmp_path / f"ddpipe-slurm-{job}").iterdir())
    slurm.assert_nothing_left()


def test_worker_script_joins_an_existing_scheduler(slurm, tmp_path):
    """ddpipe-workers.sbatch adds slot workers to a TLS scheduler started elsewhere (finding the
    certificate in the security/ folder beside the scheduler file, as ddpipe-run.sbatch lays it out);
    scancel ends them."""
    from distributed import Client

    from ddpipe.security import new_certificate

    files = new_certificate(tmp_path / "security")
    tls = ["--tls-ca-file", str(files.ca), "--tls-cert", str(files.cert), "--tls-key", str(files.key)]
    sched_file = tmp_path / "scheduler.json"
    sched = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "distributed.cli.dask_scheduler",
            "--protocol",
            "tls",
            *tls,
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--dashboard-address",
            "127.0.0.1:0",
            "--scheduler-file",
            str(sched_file),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not sched_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert sched_file.exists(), "dask scheduler did not start"
        env = _job_env(slurm, tmp_path, DDPIPE_SCHEDULER_FILE=str(sched_file))
        job = _submit(slurm, tmp_path, WORKERS_SCRIPT, env=env, workers=2)
        with Client(scheduler_file=str(sched_file), timeout=30, security=files.security()) as client:
            client.wait_for_workers(2, timeout=90)
            info = client.scheduler_info(n_workers=-1)["workers"]
            assert sorted(w["resources"].get("subprocess_slots") for w in info.values()) == [1.0, 1.0]
            assert all(w["name"].endswith((f"-{job}-0", f"-{job}-1")) for w in info.values())
            # a slot task runs on them
            fut = client.submit(os.getpid, resources={"subprocess_slots": 1}, pure=False)
            assert fut.result(timeout=60) != os.getpid()

            # a worker process dies while its subprocess (in its own session, as DP3 runs) lives on
            def spawn_and_report():
                import subprocess as sp

                child = sp.Popen(["sleep", "700"], start_new_session=True)
                return child.pid, os.getpid()

            child_pid, worker_pid = client.submit(spawn_and_report, pure=False).result(timeout=60)
            orphan = psutil.Process(child_pid)
            psutil.Process(worker_pid).kill()
            deadline = time.monotonic() + 10
            while orphan.ppid() == worker_pid and time.monotonic() < deadline:
                time.sleep(0.1)
            assert orphan.is_running() and orphan.status() != psutil.STATUS_ZOMBIE  # orphaned, still alive
            slurm.run("scancel", job)
            slurm.wait_gone(job, timeout=60)
            deadline = time.monotonic() + 30
            while client.scheduler_info(n_workers=-1)["workers"] and time.monotonic() < deadline:
                time.sleep(0.2)
            assert client.scheduler_info(n_workers=-1)["workers"] == {}
    finally:
        sched.terminate()
        try:
            sched.wait(15)
        except subprocess.TimeoutExpired:
            sched.kill()
            sched.wait()
    log = _read_log(tmp_path / f"job-{job}.out")
    assert "SIGTERM (scancel or walltime): shutting down" in log
    worker_logs = list((tmp_path / f"ddpipe-workers-{job}").glob("worker-*.log"))
    assert len(worker_logs) == 2
    # the worker task found the orphan by its tag and stopped it
    assert f"stopping process {child_pid} left behind by the worker (SIGKILL)" in "".join(
        p.read_text() for p in worker_logs
    )
    assert not orphan.is_running() or orphan.status() == psutil.STATUS_ZOMBIE
    slurm.assert_nothing_left()


@pytest.mark.dp3
@pytest.mark.slow
def test_jobqueue_mode_runs_workers_as_slurm_jobs(slurm, sim_ms, tmp_path):
    """cluster.mode slurm: dask-jobqueue submits 2 worker jobs with --resources subprocess_slots=1;
    `ddpipe calibrate` solves on them and cancels them at the end."""
    config = tmp_path / "jobqueue.yaml"
    config.write_text(
        "cluster:\n"
        "  mode: slurm\n"
        "  dashboard_address: '127.0.0.1:0'\n"
        "  no_workers_timeout: 90\n"
        "  slurm:\n"
        "    walltime: '00:10:00'\n"
        "    cores: 1\n"
        "    memory: 1GiB\n"
        "    jobs: 2\n"
        f"    local_directory: {tmp_path / 'scratch'}\n"
        f"    log_directory: {tmp_path / 'jobs'}\n"
    )
    env = dict(slurm.env)
    # the scheduler (in the driver) and the workers listen on the loopback interface only
    env["DASK_JOBQUEUE__SLURM__INTERFACE"] = "lo"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "ddpipe",
            "calibrate",
            "--debug",
            "--config",
            str(config),
            "--ms",
            str(sim_ms),
            "--skymodel",
            str(sim_ms.with_suffix(".skymodel")),
            "--out",
            str(tmp_path / "sol.h5"),
            "--workdir",
            str(tmp_path / "cal"),
            "--n-chunks",
            "4",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    # the job script dask-jobqueue submitted carries the slot resource
    assert "#SBATCH --cpus-per-task=1" in out.stderr
    assert "--resources subprocess_slots=1" in out.stderr and "--interface lo" in out.stderr
    assert f"--tls-key {tmp_path / 'cal' / 'security' / 'ddpipe-tls.key'}" in out.stderr  # the run's own, 0600
    assert (tmp_path / "cal" / "security" / "ddpipe-tls.key").stat().st_mode & 0o777 == 0o600
    sol = read_h5parm(tmp_path / "sol.h5")
    phase = sol.soltabs["phase000"]
    assert phase.values.shape[phase.axes.index("time")] == 40
    assert np.all(np.isfinite(phase.values))

    # both worker jobs ran and registered with the driver's scheduler on 127.0.0.1
    errs = sorted((tmp_path / "jobs").glob("ddpipe-worker-*.err"))
    assert len(errs) == 2, errs
    started = set()
    for e in errs:
        text = e.read_text(errors="replace")
        assert re.search(r"Registered to:\s+tls://127\.0\.0\.1:\d+", text), text[-2000:]
        started.update(re.findall(r"Start worker at:\s+(tls://\S+)", text))
    records = _done_records(tmp_path / "cal" / "chunks")
    assert len(records) == 4 and {r["worker"] for r in records} <= started
    _assert_one_dp3_at_a_time(records)
    slurm.assert_nothing_left(timeout=60)


def test_walltime_warning_shuts_down_a_run_mid_dp3(slurm, sim_ms, tmp_path):
    """SIGTERM to the batch shell only (what `--signal=B:TERM@180` sends before the walltime) while
    DP3 runs: the trap stops driver, workers and scheduler, and no DP3 survives."""
    fake_dp3 = tmp_path / "slow_dp3.sh"  # a DP3 that never finishes on its own
    fake_dp3.write_text("#!/bin/sh\nexec sleep 600\n")
    fake_dp3.chmod(0o755)
    workdir = tmp_path / "work"
    config = _tiny_config(tmp_path / "tiny.yaml", sim_ms, workdir)
    config.write_text(config.read_text() + f"dp3: {{executable: {fake_dp3}}}\n")
    env = _job_env(slurm, tmp_path, DDPIPE_CONFIG=str(config))
    job = _submit(slurm, tmp_path, RUN_SCRIPT, env=env, workers=2, time_limit="00:10:00")
    chunks = workdir / "cycle_01" / "chunks"
    deadline = time.monotonic() + 150
    while len(list(chunks.glob("chunk_*.log"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert len(list(chunks.glob("chunk_*.log"))) == 2, _read_log(tmp_path / f"job-{job}.out")
    sleeping = [p for p in slurm.our_processes() if " sleep 600" in p]
    assert len(sleeping) == 2, sleeping  # one "DP3" per worker: the slot at work
    # a worker process dies under its DP3 (as by the OOM killer); the nanny restarts it and the
    # chunk is rescheduled: afterwards, neither the old DP3 nor the new one may survive the job
    orphan = psutil.Process(int(sleeping[0].split()[0]))
    orphan.parent().kill()
    t0 = time.monotonic()
    slurm.run("scancel", "--batch", "--signal=TERM", job)
    slurm.wait_gone(job, timeout=120)
    log = _read_log(tmp_path / f"job-{job}.out")
    assert "SIGTERM (scancel or walltime near): shutting down" in log
    assert "stopping the driver" in log and "finished with exit code 143" in log
    assert time.monotonic() - t0 < 90, log
    assert list((tmp_path / "scratch").iterdir()) == []
    assert not orphan.is_running() or orphan.status() == psutil.STATUS_ZOMBIE
    slurm.assert_nothing_left()


@pytest.mark.dp3
@pytest.mark.slow
def test_jobqueue_worker_retiring_mid_dp3_finishes_its_chunk(slurm, sim_ms, tmp_path):
    """cluster.slurm.lifetime: the only worker job reaches its lifetime while a chunk's DP3 runs; it
    takes no new chunk, lets that DP3 finish, leaves, and a new job takes the rest. Every chunk runs
    once, nothing counts as a failure (retries 0), and the solutions equal an undisturbed run's."""
    from ddpipe.dp3.runner import find_dp3

    ledger, slow_dp3 = tmp_path / "dp3-runs.txt", tmp_path / "slow_dp3.sh"  # a real DP3 that takes 6 s more
    slow_dp3.write_text(f'#!/bin/sh\necho "$*" >> {ledger}\nsleep 6\nexec {" ".join(find_dp3(None))} "$@"\n')
    slow_dp3.chmod(0o755)

    def config(name: str, cluster: str, dp3: Path | None) -> Path:
        path = tmp_path / f"{name}.yaml"
        path.write_text(
            f"cluster:\n{cluster}"
            "  retries: 0\n"
            "chunking: {duration: 0, n_chunks: 6, lead_in: 0}\n"  # ~42 s of DP3: retirement at 20-22 s is mid-run
            "calibration: {mode: scalarphase, propagatesolutions: false}\n"
            + (f"dp3: {{executable: {dp3}}}\n" if dp3 else "")
        )
        return path

    def calibrate(cfg: Path, name: str, env: dict[str, str]) -> subprocess.CompletedProcess:
        argv = [sys.executable, "-m", "ddpipe", "calibrate", "--debug", "--config", str(cfg), "--ms", str(sim_ms)]
        argv += ["--skymodel", str(sim_ms.with_suffix(".skymodel")), "--out", str(tmp_path / f"{name}.h5")]
        argv += ["--workdir", str(tmp_path / name)]
        return subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240)

    jobqueue = (
        "  mode: slurm\n  dashboard_address: '127.0.0.1:0'\n  no_workers_timeout: 90\n  slurm:\n"
        "    walltime: '00:10:00'\n    lifetime: 20s\n    cores: 1\n    memory: 1GiB\n    jobs: 1\n"
        f"    local_directory: {tmp_path / 'scratch'}\n    log_directory: {tmp_path / 'jobs'}\n"
    )
    env = dict(slurm.env, DASK_JOBQUEUE__SLURM__INTERFACE="lo")
    out = calibrate(config("retiring", jobqueue, slow_dp3), "retiring", env)
    assert out.returncode == 0, out.stderr[-3000:]
    ref = calibrate(config("reference", "  n_workers: 1\n", None), "reference", dict(os.environ))
    assert ref.returncode == 0, ref.stderr[-3000:]

    errs = {e: e.read_text(errors="replace") for e in sorted((tmp_path / "jobs").glob("ddpipe-worker-*.err"))}
    retired = [e for e, text in errs.items() if "retiring (lifetime)" in text]
    notes = {e.name: [ln for ln in t.splitlines() if "retir" in ln or "Start worker" in ln] for e, t in errs.items()}
    assert retired and len(errs) >= 2, notes  # one left, another came
    text = errs[retired[0]]
    assert "waiting for 1 running" in text and "deadline reached" not in text, text[-3000:]
    runs = [line for line in ledger.read_text().splitlines() if "ddecal.h5parm=" in line]
    chunks = sorted(re.search(r"(chunk_\d+)", line).group(1) for line in runs)
    assert chunks == [f"chunk_{k:03d}" for k in range(6)], chunks  # each exactly once
    a, b = read_h5parm(tmp_path / "retiring.h5"), read_h5parm(tmp_path / "reference.h5")
    np.testing.assert_array_equal(a.soltabs["phase000"].values, b.soltabs["phase000"].values)
    slurm.assert_nothing_left(timeout=60)
