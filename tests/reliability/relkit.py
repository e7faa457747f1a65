"""Tools for the reliability tests (issue 7).

- a small simulated observation and a pipeline config that runs in ~15-25 s;
- ``ddpipe`` run as a real process in its own session (so it can be SIGKILLed as a
  whole), every process the test starts tagged through the environment so that
  survivors (orphans) can be found afterwards;
- a fake ``DP3`` (one Python process, ``exec``s the real DP3) that misbehaves for
  one chunk only: non-zero exit, SIGSEGV, a hang, or a delay on its first attempt;
- a pause hook that holds the driver inside a named function (so a kill lands in
  the stage under test, not by luck of timing);
- hashes of every input file, and the products compared with an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import psutil
import yaml

#: the simulated observation: 12 stations, 4 channels, 48 slots of 10 s, 3 directions
SIMULATION = ("--stations", "12", "--channels", "4", "--times", "48", "--directions", "3", "--seed", "7")

#: the pipeline config of every scenario: 4 chunks of 12 slots, 2 cycles, 256 px images
BASE_CONFIG: dict[str, Any] = {
    "cluster": {"n_workers": 2, "threads_per_worker": 1, "worker_wait": 10.0, "retries": 1},
    "chunking": {"duration": 0, "n_chunks": 4},
    "calibration": {"mode": "scalarphase", "solint": 2, "n_directions": 3},
    "imaging": {"size": [256, 256], "scale": 20.0, "niter": 200},
    "cycles": [{}, {}],
}

#: environment variable that marks every process a test starts (inherited by workers and DP3)
TAG = "DDPIPE_RELIABILITY_TAG"

#: products compared with the uninterrupted run
IMAGES = ("dirty", "model", "residual", "image")


# ----------------------------------------------------------------------------- inputs


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tree_hashes(*roots: Path) -> dict[str, tuple[str, int]]:
    """``{path: (sha256, mtime_ns)}`` of every file under (or at) each root, plus every folder's listing."""
    out: dict[str, tuple[str, int]] = {}
    for root in roots:
        root = Path(root)
        if root.is_file():
            out[str(root)] = (sha256(root), root.stat().st_mtime_ns)
            continue
        for folder, dirs, files in os.walk(root):
            out[folder + "/"] = (",".join(sorted(dirs + files)), Path(folder).stat().st_mtime_ns)
            for f in files:
                p = Path(folder) / f
                out[str(p)] = (sha256(p), p.stat().st_mtime_ns)
    return out


@dataclass(frozen=True)
class Inputs:
    """A test's own copy of the simulated MS and sky model (and the simulation's true gains)."""

    ms: Path
    skymodel: Path
    truth: Path | None = None

    def hashes(self) -> dict[str, tuple[str, int]]:
        return tree_hashes(self.ms, self.skymodel)


def write_config(path: Path, data: Inputs, workdir: Path, **sections: Any) -> Path:
    """The scenario config (``BASE_CONFIG`` with ``sections`` merged in) as YAML at ``path``."""
    cfg = json.loads(json.dumps(BASE_CONFIG))
    cfg["inputs"] = {"ms": [str(data.ms)], "skymodel": str(data.skymodel)}
    cfg["workdir"] = str(workdir)
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key].update(value)
        else:
            cfg[key] = value
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


# ----------------------------------------------------------------------------- processes


def tagged_env(tag: str, **extra: str) -> dict[str, str]:
    """``os.environ`` plus the process tag and ``extra``; no CI-unfriendly leftovers."""
    env = dict(os.environ)
    env[TAG] = tag
    env.pop("DDPIPE_DP3", None)
    env.update(extra)
    return env


def ddpipe_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "ddpipe", *args]


#: runs the CLI like ``python -m ddpipe`` after installing the pause hook from $DDPIPE_RELIABILITY_PAUSE
PAUSE_BOOT = r"""
import importlib, os, sys, time
module, name, match, marker = os.environ["DDPIPE_RELIABILITY_PAUSE"].split("|")
mod = importlib.import_module(module)
original = getattr(mod, name)
hit = []
def paused(*args, **kwargs):
    if not hit and match in repr((args, kwargs)):
        hit.append(1)
        with open(marker + ".tmp", "w") as fh:
            fh.write(str(os.getpid()))
        os.replace(marker + ".tmp", marker)
        while os.path.exists(marker):  # the test deletes the marker to let the driver go on
            time.sleep(0.05)
    return original(*args, **kwargs)
setattr(mod, name, paused)
from ddpipe.cli import main
sys.exit(main(sys.argv[1:]))
"""


def pause_env(env: dict[str, str], target: str, match: str, marker: Path) -> dict[str, str]:
    """Make a driver started with ``start_driver(..., paused=True)`` stop inside ``target``
    (``module:function``) on the first call whose arguments' repr contains ``match``; it writes
    ``marker`` first and goes on when the test deletes ``marker``."""
    module, name = target.split(":")
    return dict(env, DDPIPE_RELIABILITY_PAUSE=f"{module}|{name}|{match}|{marker}")


def start(argv: Sequence[str], env: Mapping[str, str], log: Path, cwd: Path | None = None) -> subprocess.Popen:
    """Start a process in its own session (its own process group), output to ``log``."""
    fh = open(log, "wb")
    try:
        return subprocess.Popen(
            list(argv),
            env=dict(env),
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            start_new_session=True,
        )
    finally:
        fh.close()


def start_driver(args: Sequence[str], env: Mapping[str, str], log: Path, paused: bool = False) -> subprocess.Popen:
    argv = [sys.executable, "-c", PAUSE_BOOT, *args] if paused else ddpipe_argv(*args)
    return start(argv, env, log)


def run_ddpipe(args: Sequence[str], env: Mapping[str, str], timeout: float = 240) -> subprocess.CompletedProcess:
    """``python -m ddpipe ARGS`` to completion; stdout and stderr kept apart."""
    return subprocess.run(
        ddpipe_argv(*args), env=dict(env), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the process group ``proc`` leads, and reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


def wait_for(
    predicate: Callable[[], Any],
    timeout: float,
    what: str,
    proc: subprocess.Popen | None = None,
    log: Path | None = None,
) -> Any:
    """Poll ``predicate`` until truthy; fail (with the log's tail) on timeout or when ``proc`` exits."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process exited with {proc.returncode} before {what}:\n{tail(log)}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}:\n{tail(log)}")
        time.sleep(0.05)


def tail(log: Path | None, n: int = 30) -> str:
    if log is None or not Path(log).exists():
        return ""
    return "\n".join(Path(log).read_text(errors="replace").splitlines()[-n:])


def tagged_processes(tag: str) -> list[psutil.Process]:
    """Live (non-zombie) processes whose environment carries ``TAG=tag``."""
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.pid == os.getpid() or proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if proc.environ().get(TAG) == tag:
                found.append(proc)
        except (psutil.Error, OSError):
            pass
    return found


def describe(procs: Sequence[psutil.Process]) -> str:
    out = []
    for p in procs:
        try:
            out.append(f"{p.pid} (ppid {p.ppid()}): {' '.join(p.cmdline())[:160]}")
        except psutil.Error:
            out.append(str(p.pid))
    return "\n".join(out)


def assert_no_survivors(tag: str, timeout: float = 20.0) -> None:
    """Every process tagged ``tag`` (driver, Dask workers, DP3) is gone within ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        alive = tagged_processes(tag)
        if not alive:
            return
        if time.monotonic() > deadline:
            text = describe(alive)
            for p in alive:  # clean up so that later tests are not disturbed, then fail
                try:
                    p.kill()
                except psutil.Error:
                    pass
            raise AssertionError(f"processes outlived the run they belong to:\n{text}")
        time.sleep(0.2)


def reap(tag: str) -> None:
    """Kill whatever is left with ``tag`` (teardown after a failed assertion)."""
    for p in tagged_processes(tag):
        try:
            p.kill()
        except psutil.Error:
            pass


# ----------------------------------------------------------------------------- Dask by hand


def start_scheduler(folder: Path, env: Mapping[str, str]) -> tuple[subprocess.Popen, str]:
    """``dask scheduler`` on 127.0.0.1 (dashboard too); returns it and its address."""
    sched_file = folder / "scheduler.json"
    proc = start(
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
        env,
        folder / "scheduler.log",
    )
    wait_for(
        lambda: sched_file.exists() and sched_file.stat().st_size, 60, "the scheduler", proc, folder / "scheduler.log"
    )
    return proc, json.loads(sched_file.read_text())["address"]


def start_worker(address: str, name: str, folder: Path, env: Mapping[str, str], slots: bool = True) -> subprocess.Popen:
    """``dask worker`` (with its nanny) in its own process group; log in ``folder/NAME.log``."""
    argv = [
        sys.executable,
        "-m",
        "distributed.cli.dask_worker",
        address,
        "--nthreads",
        "1",
        "--host",
        "127.0.0.1",
        "--dashboard-address",
        "127.0.0.1:0",
        "--name",
        name,
        "--local-directory",
        str(folder / f"scratch-{name}"),
    ]
    if slots:
        argv += ["--resources", "subprocess_slots=1"]
    return start(argv, env, folder / f"{name}.log")


def stop(procs: Sequence[subprocess.Popen]) -> None:
    """SIGTERM each process group (last started first); SIGKILL what does not end in 20 s."""
    for p in reversed(procs):
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            kill_group(p)


# ----------------------------------------------------------------------------- fake DP3

FAKE_DP3 = r'''#!{python}
"""Test double for DP3: misbehaves only for the chunk whose ddecal.h5parm contains $FAKE_DP3_MATCH;
any other run becomes the real DP3 (exec, same process)."""
import os, signal, sys, time
match = os.environ.get("FAKE_DP3_MATCH", "")
action = os.environ.get("FAKE_DP3_ACTION", "")
hit = bool(match and action) and any(a.startswith("ddecal.h5parm=") and match in a for a in sys.argv[1:])
once = os.environ.get("FAKE_DP3_ONCE")  # a marker file: misbehave only while it does not exist
if hit and once:
    try:
        os.close(os.open(once, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        hit = False
if hit:
    pids = os.environ.get("FAKE_DP3_PIDS")
    if pids:
        with open(pids, "a") as fh:
            fh.write(f"{{os.getpid()}}\n")
    print(f"fake DP3: {{action}} for {{match}}", flush=True)
    if action == "exit":
        print("fake DP3: injected failure (exit code 3)", flush=True)
        sys.exit(3)
    if action == "segv":
        os.kill(os.getpid(), signal.SIGSEGV)
    if action == "hang":
        while True:
            time.sleep(60)
    if action == "slow":
        time.sleep(float(os.environ.get("FAKE_DP3_DELAY", "60")))
    if action.startswith("h5parm-"):  # solve with the real DP3, then break the H5parm it wrote; exit 0
        import subprocess
        import h5py
        import numpy as np
        code = subprocess.call([os.environ["REAL_DP3"]] + sys.argv[1:])
        if code:
            sys.exit(code)
        out = next(a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("ddecal.h5parm="))
        with h5py.File(out, "r+") as f:
            if action == "h5parm-wrong-axes":
                for name in ("val", "weight"):
                    f["sol000/phase000"][name].attrs["AXES"] = np.bytes_(b"time,freq,dir,ant")
            elif action == "h5parm-no-soltab":
                del f["sol000/phase000"]
            elif action == "h5parm-other-directions":
                axis = f["sol000/phase000/dir"]
                axis[...] = np.array([n.replace(b"[P", b"[Q") for n in axis[...]], dtype=axis.dtype)
                src = f["sol000/source"][...]
                src["name"] = [n.replace(b"[P", b"[Q") for n in src["name"]]
                f["sol000/source"][...] = src
        sys.exit(0)
real = os.environ["REAL_DP3"]
os.execv(real, [real] + sys.argv[1:])
'''


def write_fake_dp3(folder: Path) -> Path:
    """The fake DP3 script in ``folder`` (it needs ``$REAL_DP3``)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "DP3"
    path.write_text(FAKE_DP3.format(python=sys.executable))
    path.chmod(0o755)
    return path


def real_dp3() -> str:
    from ddpipe.dp3.runner import find_dp3

    saved = os.environ.pop("DDPIPE_DP3", None)
    try:
        return find_dp3(None)[0]
    finally:
        if saved is not None:
            os.environ["DDPIPE_DP3"] = saved


# ----------------------------------------------------------------------------- products


def solutions(h5: Path) -> dict[str, np.ndarray]:
    """``{soltab: values}`` of an H5parm (plus the time axis)."""
    import h5py

    out = {}
    with h5py.File(h5, "r") as f:
        for name, grp in f["sol000"].items():
            if isinstance(grp, h5py.Group) and "val" in grp:
                out[name] = grp["val"][...]
                out[name + "/time"] = grp["time"][...]
    return out


def fits_data(path: Path) -> np.ndarray:
    from astropy.io import fits

    with fits.open(path) as hdul:
        return np.asarray(hdul[0].data, dtype=np.float64)


def skymodel_table(path: Path) -> tuple[list[str], np.ndarray]:
    """Names and (ra, dec, flux) of the sources of a sky model file."""
    from ddpipe.sky.skymodel import read_skymodel

    model = read_skymodel(path)
    names = [f"{s.patch}/{s.name}" for s in model.sources]
    return names, np.array([[s.ra, s.dec, s.i] for s in model.sources])


def products(workdir: Path, cycles: int = 2) -> dict[str, Any]:
    """What a run leaves for the scientist: solutions, images and sky models of every cycle."""
    out: dict[str, Any] = {}
    for c in range(cycles + 1):
        d = Path(workdir) / f"cycle_{c:02d}"
        for img in IMAGES:
            out[f"cycle_{c:02d}/image-{img}"] = fits_data(d / f"image-{img}.fits")
        if c:
            for k, v in solutions(d / "solutions.h5").items():
                out[f"cycle_{c:02d}/solutions/{k}"] = v
            out[f"cycle_{c:02d}/skymodel"] = skymodel_table(d / "skymodel.txt")
    return out


def assert_products_equal(got: Mapping[str, Any], want: Mapping[str, Any], exact: Sequence[str] = ()) -> None:
    """Products equal to the uninterrupted run's.

    Keys starting with an entry of ``exact`` must be bit-identical (DP3 solutions of
    reused or re-solved chunks). The rest to tight tolerances: the imaging core sums
    in threads, and how the rows are split into ranges (one per configured worker in
    local and SLURM modes, one per connected worker with an external scheduler, one
    in the driver) changes ducc0's rounding, so images of runs with different worker
    counts agree to the gridder's accuracy (1e-4 of the peak; measured up to 5e-5),
    which reaches the next cycle's sky model and solutions at that level.
    """
    assert sorted(got) == sorted(want)
    for key in want:
        a, b = got[key], want[key]
        if key.endswith("/skymodel"):
            assert a[0] == b[0], f"{key}: different sources"
            np.testing.assert_allclose(a[1][:, :2], b[1][:, :2], rtol=0, atol=1e-8, err_msg=key)  # radians
            np.testing.assert_allclose(a[1][:, 2], b[1][:, 2], rtol=1e-4, atol=1e-5, err_msg=key)  # Jy
        elif any(key.startswith(e) for e in exact):
            np.testing.assert_array_equal(a, b, err_msg=key)
        elif "/solutions/" in key and not key.endswith("/time"):
            np.testing.assert_allclose(np.angle(np.exp(1j * (a - b))), 0, atol=1e-5, err_msg=key)  # radians
        else:
            scale = max(float(np.max(np.abs(b))), 1e-30)
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-4 * scale, err_msg=key)


def mtimes(paths: Sequence[Path]) -> dict[str, int]:
    return {str(p): Path(p).stat().st_mtime_ns for p in paths}


def chunk_files(workdir: Path, cycle: int = 1) -> list[Path]:
    return sorted((Path(workdir) / f"cycle_{cycle:02d}" / "chunks").glob("chunk_*.h5"))


def state(workdir: Path) -> dict[str, Any]:
    try:
        return json.loads((Path(workdir) / "state.json").read_text())
    except (OSError, ValueError):
        return {"stages": {}, "chunks": {}}
