"""The bad-input matrix (issue 7, item 7): one row per case, each run as a real
``ddpipe run`` process.

Every row asserts the exit code (2 for bad input, 1 for a runtime failure), that
stderr has exactly one ``ddpipe run: ... error`` line and that it names the culprit
and what to do, that there is no traceback, that the input files (MS, sky model,
config and any file the case made) are byte- and mtime-identical afterwards, and,
for input that can be checked up front, that no work was started (no cycle folder).
"""

from __future__ import annotations

import re
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import casacore.tables as pt
import numpy as np
import pytest
import relkit

ONE_CYCLE = {"cycles": [{}]}
LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")


@dataclass
class Setup:
    """What a row runs: ``ddpipe ARGS`` with extra environment; ``watch`` are more input files."""

    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    watch: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class Row:
    build: Callable[..., Setup]  # (case folder, inputs) -> Setup
    code: int
    needles: tuple[str, ...]  # all must appear in the error line (culprit and fix)
    early: bool = True  # refused before any stage ran
    marks: tuple = ()


def _run(tmp: Path, data: relkit.Inputs, *extra: str, **sections) -> Setup:
    cfg = relkit.write_config(tmp / "run.yaml", data, tmp / "work", **{**ONE_CYCLE, **sections})
    return Setup(["run", str(cfg), *extra], watch=[cfg])


def _yaml(text: str) -> Callable[..., Setup]:
    def build(tmp: Path, inputs: relkit.Inputs) -> Setup:
        cfg = tmp / "run.yaml"
        cfg.write_text(text.format(ms=inputs.ms, sky=inputs.skymodel, work=tmp / "work"))
        return Setup(["run", str(cfg)], watch=[cfg])

    return build


def _sections(**sections) -> Callable[..., Setup]:
    return lambda tmp, inputs: _run(tmp, inputs, **sections)


def _args(*extra: str) -> Callable[..., Setup]:
    return lambda tmp, inputs: _run(tmp, inputs, *extra)


# ----------------------------------------------------------------------------- Measurement Sets


def _ms_variant(edit: Callable[[Path], Path | None]) -> Callable[..., Setup]:
    """A copy of the MS edited by ``edit`` (which may return another path to use)."""

    def build(tmp: Path, inputs: relkit.Inputs) -> Setup:
        bad = tmp / "bad.ms"
        shutil.copytree(inputs.ms, bad)
        path = edit(bad) or bad
        setup = _run(tmp, inputs, inputs={"ms": [str(path)]})
        setup.watch.append(path)
        return setup

    return build


def _remove_data(ms: Path) -> None:
    with pt.table(str(ms), readonly=False, ack=False) as t:
        t.removecols(["DATA"])


def _zero_rows(ms: Path) -> Path:
    dst = ms.with_name("empty.ms")
    with pt.table(str(ms), ack=False) as t:
        t.selectrows([]).copy(str(dst), deep=True).close()
    shutil.rmtree(ms)
    return dst


def _flag_all(ms: Path) -> None:
    with pt.table(str(ms), readonly=False, ack=False) as t:
        t.putcol("FLAG", np.ones(t.getcol("FLAG").shape, dtype=bool))


def _second(subtable: str, column: str) -> Callable[[Path], None]:
    """Add a second row to ``subtable`` (a copy of the first) and point half the rows at it."""

    def edit(ms: Path) -> None:
        with pt.table(str(ms / subtable), readonly=False, ack=False) as s:
            s.addrows(1)
            for col in s.colnames():
                if s.iscelldefined(col, 0):
                    s.putcell(col, 1, s.getcell(col, 0))
        with pt.table(str(ms), readonly=False, ack=False) as t:
            ids = t.getcol(column)
            ids[ids.size // 2 :] = 1
            t.putcol(column, ids)

    return edit


def _second_spw(ms: Path) -> None:
    _second("SPECTRAL_WINDOW", "DATA_DESC_ID")(ms)
    with pt.table(str(ms / "DATA_DESCRIPTION"), readonly=False, ack=False) as d:
        d.addrows(1)
        d.putcell("SPECTRAL_WINDOW_ID", 1, 1)
        d.putcell("POLARIZATION_ID", 1, d.getcell("POLARIZATION_ID", 0))
        d.putcell("FLAG_ROW", 1, False)


def _not_an_ms(tmp: Path, inputs: relkit.Inputs) -> Setup:
    folder = tmp / "folder.ms"
    folder.mkdir()
    (folder / "readme.txt").write_text("just a folder\n")
    setup = _run(tmp, inputs, inputs={"ms": [str(folder)]})
    setup.watch.append(folder)
    return setup


# ----------------------------------------------------------------------------- sky models

HEADER = "# (Name, Type, Patch, Ra, Dec, I, ReferenceFrequency='150e6') = format\n"


def _sky(text: str) -> Callable[..., Setup]:
    def build(tmp: Path, inputs: relkit.Inputs) -> Setup:
        sky = tmp / "bad.skymodel"
        sky.write_text(text)
        setup = _run(tmp, inputs, inputs={"skymodel": str(sky)})
        setup.watch.append(sky)
        return setup

    return build


# ----------------------------------------------------------------------------- H5parms
# No ddpipe command reads an H5parm a user hands it; the H5parms ddpipe takes in are
# DP3's, one per chunk. A fake DP3 runs the real one and then breaks the H5parm it
# wrote (exit 0); ddpipe must refuse it rather than merge or apply it.


def _h5parm(damage: str) -> Callable[..., Setup]:
    def build(tmp: Path, inputs: relkit.Inputs) -> Setup:
        fake = relkit.write_fake_dp3(tmp / "bin")
        setup = _run(tmp, inputs, dp3={"executable": str(fake)}, cluster={"n_workers": 1}, chunking={"n_chunks": 2})
        setup.env.update(
            REAL_DP3=relkit.real_dp3(), FAKE_DP3_MATCH="cycle_01/chunks/chunk_", FAKE_DP3_ACTION=f"h5parm-{damage}"
        )
        return setup

    return build


def _image_with(damage: Callable[[Path], None] | None, *extra: str) -> Callable[..., Setup]:
    """``ddpipe image --h5parm`` with the simulation's true gains (an H5parm DP3 applies) damaged."""

    def build(tmp: Path, inputs: relkit.Inputs) -> Setup:
        h5 = tmp / "sol.h5"
        shutil.copyfile(inputs.truth, h5)
        if damage is not None:
            damage(h5)
        args = [
            "image",
            "--ms",
            str(inputs.ms),
            "--h5parm",
            str(h5),
            "--skymodel",
            str(inputs.skymodel),
            "--size",
            "64",
            "--scale",
            "20asec",
            "--niter",
            "0",
            "--name",
            str(tmp / "work" / "img"),
            *extra,
        ]
        (tmp / "work").mkdir()
        return Setup(args, watch=[h5])

    return build


def _h5_edit(fn: Callable[[object], None]) -> Callable[[Path], None]:
    def edit(path: Path) -> None:
        import h5py

        with h5py.File(path, "r+") as f:
            fn(f)

    return edit


def _swap_axes(f) -> None:
    for name in ("val", "weight"):
        f["sol000/phase000"][name].attrs["AXES"] = np.bytes_(b"time,freq,dir,ant")


def _drop_soltab(f) -> None:
    del f["sol000/phase000"]


def _rename_directions(f) -> None:
    axis = f["sol000/phase000/dir"]
    axis[...] = np.array([n.replace(b"[P", b"[Q") for n in axis[...]], dtype=axis.dtype)
    src = f["sol000/source"][...]
    src["name"] = [n.replace(b"[P", b"[Q") for n in src["name"]]
    f["sol000/source"][...] = src


def _not_hdf5(path: Path) -> None:
    path.write_text("time,freq,ant,dir\n0,0,0,0\n")


# ----------------------------------------------------------------------------- environment


def _env(**env: str) -> Callable[..., Setup]:
    def build(tmp: Path, inputs: relkit.Inputs) -> Setup:
        setup = _run(tmp, inputs)
        setup.env.update({k: v.format(tmp=tmp) for k, v in env.items()})
        return setup

    return build


def _dp3_not_executable(tmp: Path, inputs: relkit.Inputs) -> Setup:
    fake = tmp / "DP3"
    fake.write_text("#!/bin/sh\nexit 0\n")
    setup = _run(tmp, inputs, dp3={"executable": str(fake)})
    setup.watch.append(fake)
    return setup


def _no_measures(tmp: Path, inputs: relkit.Inputs) -> Setup:
    empty = tmp / "no-measures"
    empty.mkdir()
    casarc = tmp / "casarc"
    casarc.write_text(f"measures.directory: {empty}\n")
    # the pipeline's DP3 does not need measures for this simulated array; simulating (UVW) does
    setup = Setup(["simulate", str(tmp / "out.ms"), *relkit.SIMULATION], env={"CASARCFILES": str(casarc)})
    setup.watch += [casarc, empty]
    return setup


def _workdir_is_a_file(tmp: Path, inputs: relkit.Inputs) -> Setup:
    blocker = tmp / "work"
    blocker.write_text("a file where the workdir should go\n")
    setup = _run(tmp, inputs)
    setup.watch.append(blocker)
    return setup


# ----------------------------------------------------------------------------- the matrix

ROWS: dict[str, Row] = {
    # --- command line
    "cli: no config argument": Row(
        lambda tmp, inputs: Setup(["run"]), 2, ("the following arguments are required: config",)
    ),
    "cli: unknown option": Row(_args("--frobnicate"), 2, ("unrecognized arguments: --frobnicate",)),
    "cli: --workers not a number": Row(_args("--workers", "two"), 2, ("--workers", "invalid int value: 'two'")),
    "cli: --workers 0": Row(_args("--workers", "0"), 2, ("cluster.n_workers = 0", "must be >= 1")),
    "cli: --restart-from bad stage": Row(
        _args("--restart-from", "1:dance"), 2, ("--restart-from '1:dance'", "calibrate | image | skymodel")
    ),
    "cli: --restart-from bad cycle": Row(
        _args("--restart-from", "3:image"), 2, ("--restart-from '3:image'", "CYCLE 1..1")
    ),
    "cli: --resume with nothing to resume": Row(
        _args("--resume"), 2, ("--resume: no earlier run to resume in", "drop --resume")
    ),
    "cli: --resume with --force": Row(_args("--resume", "--force"), 2, ("--resume and --force contradict",)),
    "cli: config file missing": Row(
        lambda tmp, inputs: Setup(["run", str(tmp / "nope.yaml")]), 2, ("nope.yaml does not exist", "check the path")
    ),
    "cli: config is a folder": Row(lambda tmp, inputs: Setup(["run", str(tmp)]), 2, ("is a directory",)),
    "cli: --scheduler file missing": Row(
        _args("--scheduler", "/nonexistent/scheduler.json"),
        2,
        ("scheduler file /nonexistent/scheduler.json does not exist", "dask scheduler --scheduler-file"),
    ),
    # --- YAML config
    "yaml: unknown key": Row(
        _sections(calibration={"modee": "scalarphase"}),
        2,
        ("unknown key 'calibration.modee'", "did you mean 'calibration.mode'"),
    ),
    "yaml: wrong type": Row(_sections(imaging={"niter": "many"}), 2, ("imaging.niter = 'many'", "expected an integer")),
    "yaml: negative value": Row(_sections(calibration={"solint": -2}), 2, ("calibration.solint = -2", "must be >= 1")),
    "yaml: zero timeout": Row(_sections(dp3={"timeout": 0}), 2, ("dp3.timeout = 0", "must be > 0")),
    "yaml: zero pixel size": Row(_sections(imaging={"scale": 0}), 2, ("imaging.scale = 0", "must be > 0")),
    "yaml: empty cycle list": Row(_sections(cycles=[]), 2, ("cycles = []", "non-empty list")),
    "yaml: bad enum": Row(
        _sections(calibration={"mode": "phaseonly"}),
        2,
        ("calibration.mode = 'phaseonly'", "scalarphase | scalaramplitude"),
    ),
    "yaml: bad cluster mode": Row(
        _sections(cluster={"mode": "kubernetes"}), 2, ("cluster.mode = 'kubernetes'", "local | address | slurm")
    ),
    "yaml: unknown key in a cycle": Row(
        _sections(cycles=[{"imaging": {"nitre": 5}}]), 2, ("unknown key 'cycles[0].imaging.nitre'", "did you mean")
    ),
    "yaml: not YAML": Row(_yaml("calibration: {{mode: [scalarphase\n"), 2, ("run.yaml:", "not valid YAML")),
    "yaml: top level is a list": Row(_yaml("- inputs\n- workdir\n"), 2, ("top level must be a mapping",)),
    "yaml: no Measurement Set": Row(
        _yaml("inputs: {{skymodel: {sky}}}\nworkdir: {work}\n"), 2, ("inputs.ms is empty", "list the Measurement Set")
    ),
    "yaml: no sky model": Row(
        _yaml("inputs: {{ms: [{ms}]}}\nworkdir: {work}\n"),
        2,
        ("inputs.skymodel is not set", "give a starting sky model"),
    ),
    "yaml: odd image size": Row(_sections(imaging={"size": [255, 256]}), 2, ("imaging.size[0] = 255", "must be even")),
    # --- Measurement Sets
    "ms: missing": Row(
        _sections(inputs={"ms": ["/nonexistent/obs.ms"]}),
        2,
        ("/nonexistent/obs.ms: no such file or directory", "check the Measurement Set path"),
    ),
    "ms: not an MS": Row(_not_an_ms, 2, ("folder.ms: is not a casacore table",)),
    "ms: no DATA column": Row(_ms_variant(_remove_data), 2, ("bad.ms: no data column 'DATA'",)),
    "ms: data_column absent": Row(
        _sections(inputs={"data_column": "CORRECTED_DATA"}), 2, ("no data column 'CORRECTED_DATA'", "it has DATA")
    ),
    "ms: empty": Row(_ms_variant(_zero_rows), 2, ("empty.ms: the main table has zero rows",)),
    "ms: all flagged": Row(_ms_variant(_flag_all), 2, ("bad.ms", "flagged")),
    "ms: two fields": Row(_ms_variant(_second("FIELD", "FIELD_ID")), 2, ("bad.ms", "2 fields", "split it")),
    "ms: two spectral windows": Row(_ms_variant(_second_spw), 2, ("bad.ms", "2 spectral windows")),
    # --- sky models
    "sky: missing": Row(
        _sections(inputs={"skymodel": "/nonexistent/sky.txt"}),
        2,
        ("inputs.skymodel: /nonexistent/sky.txt does not exist", "check the path"),
    ),
    "sky: bad header": Row(
        _sky("# (Name, Type, Ra, Dec, I) = fromat\ns1, POINT, 10deg, 50deg, 1\n"), 2, ("bad.skymodel", "FORMAT")
    ),
    "sky: bad coordinates": Row(
        _sky(HEADER + ", , P1, 108deg, 50deg\ns1, POINT, P1, 108deg, 95deg, 1.0\n"), 2, ("bad.skymodel:3", "95")
    ),
    "sky: unknown patch": Row(
        _sky(HEADER + ", , P1, 108deg, 50deg\ns1, POINT, P2, 108deg, 50deg, 1.0\n"), 2, ("bad.skymodel", "P2")
    ),
    "sky: no sources": Row(_sky(HEADER), 2, ("bad.skymodel: no sources",)),
    "sky: some sources without a patch": Row(
        _sky(HEADER + ", , P1, 108deg, 50deg\ns1, POINT, P1, 108deg, 50deg, 1.0\ns2, POINT, , 109deg, 50deg, 1.0\n"),
        2,
        ("bad.skymodel", "without a patch", "give every source a patch"),
    ),
    "sky: patch name DP3 cannot take": Row(
        _sky(HEADER + ", , P 1, 108deg, 50deg\ns1, POINT, P 1, 108deg, 50deg, 1.0\n"),
        2,
        ("bad.skymodel", "'P 1'", "rename it"),
    ),
    # --- H5parms handed to 'ddpipe image --h5parm'
    "h5parm: not an HDF5 file": Row(_image_with(_not_hdf5), 2, ("sol.h5: not an HDF5/H5parm file",)),
    "h5parm: wrong axes": Row(_image_with(_h5_edit(_swap_axes)), 2, ("sol.h5", "AXES='time,freq,dir,ant'")),
    "h5parm: missing soltab": Row(_image_with(_h5_edit(_drop_soltab)), 2, ("sol.h5", "has no soltab")),
    "h5parm: missing solset": Row(_image_with(None, "--solset", "sol001"), 2, ("sol.h5: no solset 'sol001'",)),
    "h5parm: directions not matching the facets": Row(
        _image_with(_h5_edit(_rename_directions)),
        2,
        (
            "sol.h5: no solutions for the facet direction(s) P1, P2, P3 of",
            "sim.skymodel (it has Q1, Q2, Q3)",
            "give the sky model it was solved with",
        ),
    ),
    # --- H5parms DP3 wrote for the chunks of 'ddpipe run' (a runtime failure: exit 1)
    "h5parm: DP3 wrote wrong axes": Row(
        _h5parm("wrong-axes"),
        1,
        ("2 of 2 chunk(s) failed", "chunk_000.partial.h5", "AXES"),
        early=False,
        marks=(pytest.mark.dp3, pytest.mark.slow),
    ),
    "h5parm: DP3 wrote no soltab": Row(
        _h5parm("no-soltab"),
        1,
        ("2 of 2 chunk(s) failed", "chunk_000.partial.h5", "soltab"),
        early=False,
        marks=(pytest.mark.dp3, pytest.mark.slow),
    ),
    "h5parm: DP3 wrote other directions": Row(
        _h5parm("other-directions"),
        1,
        ("2 of 2 chunk(s) failed", "chunk_000.partial.h5", "directions Q1, Q2, Q3", "asked for P1, P2, P3"),
        early=False,
        marks=(pytest.mark.dp3, pytest.mark.slow),
    ),
    # --- environment
    "env: DP3 not found": Row(
        _env(DDPIPE_DP3="/nonexistent/DP3"), 2, ("DDPIPE_DP3 = /nonexistent/DP3: does not exist", "pip install dp3")
    ),
    "env: DP3 not executable": Row(_dp3_not_executable, 2, ("dp3.executable = ", "is not an executable file")),
    "env: measures data missing": Row(_no_measures, 2, ("measures", "CASARCFILES")),
    "env: workdir is a file": Row(_workdir_is_a_file, 2, ("workdir:", "exists and is not a folder", "--workdir")),
}


ERROR_LINE = re.compile(r"^ddpipe( [a-z]+)?: error: ")


@pytest.mark.parametrize("name", [pytest.param(n, marks=r.marks) for n, r in ROWS.items()])
def test_bad_input_row(name: str, inputs: relkit.Inputs, tmp_path: Path) -> None:
    row = ROWS[name]
    case = tmp_path / "case"
    case.mkdir()
    setup = row.build(case, inputs)
    files = [inputs.ms, inputs.skymodel, *[p for p in setup.watch if p.exists()]]
    before = relkit.tree_hashes(*files)
    tag = f"bad-input-{uuid.uuid4().hex[:8]}"
    try:
        res = relkit.run_ddpipe(setup.args, relkit.tagged_env(tag, **setup.env), timeout=180)
    finally:
        relkit.reap(tag)

    assert res.returncode == row.code, res.stderr[-2000:]
    assert "Traceback" not in res.stderr + res.stdout
    lines = [ln for ln in res.stderr.splitlines() if ln.strip() and not LOG_LINE.match(ln)]
    errors = [i for i, ln in enumerate(lines) if ERROR_LINE.match(ln)]
    assert len(errors) == 1, res.stderr
    first = errors[0]
    # before the error only argparse's usage; after it only a runtime failure's table rows
    assert all(ln.startswith(("usage:", " ")) for ln in lines[:first]), res.stderr
    after = lines[first + 1 :]
    assert not after if row.code == 2 else all(ln.startswith("  ") for ln in after), res.stderr
    message = "\n".join(lines[first:])
    for needle in row.needles:
        assert needle in message, f"{needle!r} not in: {message}"
    assert relkit.tree_hashes(*files) == before, "an input file was changed"
    if row.early:
        assert not list(case.glob("work/*")), "bad input must be refused before any work"


def _validate_rows() -> list:
    """The rows refused before any work whose command is just ``ddpipe run CONFIG``."""
    config_rows = ("cli: config file missing", "cli: config is a folder")  # the other cli rows test run's options
    other_commands = ("env: measures data missing",)  # 'ddpipe simulate'; the h5parm rows run 'ddpipe image'
    return [
        pytest.param(n, marks=r.marks)
        for n, r in ROWS.items()
        if r.early
        and r.code == 2
        and not n.startswith("h5parm:")
        and n not in other_commands
        and (not n.startswith("cli:") or n in config_rows)
    ]


@pytest.mark.parametrize("name", _validate_rows())
def test_validate_refuses_whatever_run_refuses_before_work(name: str, inputs: relkit.Inputs, tmp_path: Path) -> None:
    """Issue 12: every rule `ddpipe run` enforces before it starts, `ddpipe validate` enforces too,
    with the same line (both call ddpipe.validation.validate)."""
    row = ROWS[name]
    case = tmp_path / "case"
    case.mkdir()
    setup = row.build(case, inputs)
    assert setup.args[:1] == ["run"] and len(setup.args) == 2, setup.args  # 'ddpipe run CONFIG' alone
    tag = f"bad-validate-{uuid.uuid4().hex[:8]}"
    try:
        res = relkit.run_ddpipe(["validate", *setup.args[1:]], relkit.tagged_env(tag, **setup.env), timeout=120)
    finally:
        relkit.reap(tag)
    assert res.returncode == 2, res.stderr[-2000:] + res.stdout[-500:]
    errors = [ln for ln in res.stderr.splitlines() if ERROR_LINE.match(ln)]
    assert len(errors) == 1 and errors[0].startswith("ddpipe validate: error: "), res.stderr
    for needle in row.needles:
        assert needle in errors[0], f"{needle!r} not in: {errors[0]}"
    assert not list(case.glob("work/*"))
