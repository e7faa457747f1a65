"""``ddpipe run`` on a simulated 4-sub-band observation given as a glob: one DP3 chunk per time chunk
and MS, and the cycle's solutions span every sub-band's channels."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from ddpipe.cli import main
from ddpipe.simulate import SimulationSpec, simulate
from ddpipe.solutions import read_h5parm

pytestmark = [pytest.mark.dp3, pytest.mark.slow]  # ~25 s: a Dask cluster, 8 DP3 runs, the report


def _run(tmp_path, n_chunks: int, nchan: int, imaging: dict, cycles: int) -> None:
    """``ddpipe run`` of the sub-bands ``obs_SB*.ms`` in ``tmp_path`` (given as a glob) into ``work``."""
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "inputs": {"ms": "obs_SB*.ms", "skymodel": "obs.skymodel"},
                "workdir": "work",
                "cluster": {"n_workers": 2},
                "chunking": {"duration": 0, "n_chunks": n_chunks},
                "calibration": {"solint": 2, "nchan": nchan, "n_directions": 2, "maxiter": 10},
                "imaging": {"size": [128, 128], "scale": 60.0, **imaging},
                "cycles": [{}] * cycles,
            }
        )
    )
    assert main(["run", str(cfg)]) == 0


def test_run_calibrates_each_subband_and_merges_along_frequency(tmp_path, capsys):
    spec = SimulationSpec(
        stations=6, channels=2, subbands=4, freq_start=130e6, chan_width=5e6, times=8, directions=2, seed=4
    )
    sim = simulate(tmp_path / "obs.ms", spec)
    _run(tmp_path, n_chunks=2, nchan=1, imaging={"niter": 10}, cycles=1)
    capsys.readouterr()
    cycle = tmp_path / "work" / "cycle_01"
    chunks = sorted(p.name for p in (cycle / "chunks").glob("*.h5"))
    assert chunks == [f"obs_SB{k:03d}-chunk_{c:03d}.h5" for k in range(4) for c in range(2)]
    phase = read_h5parm(cycle / "solutions.h5").soltabs["phase000"]
    np.testing.assert_allclose(phase.freq, 130e6 + 5e6 * np.arange(8))  # every channel of every sub-band
    assert phase.values.shape[:2] == (4, 8) and np.all(np.isfinite(phase.values))
    truth = read_h5parm(sim.truth).soltabs["phase000"]
    np.testing.assert_array_equal(truth.freq, phase.freq)  # the truth spans the same band


def test_run_with_output_channels_carries_spectra_into_the_next_cycle(tmp_path, capsys):
    """``imaging.channels_out 4`` in a 2-cycle run: the cycle's images are WSClean's per-channel and MFS
    files, the next cycle's sky model gives every component a log spectrum, DP3 calibrates against it,
    and the summary's figures come from the MFS image."""
    from ddpipe.sky.skymodel import read_skymodel

    spec = SimulationSpec(
        stations=8, channels=4, subbands=2, freq_start=130e6, chan_width=5e6, times=8, directions=2, seed=5
    )
    simulate(tmp_path / "obs.ms", spec)
    imaging = {"niter": 50, "channels_out": 4, "fit_spectral_log_pol": 2}
    _run(tmp_path, n_chunks=1, nchan=0, imaging=imaging, cycles=2)
    capsys.readouterr()
    work = tmp_path / "work"
    for part in ("0000", "0003", "MFS"):
        assert (work / "cycle_01" / f"image-{part}-image.fits").is_file()
    sky = read_skymodel(work / "cycle_01" / "skymodel.txt")
    assert sky.sources and all(s.log_si and len(s.spectral_index) == 1 for s in sky.sources)
    # the weighted mean of the 4 output channels' centres (132.5 ... 162.5 MHz; Briggs weights differ a little)
    assert all(s.reference_frequency == pytest.approx(147.5e6, rel=0.01) for s in sky.sources)
    assert (work / "cycle_02" / "solutions.h5").is_file()
    summary = json.loads((work / "summary.json").read_text())
    assert summary["cycles"][1]["image"]["restored"].endswith("image-MFS-image.fits")
