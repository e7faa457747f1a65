"""Read and write sky models in the makesourcedb / DP3 text format.

The format (DP3 reads it directly as ``ddecal.sourcedb`` / ``predict.sourcedb``)
is a comma-separated table whose columns are named by a FORMAT line, either
``FORMAT = Name, Type, Patch, Ra, Dec, I`` (the first non-comment line) or
``# (Name, Type, Patch, Ra, Dec, I) = format`` (a comment before the first row).
A column may carry a default for empty fields, ``ReferenceFrequency='150e6'``,
or a fixed value that is not in the rows at all, ``Type=fixed'POINT'``. Fields
are separated by commas, or by the one character the FORMAT line uses between
its names (``;``, or blanks: ``FORMAT = Name Type Ra Dec I``). Without a
FORMAT line DP3's default columns (:data:`DEFAULT_FORMAT`) are read, with a warning, as DP3 does.
A row with an empty Name and a Patch is a patch row (``, , P1, ra, dec``) and
must come before the sources of that patch, as DP3 requires.

The reader accepts every column DP3 6.6 reads, with DP3's meaning: the ones
ddpipe models (:data:`COLUMNS`), the optional ones it keeps
(:data:`EXTRA_COLUMNS`: ``OrientationIsAbsolute``, ``RotationMeasure`` with
``PolarizedFraction`` and ``PolarizationAngle``, ``Category``), positions split over ``rah, ram, ras``
/ ``decd, decm, decs`` (written back as Ra and Dec), ``RefType`` (J2000 only),
shapelet files beside non-shapelet rows (ignored, as DP3 does) and a rotation
measure with Q and U at a ``ReferenceWavelength`` (turned into the fraction and
angle DP3 derives from them). It refuses with ``file:line: ...`` what DP3 would
refuse or misread (a patch row after its sources, a column DP3 does not know,
RM columns in a combination DP3 rejects) and what DP3's predict cannot model
(SHAPELET and DISK rows). One exception: a declination in ``dd:mm:ss`` is read
as degrees with a warning (DP3 refuses colons there); :func:`write_skymodel`
always writes degrees.

The writer puts patch rows first, then sources in model order, angles as the
shortest ``<x>deg`` that reads back to the same float, numbers as ``repr``,
and an optional column only when some source uses it:
``parse_skymodel(format_skymodel(m)) == m`` for every model read from a file.
"""

from __future__ import annotations

import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ddpipe.errors import UserError
from ddpipe.fileio import atomic_write
from ddpipe.sky.angles import AngleError, format_degrees, parse_angle
from ddpipe.sky.model import SPEED_OF_LIGHT, Patch, SkyModel, Source

log = logging.getLogger(__name__)

#: Columns ddpipe models, in the order the writer puts them.
COLUMNS = (
    "Name",
    "Type",
    "Patch",
    "Ra",
    "Dec",
    "I",
    "Q",
    "U",
    "V",
    "ReferenceFrequency",
    "SpectralIndex",
    "LogarithmicSI",
    "MajorAxis",
    "MinorAxis",
    "Orientation",
)
#: The columns DP3 assumes for a file without a FORMAT line (it warns).
DEFAULT_FORMAT = "Name, Type, Ra, Dec, I, Q, U, V, MajorAxis, MinorAxis, Orientation"
#: Optional columns DP3 knows and ddpipe keeps; the writer adds each only when a source uses it.
EXTRA_COLUMNS = ("OrientationIsAbsolute", "RotationMeasure", "PolarizedFraction", "PolarizationAngle", "Category")
#: Read only: a rotation measure with Q and U at this wavelength (m) is turned into a fraction and angle.
REFERENCE_WAVELENGTH = "ReferenceWavelength"
#: Position split over columns (hours or degrees, minutes, seconds): read, written back as Ra and Dec.
SPLIT_POSITION = ("rah", "rad", "ram", "ras", "dech", "decd", "decm", "decs")
#: Shapelet coefficient files: only SHAPELET rows use them (refused: DP3's predict cannot model them);
#: DP3 ignores them on other rows, and so does ddpipe.
SHAPELET_COLUMNS = ("IShapelet", "QShapelet", "UShapelet", "VShapelet")
#: Columns DP3 knows that carry nothing ddpipe needs; read (and checked) but not kept.
IGNORED = ("RefType",)
_CANON = {
    n.lower(): n
    for n in COLUMNS + EXTRA_COLUMNS + (REFERENCE_WAVELENGTH,) + SPLIT_POSITION + SHAPELET_COLUMNS + IGNORED
}
#: What the error for a column DP3 does not know says about it.
UNKNOWN_COLUMN = "DP3 does not know it (it would read it as an unused number)"
_TYPES = {"": "POINT", "point": "POINT", "gaussian": "GAUSSIAN"}
#: Types DP3 reads but cannot predict (its predict accepts only points and Gaussians).
_REFUSED_TYPES = {"shapelet": "SHAPELET", "disk": "DISK"}
_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}

_RE_FORMAT_COMMENT = re.compile(r"^\s*#\s*\((.*)\)\s*=\s*format\s*$", re.IGNORECASE)
_RE_FORMAT_COMMENT_LOOSE = re.compile(r"=\s*format\s*$", re.IGNORECASE)
#: A comment shaped like a format comment with another word than "format" (a typo DP3 ignores silently).
_RE_FORMAT_COMMENT_TYPO = re.compile(r"^\s*#\s*\((.*,.*)\)\s*=\s*(\w+)\s*$")
_RE_FORMAT_LINE = re.compile(r"^\s*format\s*=(.*)$", re.IGNORECASE)
_RE_FIELD = re.compile(
    r"""^\s*(?P<name>[A-Za-z_][A-Za-z0-9_:]*)?\s*
        (?:=\s*(?P<fixed>fixed)?\s*(?:'(?P<sq>[^']*)'|"(?P<dq>[^"]*)"))?\s*$""",
    re.VERBOSE | re.IGNORECASE,
)
#: One FORMAT entry (possibly empty) and the blanks after it.
_RE_ENTRY = re.compile(
    r"""\s*(?:[A-Za-z0-9_][A-Za-z0-9_:]*)?\s*(?:=\s*(?:fixed)?\s*(?:'[^']*'|"[^"]*")\s*)?""",
    re.IGNORECASE,
)
_RE_NUMBER = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")


@dataclass(frozen=True)
class _Column:
    """One FORMAT entry: canonical name ("" for a skipped column), its default/fixed value, its name as written."""

    name: str
    default: str | None = None
    fixed: str | None = None
    raw: str = ""


class _LineError(Exception):
    """A problem with one line; turned into ``UserError("file:line: ...")``."""


# --------------------------------------------------------------------------- reading


def read_skymodel(path: str | os.PathLike[str]) -> SkyModel:
    """Read a makesourcedb / DP3 text sky model.

    Parameters
    ----------
    path : path-like
        The sky-model file.

    Returns
    -------
    SkyModel
        Sources and patches in file order; angles in radians.

    Raises
    ------
    UserError
        If the file is missing or unreadable, or malformed (``file:line: what``).
    """
    p = Path(path)
    return parse_skymodel(read_skymodel_text(p, "; check inputs.skymodel"), filename=str(p))


def read_skymodel_text(path: Path, missing_hint: str = "") -> str:
    """A sky-model file's text; a missing or unreadable file is one ``UserError`` line."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: sky model not found{missing_hint}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read the sky model ({exc}); give a readable text file") from None


def parse_skymodel(text: str, filename: str = "<text>") -> SkyModel:
    """Parse sky-model text (see the module docstring for the format).

    Parameters
    ----------
    text : str
        The whole file.
    filename : str
        Name used in error messages.

    Returns
    -------
    SkyModel

    Raises
    ------
    UserError
        ``"<filename>:<line>: <what was expected>"`` for the first problem found.
    """
    return parse_skymodel_columns(text, filename)[0]


def parse_skymodel_columns(
    text: str, filename: str = "<text>", unknown_columns: str = "refuse"
) -> tuple[SkyModel, tuple[tuple[str, str], ...]]:
    """:func:`parse_skymodel`, also returning the FORMAT line's columns.

    Parameters
    ----------
    text, filename
        As :func:`parse_skymodel`.
    unknown_columns : {"refuse", "skip"}
        What to do with a column DP3 does not know: a ``file:line`` error, or
        skip it as DP3 skips a ``dummy`` column (for ``ddpipe sky convert``).

    Returns
    -------
    model : SkyModel
    columns : tuple of (str, str)
        Each FORMAT entry as written and its canonical name ("" for a skipped one).
    """
    got = _Parsed(skip_unknown=unknown_columns == "skip")
    lineno = 0
    try:
        for lineno, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if line and not _read_header(line, lineno, got):
                _read_row(line, lineno, got)
    except _LineError as exc:
        hint = (
            f" (no FORMAT line before line {got.default_format}: read as DP3 does, with its default columns "
            f"{DEFAULT_FORMAT}; start the file with a FORMAT line)"
            if got.default_format
            else ""
        )
        raise UserError(f"{filename}:{lineno}: {exc}{hint}") from None
    if got.default_format:
        log.warning(
            "%s:%d: no FORMAT line before the first row; read with DP3's default columns %s, as DP3 does",
            filename,
            got.default_format,
            DEFAULT_FORMAT,
        )
    model = _finish(got, filename)
    return model, tuple((c.raw, c.name) for c in got.columns or ())


@dataclass
class _Parsed:
    """What :func:`parse_skymodel` has read so far."""

    columns: tuple[_Column, ...] | None = None
    #: the field separator the FORMAT line uses
    separator: str = ","
    format_line: int = 0
    sources: list[Source] = field(default_factory=list)
    #: patch name → (patch, line)
    patches: dict[str, tuple[Patch, int]] = field(default_factory=dict)
    #: source name → line
    source_lines: dict[str, int] = field(default_factory=dict)
    #: patches some source belongs to
    used: set[str] = field(default_factory=set)
    #: lines with a dd:mm:ss declination
    colon_decs: list[int] = field(default_factory=list)
    #: a column DP3 does not know is skipped (else refused)
    skip_unknown: bool = False
    #: the first row, when no FORMAT line came before it (DP3's default columns are used)
    default_format: int = 0


def _read_header(line: str, lineno: int, got: _Parsed) -> bool:
    """A comment or FORMAT line (True; the first FORMAT sets the columns), or False for a data row."""
    if line.startswith("#"):
        if got.columns is None:
            m = _RE_FORMAT_COMMENT.match(line)
            if m:
                (got.columns, got.separator), got.format_line = _parse_format(m.group(1), got.skip_unknown), lineno
            elif _RE_FORMAT_COMMENT_LOOSE.search(line):
                raise _LineError("a format comment must read '# (Name, Type, Ra, Dec, I, ...) = format'")
            elif typo := _RE_FORMAT_COMMENT_TYPO.match(line):
                raise _LineError(
                    f"this looks like a FORMAT comment but ends in '= {typo.group(2)}'; write '= format' "
                    "(DP3 would ignore it and read its default columns)"
                )
        return True
    m = _RE_FORMAT_LINE.match(line)
    if not m:
        return False
    if got.columns is not None:
        raise _LineError(f"second FORMAT line (the first is line {got.format_line}); keep one")
    (got.columns, got.separator), got.format_line = _parse_format(m.group(1), got.skip_unknown), lineno
    return True


def _read_row(line: str, lineno: int, got: _Parsed) -> None:
    """A data row: a source when it has a Name, else a patch row."""
    if got.columns is None:  # DP3 then reads its default columns, with a warning
        got.columns, got.separator = _parse_format(DEFAULT_FORMAT)
        got.default_format = lineno
    values = _row_values(line, got.columns, got.separator)
    if ":" in values.get("Dec", ""):
        got.colon_decs.append(lineno)
    if _unquote(values.get("Name", "")):
        _add_source(values, lineno, got)
    else:
        _add_patch(values, lineno, got)


def _add_source(values: dict[str, str], lineno: int, got: _Parsed) -> None:
    """A source row; its name must be new and its patch (if any) defined above it."""
    src = _source(values, got.patches)
    if src.name in got.source_lines:
        raise _LineError(
            f"source {src.name!r} is already defined on line {got.source_lines[src.name]}; "
            "give each source a unique name"
        )
    got.source_lines[src.name] = lineno
    got.sources.append(src)
    if src.patch is not None:
        got.used.add(src.patch)


def _add_patch(values: dict[str, str], lineno: int, got: _Parsed) -> None:
    """A patch row (empty Name); its name must be new."""
    patch = _patch(values)
    if patch.name in got.patches:
        raise _LineError(f"patch {patch.name!r} is already defined on line {got.patches[patch.name][1]}")
    got.patches[patch.name] = (patch, lineno)


def _finish(got: _Parsed, filename: str) -> SkyModel:
    """The model, after the whole-file checks (a FORMAT line, no patch without sources, some source)."""
    if got.columns is None:
        raise UserError(f"{filename}: no FORMAT line; start the file with '# (Name, Type, Patch, Ra, Dec, I) = format'")
    for name, (_, where) in got.patches.items():
        if name not in got.used:
            raise UserError(
                f"{filename}:{where}: patch {name!r} has no sources; remove the patch row "
                "or add sources with Patch={name}"
            )
    if not got.sources:
        raise UserError(f"{filename}: no sources; expected at least one source row after the FORMAT line")
    if got.colon_decs:
        log.warning(
            "%s:%d: %d declination(s) written dd:mm:ss, which DP3 refuses; read as degrees "
            "(give DP3 the model as ddpipe writes it, in degrees)",
            filename,
            got.colon_decs[0],
            len(got.colon_decs),
        )
    if any(s.rotation_measure is not None for s in got.sources) and not any(s.q or s.u or s.v for s in got.sources):
        log.warning(
            "%s: DP3 6.6 predicts Stokes I only for this model: its rotation-measure sources are polarised, "
            "but no source has a non-zero Q, U or V, which is what DP3 looks at (ddpipe predicts them polarised)",
            filename,
        )
    return SkyModel(
        sources=tuple(got.sources),
        patches=tuple(p for p, _ in got.patches.values()),
        format_fields=tuple(c.name for c in got.columns if c.name),
    )


def _format_entries(spec: str) -> tuple[list[str], str]:
    """The FORMAT text's entries and the separator between them, read as DP3 reads them.

    DP3 takes the character after each entry as its separator (a comma, a semicolon, ...),
    or a blank when the next name follows; ddpipe reads files that use one separator
    throughout (DP3 also allows a different one per column).
    """
    entries: list[str] = []
    seps: list[str] = []
    i = 0
    while True:
        m = _RE_ENTRY.match(spec, i)
        entries.append(m.group(0))
        i = m.end()
        if i >= len(spec):
            break
        ch = spec[i]
        if ch.isalnum() or ch == "_":
            seps.append(" ")
            continue
        if ch in "'\"=":
            raise _LineError(
                f"bad FORMAT entry {spec[m.start() :].split(',')[0].strip()!r}; expected Name or Name='default'"
            )
        seps.append(ch)
        i += 1
    if len(set(seps)) > 1:
        raise _LineError(
            f"the FORMAT line mixes separators ({' '.join(repr(c) for c in dict.fromkeys(seps))}); "
            "ddpipe reads one throughout: use commas"
        )
    return entries, seps[0] if seps else ","


def _parse_format(spec: str, skip_unknown: bool = False) -> tuple[tuple[_Column, ...], str]:
    """FORMAT text (without ``FORMAT =`` / ``# ( ) = format``) → columns and the field separator."""
    columns: list[_Column] = []
    seen: set[str] = set()
    entries, sep = _format_entries(spec)
    for item in entries:
        m = _RE_FIELD.match(item)
        if not m:
            raise _LineError(f"bad FORMAT entry {item.strip()!r}; expected Name or Name='default', separated by commas")
        raw = m.group("name") or ""
        low = raw.lower()
        value = m.group("sq") if m.group("sq") is not None else m.group("dq")
        if low in ("", "dummy") or (skip_unknown and low not in _CANON and low != "spectralindexdegree"):
            columns.append(_Column("", raw=raw))
            continue
        if low == "spectralindexdegree":
            raise _LineError("column 'SpectralIndexDegree' is refused by DP3; write SpectralIndex='[c0, c1, ...]'")
        if low not in _CANON:
            raise _LineError(
                f"unknown column {raw!r}: {UNKNOWN_COLUMN}; "
                "remove it or use one of " + ", ".join(COLUMNS + EXTRA_COLUMNS)
            )
        name = _CANON[low]
        if name in seen:
            raise _LineError(f"column {name!r} appears twice in the FORMAT line")
        seen.add(name)
        if m.group("fixed"):
            columns.append(_Column(name, fixed=value, raw=raw))
        else:
            columns.append(_Column(name, default=value, raw=raw))
    if "Name" not in seen:
        raise _LineError("the FORMAT line has no 'Name' column; DP3 needs Name, Ra and Dec")
    _check_position_columns(seen, "Ra", "rah", "rad", "ram", "ras")
    _check_position_columns(seen, "Dec", "dech", "decd", "decm", "decs")
    return tuple(columns), sep


def _check_position_columns(seen: set[str], whole: str, hours: str, degrees: str, minutes: str, seconds: str) -> None:
    """DP3's rules: ``Ra`` or the split columns, not both; not hours and degrees together."""
    split = [c for c in (hours, degrees, minutes, seconds) if c in seen]
    if whole in seen and split:
        raise _LineError(f"the FORMAT line has {whole!r} and {', '.join(split)}; DP3 takes one or the other")
    if hours in seen and degrees in seen:
        raise _LineError(f"the FORMAT line has both {hours!r} and {degrees!r}; DP3 takes one of them")
    if whole not in seen and not split:
        raise _LineError(f"the FORMAT line has no {whole!r} column; DP3 needs Name, Ra and Dec")


def _split(line: str, sep: str = ",") -> list[str]:
    """Split on ``sep`` outside quotes and square brackets; a blank ``sep`` is any run of blanks."""
    parts: list[str] = []
    depth = 0
    quote = ""
    start = 0
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise _LineError(f"unbalanced ']' at column {i + 1}")
        elif depth == 0 and (ch == sep or (sep == " " and ch == "\t")):
            parts.append(line[start:i])
            start = i + 1
    if quote:
        raise _LineError(f"unclosed quote {quote}")
    if depth:
        raise _LineError("unclosed '['")
    parts.append(line[start:])
    return [p for p in parts if p.strip()] if sep == " " else parts


def _row_values(line: str, columns: tuple[_Column, ...], sep: str = ",") -> dict[str, str]:
    """One data row → {column: value text}, defaults and fixed values applied."""
    fields = [f.strip() for f in _split(line, sep)]
    wanted = sum(1 for c in columns if c.fixed is None)
    if len(fields) > wanted and any(fields[wanted:]):
        raise _LineError(f"{len(fields)} fields but the FORMAT line names {wanted}")
    values: dict[str, str] = {}
    it = iter(fields)
    for col in columns:
        value = col.fixed if col.fixed is not None else next(it, "")
        if not value and col.default is not None:
            value = col.default
        if col.name:
            values[col.name] = value
    return values


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _number(values: dict[str, str], key: str, default: float | None = None) -> float:
    text = _unquote(values.get(key, ""))
    if not text:
        if default is None:
            raise _LineError(f"missing {key}")
        return default
    if not _RE_NUMBER.match(text):
        raise _LineError(f"{key} {text!r} is not a number")
    value = float(text)
    if not math.isfinite(value):
        raise _LineError(f"{key} {text!r} is not finite")
    return value


def _coordinate(values: dict[str, str], name: str, unit: str, split: tuple[str, ...]) -> tuple[str, float]:
    """One coordinate's text and radians: its own column, else the split columns (``rah, rad, ram, ras``)."""
    if name in values:
        return values[name], _angle(values[name], name, unit)
    return _split_text(values, *split), _split_angle(values, *split)


def _position(values: dict[str, str]) -> tuple[float, float]:
    ra_text, ra = _coordinate(values, "Ra", "h", ("rah", "rad", "ram", "ras"))
    dec_text, dec = _coordinate(values, "Dec", "deg", ("dech", "decd", "decm", "decs"))
    if not -2 * math.pi <= ra <= 2 * math.pi:
        raise _LineError(f"Ra {ra_text!r} is {math.degrees(ra):.6g} degrees, outside ±360")
    if not -math.pi / 2 <= dec <= math.pi / 2:
        raise _LineError(f"Dec {dec_text!r} is {math.degrees(dec):.6g} degrees, outside ±90")
    return ra, dec


def _angle(text: str, key: str, colon_unit: str) -> float:
    if not text:
        raise _LineError("missing Ra or Dec")
    try:
        return parse_angle(text, colon_unit=colon_unit)
    except AngleError as exc:
        raise _LineError(f"bad {key}: {exc}") from None


def _split_text(values: dict[str, str], *keys: str) -> str:
    return " ".join(f"{k}={values[k]}" for k in keys if values.get(k, ""))


def _split_angle(values: dict[str, str], hours: str, degrees: str, minutes: str, seconds: str) -> float:
    """A position in DP3's split columns (e.g. ``rah, ram, ras``), read as DP3 reads it.

    The whole part is hours (``rah``/``dech``) or degrees (``rad``/``decd``); minutes and
    seconds take its sign (a "-0" whole part counts as positive, as in DP3).
    """
    if not any(values.get(k, "") for k in (hours, degrees, minutes, seconds)):
        raise _LineError("missing Ra or Dec")
    whole = _number(values, hours if hours in values else degrees, 0.0)
    rest = _number(values, minutes, 0.0) + _number(values, seconds, 0.0) / 60
    value = whole - rest / 60 if whole < 0 else whole + rest / 60
    if hours in values:
        value *= 15
    return math.radians(value)


def _patch(values: dict[str, str]) -> Patch:
    name = _unquote(values.get("Patch", ""))
    if not name:
        raise _LineError("row has neither a Name (source row) nor a Patch (patch row ', , P1, ra, dec')")
    ra, dec = _position(values)
    return Patch(name=name, ra=ra, dec=dec)


def _source(values: dict[str, str], patches: dict[str, tuple[Patch, int]]) -> Source:
    name = _unquote(values["Name"])
    stype = _source_type(values, name)
    ref = _unquote(values.get("RefType", ""))
    if ref and ref.upper() != "J2000":
        raise _LineError(f"source {name!r}: RefType {ref!r} is not supported; only J2000")
    patch = _unquote(values.get("Patch", "")) or None
    if patch is not None and patch not in patches:
        raise _LineError(
            f"source {name!r} is in patch {patch!r}, which no patch row above defines (DP3 refuses that too); "
            f"put the patch row ', , {patch}, ra, dec' before its sources"
        )
    ra, dec = _position(values)
    if not values.get("I", ""):
        raise _LineError(f"source {name!r}: missing I (DP3 would silently use 1 Jy)")
    reffreq = _number(values, "ReferenceFrequency", 0.0)
    si = _spectral_index(values.get("SpectralIndex", ""))
    if si and reffreq <= 0:
        raise _LineError(f"source {name!r}: SpectralIndex given but no positive ReferenceFrequency")
    category = _unquote(values.get("Category", ""))
    if category and not re.match(r"^[+-]?\d+$", category):
        raise _LineError(f"source {name!r}: Category {category!r} is not a whole number")
    return Source(
        name=name,
        ra=ra,
        dec=dec,
        i=_number(values, "I"),
        type=stype,
        patch=patch,
        v=_number(values, "V", 0.0),
        reference_frequency=reffreq,
        spectral_index=si,
        log_si=_boolean(values, "LogarithmicSI", default=True),
        category=int(category) if category else None,
        **_shape(values, name, stype),
        **_polarisation(values, name, reffreq, si),
    )


def _source_type(values: dict[str, str], name: str) -> str:
    type_text = _unquote(values.get("Type", ""))
    stype = _TYPES.get(type_text.lower())
    if stype is not None:
        return stype
    if type_text.lower() in _REFUSED_TYPES:
        raise _LineError(
            f"source {name!r} is a {_REFUSED_TYPES[type_text.lower()]} source, which neither ddpipe nor DP3's "
            "predict can model; replace it by POINT or GAUSSIAN components or remove it"
        )
    raise _LineError(f"source {name!r}: unknown Type {type_text!r}; use POINT or GAUSSIAN")


def _shape(values: dict[str, str], name: str, stype: str) -> dict[str, float | bool]:
    """Gaussian axes, orientation and its reference (``OrientationIsAbsolute``)."""
    shape: dict[str, float | bool] = {}
    if stype == "GAUSSIAN":
        missing = [k for k in ("MajorAxis", "MinorAxis", "Orientation") if not values.get(k, "")]
        if missing:
            raise _LineError(
                f"GAUSSIAN source {name!r} needs MajorAxis, MinorAxis (arcsec) and Orientation (deg); "
                "missing " + ", ".join(missing)
            )
    for key, attr in (("MajorAxis", "major_axis"), ("MinorAxis", "minor_axis"), ("Orientation", "orientation")):
        shape[attr] = _number(values, key, 0.0)
        if attr != "orientation" and shape[attr] < 0:
            raise _LineError(f"source {name!r}: {key} {shape[attr]!r} is negative")
    shape["orientation_is_absolute"] = _boolean(values, "OrientationIsAbsolute", default=False)
    return shape


def _polarisation(values: dict[str, str], name: str, reffreq: float, si: tuple[float, ...]) -> dict[str, float | None]:
    """Q and U, or a rotation measure with a polarised fraction and angle, by DP3's rules.

    A rotation measure with Q and U is turned into the fraction and angle DP3 derives
    from them (:func:`rm_fraction_angle`).
    """
    keys = ("Q", "U", "RotationMeasure", "PolarizedFraction", "PolarizationAngle", REFERENCE_WAVELENGTH)
    q, u, rm, frac, angle, wavel = (_unquote(values.get(k, "")) for k in keys)
    if not rm:
        if frac or angle or wavel:
            raise _LineError(
                f"source {name!r}: PolarizedFraction, PolarizationAngle and ReferenceWavelength need a "
                "RotationMeasure (DP3 refuses them without); give one or leave them empty"
            )
        return {"q": _number(values, "Q", 0.0), "u": _number(values, "U", 0.0)}
    out: dict[str, float | None] = {"rotation_measure": _number(values, "RotationMeasure")}
    if q or u:
        if not (q and u) or frac or angle:
            raise _LineError(
                f"source {name!r}: with a RotationMeasure give both Q and U, or PolarizedFraction and "
                "PolarizationAngle, not a mix"
            )
        if not wavel and reffreq <= 0:
            raise _LineError(f"source {name!r}: RotationMeasure with Q and U needs a ReferenceWavelength or Frequency")
        lam = _number(values, REFERENCE_WAVELENGTH) if wavel else SPEED_OF_LIGHT / reffreq
        if si and lam <= 0:
            raise _LineError(f"source {name!r}: ReferenceWavelength must be positive with a SpectralIndex")
        i = _number(values, "I")
        frac_angle = rm_fraction_angle(
            i, _number(values, "Q"), _number(values, "U"), out["rotation_measure"], lam, reffreq, si
        )
        out["polarized_fraction"], out["polarization_angle"] = frac_angle
        return out
    if not (frac and angle):
        raise _LineError(f"source {name!r}: RotationMeasure needs Q and U, or PolarizedFraction and PolarizationAngle")
    if wavel and _number(values, REFERENCE_WAVELENGTH) != 0:
        raise _LineError(f"source {name!r}: PolarizedFraction/PolarizationAngle go with ReferenceWavelength 0 only")
    out["polarized_fraction"] = _number(values, "PolarizedFraction")
    out["polarization_angle"] = _number(values, "PolarizationAngle")
    return out


def rm_fraction_angle(
    i: float, q: float, u: float, rm: float, wavelength: float, reffreq: float, si: tuple[float, ...]
) -> tuple[float, float]:
    """The polarised fraction and angle at λ = 0 (radians) DP3 derives from Q and U given with a rotation measure.

    Q and U hold at ``wavelength`` λr (m): p = √(Q² + U²) / I(c/λr),
    χ0 = ½·atan2(U, Q) − RM·λr² modulo π, where I(c/λr) applies the spectral terms
    ``si`` (about ``reffreq``) as logarithmic ones whatever LogarithmicSI says, as DP3 6.6 does.
    """
    scale = 1.0
    if si:
        x = math.log10(SPEED_OF_LIGHT / wavelength / reffreq)
        scale = 10.0 ** (x * sum(c * x**k for k, c in enumerate(si)))
    frac = math.hypot(q, u) / (i * scale)
    angle = math.fmod(0.5 * math.atan2(u, q) - wavelength * wavelength * rm, math.pi)
    return frac, angle + math.pi if angle < 0 else angle


def _spectral_index(text: str) -> tuple[float, ...]:
    text = _unquote(text.strip())
    if not text:
        return ()
    if text.startswith("[") != text.endswith("]"):
        raise _LineError(f"SpectralIndex {text!r}: mismatched brackets; write [c0, c1, ...]")
    if text.startswith("["):
        inner = text[1:-1].strip()
        items = [s.strip() for s in inner.split(",")] if inner else []
    else:
        items = [text]
    out = []
    for item in items:
        if not _RE_NUMBER.match(item):
            raise _LineError(f"SpectralIndex {text!r}: {item!r} is not a number; write [c0, c1, ...]")
        out.append(float(item))
    return tuple(out)


def _boolean(values: dict[str, str], key: str, default: bool) -> bool:
    text = values.get(key, "")
    t = _unquote(text.strip()).lower()
    if not t:
        return default
    if t in _TRUE:
        return True
    if t in _FALSE:
        return False
    raise _LineError(f"{key} {text!r} is not true or false")


# --------------------------------------------------------------------------- writing

_BAD_NAME = re.compile(r"[,'\"\[\]]|^\s|\s$|^#|^$")


def format_skymodel(model: SkyModel) -> str:
    """The model as makesourcedb / DP3 text (see the module docstring).

    Parameters
    ----------
    model : SkyModel
        Sources may name patches that have no :class:`Patch` entry: their patch
        row is put at the flux-weighted centroid (``SkyModel.patch_centre``).

    Returns
    -------
    str
        The file contents, ending in a newline.

    Raises
    ------
    UserError
        For a model DP3 could not read back the same: empty, duplicate or
        unwritable names, non-finite numbers, a spectral index without a
        reference frequency, a type other than POINT/GAUSSIAN.
    """
    if not model.sources:
        raise UserError("sky model has no sources; nothing to write")
    extra = _extra_columns(model.sources)
    lines = [
        "# (" + ", ".join(written_columns(model)) + ") = format",
        "# written by ddpipe: angles in degrees, fluxes in Jy, axes FWHM in arcsec, orientation in degrees",
        "",
    ]
    written: set[str] = set()
    for name in model.patch_names():
        _check_name(name, "patch")
        if name in written:
            raise UserError(f"patch {name!r} is defined twice in the sky model; merge or rename one")
        written.add(name)
        if not model.sources_in(name):
            raise UserError(f"patch {name!r} has no sources; DP3 would get an empty direction")
        ra, dec = model.patch_centre(name)
        lines.append(f", , {name}, {format_degrees(ra)}, {format_degrees(dec)}")
    lines.append("")
    names: set[str] = set()
    for s in model.sources:
        lines.append(_format_source(s, extra))
        if s.name in names:
            raise UserError(f"source {s.name!r} appears twice in the sky model; give each a unique name")
        names.add(s.name)
    return "\n".join(lines) + "\n"


def _check_name(name: str, what: str) -> None:
    if _BAD_NAME.search(name):
        raise UserError(
            f"{what} name {name!r} cannot be written: it must be non-empty, without commas, quotes, "
            "brackets, a leading '#' or surrounding blanks"
        )


def _num(value: float, what: str) -> str:
    x = float(value)
    if not math.isfinite(x):
        raise UserError(f"{what} is {value!r}; sky-model numbers must be finite")
    return repr(x)


def written_columns(model: SkyModel) -> tuple[str, ...]:
    """The columns :func:`format_skymodel` writes for ``model``: :data:`COLUMNS`, then the
    :data:`EXTRA_COLUMNS` some source uses."""
    return COLUMNS + _extra_columns(model.sources)


def _extra_columns(sources: tuple[Source, ...]) -> tuple[str, ...]:
    """The :data:`EXTRA_COLUMNS` some source needs, in that order."""
    used = {
        "OrientationIsAbsolute": any(s.orientation_is_absolute for s in sources),
        "RotationMeasure": any(s.rotation_measure is not None for s in sources),
        "PolarizedFraction": any(s.polarized_fraction is not None for s in sources),
        "PolarizationAngle": any(s.polarized_fraction is not None for s in sources),
        "Category": any(s.category is not None for s in sources),
    }
    return tuple(c for c in EXTRA_COLUMNS if used[c])


def _check_polarisation(s: Source, what: str) -> None:
    """Refuse a rotation-measure combination DP3 would refuse or misread."""
    fraction_angle = (s.polarized_fraction is not None, s.polarization_angle is not None)
    if s.rotation_measure is None and any(fraction_angle):
        raise UserError(f"{what}: polarised fraction or angle without a rotation measure")
    if s.rotation_measure is not None and (not all(fraction_angle) or s.q or s.u):
        raise UserError(f"{what}: a rotation measure needs a polarised fraction and angle, and Q = U = 0")


def _optional(value: float | None, what: str) -> str:
    return "" if value is None else _num(value, what)


def _format_source(s: Source, extra: tuple[str, ...] = ()) -> str:
    _check_name(s.name, "source")
    what = f"source {s.name!r}"
    stype = s.type.upper()
    if stype not in ("POINT", "GAUSSIAN"):
        raise UserError(f"{what}: type {s.type!r} cannot be written; use POINT or GAUSSIAN")
    if s.spectral_index and not s.reference_frequency > 0:
        raise UserError(f"{what}: spectral index without a positive reference frequency")
    _check_polarisation(s, what)
    si = "[" + ", ".join(_num(c, f"{what} spectral index") for c in s.spectral_index) + "]"
    by_fraction = s.rotation_measure is not None  # DP3 refuses Q/U beside a fraction and angle
    fields = [
        s.name,
        stype,
        s.patch or "",
        format_degrees(s.ra),
        format_degrees(s.dec),
        _num(s.i, f"{what} I"),
        "" if by_fraction else _num(s.q, f"{what} Q"),
        "" if by_fraction else _num(s.u, f"{what} U"),
        _num(s.v, f"{what} V"),
        _num(s.reference_frequency, f"{what} reference frequency"),
        si,
        "true" if s.log_si else "false",
        _num(s.major_axis, f"{what} major axis"),
        _num(s.minor_axis, f"{what} minor axis"),
        _num(s.orientation, f"{what} orientation"),
    ]
    values = {
        "OrientationIsAbsolute": "true" if s.orientation_is_absolute else "false",
        "RotationMeasure": _optional(s.rotation_measure, f"{what} rotation measure"),
        "PolarizedFraction": _optional(s.polarized_fraction, f"{what} polarised fraction"),
        "PolarizationAngle": _optional(s.polarization_angle, f"{what} polarisation angle"),
        "Category": "" if s.category is None else str(int(s.category)),
    }
    return ", ".join(fields + [values[c] for c in extra])


def write_skymodel(model: SkyModel, path: str | os.PathLike[str]) -> Path:
    """Write ``model`` to ``path`` atomically (temporary file in the same folder, then rename).

    Parameters
    ----------
    model : SkyModel
    path : path-like
        Destination; its folder must exist.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    UserError
        When the model cannot be written (see :func:`format_skymodel`) or the
        folder is missing or not writable.
    """
    p = Path(path)
    text = format_skymodel(model)
    try:
        atomic_write(p, text)
    except OSError as exc:
        raise UserError(f"{p}: cannot write the sky model there ({exc.strerror}); check the folder") from None
    log.debug("wrote %d sources, %d patches to %s", len(model.sources), len(model.patch_names()), p)
    return p
