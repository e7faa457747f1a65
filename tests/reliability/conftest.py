"""Fixtures of the reliability tests: the simulated data (made once per session, copied
per test), the fake DP3, an uninterrupted reference run, and a process tag per test
whose leftovers are killed at teardown."""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import relkit  # noqa: E402


@pytest.fixture(scope="session")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> relkit.Inputs:
    """The session's simulated MS and sky model: never handed to a run, only copied."""
    root = tmp_path_factory.mktemp("reliability-sim")
    ms = root / "sim.ms"
    subprocess.run(
        relkit.ddpipe_argv("simulate", str(ms), *relkit.SIMULATION), check=True, capture_output=True, timeout=120
    )
    return relkit.Inputs(ms, root / "sim.skymodel", root / "sim.truth.h5")


def copy_inputs(src: relkit.Inputs, dst: Path) -> relkit.Inputs:
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src.ms, dst / src.ms.name)
    for f in (src.skymodel, src.truth):
        shutil.copy2(f, dst / f.name)
    return relkit.Inputs(dst / src.ms.name, dst / src.skymodel.name, dst / src.truth.name)


@pytest.fixture
def inputs(simulated: relkit.Inputs, tmp_path: Path) -> relkit.Inputs:
    """This test's own copy of the simulated MS and sky model."""
    return copy_inputs(simulated, tmp_path / "inputs")


@pytest.fixture(scope="session")
def fake_dp3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return relkit.write_fake_dp3(tmp_path_factory.mktemp("fake-dp3"))


@pytest.fixture(scope="session")
def real_dp3() -> str:
    return relkit.real_dp3()


@pytest.fixture
def tag(request: pytest.FixtureRequest):
    """A unique process tag; whatever still carries it after the test is killed."""
    value = f"{request.node.name}-{uuid.uuid4().hex[:8]}"
    yield value
    relkit.reap(value)


@pytest.fixture(scope="session")
def reference_run(simulated: relkit.Inputs, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """One uninterrupted run of the scenario config (real DP3, local cluster): its workdir
    (read-only for the tests) and its products."""
    root = tmp_path_factory.mktemp("reliability-reference")
    data = copy_inputs(simulated, root / "inputs")
    cfg = relkit.write_config(root / "run.yaml", data, root / "work")
    env = relkit.tagged_env(f"reference-{uuid.uuid4().hex[:8]}")
    try:
        res = relkit.run_ddpipe(["run", str(cfg)], env)
    finally:
        relkit.reap(env[relkit.TAG])
    assert res.returncode == 0, res.stderr[-3000:]
    return root / "work", relkit.products(root / "work")


@pytest.fixture(scope="session")
def reference(reference_run: tuple[Path, dict]) -> dict:
    """The uninterrupted run's products (see :func:`relkit.products`)."""
    return reference_run[1]
