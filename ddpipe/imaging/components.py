"""CLEAN components → sky model (one patch per facet, or one patch without facets)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ddpipe.imaging.coords import lm_to_radec, pixel_to_lm
from ddpipe.imaging.facets import Facet
from ddpipe.sky.model import Patch, SkyModel, Source

#: patch name used when there are no facets
DEFAULT_PATCH = "image"


def model_to_skymodel(
    model: np.ndarray,
    cell: float,
    phase_centre: tuple[float, float],
    ref_freq: float,
    *,
    facets: Sequence[Facet] = (),
    labels: np.ndarray | None = None,
) -> SkyModel:
    """One POINT source per non-zero model pixel.

    Parameters
    ----------
    model
        ``(ny, nx)`` model image, Jy/pixel.
    cell
        Pixel size, radians.
    phase_centre
        (ra, dec) radians.
    ref_freq
        Reference frequency (Hz) of the fluxes.
    facets, labels
        Facets and the ``(ny, nx)`` facet index of each pixel; a source's patch
        is its facet. Without them every source goes into patch ``image`` centred
        on the phase centre.

    Returns
    -------
    SkyModel
        Sources in pixel order; patches (at the facet centres) only for facets that
        received components, because DP3 cannot use a patch without sources.
    """
    ys, xs = np.nonzero(model)
    flux = model[ys, xs].astype(float)
    l, m = pixel_to_lm(xs, ys, model.shape, cell)
    ra, dec = lm_to_radec(l, m, *phase_centre)
    if facets and labels is not None:
        names = [facets[i].name for i in labels[ys, xs]]
        centres = {f.name: (f.ra, f.dec) for f in facets}
    else:
        names = [DEFAULT_PATCH] * len(ys)
        centres = {DEFAULT_PATCH: phase_centre}
    counts: dict[str, int] = {}
    sources = []
    for k in range(len(ys)):
        p = names[k]
        counts[p] = counts.get(p, 0) + 1
        sources.append(
            Source(
                name=f"{p}-c{counts[p]}",
                ra=float(ra[k]),
                dec=float(dec[k]),
                i=float(flux[k]),
                type="POINT",
                patch=p,
                reference_frequency=float(ref_freq),
            )
        )
    order = [f.name for f in facets] if facets else [DEFAULT_PATCH]
    patches = tuple(Patch(n, *centres[n]) for n in order if n in counts)
    return SkyModel(sources=tuple(sources), patches=patches)
