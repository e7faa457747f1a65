"""The real-format sample set in ``tests/data/formats/``, written by the LOFAR tools themselves.

``tools/make_format_samples.py`` writes it (lsmtool's and losoto's files by
lsmtool and losoto, ddpipe's by ddpipe, from a hand-written LINC-style seed); the
test below checks that the script still writes the committed files. Each sky
model reads in ddpipe and in lsmtool with the same sources, fluxes and patches,
and DP3 predicts each of them and ddpipe's rewrite of each the same.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import h5py
import lsmtool
import numpy as np
import pytest
from skysamples import dp3_predict

from ddpipe.sky.skymodel import read_skymodel, write_skymodel

pytestmark = pytest.mark.filterwarnings("ignore:The use of uppercase keyword parameters:DeprecationWarning")

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "tests" / "data" / "formats"
SKY = ("lofar-like.skymodel", "ddpipe.skymodel", "lsmtool.skymodel", "lsmtool-tessellate.skymodel")
H5 = ("ddpipe-solutions.h5", "losoto-smoothed.h5")


def make_format_samples():
    spec = importlib.util.spec_from_file_location("make_format_samples", REPO / "tools" / "make_format_samples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def data_lines(path: Path) -> list[str]:
    """The lines that are not comments (lsmtool's history carries dates and paths)."""
    return [line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")]


def h5_arrays(path: Path) -> dict[str, np.ndarray]:
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


def test_the_script_writes_the_committed_samples(tmp_path: Path) -> None:
    written = make_format_samples().make_samples(tmp_path)
    assert sorted(p.name for p in written) == sorted(SKY[1:] + H5)
    for name in SKY[1:]:
        assert data_lines(tmp_path / name) == data_lines(SAMPLES / name), name
    for name in H5:
        ours, committed = h5_arrays(tmp_path / name), h5_arrays(SAMPLES / name)
        assert sorted(ours) == sorted(committed), name
        for key in ours:
            np.testing.assert_array_equal(ours[key], committed[key], err_msg=f"{name}:{key}")


@pytest.mark.parametrize("name", SKY)
def test_ddpipe_and_lsmtool_read_each_sample_alike(name: str) -> None:
    model = read_skymodel(SAMPLES / name)
    lsm = lsmtool.load(str(SAMPLES / name))
    rows = {str(r["Name"]): r for r in lsm.table}
    assert sorted(rows) == sorted(s.name for s in model.sources)
    for s in model.sources:
        r = rows[s.name]
        assert (r["I"], r["Patch"], r["Type"]) == (s.i, s.patch, s.type)
        assert (r["Ra"], r["Dec"]) == pytest.approx((math.degrees(s.ra), math.degrees(s.dec)), abs=1e-9)
        # lsmtool holds an empty field as masked, filled with 0 on writing (DP3 and ddpipe read 0)
        shape = tuple(float(np.ma.filled(r[k], 0.0)) for k in ("MajorAxis", "MinorAxis", "Orientation"))
        assert shape == (s.major_axis, s.minor_axis, s.orientation)
    positions = lsm.getPatchPositions()
    for p in model.patches:
        assert positions[p.name][0].deg == pytest.approx(math.degrees(p.ra), abs=1e-6)
        assert positions[p.name][1].deg == pytest.approx(math.degrees(p.dec), abs=1e-6)


def test_the_samples_hold_the_forms_they_stand_for() -> None:
    seed = read_skymodel(SAMPLES / "lofar-like.skymodel")
    # the format line's default and an explicit true and false
    assert [s.orientation_is_absolute for s in seed.sources if s.type == "GAUSSIAN"] == [True, False, True]
    assert {s.log_si for s in seed.sources} == {True, False}
    ours = read_skymodel(SAMPLES / "ddpipe.skymodel")
    assert sum(s.rotation_measure is not None for s in ours.sources) == 2
    assert {s.category for s in ours.sources} == {None, 1, 3}
    tess = read_skymodel(SAMPLES / "lsmtool-tessellate.skymodel")
    assert tess.patch_names() != seed.patch_names() and len(tess.patch_names()) > 1


@pytest.mark.dp3
def test_dp3_predicts_each_sample_as_ddpipe_rewrites_it(real_ms, tmp_path: Path) -> None:
    ms = real_ms("tDDECal")
    vis = {}
    for k, name in enumerate(SKY):
        rewrite = write_skymodel(read_skymodel(SAMPLES / name), tmp_path / f"rewrite-{name}")
        for tag, path in (("ORIG", SAMPLES / name), ("OURS", rewrite)):
            vis[name, tag] = dp3_predict(ms, path, f"M{k}_{tag}", tmp_path)
        scale = np.abs(vis[name, "ORIG"]).max()
        assert scale > 1.0
        assert np.abs(vis[name, "OURS"] - vis[name, "ORIG"]).max() <= 1e-6 * scale, name
    # lsmtool's rewrites of the seed, regrouped or not, are the same sky
    seed = vis["lofar-like.skymodel", "ORIG"]
    for name in ("lsmtool.skymodel", "lsmtool-tessellate.skymodel"):
        assert np.abs(vis[name, "ORIG"] - seed).max() <= 1e-6 * np.abs(seed).max(), name
