"""Run state for resume: ``state.json`` (finished stages and chunks with the hashes of
their inputs and parameters) and ``ddpipe.lock`` (one run per workdir).

A stage counts as done only when its record's hash equals the hash of what it
would be run with now *and* every output it recorded still has the SHA-256 it
had when written — a torn or edited output is recomputed, never trusted.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Iterable

from ddpipe.errors import UserError
from ddpipe.fileio import atomic_write


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def digest(obj: Any) -> str:
    """A stable hash of JSON-able parameters."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


class State:
    """``workdir/state.json``: ``{"stages": {name: record}, "chunks": {name: record}}``."""

    def __init__(self, workdir: Path):
        self.path = Path(workdir) / "state.json"
        self.data: dict[str, Any] = {"version": 1, "stages": {}, "chunks": {}}
        if self.path.exists():
            try:
                loaded = json.loads(self.path.read_text())
                if isinstance(loaded, dict) and isinstance(loaded.get("stages"), dict):
                    self.data.update(loaded)
            except ValueError:
                pass  # a torn state file: start afresh, the outputs' own checks still apply

    def save(self) -> None:
        atomic_write(self.path, json.dumps(self.data, indent=1, sort_keys=True))

    def done(self, name: str, key: str) -> dict[str, Any] | None:
        """The stage's record if it finished with hash ``key`` and its outputs are intact."""
        rec = self.data["stages"].get(name)
        if not rec or rec.get("hash") != key:
            return None
        for path, sha in rec.get("outputs", {}).items():
            try:
                if sha256_file(path) != sha:
                    return None
            except OSError:
                return None
        return rec

    def record(self, name: str, key: str, outputs: Iterable[str | Path], **extra: Any) -> dict[str, Any]:
        rec = {
            "hash": key,
            "finished": time.time(),
            "outputs": {str(p): sha256_file(p) for p in outputs},
            **extra,
        }
        self.data["stages"][name] = rec
        self.save()
        return rec

    def forget(self, names: Iterable[str]) -> None:
        for n in names:
            self.data["stages"].pop(n, None)
        self.save()

    def record_chunk(self, name: str, record: dict[str, Any]) -> None:
        self.data["chunks"][name] = record
        self.save()


class WorkdirLock:
    """An exclusive ``flock`` on ``workdir/ddpipe.lock``; released when the process dies."""

    def __init__(self, workdir: Path):
        self.path = Path(workdir) / "ddpipe.lock"
        self.fd: int | None = None

    def __enter__(self) -> "WorkdirLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise UserError(
                f"{self.path.parent} is in use by another ddpipe run ({holder}); wait for it to finish "
                "or use another workdir"
            ) from None
        os.ftruncate(fd, 0)
        started = time.strftime("%Y-%m-%d %H:%M:%S")
        os.write(fd, f"pid {os.getpid()} on {os.uname().nodename}, started {started}".encode())
        self.fd = fd
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None
