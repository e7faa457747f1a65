"""Golden tests of the DP3 parset builders: the FULL argv is pinned for each builder and mode."""

from __future__ import annotations

import dataclasses

import pytest

from ddpipe.config import CalibrationConfig, load_config
from ddpipe.dp3.parsets import (
    MODE_SOLTABS,
    MsView,
    applycal_parset,
    ddecal_parset,
    dp3_argv,
    format_parset,
    h5parmpredict_parset,
    predict_parset,
)
from ddpipe.errors import UserError

DP3 = ["/opt/dp3/bin/DP3"]
MS = "/data/obs.ms"
SKY = "/work/cycle_01/skymodel.txt"
H5 = "/work/cycle_01/chunks/chunk_003.h5"


@pytest.fixture(scope="module")
def cal() -> CalibrationConfig:
    return load_config().calibration


def test_ddecal_default_config_chunk(cal: CalibrationConfig) -> None:
    p = ddecal_parset(
        MsView(MS, start_slot=120, n_slots=60),
        skymodel=SKY,
        directions=["CygA", "source1", "source2", "source3"],
        h5parm=H5,
        cal=cal,
    )
    assert dp3_argv(DP3, p, 2) == [
        "/opt/dp3/bin/DP3",
        "checkparset=1",
        "numthreads=2",
        "msin=/data/obs.ms",
        "msin.datacolumn=DATA",
        "msin.starttimeslot=120",
        "msin.ntimes=60",
        "msout=",
        "steps=[ddecal]",
        "ddecal.type=ddecal",
        "ddecal.mode=scalarphase",
        "ddecal.sourcedb=/work/cycle_01/skymodel.txt",
        "ddecal.directions=[[CygA],[source1],[source2],[source3]]",
        "ddecal.solint=1",
        "ddecal.nchan=0",
        "ddecal.maxiter=100",
        "ddecal.tolerance=0.0001",
        "ddecal.stepsize=0.2",
        "ddecal.uvlambdamin=0.0",
        "ddecal.smoothnessconstraint=0.0",
        "ddecal.propagatesolutions=true",
        "ddecal.solveralgorithm=directioniterative",
        "ddecal.usebeammodel=false",
        "ddecal.h5parm=/work/cycle_01/chunks/chunk_003.h5",
    ]


def test_ddecal_diagonal_whole_ms_with_extra_overrides(cal: CalibrationConfig) -> None:
    c = dataclasses.replace(
        cal,
        mode="diagonal",
        solint=4,
        nchan=8,
        maxiter=100,
        tolerance=1e-3,
        stepsize=0.5,
        uvlambdamin=50.0,
        smoothnessconstraint=2e6,
        propagatesolutions=False,
        solveralgorithm="lbfgs",
    )
    extra = {"ddecal.antennaconstraint": "[[CS001HBA0,CS002HBA0]]", "ddecal.maxiter": 7, "ddecal.flagunconverged": True}
    p = ddecal_parset(
        MsView(MS, data_column="CORRECTED_DATA"),
        skymodel="/sky/field.skymodel",
        directions=["P1", "P2"],
        h5parm="/out/s.h5",
        cal=c,
        extra=extra,
    )
    assert dp3_argv(["python3", "/venv/bin/DP3.py"], p, 1) == [
        "python3",
        "/venv/bin/DP3.py",
        "checkparset=1",
        "numthreads=1",
        "msin=/data/obs.ms",
        "msin.datacolumn=CORRECTED_DATA",
        "msout=",
        "steps=[ddecal]",
        "ddecal.type=ddecal",
        "ddecal.mode=diagonal",
        "ddecal.sourcedb=/sky/field.skymodel",
        "ddecal.directions=[[P1],[P2]]",
        "ddecal.solint=4",
        "ddecal.nchan=8",
        "ddecal.tolerance=0.001",
        "ddecal.stepsize=0.5",
        "ddecal.uvlambdamin=50.0",
        "ddecal.smoothnessconstraint=2000000.0",
        "ddecal.propagatesolutions=false",
        "ddecal.solveralgorithm=lbfgs",
        "ddecal.usebeammodel=false",
        "ddecal.h5parm=/out/s.h5",
        "ddecal.antennaconstraint=[[CS001HBA0,CS002HBA0]]",
        "ddecal.maxiter=7",
        "ddecal.flagunconverged=true",
    ]


def test_ddecal_fulljones_grouped_direction_start_only(cal: CalibrationConfig) -> None:
    c = dataclasses.replace(cal, mode="fulljones", solveralgorithm="directionsolve")
    p = ddecal_parset(MsView(MS, start_slot=0), skymodel=SKY, directions=[("P1", "P3"), "P2"], h5parm=H5, cal=c)
    assert dp3_argv(DP3, p, 4) == [
        "/opt/dp3/bin/DP3",
        "checkparset=1",
        "numthreads=4",
        "msin=/data/obs.ms",
        "msin.datacolumn=DATA",
        "msin.starttimeslot=0",
        "msout=",
        "steps=[ddecal]",
        "ddecal.type=ddecal",
        "ddecal.mode=fulljones",
        "ddecal.sourcedb=/work/cycle_01/skymodel.txt",
        "ddecal.directions=[[P1,P3],[P2]]",
        "ddecal.solint=1",
        "ddecal.nchan=0",
        "ddecal.maxiter=100",
        "ddecal.tolerance=0.0001",
        "ddecal.stepsize=0.2",
        "ddecal.uvlambdamin=0.0",
        "ddecal.smoothnessconstraint=0.0",
        "ddecal.propagatesolutions=true",
        "ddecal.solveralgorithm=directionsolve",
        "ddecal.usebeammodel=false",
        "ddecal.h5parm=/work/cycle_01/chunks/chunk_003.h5",
    ]


@pytest.mark.parametrize("mode", sorted(MODE_SOLTABS))
def test_ddecal_every_mode_passes_through(cal: CalibrationConfig, mode: str) -> None:
    p = ddecal_parset(MsView(MS), skymodel=SKY, directions=["A"], h5parm=H5, cal=dataclasses.replace(cal, mode=mode))
    assert p["ddecal.mode"] == mode
    assert p["msout"] == "" and "msin.starttimeslot" not in p and "msin.ntimes" not in p


def test_builder_modes_match_config_choices() -> None:
    field = next(f for f in dataclasses.fields(CalibrationConfig) if f.name == "mode")
    assert set(field.metadata["choices"]) == set(MODE_SOLTABS)


def test_predict_subset_subtract_chunk() -> None:
    p = predict_parset(
        MsView(MS, data_column="DATA", start_slot=10, n_slots=5),
        skymodel=SKY,
        out_column="SUBTRACTED",
        sources=["P1", "P2"],
        operation="subtract",
    )
    assert dp3_argv(DP3, p, 1) == [
        "/opt/dp3/bin/DP3",
        "checkparset=1",
        "numthreads=1",
        "msin=/data/obs.ms",
        "msin.datacolumn=DATA",
        "msin.starttimeslot=10",
        "msin.ntimes=5",
        "msout=.",
        "msout.datacolumn=SUBTRACTED",
        "steps=[predict]",
        "predict.type=predict",
        "predict.sourcedb=/work/cycle_01/skymodel.txt",
        "predict.sources=[P1,P2]",
        "predict.operation=subtract",
        "predict.usebeammodel=false",
    ]


def test_predict_all_sources_replace() -> None:
    p = predict_parset(MsView(MS), skymodel=SKY, out_column="MODEL_DATA")
    assert dp3_argv(DP3, p, 2) == [
        "/opt/dp3/bin/DP3",
        "checkparset=1",
        "numthreads=2",
        "msin=/data/obs.ms",
        "msin.datacolumn=DATA",
        "msout=.",
        "msout.datacolumn=MODEL_DATA",
        "steps=[predict]",
        "predict.type=predict",
        "predict.sourcedb=/work/cycle_01/skymodel.txt",
        "predict.operation=replace",
        "predict.usebeammodel=false",
    ]


def test_h5parmpredict_scalarphase_corrupt() -> None:
    p = h5parmpredict_parset(MsView(MS), skymodel=SKY, h5parm=H5, mode="scalarphase", out_column="DATA")
    assert dp3_argv(DP3, p, 1) == [
        "/opt/dp3/bin/DP3",
        "checkparset=1",
        "numthreads=1",
        "msin=/data/obs.ms",
        "msin.datacolumn=DATA",
        "msout=.",
        "msout.datacolumn=DATA",
        "steps=[h5parmpredict]",
        "h5parmpredict.type=h5parmpredict",
        "h5parmpredict.sourcedb=/work/cycle_01/skymodel.txt",
        "h5parmpredict.applycal.parmdb=/work/cycle_01/chunks/chunk_003.h5",
        "h5parmpredict.applycal.correction=phase000",
        "h5parmpredict.operation=replace",
        "h5parmpredict.usebeammodel=false",
    ]


def test_h5parmpredict_diagonal_subtract_subset() -> None:
    p = h5parmpredict_parset(
        MsView(MS, data_column="CORRECTED_DATA"),
        skymodel=SKY,
        h5parm=H5,
        mode="diagonal",
        out_column="SUBTRACTED_DATA",
        directions=["P1", "P3"],
        operation="subtract",
    )
    assert dp3_argv(DP3, p, 1) == [
        "/opt/dp3/bin/DP3",
        "checkparset=1",
        "numthreads=1",
        "msin=/data/obs.ms",
        "msin.datacolumn=CORRECTED_DATA",
        "msout=.",
        "msout.datacolumn=SUBTRACTED_DATA",
        "steps=[h5parmpredict]",
        "h5parmpredict.type=h5parmpredict",
        "h5parmpredict.sourcedb=/work/cycle_01/skymodel.txt",
        "h5parmpredict.applycal.parmdb=/work/cycle_01/chunks/chunk_003.h5",
        "h5parmpredict.applycal.correction=phase000",
        "h5parmpredict.applycal.steps=[amplitude,phase]",
        "h5parmpredict.applycal.amplitude.correction=amplitude000",
        "h5parmpredict.applycal.phase.correction=phase000",
        "h5parmpredict.directions=[[P1],[P3]]",
        "h5parmpredict.operation=subtract",
        "h5parmpredict.usebeammodel=false",
    ]


def test_h5parmpredict_fulljones_add() -> None:
    p = h5parmpredict_parset(
        MsView(MS, start_slot=4, n_slots=2),
        skymodel=SKY,
        h5parm=H5,
        mode="fulljones",
        out_column="DATA",
        operation="add",
    )
    assert dp3_argv(DP3, p, 1) == [
        "/opt/dp3/bin/DP3",
        "checkparset=1",
        "numthreads=1",
        "msin=/data/obs.ms",
        "msin.datacolumn=DATA",
        "msin.starttimeslot=4",
        "msin.ntimes=2",
        "msout=.",
        "msout.datacolumn=DATA",
        "steps=[h5parmpredict]",
        "h5parmpredict.type=h5parmpredict",
        "h5parmpredict.sourcedb=/work/cycle_01/skymodel.txt",
        "h5parmpredict.applycal.parmdb=/work/cycle_01/chunks/chunk_003.h5",
        "h5parmpredict.applycal.correction=fulljones",
        "h5parmpredict.applycal.soltab=[amplitude000,phase000]",
        "h5parmpredict.operation=add",
        "h5parmpredict.usebeammodel=false",
    ]


def test_applycal_scalar_one_direction() -> None:
    p = applycal_parset(MsView(MS), h5parm=H5, mode="scalar", direction="CygA")
    assert dp3_argv(DP3, p, 2) == [
        "/opt/dp3/bin/DP3",
        "checkparset=1",
        "numthreads=2",
        "msin=/data/obs.ms",
        "msin.datacolumn=DATA",
        "msout=.",
        "msout.datacolumn=CORRECTED_DATA",
        "steps=[applycal]",
        "applycal.type=applycal",
        "applycal.parmdb=/work/cycle_01/chunks/chunk_003.h5",
        "applycal.steps=[amplitude,phase]",
        "applycal.amplitude.correction=amplitude000",
        "applycal.phase.correction=phase000",
        "applycal.direction=[CygA]",
        "applycal.invert=true",
    ]


def test_applycal_scalaramplitude_corrupt_chunk() -> None:
    p = applycal_parset(
        MsView(MS, data_column="MODEL_DATA", start_slot=3, n_slots=1),
        h5parm=H5,
        mode="scalaramplitude",
        out_column="CORRUPTED",
        invert=False,
    )
    assert dp3_argv(DP3, p, 1) == [
        "/opt/dp3/bin/DP3",
        "checkparset=1",
        "numthreads=1",
        "msin=/data/obs.ms",
        "msin.datacolumn=MODEL_DATA",
        "msin.starttimeslot=3",
        "msin.ntimes=1",
        "msout=.",
        "msout.datacolumn=CORRUPTED",
        "steps=[applycal]",
        "applycal.type=applycal",
        "applycal.parmdb=/work/cycle_01/chunks/chunk_003.h5",
        "applycal.correction=amplitude000",
        "applycal.invert=false",
    ]


def test_applycal_fulljones_grouped_direction() -> None:
    p = applycal_parset(MsView(MS), h5parm=H5, mode="fulljones", direction=("P1", "P2"))
    assert dp3_argv(DP3, p, 1)[3:] == [
        "msin=/data/obs.ms",
        "msin.datacolumn=DATA",
        "msout=.",
        "msout.datacolumn=CORRECTED_DATA",
        "steps=[applycal]",
        "applycal.type=applycal",
        "applycal.parmdb=/work/cycle_01/chunks/chunk_003.h5",
        "applycal.correction=fulljones",
        "applycal.soltab=[amplitude000,phase000]",
        "applycal.direction=[P1,P2]",
        "applycal.invert=true",
    ]


def test_format_parset_is_the_parset_file(cal: CalibrationConfig) -> None:
    p = ddecal_parset(MsView(MS, start_slot=0, n_slots=6), skymodel=SKY, directions=["A", "B"], h5parm=H5, cal=cal)
    text = format_parset(p)
    assert text == "\n".join(f"{k}={v}" for k, v in p.items()) + "\n"
    assert text.splitlines()[:8] == [
        "msin=/data/obs.ms",
        "msin.datacolumn=DATA",
        "msin.starttimeslot=0",
        "msin.ntimes=6",
        "msout=",
        "steps=[ddecal]",
        "ddecal.type=ddecal",
        "ddecal.mode=scalarphase",
    ]
    # numthreads depends on the worker, not on the work: it stays out of the record that is hashed
    assert "numthreads" not in text and "checkparset" not in text
    assert format_parset({"msin": "/data/my obs.ms", "x": "a#b"}) == "msin='/data/my obs.ms'\nx='a#b'\n"


def test_builders_are_deterministic(cal: CalibrationConfig) -> None:
    kw = dict(skymodel=SKY, directions=["A", "B"], h5parm=H5, cal=cal, extra={"ddecal.coreconstraint": 500.0})
    assert format_parset(ddecal_parset(MsView(MS), **kw)) == format_parset(ddecal_parset(MsView(MS), **kw))


def _ddecal(cal: CalibrationConfig, kwargs: dict) -> dict[str, str]:
    """``ddecal_parset`` of two directions with ``kwargs`` changed, those of :class:`MsView` going to it."""
    names = {f.name for f in dataclasses.fields(MsView)}
    view = {"ms": MS, **{k: v for k, v in kwargs.items() if k in names}}
    base = dict(skymodel=SKY, directions=["A", "B"], h5parm=H5, cal=cal)
    return ddecal_parset(MsView(**view), **{**base, **{k: v for k, v in kwargs.items() if k not in names}})


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(skymodel="/sky/model.sky"), ["/sky/model.sky", ".skymodel", ".txt"]),
        (dict(directions=[]), ["ddecal.directions", "non-empty"]),
        (dict(directions="CygA"), ["ddecal.directions", "'CygA'"]),
        (dict(directions=["A", "B", "A"]), ["'A'", "more than one direction"]),
        (dict(directions=["A,B"]), ["'A,B'", "patch name"]),
        (dict(directions=[()]), ["empty direction"]),
        (dict(data_column="DATA; rm"), ["data_column", "DATA; rm"]),
        (dict(extra={"ddecal.bad key": 1}), ["dp3.extra", "ddecal.bad key"]),
    ],
)
def test_ddecal_bad_input_is_a_user_error(cal: CalibrationConfig, kwargs: dict, words: list[str]) -> None:
    with pytest.raises(UserError) as info:
        _ddecal(cal, kwargs)
    msg = str(info.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(start_slot=-1), ["start_slot = -1"]),
        (dict(n_slots=0), ["n_slots = 0"]),
        (dict(n_slots=2.5), ["n_slots = 2.5"]),
        (dict(h5parm=""), ["ddecal.h5parm", "empty path"]),
        (dict(ms=""), ["msin", "empty path"]),
        (dict(start_slot=0, start_time="2020/01/01/00:00:00"), ["either start_slot or start_time"]),
    ],
)
def test_what_only_code_can_get_wrong_is_a_programming_error(
    cal: CalibrationConfig, kwargs: dict, words: list[str]
) -> None:
    """Chunks, paths and modes come from ddpipe's own code or its checked config: not exit 2."""
    with pytest.raises(ValueError) as info:
        _ddecal(cal, kwargs)
    assert not isinstance(info.value, UserError) and all(w in str(info.value) for w in words)


def test_ms_view_gives_the_msin_keys_in_parset_order() -> None:
    view = MsView(MS, data_column="CORRECTED_DATA", start_time="2020/01/01/00:00:00", n_slots=4)
    assert view.dp3_msin() == {
        "msin": MS,
        "msin.datacolumn": "CORRECTED_DATA",
        "msin.starttime": "2020/01/01/00:00:00",
        "msin.ntimes": "4",
    }
    assert MsView(MS).dp3_msin() == {"msin": MS, "msin.datacolumn": "DATA"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        view.n_slots = 5  # type: ignore[misc]


def test_unknown_mode_and_operation_are_programming_errors(cal: CalibrationConfig) -> None:
    with pytest.raises(ValueError, match="'tec'.*scalarphase"):
        ddecal_parset(MsView(MS), skymodel=SKY, directions=["A"], h5parm=H5, cal=dataclasses.replace(cal, mode="tec"))
    with pytest.raises(ValueError, match="'rotation'"):
        applycal_parset(MsView(MS), h5parm=H5, mode="rotation")
    with pytest.raises(ValueError, match="operation = 'multiply'"):
        h5parmpredict_parset(MsView(MS), skymodel=SKY, h5parm=H5, mode="scalar", out_column="D", operation="multiply")
    with pytest.raises(UserError, match="predict.sourcedb /sky/x.fits"):
        predict_parset(MsView(MS), skymodel="/sky/x.fits", out_column="MODEL_DATA")


def test_argv_rejects_keys_ddpipe_owns_and_bad_threads(cal: CalibrationConfig) -> None:
    p = ddecal_parset(MsView(MS), skymodel=SKY, directions=["A"], h5parm=H5, cal=cal, extra={"checkparset": 0})
    with pytest.raises(UserError, match="'checkparset'"):
        dp3_argv(DP3, p, 1)
    ok = ddecal_parset(MsView(MS), skymodel=SKY, directions=["A"], h5parm=H5, cal=cal)
    with pytest.raises(ValueError, match="numthreads = 0"):
        dp3_argv(DP3, ok, 0)
    with pytest.raises(ValueError, match="non-empty argv list"):
        dp3_argv("DP3", ok, 1)


def test_per_direction_intervals_and_antenna_averaging_reach_every_solve(cal):
    from ddpipe.dp3.parsets import ddecal_chain_parset

    fast = dataclasses.replace(cal, solint=4, solutions_per_direction=(4, 2), antenna_averaging_factors=("CS*:4",))
    slow = dataclasses.replace(cal, mode="diagonal", solint=8)
    p = ddecal_chain_parset(
        MsView("/data/obs.ms"),
        skymodel="/w/sky.skymodel",
        directions=["P1", "P2", "P3"],
        h5parms=["/w/a.h5", "/w/b.h5"],
        cal=dataclasses.replace(cal, solves=(fast, slow)),
        extra={"ddecal.antennaconstraint": "[[CS001HBA0,CS002HBA0]]"},
    )
    assert p["steps"] == "[solve1,solve2]"
    assert p["solve1.solutions_per_direction"] == "[4,2]" and p["solve1.antenna_averaging_factors"] == "[CS*:4]"
    assert "solve2.solutions_per_direction" not in p and "solve2.sourcedb" not in p
    assert p["solve1.keepmodel"] == "true" and p["solve2.reusemodel"] == "[solve1.*]"
    assert "solve2.keepmodel" not in p and "solve2.usebeammodel" not in p
    # a dp3.extra key for "ddecal" goes to every solve of the chain
    assert p["solve1.antennaconstraint"] == p["solve2.antennaconstraint"] == "[[CS001HBA0,CS002HBA0]]"
    assert "ddecal.antennaconstraint" not in p
    assert (p["solve1.h5parm"], p["solve2.h5parm"]) == ("/w/a.h5", "/w/b.h5")
