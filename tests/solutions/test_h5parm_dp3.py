"""H5parm interop with the real DP3 on the real tDDECal MS (8 LOFAR HBA stations, 6 slots, 8 channels).

DP3 writes → read_h5parm reads; write_h5parm writes → DP3 applycal and
h5parmpredict apply exactly what evaluate_gains says.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import casacore.tables as pt
import numpy as np
import pytest
from solkit import dp3_applycal

from ddpipe.simulate.predict import components_from_skymodel, predict_rows
from ddpipe.sky.skymodel import read_skymodel
from ddpipe.solutions import SolTab, Solutions, evaluate_gains, merge_along_time, read_h5parm, write_h5parm
from ddpipe.solutions.merge import chain_soltabs

pytestmark = pytest.mark.dp3

PATCHES = ("CygA", "source1", "source2", "source3")
DIRS = "[" + ",".join(f"[{p}]" for p in PATCHES) + "]"


def ms_meta(ms: Path) -> dict:
    with pt.table(str(ms), ack=False) as t:
        meta = {k: t.getcol(k) for k in ("TIME", "ANTENNA1", "ANTENNA2", "UVW", "DATA", "FLAG")}
    with pt.table(str(ms / "ANTENNA"), ack=False) as t:
        meta["names"] = tuple(t.getcol("NAME"))
        meta["positions"] = t.getcol("POSITION")
    with pt.table(str(ms / "SPECTRAL_WINDOW"), ack=False) as t:
        meta["freqs"] = t.getcol("CHAN_FREQ")[0]
    with pt.table(str(ms / "FIELD"), ack=False) as t:
        meta["centre"] = tuple(t.getcol("PHASE_DIR")[0, 0])
    meta["times"] = np.unique(meta["TIME"])
    return meta


def ddecal(ms: Path, sky: Path, h5: Path, mode: str = "scalarphase", **keys: str) -> dict[str, str]:
    p = {
        "msin": str(ms),
        "msout": "",
        "steps": "[ddecal]",
        "ddecal.type": "ddecal",
        "ddecal.mode": mode,
        "ddecal.sourcedb": str(sky),
        "ddecal.directions": DIRS,
        "ddecal.h5parm": str(h5),
        "ddecal.usebeammodel": "false",
    }
    p.update({k.replace("__", "."): v for k, v in keys.items()})
    return p


def test_read_what_ddecal_writes(real_ms, foursources, dp3, tmp_path):
    ms = real_ms("tDDECal")
    meta = ms_meta(ms)
    dp3(ddecal(ms, foursources, tmp_path / "diag.h5", mode="diagonal", ddecal__solint="2", ddecal__nchan="4"), "diag")
    sol = read_h5parm(tmp_path / "diag.h5")
    assert sol.antennas == meta["names"]
    np.testing.assert_allclose(sol.antenna_positions, meta["positions"], atol=1.0)  # DP3 stores float32
    assert sol.directions == tuple(f"[{p}]" for p in PATCHES)
    sky = read_skymodel(foursources)
    np.testing.assert_allclose(sol.direction_radec, [sky.patch_centre(p) for p in PATCHES], atol=1e-7)
    assert sorted(sol.soltabs) == ["amplitude000", "phase000"]
    ph = sol.soltabs["phase000"]
    assert (ph.kind, ph.axes, ph.pol) == ("phase", ("time", "freq", "ant", "dir", "pol"), ("XX", "YY"))
    assert ph.values.shape == (3, 2, 8, 4, 2) and ph.weights.shape == ph.values.shape
    np.testing.assert_allclose(ph.time, meta["times"].reshape(3, 2).mean(axis=1), atol=1e-3)
    np.testing.assert_allclose(ph.freq, meta["freqs"].reshape(2, 4).mean(axis=1), rtol=1e-9)
    assert sol.soltabs["amplitude000"].kind == "amplitude"
    g = evaluate_gains(sol, meta["times"], meta["freqs"])
    assert g.shape == (6, 8, 8, 4, 2)
    assert np.isfinite(g[:, :, :7]).all()  # RS307HBA (last) is fully flagged: DP3 leaves it NaN


def test_merged_chunks_equal_one_solve(real_ms, foursources, dp3, tmp_path):
    """Solving slots 0-1 and 2-5 apart and merging gives the solutions of one run over all six."""
    ms = real_ms("tDDECal")
    dp3(ddecal(ms, foursources, tmp_path / "all.h5", ddecal__solint="2"), "all")
    dp3(
        ddecal(ms, foursources, tmp_path / "c0.h5", ddecal__solint="2", msin__starttimeslot="0", msin__ntimes="2"), "c0"
    )
    dp3(
        ddecal(ms, foursources, tmp_path / "c1.h5", ddecal__solint="2", msin__starttimeslot="2", msin__ntimes="4"), "c1"
    )
    whole = read_h5parm(tmp_path / "all.h5")
    merged = merge_along_time([read_h5parm(tmp_path / "c1.h5"), read_h5parm(tmp_path / "c0.h5")])
    a, b = whole.soltabs["phase000"], merged.soltabs["phase000"]
    np.testing.assert_array_equal(a.time, b.time)
    np.testing.assert_allclose(b.values, a.values, atol=1e-6, equal_nan=True)
    write_h5parm(tmp_path / "merged.h5", merged)
    shape = read_h5parm(tmp_path / "merged.h5").soltabs["phase000"].values.shape
    assert shape == (3, 8, 8, 4)  # DP3's nchan default 1: a solution per channel


def known_solutions(meta: dict, seed: int, ndir: int, pol: bool) -> Solutions:
    """Random gains on a grid coarser than the MS: 3 solution times, 2 solution frequencies."""
    rng = np.random.default_rng(seed)
    nant = len(meta["names"])
    time = meta["times"].reshape(3, 2).mean(axis=1)
    freq = meta["freqs"].reshape(2, 4).mean(axis=1)
    axes = ("time", "freq", "ant", "dir") + (("pol",) if pol else ())
    shape = (3, 2, nant, ndir) + ((2,) if pol else ())
    dirs = tuple(f"[{p}]" for p in PATCHES[:ndir])

    def tab(kind: str, values: np.ndarray) -> SolTab:
        return SolTab(
            kind=kind,
            axes=axes,
            values=values,
            weights=np.ones(shape, np.float32),
            time=time,
            freq=freq,
            ant=meta["names"],
            dir=dirs,
            pol=("XX", "YY") if pol else None,
        )

    return Solutions(
        antennas=meta["names"],
        antenna_positions=meta["positions"],
        directions=dirs,
        direction_radec=np.zeros((ndir, 2)),
        soltabs={
            "phase000": tab("phase", rng.uniform(-np.pi, np.pi, shape)),
            "amplitude000": tab("amplitude", rng.uniform(0.6, 1.4, shape)),
        },
    )


def test_applycal_applies_what_evaluate_gains_says(real_ms, dp3, tmp_path):
    ms = real_ms("tDDECal")
    meta = ms_meta(ms)
    sol = known_solutions(meta, seed=7, ndir=1, pol=True)
    write_h5parm(tmp_path / "known.h5", sol)
    corrected = dp3_applycal(dp3, ms, tmp_path / "known.h5", ["amplitude000", "phase000"], "CygA")
    g = evaluate_gains(sol, meta["TIME"], meta["freqs"])[..., 0, :]  # (row, chan, ant, pol)
    it = np.arange(len(meta["TIME"]))
    gp = g[it, :, meta["ANTENNA1"]]  # (row, chan, pol)
    gq = g[it, :, meta["ANTENNA2"]]
    denom = np.stack(
        [
            gp[..., 0] * np.conj(gq[..., 0]),
            gp[..., 0] * np.conj(gq[..., 1]),
            gp[..., 1] * np.conj(gq[..., 0]),
            gp[..., 1] * np.conj(gq[..., 1]),
        ],
        axis=-1,
    )
    want = meta["DATA"] / denom
    ok = ~meta["FLAG"]
    assert ok.sum() > 1000
    np.testing.assert_allclose(corrected[ok], want[ok], rtol=2e-5, atol=1e-5 * np.abs(want[ok]).max())


def test_h5parmpredict_corrupts_like_our_predict(real_ms, foursources, dp3, tmp_path):
    """DP3 h5parmpredict with a written H5parm == ddpipe's predict × g_p g_q^* per direction."""
    ms = real_ms("tDDECal")
    meta = ms_meta(ms)
    sol = known_solutions(meta, seed=8, ndir=4, pol=False)
    sol = replace(sol, soltabs={"phase000": sol.soltabs["phase000"]})  # scalarphase-like
    write_h5parm(tmp_path / "known.h5", sol)
    dp3(
        {
            "msin": str(ms),
            "msout": ".",
            "msout.datacolumn": "PRED_DP3",
            "steps": "[hp]",
            "hp.type": "h5parmpredict",
            "hp.sourcedb": str(foursources),
            "hp.applycal.parmdb": str(tmp_path / "known.h5"),
            "hp.applycal.correction": "phase000",
            "hp.usebeammodel": "false",
        },
        "h5parmpredict",
    )
    with pt.table(str(ms), ack=False) as t:
        dp3_model = t.getcol("PRED_DP3")
    comps = components_from_skymodel(read_skymodel(foursources), meta["freqs"], meta["centre"], directions=PATCHES)
    g = evaluate_gains(sol, meta["TIME"], meta["freqs"], directions=PATCHES)[..., 0]  # (row, chan, ant, dir)
    rows = np.arange(len(meta["TIME"]))
    bl_gains = g[rows, :, meta["ANTENNA1"]] * np.conj(g[rows, :, meta["ANTENNA2"]])  # (row, chan, dir)
    ours = predict_rows(meta["UVW"], meta["freqs"], comps, baseline_gains=bl_gains)
    scale = np.abs(ours).max()
    assert np.abs(dp3_model - ours).max() < 1e-4 * scale
    uncorrupted = predict_rows(meta["UVW"], meta["freqs"], comps)
    assert np.abs(dp3_model - uncorrupted).max() > 0.1 * scale  # the gains did something


def chained_solutions(meta: dict) -> Solutions:
    """A chain of two scalar solves as ddpipe writes it: phase000 (fine grid), phase001 and amplitude000 (coarse)."""
    fine = known_solutions(meta, seed=11, ndir=2, pol=False)
    fine = replace(fine, soltabs={"phase000": fine.soltabs["phase000"]})
    coarse = known_solutions(meta, seed=12, ndir=2, pol=False)
    tabs = {
        name: replace(
            tab,
            values=tab.values[:1, :1],
            weights=tab.weights[:1, :1],
            time=tab.time[:1],
            freq=tab.freq[:1],
        )
        for name, tab in coarse.soltabs.items()
    }
    return chain_soltabs([fine, replace(coarse, soltabs=tabs)])


@pytest.mark.parametrize(
    "pol, tables",
    [
        (False, ("phase000",)),  # scalarphase
        (False, ("amplitude000",)),  # scalaramplitude
        (False, ("amplitude000", "phase000")),  # scalar
        (True, ("phase000",)),  # diagonalphase
        (True, ("amplitude000",)),  # diagonalamplitude
        (False, ("phase000", "phase001", "amplitude000")),  # a chain of solves
    ],
)
def test_applycal_applies_each_soltab_kind(real_ms, dp3, tmp_path, pol, tables):
    ms = real_ms("tDDECal")
    meta = ms_meta(ms)
    if "phase001" in tables:
        sol = chained_solutions(meta)
    else:
        sol = known_solutions(meta, seed=len(tables) + 3 * pol, ndir=2, pol=pol)
        sol = replace(sol, soltabs={t: sol.soltabs[t] for t in tables})
    write_h5parm(tmp_path / "known.h5", sol)
    corrected = dp3_applycal(dp3, ms, tmp_path / "known.h5", tables, "source1")
    g = evaluate_gains(sol, meta["TIME"], meta["freqs"], directions=["source1"])[..., 0, :]  # (row, chan, ant, pol)
    it = np.arange(len(meta["TIME"]))
    gp, gq = g[it, :, meta["ANTENNA1"]], g[it, :, meta["ANTENNA2"]]
    denom = np.stack([gp[..., a] * np.conj(gq[..., b]) for a in (0, 1) for b in (0, 1)], axis=-1)
    want = meta["DATA"] / denom
    ok = ~meta["FLAG"]
    assert ok.sum() > 1000 and np.abs(want[ok] - meta["DATA"][ok]).max() > 0.1 * np.abs(want[ok]).max()
    np.testing.assert_allclose(corrected[ok], want[ok], rtol=2e-5, atol=1e-5 * np.abs(want[ok]).max())
