"""Run the real DP3 from the simulator tests (through ddpipe's own runner)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Mapping

import pytest

from ddpipe.dp3 import DP3Run, dp3_argv, dp3_environment, find_dp3, run_dp3
from ddpipe.errors import UserError


@pytest.fixture
def dp3(tmp_path: Path) -> Callable[[Mapping[str, str], str], DP3Run]:
    """``dp3(parset, name)`` runs DP3 with ``checkparset=1``; log in ``tmp_path/name.log``."""
    try:
        exe = find_dp3()
    except UserError as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    env = dp3_environment(cache_dir=tmp_path / "cache")

    def run(parset: Mapping[str, str], name: str) -> DP3Run:
        return run_dp3(dp3_argv(exe, dict(parset), 1), log_path=tmp_path / f"{name}.log", timeout=300, env=env)

    return run


@pytest.fixture
def wsclean() -> str:
    """Path of WSClean; skip without it, but fail under CI where it must be installed (as tests/conftest.py)."""
    import shutil

    found = shutil.which("wsclean")
    if found is None:
        msg = "wsclean not on PATH (make test installs it: scripts/system-deps.sh)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return found
