"""Who may talk to ddpipe's schedulers (issue 15): TLS by default, the user's own certificate
files checked before any work, and the plain-TCP warning (or error) in address mode."""

from __future__ import annotations

import dataclasses
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from distributed import Client

from ddpipe.cli import main
from ddpipe.cluster import address_cluster, check_address, local_cluster, slurm_cluster_kwargs, worker_slots
from ddpipe.config import load_config
from ddpipe.errors import UserError
from ddpipe.security import CERT_NAME, KEY_NAME, is_loopback, new_certificate

DASK = str(Path(sys.executable).with_name("dask"))


def _cluster_cfg(**kw):
    cfg = load_config().cluster
    sec = kw.pop("security", {})
    return dataclasses.replace(cfg, security=dataclasses.replace(cfg.security, **sec), **kw)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _cannot_connect(address: str, **kw) -> str:
    """Try a client without the certificate; return what stopped it."""
    with pytest.raises((OSError, TimeoutError, TypeError)) as info:  # TypeError: no TLS context at all
        Client(address, timeout=3, **kw)
    return f"{type(info.value).__name__}: {info.value}"


def test_local_cluster_speaks_tls_and_refuses_a_client_without_the_certificate(tmp_path):
    h = local_cluster(_cluster_cfg(n_workers=1, worker_wait=5.0), tmp_path)
    try:
        address = h.client.scheduler.address
        assert address.startswith("tls://127.0.0.1:")
        assert h.client.submit(sum, [1, 2], pure=False).result() == 3
        _cannot_connect(address)  # no certificate at all
        # a client holding another certificate (not signed by this run's) is refused too
        other = new_certificate(tmp_path / "other").security()
        _cannot_connect(address, security=other)
        with Client(address, security=h.security, timeout=10) as ok:  # the run's own certificate
            assert len(worker_slots(ok)) == 1
    finally:
        h.close()
    assert not (tmp_path / "security").exists(), "local mode keeps its certificate in memory"


def test_local_cluster_tls_can_be_turned_off(tmp_path):
    h = local_cluster(_cluster_cfg(n_workers=1, worker_wait=5.0, security={"tls": False}), tmp_path)
    try:
        assert h.client.scheduler.address.startswith("tcp://127.0.0.1:") and h.security is None
    finally:
        h.close()


def test_new_certificate_files_are_owner_only(tmp_path):
    old = os.umask(0o000)  # even with a careless umask
    try:
        files = new_certificate(tmp_path / "sec")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "sec") == 0o700
    assert _mode(files.cert) == 0o600 and _mode(files.key) == 0o600
    assert files.cert.name == CERT_NAME and files.key.name == KEY_NAME
    assert b"BEGIN CERTIFICATE" in files.cert.read_bytes() and b"PRIVATE KEY" in files.key.read_bytes()


def test_jobqueue_mode_gives_the_worker_jobs_a_fresh_certificate_per_run(tmp_path):
    from dask_jobqueue import SLURMCluster

    cfg = _cluster_cfg(mode="slurm")
    kw = slurm_cluster_kwargs(cfg, tmp_path)
    sec_dir = tmp_path / "security"
    assert _mode(sec_dir / CERT_NAME) == 0o600 and _mode(sec_dir / KEY_NAME) == 0o600
    assert kw["protocol"] == "tls://"
    kw["scheduler_options"] = {"host": "127.0.0.1", "dashboard_address": "127.0.0.1:0"}
    with SLURMCluster(**kw) as cluster:
        script = cluster.job_script()
        assert cluster.scheduler_address.startswith("tls://")
    for flag in ("--tls-ca-file", "--tls-cert", "--tls-key"):
        assert flag in script
    assert str(sec_dir / KEY_NAME) in script
    first = (sec_dir / KEY_NAME).read_bytes()
    slurm_cluster_kwargs(cfg, tmp_path)
    assert (sec_dir / KEY_NAME).read_bytes() != first, "every run gets its own key"


@pytest.fixture
def tls_scheduler(tmp_path):
    """A real `dask scheduler` + one slot worker on 127.0.0.1 with a certificate of their own."""
    files = new_certificate(tmp_path / "sec")
    tls = ["--tls-ca-file", str(files.ca), "--tls-cert", str(files.cert), "--tls-key", str(files.key)]
    sched_file = tmp_path / "scheduler.json"
    common = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    procs = [
        subprocess.Popen(
            [DASK, "scheduler", "--protocol", "tls", "--host", "127.0.0.1", "--port", "0"]
            + ["--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(sched_file), *tls],
            **common,
        )
    ]
    deadline = time.time() + 30
    while not sched_file.exists() and time.time() < deadline:
        time.sleep(0.1)
    assert sched_file.exists(), "dask scheduler did not start"
    procs.append(
        subprocess.Popen(
            [DASK, "worker", "--scheduler-file", str(sched_file), "--host", "127.0.0.1", "--nthreads", "1"]
            + ["--dashboard-address", "127.0.0.1:0", "--resources", "subprocess_slots=1", *tls],
            **common,
        )
    )
    yield files, sched_file
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()


def test_address_mode_connects_to_a_tls_scheduler_with_the_configured_files(tls_scheduler):
    files, sched_file = tls_scheduler
    sec = {"tls_ca_file": str(files.ca), "tls_cert": str(files.cert), "tls_key": str(files.key)}
    h = address_cluster(_cluster_cfg(mode="address", address=str(sched_file), worker_wait=30.0, security=sec))
    try:
        address = h.client.scheduler.address
        assert address.startswith("tls://") and len(worker_slots(h.client)) == 1
    finally:
        h.close()
    _cannot_connect(address)


def test_a_tls_scheduler_without_certificate_files_is_refused_before_connecting(tls_scheduler, monkeypatch):
    _, sched_file = tls_scheduler
    for var in [v for v in os.environ if v.startswith("DASK_DISTRIBUTED__COMM__TLS")]:
        monkeypatch.delenv(var)
    with pytest.raises(UserError, match="speaks TLS but no certificate is configured"):
        check_address(_cluster_cfg(mode="address", address=str(sched_file)))
    with pytest.raises(UserError, match="speaks TLS"):
        check_address(_cluster_cfg(mode="address", address="tls://10.1.2.3:8786"))


@pytest.mark.parametrize(
    "address, warned",
    [
        ("tcp://10.1.2.3:8786", True),
        ("10.1.2.3:8786", True),
        ("tcp://127.0.0.1:8786", False),
        ("tcp://localhost:8786", False),
        ("tcp://[::1]:8786", False),
    ],
)
def test_plain_tcp_off_loopback_is_warned_about_or_refused(address, warned):
    warning = check_address(_cluster_cfg(mode="address", address=address))
    if not warned:
        assert warning is None
        return
    assert "plain TCP" in warning and "anyone who can reach 10.1.2.3" in warning and "\n" not in warning
    with pytest.raises(UserError, match="refused: cluster.security.plain_tcp is 'error'"):
        check_address(_cluster_cfg(mode="address", address=address, security={"plain_tcp": "error"}))


def test_loopback_names():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("10.1.2.3") and not is_loopback("no-such-host.invalid")


# ----------------------------------------------------------------------------- bad input, from the CLI


def _write_config(tmp_path: Path, real_ms_readonly, foursources, security: dict, **cluster) -> Path:
    cfg = {
        "inputs": {"ms": [str(real_ms_readonly["tDDECal"])], "skymodel": str(foursources)},
        "workdir": str(tmp_path / "work"),
        "cluster": {**cluster, "security": security},
    }
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _bad_files(tmp_path: Path) -> dict[str, tuple[dict, str]]:
    good = new_certificate(tmp_path / "good")
    other = new_certificate(tmp_path / "other")
    loose = tmp_path / "loose.key"
    loose.write_bytes(good.key.read_bytes())
    loose.chmod(0o640)
    files = {"tls_ca_file": str(good.ca), "tls_cert": str(good.cert), "tls_key": str(good.key)}
    return {
        "missing": ({**files, "tls_cert": str(tmp_path / "nope.crt")}, "tls_cert = .*nope.crt' does not exist"),
        "a folder": ({**files, "tls_ca_file": str(tmp_path)}, "tls_ca_file = .* is not a file"),
        "group-readable key": ({**files, "tls_key": str(loose)}, "readable by others \\(mode 0640\\).*chmod 600"),
        "only a key": ({"tls_key": str(good.key)}, "tls_ca_file, tls_cert not set"),
        "key of another cert": ({**files, "tls_key": str(other.key)}, "not a usable TLS set"),
    }


@pytest.mark.parametrize(
    "case",
    ["missing", "a folder", "group-readable key", "only a key", "key of another cert"],
)
def test_bad_certificate_files_one_line_exit_2(tmp_path, capsys, real_ms_readonly, foursources, case):
    security, needle = _bad_files(tmp_path)[case]
    path = _write_config(tmp_path, real_ms_readonly, foursources, security)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    assert re.search(needle, err[0]), err[0]
    assert not (tmp_path / "work").exists(), "nothing written"


def test_tls_address_without_files_exit_2_before_any_work(tmp_path, capsys, real_ms_readonly, foursources):
    path = _write_config(tmp_path, real_ms_readonly, foursources, {}, mode="address", address="tls://10.1.2.3:8786")
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "speaks TLS but no certificate is configured" in err[0], err
    assert not (tmp_path / "work").exists()


def test_validate_warns_about_plain_tcp_in_one_line(tmp_path, capsys, real_ms_readonly, foursources):
    path = _write_config(tmp_path, real_ms_readonly, foursources, {}, mode="address", address="tcp://10.1.2.3:8786")
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert any("warning: the scheduler at tcp://10.1.2.3:8786 is plain TCP" in line for line in out), out


def test_module_cli_writes_a_certificate_and_prints_dask_settings_for_every_role(tmp_path, capsys):
    from ddpipe.security import main as security_main

    assert security_main([str(tmp_path / "sec")]) == 0
    lines = capsys.readouterr().out.splitlines()
    settings = dict(line.removeprefix("export ").split("=", 1) for line in lines)
    key = f"'{tmp_path / 'sec' / KEY_NAME}'"
    for role in ("CLIENT", "SCHEDULER", "WORKER"):
        assert settings[f"DASK_DISTRIBUTED__COMM__TLS__{role}__KEY"] == key
    assert settings["DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION"] == "'True'"
    assert _mode(tmp_path / "sec" / KEY_NAME) == 0o600
    assert security_main([]) == 2
