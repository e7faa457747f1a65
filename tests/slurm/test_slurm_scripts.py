"""The SLURM batch scripts without SLURM: syntax, documented knobs, nothing site-specific
baked in, and the checks that run before anything is started."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SLURM_DIR = REPO / "slurm"
SCRIPTS = sorted(SLURM_DIR.glob("*.sbatch"))
README = SLURM_DIR / "README.md"
HELPERS = sorted(Path(__file__).resolve().parent.glob("slurm_*.sh"))
SLURM_UP = Path(__file__).resolve().parent / "slurm_up.sh"


def test_the_scripts_exist():
    assert [p.name for p in SCRIPTS] == ["ddpipe-run.sbatch", "ddpipe-workers.sbatch"]


@pytest.mark.parametrize("script", SCRIPTS + HELPERS + [REPO / "scripts" / "system-deps.sh"], ids=lambda p: p.name)
def test_bash_syntax(script):
    out = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def _knobs(text: str) -> set[str]:
    return set(re.findall(r"\bDDPIPE_[A-Z_]+\b", text))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_every_knob_and_sbatch_line_is_documented(script):
    text = script.read_text()
    readme = README.read_text()
    missing = sorted(k for k in _knobs(text) if k not in readme)
    assert not missing, f"{script.name} reads {missing} but slurm/README.md does not explain them"
    for line in text.splitlines():
        if line.startswith("#SBATCH"):
            assert re.match(r"#SBATCH\s+\S+\s+#\s*\S", line), f"#SBATCH line without a comment: {line!r}"
            option = line.split()[1].split("=")[0]
            assert f"`{option}" in readme, f"{option} (in {script.name}) is not explained in slurm/README.md"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_no_hostnames_or_site_paths_baked_in(script):
    code = "\n".join(
        line.split(" #")[0]
        for line in script.read_text().splitlines()
        if not line.lstrip().startswith("#") or line.startswith("#SBATCH")
    )
    paths = set(re.findall(r"(?<![\w$}./:])/[A-Za-z][\w./-]*", code))
    allowed = {"/tmp", "/dev/null", "/proc/", "/environ"}  # system paths only (/proc/PID/environ)
    assert paths <= allowed, f"absolute paths in {script.name}: {sorted(paths - allowed)}"
    assert not re.search(r"--(partition|account|nodelist|qos)=(?!CHANGE_ME)", script.read_text()), (
        "site-specific #SBATCH value set; leave it commented out as CHANGE_ME"
    )
    assert not re.search(r"tcp://(?!host:port)", code), "a scheduler address is baked in"


def test_both_scripts_start_workers_the_same_way():
    """One worker launcher, copied into both scripts (sbatch copies a script alone, so they cannot share a file)."""
    bodies = []
    for script in SCRIPTS:
        m = re.search(r"^ddpipe_worker_task\(\) \{.*?^\}$", script.read_text(), re.S | re.M)
        assert m, f"no ddpipe_worker_task in {script.name}"
        bodies.append(m.group(0))
        assert "--resources subprocess_slots=1" in m.group(0)
    assert bodies[0] == bodies[1]


def _run(script: Path, env_extra: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "DDPIPE_"))}
    env.update(env_extra)
    return subprocess.run(["bash", str(script), *args], env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_refuses_to_run_outside_slurm(script):
    out = _run(script, {})
    assert out.returncode == 2
    assert "not inside a SLURM job; submit it with: sbatch" in out.stderr


def test_run_script_needs_a_config_or_a_command(tmp_path):
    out = _run(SLURM_DIR / "ddpipe-run.sbatch", {"SLURM_JOB_ID": "7", "SLURM_SUBMIT_DIR": str(tmp_path)})
    assert out.returncode == 2
    assert "no command given and DDPIPE_CONFIG is not set" in out.stderr
    assert not list(tmp_path.iterdir()), "nothing may be created before the inputs are checked"


@pytest.mark.parametrize(
    "knob, value",
    [
        ("DDPIPE_WORKERS_PER_NODE", "two"),
        ("DDPIPE_THREADS_PER_WORKER", "0"),
        ("DDPIPE_WORKER_WAIT", "-5"),
        ("DDPIPE_SCHEDULER_PORT", "x"),
    ],
)
def test_run_script_rejects_a_bad_knob_by_name(tmp_path, knob, value):
    out = _run(
        SLURM_DIR / "ddpipe-run.sbatch", {"SLURM_JOB_ID": "7", "SLURM_SUBMIT_DIR": str(tmp_path), knob: value}, "true"
    )
    assert out.returncode == 2
    assert f"{knob}={value}" in out.stderr
    assert not list(tmp_path.iterdir())


def test_run_script_names_a_missing_command(tmp_path):
    out = _run(
        SLURM_DIR / "ddpipe-run.sbatch",
        {"SLURM_JOB_ID": "7", "SLURM_SUBMIT_DIR": str(tmp_path)},
        "no-such-ddpipe-command",
    )
    assert out.returncode == 2
    assert "no-such-ddpipe-command not found on PATH" in out.stderr


def test_worker_script_needs_a_scheduler(tmp_path):
    out = _run(SLURM_DIR / "ddpipe-workers.sbatch", {"SLURM_JOB_ID": "7", "SLURM_SUBMIT_DIR": str(tmp_path)})
    assert out.returncode == 2
    assert "set DDPIPE_SCHEDULER_FILE" in out.stderr
    out = _run(
        SLURM_DIR / "ddpipe-workers.sbatch",
        {"SLURM_JOB_ID": "7", "SLURM_SUBMIT_DIR": str(tmp_path), "DDPIPE_SCHEDULER_FILE": str(tmp_path / "nope.json")},
    )
    assert out.returncode == 2
    assert f"DDPIPE_SCHEDULER_FILE={tmp_path / 'nope.json'} does not exist" in out.stderr


def test_slurm_up_without_root_or_packages_says_what_to_install(tmp_path):
    """A user who cannot install gets exit 3 (the fixture then skips, or fails under CI=true)."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "id").write_text("#!/bin/sh\necho 1000\n")  # not root
    (fake / "id").chmod(0o755)
    # no /usr/sbin on PATH: the daemons (slurmctld, slurmd, munged) are not found
    env = {"PATH": f"{fake}:/usr/bin:/bin", "HOME": str(tmp_path)}
    out = subprocess.run(
        ["bash", str(SLURM_UP), str(tmp_path / "state")], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 3, out.stderr
    assert "not root; run as root: apt-get install -y" in out.stderr and "slurmctld" in out.stderr
    assert not (tmp_path / "state" / "pids").exists()


def _anchors(md: str) -> set[str]:
    """GitHub heading anchors (lower case, punctuation dropped, spaces → '-'), outside code fences."""
    out, fenced = set(), False
    for line in md.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        m = None if fenced else re.match(r"^#{1,6}\s+(.*?)\s*$", line)
        if m:
            out.add(re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-"))
    return out


def test_readme_links_resolve():
    """slurm/README.md's relative links (the docs tests check README.md and docs/*.md only)."""
    text = README.read_text()
    targets = re.findall(r"\]\(([^)\s]+)\)", re.sub(r"```.*?```", "", text, flags=re.S))
    assert targets, "no links found: the pattern is wrong"
    for target in targets:
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        dest = (README.parent / path).resolve() if path else README
        assert dest.exists(), f"slurm/README.md links to {target}: {dest} does not exist"
        if anchor:
            assert anchor in _anchors(dest.read_text()), f"slurm/README.md links to {target}: no such heading"
