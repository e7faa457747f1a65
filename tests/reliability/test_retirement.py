"""Graceful retirement (issue 15): a retiring worker takes no new chunk, lets its running DP3
finish (or, at its deadline, leaves it to be rescheduled without counting as a failure), then
goes; and a 200-chunk calibration on workers that join and leave solves every chunk once."""

from __future__ import annotations

import dataclasses
import re
import shlex
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import psutil
import pytest
import relkit

from ddpipe.calibrate import calibrate
from ddpipe.cluster import SLOT_RESOURCES, local_cluster
from ddpipe.config import load_config
from ddpipe.dp3.runner import find_dp3, run_dp3
from ddpipe.retirement import GracefulRetirement, request_retirement
from ddpipe.sky.directions import require_directions
from ddpipe.solutions.h5parm import read_h5parm


def _cluster_cfg(**kw):
    return dataclasses.replace(load_config().cluster, worker_wait=10.0, **kw)


def _sleeping_dp3(i: int, seconds: float, folder: str) -> tuple[int, str, float, float]:
    """A chunk stand-in: a 'DP3' (sleep) run through run_dp3, as run_chunk runs DP3."""
    from distributed import get_worker

    t0 = time.time()
    run_dp3(["sleep", str(seconds)], log_path=f"{folder}/task{i}.log", timeout=100, env={"PATH": "/usr/bin:/bin"})
    return i, get_worker().address, t0, time.time()


def _suspicious(client) -> list[int]:
    return client.run_on_scheduler(lambda dask_scheduler: [t.suspicious for t in dask_scheduler.tasks.values()])


def _busy_worker(client, folder: Path, timeout: float = 20) -> str:
    """A worker whose "DP3" has started (its log exists)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(folder.glob("task*.log")):
            time.sleep(0.2)
            return next(w for w, keys in client.processing().items() if keys)
        time.sleep(0.05)
    raise AssertionError("no worker started a task")


def _wait_until_gone(client, address: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while address in client.scheduler_info(n_workers=-1)["workers"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert address not in client.scheduler_info(n_workers=-1)["workers"], f"{address} did not leave"


def test_a_retiring_worker_finishes_its_running_dp3_and_takes_no_new_one(tmp_path):
    h = local_cluster(_cluster_cfg(n_workers=2), tmp_path)
    try:
        c = h.client
        futs = [c.submit(_sleeping_dp3, i, 3.0, str(tmp_path), resources=SLOT_RESOURCES, pure=False) for i in range(4)]
        target = _busy_worker(c, tmp_path)  # inside its first "DP3"
        asked = time.time()
        assert request_retirement(c, [target]) == {target: "retiring"}
        done = c.gather(futs)
        _wait_until_gone(c, target)
        suspicious = _suspicious(c)
    finally:
        h.close()
    on_target = [d for d in done if d[1] == target]
    assert len(on_target) == 1, done  # its running task, finished there (not killed and rerun)
    assert on_target[0][2] < asked < on_target[0][3]
    assert all(d[2] < asked for d in on_target), "no new task after retirement began"
    assert sorted(d[0] for d in done) == [0, 1, 2, 3] and suspicious == [0] * len(suspicious)
    # each task's "DP3" ran once: one log each
    assert sorted(p.name for p in tmp_path.glob("task*.log")) == [f"task{i}.log" for i in range(4)]


def test_at_its_deadline_a_retiring_worker_leaves_and_the_chunk_is_rescheduled_not_failed(tmp_path):
    h = local_cluster(_cluster_cfg(n_workers=2), tmp_path)
    try:
        c = h.client
        futs = [c.submit(_sleeping_dp3, i, 4.0, str(tmp_path), resources=SLOT_RESOURCES, pure=False) for i in range(2)]
        target = _busy_worker(c, tmp_path)
        t0 = time.time()
        request_retirement(c, [target], deadline=time.time() + 1.0)
        _wait_until_gone(c, target, timeout=10)
        gone_after = time.time() - t0
        done = c.gather(futs, errors="raise")  # retries=0: a counted failure would raise here
        suspicious = _suspicious(c)
    finally:
        h.close()
    assert gone_after < 3.5, "left at its deadline, not after its task"
    assert target not in {d[1] for d in done}, "both tasks finished elsewhere (one of them rescheduled)"
    assert suspicious == [0, 0], "an expected departure is not a failure"
    leftovers = [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", "4.0"]]
    assert leftovers == [], "the killed DP3 did not outlive its worker"


def test_workers_retire_at_their_lifetime_after_their_running_dp3(tmp_path):
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            resources=dict(SLOT_RESOURCES),
            host="127.0.0.1",
            dashboard_address=None,
            local_directory=str(tmp_path / "scratch"),
        ) as cluster,
        Client(cluster) as c,
    ):
        futs = [c.submit(_sleeping_dp3, i, 4.0, str(tmp_path), resources=SLOT_RESOURCES, pure=False) for i in range(2)]
        _busy_worker(c, tmp_path)
        # born ~now: retire after 1.5 s of life, while each worker is in its 4 s "DP3"
        c.register_plugin(GracefulRetirement(lifetime=1.5, margin=0.0), name="ddpipe-graceful-retirement")
        done = c.gather(futs)
        for address in {d[1] for d in done}:  # (LocalCluster starts new workers in their place)
            _wait_until_gone(c, address, timeout=20)
        suspicious = _suspicious(c)
    assert len({d[1] for d in done}) == 2 and all(d[3] - d[2] >= 3.9 for d in done), done
    assert suspicious == [0, 0]


# ----------------------------------------------------------------------------- 200 chunks, churn


@pytest.fixture(scope="module")
def tiny_ms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("churn")
    ms = folder / "tiny.ms"
    sim = ["--stations", "6", "--channels", "1", "--times", "200", "--directions", "1"]
    sim += ["--sources-per-direction", "1", "--faint-sources", "0", "--seed", "3", "-q"]
    subprocess.run([sys.executable, "-m", "ddpipe", "simulate", str(ms), *sim], check=True, timeout=120)
    return ms


def _ledger_dp3(folder: Path) -> tuple[Path, Path]:
    """A DP3 that writes one ledger line per run (its chunk's H5parm), then is the real DP3."""
    ledger, script = folder / "dp3-runs.txt", folder / "DP3"
    script.write_text(f'#!/bin/sh\necho "$*" >> {shlex.quote(str(ledger))}\nexec {shlex.join(find_dp3(None))} "$@"\n')
    script.chmod(0o755)
    return script, ledger


@pytest.mark.dp3
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_200_chunks_on_churning_workers_are_each_solved_exactly_once(tiny_ms, tmp_path):
    dp3, ledger = _ledger_dp3(tmp_path)
    overrides = {
        "inputs": {"ms": [str(tiny_ms)], "skymodel": str(tiny_ms.with_suffix(".skymodel"))},
        "chunking": {"duration": 0, "n_chunks": 200, "lead_in": 0},
        "calibration": {"mode": "scalarphase", "solint": 1, "n_directions": 1, "maxiter": 10},
        "cluster": {"n_workers": 2, "retries": 0, "worker_wait": 10.0},
        "dp3": {"executable": str(dp3)},
    }
    cfg = load_config(None, overrides)
    before = relkit.tree_hashes(tiny_ms, tiny_ms.with_suffix(".skymodel"))
    skymodel, directions = require_directions(cfg.inputs.skymodel, 1, tmp_path)
    h = local_cluster(cfg.cluster, tmp_path)
    h.cluster.adapt(minimum=2, maximum=3, interval="500ms")  # a third worker joins while chunks wait
    me = psutil.Process()
    rss: dict[int, float] = {}
    retired: list[str] = []
    seen_workers: set[str] = set()

    def on_chunk(outcome) -> None:
        n = len(rss) + 1
        rss[n] = me.memory_info().rss / 2**20
        seen_workers.update(h.client.scheduler_info(n_workers=-1)["workers"])
        if n in (40, 100):  # two workers retire mid-run, each in the middle of a chunk
            busy = [w for w, keys in h.client.processing().items() if keys and w not in retired]
            if busy:
                retired.append(busy[0])
                request_retirement(h.client, busy[:1])

    try:
        t0 = time.monotonic()
        result = calibrate(cfg, skymodel, directions, tmp_path / "chunks", h.client, on_chunk=on_chunk)
        wall = time.monotonic() - t0
        suspicious = _suspicious(h.client)
    finally:
        h.close()
    assert len(retired) == 2, "two workers retired mid-run"
    assert len(seen_workers) >= 4, f"workers joined and left: {sorted(seen_workers)}"
    runs = Counter(m.group(1) for line in ledger.read_text().splitlines() if (m := re.search(r"(chunk_\d+)", line)))
    assert len(runs) == 200 and set(runs.values()) == {1}, [k for k, v in runs.items() if v != 1]
    assert len(result.chunks) == 200 and result.reused == 0
    assert suspicious == [0] * len(suspicious)
    phase = read_h5parm(result.solutions).soltabs["phase000"]
    assert phase.values.shape[phase.axes.index("time")] == 200 and np.all(np.isfinite(phase.values))
    # the driver's memory is flat: what it holds per finished chunk does not pile up
    growth = rss[200] - rss[50]
    print(f"200 chunks in {wall:.1f} s; driver RSS {rss[50]:.0f} MB at chunk 50, {rss[200]:.0f} MB at 200")
    assert growth < 30, f"driver RSS grew by {growth:.1f} MB from chunk 50 to 200"
    assert relkit.tree_hashes(tiny_ms, tiny_ms.with_suffix(".skymodel")) == before, "the inputs are untouched"
