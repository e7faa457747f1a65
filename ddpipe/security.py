"""Who may talk to ddpipe's Dask scheduler.

A Dask scheduler runs whatever Python a connected client sends it, as the user who
started it. On a shared cluster, a scheduler on plain TCP is therefore open to every
user who can reach its node. ddpipe closes that door with TLS (mutual: a client or
worker must present a certificate signed by the run's CA):

- ``local`` mode: an in-memory certificate made for the run (``Security.temporary``);
  nothing is written, and only the driver's worker processes get it;
- ``slurm`` mode (dask-jobqueue): a fresh certificate per run in ``<workdir>/security``,
  files readable by the owner only, passed to the worker jobs by path;
- ``address`` mode: a ``tls://`` scheduler with the files given in
  ``cluster.security`` (or Dask's own ``distributed.comm.tls`` settings, which the
  SLURM batch scripts export); a plain ``tcp://`` scheduler that is not on loopback
  gets a warning naming the risk, or an error with ``plain_tcp: error``;
- user-given files (``tls_ca_file``, ``tls_cert``, ``tls_key``) replace the per-run
  certificate in every mode.

``python -m ddpipe.security DIR`` writes a per-run certificate (the batch scripts use it).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import ssl
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distributed.security import Security

from ddpipe.config import ClusterConfig, SecurityConfig
from ddpipe.errors import UserError

log = logging.getLogger(__name__)

#: file names of a per-run certificate (the certificate is its own CA)
CERT_NAME, KEY_NAME = "ddpipe-tls.crt", "ddpipe-tls.key"


@dataclass(frozen=True)
class TlsFiles:
    """A CA certificate and a certificate + private key signed by it, as PEM files."""

    ca: Path
    cert: Path
    key: Path

    def security(self) -> Security:
        """Mutual TLS for every role (scheduler, worker, client) with these files."""
        c, k = str(self.cert), str(self.key)
        return Security(
            require_encryption=True,
            tls_ca_file=str(self.ca),
            tls_client_cert=c,
            tls_client_key=k,
            tls_scheduler_cert=c,
            tls_scheduler_key=k,
            tls_worker_cert=c,
            tls_worker_key=k,
        )

    def environment(self) -> dict[str, str]:
        """Dask config as environment variables: every Dask process started with them (``dask scheduler
        --protocol tls``, ``dask worker``, a ``Client``) uses these files for its role."""
        env = {"DASK_DISTRIBUTED__COMM__TLS__CA_FILE": str(self.ca)}
        for role in ("CLIENT", "SCHEDULER", "WORKER"):
            env[f"DASK_DISTRIBUTED__COMM__TLS__{role}__CERT"] = str(self.cert)
            env[f"DASK_DISTRIBUTED__COMM__TLS__{role}__KEY"] = str(self.key)
        env["DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION"] = "True"
        return env


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to a new file that only its owner can read (mode 0600 from creation on)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, 0o600)  # whatever the umask
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def new_certificate(directory: str | os.PathLike[str]) -> TlsFiles:
    """A fresh self-signed certificate and key in ``directory`` (created 0700), both files 0600.

    The certificate is its own CA: a process holding these files can talk to a scheduler
    started with them; one without them cannot.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    temp = Security.temporary()  # in-memory PEM strings: certificate (also the CA) and key
    cert, key = directory / CERT_NAME, directory / KEY_NAME
    _write_private(key, temp.tls_client_key)
    _write_private(cert, temp.tls_client_cert)
    return TlsFiles(ca=cert, cert=cert, key=key)


def _readable(path: Path, key: str) -> None:
    if not path.is_file():
        raise UserError(f"cluster.security.{key} = {str(path)!r} does not exist or is not a file; fix the path")
    try:
        with open(path, "rb") as fh:
            fh.read(1)
    except OSError as exc:
        raise UserError(f"cluster.security.{key} = {str(path)!r} cannot be read ({exc.strerror}); fix its permissions")


def user_files(sec: SecurityConfig) -> TlsFiles | None:
    """The user's own TLS files, checked: all three or none, readable, the key owner-only, a matching pair.

    Raises
    ------
    UserError
        Naming the key and the fix, before anything starts.
    """
    given = {"tls_ca_file": sec.tls_ca_file, "tls_cert": sec.tls_cert, "tls_key": sec.tls_key}
    if not any(given.values()):
        return None
    missing = [k for k, v in given.items() if not v]
    if missing:
        raise UserError(
            f"cluster.security: {', '.join(missing)} not set; give tls_ca_file, tls_cert and tls_key together "
            "(or none, for a fresh certificate per run)"
        )
    files = TlsFiles(Path(sec.tls_ca_file), Path(sec.tls_cert), Path(sec.tls_key))  # type: ignore[arg-type]
    for key, path in (("tls_ca_file", files.ca), ("tls_cert", files.cert), ("tls_key", files.key)):
        _readable(path, key)
    check_key_permissions(files.key, "cluster.security.tls_key")
    _check_pair(files)
    return files


def check_key_permissions(path: Path, what: str) -> None:
    """A private key that group or others may read is refused (as ssh refuses such a key)."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise UserError(
            f"{what} = {str(path)!r} is readable by others (mode {mode:04o}); a private key must be "
            f"yours alone: chmod 600 {path}"
        )


def _check_pair(files: TlsFiles) -> None:
    try:
        ctx = ssl.create_default_context(cafile=str(files.ca))
        ctx.load_cert_chain(str(files.cert), str(files.key))
    except (ssl.SSLError, ValueError) as exc:
        raise UserError(
            f"cluster.security: {files.ca}, {files.cert} and {files.key} are not a usable TLS set "
            f"({getattr(exc, 'reason', None) or exc}); give PEM files: a CA, a certificate it signed and that "
            "certificate's key"
        ) from None


def cluster_security(cfg: ClusterConfig, workdir: str | os.PathLike[str]) -> Security | None:
    """The Security for a scheduler ddpipe starts (``local``, ``slurm``); None with ``tls: false``."""
    files = user_files(cfg.security)
    if files is not None:
        return files.security()
    if not cfg.security.tls:
        return None
    if cfg.mode == "local":  # the worker processes get it from the driver: nothing on disk
        return Security.temporary()
    return new_certificate(Path(workdir).resolve() / "security").security()


def client_security(cfg: ClusterConfig) -> Security | None:
    """What address mode connects with: the configured files, else Dask's own TLS settings, else None."""
    files = user_files(cfg.security)
    if files is not None:
        return files.security()
    dask_default = Security()  # reads distributed.comm.tls.* (the batch scripts export them)
    return dask_default if dask_default.tls_ca_file else None


def is_loopback(host: str) -> bool:
    """True when ``host`` (a name or an address) is this machine's loopback."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


def check_scheduler_security(cfg: ClusterConfig, address: str) -> str | None:
    """Address mode: refuse a ``tls://`` scheduler without certificate files, and a plain-TCP one not
    on loopback with ``plain_tcp: error``. Returns the plain-TCP warning to print, or None."""
    proto, _, rest = address.rpartition("://")
    proto = proto or "tcp"
    if proto == "tls":
        if client_security(cfg) is None:
            raise UserError(
                f"the scheduler at {address} speaks TLS but no certificate is configured; set "
                "cluster.security.tls_ca_file, tls_cert and tls_key (the files its workers use, e.g. "
                "<run folder>/security/ of ddpipe-run.sbatch)"
            )
        return None
    host = rest.rpartition(":")[0] if ":" in rest else rest
    if proto != "tcp" or is_loopback(host):
        return None
    risk = (
        f"the scheduler at {address} is plain TCP: anyone who can reach {host} can run code as you "
        "through it; start it with TLS (ddpipe's SLURM scripts do) and set cluster.security.tls_ca_file, "
        "tls_cert, tls_key"
    )
    if cfg.security.plain_tcp == "error":
        raise UserError(f"{risk} (refused: cluster.security.plain_tcp is 'error')")
    return f"{risk} (or cluster.security.plain_tcp: error to refuse such schedulers)"


def worker_tls_args(security: Security | None) -> list[str]:
    """``dask worker`` options that give a worker the certificate files (empty without TLS or files)."""
    if security is None or not security.tls_ca_file or not os.path.isfile(str(security.tls_ca_file)):
        return []
    conf = security.get_tls_config_for_role("worker")
    return ["--tls-ca-file", str(conf["ca_file"]), "--tls-cert", str(conf["cert"]), "--tls-key", str(conf["key"])]


def main(argv: list[str] | None = None) -> int:
    """``python -m ddpipe.security DIR``: write a per-run certificate, print the Dask environment for it."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(
            "usage: python -m ddpipe.security DIR  (writes ddpipe-tls.crt/.key, prints export lines)", file=sys.stderr
        )
        return 2
    files = new_certificate(args[0])
    for name, value in files.environment().items():
        print(f"export {name}={_quote(value)}")
    return 0


def _quote(value: Any) -> str:
    return "'" + str(value).replace("'", "'\\''") + "'"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
