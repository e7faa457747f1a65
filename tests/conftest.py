"""Shared fixtures: the real Measurement Sets from ../shared/data, unpacked once per
session into a temp dir and copied per test (the originals are never written)."""

from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path
from typing import Callable, Mapping

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("DDPIPE_SHARED_DATA", REPO.parent / "shared" / "data"))

#: tarball → directory name inside it
REAL_MS = {
    "tDDECal": ("tDDECal.in_MS.tgz", "tDDECal.MS"),
    "tOSKAR": ("tOSKAR.in_MS.tgz", "tOSKAR.in_MS"),
    "tDish": ("tDish.MS.tgz", "tDish.MS"),
}

IN_CI = bool(os.environ.get("CI"))


def need_tool(name: str) -> None:
    """Skip when a peer tool is missing, but fail under CI where it must be installed."""
    if shutil.which(name) is None:
        msg = f"{name} not on PATH (make test installs it: scripts/system-deps.sh)"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"{SHARED_DATA} missing: ../shared must sit beside the repository")
    return SHARED_DATA


@pytest.fixture(scope="session")
def _unpacked(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("real_ms")
    out = {}
    for key, (tgz, name) in REAL_MS.items():
        with tarfile.open(shared_data / tgz) as tf:
            tf.extractall(root / key, filter="data")
        out[key] = root / key / name
    return out


@pytest.fixture
def real_ms(_unpacked: dict[str, Path], tmp_path: Path):
    """``real_ms("tDDECal")`` → path of a fresh, writable copy of that real MS."""

    def copy(key: str) -> Path:
        dst = tmp_path / _unpacked[key].name
        if not dst.exists():
            shutil.copytree(_unpacked[key], dst)
        return dst

    return copy


@pytest.fixture(scope="session")
def real_ms_readonly(_unpacked: dict[str, Path]) -> dict[str, Path]:
    """The session's unpacked copies; for tests that only read."""
    return _unpacked


@pytest.fixture(scope="session")
def foursources(shared_data: Path) -> Path:
    return shared_data / "foursources.skymodel"


@pytest.fixture
def dp3(tmp_path: Path) -> Callable[[Mapping[str, str], str], object]:
    """``dp3(parset, name)`` runs the real DP3 through ddpipe's runner (``checkparset=1``);
    the log goes to ``tmp_path/name.log``."""
    from ddpipe.dp3 import dp3_argv, dp3_environment, find_dp3, run_dp3
    from ddpipe.errors import UserError

    try:
        exe = find_dp3()
    except UserError as exc:
        if IN_CI:
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    env = dp3_environment(cache_dir=tmp_path / "cache")

    def run(parset: Mapping[str, str], name: str):
        return run_dp3(dp3_argv(exe, dict(parset), 1), log_path=tmp_path / f"{name}.log", timeout=300, env=env)

    return run


@pytest.fixture
def wsclean() -> str:
    """Path of WSClean; skip without it, but fail under CI where it must be installed."""
    need_tool("wsclean")
    return shutil.which("wsclean")
