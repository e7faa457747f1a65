"""End to end: the simulated MS, its sky model and truth H5parm; reproducibility and --no-corrupt."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import casacore.tables as pt
import numpy as np
import pytest

from ddpipe.errors import UserError
from ddpipe.simulate import SimulationSpec, output_paths, simulate
from ddpipe.simulate.predict import components_from_skymodel, predict_rows
from ddpipe.sky.skymodel import read_skymodel
from ddpipe.solutions import evaluate_gains, read_h5parm

SMALL = SimulationSpec(stations=8, channels=4, times=12, directions=3, sources_per_direction=2, seed=11)


def columns(ms: Path, *names: str) -> dict[str, np.ndarray]:
    with pt.table(str(ms), ack=False) as t:
        return {n: t.getcol(n) for n in names}


def test_ms_structure(tmp_path):
    r = simulate(tmp_path / "sim.ms", replace(SMALL, amplitude_scale=0.05))
    assert (r.ms, r.skymodel, r.truth) == output_paths(tmp_path / "sim.ms")
    assert r.skymodel.name == "sim.skymodel" and r.truth.name == "sim.truth.h5"
    nbl = 8 * 7 // 2
    assert (r.nbaselines, r.nrows, r.nvis, r.ndirections, r.nsources) == (nbl, nbl * 12, nbl * 12 * 4, 3, 6)
    with pt.table(str(r.ms), ack=False) as t:
        assert t.nrows() == nbl * 12
        for col in ("DATA", "FLAG", "WEIGHT_SPECTRUM", "WEIGHT", "SIGMA", "FLAG_ROW", "UVW", "TIME"):
            assert col in t.colnames()
        assert t.getcolkeyword("UVW", "MEASINFO")["Ref"] == "J2000"
        assert t.getcell("DATA", 0).shape == (4, 4) and t.getcell("DATA", 0).dtype == np.complex64
        a1, a2, time = t.getcol("ANTENNA1"), t.getcol("ANTENNA2"), t.getcol("TIME")
        assert np.all(a1 < a2)  # no autocorrelations
        assert np.all(np.diff(time) >= 0) and len(np.unique(time)) == 12  # time-major
        np.testing.assert_allclose(np.diff(np.unique(time)), 10.0)
        assert not t.getcol("FLAG").any()
        np.testing.assert_allclose(t.getcol("WEIGHT_SPECTRUM"), 1 / 0.5**2)
        np.testing.assert_allclose(t.getcol("SIGMA"), 0.5)
    for sub, rows in (
        ("ANTENNA", 8),
        ("FEED", 8),
        ("SPECTRAL_WINDOW", 1),
        ("POLARIZATION", 1),
        ("DATA_DESCRIPTION", 1),
        ("FIELD", 1),
        ("OBSERVATION", 1),
    ):
        with pt.table(str(r.ms / sub), ack=False) as t:
            assert t.nrows() == rows, sub
    with pt.table(str(r.ms / "POLARIZATION"), ack=False) as t:
        assert list(t.getcell("CORR_TYPE", 0)) == [9, 10, 11, 12]  # XX XY YX YY
    with pt.table(str(r.ms / "OBSERVATION"), ack=False) as t:
        assert t.getcell("TELESCOPE_NAME", 0) == "LOFAR"
    with pt.table(str(r.ms / "SPECTRAL_WINDOW"), ack=False) as t:
        np.testing.assert_allclose(t.getcell("CHAN_FREQ", 0), 148.5e6 + 195312.5 * np.arange(4))
    # the team's MS inspector reads it as a normal observation
    from ddpipe.ms.inspect import inspect_ms

    info = inspect_ms(r.ms)
    assert (len(info.antenna_names), info.n_baselines, info.n_times, info.n_slots) == (8, nbl, 12, 12)
    assert not info.has_autocorrelations and info.gaps == () and info.flagged_fraction == 0.0
    assert info.correlations == ("XX", "XY", "YX", "YY") and info.phase_centre_frame == "J2000"
    assert info.interval == 10.0 and info.has_weight_spectrum and info.time_first_utc.startswith("2026-01-01T00:00:05")


def test_sky_model_and_truth(tmp_path):
    r = simulate(tmp_path / "sim.ms", replace(SMALL, amplitude_scale=0.05))
    sky = read_skymodel(r.skymodel)
    assert sky.patch_names() == ["P1", "P2", "P3"] and len(sky.sources) == 6
    with pt.table(str(r.ms / "FIELD"), ack=False) as t:
        ra0, dec0 = t.getcol("PHASE_DIR")[0, 0]
    for s in sky.sources:
        sep = np.arccos(np.sin(s.dec) * np.sin(dec0) + np.cos(s.dec) * np.cos(dec0) * np.cos(s.ra - ra0))
        assert np.degrees(sep) < 1.5  # fits a 1024 px x 10-20 arcsec image
    truth = read_h5parm(r.truth)
    with pt.table(str(r.ms / "ANTENNA"), ack=False) as t:
        assert truth.antennas == tuple(t.getcol("NAME"))
    assert truth.directions == ("[P1]", "[P2]", "[P3]")
    ph = truth.soltabs["phase000"]
    assert ph.axes == ("time", "freq", "ant", "dir") and ph.values.shape == (12, 4, 8, 3)
    np.testing.assert_allclose(ph.time, np.unique(columns(r.ms, "TIME")["TIME"]))
    assert "amplitude000" in truth.soltabs
    quiet = simulate(tmp_path / "flat.ms", SMALL)
    assert sorted(read_h5parm(quiet.truth).soltabs) == ["phase000"]  # amplitudes constant: no soltab


def test_data_is_the_corrupted_sky(tmp_path):
    """Noiseless DATA == per-baseline DFT of the written sky × g_p g_q^* from the written truth."""
    r = simulate(tmp_path / "sim.ms", replace(SMALL, noise=0.0, amplitude_scale=0.1))
    c = columns(r.ms, "DATA", "UVW", "TIME", "ANTENNA1", "ANTENNA2")
    with pt.table(str(r.ms / "FIELD"), ack=False) as t:
        centre = tuple(t.getcol("PHASE_DIR")[0, 0])
    freqs = 148.5e6 + 195312.5 * np.arange(4)
    sky = read_skymodel(r.skymodel)
    comps = components_from_skymodel(sky, freqs, centre)
    g = evaluate_gains(read_h5parm(r.truth), c["TIME"], freqs, directions=sky.patch_names())[..., 0]
    rows = np.arange(len(c["TIME"]))
    want = predict_rows(
        c["UVW"], freqs, comps, baseline_gains=g[rows, :, c["ANTENNA1"]] * np.conj(g[rows, :, c["ANTENNA2"]])
    )
    np.testing.assert_allclose(c["DATA"], want, atol=2e-6 * np.abs(want).max())
    assert np.abs(c["DATA"][..., 1:3]).max() < 1e-6  # unpolarised sky


def test_no_corrupt_keeps_sky_and_noise(tmp_path):
    runs = {}
    for corrupt in (True, False):
        for noise in (0.0, 0.8):
            r = simulate(tmp_path / f"c{int(corrupt)}n{noise}.ms", replace(SMALL, corrupt=corrupt, noise=noise))
            runs[corrupt, noise] = r
    data = {k: columns(r.ms, "DATA")["DATA"].astype(np.complex128) for k, r in runs.items()}
    noise_c = data[True, 0.8] - data[True, 0.0]
    noise_u = data[False, 0.8] - data[False, 0.0]
    np.testing.assert_allclose(noise_c, noise_u, atol=1e-5)  # the very same noise
    for part in (noise_c.real, noise_c.imag):
        assert abs(part.std() - 0.8) < 0.03 and abs(part.mean()) < 0.02
    assert runs[True, 0.8].skymodel.read_text() == runs[False, 0.8].skymodel.read_text()
    assert np.abs(data[True, 0.0] - data[False, 0.0]).max() > 1.0  # the gains did corrupt
    flat = read_h5parm(runs[False, 0.0].truth).soltabs["phase000"].values
    assert not flat.any()  # --no-corrupt: the truth is unit gains


def test_seed_reproducibility(tmp_path):
    a = simulate(tmp_path / "a.ms", SMALL)
    b = simulate(tmp_path / "b.ms", SMALL)
    c = simulate(tmp_path / "c.ms", replace(SMALL, seed=12))
    da, db, dc = (columns(r.ms, "DATA", "UVW") for r in (a, b, c))
    np.testing.assert_array_equal(da["DATA"], db["DATA"])
    assert a.skymodel.read_text() == b.skymodel.read_text() != c.skymodel.read_text()
    assert np.abs(da["DATA"] - dc["DATA"]).mean() > 0.1
    assert np.abs(da["UVW"] - dc["UVW"]).max() > 1.0  # the layout is seeded too


def test_overwrite(tmp_path):
    r = simulate(tmp_path / "sim.ms", SMALL)
    for p in (r.ms, r.skymodel, r.truth):
        assert p.exists()
    with pytest.raises(UserError, match="already exists.*--overwrite"):
        simulate(tmp_path / "sim.ms", SMALL)
    r.ms.rename(tmp_path / "moved.ms")  # any one existing output is enough to refuse
    with pytest.raises(UserError, match="sim.skymodel already exists"):
        simulate(tmp_path / "sim.ms", SMALL)
    r2 = simulate(tmp_path / "sim.ms", replace(SMALL, overwrite=True, seed=5))
    assert columns(r2.ms, "DATA")["DATA"].shape[0] == 28 * 12
    assert sorted(p.name for p in tmp_path.iterdir()) == ["moved.ms", "sim.ms", "sim.skymodel", "sim.truth.h5"]


def test_given_sky_model(tmp_path, foursources):
    r = simulate(tmp_path / "four.ms", replace(SMALL, skymodel=str(foursources), noise=0.0))
    truth = read_h5parm(r.truth)
    assert truth.directions == ("[CygA]", "[source1]", "[source2]", "[source3]")
    sky = read_skymodel(foursources)
    with pt.table(str(r.ms / "FIELD"), ack=False) as t:
        ra0, dec0 = t.getcol("PHASE_DIR")[0, 0]
    ras, decs = np.array([s.ra for s in sky.sources]), np.array([s.dec for s in sky.sources])
    assert ras.min() < ra0 < ras.max() and decs.min() < dec0 < decs.max()  # centred on the sky model
    assert [s.name for s in read_skymodel(r.skymodel).sources] == [s.name for s in sky.sources]


def test_bad_specs(tmp_path, foursources):
    bad = [
        (replace(SMALL, stations=1), "stations=1"),
        (replace(SMALL, channels=0), "channels=0"),
        (replace(SMALL, noise=-1.0), "noise=-1.0"),
        (replace(SMALL, layout="vla"), "layout='vla'"),
        (replace(SMALL, dec=2.0), "dec="),
        (replace(SMALL, start="yesterday"), "start='yesterday'"),
        (replace(SMALL, skymodel=str(tmp_path / "none.skymodel")), "none.skymodel"),
    ]
    for spec, message in bad:
        with pytest.raises(UserError, match=message):
            simulate(tmp_path / "x.ms", spec)
    assert not list(tmp_path.iterdir())  # nothing left behind
    nopatch = tmp_path / "nopatch.skymodel"
    nopatch.write_text("# (Name, Type, Ra, Dec, I) = format\nA, POINT, 01:30:00, +31.00.00, 1.0\n")
    with pytest.raises(UserError, match="no patch"):
        simulate(tmp_path / "y.ms", replace(SMALL, skymodel=str(nopatch)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nopatch.skymodel"]
