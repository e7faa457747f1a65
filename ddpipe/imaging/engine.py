"""Where the imaging passes run: in the driver, or as Dask tasks on the cluster's workers.

Both engines split the Measurement Sets into row ranges
(:func:`~ddpipe.imaging.prepared.plan_ranges`) and answer the same three calls
the imager makes: :meth:`density` (the uv density grid for uniform/Briggs
weights), :meth:`set_factor` (the density factor, folded into the weights once)
and :meth:`run_pass` (one residual pass over every range, summed). The driver
keeps the minor cycles; what grows with the data (reading rows, applying facet
gains, gridding, degridding) runs where the engine puts it.

:class:`LocalEngine` keeps the prepared ranges in memory between passes when they
fit its budget, else re-reads them on every pass. :class:`DaskEngine` submits
one task per range and pass, each asking for one ``subprocess_slots`` (so an
imaging task never runs beside a DP3 process, nor two beside each other, on one
worker); a task reads its own rows from the MS (paths and row numbers travel,
not visibilities), keeps them in its worker's memory for the next pass, and is
sent back to that worker; a worker lost mid-pass only costs a re-read elsewhere.
"""

from __future__ import annotations

import ctypes
import dataclasses
import logging
import os
import sys
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
from distributed import wait

from ddpipe.cluster import SLOT_RESOURCES, SlotWatch, worker_slots
from ddpipe.dp3.runner import worker_address, worker_threads
from ddpipe.errors import PipelineError
from ddpipe.imaging import weighting
from ddpipe.imaging.facets import GainTable
from ddpipe.imaging.msdata import MSDescription
from ddpipe.imaging.passes import Components, PassPartial, PassSpec, RowGains, grid_rows
from ddpipe.imaging.prepared import PreparedRows, RowRange, density, plan_ranges, range_bytes, read_rows, weigh

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RangeJob:
    """One row range of one image: all a worker needs to prepare it (small, picklable)."""

    key: str
    desc: MSDescription
    rows: RowRange
    npol: int
    row_block: int
    spec: PassSpec


def prepare(job: RangeJob, gains: GainTable | None, factor: np.ndarray | None) -> tuple[PreparedRows, RowGains | None]:
    """Read a range, weigh it with ``factor`` (when known) and evaluate its facet gains."""
    prep = read_rows(job.desc, job.rows, job.npol, job.row_block, by_baseline=job.spec.averaged)
    if factor is not None:
        weigh(prep, factor, job.spec.shape, job.spec.cell)
    return prep, row_gains(gains, prep)


def row_gains(gains: GainTable | None, prep: PreparedRows) -> RowGains | None:
    if gains is None:
        return None
    table, index = gains.for_block(prep.time, prep.ant1, prep.ant2)
    return RowGains(np.ascontiguousarray(table[..., : prep.npol]), index)


def with_h_cache(spec: PassSpec, descs: Sequence[MSDescription], nrow: int, npol: int, budget: int) -> PassSpec:
    """``spec`` with ``cache_h`` set when a range of ``nrow`` rows, with every facet's H (8 bytes per
    sample and facet, see :mod:`ddpipe.imaging.averaging`), fits ``budget`` bytes."""
    if not spec.averaged or npol != 1:
        return spec
    nchan = max(len(d.freq) for d in descs)
    need = range_bytes(descs[0], nrow, npol) + nrow * nchan * 8 * len(spec.boxes)
    return dataclasses.replace(spec, cache_h=need <= budget)


def n_pols(gains: Sequence[GainTable | None]) -> int:
    """1 (grid Stokes I) unless some facet gain differs between the two hands (then 2)."""
    return 2 if any(g is not None and not g.scalar for g in gains) else 1


class LocalEngine:
    """Passes in the driver process; prepared ranges cached while they fit ``budget`` bytes."""

    def __init__(
        self,
        descs: Sequence[MSDescription],
        spec: PassSpec,
        gains: Sequence[GainTable | None],
        row_block: int,
        budget: int,
    ):
        self.descs, self.spec, self.gains = tuple(descs), spec, tuple(gains)
        self.npol = n_pols(self.gains)
        self.row_block = row_block
        need = sum(range_bytes(d, d.nrow, self.npol) for d in self.descs)
        self.caching = 0 < need <= budget
        # streamed ranges are smaller: each pass holds a few temporaries of a range's size
        stream = max(budget // 4, range_bytes(self.descs[0], row_block, self.npol))
        self.ranges = plan_ranges(self.descs, budget if self.caching else stream, self.npol)
        if self.caching:
            self.spec = with_h_cache(spec, self.descs, max(r.nrow for r in self.ranges), self.npol, budget)
        self.factor: np.ndarray | None = None
        self._cache: dict[RowRange, tuple[PreparedRows, RowGains | None]] = {}

    def _job(self, r: RowRange) -> RangeJob:
        return RangeJob("", self.descs[r.ms_index], r, self.npol, self.row_block, self.spec)

    def _get(self, r: RowRange) -> tuple[PreparedRows, RowGains | None]:
        got = self._cache.get(r)
        if got is None:
            got = prepare(self._job(r), self.gains[r.ms_index], self.factor)
            if self.caching:
                self._cache[r] = got
        return got

    def density(self) -> tuple[np.ndarray, float]:
        dens, total = None, 0.0
        for r in self.ranges:
            d, t = density(self._get(r)[0], self.spec.shape, self.spec.cell)
            dens = d if dens is None else dens + d
            total += t
        return dens, total

    def set_factor(self, factor: np.ndarray) -> None:
        self.factor = factor
        for prep, _ in self._cache.values():
            weigh(prep, factor, self.spec.shape, self.spec.cell)

    def run_pass(self, components: Mapping[int, Components] | None, psf_shape: tuple[int, int] | None) -> PassPartial:
        total = None
        for r in self.ranges:
            prep, gains = self._get(r)
            part = grid_rows(prep, self.spec, gains, components, psf_shape)
            total = part if total is None else total.add(part)
        return total

    def close(self) -> None:
        self._cache.clear()


# ----------------------------------------------------------------------------- Dask

#: prepared ranges a worker keeps between passes: {job key: (PreparedRows, RowGains)}
_WORKER_CACHE: "OrderedDict[str, tuple[PreparedRows, RowGains | None]]" = OrderedDict()
_WORKER_LOCK = threading.Lock()
_MALLOC_DONE = False

#: glibc's steady state without MALLOC_TRIM_THRESHOLD_: freed blocks of up to 32 MiB kept for reuse
_MMAP_THRESHOLD = 32 << 20
_TRIM_THRESHOLD = 64 << 20


def _reuse_freed_memory() -> bool:
    """Undo what Dask's nanny does to a worker's allocator, for the imaging passes (once per process).

    A nanny starts its worker with ``MALLOC_TRIM_THRESHOLD_=65536``
    (``distributed.nanny.pre-spawn-environ``): glibc then hands every freed block
    over 128 KiB back to the system, and the next pass faults the same pages in
    again. The passes allocate and free sample-sized temporaries all the time;
    measured on issue 10's MS, a pass ran about 12% slower than in the driver. This
    sets the thresholds glibc settles at in a process started without the variable
    (the driver): blocks up to 32 MiB are reused, the heap is trimmed above 64 MiB
    free. Only in a process where the variable is set, on glibc; True when it was set here.
    """
    global _MALLOC_DONE
    if _MALLOC_DONE:
        return False
    _MALLOC_DONE = True
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
        return bool(libc.mallopt(m_mmap_threshold, _MMAP_THRESHOLD)) and bool(
            libc.mallopt(m_trim_threshold, _TRIM_THRESHOLD)
        )
    except (OSError, AttributeError):  # not glibc
        return False


def _worker_get(
    job: RangeJob, gains: GainTable | None, factor: np.ndarray | None, budget: int
) -> tuple[PreparedRows, RowGains | None]:
    _reuse_freed_memory()
    with _WORKER_LOCK:
        got = _WORKER_CACHE.get(job.key)
        if got is not None:
            _WORKER_CACHE.move_to_end(job.key)
    if got is None:
        got = prepare(job, gains, factor)
        with _WORKER_LOCK:
            _WORKER_CACHE[job.key] = got
            # drop other images' ranges first, then the oldest, to stay within the budget
            image = job.key.rsplit("-", 1)[0]
            for k in [k for k in _WORKER_CACHE if not k.startswith(image + "-")]:
                del _WORKER_CACHE[k]
            while len(_WORKER_CACHE) > 1 and sum(p.nbytes for p, _ in _WORKER_CACHE.values()) > budget:
                _WORKER_CACHE.popitem(last=False)
    elif factor is not None:
        weigh(got[0], factor, job.spec.shape, job.spec.cell)
    return got


def density_task(job: RangeJob, gains: GainTable | None, budget: int) -> tuple[np.ndarray, float, str]:
    """Dask task: this range's density grid (its rows stay in the worker's memory)."""
    prep, _ = _worker_get(job, gains, None, budget)
    dens, total = density(prep, job.spec.shape, job.spec.cell)
    return dens, total, worker_address()


def pass_task(
    job: RangeJob,
    gains: GainTable | None,
    factor: np.ndarray,
    budget: int,
    components: Mapping[int, Components] | None,
    psf_shape: tuple[int, int] | None,
) -> tuple[PassPartial, str]:
    """Dask task: one residual pass over this range, with the worker's threads."""
    prep, rg = _worker_get(job, gains, factor, budget)
    spec = dataclasses.replace(job.spec, nthreads=worker_threads())
    return grid_rows(prep, spec, rg, components, psf_shape), worker_address()


class DaskEngine:
    """Passes as Dask tasks, one per row range, each holding one ``subprocess_slots``.

    Parameters
    ----------
    client
        A connected ``distributed.Client``.
    n_ranges
        Row ranges per MS (default: one per worker offering the slot).
    budget
        Bytes of prepared rows a worker may keep between passes.
    no_workers_timeout
        Seconds without a worker offering ``subprocess_slots`` before the image fails.
    """

    def __init__(
        self,
        client: Any,
        descs: Sequence[MSDescription],
        spec: PassSpec,
        gains: Sequence[GainTable | None],
        row_block: int,
        budget: int,
        n_ranges: int | None = None,
        no_workers_timeout: float = 120.0,
    ):
        self.client, self.descs, self.spec = client, tuple(descs), spec
        self.no_workers_timeout = no_workers_timeout
        self.npol = n_pols(gains)
        self.budget = budget
        slots = [a for a, n in worker_slots(client).items() if n >= 1]
        parts = n_ranges or max(1, len(slots))
        self.ranges = plan_ranges(self.descs, max(budget, 1), self.npol, min_parts=parts)
        spec = self.spec = with_h_cache(spec, self.descs, max(r.nrow for r in self.ranges), self.npol, budget)
        token = uuid.uuid4().hex[:10]
        self.jobs = [
            RangeJob(f"ddpipe-image-{token}-{i}", self.descs[r.ms_index], r, self.npol, row_block, spec)
            for i, r in enumerate(self.ranges)
        ]
        # each MS's gain table once to every worker (a task's worker may change)
        per_ms = {i: client.scatter(g, broadcast=True) for i, g in enumerate(gains) if g is not None}
        self._gains = [per_ms.get(j.rows.ms_index) for j in self.jobs]
        self._factor = None
        self._where: dict[str, str] = {}
        self._n = 0

    def _submit(self, fn, job: RangeJob, *args: Any):
        self._n += 1
        where = self._where.get(job.key)
        # back to the worker that holds the range's rows; anywhere else if it is gone or busy
        placement = {"workers": [where], "allow_other_workers": True} if where else {}
        return self.client.submit(
            fn,
            job,
            *args,
            key=f"{fn.__name__}-{job.key}-{self._n}",
            pure=False,
            resources=dict(SLOT_RESOURCES),
            retries=2,
            **placement,
        )

    def _gather(self, futures: list) -> Iterator[Any]:
        """Each task's result, in job order (a fixed summation order), fetched one at a time and
        released at once: the driver holds one partial image set beside the sum, not one per row range.
        Measured on the 4 x 8-channel wide-band self-cal at 2048² (4 output channels, 4 facets): with
        every partial held, the driver passed 13.5 GB within one pass (and was OOM-killed at 22 GB on
        this 24 GiB machine); streamed, its peak was 2.4 GB."""
        watch = SlotWatch(self.client, self.no_workers_timeout)
        while True:  # never block on a result no worker is left to compute
            try:
                wait(futures, timeout=0.5)
                break
            except TimeoutError:
                pass
            if watch.expired():
                for f in futures:
                    f.release()
                raise PipelineError(f"imaging: {watch.reason()}")
        for job, fut in zip(self.jobs, futures):
            value = fut.result()
            self._where[job.key] = value[-1]
            fut.release()
            yield value
            del value

    def density(self) -> tuple[np.ndarray, float]:
        futs = [self._submit(density_task, j, g, self.budget) for j, g in zip(self.jobs, self._gains)]
        dens, total = None, 0.0
        for d, t, _ in self._gather(futs):
            dens = d if dens is None else dens + d
            total += t
        return dens, total

    def set_factor(self, factor: np.ndarray) -> None:
        self._factor = self.client.scatter(factor, broadcast=True)

    def run_pass(self, components: Mapping[int, Components] | None, psf_shape: tuple[int, int] | None) -> PassPartial:
        futs = [
            self._submit(pass_task, j, g, self._factor, self.budget, components, psf_shape)
            for j, g in zip(self.jobs, self._gains)
        ]
        total = None
        for part, _ in self._gather(futs):
            total = part if total is None else total.add(part)
        return total

    def close(self) -> None:
        for f in {id(f): f for f in [*self._gains, self._factor] if f is not None}.values():
            f.release()


def natural_factor(shape: tuple[int, int]) -> np.ndarray:
    """The density factor of natural weighting (ones; samples off the uv grid still drop out)."""
    grid = weighting.grid_shape(shape)
    return np.ones((grid[0] // 2) * grid[1])
