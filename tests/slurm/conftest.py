"""A real single-node SLURM for the tests in this folder.

The session fixture ``slurm`` runs ``slurm_up.sh`` once (installing Debian's
slurmctld/slurmd/slurm-client/munge as root when missing), and its teardown
stops the daemons by PID and checks that nothing the tests started is left:
no daemon, no ``slurmstepd``, no Dask scheduler or worker, no DP3. A process
counts as ours when its environment carries this session's ``SLURM_CONF``
(every job, step and their children inherit it), so tests other people run at
the same time are never mistaken for leftovers.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
UP = HERE / "slurm_up.sh"
DOWN = HERE / "slurm_down.sh"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
DAEMONS = ("munged", "slurmctld", "slurmd")


@dataclass(frozen=True)
class Slurm:
    """A running test SLURM: its state folder, config and the environment clients need."""

    state: Path
    conf: Path
    pids: dict[str, int]
    env: dict[str, str]

    def run(self, *argv: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run a SLURM client command (``sbatch``, ``squeue``...) against this SLURM."""
        return subprocess.run(list(argv), env=self.env, capture_output=True, text=True, check=check, timeout=timeout)

    def sbatch(self, *argv: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
        """Submit a job; returns its id."""
        out = subprocess.run(
            ["sbatch", "--parsable", *argv], env=env or self.env, cwd=cwd, capture_output=True, text=True, timeout=60
        )
        if out.returncode != 0:
            pytest.fail(f"sbatch {' '.join(argv)} failed: {out.stderr.strip()}")
        return out.stdout.strip().split(";")[0]

    def wait_gone(self, job_id: str, timeout: float) -> None:
        """Poll ``squeue -h -j ID`` (faster than ``sbatch --wait``) until the job left the queue."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.run("squeue", "-h", "-j", job_id, "-o", "%T", check=False)
            if out.returncode != 0 or not out.stdout.strip():
                return
            time.sleep(0.5)
        self.run("scancel", job_id, check=False)
        pytest.fail(f"job {job_id} still queued or running after {timeout:g} s: cancelled it\n{self.daemon_log_tail()}")

    def job_state(self, job_id: str) -> dict[str, str]:
        """``scontrol show job`` as key=value pairs (kept for MinJobAge after the end)."""
        out = self.run("scontrol", "-o", "show", "job", job_id)
        return dict(f.split("=", 1) for f in out.stdout.split() if "=" in f)

    def queue(self) -> list[str]:
        return [line for line in self.run("squeue", "-h", "-o", "%i %T %j").stdout.splitlines() if line.strip()]

    def daemon_log_tail(self, lines: int = 20) -> str:
        parts = []
        for name in ("slurmctld.log", "slurmd.log"):
            p = self.state / "log" / name
            if p.exists():
                parts.append(f"--- {p}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(parts)

    def our_processes(self, exclude: set[int] = frozenset()) -> list[str]:
        """Processes started through this SLURM (its SLURM_CONF in their environment), as 'pid name cmdline'."""
        found = []
        me = os.getpid()
        for p in psutil.process_iter(["pid", "name", "cmdline"]):
            if p.pid == me or p.pid in exclude:
                continue
            try:
                if p.status() == psutil.STATUS_ZOMBIE:
                    continue
                if p.environ().get("SLURM_CONF") == str(self.conf):
                    found.append(f"{p.pid} {p.info['name']} {' '.join(p.info['cmdline'] or [])[:200]}")
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        return found

    def assert_nothing_left(self, timeout: float = 30) -> None:
        """No job in the queue and no process of a job (step, Dask, DP3) alive; waits up to ``timeout``."""
        daemons = set(self.pids.values())
        deadline = time.monotonic() + timeout
        while True:
            queue = self.queue()
            left = self.our_processes(exclude=daemons)
            if not queue and not left:
                return
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        pytest.fail(f"left behind after the job: queue {queue}, processes:\n" + "\n".join(left))


def _skip_or_fail(msg: str) -> None:
    if IN_CI:
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(scope="session")
def slurm(tmp_path_factory: pytest.TempPathFactory):
    """Bring a private single-node SLURM up once per session; stop it by PID at the end."""
    if shutil.which("bash") is None:
        _skip_or_fail("bash not found")
    state = tmp_path_factory.mktemp("slurm-state")
    env = dict(os.environ)
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")
    env["SLURM_UP_PYTHON"] = sys.executable
    up = subprocess.run(["bash", str(UP), str(state)], env=env, capture_output=True, text=True, timeout=600)
    pid_file = state / "pids"
    pids = {}
    if pid_file.exists():
        pids = {n: int(p) for n, p in (line.split() for line in pid_file.read_text().splitlines() if line.strip())}
    if up.returncode == 3:
        _skip_or_fail(up.stderr.strip() or "SLURM packages missing")
    if up.returncode != 0:
        _stop(state, pids)
        pytest.fail(f"slurm_up.sh failed (exit {up.returncode}):\n{up.stderr}")
    conf = state / "slurm.conf"
    env["SLURM_CONF"] = str(conf)
    handle = Slurm(state=state, conf=conf, pids=pids, env=env)
    try:
        yield handle
    finally:
        handle.run("scancel", "--user", psutil.Process().username(), check=False)
        leftovers_before = handle.our_processes(exclude=set(pids.values()))
        _stop(state, pids)
        still = [f"{n} (pid {p})" for n, p in pids.items() if psutil.pid_exists(p) and _is(p, n)]
        leftovers = handle.our_processes()
        problems = []
        if still:
            problems.append(f"daemons still running after slurm_down.sh: {still}")
        if leftovers or leftovers_before:
            problems.append("processes of SLURM jobs left behind:\n" + "\n".join(leftovers_before + leftovers))
        if problems:
            pytest.fail("\n".join(problems))


def _is(pid: int, name: str) -> bool:
    try:
        p = psutil.Process(pid)
        return p.status() != psutil.STATUS_ZOMBIE and name in " ".join(p.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def _stop(state: Path, pids: dict[str, int]) -> None:
    """slurm_down.sh stops the daemons by PID; anything it missed gets SIGKILL here, also by PID."""
    if (state / "pids").exists():
        subprocess.run(
            ["bash", str(DOWN), str(state)],
            capture_output=True,
            timeout=120,
            env={**os.environ, "SLURM_CONF": str(state / "slurm.conf")},
        )
    for name, pid in pids.items():
        if _is(pid, name):
            try:
                psutil.Process(pid).kill()
            except psutil.NoSuchProcess:
                pass


@pytest.fixture(scope="session")
def sim_ms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small DD-corrupted MS from ``ddpipe simulate`` (12 stations, 4 channels, 40 times),
    with its sky model ``sim.skymodel`` beside it. Only read by the jobs."""
    from ddpipe.cli import main

    root = tmp_path_factory.mktemp("slurm-sim")
    ms = root / "sim.ms"
    rc = main(["simulate", str(ms), "--stations", "12", "--channels", "4", "--times", "40", "--seed", "7", "-q"])
    if rc != 0 or not ms.is_dir():
        pytest.fail(f"ddpipe simulate failed with exit code {rc}")
    return ms
