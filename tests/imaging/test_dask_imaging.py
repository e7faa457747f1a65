"""Imaging passes as Dask tasks (issue 10): the same image as in-process, in local and address
modes; a worker killed mid-imaging is survived; imaging tasks and DP3 never share a worker
beyond its one ``subprocess_slots``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cloudpickle
import numpy as np
import pytest
from distributed.diagnostics.plugin import WorkerPlugin
from imaging_helpers import imaging_params

from ddpipe.imaging import make_image
from ddpipe.imaging.fitsio import read_image

pytestmark = pytest.mark.slow

PARAMS = dict(size=(256, 256), scale=40.0, weight="briggs", robust=0.0, niter=300, mgain=0.8, auto_threshold=3.0)


def _facet_inputs(sim_dd):
    from ddpipe.sky.directions import patch_directions
    from ddpipe.sky.skymodel import read_skymodel
    from ddpipe.solutions.h5parm import read_h5parm

    corrupted, _ = sim_dd
    return corrupted.ms, read_h5parm(corrupted.truth), patch_directions(read_skymodel(corrupted.skymodel))


@pytest.fixture(scope="module")
def in_process(sim_dd, tmp_path_factory):
    ms, sol, dirs = _facet_inputs(sim_dd)
    return make_image(
        [ms], imaging_params(**PARAMS), tmp_path_factory.mktemp("inproc") / "img", solutions=sol, facet_directions=dirs
    )


def _assert_same_image(got, want):
    for name in ("dirty", "psf", "residual", "image"):
        a, b = read_image(got.paths[name])[0], read_image(want.paths[name])[0]
        # the gridder sums in threads, and the ranges add in another order: not bit-exact
        assert np.abs(a - b).max() <= 1e-4 * np.abs(b).max(), name
    assert got.n_iterations == want.n_iterations and got.n_major == want.n_major


def _local_cluster(**kw):
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        resources={"subprocess_slots": 1},
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
        processes=True,
        **kw,
    )
    return cluster, Client(cluster)


def test_dask_passes_give_the_in_process_image_and_use_both_workers(sim_dd, in_process, tmp_path):
    from distributed import get_task_stream

    ms, sol, dirs = _facet_inputs(sim_dd)
    cluster, client = _local_cluster()
    try:
        with get_task_stream(client) as ts:
            got = make_image(
                [ms], imaging_params(**PARAMS), tmp_path / "img", solutions=sol, facet_directions=dirs, client=client
            )
        workers = {t["worker"] for t in ts.data if t["key"].startswith("pass_task")}
    finally:
        client.close()
        cluster.close()
    _assert_same_image(got, in_process)
    assert len(workers) == 2, f"passes ran on {workers}"


class _Dask:
    """``dask scheduler`` and two ``dask worker --resources subprocess_slots=1`` as processes (address mode)."""

    def __init__(self, folder: Path):
        self.procs: list[subprocess.Popen] = []
        sched_file = folder / "scheduler.json"
        self._start(
            [
                sys.executable,
                "-m",
                "distributed.cli.dask_scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--dashboard-address",
                "127.0.0.1:0",
                "--scheduler-file",
                str(sched_file),
            ],
            folder / "s.log",
        )
        deadline = time.monotonic() + 60
        while not (sched_file.exists() and sched_file.stat().st_size):
            assert time.monotonic() < deadline, "the scheduler did not start"
            time.sleep(0.1)
        self.scheduler_file = str(sched_file)
        for i in range(2):
            self._start(
                [
                    sys.executable,
                    "-m",
                    "distributed.cli.dask_worker",
                    "--scheduler-file",
                    str(sched_file),
                    "--nthreads",
                    "1",
                    "--host",
                    "127.0.0.1",
                    "--dashboard-address",
                    "127.0.0.1:0",
                    "--resources",
                    "subprocess_slots=1",
                    "--local-directory",
                    str(folder / f"w{i}"),
                ],
                folder / f"w{i}.log",
            )

    def _start(self, argv, log):
        with open(log, "wb") as fh:
            self.procs.append(subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True))

    def client(self):
        from distributed import Client

        client = Client(scheduler_file=self.scheduler_file, timeout="30s")
        client.wait_for_workers(2, timeout=60)
        return client

    def stop(self):
        for p in reversed(self.procs):
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


class KillOnFirstPass(WorkerPlugin):
    """Worker plugin: the first worker to start a ``pass_task`` of the dirty pass SIGKILLs itself
    (once per test, whichever worker gets there first: a marker file decides)."""

    name = "kill-on-first-pass"

    def __init__(self, marker: str):
        self.marker = marker

    def transition(self, key, start, finish, **kwargs):
        if finish == "executing" and str(key).startswith("pass_task"):
            try:
                os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                return
            os.kill(os.getpid(), signal.SIGKILL)


def test_address_mode_gives_the_same_image_and_survives_a_worker_killed_mid_pass(sim_dd, in_process, tmp_path):
    ms, sol, dirs = _facet_inputs(sim_dd)
    dask = _Dask(tmp_path)
    try:
        with dask.client() as client:
            same = make_image(
                [ms], imaging_params(**PARAMS), tmp_path / "addr", solutions=sol, facet_directions=dirs, client=client
            )
            cloudpickle.register_pickle_by_value(sys.modules[__name__])
            marker = tmp_path / "killed"
            client.register_plugin(KillOnFirstPass(str(marker)))
            survived = make_image(
                [ms], imaging_params(**PARAMS), tmp_path / "kill", solutions=sol, facet_directions=dirs, client=client
            )
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
        dask.stop()
    assert marker.exists(), "no worker was killed"
    _assert_same_image(same, in_process)
    _assert_same_image(survived, in_process)


@pytest.mark.dp3
def test_imaging_tasks_and_dp3_never_share_a_worker_slot(sim_dd, in_process, tmp_path):
    """Calibration (real DP3 per chunk) and an image submitted at the same time on 2 workers: on
    each worker, no DP3 chunk task and imaging task overlap in time (both hold subprocess_slots)."""
    from distributed import get_task_stream

    from ddpipe.calibrate import calibrate
    from ddpipe.config import load_config

    ms, sol, dirs = _facet_inputs(sim_dd)
    corrupted, _ = sim_dd
    cfg = load_config(
        None,
        {"inputs": {"ms": [str(ms)]}, "chunking": {"duration": 0.0, "n_chunks": 4}, "calibration": {"solint": 2}},
    )
    cluster, client = _local_cluster()
    errors = []

    def solve():
        try:
            calibrate(cfg, str(corrupted.skymodel), [n for n, _, _ in dirs], tmp_path / "cal", client)
        except Exception as exc:  # reported below
            errors.append(exc)

    try:
        with get_task_stream(client) as ts:
            t = threading.Thread(target=solve)
            t.start()
            got = make_image(
                [ms], imaging_params(**PARAMS), tmp_path / "img", solutions=sol, facet_directions=dirs, client=client
            )
            t.join(timeout=600)
        tasks = list(ts.data)
        # on each worker's own clock: the task stream's times carry each report's estimate of the
        # scheduler's clock offset, which jitters by a tenth of a second on a loaded machine
        spans = client.run(_executing_spans)
    finally:
        client.close()
        cluster.close()
    assert not errors, errors
    _assert_same_image(got, in_process)
    kinds = {t["key"].split("-")[0] for t in tasks} & {k.split("-")[0] for v in spans.values() for _, _, k in v}
    assert "ddecal" in kinds and "pass_task" in kinds, kinds  # both ran, and the worker logs saw them
    for worker, items in spans.items():
        items = sorted(i for i in items if i[2].split("-")[0] in ("ddecal", "pass_task", "density_task"))
        assert items, worker
        for (s0, e0, k0), (s1, e1, k1) in zip(items, items[1:]):
            assert s1 >= e0, f"{worker} ran {k0} and {k1} at once: {items}"


def _executing_spans(dask_worker) -> list[tuple[float, float, str]]:
    """(start, end, key) of every task the worker held in state 'executing' (its slot taken), from
    the worker state machine's transition log: (key, start, recommended, final, ..., time)."""
    started, out = {}, []
    for entry in dask_worker.state.log:
        if len(entry) != 7 or not isinstance(entry[0], str):
            continue
        key, start, final, when = entry[0], entry[1], entry[3], entry[6]
        if final == "executing" and start != "executing":
            started[key] = when
        elif start == "executing" and final != "executing" and key in started:
            out.append((started.pop(key), when, key))
    return out


@pytest.mark.parametrize("env, applied", [({"MALLOC_TRIM_THRESHOLD_": "65536"}, True), ({}, False)])
def test_worker_allocator_is_set_back_only_where_a_nanny_pinned_it(env, applied):
    """Dask's nanny pins glibc's trim threshold; the imaging tasks set glibc's usual thresholds back
    (once per process), and leave a process started without the variable alone."""
    code = "from ddpipe.imaging import engine; print(engine._reuse_freed_memory(), engine._reuse_freed_memory())"
    base = {k: v for k, v in os.environ.items() if k != "MALLOC_TRIM_THRESHOLD_"}
    out = subprocess.run(
        [sys.executable, "-c", code], env={**base, **env}, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == [str(applied and sys.platform.startswith("linux")), "False"]
