"""The H5parms of the real-format sample set (``tests/data/formats/``, see ``tools/make_format_samples.py``).

``ddpipe-solutions.h5`` is ddpipe's, ``losoto-smoothed.h5`` what losoto's ``smooth``
made of it. ddpipe and losoto read both alike; DP3 applies losoto's file to the
tDDECal MS (whose stations, times and band the samples use) as ddpipe evaluates it.
"""

from __future__ import annotations

from pathlib import Path

import casacore.tables as pt
import numpy as np
import pytest
from losoto.h5parm import h5parm
from solkit import dp3_applycal

from ddpipe.solutions import evaluate_gains, read_h5parm

pytestmark = pytest.mark.filterwarnings("ignore:The use of uppercase keyword parameters:DeprecationWarning")

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "formats"


@pytest.mark.parametrize("name", ["ddpipe-solutions.h5", "losoto-smoothed.h5"])
def test_ddpipe_and_losoto_read_each_sample_alike(name: str) -> None:
    ours = read_h5parm(SAMPLES / name)
    h5 = h5parm(str(SAMPLES / name), readonly=True)
    try:
        ss = h5.getSolset("sol000")
        assert sorted(ss.getSoltabNames()) == sorted(ours.soltabs) == ["amplitude000", "phase000"]
        for tab_name, tab in ours.soltabs.items():
            st = ss.getSoltab(tab_name)
            assert st.getAxesNames() == list(tab.axes)
            np.testing.assert_array_equal(st.getValues(retAxesVals=False), tab.values)
            np.testing.assert_array_equal(st.getValues(retAxesVals=False, weight=True), tab.weights)
    finally:
        h5.close()


def test_losotos_sample_is_the_time_mean_of_ddpipes() -> None:
    before, after = read_h5parm(SAMPLES / "ddpipe-solutions.h5"), read_h5parm(SAMPLES / "losoto-smoothed.h5")
    for name, tab in before.soltabs.items():
        vals = np.where(tab.weights > 0, tab.values, np.nan)
        if tab.kind == "phase":
            want = np.angle(np.nanmean(np.exp(1j * vals), axis=0, keepdims=True))
        else:
            want = 10 ** np.nanmean(np.log10(vals), axis=0, keepdims=True)
        np.testing.assert_allclose(after.soltabs[name].values, np.broadcast_to(want, tab.values.shape), rtol=1e-12)


@pytest.mark.dp3
def test_dp3_applies_losotos_sample_as_ddpipe_evaluates_it(real_ms, dp3, tmp_path: Path) -> None:
    ms = real_ms("tDDECal")
    h5 = SAMPLES / "losoto-smoothed.h5"
    corrected = dp3_applycal(dp3, ms, h5, ["amplitude000", "phase000"], "Patch_2")
    with pt.table(str(ms), ack=False) as t:
        time, a1, a2 = t.getcol("TIME"), t.getcol("ANTENNA1"), t.getcol("ANTENNA2")
        data, flag = t.getcol("DATA"), t.getcol("FLAG")
    with pt.table(str(ms / "SPECTRAL_WINDOW"), ack=False) as t:
        freqs = t.getcol("CHAN_FREQ")[0]
    with pt.table(str(ms / "ANTENNA"), ack=False) as t:
        assert tuple(t.getcol("NAME")) == read_h5parm(h5).antennas
    g = evaluate_gains(read_h5parm(h5), time, freqs, directions=["Patch_2"])[:, :, :, 0, 0]  # scalar: (row, chan, ant)
    it = np.arange(len(time))
    want = data / (g[it, :, a1] * np.conj(g[it, :, a2]))[..., None]
    ok = ~flag & np.isfinite(want)
    assert ok.sum() > 1000 and np.abs(want[ok] - data[ok]).max() > 0.1 * np.abs(want[ok]).max()
    np.testing.assert_allclose(corrected[ok], want[ok], rtol=2e-5, atol=1e-5 * np.abs(want[ok]).max())
