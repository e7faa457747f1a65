"""Graceful retirement of Dask workers: a DP3 that has started is allowed to finish.

Dask's own ``--lifetime`` (and ``retire_workers``, which scale-down uses) closes a worker
as soon as its results are copied elsewhere: a chunk's DP3 that is running is killed
and starts again from scratch on another worker (measured with distributed 2026.8: the
task is rescheduled and not counted as a failure, but its work is lost; a chunk near the
walltime may never finish at all). ddpipe retires its workers in three steps instead:

1. **stop taking work**: the worker's status becomes ``closing_gracefully``, which the
   scheduler honours at once (no new task goes to it; the chunks go to other workers);
2. **let the running chunk finish**, for as long as the walltime allows: until
   ``deadline`` (the job's end minus ``margin`` s);
3. **leave**: the scheduler retires the worker (any result it holds is copied first;
   a chunk still running at the deadline is rescheduled elsewhere as an expected
   departure, which does not count toward ``allowed-failures``), then it closes.

Retirement starts at the worker's ``lifetime`` (plus a random stagger, so that not all
workers go at once), at ``retire_before`` s before the job's end, or when asked through
:func:`request_retirement` (a scale-down that keeps the running chunks).

The timing rule, checked by ``validate``: a chunk that starts just before retirement
finishes when ``walltime - lifetime - stagger - margin`` exceeds its DP3 time; otherwise it
is rescheduled at the deadline (work lost, run intact).

Workers get the plugin from the driver (``cluster: {mode: slurm}``, see
:mod:`ddpipe.cluster`) or with ``dask worker --preload ddpipe.retirement`` and the
``DDPIPE_RETIRE_*`` environment variables (``slurm/ddpipe-workers.sbatch``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import shutil
import subprocess
import time
from typing import Any

import psutil
from dask.utils import parse_timedelta
from distributed import WorkerPlugin
from distributed.core import Status

# a child of "distributed": on a `dask worker`, its messages go where the worker's own go
log = logging.getLogger("distributed.ddpipe_retirement")

#: the plugin's name on the workers (one per worker)
NAME = "ddpipe-graceful-retirement"
#: how often a worker looks at its clock
POLL = 0.5


def slurm_job_end(job_id: str | None = None) -> float | None:
    """The end of this SLURM job (its walltime) as a Unix time, from ``squeue``; None outside SLURM."""
    job_id = job_id or os.environ.get("SLURM_JOB_ID")
    squeue = shutil.which("squeue")
    if not job_id or squeue is None:
        return None
    try:
        out = subprocess.run(
            [squeue, "-h", "-j", job_id, "-o", "%e"], capture_output=True, text=True, timeout=20
        ).stdout.strip()
        return time.mktime(time.strptime(out, "%Y-%m-%dT%H:%M:%S"))
    except (OSError, subprocess.SubprocessError, ValueError, OverflowError):
        return None


class GracefulRetirement(WorkerPlugin):
    """Retire a worker at its lifetime or before its walltime without killing its running chunk.

    Parameters
    ----------
    lifetime
        Seconds after the worker started at which it retires (None: not by age).
    stagger
        Up to this many seconds are added at random to ``lifetime``.
    walltime
        The job's walltime in seconds, used when ``squeue`` cannot tell the job's end
        (counted from the worker's start); None: no deadline.
    margin
        Seconds before the job's end by which the worker has left, running chunk or not.
    retire_before
        Seconds before the job's end at which retirement starts (None: only by lifetime).
    """

    name = NAME
    idempotent = True

    def __init__(
        self,
        lifetime: float | None = None,
        stagger: float = 0.0,
        walltime: float | None = None,
        margin: float = 60.0,
        retire_before: float | None = None,
    ):
        self.lifetime, self.stagger, self.walltime = lifetime, stagger, walltime
        self.margin, self.retire_before = margin, retire_before
        self.worker: Any = None
        self.retire_at = self.deadline = float("inf")
        self.reason = "asked"
        self.started: float | None = None
        self._task: asyncio.Task | None = None

    def setup(self, worker: Any) -> None:
        self.worker = worker
        born = psutil.Process().create_time()
        end = slurm_job_end() or (born + self.walltime if self.walltime else None)
        if end is not None:
            self.deadline = end - self.margin
        if self.lifetime is not None:
            self.retire_at, self.reason = born + self.lifetime + random.uniform(0, self.stagger), "lifetime"
        if end is not None and self.retire_before is not None:
            if end - self.retire_before > born:
                if end - self.retire_before < self.retire_at:
                    self.retire_at, self.reason = end - self.retire_before, "walltime near"
            else:
                log.warning(
                    "retire %.0f s before the walltime is more than this job's length: the worker retires "
                    "only %.0f s before it (DDPIPE_RETIRE_MARGIN)",
                    self.retire_before,
                    self.margin,
                )
        if self.deadline <= self.retire_at:
            self.retire_at, self.reason = self.deadline, "walltime near"
        if self.retire_at < float("inf"):
            self._task = asyncio.ensure_future(self._wait_and_retire())
            log.info(
                "worker %s retires in %.0f s, leaves by %s",
                worker.address,
                self.retire_at - time.time(),
                "never" if self.deadline == float("inf") else f"{self.deadline - time.time():.0f} s",
            )

    def teardown(self, worker: Any) -> None:
        # the worker's close() removes its plugins: never cancel the retirement that is closing it
        if self._task is not None and not self._task.done() and self.started is None:
            self._task.cancel()

    async def _wait_and_retire(self) -> None:
        while time.time() < self.retire_at:
            await asyncio.sleep(min(POLL, max(self.retire_at - time.time(), 0.01)))
        await self.retire_now(reason=self.reason)

    async def retire_now(self, reason: str = "asked", deadline: float | None = None) -> str:
        """Stop taking work, let the running tasks finish (until the deadline), then leave."""
        w = self.worker
        if self.started is not None or w.status not in (Status.running, Status.paused):
            return "already retiring"
        self.started = time.time()
        until = min(self.deadline, deadline if deadline is not None else float("inf"))
        log.info("worker %s retiring (%s): no new tasks; waiting for %d running", w.address, reason, _running(w))
        w.status = Status.closing_gracefully  # the scheduler assigns nothing more to it
        while _running(w) and time.time() < until:
            await asyncio.sleep(POLL)
        if _running(w):
            log.warning("worker %s: deadline reached with a task running; it is rescheduled elsewhere", w.address)
        retired = await w.scheduler.retire_workers(
            workers=[w.address], close_workers=False, remove=True, stimulus_id=f"ddpipe-retire-{time.time()}"
        )
        if not retired:  # its results had nowhere to go (every other worker retiring too): Dask recomputes
            log.info("worker %s: results not copied elsewhere (no other worker): recomputed if needed", w.address)
            await asyncio.sleep(POLL)  # the scheduler's status message lands before close() starts
        await w.close(nanny=True, reason=f"ddpipe-retire-{reason}")
        return "retired"


def _running(worker: Any) -> int:
    """Tasks executing on the worker (a DP3 chunk or an imaging pass)."""
    return len(worker.state.executing) + len(worker.state.long_running)


def request_retirement(client: Any, workers: list[str], deadline: float | None = None) -> dict[str, str]:
    """Ask workers to retire gracefully (scale-down that keeps their running chunks)."""
    return client.run(_retire_via_plugin, deadline=deadline, workers=workers, wait=True, on_error="return")


async def _retire_via_plugin(dask_worker: Any, deadline: float | None = None) -> str:
    plugin = dask_worker.plugins.get(NAME)
    if plugin is None:
        return "no ddpipe retirement plugin on this worker"
    asyncio.ensure_future(plugin.retire_now(reason="asked", deadline=deadline))
    return "retiring"


# --------------------------------------------------------------------------- dask worker --preload


def _env_seconds(name: str) -> float | None:
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    return float(parse_timedelta(value))


async def dask_setup(worker: Any) -> None:
    """``dask worker --preload ddpipe.retirement``: the plugin, set by ``DDPIPE_RETIRE_LIFETIME``,
    ``DDPIPE_RETIRE_STAGGER``, ``DDPIPE_RETIRE_BEFORE`` and ``DDPIPE_RETIRE_MARGIN`` (durations)."""
    plugin = GracefulRetirement(
        lifetime=_env_seconds("DDPIPE_RETIRE_LIFETIME"),
        stagger=_env_seconds("DDPIPE_RETIRE_STAGGER") or 0.0,
        margin=_env_seconds("DDPIPE_RETIRE_MARGIN") or 60.0,
        retire_before=_env_seconds("DDPIPE_RETIRE_BEFORE"),
    )
    await worker.plugin_add(plugin, name=NAME)
