"""``ddpipe sky convert``: any sky model DP3 reads → one ddpipe and DP3 both read, saying what was dropped.

The input is read as :func:`~ddpipe.sky.skymodel.read_skymodel` reads it; with
``drop_unknown`` a column DP3 does not know is skipped (DP3 itself reads its
numbers and uses none) instead of refused as a likely misspelling. The output is what
:func:`~ddpipe.sky.skymodel.write_skymodel` writes. Every input column the output
does not have gets one line saying what was dropped and why; nothing that DP3's
predict uses is lost (the DP3 tests predict both files and compare).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ddpipe.errors import UserError
from ddpipe.sky.model import SkyModel
from ddpipe.sky.skymodel import (
    EXTRA_COLUMNS,
    IGNORED,
    REFERENCE_WAVELENGTH,
    SHAPELET_COLUMNS,
    SPLIT_POSITION,
    UNKNOWN_COLUMN,
    parse_skymodel_columns,
    read_skymodel_text,
    write_skymodel,
    written_columns,
)

log = logging.getLogger(__name__)

#: Why an optional column that no source uses is left out.
_UNUSED = {
    "OrientationIsAbsolute": "false for every source, which is DP3's default",
    "RotationMeasure": "empty in every row",
    "PolarizedFraction": "empty in every row",
    "PolarizationAngle": "empty in every row",
    "Category": "empty in every row (the category is not used by DP3's predict)",
}


@dataclass(frozen=True)
class Conversion:
    """What :func:`convert_skymodel` wrote and what it left out.

    Attributes
    ----------
    model
        The model written.
    dropped
        One line per input column not in the output: ``"column 'X': why"``.
    """

    model: SkyModel
    dropped: tuple[str, ...]


def dropped_columns(columns: tuple[tuple[str, str], ...], model: SkyModel) -> tuple[str, ...]:
    """One line per input column (``(as written, canonical)``) that writing ``model`` leaves out, and why."""
    kept = set(written_columns(model))
    out = []
    for k, (raw, name) in enumerate(columns, start=1):
        if name in kept:
            continue
        label = f"column {raw!r}" if raw else f"column {k} (unnamed)"
        out.append(f"{label}: {_why(raw, name)}")
    return tuple(out)


def _why(raw: str, name: str) -> str:
    if not name:
        if raw.lower() in ("", "dummy"):
            return "a skipped column, which DP3 skips too"
        return "DP3 does not know it (it reads its numbers and uses none)"
    if name in IGNORED:
        return "every source is J2000, which DP3 assumes without it"
    if name in SPLIT_POSITION:
        return "positions are written as Ra and Dec in degrees, to the same value"
    if name == REFERENCE_WAVELENGTH:
        return (
            "rotation measures given with Q and U at that wavelength are written as the "
            "PolarizedFraction and PolarizationAngle DP3 derives from them"
        )
    if name in SHAPELET_COLUMNS:
        return "only SHAPELET sources use it, and DP3 ignores it on the model's POINT and GAUSSIAN rows"
    if name in EXTRA_COLUMNS:
        return _UNUSED[name]
    raise AssertionError(f"column {name} is always written")  # pragma: no cover - COLUMNS are all written


def convert_skymodel(
    src: str | os.PathLike[str], dst: str | os.PathLike[str], overwrite: bool = False, drop_unknown: bool = False
) -> Conversion:
    """Read the sky model ``src`` (any form DP3 reads) and write it to ``dst`` as ddpipe writes it.

    Parameters
    ----------
    src
        The input sky model; never written.
    dst
        The output; written atomically.
    overwrite
        Replace an existing ``dst``.
    drop_unknown
        Drop a column DP3 does not know (else it is refused, as a misspelling may be).

    Returns
    -------
    Conversion

    Raises
    ------
    UserError
        ``src`` missing or malformed (``file:line: ...``), ``dst`` the input or
        existing without ``overwrite``, or its folder not writable.
    """
    src_p, dst_p = Path(src), Path(dst)
    if dst_p.exists() and src_p.exists() and dst_p.resolve() == src_p.resolve():
        raise UserError(f"{dst_p}: that is the input sky model; give the converted one another name")
    if dst_p.exists() and not overwrite:
        raise UserError(f"{dst_p} exists; give another name or pass --overwrite")
    text = read_skymodel_text(src_p)
    try:
        model, columns = parse_skymodel_columns(text, str(src_p), unknown_columns="skip" if drop_unknown else "refuse")
    except UserError as exc:
        if UNKNOWN_COLUMN in str(exc):
            raise UserError(f"{exc}; or pass --drop-unknown to drop it") from None
        raise
    write_skymodel(model, dst_p)
    dropped = dropped_columns(columns, model)
    log.debug("converted %s → %s (%d column(s) dropped)", src_p, dst_p, len(dropped))
    return Conversion(model=model, dropped=dropped)
