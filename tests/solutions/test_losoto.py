"""losoto (the LOFAR solution tool, a test dependency from PyPI) opens every H5parm ddpipe writes.

The kinds ddpipe writes: merged calibration solutions (chunks along time, sub-bands
along frequency), a chain of solves (``phase000``, ``phase001``, ``amplitude000``
on their own axes), full-polarisation (diagonal) gains, and the simulator's truth
file. losoto reads each with ddpipe's axes, values, weights, antennas and
directions; its ``smooth`` and ``plot`` operations run on them, and ddpipe reads
back what ``smooth`` wrote, with the values losoto's documented smoothing gives.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from losoto.h5parm import h5parm
from losoto.operations import plot, smooth

from ddpipe.simulate import SimulationSpec, simulate
from ddpipe.solutions import SolTab, Solutions, merge_along_freq, merge_along_time, read_h5parm, write_h5parm
from ddpipe.solutions.merge import chain_soltabs

matplotlib.use("Agg")

pytestmark = [
    # PyTables' own deprecation, and losoto's running median over a window of flagged solutions
    pytest.mark.filterwarnings("ignore:The use of uppercase keyword parameters:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:All-NaN slice encountered:RuntimeWarning"),
]

ANTS = tuple(f"CS{k:03d}HBA0" for k in range(1, 6))
DIRS = ("[P0]", "[P1]", "[bright_patch_2]")


def solutions(seed: int, time: np.ndarray, freq: np.ndarray, kinds: tuple[str, ...], pol: bool) -> Solutions:
    """Random gains on a (time, freq) grid; ``kinds`` among 'phase' and 'amplitude'."""
    rng = np.random.default_rng(seed)
    axes = ("time", "freq", "ant", "dir") + (("pol",) if pol else ())
    shape = (time.size, freq.size, len(ANTS), len(DIRS)) + ((2,) if pol else ())
    weights = np.ones(shape, np.float32)
    weights.flat[rng.choice(weights.size, weights.size // 10, replace=False)] = 0  # some flagged
    tabs = {}
    for kind in kinds:
        values = rng.uniform(-np.pi, np.pi, shape) if kind == "phase" else rng.uniform(0.5, 1.5, shape)
        tabs[f"{kind}000"] = SolTab(kind, axes, values, weights, time, freq, ANTS, DIRS, ("XX", "YY") if pol else None)
    return Solutions(
        antennas=ANTS,
        antenna_positions=np.array([[3826577.1 + 100 * k, 461022.9, 5064892.7] for k in range(len(ANTS))]),
        directions=DIRS,
        direction_radec=np.array([[0.42, 0.58], [0.43, 0.57], [0.44, 0.59]]),
        soltabs=tabs,
    )


T0 = 5.0e9


def merged() -> Solutions:
    """Two time chunks of each of two sub-bands, merged as the calibrate stage merges them."""
    bands = []
    for b, f0 in enumerate((120e6, 130e6)):
        freq = f0 + np.arange(3) * 1e6
        chunks = [
            solutions(10 * b + k, T0 + 40.0 * k + np.arange(4) * 10.0, freq, ("phase", "amplitude"), False)
            for k in range(2)
        ]
        bands.append(merge_along_time(chunks))
    return merge_along_freq(bands)


def chained() -> Solutions:
    """A scalarphase solve then a scalar (phase and amplitude) solve on coarser axes."""
    first = solutions(1, T0 + np.arange(8) * 10.0, 120e6 + np.arange(4) * 1e6, ("phase",), False)
    second = solutions(2, T0 + np.arange(2) * 40.0, np.array([121.5e6]), ("phase", "amplitude"), False)
    return chain_soltabs([first, second])


def diagonal() -> Solutions:
    return solutions(3, T0 + np.arange(6) * 10.0, 120e6 + np.arange(2) * 1e6, ("phase", "amplitude"), True)


@pytest.fixture(scope="module")
def truth_h5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The simulator's truth file (phase and amplitude corruptions) of a small simulated observation."""
    out = tmp_path_factory.mktemp("sim")
    spec = SimulationSpec(
        stations=6, channels=4, times=6, directions=2, sources_per_direction=2, amplitude_scale=0.2, seed=5
    )
    return simulate(out / "sim.ms", spec).truth


KINDS = {"merged": merged, "chained": chained, "diagonal": diagonal}


@pytest.fixture(params=["merged", "chained", "diagonal", "truth"])
def written(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """An H5parm as ddpipe writes it, in a scratch folder losoto may write into."""
    path = tmp_path / f"{request.param}.h5"
    if request.param == "truth":
        shutil.copy(request.getfixturevalue("truth_h5"), path)
    else:
        write_h5parm(path, KINDS[request.param]())
    return path


def test_losoto_reads_what_ddpipe_writes(written: Path) -> None:
    ours = read_h5parm(written)
    h5 = h5parm(str(written), readonly=True)
    try:
        assert h5.getSolsetNames() == ["sol000"]
        ss = h5.getSolset("sol000")
        assert sorted(ss.getSoltabNames()) == sorted(ours.soltabs)
        assert list(ss.getAnt()) == list(ours.antennas)
        np.testing.assert_allclose(np.array(list(ss.getAnt().values())), ours.antenna_positions, atol=0.01)
        assert list(ss.getSou()) == list(ours.directions)
        np.testing.assert_allclose(np.array(list(ss.getSou().values())), ours.direction_radec)
        for name, tab in ours.soltabs.items():
            st = ss.getSoltab(name)
            assert st.getType() == tab.kind
            assert st.getAxesNames() == list(tab.axes)
            for axis in tab.axes:
                got = st.getAxisValues(axis)
                want = tab.axis_values(axis)
                if axis in ("time", "freq"):
                    np.testing.assert_array_equal(got, want)
                else:
                    assert [str(v) for v in got] == list(want)
            np.testing.assert_array_equal(st.getValues(retAxesVals=False), tab.values)
            np.testing.assert_array_equal(st.getValues(retAxesVals=False, weight=True), tab.weights)
    finally:
        h5.close()


def test_losoto_smooth_runs_and_ddpipe_reads_the_result(written: Path) -> None:
    before = read_h5parm(written)
    h5 = h5parm(str(written), readonly=False)
    try:
        ss = h5.getSolset("sol000")
        for name in ss.getSoltabNames():
            st = ss.getSoltab(name, useCache=True)  # as the losoto script opens them for an operation
            log = st.getType() == "amplitude"
            assert smooth.run(st, axesToSmooth=["time"], mode="mean", log=log) == 0
    finally:
        h5.close()
    after = read_h5parm(written)
    assert sorted(after.soltabs) == sorted(before.soltabs)
    for name, tab in before.soltabs.items():
        axis = tab.axes.index("time")
        vals = np.where(tab.weights > 0, tab.values, np.nan)
        # losoto's mean: circular for phases, geometric for amplitudes (log=True); flagged ones left out
        if tab.kind == "phase":
            want = np.angle(np.nanmean(np.exp(1j * vals), axis=axis, keepdims=True))
        else:
            want = 10 ** np.nanmean(np.log10(vals), axis=axis, keepdims=True)
        want = np.broadcast_to(want, tab.values.shape)
        got = after.soltabs[name]
        assert got.axes == tab.axes and got.values.shape == tab.values.shape
        np.testing.assert_allclose(got.values, want, rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(got.weights, tab.weights)


def test_losoto_running_median_and_plot_run(written: Path, tmp_path: Path) -> None:
    h5 = h5parm(str(written), readonly=False)
    try:
        ss = h5.getSolset("sol000")
        for name in ss.getSoltabNames():
            st = ss.getSoltab(name, useCache=True)
            size = [min(3, len(st.getAxisValues("time")))]
            assert smooth.run(st, axesToSmooth=["time"], size=size, mode="runningmedian") == 0
            prefix = tmp_path / "plots" / f"{name}_"
            prefix.parent.mkdir(exist_ok=True)
            # time × frequency images, one per direction (losoto refuses an image of a single channel)
            axes = ["time", "freq"] if len(st.getAxisValues("freq")) > 1 else ["time"]
            assert plot.run(st, axesInPlot=axes, axisInTable="ant", prefix=str(prefix)) == 0
    finally:
        h5.close()
    sol = read_h5parm(written)
    assert all(np.isfinite(t.values[t.weights > 0]).all() for t in sol.soltabs.values())
    pngs = sorted((tmp_path / "plots").glob("*.png"))
    assert len(pngs) >= len(sol.soltabs) and all(p.stat().st_size > 5000 for p in pngs)
