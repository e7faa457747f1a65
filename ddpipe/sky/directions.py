"""Calibration directions: flux-driven grouping of sources into patches, patch centres.

A direction is a patch of the sky model (DP3's ``ddecal.directions=[[P0],[P1],...]``).
:func:`group_into_directions` makes them for self-calibration: the brightest
source anchors the first direction, sources closer than ``min_separation_deg``
to an anchor cannot anchor another, and so on; then every source joins its
nearest anchor and each patch row sits at the flux-weighted centroid.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import replace

import numpy as np

from ddpipe.errors import UserError
from ddpipe.sky.model import Patch, SkyModel

log = logging.getLogger(__name__)

#: Sources closer than this to a brighter anchor do not anchor a direction of their own.
DEFAULT_MIN_SEPARATION_DEG = 0.2


def angular_separation(ra1: np.ndarray, dec1: np.ndarray, ra2: np.ndarray, dec2: np.ndarray) -> np.ndarray:
    """Great-circle distance (radians) between positions in radians; arrays broadcast.

    Uses the Vincenty formula, accurate at all separations.
    """
    dra = np.asarray(ra2, dtype=float) - np.asarray(ra1, dtype=float)
    s1, c1 = np.sin(dec1), np.cos(dec1)
    s2, c2 = np.sin(dec2), np.cos(dec2)
    num = np.hypot(c2 * np.sin(dra), c1 * s2 - s1 * c2 * np.cos(dra))
    den = s1 * s2 + c1 * c2 * np.cos(dra)
    return np.arctan2(num, den)


def pick_anchors(ra: np.ndarray, dec: np.ndarray, flux: np.ndarray, n: int, min_separation: float) -> np.ndarray:
    """Indices of up to ``n`` anchors, brightest first.

    Parameters
    ----------
    ra, dec : (nsrc,) float
        Positions (radians).
    flux : (nsrc,) float
        Brightness used for ranking (e.g. ``|I|``); ties keep input order.
    n : int
        Anchors wanted.
    min_separation : float
        A source closer than this (radians) to a chosen anchor is not a candidate.

    Returns
    -------
    (nanchor,) int
        ``nanchor <= n``; fewer when sources run out.
    """
    order = np.argsort(-np.asarray(flux, dtype=float), kind="stable")
    available = np.ones(len(order), dtype=bool)
    anchors: list[int] = []
    for k in order:
        if len(anchors) == n:
            break
        if not available[k]:
            continue
        anchors.append(int(k))
        available &= angular_separation(ra[k], dec[k], ra, dec) >= min_separation
    return np.array(anchors, dtype=int)


def nearest_anchor(ra: np.ndarray, dec: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """For each source (nsrc,), the position in ``anchors`` (nanchor,) of the nearest anchor."""
    sep = angular_separation(ra[anchors][:, None], dec[anchors][:, None], ra[None, :], dec[None, :])
    return np.argmin(sep, axis=0)


def group_into_directions(
    model: SkyModel,
    n_directions: int,
    min_separation_deg: float = DEFAULT_MIN_SEPARATION_DEG,
    prefix: str = "P",
) -> SkyModel:
    """Regroup all sources into at most ``n_directions`` patches by flux-driven clustering.

    Parameters
    ----------
    model : SkyModel
        Any existing patches are discarded.
    n_directions : int
        Directions wanted (>= 1). Fewer are made when there are fewer sources,
        or fewer sources at least ``min_separation_deg`` apart from brighter ones.
    min_separation_deg : float
        Minimum distance between two anchors (degrees, >= 0).
    prefix : str
        Patches are named ``{prefix}0 .. {prefix}{n-1}``, ``{prefix}0`` the brightest anchor.

    Returns
    -------
    SkyModel
        The same sources in the same order with ``patch`` set, and one
        :class:`Patch` per direction at the ``|I|``-weighted centroid.

    Raises
    ------
    UserError
        For ``n_directions < 1``, a negative separation or a model without sources.
    """
    if isinstance(n_directions, bool) or int(n_directions) != n_directions or n_directions < 1:
        raise UserError(f"n_directions={n_directions!r}: must be a whole number >= 1")
    if not (min_separation_deg >= 0 and math.isfinite(min_separation_deg)):
        raise UserError(f"min_separation_deg={min_separation_deg!r}: must be a finite number >= 0")
    if not model.sources:
        raise UserError("sky model has no sources; cannot make directions")
    ra = np.array([s.ra for s in model.sources])
    dec = np.array([s.dec for s in model.sources])
    flux = np.array([abs(s.i) for s in model.sources])
    anchors = pick_anchors(ra, dec, flux, int(n_directions), math.radians(min_separation_deg))
    if len(anchors) < n_directions:
        log.info(
            "made %d direction(s), not %d: too few sources at least %g deg from brighter ones",
            len(anchors),
            n_directions,
            min_separation_deg,
        )
    member = nearest_anchor(ra, dec, anchors)
    names = [f"{prefix}{k}" for k in range(len(anchors))]
    sources = tuple(replace(s, patch=names[j]) for s, j in zip(model.sources, member))
    grouped = SkyModel(sources=sources, format_fields=model.format_fields)
    patches = tuple(Patch(name, *grouped.patch_centre(name)) for name in names)
    return SkyModel(sources=sources, patches=patches, format_fields=model.format_fields)


def patch_directions(model: SkyModel) -> list[tuple[str, float, float]]:
    """Every direction DP3 would make from ``model``: ``(name, ra, dec)`` in radians.

    Patches come in ``SkyModel.patch_names()`` order at their patch-row position
    (else the flux-weighted centroid); a source without a patch is its own
    direction named after the source, as in DP3. Patches without sources are left out.
    """
    out = [(name, *model.patch_centre(name)) for name in model.patch_names() if model.sources_in(name)]
    out += [(s.name, s.ra, s.dec) for s in model.sources if s.patch is None]
    return out


def directions_with_no_sources(model: SkyModel, names: Iterable[str]) -> list[str]:
    """The names in ``names`` that are not a patch with at least one source in ``model``."""
    have = {name for name, _, _ in patch_directions(model)}
    return [n for n in names if n not in have]


def check_directions(model: SkyModel, names: Sequence[str], where: str = "directions") -> tuple[str, ...]:
    """Return ``names`` as a tuple if each is a patch of ``model`` with sources, else raise.

    Parameters
    ----------
    model : SkyModel
    names : sequence of str
        Patch names, e.g. from a config ``directions`` list.
    where : str
        Named in the error message (e.g. ``"calibration.directions"``).

    Raises
    ------
    UserError
        Naming the unknown patches and the ones available.
    """
    bad = directions_with_no_sources(model, names)
    if bad:
        have = [name for name, _, _ in patch_directions(model)]
        raise UserError(
            f"{where}: {', '.join(repr(b) for b in bad)} not a patch with sources in the sky model; "
            f"available: {', '.join(have)}"
        )
    dupes = sorted({n for n in names if list(names).count(n) > 1})
    if dupes:
        raise UserError(f"{where}: {', '.join(repr(d) for d in dupes)} listed more than once")
    return tuple(names)
