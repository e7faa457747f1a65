"""Join solutions solved on time chunks or frequency sub-bands into one solset."""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np

from ddpipe.errors import UserError
from ddpipe.solutions.types import SolTab, Solutions


def merge_along_time(parts: Sequence[Solutions]) -> Solutions:
    """Concatenate per-chunk solutions along time.

    Parameters
    ----------
    parts
        Solutions of consecutive (or any-order) time chunks. Antennas,
        directions, soltab names, kinds, axes and every non-time axis must agree.

    Returns
    -------
    Solutions
        One solset with each soltab's time axis the sorted union of the parts'.

    Raises
    ------
    UserError
        Parts disagree, a soltab has no time axis, or chunk times overlap.
    """
    return _merge(parts, "time")


def merge_along_freq(parts: Sequence[Solutions]) -> Solutions:
    """Concatenate per-sub-band solutions along frequency (see :func:`merge_along_time`)."""
    return _merge(parts, "freq")


def _merge(parts: Sequence[Solutions], axis: str) -> Solutions:
    parts = list(parts)
    if not parts:
        raise UserError(f"merge along {axis}: no solutions given")
    first = parts[0]
    if len(parts) == 1:
        return first
    for k, part in enumerate(parts[1:], start=1):
        if part.antennas != first.antennas:
            raise UserError(
                f"merge along {axis}: part {k} has antennas {part.antennas[:4]}... "
                f"but part 0 has {first.antennas[:4]}...; solve all parts on the same MS"
            )
        if part.directions != first.directions:
            raise UserError(
                f"merge along {axis}: part {k} has directions {part.directions} but part 0 has {first.directions}"
            )
        if set(part.soltabs) != set(first.soltabs):
            raise UserError(
                f"merge along {axis}: part {k} has soltabs {sorted(part.soltabs)} "
                f"but part 0 has {sorted(first.soltabs)}"
            )
    soltabs = {name: _merge_soltab([p.soltabs[name] for p in parts], name, axis) for name in first.soltabs}
    return replace(first, soltabs=soltabs)


def _merge_soltab(tabs: list[SolTab], name: str, axis: str) -> SolTab:
    t0 = tabs[0]
    if axis not in t0.axes:
        raise UserError(f"merge along {axis}: soltab {name} has no {axis} axis (axes {t0.axes})")
    others = [a for a in ("time", "freq", "ant", "dir", "pol") if a != axis and a in t0.axes]
    for k, t in enumerate(tabs[1:], start=1):
        if t.kind != t0.kind or t.axes != t0.axes:
            raise UserError(
                f"merge along {axis}: soltab {name} of part {k} is {t.kind} {t.axes} but part 0 is {t0.kind} {t0.axes}"
            )
        for a in others:
            va, vb = t0.axis_values(a), t.axis_values(a)
            same = np.array_equal(va, vb) if a in ("time", "freq") else tuple(va or ()) == tuple(vb or ())
            if not same:
                raise UserError(
                    f"merge along {axis}: soltab {name} of part {k} has a different "
                    f"{a} axis than part 0; parts must differ only in {axis}"
                )
    ax = t0.axes.index(axis)
    coord = np.concatenate([np.asarray(t.axis_values(axis), dtype=np.float64) for t in tabs])
    order = np.argsort(coord, kind="stable")
    coord = coord[order]
    if np.any(np.diff(coord) <= 0):
        dup = coord[1:][np.diff(coord) <= 0][0]
        raise UserError(
            f"merge along {axis}: soltab {name} parts overlap ({axis} {dup!r} appears twice); "
            "chunks must not share solution intervals"
        )
    values = np.take(np.concatenate([t.values for t in tabs], axis=ax), order, axis=ax)
    weights = np.take(np.concatenate([t.weights for t in tabs], axis=ax), order, axis=ax)
    return replace(t0, values=values, weights=weights, **{axis: coord})


def drop_times_before(sol: Solutions, start: float) -> Solutions:
    """``sol`` without the solutions of times before ``start`` (MJD seconds), in every soltab.

    What a chunk solved with a lead-in keeps: the intervals before its own first
    slot were solved only to start it warm (see ``chunking.lead_in``).

    Raises
    ------
    UserError
        A soltab keeps no time at all.
    """
    tabs = {}
    for name, tab in sol.soltabs.items():
        if "time" not in tab.axes:
            tabs[name] = tab
            continue
        keep = np.flatnonzero(np.asarray(tab.time, dtype=np.float64) >= start)
        if keep.size == 0:
            raise UserError(
                f"soltab {name}: no solution at or after {start!r} (MJD s) to keep; "
                "the chunk's lead-in covers all of it"
            )
        ax = tab.axes.index("time")
        tabs[name] = replace(
            tab,
            values=np.take(tab.values, keep, axis=ax),
            weights=np.take(tab.weights, keep, axis=ax),
            time=np.asarray(tab.time)[keep],
        )
    return replace(sol, soltabs=tabs)


def chain_soltabs(parts: Sequence[Solutions]) -> Solutions:
    """The solutions of a chain of solves (in order) as one solset, its soltabs numbered per kind.

    As losoto names several soltabs of a kind: the first solve's ``phase000`` stays
    ``phase000``, a second solve's becomes ``phase001``, its ``amplitude000`` the first
    amplitude; each keeps its own time and frequency axes. The chain's gain is their
    product (phases add, amplitudes multiply: :func:`ddpipe.solutions.gains.evaluate_gains`).

    Raises
    ------
    UserError
        The solves disagree on antennas or directions.
    """
    parts = list(parts)
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    tabs: dict = {}
    count: dict[str, int] = {}
    for k, part in enumerate(parts):
        if part.antennas != first.antennas or part.directions != first.directions:
            raise UserError(
                f"solve {k + 1} of the chain has antennas/directions other than solve 1's; "
                "every solve of a chain must solve the same directions on the same MS"
            )
        for name in sorted(part.soltabs):
            tab = part.soltabs[name]
            n = count.get(tab.kind, 0)
            count[tab.kind] = n + 1
            tabs[f"{tab.kind}{n:03d}"] = tab
    return replace(first, soltabs=tabs)
