"""The builders and runner with the real DP3 (the dp3 wheel's DP3.py) on the real tDDECal MS.

tDDECal: LOFAR HBA, 8 stations (RS307HBA fully flagged), 6 time slots, 8 channels;
foursources.skymodel has 4 patches (CygA, source1, source2, source3).
"""

from __future__ import annotations

import dataclasses
import os
import shlex
from pathlib import Path

import h5py
import numpy as np
import pytest
from casacore import tables

from ddpipe.config import CalibrationConfig, load_config
from ddpipe.dp3 import (
    DP3Error,
    DP3Run,
    MsView,
    applycal_parset,
    ddecal_parset,
    dp3_argv,
    dp3_environment,
    find_dp3,
    h5parmpredict_parset,
    predict_parset,
    run_dp3,
)
from ddpipe.errors import UserError

pytestmark = pytest.mark.dp3

PATCHES = ["CygA", "source1", "source2", "source3"]


@pytest.fixture(scope="module")
def dp3() -> list[str]:
    try:
        return find_dp3()
    except UserError as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def cal() -> CalibrationConfig:
    return load_config().calibration


class Runner:
    """Runs parsets with the real DP3, one log per run in ``folder``."""

    def __init__(self, exe: list[str], folder: Path) -> None:
        self.exe, self.folder = exe, folder
        self.env = dp3_environment(cache_dir=folder / "cache")

    def __call__(self, parset: dict[str, str], name: str) -> DP3Run:
        return run_dp3(dp3_argv(self.exe, parset, 1), log_path=self.folder / f"{name}.log", timeout=120, env=self.env)


@pytest.fixture
def run(dp3: list[str], tmp_path: Path) -> Runner:
    return Runner(dp3, tmp_path)


def ms_times(ms: Path) -> np.ndarray:
    with tables.table(str(ms), ack=False) as t:
        return np.unique(t.getcol("TIME"))


def read_gains(h5: Path) -> tuple[np.ndarray, np.ndarray]:
    """Complex gains ``(time, freq, ant, dir[, pol])`` and the time axis from a DP3 H5parm."""
    with h5py.File(h5, "r") as f:
        sol = f["sol000"]
        ph = sol["phase000/val"][:] if "phase000" in sol else 0.0
        amp = sol["amplitude000/val"][:] if "amplitude000" in sol else 1.0
        times = sol[("phase000" if "phase000" in sol else "amplitude000") + "/time"][:]
    return amp * np.exp(1j * ph), times


def seed_gains(h5: Path, rng: np.random.Generator, phase_sigma: float = 0.6) -> None:
    """Overwrite a DP3-written H5parm's solutions with known random gains (weights 1)."""
    with h5py.File(h5, "r+") as f:
        for name, tab in f["sol000"].items():
            if not isinstance(tab, h5py.Group) or "val" not in tab:
                continue
            val = tab["val"]
            if name.startswith("phase"):
                val[...] = rng.normal(0.0, phase_sigma, val.shape)
            elif name.startswith("amplitude"):
                val[...] = rng.uniform(0.7, 1.3, val.shape)
            tab["weight"][...] = 1.0


def test_ddecal_writes_h5parm(real_ms, foursources: Path, cal: CalibrationConfig, run: Runner, tmp_path: Path) -> None:
    ms = real_ms("tDDECal")
    h5 = tmp_path / "chunk_000.h5"
    parset = ddecal_parset(MsView(ms), skymodel=foursources, directions=PATCHES, h5parm=h5, cal=cal)
    result = run(parset, "chunk_000")
    assert result.returncode == 0 and 0 < result.seconds < 60
    log = result.log_path.read_text().splitlines()
    assert log[0] == shlex.join(result.argv) and "checkparset=1" in log[0]
    with h5py.File(h5, "r") as f:
        tab = f["sol000/phase000"]
        assert tab["val"].attrs["AXES"] == b"time,freq,ant,dir"
        assert tab["val"].shape == (6, 1, 8, 4)  # 6 slots (solint 1), nchan 0: one channel block
        assert [d.decode() for d in tab["dir"][:]] == [f"[{p}]" for p in PATCHES]
        with tables.table(str(ms / "ANTENNA"), ack=False) as ant:
            assert [a.decode() for a in tab["ant"][:]] == list(ant.getcol("NAME"))
        np.testing.assert_allclose(tab["time"][:], ms_times(ms), rtol=0, atol=1e-3)
        val = tab["val"][:]
        assert sorted(f["sol000"]) == ["antenna", "phase000", "source"]  # scalarphase: phases only
    assert np.isfinite(val[:, :, :7]).all()  # RS307HBA (index 7) is fully flagged: no solution for it


def test_misspelled_key_fails_thanks_to_checkparset(
    real_ms, foursources: Path, cal: CalibrationConfig, run: Runner, tmp_path: Path
) -> None:
    parset = ddecal_parset(
        MsView(real_ms("tDDECal")),
        skymodel=foursources,
        directions=PATCHES,
        h5parm=tmp_path / "x.h5",
        cal=cal,
        extra={"ddecal.soliint": 2},
    )
    with pytest.raises(DP3Error) as info:
        run(parset, "typo")
    err = info.value
    assert err.returncode == 1 and not err.timed_out and err.signal_name is None
    first = str(err).splitlines()[0]
    assert "ddecal.soliint" in first and str(tmp_path / "typo.log") in first
    assert any("Unused parset keywords" in line for line in err.tail)


def test_chunk_selects_time_slots(
    real_ms, foursources: Path, cal: CalibrationConfig, run: Runner, tmp_path: Path
) -> None:
    ms = real_ms("tDDECal")
    times = ms_times(ms)
    assert len(times) == 6
    h5 = tmp_path / "chunk_001.h5"
    run(
        ddecal_parset(
            MsView(ms, start_slot=2, n_slots=3), skymodel=foursources, directions=PATCHES, h5parm=h5, cal=cal
        ),
        "chunk_001",
    )
    _, sol_times = read_gains(h5)
    np.testing.assert_allclose(sol_times, times[2:5], rtol=0, atol=1e-3)
    # one solution interval of 3 slots over the last chunk: its time is the chunk's middle slot
    h5b = tmp_path / "chunk_002.h5"
    run(
        ddecal_parset(
            MsView(ms, start_slot=3, n_slots=3),
            skymodel=foursources,
            directions=PATCHES,
            h5parm=h5b,
            cal=dataclasses.replace(cal, solint=3),
        ),
        "chunk_002",
    )
    _, sol_times = read_gains(h5b)
    np.testing.assert_allclose(sol_times, times[4:5], rtol=0, atol=1e-3)


@pytest.mark.parametrize("mode", ["scalarphase", "diagonal"])
def test_corruption_and_correction_follow_v_eq_g_m_gH(
    real_ms, foursources: Path, cal: CalibrationConfig, run: Runner, tmp_path: Path, mode: str
) -> None:
    """h5parmpredict and applycal(invert=false) give V = g_p M g_q^H; applycal(invert=true) undoes it."""
    ms = real_ms("tDDECal")
    h5 = tmp_path / "gains.h5"
    run(
        ddecal_parset(
            MsView(ms),
            skymodel=foursources,
            directions=PATCHES,
            h5parm=h5,
            cal=dataclasses.replace(cal, mode=mode, maxiter=1),
        ),
        "layout",
    )
    seed_gains(h5, np.random.default_rng(7))
    run(predict_parset(MsView(ms), skymodel=foursources, out_column="MODEL_S1", sources=["source1"]), "predict")
    run(
        h5parmpredict_parset(
            MsView(ms), skymodel=foursources, h5parm=h5, mode=mode, out_column="HPRED_S1", directions=["source1"]
        ),
        "h5parmpredict",
    )
    run(
        applycal_parset(
            MsView(ms, data_column="MODEL_S1"),
            h5parm=h5,
            mode=mode,
            out_column="CORRUPT_S1",
            direction="source1",
            invert=False,
        ),
        "corrupt",
    )
    run(
        applycal_parset(
            MsView(ms, data_column="CORRUPT_S1"), h5parm=h5, mode=mode, out_column="BACK_S1", direction="source1"
        ),
        "correct",
    )
    with tables.table(str(ms), ack=False) as t:
        a1, a2, time = t.getcol("ANTENNA1"), t.getcol("ANTENNA2"), t.getcol("TIME")
        model, hpred, corrupt, back = (t.getcol(c) for c in ("MODEL_S1", "HPRED_S1", "CORRUPT_S1", "BACK_S1"))
    gains, sol_times = read_gains(h5)
    g = gains[:, 0, :, PATCHES.index("source1")]  # (time, ant[, pol])
    if g.ndim == 2:
        g = np.stack([g, g], axis=-1)
    ti = np.searchsorted(sol_times, time)
    gp, gq = g[ti, a1], g[ti, a2]  # (row, pol)
    jones = np.stack(
        [
            gp[:, 0] * gq[:, 0].conj(),
            gp[:, 0] * gq[:, 1].conj(),
            gp[:, 1] * gq[:, 0].conj(),
            gp[:, 1] * gq[:, 1].conj(),
        ],
        axis=-1,
    )
    expected = jones[:, None, :] * model  # (row, chan, corr)
    scale = np.abs(model).max()
    assert scale > 1.0  # source1 is 20 Jy
    assert np.abs(corrupt - model).max() > 0.3 * scale  # the gains are far from unity
    assert np.abs(corrupt - expected).max() < 1e-5 * scale
    assert np.abs(hpred - expected).max() < 1e-5 * scale
    assert np.abs(back - model).max() < 1e-5 * scale


def test_dd_phases_are_recovered_and_subtracted(
    real_ms, foursources: Path, cal: CalibrationConfig, run: Runner, tmp_path: Path
) -> None:
    """Corrupt the 4-direction model with known phases, solve with ddecal, get them back; subtract → 0."""
    ms = real_ms("tDDECal")
    truth = tmp_path / "truth.h5"
    solve = dataclasses.replace(cal, maxiter=300, tolerance=1e-8)
    run(
        ddecal_parset(
            MsView(ms), skymodel=foursources, directions=PATCHES, h5parm=truth, cal=dataclasses.replace(cal, maxiter=1)
        ),
        "layout",
    )
    seed_gains(truth, np.random.default_rng(42), phase_sigma=0.6)
    run(
        h5parmpredict_parset(
            MsView(ms), skymodel=foursources, h5parm=truth, mode="scalarphase", out_column="CORRUPTED"
        ),
        "corrupt",
    )
    solved = tmp_path / "solved.h5"
    run(
        ddecal_parset(
            MsView(ms, data_column="CORRUPTED"), skymodel=foursources, directions=PATCHES, h5parm=solved, cal=solve
        ),
        "solve",
    )
    g_true, _ = read_gains(truth)
    g_solved, _ = read_gains(solved)

    def referenced(g: np.ndarray) -> np.ndarray:  # phases are only defined relative to a reference station
        return g * g[:, :, :1].conj() / np.abs(g[:, :, :1])

    # slots 0-3, stations 0-6: slots 4-5 leave RS106HBA a single baseline (too few for 4 directions)
    err = np.abs(referenced(g_true) - referenced(g_solved))[:4, :, :7]
    before = np.abs(referenced(g_true) - 1.0)[:4, :, :7]
    assert before.max() > 1.0
    assert err.max() < 1e-2, err.max()

    run(
        h5parmpredict_parset(
            MsView(ms, data_column="CORRUPTED"),
            skymodel=foursources,
            h5parm=truth,
            mode="scalarphase",
            out_column="RESIDUAL",
            operation="subtract",
        ),
        "subtract",
    )
    with tables.table(str(ms), ack=False) as t:
        corrupted, residual = t.getcol("CORRUPTED"), t.getcol("RESIDUAL")
    assert np.abs(residual).max() < 1e-5 * np.abs(corrupted).max()
