"""DP3 reads what ddpipe writes the same as the original, and as ddpipe reads it.

Real DP3 (the dp3 wheel) predicts the real tDDECal MS from a hand-written sky
model in many makesourcedb forms and from ``write_skymodel``'s rewrite of it;
the visibilities must agree. A second check predicts point sources with DP3 and
with an exact DFT of the model as ``read_skymodel`` parsed it.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from ddpipe.dp3.parsets import MsView, dp3_argv, predict_parset
from ddpipe.dp3.runner import dp3_environment, find_dp3, run_dp3
from ddpipe.sky.model import SkyModel
from ddpipe.sky.skymodel import read_skymodel, write_skymodel

casacore_tables = pytest.importorskip("casacore.tables")

pytestmark = pytest.mark.dp3

C = 299792458.0

# Phase centre of tDDECal: 01:37:41.3 +33.09.35 (24.42 deg, 33.16 deg); 8 channels near 134.4 MHz.
ORIGINAL = """\
# Sky model in the forms DP3 reads: a header with defaults, hh:mm:ss, hhmmss letters,
# deg and rad units, bare radians, dd.mm.ss dots, ddmmss letters.
# (Name, Type, Patch, Ra, Dec, I, Q, U, V, ReferenceFrequency='150e6', SpectralIndex='[]', LogarithmicSI='true', MajorAxis, MinorAxis, Orientation) = format

, , pts, 01:37:00.5, +33.00.00
, , ext, 24.1deg, 33.5deg

p1, POINT, pts, 01:37:00.5, +33.00.00, 2.0, 0.5, 0.3, 0.1, , [-0.7, 0.3]
p2, POINT, pts, 01h36m01.25s, 32d50m12.5s, 1.0, 0.2, , , 120e6, [2.0, -1.0], false
p3, POINT, pts, 24deg, +33deg, 0.7
p4, point, pts, 0.4275rad, 0.5801, 0.4, , , , , -0.8
g1, GAUSSIAN, ext, 01:36:24.0, +33.30.00, 3.0, , , , , [-0.8], , 120.0, 60.0, 30.0
g2, GAUSSIAN, ext, 24.2deg, 33.45deg, 1.5, 0.1, , , 140e6, [-0.5, 0.1], false, 45.0, 45.0, 0.0
"""


def predict(ms: Path, skymodel: Path, column: str, work: Path, sources: list[str] | None = None) -> np.ndarray:
    """DP3 predict of ``skymodel`` into ``column`` of ``ms``; returns (row, chan, corr) complex."""
    parset = predict_parset(MsView(ms), skymodel=skymodel, out_column=column, sources=sources)
    argv = dp3_argv(find_dp3(), parset, 1)
    run_dp3(argv, log_path=work / f"predict_{column}.log", timeout=300, env=dp3_environment(cache_dir=work))
    with casacore_tables.table(str(ms), ack=False) as t:
        return t.getcol(column)


def dft(model: SkyModel, ms: Path) -> np.ndarray:
    """Exact DFT of the point sources of ``model`` on ``ms``: (row, chan, corr=XX,XY,YX,YY) complex.

    DP3's convention: V = S exp(+2πi (u l + v m + w (n-1)) / λ), XX = I+Q,
    XY = U+iV, YX = U-iV, YY = I-Q; the spectral shape applies to I only.
    """
    with casacore_tables.table(str(ms), ack=False) as t:
        uvw = t.getcol("UVW")
    with casacore_tables.table(str(ms / "SPECTRAL_WINDOW"), ack=False) as t:
        freq = t.getcol("CHAN_FREQ")[0]
    with casacore_tables.table(str(ms / "FIELD"), ack=False) as t:
        ra0, dec0 = t.getcol("PHASE_DIR")[0, 0]
    out = np.zeros((uvw.shape[0], freq.size, 4), dtype=complex)
    for s in model.sources:
        assert s.type == "POINT"
        l = math.cos(s.dec) * math.sin(s.ra - ra0)
        m = math.sin(s.dec) * math.cos(dec0) - math.cos(s.dec) * math.sin(dec0) * math.cos(s.ra - ra0)
        n = math.sqrt(1.0 - l * l - m * m)
        phase = np.exp(2j * np.pi * (uvw[:, 0:1] * l + uvw[:, 1:2] * m + uvw[:, 2:3] * (n - 1)) * freq / C)
        i = s.stokes_i_at(freq)
        for corr, stokes in enumerate((i + s.q, s.u + 1j * s.v, s.u - 1j * s.v, i - s.q)):
            out[:, :, corr] += stokes * phase
    return out


def test_dp3_reads_the_written_model_like_the_original(real_ms, tmp_path: Path) -> None:
    ms = real_ms("tDDECal")
    original = tmp_path / "original.skymodel"
    original.write_text(ORIGINAL)
    model = read_skymodel(original)
    assert len(model.sources) == 6 and model.patch_names() == ["pts", "ext"]
    written = write_skymodel(model, tmp_path / "written.skymodel")
    assert "24deg, 33deg" in written.read_text()  # the short form of round values is in the test

    v_orig = predict(ms, original, "MODEL_ORIG", tmp_path)
    v_ours = predict(ms, written, "MODEL_OURS", tmp_path)
    scale = np.abs(v_orig).max()
    assert scale > 1.0  # the model is really there
    # complex64 output: agreement to float precision, far below any model difference
    assert np.abs(v_ours - v_orig).max() <= 1e-6 * scale

    # and a real difference is seen: drop the faintest source and compare again
    fainter = SkyModel(model.sources[:3] + model.sources[4:], model.patches)
    v_less = predict(ms, write_skymodel(fainter, tmp_path / "less.skymodel"), "MODEL_LESS", tmp_path)
    assert np.abs(v_less - v_orig).max() > 0.1


def test_dp3_point_sources_match_a_dft_of_the_parsed_model(real_ms, tmp_path: Path) -> None:
    ms = real_ms("tDDECal")
    original = tmp_path / "original.skymodel"
    original.write_text(ORIGINAL)
    model = read_skymodel(original)
    points = SkyModel(model.sources_in("pts"), model.patches[:1])
    v_dp3 = predict(ms, original, "MODEL_PTS", tmp_path, sources=["pts"])
    v_dft = dft(points, ms)
    scale = np.abs(v_dft).max()
    # float32 phases of DP3 on baselines up to 30 km: agreement to ~1e-6 relative
    assert np.abs(v_dp3 - v_dft).max() <= 1e-5 * scale
    # a spectral index read wrongly (e.g. log/linear swapped) would be a percent-level error
    swapped = SkyModel(tuple(replace(s, log_si=not s.log_si) for s in points.sources))
    assert np.abs(v_dp3 - dft(swapped, ms)).max() > 1e-3 * scale
