"""Sub-band sets: every set calibration and imaging cannot treat as one observation is refused by
``ddpipe validate`` and ``ddpipe run`` with one line naming the MS (exit 2, nothing written, the
MSs untouched); a gap between sub-bands and sub-bands of other channel counts are accepted."""

from __future__ import annotations

import hashlib
import logging
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Callable

import casacore.tables as pt
import numpy as np
import pytest
import yaml

from ddpipe.cli import main
from ddpipe.config import load_config
from ddpipe.errors import UserError
from ddpipe.ms.inspect import inspect_ms
from ddpipe.ms.subbands import check_subband_set
from ddpipe.simulate import simulate
from ddpipe.validation import validate


def _config(folder: Path, ms: object = "obs_SB*.ms") -> Path:
    cfg = folder / "run.yaml"
    cfg.write_text(yaml.safe_dump({"inputs": {"ms": ms, "skymodel": "obs.skymodel"}, "workdir": "work"}))
    return cfg


def _digest(folder: Path) -> str:
    """Every file of every MS in ``folder``: names, contents and modification times."""
    h = hashlib.sha256()
    for f in sorted(folder.glob("*.ms/**/*")):
        if f.is_file():
            h.update(f"{f.relative_to(folder)} {f.stat().st_mtime_ns}".encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def _edit(ms: Path, sub: str, column: str, change: Callable[[np.ndarray], np.ndarray]) -> None:
    with pt.table(str(ms / sub) if sub else str(ms), readonly=False, ack=False) as t:
        t.putcol(column, change(t.getcol(column)))


def _uneven(folder: Path) -> None:
    """SB001's middle channels cut out: channels 0, 1, 4, 5 of a twice-wider band."""
    _edit(folder / "obs_SB001.ms", "SPECTRAL_WINDOW", "CHAN_FREQ", lambda f: f + [[0, 0, 10e6, 10e6]])


def _moved(folder: Path) -> None:
    """SB002 of another field (0.05 deg away)."""
    _edit(folder / "obs_SB002.ms", "FIELD", "PHASE_DIR", lambda d: d + [0.0, np.radians(0.05)])


def _overlapping(folder: Path) -> None:
    """SB003 moved down by two channels: it shares 10 MHz with SB002."""
    _edit(folder / "obs_SB003.ms", "SPECTRAL_WINDOW", "CHAN_FREQ", lambda f: f - 10e6)


def _shifted_times(folder: Path) -> None:
    """SB001's times one slot later."""
    _edit(folder / "obs_SB001.ms", "", "TIME", lambda t: t + 10.0)


def _renamed_antenna(folder: Path) -> None:
    """SB002 with another station."""
    _edit(folder / "obs_SB002.ms", "ANTENNA", "NAME", lambda n: np.array(["XX999", *n[1:]]))


@pytest.mark.parametrize(
    ("spoil", "culprit", "needle"),
    [
        (_uneven, "obs_SB001.ms", "unevenly spaced channels (15 MHz between channels 1 and 2"),
        (_moved, "obs_SB002.ms", "give sub-bands of one field"),
        (_overlapping, "obs_SB003.ms", "overlaps"),
        (_shifted_times, "obs_SB001.ms", "sub-bands are calibrated on the same time chunks"),
        (_renamed_antenna, "obs_SB002.ms", "the same stations in the same order"),
    ],
)
def test_a_bad_subband_set_is_refused_in_one_line(subband_set, capsys, spoil, culprit, needle):
    spoil(subband_set)
    cfg = _config(subband_set)
    before = _digest(subband_set)
    for command in ("validate", "run"):
        assert main([command, str(cfg)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1, err
        assert err[0].startswith(f"ddpipe {command}: error: inputs.ms: ") and culprit in err[0] and needle in err[0]
    assert not (subband_set / "work").exists()
    assert _digest(subband_set) == before


def test_the_same_ms_twice_is_refused(subband_set, capsys):
    cfg = _config(subband_set, ["obs_SB00*.ms", "obs_SB001.ms"])
    assert main(["validate", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert "obs_SB001.ms is listed twice" in err and "\n" not in err


def test_a_gap_and_other_channel_counts_are_accepted(subband_set, subband_spec, caplog):
    """SB001 replaced by a 2-channel sub-band from its start, SB002 left out: a 30 MHz gap."""
    shutil.rmtree(subband_set / "obs_SB002.ms")
    shutil.rmtree(subband_set / "obs_SB001.ms")
    simulate(subband_set / "narrow_SB001.ms", replace(subband_spec, subbands=1, channels=2, freq_start=150e6))
    cfg = load_config(_config(subband_set, ["obs_SB*.ms", "narrow_SB001.ms"]))
    assert [Path(p).name for p in cfg.inputs.ms] == ["obs_SB000.ms", "obs_SB003.ms", "narrow_SB001.ms"]
    with caplog.at_level(logging.INFO, logger="ddpipe.ms.subbands"):
        validate(cfg, "run")
    assert "a gap of 30 MHz" in caplog.text and "narrow_SB001.ms and" in caplog.text


def test_imaging_alone_takes_other_time_ranges(subband_set):
    _shifted_times(subband_set)
    cfg = load_config(_config(subband_set))
    validate(cfg, "image")
    with pytest.raises(UserError, match="same time chunks"):
        validate(cfg, "calibrate")


def test_two_channels_further_apart_than_wide_are_refused(subband_set):
    ms = subband_set / "obs_SB000.ms"
    _edit(ms, "SPECTRAL_WINDOW", "CHAN_WIDTH", lambda w: w / 2)
    with pytest.raises(UserError, match=r"channels 5 MHz apart but 2\.5 MHz wide: channels are missing"):
        check_subband_set([inspect_ms(ms, flag_stats=False)])
