"""Dask clusters for ddpipe: local, an existing scheduler (address), or SLURM jobs.

Every worker must offer the custom resource ``subprocess_slots=1`` and every
DP3 task asks for one slot, so the scheduler never starts two DP3 processes on
one worker even though it cannot see their CPU and memory load.
"""

from __future__ import annotations

import inspect
import json
import logging
import shlex
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import dask
from dask.utils import parse_timedelta
from dask_jobqueue import SLURMCluster
from distributed import Client, LocalCluster

from ddpipe.config import ClusterConfig
from ddpipe.errors import UserError
from ddpipe.retirement import NAME as RETIREMENT
from ddpipe.retirement import GracefulRetirement
from ddpipe.security import check_scheduler_security, client_security, cluster_security, user_files, worker_tls_args

log = logging.getLogger(__name__)

SLOT = "subprocess_slots"
#: what a DP3 task asks the scheduler for
SLOT_RESOURCES = {SLOT: 1}


@dataclass
class ClusterHandle:
    """A connected client and, when ddpipe started it, the cluster it owns."""

    client: Any
    cluster: Any | None
    mode: str
    security: Any | None = None

    @property
    def dashboard(self) -> str | None:
        try:
            return self.client.dashboard_link
        except Exception:  # no bokeh, or a scheduler without a dashboard
            return None

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()


def _dask_settings(cfg: ClusterConfig) -> dict[str, Any]:
    """Scheduler settings that keep a run from hanging: a task with no worker able to run it
    fails after ``no_workers_timeout``; a chunk whose worker died is rescheduled."""
    return {
        "distributed.scheduler.no-workers-timeout": f"{cfg.no_workers_timeout}s",
        "distributed.scheduler.allowed-failures": max(cfg.retries, 1) + 2,
        "distributed.worker.daemon": False,  # workers must be allowed to start DP3
        "distributed.comm.timeouts.connect": f"{max(cfg.worker_wait, 5)}s",
    }


def worker_slots(client: Any) -> dict[str, float]:
    """``{worker address: subprocess_slots}`` for the workers now connected."""
    info = client.scheduler_info(n_workers=-1) if _accepts_n_workers(client) else client.scheduler_info()
    return {addr: float(w.get("resources", {}).get(SLOT, 0)) for addr, w in info.get("workers", {}).items()}


def _accepts_n_workers(client: Any) -> bool:
    try:
        return "n_workers" in inspect.signature(client.scheduler_info).parameters
    except (TypeError, ValueError):
        return False


class SlotWatch:
    """Notices when no worker offering ``subprocess_slots`` has been connected for ``timeout`` s."""

    def __init__(self, client: Any, timeout: float | None):
        self.client, self.timeout = client, timeout
        self.since: float | None = None
        self.next_check = 0.0

    def expired(self) -> bool:
        now = time.monotonic()
        if not self.timeout or now < self.next_check:
            return False
        self.next_check = now + 1.0
        try:
            present = any(n >= 1 for n in worker_slots(self.client).values())
        except Exception:  # the scheduler itself is gone: no worker either
            present = False
        self.since = None if present else (self.since or now)
        return self.since is not None and now - self.since >= self.timeout

    def reason(self) -> str:
        try:
            where = self.client.scheduler.address
        except Exception:
            where = "the scheduler"
        return (
            f"no worker offering '{SLOT}' for {self.timeout:g} s (cluster.no_workers_timeout); "
            f"add one ({dask_worker_command(where)}) and rerun"
        )


def wait_for_slot_workers(
    client: Any, address: str, timeout: float, expected: int = 1, security: Any | None = None
) -> dict[str, float]:
    """Wait up to ``timeout`` s for ``expected`` workers offering ``subprocess_slots``.

    Raises
    ------
    UserError
        With the exact ``dask worker`` command to run when none (or too few) turned up.
    """
    deadline = time.monotonic() + timeout
    while True:
        slots = worker_slots(client)
        good = {a: s for a, s in slots.items() if s >= 1}
        if len(good) >= expected:
            return good
        if time.monotonic() >= deadline:
            break
        time.sleep(0.25)
    fix = dask_worker_command(address, security=security)
    if slots:
        raise UserError(
            f"the scheduler at {address} has {len(slots)} worker(s) but none offers the '{SLOT}' resource "
            f"that every DP3 task needs; start workers with: {fix}"
        )
    raise UserError(f"no worker joined the scheduler at {address} within {timeout:g} s; start one with: {fix}")


def quiet_dask_logs() -> None:
    """distributed sets its own INFO levels at import; keep them at WARNING unless debugging."""
    if logging.getLogger().getEffectiveLevel() <= logging.DEBUG:
        return
    for name in list(logging.root.manager.loggerDict):
        top = name.split(".")[0]
        if top in ("distributed", "dask_jobqueue", "tornado"):
            logging.getLogger(name).setLevel(logging.WARNING)
        elif top == "bokeh":  # its "Host wildcard" warning is about a dashboard bound to 127.0.0.1 anyway
            logging.getLogger(name).setLevel(logging.ERROR)


def _memory_limit(value: str) -> str | int:
    return "auto" if value.strip().lower() == "auto" else value


def local_cluster(cfg: ClusterConfig, workdir: Path) -> ClusterHandle:
    """A ``LocalCluster`` of ``n_workers`` processes, each with one ``subprocess_slots``."""
    scratch = Path(workdir).resolve() / "dask-scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    security = cluster_security(cfg, workdir)
    with dask.config.set(_dask_settings(cfg)):
        cluster = LocalCluster(
            n_workers=cfg.n_workers,
            threads_per_worker=cfg.threads_per_worker,
            processes=True,
            resources=dict(SLOT_RESOURCES),
            host="127.0.0.1",
            dashboard_address=cfg.dashboard_address,
            local_directory=str(scratch),
            memory_limit=_memory_limit(cfg.memory_limit),
            security=security,
            # a failed chunk is reported once, by the driver's failure table; the workers' own
            # "Compute Failed ... Traceback" dumps are only shown when debugging
            silence_logs=logging.ERROR
            if logging.getLogger().getEffectiveLevel() <= logging.DEBUG
            else logging.CRITICAL,
        )
        client = Client(cluster, security=security)
        client.register_plugin(retirement_plugin(cfg), name=RETIREMENT)  # graceful scale-down
    handle = ClusterHandle(client, cluster, "local", security)
    log.info(
        "local Dask cluster: %d worker(s) x %d thread(s), %s=1 each, %s; dashboard %s",
        cfg.n_workers,
        cfg.threads_per_worker,
        SLOT,
        "TLS" if security is not None else "plain TCP (cluster.security.tls: false)",
        handle.dashboard or "(off: install bokeh)",
    )
    return handle


def address_cluster(cfg: ClusterConfig) -> ClusterHandle:
    """Connect to a running scheduler (``tcp://host:port`` or a scheduler-file path)."""
    target = cfg.address
    warning = check_address(cfg)
    if warning:
        log.warning("%s", warning)
    is_file = scheduler_file(target) is not None
    security = client_security(cfg)
    with dask.config.set(_dask_settings(cfg)):
        try:
            if is_file:
                client = Client(scheduler_file=target, timeout=f"{cfg.worker_wait}s", security=security)
            else:
                client = Client(target, timeout=f"{cfg.worker_wait}s", security=security)
        except UserError:
            raise
        except (OSError, TimeoutError) as exc:
            raise UserError(
                f"cannot reach the Dask scheduler at {target} within {cfg.worker_wait:g} s "
                f"({type(exc).__name__}); is 'dask scheduler' running there?"
            ) from None
    address = client.scheduler.address
    try:
        good = wait_for_slot_workers(client, address, cfg.worker_wait, security=security)
    except UserError:
        client.close()
        raise
    log.info("connected to %s: %d worker(s) with %s", address, len(good), SLOT)
    return ClusterHandle(client, None, "address", security)


def _looks_like_hostport(s: str) -> bool:
    host, sep, port = s.rpartition(":")
    return bool(sep and host and port.isdigit() and "/" not in s)


def scheduler_file(address: str) -> Path | None:
    """The scheduler file ``address`` names, or None when it is a scheduler address
    (``tcp://host:port``, ``tls://...``, or ``host:port``)."""
    return None if "://" in address or _looks_like_hostport(address) else Path(address)


def check_address(cfg: ClusterConfig) -> str | None:
    """Address mode needs an address, a scheduler file that exists, and certificate files for a
    ``tls://`` scheduler (what ``validate`` checks too). Returns the plain-TCP warning, if any."""
    if cfg.mode != "address":
        return None
    if not cfg.address:
        raise UserError(
            "cluster.mode is 'address' but cluster.address is empty; give the scheduler "
            "address (tcp://host:port) or a scheduler file (--scheduler)"
        )
    path = scheduler_file(cfg.address)
    if path is not None and not path.is_file():
        raise UserError(
            f"scheduler file {cfg.address} does not exist; start a scheduler with "
            f"'dask scheduler --scheduler-file {cfg.address}' or fix cluster.address / --scheduler"
        )
    address = cfg.address if path is None else _file_address(path)
    return check_scheduler_security(cfg, address) if address else None


def _file_address(path: Path) -> str | None:
    """The address a scheduler file names (None when it cannot be read yet: Dask reports that)."""
    try:
        return str(json.loads(path.read_text())["address"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def check_cluster(cfg: ClusterConfig) -> str | None:
    """What can be checked of the cluster settings before any work: the address (and its security),
    the user's certificate files, the retirement timing. Returns the plain-TCP warning, if any."""
    user_files(cfg.security)
    warning = check_address(cfg)
    check_lifetime(cfg)
    return warning


def slurm_worker_args(cfg: ClusterConfig) -> list[str]:
    """Extra ``dask worker`` arguments for SLURM worker jobs: the slot resource. (Retirement is
    ddpipe's plugin, not Dask's ``--lifetime``, which kills a running DP3: see ddpipe.retirement.)"""
    return ["--resources", f"{SLOT}=1"]


#: random extra lifetime per worker, so that not all retire at once: up to 10% of the lifetime,
#: at most 2 minutes
LIFETIME_STAGGER = 120.0


def lifetime_stagger(lifetime: float) -> float:
    """Seconds of random stagger added to a worker's ``lifetime``."""
    return min(LIFETIME_STAGGER, 0.1 * lifetime)


def _walltime_seconds(text: str) -> float:
    """SLURM walltime ``HH:MM[:SS]`` or ``D-HH:MM[:SS]`` → seconds."""
    days, _, hms = text.strip().rpartition("-")
    parts = [float(x) for x in hms.split(":")] + [0.0, 0.0]
    return (float(days) if days else 0.0) * 86400 + parts[0] * 3600 + parts[1] * 60 + parts[2]


def check_lifetime(cfg: ClusterConfig) -> float | None:
    """The timing rule of graceful retirement: a worker retires at ``lifetime`` (+ a stagger of up to
    10% of it, at most 2 min) and must have left ``retire_margin`` s before the walltime; the time
    between is what a chunk started just before retirement has to finish. Returns that window in
    seconds (None: no lifetime)."""
    s = cfg.slurm
    if not s.lifetime:
        return None
    try:
        life, wall = float(parse_timedelta(s.lifetime)), _walltime_seconds(s.walltime)
    except (ValueError, TypeError, KeyError):
        raise UserError(
            f"cluster.slurm.lifetime = {s.lifetime!r}: expected a Dask duration like 55m, 690m or 11h"
        ) from None
    window = wall - life - lifetime_stagger(life) - s.retire_margin
    if window <= 0:
        raise UserError(
            f"cluster.slurm.lifetime = {s.lifetime!r} plus its stagger (10%, at most 2 min) and retire_margin "
            f"({s.retire_margin:g} s) is not below cluster.slurm.walltime = {s.walltime!r}: a chunk started "
            "just before retirement could not finish; make lifetime shorter than walltime by at least the "
            "longest chunk's DP3 time"
        )
    return window


def retirement_plugin(cfg: ClusterConfig) -> GracefulRetirement:
    """The graceful-retirement plugin for workers ddpipe starts (lifetime and walltime from the config)."""
    s = cfg.slurm
    if cfg.mode != "slurm":  # no lifetime; request_retirement still drains a worker gracefully
        return GracefulRetirement(margin=s.retire_margin)
    window = check_lifetime(cfg)
    lifetime = float(parse_timedelta(s.lifetime)) if window is not None else None
    stagger = lifetime_stagger(lifetime) if lifetime is not None else 0.0
    return GracefulRetirement(lifetime, stagger, _walltime_seconds(s.walltime), s.retire_margin)


def slurm_cluster_kwargs(cfg: ClusterConfig, workdir: Path) -> dict[str, Any]:
    """Keyword arguments for ``dask_jobqueue.SLURMCluster`` (one Dask worker per job); with TLS,
    the run's certificate files (``<workdir>/security``, 0600) go to the worker jobs by path."""
    check_lifetime(cfg)
    security = cluster_security(cfg, workdir)
    s = cfg.slurm
    log_dir = Path(s.log_directory) if s.log_directory else Path(workdir).resolve() / "logs" / "slurm"
    return dict(
        queue=s.queue,
        account=s.account,
        walltime=s.walltime,
        cores=s.cores,
        processes=1,
        memory=s.memory,
        job_script_prologue=list(s.job_script_prologue),
        local_directory=s.local_directory or str(Path(workdir).resolve() / "dask-scratch"),
        log_directory=str(log_dir),
        worker_extra_args=slurm_worker_args(cfg),
        job_name="ddpipe-worker",
        scheduler_options={"dashboard_address": cfg.dashboard_address},
        interface=s.interface,
        security=security,
        protocol="tls://" if security is not None else "tcp://",
    )


def slurm_cluster(cfg: ClusterConfig, workdir: Path) -> ClusterHandle:
    """Workers as SLURM jobs through dask-jobqueue, each with ``--resources subprocess_slots=1``."""
    kwargs = slurm_cluster_kwargs(cfg, workdir)
    Path(kwargs["log_directory"]).mkdir(parents=True, exist_ok=True)
    with dask.config.set(_dask_settings(cfg)):
        cluster = SLURMCluster(**kwargs)
        log.debug("SLURM worker job script:\n%s", cluster.job_script())
        client = Client(cluster, security=kwargs["security"])
        client.register_plugin(retirement_plugin(cfg), name=RETIREMENT)  # also for workers that join later
        if cfg.slurm.lifetime:
            # retiring workers are only replaced by an adaptive cluster (scale() leaves none, measured)
            cluster.adapt(minimum_jobs=cfg.slurm.jobs, maximum_jobs=cfg.slurm.jobs)
        else:
            cluster.scale(jobs=cfg.slurm.jobs)
    handle = ClusterHandle(client, cluster, "slurm", kwargs["security"])
    log.info("SLURM cluster: %d worker job(s) requested; job logs in %s", cfg.slurm.jobs, kwargs["log_directory"])
    try:
        # jobs may queue: wait for the first worker for as long as a task may wait
        wait_for_slot_workers(client, client.scheduler.address, cfg.no_workers_timeout)
    except UserError as exc:
        handle.close()
        raise UserError(
            f"{exc} (SLURM jobs did not start in time: check 'squeue' and {kwargs['log_directory']})"
        ) from None
    return handle


@contextmanager
def open_cluster(cfg: ClusterConfig, workdir: Path) -> Iterator[ClusterHandle]:
    """Start or connect to the configured cluster; always close what was started."""
    quiet_dask_logs()
    if cfg.mode == "local":
        handle = local_cluster(cfg, workdir)
    elif cfg.mode == "address":
        handle = address_cluster(cfg)
    elif cfg.mode == "slurm":
        handle = slurm_cluster(cfg, workdir)
    else:  # validated by the config already
        raise UserError(f"cluster.mode = {cfg.mode!r}: expected local | address | slurm")
    try:
        yield handle
    finally:
        handle.close()


def dask_worker_command(address: str, nthreads: int = 1, security: Any | None = None) -> str:
    """The command a user runs to add a suitable worker by hand (with the certificate files, if any)."""
    argv = ["dask", "worker", address, "--nthreads", str(nthreads), "--resources", f"{SLOT}=1"]
    return shlex.join(argv + worker_tls_args(security))
