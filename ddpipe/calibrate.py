"""The calibrate stage: one DP3 ``ddecal`` per time chunk, all submitted to Dask up front.

Each chunk task asks for ``subprocess_slots=1`` so a worker never runs two DP3
processes at once. A chunk writes its H5parm under a temporary name, checks it
reads back, moves it into place and only then writes its completion record
(``chunk_NNN.done.json``: parset hash and the H5parm's SHA-256). A rerun reuses
every chunk whose record matches, so a failed or killed run loses no finished
chunk. The chunk H5parms are merged along time (and along frequency for
several sub-band MSs) into one H5parm.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from distributed import as_completed

from ddpipe.cluster import SLOT_RESOURCES, SlotWatch
from ddpipe.config import CalibrationConfig, ChunkingConfig, Config, DP3Config
from ddpipe.dp3.parsets import MsView, chain_steps, ddecal_chain_parset, dp3_argv, format_parset
from ddpipe.dp3.runner import DP3Error, dp3_environment, find_dp3, run_dp3, worker_address, worker_threads
from ddpipe.errors import PipelineError, UserError
from ddpipe.fileio import atomic_write
from ddpipe.ms.chunks import plan_chunks
from ddpipe.ms.inspect import inspect_ms, require_unflagged
from ddpipe.solutions.h5parm import merge_along_freq, merge_along_time, read_h5parm, write_h5parm
from ddpipe.solutions.merge import chain_soltabs, drop_times_before
from ddpipe.solutions.types import Solutions
from ddpipe.state import sha256_file

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChunkJob:
    """Everything a worker needs to solve one chunk (plain values: it is pickled to the worker)."""

    key: str
    stem: str
    ms: str
    ms_index: int
    chunk_index: int
    start_slot: int
    n_slots: int
    parset: tuple[tuple[str, str], ...]
    parset_hash: str
    directory: str
    executable: tuple[str, ...]
    timeout: float
    #: slots solved before ``start_slot`` (the lead-in, ``chunking.lead_in``) and solutions before
    #: ``keep_from`` (MJD seconds) dropped from the chunk's H5parm
    lead_slots: int = 0
    keep_from: float | None = None

    @property
    def parset_path(self) -> Path:
        return Path(self.directory) / f"{self.stem}.parset"

    @property
    def log_path(self) -> Path:
        return Path(self.directory) / f"{self.stem}.log"

    @property
    def h5_path(self) -> Path:
        return Path(self.directory) / f"{self.stem}.h5"

    @property
    def done_path(self) -> Path:
        return Path(self.directory) / f"{self.stem}.done.json"


@dataclass(frozen=True)
class ChunkOutcome:
    """What happened to one chunk: its H5parm, or why it failed."""

    stem: str
    h5_path: str
    reused: bool = False
    seconds: float = 0.0  # DP3 wall time
    started: float = 0.0  # epoch seconds
    finished: float = 0.0
    worker: str = ""
    numthreads: int = 0
    log_path: str = ""
    #: per solve of the chain: DDECal's iterations per solution interval of the chunk (lead-in left
    #: out), from DP3's log, and that solve's maxiter
    iterations: tuple[tuple[int, ...], ...] = ()
    maxiter: tuple[int, ...] = ()


@dataclass(frozen=True)
class CalibrationResult:
    solutions: Path
    chunks: tuple[ChunkOutcome, ...]
    wall_seconds: float
    directions: tuple[str, ...]
    timings: dict[str, float] = field(default_factory=dict)
    submitted_at: float = 0.0  # epoch seconds when every chunk task had been submitted

    @property
    def reused(self) -> int:
        return sum(c.reused for c in self.chunks)

    @property
    def iterations(self) -> list[dict[str, Any]]:
        """DDECal iterations over every solved interval, per solve (:func:`iteration_summary`)."""
        return iteration_summary(self.chunks)


@dataclass(frozen=True)
class ChunkFailure:
    """Why one chunk has no solutions: DP3's exit (code, signal or timeout) with the last lines of
    its log, or, when DP3 is not to blame, ``error`` saying what went wrong."""

    stem: str
    log_path: str
    returncode: int | None = None
    signal: str | None = None
    timed_out: bool = False
    tail: tuple[str, ...] = ()
    worker: str = ""
    error: str = ""

    @property
    def reason(self) -> str:
        """The short cause the failure table shows."""
        if self.timed_out:
            return "timed out"
        if self.signal:
            return f"killed by {self.signal}"
        if self.returncode is not None:
            return f"exit code {self.returncode}"
        return self.error or "failed"


class ChunkFailed(PipelineError):
    """A chunk's DP3 run failed. Picklable: ``args`` is (message, :class:`ChunkFailure`)."""

    def __init__(self, message: str, failure: ChunkFailure):
        super().__init__(message, failure)
        self.failure = failure

    def __str__(self) -> str:
        return str(self.args[0])


class CalibrationFailed(PipelineError):
    """Some chunks failed; the others' results are kept and reused on the next run."""


# ----------------------------------------------------------------------------- hashing


def parset_digest(parset: Sequence[tuple[str, str]]) -> str:
    return hashlib.sha256("\n".join(f"{k}={v}" for k, v in parset).encode()).hexdigest()


# ----------------------------------------------------------------------------- planning


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def plan_jobs(
    ms_paths: Sequence[str],
    skymodel: str,
    directions: Sequence[str],
    cal: CalibrationConfig,
    chunking: ChunkingConfig,
    dp3: DP3Config,
    out_dir: Path,
    data_column: str = "DATA",
) -> list[ChunkJob]:
    """Inspect the MSs, split them into chunks and build one ddecal parset per chunk.

    Chunk files go to ``out_dir/chunks``. Pure apart from reading the MS metadata.
    """
    for k, solve in enumerate(cal.chain):
        if len(solve.solutions_per_direction) > len(directions):
            key = f"calibration.solves[{k}]" if cal.solves else "calibration"
            raise UserError(
                f"{key}.solutions_per_direction lists {len(solve.solutions_per_direction)} directions "
                f"but this cycle solves {len(directions)} ({', '.join(directions)}); shorten it"
            )
    executable = tuple(find_dp3(dp3.executable))
    sky_sha = sha256_file(skymodel)
    chunk_dir = (Path(out_dir) / "chunks").resolve()
    jobs: list[ChunkJob] = []
    names = [_safe(Path(p).name.removesuffix(".ms").removesuffix(".MS")) for p in ms_paths]
    if len(set(names)) != len(names):
        names = [f"ms{i}" for i in range(len(ms_paths))]
    for m, ms in enumerate(ms_paths):
        info = inspect_ms(ms, data_column=data_column)
        require_unflagged(info)
        longest = cal.longest_solint
        chunks = plan_chunks(info, duration=chunking.duration, n_chunks=chunking.n_chunks, solint=longest)
        steps = chain_steps(len(cal.chain))
        for c in chunks:
            stem = f"chunk_{c.index:03d}" if len(ms_paths) == 1 else f"{names[m]}-chunk_{c.index:03d}"
            h5_tmp = [
                chunk_dir / (f"{stem}.partial.h5" if len(steps) == 1 else f"{stem}.{s}.partial.h5") for s in steps
            ]
            # chunk edges fall on the longest solve's intervals: a lead-in of whole ones keeps every
            # solve's aligned (lead_in intervals of the shortest solve, rounded up)
            shortest = min(s.solint for s in cal.chain)
            solved = c.with_lead_in(-(-chunking.lead_in * shortest // longest) * longest)
            lead = c.start_slot - solved.start_slot
            parset = ddecal_chain_parset(
                MsView(
                    str(Path(ms).resolve()),
                    data_column=data_column,
                    start_time=solved.dp3_starttime,
                    n_slots=solved.n_slots,
                ),
                skymodel=str(Path(skymodel).resolve()),
                directions=list(directions),
                h5parms=[str(h) for h in h5_tmp],
                cal=cal,
                extra=dp3.extra,
            )
            items = tuple((str(k), str(v)) for k, v in parset.items())
            # the sky model's contents count too, not just its path
            digest = parset_digest(items + (("skymodel.sha256", sky_sha),))
            jobs.append(
                ChunkJob(
                    key=f"ddecal-{stem}-{digest[:12]}",
                    stem=stem,
                    ms=str(Path(ms).resolve()),
                    ms_index=m,
                    chunk_index=c.index,
                    start_slot=c.start_slot,
                    n_slots=c.n_slots,
                    parset=items,
                    parset_hash=digest,
                    directory=str(chunk_dir),
                    executable=executable,
                    timeout=dp3.timeout,
                    lead_slots=lead,
                    keep_from=c.start_time - c.interval / 2 if lead else None,
                )
            )
    return jobs


_ITERATIONS = re.compile(r"^Iterations taken:\s*\[([\d,\s]*)\]", re.MULTILINE)


def dp3_iterations(log_text: str) -> tuple[tuple[int, ...], ...]:
    """DDECal's iterations per solution interval, one tuple per solve step in order, from the
    ``Iterations taken: [...]`` lines of DP3's log (empty when DP3 printed none). An interval that
    stopped at ``maxiter`` shows ``maxiter + 1``."""
    return tuple(
        tuple(int(x) for x in found.replace(" ", "").split(",") if x) for found in _ITERATIONS.findall(log_text)
    )


def iteration_summary(outcomes: Sequence[ChunkOutcome]) -> list[dict[str, Any]]:
    """Per solve of the chain, over every solved interval of ``outcomes``: mean and largest
    iterations, and the fraction that stopped at ``maxiter`` (not converged to ``tolerance``);
    empty when no chunk's log gave them."""
    n_solves = max((len(o.iterations) for o in outcomes), default=0)
    out = []
    for k in range(n_solves):
        its = [
            (i, o.maxiter[k] if k < len(o.maxiter) else 0)
            for o in outcomes
            if k < len(o.iterations)
            for i in o.iterations[k]
        ]
        if not its:
            out.append({})
            continue
        n = [i for i, _ in its]
        out.append(
            {
                "intervals": len(n),
                "mean": round(sum(n) / len(n), 1),
                "max": max(n),
                "at_maxiter": round(sum(i >= m > 0 for i, m in its) / len(its), 4),
            }
        )
    return out


# ----------------------------------------------------------------------------- one chunk


def chunk_is_done(job: ChunkJob) -> bool:
    """True when the chunk's completion record matches its parset and its H5parm is intact."""
    try:
        record = json.loads(job.done_path.read_text())
        return (
            record.get("parset_hash") == job.parset_hash
            and job.h5_path.is_file()
            and record.get("h5_sha256") == sha256_file(job.h5_path)
        )
    except (OSError, ValueError):
        return False


def run_chunk(job: ChunkJob) -> ChunkOutcome:
    """Solve one chunk with DP3 (runs on a Dask worker holding one ``subprocess_slots``).

    The H5parm is written as ``.partial.h5``, read back, moved into place, and the
    completion record is written last.
    """
    if chunk_is_done(job):
        return ChunkOutcome(job.stem, str(job.h5_path), reused=True, log_path=str(job.log_path))
    Path(job.directory).mkdir(parents=True, exist_ok=True)
    parset = dict(job.parset)
    atomic_write(job.parset_path, format_parset(parset))
    steps = chain_steps(len(parset["steps"].strip("[]").split(",")))
    partials = [Path(parset[f"{s}.h5parm"]) for s in steps]
    for stale in (*partials, job.done_path):
        stale.unlink(missing_ok=True)
    nthreads = worker_threads()
    started = time.time()
    worker = worker_address()
    try:
        run = run_dp3(
            dp3_argv(list(job.executable), parset, numthreads=nthreads),
            log_path=job.log_path,
            timeout=job.timeout,
            env=dp3_environment(),
        )
    except DP3Error as exc:
        failure = ChunkFailure(
            job.stem, str(exc.log_path), exc.returncode, exc.signal_name, exc.timed_out, tuple(exc.tail), worker
        )
        raise ChunkFailed(f"{job.stem}: {exc}", failure) from None
    _write_chunk_h5parm(job, parset, steps, partials, worker)
    iterations, maxiter = _chunk_iterations(job, parset, steps)
    outcome = ChunkOutcome(
        job.stem,
        str(job.h5_path),
        False,
        run.seconds,
        started,
        time.time(),
        worker,
        nthreads,
        log_path=str(job.log_path),
        iterations=iterations,
        maxiter=maxiter,
    )
    record = {
        "stem": job.stem,
        "ms": job.ms,
        "start_slot": job.start_slot,
        "n_slots": job.n_slots,
        "parset_hash": job.parset_hash,
        "h5_sha256": sha256_file(job.h5_path),
        "dp3_seconds": run.seconds,
        "started": started,
        "finished": outcome.finished,
        "worker": worker,
        "numthreads": nthreads,
        "lead_slots": job.lead_slots,
        "iterations": [list(i) for i in iterations],
        "maxiter": list(maxiter),
    }
    atomic_write(job.done_path, json.dumps(record, indent=1))
    return outcome


def _write_chunk_h5parm(
    job: ChunkJob, parset: dict[str, str], steps: Sequence[str], partials: Sequence[Path], worker: str
) -> None:
    """Check what DP3 wrote (one H5parm per solve) and put the chunk's solutions in place:
    the lead-in's intervals dropped, the solves' soltabs side by side."""
    asked = tuple(re.findall(r"\[([^\[\]]+)\]", parset.get(f"{steps[0]}.directions", "")))
    partial = partials[0]
    try:
        parts = []
        for partial in partials:
            sol = read_h5parm(partial)
            got = tuple(d.strip("[]") for d in sol.directions)
            if asked and got != asked:
                raise UserError(
                    f"{partial}: directions {', '.join(got)} but {steps[0]}.directions asked for {', '.join(asked)}"
                )
            if job.keep_from is not None:  # the lead-in's intervals go; the chunk's own stay
                sol = drop_times_before(sol, job.keep_from)
            parts.append(sol)
        sol = chain_soltabs(parts)
    except (UserError, OSError) as exc:
        # no returncode: the table shows this reason, not DP3's (misleading) exit code 0
        raise ChunkFailed(
            f"{job.stem}: DP3 exited 0 but its H5parm {partial} is unusable ({exc}); see {job.log_path}",
            ChunkFailure(
                job.stem, str(job.log_path), worker=worker, error=f"DP3 exited 0 with an unusable H5parm: {exc}"
            ),
        ) from None
    if job.keep_from is None and len(partials) == 1:
        os.replace(partials[0], job.h5_path)  # DP3's own file, as it wrote it
    else:
        job.h5_path.unlink(missing_ok=True)  # written afresh, not merged into
        write_h5parm(job.h5_path, sol)
        for p in partials:
            p.unlink()


def _chunk_iterations(
    job: ChunkJob, parset: dict[str, str], steps: Sequence[str]
) -> tuple[tuple[tuple[int, ...], ...], tuple[int, ...]]:
    """DDECal's iterations per interval of the chunk's own time (not the lead-in's), per solve,
    from DP3's log, and each solve's maxiter."""
    found = dp3_iterations(_read_text(job.log_path))
    iterations, maxiter = [], []
    for k, s in enumerate(steps):
        own = -(-job.n_slots // max(1, int(parset.get(f"{s}.solint", "1") or 1)))  # after the lead-in's
        iterations.append(tuple(found[k][-own:]) if k < len(found) else ())
        maxiter.append(int(parset.get(f"{s}.maxiter", "0") or 0))
    return tuple(iterations), tuple(maxiter)


def _read_text(path: Path) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


def chunk_outcome_on_disk(job: ChunkJob) -> ChunkOutcome | None:
    """The outcome of a chunk solved in this run, read from its completion record; None when not done."""
    if not chunk_is_done(job):
        return None
    try:
        record = json.loads(job.done_path.read_text())
    except (OSError, ValueError):
        return None
    return ChunkOutcome(
        job.stem,
        str(job.h5_path),
        False,
        float(record.get("dp3_seconds", 0.0)),
        float(record.get("started", 0.0)),
        float(record.get("finished", 0.0)),
        str(record.get("worker", "")),
        int(record.get("numthreads", 0)),
        log_path=str(job.log_path),
        **_record_iterations(record),
    )


def _reused_outcome(job: ChunkJob) -> ChunkOutcome | None:
    """A chunk solved in an earlier run (None when it was not): no DP3 time in this one, the iterations
    its record holds. (Not :func:`chunk_outcome_on_disk`: that is how the driver settles a chunk of
    this run, and the reliability tests hold the driver there.)"""
    if not chunk_is_done(job):
        return None
    try:
        record = json.loads(job.done_path.read_text())
    except (OSError, ValueError):
        record = {}
    return ChunkOutcome(
        job.stem, str(job.h5_path), reused=True, log_path=str(job.log_path), **_record_iterations(record)
    )


def _record_iterations(record: dict[str, Any]) -> dict[str, Any]:
    """``iterations`` and ``maxiter`` of a completion record, as :class:`ChunkOutcome` keeps them."""
    return {
        "iterations": tuple(tuple(int(i) for i in its) for its in record.get("iterations", ())),
        "maxiter": tuple(int(m) for m in record.get("maxiter", ())),
    }


# ----------------------------------------------------------------------------- the stage


class _Progress:
    """A progress bar on a terminal, plain log lines otherwise."""

    def __init__(self, total: int, reused: int):
        self.total, self.done, self.t0 = total, reused, time.monotonic()
        self.start_done = reused
        self.tty = sys.stderr.isatty()

    def update(self, outcome: ChunkOutcome | None, failed: str | None = None) -> None:
        self.done += 1
        elapsed = time.monotonic() - self.t0
        fresh = self.done - self.start_done
        eta = elapsed / fresh * (self.total - self.done) if fresh else 0.0
        what = f"{failed} FAILED" if failed else (f"{outcome.stem} in {outcome.seconds:.1f} s" if outcome else "")
        if self.tty:
            width = 30
            filled = int(width * self.done / max(self.total, 1))
            sys.stderr.write(
                f"\rcalibrate [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
                f"chunks, ETA {eta:4.0f} s  "
            )
            if self.done == self.total:
                sys.stderr.write("\n")
            sys.stderr.flush()
        else:
            log.info("chunk %d/%d done (%s), ETA %.0f s", self.done, self.total, what, eta)


def calibrate(
    cfg: Config,
    skymodel: str,
    directions: Sequence[str],
    out_dir: Path,
    client: Any,
    *,
    out_h5: Path | None = None,
    force: bool = False,
    on_chunk: Callable[[ChunkOutcome], None] | None = None,
) -> CalibrationResult:
    """Solve every chunk of every MS on the Dask cluster behind ``client`` and merge the H5parms.

    ``cfg`` gives the Measurement Sets and data column (``inputs``), the solves
    (``calibration``: a cycle's, in the pipeline), ``chunking``, ``dp3``, and the task
    retries and ``no_workers_timeout`` (``cluster``): when no worker offering
    ``subprocess_slots`` has been connected for that long, the unfinished chunks fail
    instead of waiting forever (a scheduler started elsewhere does not know it).
    ``force`` solves again the chunks an earlier run finished; ``on_chunk`` is called in
    the driver with each chunk's outcome as it finishes (the pipeline records it in
    ``state.json``). The merged solutions go to ``out_h5`` (default
    ``out_dir/solutions.h5``).

    Raises
    ------
    CalibrationFailed
        When any chunk failed (after retries), with a table of the failed chunks;
        the finished chunks stay on disk and are reused by the next run.
    """
    t0 = time.monotonic()
    ms_paths, cal = cfg.inputs.ms, cfg.calibration
    out_dir = Path(out_dir).resolve()
    jobs = plan_jobs(ms_paths, skymodel, directions, cal, cfg.chunking, cfg.dp3, out_dir, cfg.inputs.data_column)
    Path(jobs[0].directory).mkdir(parents=True, exist_ok=True)
    if force:
        for j in jobs:
            j.done_path.unlink(missing_ok=True)
    # each chunk's record and H5parm are checked (and hashed) once
    reused = {j.stem: o for j in jobs if (o := _reused_outcome(j)) is not None}
    todo = [j for j in jobs if j.stem not in reused]
    log.info(
        "calibrate: %d chunk(s) over %d MS(s), %d reused from an earlier run, %d to solve",
        len(jobs),
        len(ms_paths),
        len(reused),
        len(todo),
    )
    # every task up front; the scheduler paces them by the subprocess_slots resource
    futures = {
        client.submit(
            run_chunk, j, key=j.key, resources=dict(SLOT_RESOURCES), retries=cfg.cluster.retries, pure=False
        ): j
        for j in todo
    }
    submitted_at = time.time()  # every task is with the scheduler from here on
    collector = _Collector(len(jobs), reused, SlotWatch(client, cfg.cluster.no_workers_timeout), on_chunk)
    collector.wait(futures, todo)
    if collector.failures:
        raise CalibrationFailed(failure_table(collector.failures, len(jobs)))
    t_solve = time.monotonic() - t0

    out_h5 = Path(out_h5).resolve() if out_h5 else out_dir / "solutions.h5"
    merged = merge_chunks(jobs, len(ms_paths), out_h5)
    wall = time.monotonic() - t0
    ordered = tuple(collector.outcomes[j.stem] for j in jobs)
    log.info("calibrate: solutions in %s (%.1f s; DP3 total %.1f s)", out_h5, wall, sum(o.seconds for o in ordered))
    _log_iterations(ordered, cal)
    return CalibrationResult(
        out_h5, ordered, wall, tuple(merged.directions), {"solve": t_solve, "merge": wall - t_solve}, submitted_at
    )


class _Collector:
    """Settles the chunk tasks in the driver as they finish: an outcome or a failure each."""

    def __init__(self, total: int, reused: dict[str, ChunkOutcome], watch: SlotWatch, on_chunk: Any):
        self.outcomes: dict[str, ChunkOutcome] = dict(reused)
        self.failures: dict[str, ChunkFailure] = {}
        self.progress = _Progress(total, len(reused))
        self.watch, self.on_chunk = watch, on_chunk

    def settle(self, job: ChunkJob, fut: Any | None) -> None:
        # The chunk's outcome comes from its completion record on disk, never from the
        # worker's memory: a worker that died after its chunk finished took the task's
        # return value with it, and fetching that (Future.result) waits for a recomputation
        # that needs a worker, forever when none is left.
        outcome = chunk_outcome_on_disk(job)
        if outcome is not None:
            self.outcomes[job.stem] = outcome
            self.progress.update(outcome)
            if self.on_chunk is not None:
                self.on_chunk(outcome)
            return
        if fut is None:  # no slot worker left to run it
            self.failures[job.stem] = ChunkFailure(job.stem, str(job.log_path), error=self.watch.reason())
            return
        if fut.status == "error":
            exc = fut.exception()  # held by the scheduler, not by a worker
            failure = getattr(exc, "failure", None)
            if not isinstance(failure, ChunkFailure):
                failure = ChunkFailure(job.stem, str(job.log_path), error=f"{type(exc).__name__}: {exc}")
        else:
            failure = ChunkFailure(
                job.stem,
                str(job.log_path),
                error=f"finished on its worker but {job.done_path} is not there for the driver "
                "(is the workdir on a file system the workers share?)",
            )
        self.failures[job.stem] = failure
        self.progress.update(None, failed=job.stem)

    def wait(self, futures: dict[Any, ChunkJob], todo: Sequence[ChunkJob]) -> None:
        """Until every task settled, or no slot worker has been there for the watch's timeout."""
        pending = as_completed(list(futures))
        while not pending.is_empty():
            batch = pending.next_batch(block=False) if pending.has_ready() else []
            if not batch and self.watch.expired():
                # finished chunks whose results died with their worker are on disk: keep them
                for job in todo:
                    if job.stem not in self.outcomes and job.stem not in self.failures:
                        self.settle(job, None)
                break
            if not batch:
                time.sleep(0.1)
            for fut in batch:
                self.settle(futures[fut], fut)
                fut.release()
        for fut in futures:  # after an early end, let the scheduler forget the rest
            fut.release()


def merge_chunks(jobs: Sequence[ChunkJob], n_ms: int, out_h5: Path) -> Solutions:
    """The chunks' H5parms merged along time per MS, then along frequency across sub-band MSs,
    written to ``out_h5`` afresh (an earlier, possibly torn, file is never merged into)."""
    per_ms = []
    for m in range(n_ms):
        parts = [read_h5parm(j.h5_path) for j in sorted(jobs, key=lambda j: j.chunk_index) if j.ms_index == m]
        per_ms.append(merge_along_time(parts))
    merged = per_ms[0] if len(per_ms) == 1 else merge_along_freq(per_ms)
    out_h5.unlink(missing_ok=True)
    write_h5parm(out_h5, merged)
    return merged


def _log_iterations(ordered: Sequence[ChunkOutcome], cal: CalibrationConfig) -> None:
    """DDECal's iterations per solve; a warning when many intervals stopped at maxiter."""
    for k, (its, solve) in enumerate(zip(iteration_summary(ordered), cal.chain)):
        if not its:
            continue
        which = f"solve {k + 1} ({solve.mode})" if len(cal.chain) > 1 else "DDECal"
        log.info(
            "calibrate: %s took %.1f iterations per solution interval on average (at most %d)",
            which,
            its["mean"],
            its["max"],
        )
        if its["at_maxiter"] > 0.1:
            key = f"calibration.solves[{k}]" if len(cal.chain) > 1 else "calibration"
            log.warning(
                "calibrate: %s: %.0f%% of the solution intervals stopped at maxiter %d before reaching "
                "tolerance %g; raise %s.maxiter or %s.tolerance",
                which,
                100 * its["at_maxiter"],
                solve.maxiter,
                solve.tolerance,
                key,
                key,
            )


def failure_table(failures: dict[str, ChunkFailure], total: int) -> str:
    """A readable table of failed chunks: exit code or signal, log path, last log lines."""
    lines = [f"{len(failures)} of {total} chunk(s) failed (finished chunks are kept; rerun to retry only these):"]
    for stem, f in sorted(failures.items()):
        lines.append(f"  {stem:<24} {f.reason:<18} log: {f.log_path or '?'}")
        for t in f.tail[-5:]:
            lines.append(f"      | {t if len(t) <= 200 else t[:197] + '...'}")
    return "\n".join(lines)
