"""The DP3 runner against fake DP3 scripts: exit codes, signals, timeouts (no orphans), ignored keys."""

from __future__ import annotations

import os
import pickle
import shlex
import signal
import sys
import time
from pathlib import Path

import psutil
import pytest

from ddpipe.dp3 import runner
from ddpipe.dp3.runner import DP3Error, DP3Run, dp3_environment, find_dp3, run_dp3, unused_keys, worker_threads
from ddpipe.errors import PipelineError, UserError


def fake(folder: Path, name: str, body: str) -> Path:
    """An executable shell script ``folder/name`` standing in for DP3."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\n" + body.strip() + "\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return dp3_environment({"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, cache_dir=tmp_path / "cache")


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _group_members(pgid: int) -> list[int]:
    out = []
    for p in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(p.pid) == pgid and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p.pid)
        except (ProcessLookupError, psutil.NoSuchProcess, PermissionError):
            pass
    return out


# --------------------------------------------------------------------------- run_dp3


def test_success_logs_command_first_and_output(tmp_path: Path, env: dict[str, str]) -> None:
    exe = fake(
        tmp_path / "bin",
        "DP3",
        """
echo "args: $*"
echo "blas=$OPENBLAS_NUM_THREADS casarc=$CASARCFILES"
echo "to stderr" >&2
pwd
""",
    )
    argv = [str(exe), "checkparset=1", "numthreads=2", "msin=/data/my obs.ms", "steps=[ddecal]"]
    log = tmp_path / "chunk_000.log"
    (tmp_path / "run").mkdir()
    run = run_dp3(argv, log_path=log, timeout=30, env=env, cwd=tmp_path / "run")
    assert isinstance(run, DP3Run)
    assert run.argv == tuple(argv) and run.returncode == 0 and run.log_path == log
    assert 0 < run.seconds < 30
    lines = log.read_text().splitlines()
    assert lines[0] == shlex.join(argv)
    assert "'msin=/data/my obs.ms'" in lines[0]
    assert lines[1] == "args: checkparset=1 numthreads=2 msin=/data/my obs.ms steps=[ddecal]"
    assert lines[2] == f"blas=1 casarc={env['CASARCFILES']}"
    assert Path(env["CASARCFILES"]).parent == tmp_path / "cache"
    assert "to stderr" in lines
    assert lines[-1] == str(tmp_path / "run")


def test_nonzero_exit_raises_with_everything(tmp_path: Path, env: dict[str, str]) -> None:
    body = "\n".join(f"echo line{i}" for i in range(30)) + "\necho 'std exception detected: no such MS' >&2\nexit 3"
    exe = fake(tmp_path / "bin", "DP3", body)
    log = tmp_path / "x.log"
    with pytest.raises(DP3Error) as info:
        run_dp3([str(exe), "msin=/nope.ms"], log_path=log, timeout=30, env=env)
    err = info.value
    assert isinstance(err, PipelineError) and err.exit_code == 1
    assert err.returncode == 3 and err.signal_name is None and not err.timed_out
    assert err.argv == (str(exe), "msin=/nope.ms") and err.log_path == log
    assert len(err.tail) == 20
    assert err.tail[-1] == "std exception detected: no such MS" and err.tail[0] == "line11"
    first, *rest = str(err).splitlines()
    assert first == f"DP3 exited with code 3: std exception detected: no such MS (log: {log})"
    text = "\n".join(rest)
    assert shlex.join(err.argv) in text and str(log) in text and "line29" in text


def test_death_by_sigsegv_is_named(tmp_path: Path, env: dict[str, str]) -> None:
    exe = fake(tmp_path / "bin", "DP3", "echo solving...\nkill -SEGV $$\necho unreachable")
    with pytest.raises(DP3Error) as info:
        run_dp3([str(exe)], log_path=tmp_path / "segv.log", timeout=30, env=env)
    err = info.value
    assert err.returncode == -signal.SIGSEGV and err.signal_name == "SIGSEGV" and not err.timed_out
    assert str(err).splitlines()[0].startswith("DP3 was killed by SIGSEGV")
    assert err.tail[-1] == "solving..."


def test_timeout_kills_the_whole_group(tmp_path: Path, env: dict[str, str]) -> None:
    pids = tmp_path / "pids"
    exe = fake(
        tmp_path / "bin",
        "DP3",
        f"""
sleep 300 &
echo "$$ $!" > {pids}
echo hanging
wait
""",
    )
    t0 = time.monotonic()
    with pytest.raises(DP3Error) as info:
        run_dp3([str(exe)], log_path=tmp_path / "hang.log", timeout=1.0, env=env)
    elapsed = time.monotonic() - t0
    err = info.value
    assert err.timed_out and err.signal_name == "SIGTERM"
    assert 1.0 <= elapsed < 1.0 + runner.KILL_GRACE
    leader, child = map(int, pids.read_text().split())
    assert not _alive(leader) and not _alive(child)
    assert _group_members(leader) == []
    assert str(err).splitlines()[0] == f"DP3 timed out after 1 s and was killed (log: {tmp_path / 'hang.log'})"


def test_timeout_escalates_to_sigkill_when_sigterm_is_ignored(
    tmp_path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "KILL_GRACE", 0.5)
    pids = tmp_path / "pids"
    # SIGTERM ignored by the script and (inherited) by its child
    exe = fake(
        tmp_path / "bin",
        "DP3",
        f"""
trap '' TERM
sleep 300 &
echo "$$ $!" > {pids}
while true; do sleep 1; done
""",
    )
    t0 = time.monotonic()
    with pytest.raises(DP3Error) as info:
        run_dp3([str(exe)], log_path=tmp_path / "stubborn.log", timeout=0.5, env=env)
    assert time.monotonic() - t0 < 5
    assert info.value.timed_out and info.value.signal_name == "SIGKILL"
    leader, child = map(int, pids.read_text().split())
    assert not _alive(leader) and not _alive(child)
    assert _group_members(leader) == []


def test_child_left_behind_after_exit_is_killed(tmp_path: Path, env: dict[str, str]) -> None:
    pids = tmp_path / "pids"
    exe = fake(
        tmp_path / "bin",
        "DP3",
        f"""
sleep 300 > /dev/null 2>&1 &
echo "$!" > {pids}
exit 0
""",
    )
    run_dp3([str(exe)], log_path=tmp_path / "x.log", timeout=30, env=env)
    child = int(pids.read_text())
    assert not _alive(child)  # run_dp3 returns only once its process group is gone


UNUSED = """
echo "Processing 6 time slots ..."
echo
echo "*** WARNING: the following parset keywords were not used ***"
echo "             maybe they are misspelled"
echo "    - ddecal.soliint"
echo "    - ddecal.modee"
echo
echo "Total DP3 time       0.04 real"
exit 0
"""


def test_exit_zero_with_unused_keys_is_a_failure(tmp_path: Path, env: dict[str, str]) -> None:
    exe = fake(tmp_path / "bin", "DP3", UNUSED)
    with pytest.raises(DP3Error) as info:
        run_dp3([str(exe), "ddecal.soliint=2"], log_path=tmp_path / "u.log", timeout=30, env=env)
    err = info.value
    assert err.returncode == 0 and not err.timed_out and err.signal_name is None
    first = str(err).splitlines()[0]
    assert "ddecal.soliint, ddecal.modee" in first and "exit code 0" in first and str(tmp_path / "u.log") in first


def test_unused_keys_parser() -> None:
    assert unused_keys("all fine\nTotal DP3 time 1 s\n") is None
    text = (
        "\n*** WARNING: the following parset keywords were not used ***\n  maybe they are misspelled\n"
        "    - a.b\n    - c\n\nx\n"
    )
    assert unused_keys(text) == ["a.b", "c"]
    assert unused_keys("RuntimeError: Unused parset keywords found") == []


def test_a_missing_executable_is_a_user_error_a_bad_timeout_a_programming_one(
    tmp_path: Path, env: dict[str, str]
) -> None:
    with pytest.raises(UserError, match="cannot start DP3 .*/nonexistent/DP3"):
        run_dp3([str(tmp_path / "nonexistent" / "DP3")], log_path=tmp_path / "x.log", timeout=5, env=env)
    with pytest.raises(ValueError, match="dp3.timeout") as info:  # the config's schema refuses it first
        run_dp3(["true"], log_path=tmp_path / "x.log", timeout=0, env=env)
    assert not isinstance(info.value, UserError)


def test_default_environment_is_dp3_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CASARCFILES", raising=False)
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    exe = fake(tmp_path / "bin", "DP3", 'echo "blas=$OPENBLAS_NUM_THREADS casarc=$CASARCFILES"')
    run_dp3([str(exe)], log_path=tmp_path / "logs" / "x.log", timeout=30)
    (casarc,) = (tmp_path / "xdg" / "ddpipe").iterdir()
    assert casarc.name.startswith("casarc-")
    assert (tmp_path / "logs" / "x.log").read_text().splitlines()[1] == f"blas=1 casarc={casarc}"


def test_dp3error_survives_pickling(tmp_path: Path) -> None:
    err = DP3Error(argv=["DP3", "a=1"], returncode=-9, log_path=tmp_path / "l.log", tail=["x", "y"])
    back = pickle.loads(pickle.dumps(err))
    assert (back.argv, back.returncode, back.signal_name, back.log_path, back.tail, back.timed_out) == (
        ("DP3", "a=1"),
        -9,
        "SIGKILL",
        tmp_path / "l.log",
        ("x", "y"),
        False,
    )
    assert str(back) == str(err)


# --------------------------------------------------------------------------- find_dp3


@pytest.fixture
def bins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Folders for each place DP3 can be found; PATH and sys.executable point only at them."""
    d = {k: tmp_path / k for k in ("configured", "env", "path_dp3", "venv", "path_py")}
    for p in d.values():
        p.mkdir()
    monkeypatch.delenv("DDPIPE_DP3", raising=False)
    monkeypatch.setenv("PATH", os.pathsep.join([str(d["path_dp3"]), str(d["path_py"])]))
    monkeypatch.setattr(sys, "executable", str(d["venv"] / "python"))
    return d


def test_find_dp3_order(bins: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    configured = fake(bins["configured"], "DP3", "exit 0")
    from_env = fake(bins["env"], "DP3", "exit 0")
    on_path = fake(bins["path_dp3"], "DP3", "exit 0")
    beside = fake(bins["venv"], "DP3.py", "exit 0")
    py_on_path = fake(bins["path_py"], "DP3.py", "exit 0")
    monkeypatch.setenv("DDPIPE_DP3", str(from_env))
    assert find_dp3(str(configured)) == [str(configured)]
    assert find_dp3(None) == [str(from_env)]
    monkeypatch.delenv("DDPIPE_DP3")
    assert find_dp3() == [str(on_path)]
    on_path.unlink()
    assert find_dp3() == [str(beside)]
    beside.unlink()
    assert find_dp3() == [str(py_on_path)]
    py_on_path.unlink()
    with pytest.raises(UserError) as info:
        find_dp3()
    msg = str(info.value)
    assert "DP3 not found" in msg and "pip install dp3" in msg and "DDPIPE_DP3" in msg and "dp3.executable" in msg


def test_find_dp3_bad_configured_paths(bins: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    fake(bins["path_dp3"], "DP3", "exit 0")  # a fallback exists, but an explicit choice must not be ignored
    missing = bins["configured"] / "DP3"
    with pytest.raises(UserError, match=f"dp3.executable = {missing}: does not exist; install DP3"):
        find_dp3(str(missing))
    not_exec = bins["configured"] / "DP3.txt"
    not_exec.write_text("#!/bin/sh\n")
    with pytest.raises(UserError, match="is not an executable file"):
        find_dp3(str(not_exec))
    monkeypatch.setenv("DDPIPE_DP3", str(bins["env"] / "nope"))
    with pytest.raises(UserError, match="DDPIPE_DP3 = .*nope: does not exist"):
        find_dp3()


# --------------------------------------------------------------------------- environment


def test_environment_writes_casarc_once(tmp_path: Path) -> None:
    base = {"PATH": "/bin", "OPENBLAS_NUM_THREADS": "8"}
    cache = tmp_path / "cache"
    env = dp3_environment(base, cache_dir=cache)
    assert base == {"PATH": "/bin", "OPENBLAS_NUM_THREADS": "8"}  # not mutated
    assert env["PATH"] == "/bin" and env["OPENBLAS_NUM_THREADS"] == "1"
    casarc = Path(env["CASARCFILES"])
    assert casarc.parent == cache and casarc.name.startswith("casarc-")
    key, value = casarc.read_text().strip().split(": ")
    assert key == "measures.directory"
    assert (Path(value) / "geodetic" / "Observatories").is_dir()  # the table DP3 fails without
    mtime = casarc.stat().st_mtime_ns
    assert dp3_environment(base, cache_dir=cache)["CASARCFILES"] == str(casarc)
    assert casarc.stat().st_mtime_ns == mtime
    assert list(cache.iterdir()) == [casarc]  # no temp files left


def test_environment_keeps_users_casarc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = dp3_environment({"CASARCFILES": "/site/casarc"}, cache_dir=tmp_path / "cache")
    assert env == {"CASARCFILES": "/site/casarc", "OPENBLAS_NUM_THREADS": "1"}
    assert not (tmp_path / "cache").exists()
    monkeypatch.setenv("CASARCFILES", "/from/os/environ")
    monkeypatch.setenv("DDPIPE_TEST_MARK", "yes")
    env = dp3_environment()
    assert env["CASARCFILES"] == "/from/os/environ" and env["DDPIPE_TEST_MARK"] == "yes"


# --------------------------------------------------------------------------- worker threads


def test_worker_threads_outside_and_inside_a_worker(tmp_path: Path) -> None:
    assert worker_threads() == 1
    from distributed import Client, LocalCluster

    # in-process worker (inproc:// comms, no network listener apart from the dashboard on 127.0.0.1)
    with (
        LocalCluster(
            n_workers=1,
            threads_per_worker=3,
            processes=False,
            dashboard_address="127.0.0.1:0",
            local_directory=str(tmp_path),
        ) as cluster,
        Client(cluster) as client,
    ):
        assert client.submit(worker_threads, pure=False).result(timeout=30) == 3
