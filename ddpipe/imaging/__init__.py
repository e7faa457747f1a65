"""Imaging and deconvolution on NumPy + ducc0, with direction-dependent facet corrections.

The pipeline calls :func:`make_image`; everything else is the parts it is built from
(gridder, weighting, Hogbom/multiscale CLEAN, beam fit and restore, FITS, facets).
"""

from __future__ import annotations

from ddpipe.imaging.imager import ImageResult, make_image

__all__ = ["ImageResult", "make_image"]
