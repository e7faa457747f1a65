"""lsmtool (the LOFAR sky-model tool, a test dependency from PyPI) and ddpipe read each other's sky models.

lsmtool loads every model ddpipe writes with the same sources, fluxes, shapes,
spectra and patches; ddpipe reads every model lsmtool writes, also after its
``group`` operations (tessellate, cluster, single), with the sources, fluxes and
patches lsmtool holds. The DP3 checks predict the real tDDECal MS from both
sides of each round trip: the visibilities agree to 1e-6 of the peak.
"""

from __future__ import annotations

import math
from pathlib import Path

import lsmtool
import numpy as np
import pytest
from skysamples import COLUMNS, LOFAR_LIKE, dp3_predict, lofar_like, random_model

from ddpipe.sky.model import SkyModel
from ddpipe.sky.skymodel import parse_skymodel, read_skymodel, write_skymodel

casacore_tables = pytest.importorskip("casacore.tables")


def assert_lsmtool_holds(lsm: lsmtool.skymodel.SkyModel, model: SkyModel) -> None:
    """lsmtool's table has ``model``'s sources (lsmtool orders them by patch), fluxes, shapes, spectra, patches."""
    t = lsm.table
    assert sorted(t["Name"]) == sorted(s.name for s in model.sources)
    rows = {str(row["Name"]): row for row in t}
    for s in model.sources:
        row = rows[s.name]
        assert row["Ra"] == pytest.approx(math.degrees(s.ra), abs=1e-9)
        assert row["Dec"] == pytest.approx(math.degrees(s.dec), abs=1e-9)
        assert (row["I"], row["Type"], row["Patch"]) == (s.i, s.type, s.patch)
        assert (row["MajorAxis"], row["MinorAxis"], row["Orientation"]) == (s.major_axis, s.minor_axis, s.orientation)
        terms = np.ma.compressed(np.ma.atleast_1d(row["SpectralIndex"]))
        # lsmtool pads the shorter lists and writes [] as [0.0]: same spectrum
        assert list(terms[: len(s.spectral_index)]) == list(s.spectral_index)
        assert not np.any(terms[len(s.spectral_index) :])
        assert row["LogarithmicSI"] == ("true" if s.log_si else "false")
        if "OrientationIsAbsolute" in t.colnames:
            assert row["OrientationIsAbsolute"] == ("true" if s.orientation_is_absolute else "false")
    positions = lsm.getPatchPositions()
    assert sorted(positions) == sorted(model.patch_names())
    for name in model.patch_names():
        ra, dec = model.patch_centre(name)
        assert positions[name][0].deg == pytest.approx(math.degrees(ra), abs=1e-9)
        assert positions[name][1].deg == pytest.approx(math.degrees(dec), abs=1e-9)


def assert_ddpipe_holds(model: SkyModel, lsm: lsmtool.skymodel.SkyModel) -> None:
    """ddpipe's reading of lsmtool's file has lsmtool's sources, fluxes and patches.

    Patch positions as lsmtool writes them: hh:mm:ss.ssss (0.0015 arcsec) and dd.mm.ss.sss.
    """
    t = lsm.table
    assert [s.name for s in model.sources] == list(t["Name"])
    assert [s.i for s in model.sources] == list(t["I"])
    assert [s.patch for s in model.sources] == list(t["Patch"])
    np.testing.assert_allclose([math.degrees(s.ra) for s in model.sources], t["Ra"], rtol=0, atol=1e-9)
    np.testing.assert_allclose([math.degrees(s.dec) for s in model.sources], t["Dec"], rtol=0, atol=1e-9)
    positions = lsm.getPatchPositions()
    assert model.patch_names() == sorted(positions, key=model.patch_names().index)
    assert sorted(model.patch_names()) == sorted(positions)
    for p in model.patches:
        assert math.degrees(p.ra) == pytest.approx(positions[p.name][0].deg, abs=1e-6)
        assert math.degrees(p.dec) == pytest.approx(positions[p.name][1].deg, abs=1e-6)


@pytest.mark.parametrize("which", ["foursources", "lofar_like", "random", "columns"])
def test_lsmtool_reads_what_ddpipe_writes(which: str, foursources: Path, tmp_path: Path) -> None:
    if which == "columns":  # every optional column: rotation measures, categories, absolute orientations
        model = parse_skymodel(COLUMNS)
    else:
        model = {"foursources": lambda: read_skymodel(foursources), "lofar_like": lofar_like, "random": random_model}[
            which
        ]()
    path = write_skymodel(model, tmp_path / "ddpipe.skymodel")
    lsm = lsmtool.load(str(path))
    assert_lsmtool_holds(lsm, model)
    if which == "columns":
        rows = {str(row["Name"]): row for row in lsm.table}
        for s in model.sources:
            row = rows[s.name]
            assert (row["Category"] if s.category is not None else None) == s.category
            if s.rotation_measure is not None:
                assert (row["RotationMeasure"], row["PolarizedFraction"], row["PolarizationAngle"]) == (
                    s.rotation_measure,
                    s.polarized_fraction,
                    s.polarization_angle,
                )


def lsmtool_writes(model_path: Path, operation: str, out: Path) -> lsmtool.skymodel.SkyModel:
    """lsmtool loads ``model_path``, regroups it by ``operation`` and writes ``out``."""
    lsm = lsmtool.load(str(model_path))
    if operation == "tessellate":
        lsm.group("tessellate", targetFlux=3.0, method="wmean")
    elif operation == "cluster":
        lsm.group("cluster", numClusters=3)
    elif operation == "single":
        lsm.group("single", root="All")
    elif operation == "every":
        lsm.group("every")
    lsm.write(str(out), clobber=True)
    return lsm


@pytest.mark.parametrize("operation", ["none", "tessellate", "cluster", "single", "every"])
def test_ddpipe_reads_what_lsmtool_writes(operation: str, tmp_path: Path) -> None:
    source = write_skymodel(random_model(), tmp_path / "ddpipe.skymodel")
    lsm = lsmtool_writes(source, operation, tmp_path / "lsmtool.skymodel")
    model = read_skymodel(tmp_path / "lsmtool.skymodel")
    assert_ddpipe_holds(model, lsm)
    if operation in ("tessellate", "cluster"):
        assert 1 < len(model.patch_names()) < len(model.sources)  # a real regrouping
    # and ddpipe writes it back as lsmtool wrote it
    again = lsmtool.load(str(write_skymodel(model, tmp_path / "again.skymodel")))
    assert_lsmtool_holds(again, model)


@pytest.mark.dp3
def test_ddpipe_lsmtool_ddpipe_predicts_the_same(real_ms, tmp_path: Path) -> None:
    ms = real_ms("tDDECal")
    original = write_skymodel(lofar_like(), tmp_path / "original.skymodel")
    lsmtool_writes(original, "none", tmp_path / "lsmtool.skymodel")
    back = write_skymodel(read_skymodel(tmp_path / "lsmtool.skymodel"), tmp_path / "back.skymodel")
    v_orig = dp3_predict(ms, original, "MODEL_ORIG", tmp_path)
    v_back = dp3_predict(ms, back, "MODEL_BACK", tmp_path)
    scale = np.abs(v_orig).max()
    assert scale > 1.0
    assert np.abs(v_back - v_orig).max() <= 1e-6 * scale


@pytest.mark.dp3
@pytest.mark.parametrize("operation", ["none", "tessellate"])
def test_lsmtool_ddpipe_dp3_predicts_the_same(real_ms, tmp_path: Path, operation: str) -> None:
    ms = real_ms("tDDECal")
    start = tmp_path / "lofar_like.skymodel"
    start.write_text(LOFAR_LIKE)
    lsmtool_writes(start, operation, tmp_path / "lsmtool.skymodel")
    ours = write_skymodel(read_skymodel(tmp_path / "lsmtool.skymodel"), tmp_path / "ddpipe.skymodel")
    v_lsm = dp3_predict(ms, tmp_path / "lsmtool.skymodel", "MODEL_LSM", tmp_path)
    v_ours = dp3_predict(ms, ours, "MODEL_OURS", tmp_path)
    scale = np.abs(v_lsm).max()
    assert scale > 1.0
    assert np.abs(v_ours - v_lsm).max() <= 1e-6 * scale
