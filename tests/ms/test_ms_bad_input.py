"""Bad input: every case ends in a one-line UserError naming the path, and exit 2 from the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import casacore.tables as pt
import pytest

from ddpipe.cli import main
from ddpipe.errors import UserError
from ddpipe.ms.inspect import inspect_ms


def _missing(tmp_path: Path, real_ms) -> Path:
    return tmp_path / "nope.MS"


def _text_file(tmp_path: Path, real_ms) -> Path:
    p = tmp_path / "notes.MS"
    p.write_text("not a table\n")
    return p


def _plain_dir(tmp_path: Path, real_ms) -> Path:
    p = tmp_path / "plain.MS"
    p.mkdir()
    (p / "readme.txt").write_text("just a folder\n")
    return p


def _not_an_ms(tmp_path: Path, real_ms) -> Path:
    return real_ms("tOSKAR") / "ANTENNA"  # a casacore table, but a subtable


def _no_data(tmp_path: Path, real_ms) -> Path:
    p = real_ms("tDDECal")
    with pt.table(str(p), readonly=False, ack=False) as t:
        t.removecols(["DATA"])
    return p


def _empty(tmp_path: Path, real_ms) -> Path:
    dst = tmp_path / "empty.MS"
    with pt.table(str(real_ms("tOSKAR")), ack=False) as t:
        t.selectrows([]).copy(str(dst), deep=True).close()
    return dst


def _add_row(subtable: str) -> Callable[[Path, object], Path]:
    def make(tmp_path: Path, real_ms) -> Path:
        p = real_ms("tDDECal")
        with pt.table(str(p / subtable), readonly=False, ack=False) as s:
            s.addrows(1)
            for col in s.colnames():
                if s.iscelldefined(col, 0):
                    s.putcell(col, 1, s.getcell(col, 0))
        return p

    return make


def _no_observation_row(tmp_path: Path, real_ms) -> Path:
    p = real_ms("tOSKAR")
    obs = p / "OBSERVATION"
    pt.taql(f"DELETE FROM '{obs}'")  # (table.removerows on it did not persist with python-casacore 3.x)
    with pt.table(str(obs), ack=False) as s:
        assert s.nrows() == 0
    return p


def _no_field_subtable(tmp_path: Path, real_ms) -> Path:
    p = real_ms("tOSKAR")
    with pt.table(str(p), readonly=False, ack=False) as t:
        t.removekeyword("FIELD")
    return p


def _rows_in_second_field(tmp_path: Path, real_ms) -> Path:
    p = real_ms("tOSKAR")
    with pt.table(str(p), readonly=False, ack=False) as t:
        t.putcell("FIELD_ID", 5, 1)
    return p


CASES = {
    # name: (maker, data_column, regex the message must match)
    "missing path": (_missing, "DATA", r"nope\.MS: no such file or directory; check"),
    "text file": (_text_file, "DATA", r"notes\.MS: is a file, not a Measurement Set"),
    "plain directory": (_plain_dir, "DATA", r"plain\.MS: is not a casacore table"),
    "table that is not an MS": (_not_an_ms, "DATA", r"ANTENNA: is a casacore table but not a Measurement Set"),
    "no DATA column": (_no_data, "DATA", r"tDDECal\.MS: no data column 'DATA'; it has foursources_DATA; choose"),
    "no such column": (lambda tmp, r: r("tOSKAR"), "CORRECTED_DATA", r"no data column 'CORRECTED_DATA'; it has DATA;"),
    "zero rows": (_empty, "DATA", r"empty\.MS: the main table has zero rows"),
    "two fields": (
        _add_row("FIELD"),
        "DATA",
        r"has 2 fields \(FIELD rows\): .*unsupported; split it into one MS per field",
    ),
    "two spectral windows": (
        _add_row("SPECTRAL_WINDOW"),
        "DATA",
        r"has 2 spectral windows .*unsupported; .*msin\.band",
    ),
    "two data descriptions": (_add_row("DATA_DESCRIPTION"), "DATA", r"has 2 data descriptions .*unsupported"),
    "rows in a second field": (_rows_in_second_field, "DATA", r"rows use FIELD_ID \[0, 1\]"),
    "no OBSERVATION row": (_no_observation_row, "DATA", r"the OBSERVATION table has no row"),
    "no FIELD subtable": (_no_field_subtable, "DATA", r"not a complete Measurement Set \(no subtable FIELD\)"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_clear_line(case: str, tmp_path: Path, real_ms, capsys: pytest.CaptureFixture[str]) -> None:
    make, column, pattern = CASES[case]
    path = make(tmp_path, real_ms)
    with pytest.raises(UserError, match=pattern) as exc:
        inspect_ms(path, data_column=column)
    message = str(exc.value)
    assert "\n" not in message
    assert message.startswith(str(path.resolve()) if path.exists() else str(path))

    assert main(["inspect", "--data-column", column, str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"ddpipe inspect: error: {message}\n"
    assert main(["plan", str(path), "--n-chunks", "2"]) == (2 if column == "DATA" else 0)
    capsys.readouterr()
