"""Cluster modes: local slots, address mode against a real `dask scheduler`/`dask worker`,
and the SLURM job script dask-jobqueue renders."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ddpipe.cluster import (
    SLOT_RESOURCES,
    _walltime_seconds,
    address_cluster,
    check_lifetime,
    local_cluster,
    retirement_plugin,
    slurm_cluster_kwargs,
    worker_slots,
)
from ddpipe.config import load_config
from ddpipe.errors import UserError

DASK = str(Path(sys.executable).with_name("dask"))


def _cluster_cfg(**kw):
    cfg = load_config().cluster
    return dataclasses.replace(cfg, **kw)


def test_local_cluster_offers_one_slot_per_worker_and_paces_tasks(tmp_path):
    h = local_cluster(_cluster_cfg(n_workers=2, threads_per_worker=2, worker_wait=5.0), tmp_path)
    try:
        slots = worker_slots(h.client)
        assert len(slots) == 2 and set(slots.values()) == {1.0}
        assert all(a.startswith("tls://127.0.0.1:") for a in slots)  # TLS by default (cluster.security.tls)
        assert h.dashboard is None or "127.0.0.1" in h.dashboard
        assert (tmp_path / "dask-scratch").is_dir()
        # 4 tasks of 0.4 s, each holding a slot: 2 at a time on 2 workers even with 2 threads each
        futs = [h.client.submit(_stamp, 0.4, key=f"t{i}", resources=SLOT_RESOURCES) for i in range(4)]
        spans = h.client.gather(futs)
    finally:
        h.close()
    by_worker: dict[str, list] = {}
    for w, a, b in spans:
        by_worker.setdefault(w, []).append((a, b))
    for w, iv in by_worker.items():
        iv.sort()
        for (a1, b1), (a2, b2) in zip(iv, iv[1:]):
            assert a2 >= b1 - 1e-3, f"two slot tasks overlapped on {w}"


def _stamp(seconds: float):
    from distributed import get_worker

    a = time.time()
    time.sleep(seconds)
    return get_worker().address, a, time.time()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def scheduler(tmp_path):
    """A real `dask scheduler` on 127.0.0.1 with a scheduler file; stopped at teardown."""
    sched_file = tmp_path / "scheduler.json"
    port = _free_port()
    proc = subprocess.Popen(
        [
            DASK,
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--dashboard-address",
            "127.0.0.1:0",
            "--scheduler-file",
            str(sched_file),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    procs = [proc]
    deadline = time.time() + 30
    while not sched_file.exists() and time.time() < deadline:
        time.sleep(0.1)
    assert sched_file.exists(), "dask scheduler did not start"

    def add_worker(*extra: str) -> subprocess.Popen:
        w = subprocess.Popen(
            [
                DASK,
                "worker",
                f"tcp://127.0.0.1:{port}",
                "--host",
                "127.0.0.1",
                "--nthreads",
                "1",
                "--dashboard-address",
                "127.0.0.1:0",
                "--local-directory",
                str(tmp_path / "w"),
                *extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        procs.append(w)
        return w

    yield f"tcp://127.0.0.1:{port}", sched_file, add_worker
    for p in reversed(procs):
        p.terminate()
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()


def test_address_mode_with_slot_workers(scheduler):
    address, sched_file, add_worker = scheduler
    add_worker("--resources", "subprocess_slots=1")
    h = address_cluster(_cluster_cfg(mode="address", address=str(sched_file), worker_wait=30.0))
    try:
        assert list(worker_slots(h.client).values()) == [1.0]
        assert h.client.submit(sum, [1, 2], resources=SLOT_RESOURCES).result(timeout=30) == 3
    finally:
        h.close()


def test_address_mode_without_slot_workers_fails_fast_with_the_fix(scheduler):
    address, _, add_worker = scheduler
    add_worker()  # no --resources
    t0 = time.monotonic()
    with pytest.raises(UserError) as err:
        address_cluster(_cluster_cfg(mode="address", address=address, worker_wait=8.0))
    assert time.monotonic() - t0 < 30
    msg = str(err.value)
    assert "none offers the 'subprocess_slots'" in msg
    assert f"dask worker {address} --nthreads 1 --resources subprocess_slots=1" in msg


def test_address_mode_no_workers_at_all(scheduler):
    address, _, _ = scheduler
    with pytest.raises(UserError, match="no worker joined"):
        address_cluster(_cluster_cfg(mode="address", address=address, worker_wait=2.0))


def test_address_unreachable_fails_within_connect_timeout():
    t0 = time.monotonic()
    with pytest.raises(UserError, match="cannot reach the Dask scheduler"):
        address_cluster(_cluster_cfg(mode="address", address=f"tcp://127.0.0.1:{_free_port()}", worker_wait=3.0))
    assert time.monotonic() - t0 < 20


def test_missing_scheduler_file(tmp_path):
    with pytest.raises(UserError, match="scheduler file .* does not exist"):
        address_cluster(_cluster_cfg(mode="address", address=str(tmp_path / "nope.json")))


def test_slurm_job_script_has_the_slot_resource(tmp_path):
    from dask_jobqueue import SLURMCluster

    base = _cluster_cfg(mode="slurm")
    slurm = dataclasses.replace(
        base.slurm,
        queue="short",
        account="astro",
        walltime="02:00:00",
        cores=4,
        memory="16GiB",
        job_script_prologue=("module load dp3",),
        lifetime="110m",
    )
    kw = slurm_cluster_kwargs(dataclasses.replace(base, slurm=slurm), tmp_path)
    kw["scheduler_options"] = {"host": "127.0.0.1", "dashboard_address": "127.0.0.1:0"}
    with SLURMCluster(**kw) as cluster:
        script = cluster.job_script()
    assert "#SBATCH -p short" in script
    assert "#SBATCH -A astro" in script
    assert "#SBATCH -t 02:00:00" in script
    assert "#SBATCH --cpus-per-task=4" in script
    assert "module load dp3" in script
    assert "--resources subprocess_slots=1" in script
    assert "--lifetime" not in script  # Dask's lifetime kills a running DP3: ddpipe's plugin retires instead
    assert "--nthreads 4" in script
    assert str(tmp_path / "logs" / "slurm") in script


@pytest.mark.parametrize(
    "walltime, lifetime, ok",
    [
        ("01:00:00", "55m", True),
        ("01:00:00", "57m", False),  # 57 min + 2 min stagger + 60 s margin reach the walltime
        ("01:00:00", "59m", False),
        ("1-00:00:00", "23h", True),
        ("02:00:00", "2h", False),
        ("12:00:00", "690m", True),
        ("12:00:00", "11h", True),
    ],
)
def test_lifetime_must_end_before_walltime(tmp_path, walltime, lifetime, ok):
    base = _cluster_cfg(mode="slurm")
    cfg = dataclasses.replace(base, slurm=dataclasses.replace(base.slurm, walltime=walltime, lifetime=lifetime))
    if ok:
        plugin = retirement_plugin(cfg)
        wall = _walltime_seconds(walltime)
        assert plugin.lifetime + plugin.stagger + plugin.margin < wall == plugin.walltime
        assert check_lifetime(cfg) == pytest.approx(wall - plugin.lifetime - plugin.stagger - plugin.margin)
    else:
        with pytest.raises(UserError, match="below cluster.slurm.walltime"):
            slurm_cluster_kwargs(cfg, tmp_path)


def test_lifetime_not_a_duration(tmp_path):
    base = _cluster_cfg(mode="slurm")
    cfg = dataclasses.replace(base, slurm=dataclasses.replace(base.slurm, lifetime="11h30m"))
    with pytest.raises(UserError, match="expected a Dask duration"):
        slurm_cluster_kwargs(cfg, tmp_path)
