"""Calibration directions: flux-driven grouping of sources into patches, patch centres.

A direction is a patch of the sky model (DP3's ``ddecal.directions=[[P0],[P1],...]``).
:func:`group_into_directions` makes them for self-calibration: the brightest
source anchors the first direction, sources closer than ``min_separation_deg``
to an anchor cannot anchor another, and so on; then every source joins its
nearest anchor and each patch row sits at the flux-weighted centroid.
:func:`require_directions` is the calibration entry point: the user's sky model
in, the model DP3 gets (written by ddpipe) and its direction names out.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from ddpipe.errors import UserError
from ddpipe.sky.model import Patch, SkyModel
from ddpipe.sky.skymodel import format_skymodel, read_skymodel, write_skymodel

log = logging.getLogger(__name__)

#: Sources closer than this to a brighter anchor do not anchor a direction of their own.
DEFAULT_MIN_SEPARATION_DEG = 0.2

#: Characters a patch name cannot hold and still be a DP3 direction (``[[P1],[P2]]`` parset syntax).
BAD_DIRECTION_CHARS = frozenset("[],= \t\n\"'")


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


def plan_directions(
    skymodel: str | os.PathLike[str], n_directions: int, min_separation_deg: float = DEFAULT_MIN_SEPARATION_DEG
) -> tuple[SkyModel, tuple[str, ...], str]:
    """The sky model DP3 will get, its direction names, and how they were made (a phrase), from the
    user's ``skymodel``: what :func:`require_directions` writes, checked the same way, nothing written.

    Raises
    ------
    UserError
        As :func:`require_directions`.
    """
    model = read_skymodel(skymodel)
    unpatched = [s.name for s in model.sources if s.patch is None]
    if not unpatched:
        how = f"using its {len(model.patch_names())} patches as directions"
    elif len(unpatched) == len(model.sources):
        model = group_into_directions(model, n_directions, min_separation_deg)
        how = f"grouped {len(model.sources)} sources into {len(model.patches)} directions"
    else:
        raise UserError(
            f"{skymodel}: {len(unpatched)} source(s) without a patch (e.g. {unpatched[0]!r}) next to "
            "sources with one; give every source a patch, or none to let ddpipe group them"
        )
    names = tuple(name for name, _, _ in patch_directions(model))
    for name in names:
        if BAD_DIRECTION_CHARS & set(name):
            raise UserError(
                f"{skymodel}: patch {name!r} cannot be a DP3 direction (no spaces, brackets, commas, "
                "'=' or quotes); rename it"
            )
    return model, names, how


def require_directions(
    skymodel: str | os.PathLike[str],
    n_directions: int,
    workdir: str | os.PathLike[str],
    min_separation_deg: float = DEFAULT_MIN_SEPARATION_DEG,
) -> tuple[str, tuple[str, ...]]:
    """The sky model to give DP3 and its direction (patch) names, for one calibration.

    The sky model is read with :func:`~ddpipe.sky.skymodel.read_skymodel`. When
    every source has a patch, the patches are the directions and
    ``n_directions`` is not used; when none has, the sources are grouped into
    ``n_directions`` by :func:`group_into_directions`. The result is written by
    ddpipe (degrees, patch rows first, a form DP3 was checked to read the same)
    to ``workdir/directions-<hash>.skymodel``, the hash being that of its
    contents, so that a different model never reuses an older file name.

    Parameters
    ----------
    skymodel : path-like
        The user's sky model.
    n_directions : int
        Directions to make when the sky model has no patches.
    workdir : path-like
        Existing folder for the written model.
    min_separation_deg : float
        Passed to :func:`group_into_directions`.

    Returns
    -------
    (str, tuple of str)
        Absolute path of the written sky model, and the patch names in order.

    Raises
    ------
    UserError
        For an unreadable or malformed sky model, a mix of sources with and
        without patches, or a patch name DP3 cannot take as a direction.
    """
    model, names, how = plan_directions(skymodel, n_directions, min_separation_deg)
    log.info("%s: %s", skymodel, how)
    text = format_skymodel(model)
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    out = Path(workdir).resolve() / f"directions-{digest}.skymodel"
    if not (out.is_file() and out.read_text(encoding="utf-8") == text):
        write_skymodel(model, out)
    return str(out), names
