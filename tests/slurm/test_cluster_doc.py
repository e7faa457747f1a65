"""docs/cluster.md's "by hand" recipe, run as written: `dask scheduler`, two `dask worker`
with the slot resource, then `ddpipe run my.yaml --scheduler scheduler.json`.

The only change to the documented lines: `--interface lo`, so that nothing listens
beyond 127.0.0.1 on the test machine."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CLUSTER_MD = REPO / "docs" / "cluster.md"
HEADING = "## 2. By hand: dask scheduler and dask worker"


def _by_hand_commands() -> list[str]:
    text = CLUSTER_MD.read_text()
    part = text[text.index(HEADING) :]
    part = part[: part.index("\n## ", len(HEADING))]
    block = re.search(r"```bash\n(.*?)```", part, re.S)
    assert block, f"no bash block under '{HEADING}' in docs/cluster.md"
    return [line.strip() for line in block.group(1).splitlines() if line.strip()]


def test_the_recipe_names_the_slot_resource_on_every_worker():
    cmds = _by_hand_commands()
    workers = [c for c in cmds if c.startswith("dask worker")]
    assert workers and all("--resources subprocess_slots=1" in c for c in workers)
    assert cmds[:2] == ["python -m ddpipe.security tls > tls.env", ". ./tls.env"]  # TLS first
    assert cmds[2].startswith("dask scheduler --protocol tls --scheduler-file scheduler.json")
    assert cmds[-1] == "ddpipe run my.yaml --scheduler scheduler.json"


@pytest.mark.dp3
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_by_hand_recipe_runs(sim_ms, tmp_path):
    cmds = _by_hand_commands()
    bindir = Path(sys.executable).parent
    (tmp_path / "my.yaml").write_text(
        "inputs:\n"
        f"  ms: [{sim_ms}]\n"
        f"  skymodel: {sim_ms.with_suffix('.skymodel')}\n"
        "workdir: work\n"
        "chunking: {duration: 0, n_chunks: 4}\n"
        "imaging: {size: [256, 256], scale: 30.0, niter: 200}\n"
        "cycles:\n"
        "  - calibration: {mode: scalarphase}\n"
    )
    procs: list[subprocess.Popen] = []
    # the first line writes the certificate and tls.env, the second sources it into every later command's shell
    env = dict(os.environ, PATH=f"{bindir}{os.pathsep}{os.environ['PATH']}")
    subprocess.run(cmds[0], shell=True, executable="/bin/bash", cwd=tmp_path, env=env, check=True, timeout=60)
    for line in (tmp_path / "tls.env").read_text().splitlines():
        name, value = line.removeprefix("export ").split("=", 1)
        env[name] = shlex.split(value)[0]
    assert (tmp_path / "tls" / "ddpipe-tls.key").stat().st_mode & 0o777 == 0o600
    try:
        for cmd in cmds[2:-1]:
            argv = shlex.split(cmd.rstrip("&").strip()) + ["--interface", "lo"]
            argv[0] = str(bindir / argv[0])
            procs.append(
                subprocess.Popen(
                    argv,
                    cwd=tmp_path,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
            if "scheduler" in argv[1]:
                deadline = time.monotonic() + 60
                while not (tmp_path / "scheduler.json").exists() and time.monotonic() < deadline:
                    time.sleep(0.2)
                assert (tmp_path / "scheduler.json").exists(), "dask scheduler wrote no scheduler file"
                assert json.loads((tmp_path / "scheduler.json").read_text())["address"].startswith("tls://127.0.0.1:")
        argv = shlex.split(cmds[-1])
        out = subprocess.run(
            [str(bindir / argv[0]), *argv[1:]], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240
        )
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    assert out.returncode == 0, out.stderr[-3000:]
    pattern = r"connected to tls://127\.0\.0\.1:\d+: [12] worker\(s\) with subprocess_slots"
    assert re.search(pattern, out.stderr), out.stderr[-2000:]
    assert (tmp_path / "work" / "cycle_01" / "solutions.h5").is_file()
    records = [json.loads(p.read_text()) for p in (tmp_path / "work" / "cycle_01" / "chunks").glob("*.done.json")]
    assert len(records) == 4 and {r["numthreads"] for r in records} == {4}  # --nthreads 4 → DP3 numthreads
