from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from ddpipe import config as C
from ddpipe.cli import main
from ddpipe.errors import UserError

REPO = Path(__file__).resolve().parent.parent


def _fields(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def test_schema_and_default_yaml_name_the_same_keys():
    d = C.default_dict()
    assert set(d) == _fields(C.Config) - {"source"}
    for section, cls in [
        ("inputs", C.InputsConfig),
        ("cluster", C.ClusterConfig),
        ("chunking", C.ChunkingConfig),
        ("dp3", C.DP3Config),
        ("calibration", C.CalibrationConfig),
        ("imaging", C.ImagingConfig),
    ]:
        assert set(d[section]) == _fields(cls), section
    assert set(d["cluster"]["slurm"]) == _fields(C.SlurmConfig)


def test_configs_default_is_the_packaged_file():
    assert (REPO / "configs" / "default.yaml").resolve() == C.DEFAULT_CONFIG.resolve()


def test_every_default_key_has_a_comment():
    for line in C.DEFAULT_CONFIG.read_text().splitlines():
        s = line.strip()
        if not s or s.startswith("#") or s.startswith("- "):
            continue
        assert "#" in s, f"undocumented key line: {line!r}"


def test_defaults_load_and_freeze():
    cfg = C.load_config()
    assert cfg.cluster.mode == "local"
    assert cfg.calibration.solveralgorithm == "directioniterative"
    assert len(cfg.cycles) == 3 and {c.calibration.mode for c in cfg.cycles} == {"scalarphase"}
    assert cfg.cycles[0].imaging == cfg.imaging
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.cluster.mode = "slurm"  # type: ignore[misc]


def test_cycle_overrides_and_relative_paths(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(
        yaml.safe_dump(
            {
                "inputs": {"ms": ["a.ms", "sub/b.ms"], "skymodel": "sky.txt"},
                "calibration": {"solint": 4},
                "cycles": [{}, {"calibration": {"mode": "diagonal", "nchan": 2}, "imaging": {"niter": 50}}],
            }
        )
    )
    cfg = C.load_config(p)
    assert cfg.inputs.ms == (str(tmp_path / "a.ms"), str(tmp_path / "sub" / "b.ms"))
    assert cfg.cycles[0].calibration.solint == 4 and cfg.cycles[0].calibration.mode == "scalarphase"
    assert cfg.cycles[1].calibration.mode == "diagonal" and cfg.cycles[1].calibration.solint == 4
    assert cfg.cycles[1].imaging.niter == 50


@pytest.mark.parametrize(
    "text, needle",
    [
        ("cluster:\n  mdoe: local\n", "unknown key 'cluster.mdoe' (did you mean 'cluster.mode'?)"),
        ("imaging:\n  niter: -1\n", "imaging.niter = -1 is not allowed: must be >= 0"),
        ("imaging:\n  niter: ten\n", "imaging.niter = 'ten' is not allowed: expected an integer"),
        ("calibration:\n  mode: phase\n", "calibration.mode = 'phase'"),
        ("cycles: []\n", "cycles = [] is not allowed"),
        ("cycles:\n  - imaging: {sise: 3}\n", "unknown key 'cycles[0].imaging.sise'"),
        ("imaging: {size: [1024]}\n", "expected a list of 2 values"),
        ("imaging: {size: [40, 41]}\n", "imaging.size[1] = 41 is not allowed: must be even"),
        ("imaging: {size: [16, 16]}\n", "imaging.size[0] = 16 is not allowed: must be >= 32"),
        ("cycles:\n  - imaging: {size: [64, 63]}\n", "cycles[0].imaging.size[1] = 63 is not allowed: must be even"),
        ("cluster: {n_workers: 0}\n", "cluster.n_workers = 0"),
        ("imaging: {multiscale: yes please}\n", "expected true or false"),
        ("chunking: {duration: -5}\n", "chunking.duration = -5"),
        ("cluster: {slurm: {walltime: 'soon'}}\n", "cluster.slurm.walltime"),
        ("- just\n- a list\n", "top level must be a mapping"),
        ("imaging: {size: [1, 2}\n", "not valid YAML"),
        (
            "calibration: {solves: [{solint: 3}, {mode: diagonal, solint: 4}]}\n",
            "calibration.solves[0].solint = 3 is not allowed: each solve's solint must divide the longest one (4)",
        ),
        ("calibration: {solves: [{mode: tec}]}\n", "calibration.solves[0].mode = 'tec' is not allowed"),
        ("calibration: {solves: [{sollint: 2}]}\n", "unknown key 'calibration.solves[0].sollint' (did you mean"),
        ("calibration: {solves: [{n_directions: 2}]}\n", "unknown key 'calibration.solves[0].n_directions'"),
        ("calibration: {solves: scalarphase}\n", "calibration.solves = 'scalarphase' is not allowed"),
        (
            "calibration: {solint: 4, solutions_per_direction: [4, 3]}\n",
            "calibration.solutions_per_direction = [4, 3] is not allowed: each entry must divide solint (4)",
        ),
        (
            "calibration: {solint: 4, solutions_per_direction: [4], solveralgorithm: lbfgs}\n",
            "calibration.solveralgorithm = 'lbfgs' is not allowed: "
            "solutions_per_direction above 1 needs directioniterative",
        ),
        (
            "calibration: {solint: 4, solutions_per_direction: [2], antenna_averaging_factors: ['CS*:4']}\n",
            "a factor may not exceed the most sub-solutions of a direction (2)",
        ),
        ("calibration: {antenna_averaging_factors: ['CS*']}\n", "expected PATTERN:FACTOR"),
        (
            "calibration: {solves: [{solint: 2, solutions_per_direction: [3]}]}\n",
            "calibration.solves[0].solutions_per_direction = [3] is not allowed",
        ),
        ("cluster: {slurm: {walltime: 'soon'}}\n", "expected a duration like 01:00:00"),
        (
            "calibration: {solves: [{mode: scalarphase}, {mode: diagonal, solint: 10}]}\n"
            "cycles:\n  - calibration: {maxiter: 5}\n",
            "cycles[0].calibration.maxiter would not reach the solves listed in calibration.solves",
        ),
    ],
)
def test_bad_configs_exit_2_with_one_line(tmp_path, capsys, text, needle):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(UserError) as err:
        C.load_config(p)
    assert needle in str(err.value)
    assert main(["validate", "--schema-only", str(p)]) == 2
    errout = capsys.readouterr().err.strip().splitlines()
    assert len(errout) == 1 and needle in errout[0] and "Traceback" not in errout[0]


def test_a_chain_of_solves_takes_what_it_leaves_out_from_its_section(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(
        "calibration: {maxiter: 70, solves: [{mode: scalarphase, solint: 1}, "
        "{mode: diagonal, solint: 10, nchan: 1, smoothnessconstraint: 2.0e6}]}\n"
        "cycles:\n  - calibration: {n_directions: 3}\n"
        "  - calibration: {maxiter: 30, solves: [{solint: 2}]}\n"
    )
    cfg = C.load_config(p)
    one, two = cfg.cycles
    assert one.calibration.n_directions == 3 and one.calibration.modes == "scalarphase+diagonal"
    fast, slow = one.calibration.chain
    assert (fast.mode, fast.solint, fast.maxiter) == ("scalarphase", 1, 70)
    assert (slow.mode, slow.solint, slow.nchan, slow.smoothnessconstraint, slow.maxiter) == ("diagonal", 10, 1, 2e6, 70)
    assert one.calibration.longest_solint == 10
    assert [(s.mode, s.solint, s.maxiter) for s in two.calibration.chain] == [("scalarphase", 2, 30)]
    plain = C.load_config(None)
    assert plain.calibration.chain == (plain.calibration,) and plain.calibration.modes == "scalarphase"


def test_dp3_extra_takes_any_dp3_key(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text('dp3:\n  extra: {"ddecal.antennaconstraint": "[[CS001HBA0,CS002HBA0]]", "ddecal.maxiter": 10}\n')
    cfg = C.load_config(p)
    assert cfg.dp3.extra == {"ddecal.antennaconstraint": "[[CS001HBA0,CS002HBA0]]", "ddecal.maxiter": 10}


@pytest.mark.parametrize("name", ["default.yaml", "demo.yaml", "lofar-hba.yaml"])
def test_shipped_configs_validate(name):
    C.load_config(REPO / "configs" / name)


def test_exponent_without_sign_is_a_number(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("calibration: {smoothnessconstraint: 2.0e6, tolerance: 1e-4}\n")
    cal = C.load_config(p).calibration
    assert cal.smoothnessconstraint == 2.0e6 and cal.tolerance == 1e-4


def test_validate_missing_file(capsys, tmp_path):
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_validate_ok(capsys):
    assert main(["validate", "--schema-only", str(REPO / "configs" / "default.yaml")]) == 0
    assert "OK" in capsys.readouterr().out
    # without --schema-only it checks what `ddpipe run` checks before starting: the defaults name no data
    assert main(["validate", str(REPO / "configs" / "default.yaml")]) == 2
    assert "inputs.ms is empty" in capsys.readouterr().err


@pytest.fixture(scope="module")
def three_subbands(tmp_path_factory) -> Path:
    """``data/obs_SB000.ms`` … ``obs_SB002.ms`` (one 1-MHz channel each from 140 MHz), renamed so that
    alphabetical order is not frequency order: ``c.MS`` (140 MHz), ``a.MS`` (141), ``b.MS`` (142)."""
    from ddpipe.simulate import SimulationSpec, simulate

    root = tmp_path_factory.mktemp("globs")
    spec = SimulationSpec(
        stations=3, channels=1, subbands=3, freq_start=140e6, chan_width=1e6, times=2, directions=1, seed=1
    )
    r = simulate(root / "data" / "obs.ms", spec)
    for src, name in zip(r.ms_paths, ("c.MS", "a.MS", "b.MS")):
        src.rename(src.with_name(name))
    return root


def test_an_ms_glob_is_expanded_from_the_config_folder_in_frequency_order(three_subbands, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the config's folder
    p = three_subbands / "c.yaml"
    p.write_text(yaml.safe_dump({"inputs": {"ms": "data/*.MS", "reference_ms": ["data/b.MS", "data/[ac].MS"]}}))
    cfg = C.load_config(p)
    data = three_subbands / "data"
    assert cfg.inputs.ms == tuple(str(data / n) for n in ("c.MS", "a.MS", "b.MS"))
    assert cfg.inputs.reference_ms == tuple(str(data / n) for n in ("b.MS", "c.MS", "a.MS"))  # in its place
    over = C.load_config(p, {"inputs": {"ms": [str(data / "?.MS")]}})  # CLI overrides too
    assert over.inputs.ms == cfg.inputs.ms


def test_an_ms_glob_matching_nothing_is_one_line(three_subbands, capsys):
    p = three_subbands / "none.yaml"
    p.write_text(yaml.safe_dump({"inputs": {"ms": ["data/a.MS", "data/SB*.MS"]}}))
    assert main(["validate", str(p)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert f"inputs.ms: the pattern '{three_subbands / 'data' / 'SB*.MS'}' matches nothing" in err[0]


def test_a_template_with_an_unmatched_glob_passes_schema_only(tmp_path, capsys):
    """``validate --schema-only`` checks keys and values of a template whose MSs do not exist yet."""
    p = tmp_path / "template.yaml"
    p.write_text(yaml.safe_dump({"inputs": {"ms": "obs/SB*.MS"}, "imaging": {"channels_out": 4}}))
    assert main(["validate", "--schema-only", str(p)]) == 0
    assert main(["validate", str(p)]) == 2
    assert "matches nothing" in capsys.readouterr().err
