"""Spectral sky models from CLEAN components, predicted by the real DP3 (issue 14).

A point source at the phase centre has V = I(ν) on every baseline (XX = YY = I),
so DP3's predict of a sky model written by ``model_to_skymodel`` with a spectral
fit must reproduce the analytic spectrum channel by channel, also at frequencies
the fit never saw.
"""

from __future__ import annotations

import casacore.tables as pt
import numpy as np
import pytest

from ddpipe.imaging.components import model_to_skymodel
from ddpipe.imaging.spectral import SpectralFitter
from ddpipe.simulate import SimulationSpec, simulate
from ddpipe.sky.skymodel import read_skymodel, write_skymodel

pytestmark = pytest.mark.dp3

CENTRE = (np.radians(150.0), np.radians(50.0))
#: the deconvolution's 4 output channels over a 60 MHz band, unequal weights
FIT_FREQS = np.array([125e6, 140e6, 155e6, 170e6])
FIT_WEIGHTS = np.array([1.0, 3.0, 2.0, 0.7])
SHAPE = (16, 16)


def analytic(freqs: np.ndarray, nu0: float, c: list[float], log: bool) -> np.ndarray:
    """WSClean's terms: c0 + c1 x + c2 x² (x = ν/ν0 − 1) or c0 (ν/ν0)^(c1 + c2 lg + ...)."""
    if log:
        lg = np.log10(freqs / nu0)
        return c[0] * (freqs / nu0) ** sum(ck * lg**k for k, ck in enumerate(c[1:]))
    x = freqs / nu0 - 1.0
    return sum(ck * x**k for k, ck in enumerate(c))


@pytest.mark.parametrize(
    ("log", "terms"),
    [
        (False, [2.0, -1.6, 1.2]),  # linear with curvature
        (True, [2.0, -0.8, -0.6]),  # curved power law
        (True, [-0.5, 0.7, 0.4, -1.5]),  # negative flux, cubic in log
    ],
)
def test_dp3_predicts_the_fitted_spectrum(tmp_path, dp3, log, terms):
    fitter = SpectralFitter(FIT_FREQS, FIT_WEIGHTS, len(terms), log=log)
    nu0 = fitter.reference_frequency
    cube = np.zeros((FIT_FREQS.size, *SHAPE))
    cube[:, SHAPE[0] // 2, SHAPE[1] // 2] = analytic(FIT_FREQS, nu0, terms, log)
    mfs = np.tensordot(FIT_WEIGHTS / FIT_WEIGHTS.sum(), cube, axes=1)
    sky = model_to_skymodel(mfs, np.radians(4 / 3600), CENTRE, nu0, channel_models=cube, fitter=fitter)
    path = write_skymodel(sky, tmp_path / "components.skymodel")
    (src,) = read_skymodel(path).sources
    assert (src.i, *src.spectral_index) == pytest.approx(terms, rel=1e-9, abs=1e-9)
    assert src.log_si is log and src.reference_frequency == nu0

    # 7 MS channels across 118-178 MHz: inside and between the fitted channels
    spec = SimulationSpec(
        stations=6,
        channels=7,
        freq_start=118e6,
        chan_width=10e6,
        times=3,
        noise=0.0,
        corrupt=False,
        skymodel=str(path),
        ra=CENTRE[0],
        dec=CENTRE[1],
        seed=1,
    )
    ms = simulate(tmp_path / "spectral.ms", spec).ms
    dp3(
        {
            "msin": str(ms),
            "msout": ".",
            "msout.datacolumn": "MODEL_DP3",
            "steps": "[predict]",
            "predict.type": "predict",
            "predict.sourcedb": str(path),
            "predict.usebeammodel": "false",
        },
        "predict",
    )
    with pt.table(str(ms), ack=False) as t:
        vis = t.getcol("MODEL_DP3")  # (row, chan, corr)
        flags = t.getcol("FLAG")
    with pt.table(str(ms / "SPECTRAL_WINDOW"), ack=False) as t:
        freqs = t.getcol("CHAN_FREQ")[0]
    want = analytic(freqs, nu0, terms, log)
    assert np.ptp(want) > 0.2 * np.abs(want).max()  # the spectrum is far from flat
    assert not flags.any()
    for corr in (0, 3):  # XX and YY carry I, XY and YX nothing
        np.testing.assert_allclose(vis[:, :, corr].real, np.broadcast_to(want, vis.shape[:2]), rtol=1e-4, atol=0)
        assert np.abs(vis[:, :, corr].imag).max() < 1e-4 * np.abs(want).max()
    assert np.abs(vis[:, :, 1:3]).max() < 1e-6
