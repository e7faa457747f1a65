"""Run DP3: find it, give it the environment it needs, run one argv with a timeout.

One subprocess helper in the shape of dask-jobqueue's ``Job._call``: an argv list
(no shell), ``shlex.join`` in the log, stdout+stderr to a per-run log file, its own
process group killed as a whole on timeout, and on failure a :class:`DP3Error`
that carries the command, exit code or signal, log path and the log's tail.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import casacore
import psutil
from distributed import get_worker

from ddpipe.errors import PipelineError, UserError
from ddpipe.fileio import atomic_write

log = logging.getLogger(__name__)

#: Lines in DP3's output that mean a parset key was ignored (misspelled). With
#: ``checkparset=1`` DP3 fails on them; without it it only warns and exits 0.
UNUSED_KEY_MARKERS = ("parset keywords were not used", "unused parset keywords")

#: Lines of the log carried by a :class:`DP3Error`.
TAIL_LINES = 20

#: Seconds between SIGTERM and SIGKILL of a timed-out DP3's process group.
KILL_GRACE = 5.0

INSTALL_HINT = (
    "install DP3 (pip install dp3, which provides DP3.py) or point ddpipe at it with "
    "the config key dp3.executable or the environment variable DDPIPE_DP3"
)


# --------------------------------------------------------------------------- finding DP3


def find_dp3(configured: str | None = None) -> list[str]:
    """The argv prefix that starts DP3.

    Order: ``configured`` (the config's ``dp3.executable``), then ``$DDPIPE_DP3``,
    then ``DP3`` on ``PATH``, then the dp3 wheel's ``DP3.py`` (next to
    ``sys.executable``, then on ``PATH``).

    Raises
    ------
    UserError
        When the configured / ``$DDPIPE_DP3`` path is not an executable file, or
        when no DP3 is found at all.
    """
    for source, value in (("dp3.executable", configured), ("DDPIPE_DP3", os.environ.get("DDPIPE_DP3"))):
        if value:
            path = Path(value).expanduser()
            if not path.is_file() or not os.access(path, os.X_OK):
                state = "does not exist" if not path.exists() else "is not an executable file"
                raise UserError(f"{source} = {value}: {state}; {INSTALL_HINT}")
            return [str(path.resolve())]
    found = shutil.which("DP3")
    if found:
        return [found]
    beside = Path(sys.executable).parent / "DP3.py"
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    found = shutil.which("DP3.py")
    if found:
        return [found]
    raise UserError(f"DP3 not found (no DP3 or DP3.py on PATH nor beside {sys.executable}); {INSTALL_HINT}")


# --------------------------------------------------------------------------- environment


def casacore_data_dir() -> Path:
    """python-casacore's bundled measures data (``<site-packages>/casacore/data``)."""
    return Path(casacore.__file__).resolve().parent / "data"


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/ddpipe`` (default ``~/.cache/ddpipe``)."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "ddpipe"


def write_casarc(directory: str | os.PathLike[str] | None = None) -> Path:
    """Write (once, atomically) a casarc pointing casacore at python-casacore's measures.

    Without it, the wheel's DP3 looks only in ``/usr/share/casacore/data`` and fails
    with "Cannot read table of Observatories". The file is named after a hash of its
    content (``casarc-<hash>``), so nodes that share a home folder but install
    python-casacore in different places never overwrite each other's file; an
    existing file is left alone.

    Parameters
    ----------
    directory
        Folder of the file; default :func:`default_cache_dir`.
    """
    folder = Path(directory) if directory is not None else default_cache_dir()
    text = f"measures.directory: {casacore_data_dir()}\n"
    path = folder / f"casarc-{hashlib.sha256(text.encode()).hexdigest()[:12]}"
    try:
        if path.read_text() == text:
            return path
    except OSError:
        pass
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(path, text)
    return path


def dp3_environment(
    base: Mapping[str, str] | None = None, cache_dir: str | os.PathLike[str] | None = None
) -> dict[str, str]:
    """Environment for DP3: ``base`` (default ``os.environ``) plus what DP3 needs.

    Sets ``OPENBLAS_NUM_THREADS=1`` (DP3 refuses to start without it) and, unless
    ``base`` already has ``CASARCFILES``, ``CASARCFILES`` pointing at a casarc
    written by :func:`write_casarc` into ``cache_dir``.
    """
    env = dict(os.environ if base is None else base)
    env["OPENBLAS_NUM_THREADS"] = "1"
    if not env.get("CASARCFILES"):
        env["CASARCFILES"] = str(write_casarc(cache_dir))
    return env


def worker_threads() -> int:
    """Thread count of the current Dask worker (``get_worker().state.nthreads``); 1 outside one."""
    try:
        return max(1, int(get_worker().state.nthreads))
    except (ImportError, ValueError, AttributeError):
        return 1


def worker_address() -> str:
    """Address of the current Dask worker; ``"local"`` outside one."""
    try:
        return get_worker().address
    except (ImportError, ValueError):
        return "local"


# --------------------------------------------------------------------------- running


@dataclass(frozen=True)
class DP3Run:
    """A finished, successful DP3 run."""

    argv: tuple[str, ...]
    seconds: float
    log_path: Path
    returncode: int


class DP3Error(PipelineError):
    """A DP3 run failed: non-zero exit, a signal, a timeout, or ignored parset keys.

    The first line of the message is a one-line summary; the following lines give
    the command, the log path and the last lines of the log.
    """

    def __init__(
        self,
        *,
        argv: Sequence[str],
        returncode: int | None,
        log_path: Path,
        tail: Sequence[str],
        timed_out: bool = False,
        timeout: float | None = None,
        reason: str | None = None,
    ) -> None:
        self.argv = tuple(argv)
        self.returncode = returncode
        self.signal_name = _signal_name(returncode)
        self.log_path = Path(log_path)
        self.tail = tuple(tail)
        self.timed_out = timed_out
        self.timeout = timeout
        self.reason = reason
        super().__init__(self._message())

    @property
    def summary(self) -> str:
        """The one-line summary (first line of the message)."""
        if self.timed_out:
            what = f"timed out after {self.timeout:g} s and was killed"
        elif self.signal_name:
            what = f"was killed by {self.signal_name}"
        elif self.reason:
            what = f"{self.reason} (exit code {self.returncode})"
        else:
            what = f"exited with code {self.returncode}"
        last = next((ln.strip() for ln in reversed(self.tail) if ln.strip()), "")
        hint = f": {last}" if last and not (self.timed_out or self.reason) else ""
        return f"DP3 {what}{hint} (log: {self.log_path})"

    def _message(self) -> str:
        lines = [self.summary, f"  command: {shlex.join(self.argv)}", f"  log: {self.log_path}"]
        if self.tail:
            lines.append(f"  last {len(self.tail)} log lines:")
            lines.extend(f"    | {ln}" for ln in self.tail)
        return "\n".join(lines)

    def __reduce__(self):  # picklable across Dask workers (keyword-only __init__)
        return (
            _rebuild_dp3error,
            (self.argv, self.returncode, self.log_path, self.tail, self.timed_out, self.timeout, self.reason),
        )


def _rebuild_dp3error(argv, returncode, log_path, tail, timed_out, timeout, reason) -> DP3Error:
    return DP3Error(
        argv=argv,
        returncode=returncode,
        log_path=log_path,
        tail=tail,
        timed_out=timed_out,
        timeout=timeout,
        reason=reason,
    )


def _signal_name(returncode: int | None) -> str | None:
    if returncode is None or returncode >= 0:
        return None
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def _tail(path: Path, n: int = TAIL_LINES) -> list[str]:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read()
    except OSError:
        return []
    return data.decode("utf-8", "replace").splitlines()[-n:]


def unused_keys(text: str) -> list[str] | None:
    """Parset keys DP3 reported as unused in its output ``text``; None when it reported none.

    DP3 prints "the following parset keywords were not used" followed by one
    ``- key`` line per key (and, with ``checkparset=1``, "Unused parset keywords found").
    """
    lines = text.splitlines()
    found: list[str] | None = None
    for i, line in enumerate(lines):
        if any(marker in line.lower() for marker in UNUSED_KEY_MARKERS):
            found = found if found is not None else []
            for nxt in lines[i + 1 : i + 50]:
                item = nxt.strip()
                if item.startswith("- "):
                    if item[2:].strip() not in found:
                        found.append(item[2:].strip())
                elif item and not item.lower().startswith("maybe"):
                    break
    return found


def _read_log(path: Path) -> str:
    try:
        with open(path, "rb") as fh:
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _group_alive(pgid: int) -> list[int]:
    """Pids of live (non-zombie) processes in process group ``pgid``."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return []
    except PermissionError:
        pass
    alive = []
    for proc in psutil.process_iter(["status"]):
        try:
            if proc.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(proc.pid) == pgid:
                alive.append(proc.pid)
        except (ProcessLookupError, psutil.Error):
            pass
    return alive


def _kill_group(pgid: int, sig: int, wait: float) -> bool:
    """Send ``sig`` to process group ``pgid``; wait up to ``wait`` s for it to be gone. True if gone."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return True
    except PermissionError:  # the group id was reused by someone else's process: not ours
        return True
    deadline = time.monotonic() + wait
    while _group_alive(pgid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def _terminate(proc: subprocess.Popen, grace: float) -> None:
    """SIGTERM the process group of ``proc``; SIGKILL whatever is left after ``grace`` s."""
    pgid = proc.pid  # start_new_session: DP3 leads its own group
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if proc.poll() is not None and not _group_alive(pgid):
            break
        time.sleep(0.02)
    # A child may have ignored SIGTERM (or the leader did): always finish with SIGKILL.
    _kill_group(pgid, signal.SIGKILL, wait=2.0)
    proc.wait()


@functools.lru_cache(maxsize=1)
def _pdeathsig_prefix() -> tuple[str, ...]:
    """``setpriv --pdeathsig KILL --`` where it works (Linux, util-linux >= 2.33), else nothing.

    DP3 runs in its own session so that a timeout can kill its whole process group;
    that also means nothing stops it when its parent (a Dask worker, or the driver of
    a local cluster) is SIGKILLed: it would run on and write its ``.partial.h5`` next
    to the rescheduled attempt. With the parent-death signal the kernel kills it too.
    """
    setpriv = shutil.which("setpriv") if sys.platform.startswith("linux") else None
    if setpriv is None:
        return ()
    prefix = (setpriv, "--pdeathsig", "KILL", "--")
    try:
        ok = subprocess.run([*prefix, "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        ok = False
    return prefix if ok else ()


def run_dp3(
    argv: Sequence[str],
    *,
    log_path: str | os.PathLike[str],
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> DP3Run:
    """Run one DP3 command; its output goes to ``log_path``.

    The log's first line is the command (``shlex.join``). DP3 runs without a shell
    in a new session (its own process group); on timeout the whole group gets
    SIGTERM, then SIGKILL after :data:`KILL_GRACE` seconds, so nothing is left behind;
    it is started through ``setpriv --pdeathsig KILL`` where that works, so that it
    also dies with its parent (:func:`_pdeathsig_prefix`).

    Parameters
    ----------
    argv
        Full command, e.g. from :func:`ddpipe.dp3.parsets.dp3_argv`.
    log_path
        Log file (its folder is created if missing); overwritten.
    timeout
        Seconds before the run is killed.
    env
        Environment; default :func:`dp3_environment` ``()``.
    cwd
        Working directory of DP3.

    Returns
    -------
    DP3Run
        On success.

    Raises
    ------
    DP3Error
        Non-zero exit, death by a signal, timeout, or "unused parset keywords" in
        the output even with exit code 0.
    """
    argv = [str(a) for a in argv]
    if not argv:
        raise ValueError("DP3 command is empty; build it with dp3_argv(find_dp3(), parset, numthreads)")
    prefix = _pdeathsig_prefix()
    if prefix and shutil.which(argv[0]) is None:  # setpriv would start and then fail with 127
        raise UserError(f"cannot start DP3 ({argv[0]}): no such executable file; {INSTALL_HINT}")
    if not timeout or timeout <= 0:
        # dp3.timeout is checked by the config's schema: reaching here is a caller's bug
        raise ValueError(f"DP3 timeout = {timeout!r}: expected a number of seconds > 0 (config key dp3.timeout)")
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = shlex.join(argv)
    run_env = dict(env) if env is not None else dp3_environment()
    log.debug("running %s (log %s)", command, log_path)
    start = time.monotonic()
    with open(log_path, "wb") as fh:
        fh.write((command + "\n").encode())
        fh.flush()
        try:
            proc = subprocess.Popen(
                [*prefix, *argv],  # the log and errors name DP3's own command
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                env=run_env,
                cwd=None if cwd is None else os.fspath(cwd),
                start_new_session=True,
            )
        except OSError as exc:
            raise UserError(f"cannot start DP3 ({argv[0]}): {exc.strerror}; {INSTALL_HINT}") from None
        returncode, timed_out = _wait(proc, timeout)
    seconds = time.monotonic() - start
    _raise_if_failed(argv, returncode, timed_out, log_path, timeout)
    log.debug("DP3 finished in %.1f s: %s", seconds, log_path)
    return DP3Run(argv=tuple(argv), seconds=seconds, log_path=log_path, returncode=returncode)


def _wait(proc: subprocess.Popen, timeout: float) -> tuple[int | None, bool]:
    """DP3's exit code, and whether it was killed for running past ``timeout``; its whole
    process group is gone either way."""
    try:
        returncode = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _terminate(proc, KILL_GRACE)
        return proc.returncode, True
    except BaseException:  # e.g. KeyboardInterrupt or a Dask cancel: leave nothing running
        _terminate(proc, KILL_GRACE)
        raise
    # DP3 exited; make sure no child it left in its group survives.
    _kill_group(proc.pid, signal.SIGKILL, wait=2.0)
    return returncode, False


def _raise_if_failed(argv: list[str], returncode: int | None, timed_out: bool, log_path: Path, timeout: float) -> None:
    """:class:`DP3Error` for a timeout, a non-zero exit, or parset keys DP3 did not use."""
    reason = None
    unused = None if timed_out else unused_keys(_read_log(log_path))
    if unused is not None:
        names = ", ".join(unused) if unused else "see the log"
        reason = f"did not use parset keys ({names}): misspelled or not valid for this step"
    if timed_out or returncode != 0 or reason:
        err = DP3Error(
            argv=argv,
            returncode=returncode,
            log_path=log_path,
            tail=_tail(log_path),
            timed_out=timed_out,
            timeout=timeout,
            reason=reason,
        )
        log.warning("%s", err.summary)
        raise err
