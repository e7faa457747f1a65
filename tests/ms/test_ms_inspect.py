"""inspect_ms on the three real Measurement Sets, every field checked against casacore directly."""

from __future__ import annotations

import hashlib
import json
import math
import os
from datetime import datetime
from pathlib import Path

import casacore.quanta as qa
import casacore.tables as pt
import numpy as np
import pytest

from ddpipe.cli import main
from ddpipe.errors import UserError
from ddpipe.ms import inspect as ms_inspect
from ddpipe.ms.inspect import MSInfo, inspect_ms, require_unflagged

KEYS = ("tDDECal", "tOSKAR", "tDish")


def _sub(t: pt.table, name: str) -> pt.table:
    return pt.table(t.getkeyword(name), ack=False)


def _iso_to_mjd_seconds(text: str) -> float:
    """'YYYY-MM-DDThh:mm:ss.sss' (UTC) → MJD seconds, ignoring leap seconds as casacore does."""
    return (datetime.fromisoformat(text) - datetime(1858, 11, 17)).total_seconds()


def _parse_sexagesimal(text: str, hours: bool) -> float:
    """'hh:mm:ss.s' / '±dd:mm:ss.s' → radians (independent of astropy)."""
    sign = -1.0 if text.startswith("-") else 1.0
    a, b, c = (abs(float(x)) for x in text.lstrip("+-").split(":"))
    value = sign * (a + b / 60 + c / 3600)
    return math.radians(value * 15 if hours else value)


@pytest.fixture(scope="module")
def infos(real_ms_readonly: dict[str, Path]) -> dict[str, MSInfo]:
    return {k: inspect_ms(real_ms_readonly[k]) for k in KEYS}


@pytest.mark.parametrize("key", KEYS)
def test_fields_match_casacore(key: str, infos: dict[str, MSInfo], real_ms_readonly: dict[str, Path]) -> None:
    info = infos[key]
    path = real_ms_readonly[key]
    with pt.table(str(path), ack=False) as t:
        assert info.path == str(path.resolve())
        assert info.n_rows == t.nrows()
        # baselines and autocorrelations, counted by TaQL
        cross = t.query("ANTENNA1 != ANTENNA2", columns="ANTENNA1, ANTENNA2")
        pairs = {tuple(sorted(p)) for p in zip(cross.getcol("ANTENNA1"), cross.getcol("ANTENNA2"))}
        assert info.n_baselines == len(pairs)
        assert info.has_autocorrelations == (t.query("ANTENNA1 == ANTENNA2").nrows() > 0)
        # times
        distinct = pt.taql("select distinct TIME from $t orderby TIME").getcol("TIME")
        assert info.n_times == len(distinct)
        assert info.time_first == distinct[0] and info.time_last == distinct[-1]
        interval = float(np.median(t.getcol("INTERVAL")))
        assert info.interval == pytest.approx(interval, rel=1e-9)
        assert info.n_slots == round((distinct[-1] - distinct[0]) / interval) + 1
        # UTC strings: back to MJD seconds (stdlib), and the date as casacore.quanta prints it
        assert _iso_to_mjd_seconds(info.time_first_utc) == pytest.approx(distinct[0], abs=5e-4)
        assert _iso_to_mjd_seconds(info.time_last_utc) == pytest.approx(distinct[-1], abs=5e-4)
        assert info.time_first_utc[:10] == qa.quantity(distinct[0], "s").formatted("fits")[:10]
        # columns
        cols = t.colnames()
        assert info.data_column == "DATA"
        assert set(info.data_columns) == {c for c in cols if c.endswith("DATA") and c != "FLAG_CATEGORY"}
        assert info.has_weight_spectrum == ("WEIGHT_SPECTRUM" in cols)
        # flags, read whole here (the MSs are small)
        flag = t.getcol("FLAG") | t.getcol("FLAG_ROW")[:, None, None]
        assert info.flagged_fraction == pytest.approx(flag.mean(), abs=1e-12)
        assert info.flag_row_fraction == pytest.approx(t.getcol("FLAG_ROW").mean(), abs=1e-12)

        with _sub(t, "ANTENNA") as ant:
            assert info.antenna_names == tuple(ant.getcol("NAME"))
            np.testing.assert_array_equal(info.antenna_positions_array, ant.getcol("POSITION"))
        with _sub(t, "SPECTRAL_WINDOW") as spw:
            freqs, widths = spw.getcell("CHAN_FREQ", 0), spw.getcell("CHAN_WIDTH", 0)
            np.testing.assert_array_equal(info.chan_freqs_array, freqs)
            np.testing.assert_array_equal(info.chan_widths_array, widths)
            assert info.freq_range == pytest.approx((freqs[0] - widths[0] / 2, freqs[-1] + widths[-1] / 2))
            assert info.ref_frequency == spw.getcell("REF_FREQUENCY", 0)
        with _sub(t, "POLARIZATION") as pol:
            names = {5: "RR", 6: "RL", 7: "LR", 8: "LL", 9: "XX", 10: "XY", 11: "YX", 12: "YY"}
            assert info.correlations == tuple(names[c] for c in pol.getcell("CORR_TYPE", 0))
        with _sub(t, "FIELD") as field:
            ra, dec = field.getcell("PHASE_DIR", 0)[0]
            assert info.phase_centre == pytest.approx((ra % (2 * math.pi), dec), abs=1e-15)
            assert info.phase_centre_deg == pytest.approx((math.degrees(ra % (2 * math.pi)), math.degrees(dec)))
            assert info.phase_centre_frame == field.getcolkeyword("PHASE_DIR", "MEASINFO")["Ref"]
            ra_s, dec_s = info.phase_centre_sexagesimal
            assert _parse_sexagesimal(ra_s, hours=True) == pytest.approx(ra % (2 * math.pi), abs=1e-8)
            assert _parse_sexagesimal(dec_s, hours=False) == pytest.approx(dec, abs=1e-8)
        with _sub(t, "OBSERVATION") as obs:
            assert info.telescope == obs.getcell("TELESCOPE_NAME", 0)


def test_known_facts_of_the_real_data(infos: dict[str, MSInfo]) -> None:
    """Facts about DP3's test MSs, stated independently of casacore."""
    lofar, oskar, dish = infos["tDDECal"], infos["tOSKAR"], infos["tDish"]
    assert (lofar.telescope, lofar.n_antennas, lofar.n_baselines, lofar.n_times, lofar.n_chan) == ("LOFAR", 8, 28, 6, 8)
    assert lofar.data_columns == ("DATA", "foursources_DATA")
    assert lofar.correlations == ("XX", "XY", "YX", "YY")
    assert 0 < lofar.flagged_fraction < 1 and not lofar.all_flagged
    assert lofar.phase_centre_sexagesimal == ("01:37:41.2994", "+33:09:35.132")
    assert (oskar.n_times, oskar.n_slots, oskar.n_baselines, oskar.interval) == (600, 600, 45, pytest.approx(0.3))
    assert oskar.phase_centre_deg == pytest.approx((20.0, -30.0))
    assert oskar.time_first_utc == "2000-01-02T10:46:05.220"
    assert oskar.flagged_fraction == 0.0
    assert dish.telescope == "MeerKAT" and dish.n_antennas == 62
    assert dish.has_autocorrelations and not lofar.has_autocorrelations and not oskar.has_autocorrelations
    assert dish.all_flagged and dish.flagged_fraction == 1.0


def test_all_flagged_ms_is_refused(infos: dict[str, MSInfo]) -> None:
    with pytest.raises(UserError, match=r"every visibility in \S+/tDish.MS is flagged: nothing to calibrate or image"):
        require_unflagged(infos["tDish"])
    require_unflagged(infos["tDDECal"])  # partly flagged is fine


def test_without_flag_stats(real_ms_readonly: dict[str, Path], infos: dict[str, MSInfo]) -> None:
    info = inspect_ms(real_ms_readonly["tDDECal"], flag_stats=False)
    assert info.flagged_fraction is None and info.flag_row_fraction is None
    with pytest.raises(ValueError, match="flag_stats=True"):
        info.all_flagged  # noqa: B018
    with pytest.raises(ValueError):
        require_unflagged(info)
    # everything else is the same as with flag statistics
    full = infos["tDDECal"]
    assert info.n_slots == full.n_slots and info.n_baselines == full.n_baselines


def test_reading_in_small_blocks_gives_the_same_answer(
    real_ms_readonly: dict[str, Path], infos: dict[str, MSInfo], monkeypatch: pytest.MonkeyPatch
) -> None:
    """tOSKAR (27,000 rows) read in 1024-row blocks: 27 blocks, same result."""
    monkeypatch.setattr(ms_inspect, "FLAG_BLOCK_BYTES", 1)
    monkeypatch.setattr(ms_inspect, "_CACHE", {})  # read it again, not the cached answer
    again = inspect_ms(real_ms_readonly["tOSKAR"])
    assert again == infos["tOSKAR"] and again is not infos["tOSKAR"]


def test_other_data_column(real_ms_readonly: dict[str, Path]) -> None:
    info = inspect_ms(real_ms_readonly["tDDECal"], data_column="foursources_DATA")
    assert info.data_column == "foursources_DATA"


def _hash_tree(root: Path) -> dict[str, tuple[str, int]]:
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = Path(dirpath) / f
            out[str(p.relative_to(root))] = (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
    return out


@pytest.mark.parametrize("key", KEYS)
def test_inspect_never_modifies_the_ms(key: str, real_ms, capsys: pytest.CaptureFixture[str]) -> None:
    path = real_ms(key)
    before = _hash_tree(path)
    inspect_ms(path)
    inspect_ms(path, data_column="DATA", flag_stats=False)
    assert main(["inspect", "--json", str(path)]) == 0
    assert main(["plan", str(path), "--n-chunks", "2"]) == 0
    capsys.readouterr()
    assert _hash_tree(path) == before


def test_infos_are_hashable_and_json_ready(infos: dict[str, MSInfo]) -> None:
    assert len({hash(i) for i in infos.values()}) == 3
    for info in infos.values():
        d = info.to_dict()
        assert json.loads(json.dumps(d)) == d


def test_an_ms_is_read_once_per_run_until_it_changes(real_ms) -> None:
    """The pre-work checks and every cycle's chunk planning inspect the same MS: the FLAG scan is done
    once; a write to the MS (here: flags) is seen at the next call."""
    ms = real_ms("tDDECal")
    first = inspect_ms(ms)
    assert inspect_ms(ms) is first
    assert inspect_ms(ms, flag_stats=False) is not first  # another question, answered apart
    with pt.table(str(ms), readonly=False, ack=False) as t:
        flags = t.getcol("FLAG")
        flags[:5] = True
        t.putcol("FLAG", flags)
    again = inspect_ms(ms)
    assert again is not first and again.flagged_fraction > first.flagged_fraction
