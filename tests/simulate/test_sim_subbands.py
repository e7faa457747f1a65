"""``ddpipe simulate --subbands K``: K contiguous sub-band MSs that are exactly the channels of
one K-times-wider MS (sky, gains, noise), one truth over the whole band, spectra in the data."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import casacore.tables as pt
import numpy as np
import pytest

from ddpipe.cli import main
from ddpipe.errors import UserError
from ddpipe.simulate import SimulationSpec, simulate
from ddpipe.simulate.run import subband_paths
from ddpipe.sky.skymodel import read_skymodel
from ddpipe.solutions import read_h5parm

#: 4 sub-bands x 2 channels of 5 MHz: a 40 MHz band from 130 MHz
WIDE = SimulationSpec(
    stations=6, channels=2, subbands=4, freq_start=130e6, chan_width=5e6, times=6, directions=2, seed=3
)


def _col(ms: Path, name: str, sub: str = "") -> np.ndarray:
    with pt.table(str(ms / sub) if sub else str(ms), ack=False) as t:
        return t.getcol(name)


def test_subband_names_follow_lofar():
    assert subband_paths("d/obs.ms", 1) == (Path("d/obs.ms"),)
    assert [p.name for p in subband_paths("d/obs.MS", 3)] == ["obs_SB000.MS", "obs_SB001.MS", "obs_SB002.MS"]
    assert subband_paths("obs", 2)[1] == Path("obs_SB001")


def test_subbands_are_the_channels_of_one_wide_ms(tmp_path):
    sub = simulate(tmp_path / "sb.ms", WIDE)
    one = simulate(tmp_path / "one.ms", replace(WIDE, subbands=1, channels=8))
    assert [p.name for p in sub.ms_paths] == [f"sb_SB{k:03d}.ms" for k in range(4)]
    assert sub.ms == sub.ms_paths[0] and sub.nchannels == 8 and sub.nvis == one.nvis
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [p.name for p in sub.ms_paths] + ["sb.skymodel", "sb.truth.h5", "one.ms", "one.skymodel", "one.truth.h5"]
    )
    freqs = [_col(p, "CHAN_FREQ", "SPECTRAL_WINDOW")[0] for p in sub.ms_paths]
    np.testing.assert_array_equal(np.concatenate(freqs), 130e6 + 5e6 * np.arange(8))  # contiguous, in order
    assert [_col(p, "NAME", "SPECTRAL_WINDOW")[0] for p in sub.ms_paths] == [f"SB-{k:03d}" for k in range(4)]
    wide = _col(one.ms, "DATA")
    np.testing.assert_array_equal(np.concatenate([_col(p, "DATA") for p in sub.ms_paths], axis=1), wide)
    for name in ("UVW", "TIME", "ANTENNA1"):
        for p in sub.ms_paths:
            np.testing.assert_array_equal(_col(p, name), _col(one.ms, name))
    assert read_skymodel(sub.skymodel) == read_skymodel(one.skymodel)  # one sky, spectra referred to 147.5 MHz
    truth, ref = read_h5parm(sub.truth), read_h5parm(one.truth)
    np.testing.assert_array_equal(truth.soltabs["phase000"].freq, 130e6 + 5e6 * np.arange(8))
    np.testing.assert_array_equal(truth.soltabs["phase000"].values, ref.soltabs["phase000"].values)


def test_source_spectra_are_in_the_data(tmp_path):
    """One point source, no gains, no noise: |XX| per channel over all sub-bands is I (ν/ν0)^α."""
    spec = replace(WIDE, directions=1, sources_per_direction=1, noise=0.0, corrupt=False)
    r = simulate(tmp_path / "s.ms", spec)
    (src,) = read_skymodel(r.skymodel).sources
    assert src.reference_frequency == pytest.approx(147.5e6) and src.spectral_index[0] < -0.2
    freqs = np.concatenate([_col(p, "CHAN_FREQ", "SPECTRAL_WINDOW")[0] for p in r.ms_paths])
    amp = np.concatenate([np.abs(_col(p, "DATA")[:, :, 0]) for p in r.ms_paths], axis=1)
    expected = src.i * (freqs / src.reference_frequency) ** src.spectral_index[0]
    np.testing.assert_allclose(amp, np.broadcast_to(expected, amp.shape), rtol=1e-5)
    assert expected[0] / expected[-1] > 1.1  # the band is wide enough to see it


def test_default_sky_has_spectral_indices_near_minus_0_8(tmp_path):
    r = simulate(tmp_path / "s.ms", replace(WIDE, directions=6, sources_per_direction=4, times=2))
    si = np.array([s.spectral_index[0] for s in read_skymodel(r.skymodel).sources])
    assert -0.9 < si.mean() < -0.5 and 0.1 < si.std() < 0.35


def test_cli_writes_subbands_and_refuses_to_overwrite_one(tmp_path, capsys):
    args = ["simulate", str(tmp_path / "obs.MS"), "--subbands", "3", "--channels", "2", "--stations", "5"]
    args += ["--times", "3", "--directions", "1", "--sources-per-direction", "1", "--chan-width", "1e6"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "3 sub-bands" in out and "3 x 2 channels" in out and "obs_SB002.MS" in out
    freqs = [_col(tmp_path / f"obs_SB{k:03d}.MS", "CHAN_FREQ", "SPECTRAL_WINDOW")[0] for k in range(3)]
    np.testing.assert_allclose(np.concatenate(freqs), 148.5e6 + 1e6 * np.arange(6))
    stamp = (tmp_path / "obs_SB001.MS" / "table.f0").stat().st_mtime_ns
    (tmp_path / "obs.skymodel").unlink()
    (tmp_path / "obs.truth.h5").unlink()
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "obs_SB000.MS already exists" in err[0] and "--overwrite" in err[0]
    assert (tmp_path / "obs_SB001.MS" / "table.f0").stat().st_mtime_ns == stamp
    assert not (tmp_path / "obs.skymodel").exists()


def test_subbands_must_be_a_positive_count():
    with pytest.raises(UserError, match="subbands=0"):
        simulate("never.ms", replace(WIDE, subbands=0))
