"""Pure builders of DP3 parsets: ``dict[str, str]`` of DP3 keys, no I/O.

Each builder returns the keys of one DP3 run in a fixed order, so that the argv
(:func:`dp3_argv`) and the parset file kept in the workdir (:func:`format_parset`)
are reproducible and can be hashed for resume. Golden tests pin the full argv.

Key names and value formats follow DP3's step documentation (DDECal, Predict,
H5ParmPredict, ApplyCal, msin/msout). Notes that shaped them:

- ``checkparset=1`` is always passed by :func:`dp3_argv`: without it a misspelled
  key is only a warning and DP3 exits 0.
- ``msout=`` (empty) solves without writing; ``msout=.`` updates ``msin`` in place,
  into ``msout.datacolumn`` (DP3 creates the column when missing).
- ``msin.starttimeslot`` / ``msin.ntimes`` select a chunk of the MS (a view,
  nothing is copied); writes in place only touch that chunk's rows.
- DP3 reads a makesourcedb *text* sky model directly, but only when the file name
  ends in ``.skymodel`` or ``.txt``; anything else is taken for a (no longer
  supported) sourcedb directory and DP3 fails.
- The beam model stays off (``usebeammodel=false``): the arrays simulated here are
  not real LOFAR/SKA/MWA stations.

Every builder takes an :class:`MsView` first: the Measurement Set, the column read
and the chunk of time slots of the run (its ``msin`` keys). The in-place builders
(:func:`predict_parset`, :func:`h5parmpredict_parset`, :func:`applycal_parset`) write
into that same MS.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from typing import Mapping, Sequence, Union

from ddpipe.config import CalibrationConfig
from ddpipe.errors import UserError
from ddpipe.sky.directions import BAD_DIRECTION_CHARS

PathLike = Union[str, "os.PathLike[str]"]

#: ddecal modes ddpipe supports → the soltabs DP3 writes for them (checked on DP3 6.6).
MODE_SOLTABS: dict[str, tuple[str, ...]] = {
    "scalarphase": ("phase000",),
    "scalaramplitude": ("amplitude000",),
    "scalar": ("amplitude000", "phase000"),
    "diagonalphase": ("phase000",),
    "diagonal": ("amplitude000", "phase000"),
    "fulljones": ("amplitude000", "phase000"),
}

#: Sky model file name endings DP3 reads as makesourcedb text.
SKYMODEL_SUFFIXES = (".skymodel", ".txt")

OPERATIONS = ("replace", "add", "subtract")


# --------------------------------------------------------------------------- values


def format_value(value: object) -> str:
    """One parset value as DP3 expects it.

    ``bool`` → ``true``/``false``; ``float`` → shortest round-trip repr (``1e-05``);
    ``None`` → empty string; anything else → ``str``.
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return str(value)


def _path(value: PathLike, what: str) -> str:
    text = os.fspath(value)
    if not text:
        raise ValueError(f"{what}: empty path; give the file or Measurement Set path")  # a caller's bug
    return text


def _skymodel(value: PathLike, what: str) -> str:
    text = _path(value, what)
    if not text.rstrip("/").endswith(SKYMODEL_SUFFIXES):
        raise UserError(
            f"{what} {text}: DP3 reads a text sky model only from a file ending in "
            f"{' or '.join(SKYMODEL_SUFFIXES)}; rename or copy it to such a name"
        )
    return text


def _name(name: object, what: str) -> str:
    if not isinstance(name, str) or not name or BAD_DIRECTION_CHARS & set(name):
        raise UserError(
            f"{what} {name!r}: not a usable patch name for DP3 (non-empty, without brackets, commas, "
            "'=', quotes or spaces); rename the patch in the sky model"
        )
    return name


def _column(name: object, what: str) -> str:
    if not isinstance(name, str) or not name or not name.replace("_", "").isalnum():
        raise UserError(f"{what} {name!r}: not a Measurement Set column name (letters, digits, '_'); e.g. DATA")
    return name


def _direction(entry: str | Sequence[str], what: str) -> str:
    """``"P1"`` → ``[P1]``; ``("P1", "P2")`` → ``[P1,P2]`` (patches solved as one direction)."""
    patches = [entry] if isinstance(entry, str) else list(entry)
    if not patches:
        raise UserError(f"{what}: an empty direction; give at least one patch name per direction")
    return "[" + ",".join(_name(p, what) for p in patches) + "]"


def directions_value(directions: Sequence[str | Sequence[str]], what: str = "directions") -> str:
    """DDECal's ``directions`` value: ``["P1", ("P2", "P3")]`` → ``[[P1],[P2,P3]]``."""
    if isinstance(directions, str) or not directions:
        raise UserError(f"{what} {directions!r}: expected a non-empty list of patch names")
    parts = [_direction(d, what) for d in directions]
    seen: set[str] = set()
    for d in directions:
        for p in [d] if isinstance(d, str) else d:
            if p in seen:
                raise UserError(f"{what}: patch {p!r} appears in more than one direction; list each patch once")
            seen.add(p)
    return "[" + ",".join(parts) + "]"


@dataclass(frozen=True)
class MsView:
    """Which rows of which Measurement Set a DP3 run reads: its ``msin`` keys.

    Checked when made: a bad chunk or path is a caller's bug (``ValueError``), a bad
    column name a :class:`~ddpipe.errors.UserError`.

    Attributes
    ----------
    ms
        Measurement Set path (``msin``; absolute recommended: DP3 may run in another folder).
    data_column
        Column read (``msin.datacolumn``).
    start_slot, n_slots
        The chunk: ``msin.starttimeslot`` / ``msin.ntimes``; omitted when None.
    start_time
        Instead of ``start_slot``: ``msin.starttime`` (UTC, as
        :attr:`~ddpipe.ms.chunks.Chunk.dp3_starttime` gives it), which is right on an
        MS with gaps in time too.
    """

    ms: PathLike
    data_column: str = "DATA"
    start_slot: int | None = None
    n_slots: int | None = None
    start_time: str | None = None

    def __post_init__(self) -> None:
        _path(self.ms, "msin")
        _column(self.data_column, "data_column")
        if self.start_time is not None and self.start_slot is not None:
            raise ValueError("give either start_slot or start_time for a chunk, not both")
        start, n = self.start_slot, self.n_slots
        if start is not None and (isinstance(start, bool) or not isinstance(start, int) or start < 0):
            raise ValueError(f"start_slot = {start!r}: expected an integer >= 0 (first time slot of the chunk)")
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise ValueError(f"n_slots = {n!r}: expected an integer >= 1 (time slots in the chunk)")

    def dp3_msin(self) -> dict[str, str]:
        """The ``msin`` keys, in parset order: ``msin``, ``msin.datacolumn``, then the chunk's."""
        out = {"msin": os.fspath(self.ms), "msin.datacolumn": self.data_column}
        if self.start_time is not None:
            out["msin.starttime"] = str(self.start_time)
        if self.start_slot is not None:
            out["msin.starttimeslot"] = str(self.start_slot)
        if self.n_slots is not None:
            out["msin.ntimes"] = str(self.n_slots)
        return out


def _inplace_step(msin: MsView, out_column: str, step: str) -> dict[str, str]:
    """The first keys of a one-step run ``step`` (also its type) writing ``out_column`` of ``msin``'s MS."""
    p = msin.dp3_msin()
    p.update({"msout": ".", "msout.datacolumn": _column(out_column, "out_column")})
    p.update({"steps": f"[{step}]", f"{step}.type": step})
    return p


def _mode(mode: str) -> tuple[str, ...]:
    try:
        return MODE_SOLTABS[mode]
    except KeyError:
        # the config's schema refuses other modes: reaching here is a caller's bug
        raise ValueError(f"calibration mode {mode!r}: not supported; one of {' | '.join(MODE_SOLTABS)}") from None


def _applycal_keys(prefix: str, h5parm: PathLike, mode: str, *, for_predict: bool) -> dict[str, str]:
    """ApplyCal keys (under ``prefix``) that apply every soltab that ``mode`` writes.

    Amplitude plus phase (scalar, diagonal) use two ApplyCal sub-steps; full-Jones uses
    ``correction=fulljones`` with both soltabs. H5ParmPredict reads the directions from
    ``applycal.correction`` itself, so it always gets one.
    """
    soltabs = _mode(mode)
    out = {f"{prefix}parmdb": _path(h5parm, f"{prefix}parmdb")}
    if mode == "fulljones":
        out[f"{prefix}correction"] = "fulljones"
        out[f"{prefix}soltab"] = "[" + ",".join(soltabs) + "]"
    elif len(soltabs) == 1:
        out[f"{prefix}correction"] = soltabs[0]
    else:
        if for_predict:
            out[f"{prefix}correction"] = "phase000"
        subs = [s.rstrip("0123456789") for s in soltabs]  # amplitude000 → amplitude
        out[f"{prefix}steps"] = "[" + ",".join(subs) + "]"
        for sub, soltab in zip(subs, soltabs):
            out[f"{prefix}{sub}.correction"] = soltab
    return out


def _operation(operation: str) -> str:
    if operation not in OPERATIONS:
        raise ValueError(f"operation = {operation!r}: expected one of {' | '.join(OPERATIONS)}")
    return operation


# --------------------------------------------------------------------------- builders


def ddecal_parset(
    msin: MsView,
    *,
    skymodel: PathLike,
    directions: Sequence[str | Sequence[str]],
    h5parm: PathLike,
    cal: CalibrationConfig,
    extra: Mapping[str, object] | None = None,
) -> dict[str, str]:
    """Parset of one solve-only DDECal run (one time chunk) writing an H5parm.

    Parameters
    ----------
    msin
        The MS, column and chunk that are calibrated.
    skymodel
        makesourcedb text sky model, read directly by DP3 (name must end in
        ``.skymodel`` or ``.txt``).
    directions
        Patch names, one direction each; an entry may be a sequence of patches
        solved as one direction. Becomes ``[[P1],[P2],...]``.
    h5parm
        Output H5parm path.
    cal
        Calibration settings of the cycle (mode, solint, nchan, solver...).
    extra
        Extra keys (the config's ``dp3.extra``) added last; they may override any key.

    Returns
    -------
    dict[str, str]
        DP3 keys in a fixed order.
    """
    p = msin.dp3_msin()
    p.update({"msout": "", "steps": "[ddecal]"})
    p.update(_solve_keys("ddecal", cal, h5parm, skymodel=skymodel, directions=directions))
    _add_extra(p, extra, ("ddecal",))
    return p


#: step names of a chain of solves in one DP3 run (:func:`ddecal_chain_parset`)
def chain_steps(n: int) -> tuple[str, ...]:
    return ("ddecal",) if n == 1 else tuple(f"solve{k + 1}" for k in range(n))


def ddecal_chain_parset(
    msin: MsView,
    *,
    skymodel: PathLike,
    directions: Sequence[str | Sequence[str]],
    h5parms: Sequence[PathLike],
    cal: CalibrationConfig,
    extra: Mapping[str, object] | None = None,
) -> dict[str, str]:
    """Parset of one DP3 run solving ``cal.chain`` in order on one chunk, one H5parm per solve.

    One solve is :func:`ddecal_parset` (step ``ddecal``). A chain has steps ``solve1 ..
    solveN`` from one predict: every solve but the last keeps the model
    (``keepmodel``), which DDECal passes on corrected by its solutions, and every
    later solve reuses it (``reusemodel=[solve1.*]``: the model keeps the first
    step's names, checked with DP3 6.6), so solve k fits what solves 1..k-1 left
    and the chain's gain is the product of their solutions. ``dp3.extra`` keys
    ``ddecal.X`` apply to every solve (``solveK.X`` to one).
    """
    chain = cal.chain
    if len(h5parms) != len(chain):
        raise ValueError(f"{len(chain)} solve(s) but {len(h5parms)} H5parm path(s)")  # a caller's bug
    if len(chain) == 1:
        return ddecal_parset(
            msin, skymodel=skymodel, directions=directions, h5parm=h5parms[0], cal=chain[0], extra=extra
        )
    steps = chain_steps(len(chain))
    p = msin.dp3_msin()
    p.update({"msout": "", "steps": "[" + ",".join(steps) + "]"})
    for k, (step, solve, h5) in enumerate(zip(steps, chain, h5parms)):
        if k == 0:
            p.update(_solve_keys(step, solve, h5, skymodel=skymodel, directions=directions))
        else:
            p.update(_solve_keys(step, solve, h5, reuse=f"[{steps[0]}.*]"))
        if k < len(chain) - 1:
            p[f"{step}.keepmodel"] = "true"
    _add_extra(p, extra, steps)
    return p


def _solve_keys(
    step: str,
    cal: CalibrationConfig,
    h5parm: PathLike,
    *,
    skymodel: PathLike | None = None,
    directions: Sequence[str | Sequence[str]] | None = None,
    reuse: str | None = None,
) -> dict[str, str]:
    """The keys of one DDECal step: predicting ``skymodel`` in ``directions``, or reusing a model."""
    _mode(cal.mode)
    p = {f"{step}.type": "ddecal", f"{step}.mode": cal.mode}
    if reuse is None:
        p[f"{step}.sourcedb"] = _skymodel(skymodel, f"{step}.sourcedb")
        p[f"{step}.directions"] = directions_value(directions, f"{step}.directions")
    else:
        p[f"{step}.reusemodel"] = reuse
    p.update(
        {
            f"{step}.solint": format_value(cal.solint),
            f"{step}.nchan": format_value(cal.nchan),
            f"{step}.maxiter": format_value(cal.maxiter),
            f"{step}.tolerance": format_value(cal.tolerance),
            f"{step}.stepsize": format_value(cal.stepsize),
            f"{step}.uvlambdamin": format_value(cal.uvlambdamin),
            f"{step}.smoothnessconstraint": format_value(cal.smoothnessconstraint),
            f"{step}.propagatesolutions": format_value(cal.propagatesolutions),
            f"{step}.solveralgorithm": cal.solveralgorithm,
        }
    )
    if cal.solutions_per_direction:
        p[f"{step}.solutions_per_direction"] = "[" + ",".join(map(str, cal.solutions_per_direction)) + "]"
    if cal.antenna_averaging_factors:
        p[f"{step}.antenna_averaging_factors"] = "[" + ",".join(cal.antenna_averaging_factors) + "]"
    if reuse is None:  # a solve that reuses a model predicts nothing: DP3 calls the beam key unused
        p[f"{step}.usebeammodel"] = "false"
    p[f"{step}.h5parm"] = _path(h5parm, f"{step}.h5parm")
    return p


def _add_extra(p: dict[str, str], extra: Mapping[str, object] | None, steps: Sequence[str]) -> None:
    """``dp3.extra`` added last (overriding): ``ddecal.X`` goes to every step of ``steps``."""
    for key, value in (extra or {}).items():
        if not isinstance(key, str) or not key or "=" in key or any(c.isspace() for c in key):
            raise UserError(f"dp3.extra key {key!r}: not a DP3 parset key (like 'ddecal.antennaconstraint')")
        targets = [f"{s}.{key[len('ddecal.') :]}" for s in steps] if key.startswith("ddecal.") else [key]
        for t in targets:
            p.pop(t, None)  # re-insert so that overrides show up last, like in the parset file
            p[t] = format_value(value)


def predict_parset(
    msin: MsView,
    *,
    skymodel: PathLike,
    out_column: str,
    sources: Sequence[str] | None = None,
    operation: str = "replace",
) -> dict[str, str]:
    """Parset of a Predict run: model visibilities of ``skymodel`` into ``out_column`` (in place).

    Parameters
    ----------
    skymodel
        makesourcedb text sky model (``.skymodel`` / ``.txt``).
    out_column
        Column written (``msout.datacolumn``); DP3 creates it when missing.
    sources
        Patch names to predict (``predict.sources``); None for all.
    operation
        ``replace`` writes the model; ``add`` / ``subtract`` combine it with the column ``msin`` reads.
    """
    p = _inplace_step(msin, out_column, "predict")
    p["predict.sourcedb"] = _skymodel(skymodel, "predict.sourcedb")
    if sources is not None:
        if isinstance(sources, str) or not sources:
            raise UserError(f"predict sources {sources!r}: expected a non-empty list of patch names, or None for all")
        p["predict.sources"] = "[" + ",".join(_name(s, "predict sources") for s in sources) + "]"
    p["predict.operation"] = _operation(operation)
    p["predict.usebeammodel"] = "false"
    return p


def h5parmpredict_parset(
    msin: MsView,
    *,
    skymodel: PathLike,
    h5parm: PathLike,
    mode: str,
    out_column: str,
    directions: Sequence[str | Sequence[str]] | None = None,
    operation: str = "replace",
) -> dict[str, str]:
    """Parset of an H5ParmPredict run: per-direction model *corrupted* by the H5parm's gains.

    Each direction's model is predicted and multiplied by its gains
    (V = g_p M g_q^H), then written to ``out_column``: ``replace`` makes corrupted
    data, ``subtract`` removes the corrupted model from the column ``msin`` reads (DD
    subtraction), ``add`` adds it.

    Parameters
    ----------
    skymodel
        makesourcedb text sky model whose patches are the H5parm's directions.
    h5parm
        Gains to corrupt with (``applycal.parmdb``).
    mode
        ddecal mode that produced (or describes) the H5parm; selects the soltabs.
    out_column
        Column written.
    directions
        Subset of directions (patch names, as in :func:`ddecal_parset`); None for all
        directions of the H5parm.
    operation
        ``replace`` | ``add`` | ``subtract``.
    """
    p = _inplace_step(msin, out_column, "h5parmpredict")
    p["h5parmpredict.sourcedb"] = _skymodel(skymodel, "h5parmpredict.sourcedb")
    p.update(_applycal_keys("h5parmpredict.applycal.", h5parm, mode, for_predict=True))
    if directions is not None:
        # H5ParmPredict takes a flat list of direction names as they appear in the H5parm.
        p["h5parmpredict.directions"] = directions_value(directions, "h5parmpredict.directions")
    p["h5parmpredict.operation"] = _operation(operation)
    p["h5parmpredict.usebeammodel"] = "false"
    return p


def applycal_parset(
    msin: MsView,
    *,
    h5parm: PathLike,
    mode: str,
    out_column: str = "CORRECTED_DATA",
    direction: str | Sequence[str] | None = None,
    invert: bool = True,
) -> dict[str, str]:
    """Parset of an ApplyCal run: apply (``invert=True``) or corrupt with H5parm solutions.

    Parameters
    ----------
    h5parm
        Solutions (``applycal.parmdb``).
    mode
        ddecal mode of the solutions; selects the soltab(s) and how they are applied.
    out_column
        Column written (``msout.datacolumn``).
    direction
        Direction whose solutions are applied (a patch name or patches, → ``[P1]``);
        None when the H5parm has a single direction.
    invert
        True corrects the data (divides by the gains); False corrupts it.
    """
    p = _inplace_step(msin, out_column, "applycal")
    p.update(_applycal_keys("applycal.", h5parm, mode, for_predict=False))
    if direction is not None:
        p["applycal.direction"] = _direction(direction, "applycal.direction")
    p["applycal.invert"] = format_value(bool(invert))
    return p


# --------------------------------------------------------------------------- argv / file


def dp3_argv(executable: Sequence[str], parset: Mapping[str, str], numthreads: int) -> list[str]:
    """The DP3 command line: ``[*executable, "checkparset=1", "numthreads=N", "key=value", ...]``.

    ``checkparset=1`` is always first so that an unused (misspelled) key makes DP3 fail.
    """
    if isinstance(executable, str) or not executable:
        raise ValueError(f"DP3 executable {executable!r}: expected a non-empty argv list such as ['DP3']")
    if isinstance(numthreads, bool) or not isinstance(numthreads, int) or numthreads < 1:
        raise ValueError(f"numthreads = {numthreads!r}: expected an integer >= 1")
    for key in ("checkparset", "numthreads"):
        if key in parset:
            raise UserError(f"parset key {key!r} is set by ddpipe itself; remove it from the parset / dp3.extra")
    return [
        *map(str, executable),
        "checkparset=1",
        f"numthreads={numthreads}",
        *(f"{k}={v}" for k, v in parset.items()),
    ]


def format_parset(parset: Mapping[str, str]) -> str:
    """The parset as a DP3 parset file: ``key=value`` lines, in order, ending in a newline.

    Values with spaces or ``#`` are quoted so that the file reads back the same.
    """
    lines = []
    for key, value in parset.items():
        text = str(value)
        if text and (any(c.isspace() for c in text) or "#" in text):
            text = shlex.quote(text)
        lines.append(f"{key}={text}")
    return "\n".join(lines) + "\n"
