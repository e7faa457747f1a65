"""CLEAN components → sky model (one patch per facet, or one patch without facets).

With per-channel model images and a :class:`~ddpipe.imaging.spectral.SpectralFitter`
(multi-frequency CLEAN), every component carries its fitted spectrum as DP3 reads
it: ``I`` at ``ReferenceFrequency`` plus ``SpectralIndex`` terms and
``LogarithmicSI``, as WSClean's ``-save-source-list`` writes them.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ddpipe.imaging.coords import lm_to_radec, pixel_to_lm
from ddpipe.imaging.facets import Facet
from ddpipe.imaging.spectral import SpectralFitter
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
    channel_models: np.ndarray | None = None,
    fitter: SpectralFitter | None = None,
) -> SkyModel:
    """One POINT source per non-zero model pixel.

    Parameters
    ----------
    model
        ``(ny, nx)`` model image, Jy/pixel (with ``channel_models``: the MFS model).
    cell
        Pixel size, radians.
    phase_centre
        (ra, dec) radians.
    ref_freq
        Reference frequency (Hz) of the fluxes of a flat-spectrum model (no ``fitter``).
    facets, labels
        Facets and the ``(ny, nx)`` facet index of each pixel; a source's patch
        is its facet. Without them every source goes into patch ``image`` centred
        on the phase centre.
    channel_models
        ``(N, ny, nx)`` model image of each of the fitter's ``N`` output channels,
        Jy/pixel. A component is a pixel non-zero in ``model`` or in any channel;
        its spectrum is ``fitter.fit`` of its ``N`` channel fluxes.
    fitter
        The spectral fit of the deconvolution; given together with
        ``channel_models``. Sources then have ``reference_frequency =
        fitter.reference_frequency`` (not ``ref_freq``), ``i`` the fitted flux
        there, ``spectral_index`` the fitted terms and ``log_si = fitter.log``, so
        ``Source.stokes_i_at(fitter.freqs)`` (and DP3's predict) give the
        fitted channel fluxes ``fitter.smooth(channel fluxes)``.

    Returns
    -------
    SkyModel
        Sources in pixel order; patches (at the facet centres) only for facets that
        received components, because DP3 cannot use a patch without sources.

    Raises
    ------
    ValueError
        ``channel_models`` without ``fitter`` or the other way round, or shapes
        that do not match.
    """
    spectra = _spectral_inputs(model, channel_models, fitter)
    nonzero = model != 0
    if spectra is not None:
        nonzero = nonzero | np.any(spectra[0] != 0, axis=0)
    ys, xs = np.nonzero(nonzero)
    l, m = pixel_to_lm(xs, ys, model.shape, cell)
    ra, dec = lm_to_radec(l, m, *phase_centre)
    flux, terms, log_si, nu0 = _spectra(model, spectra, ys, xs, ref_freq)
    names, centres = _patches(ys, xs, phase_centre, facets, labels)
    counts: dict[str, int] = {}
    sources = []
    for k, p in enumerate(names):
        counts[p] = counts.get(p, 0) + 1
        sources.append(
            Source(
                name=f"{p}-c{counts[p]}",
                ra=float(ra[k]),
                dec=float(dec[k]),
                i=float(flux[k]),
                type="POINT",
                patch=p,
                reference_frequency=nu0,
                spectral_index=tuple(float(c) for c in terms[k]),
                log_si=log_si,
            )
        )
    order = [f.name for f in facets] if facets else [DEFAULT_PATCH]
    patches = tuple(Patch(n, *centres[n]) for n in order if n in counts)
    return SkyModel(sources=tuple(sources), patches=patches)


def _spectral_inputs(
    model: np.ndarray, channel_models: np.ndarray | None, fitter: SpectralFitter | None
) -> tuple[np.ndarray, SpectralFitter] | None:
    """``(channel_models, fitter)`` checked against each other and ``model``; None without them."""
    if channel_models is None and fitter is None:
        return None
    if channel_models is None or fitter is None:
        raise ValueError("give channel_models and fitter together (per-channel models need a spectral fit)")
    cube = np.asarray(channel_models)
    if cube.ndim != 3 or cube.shape[1:] != model.shape or cube.shape[0] != len(fitter.freqs):
        raise ValueError(
            f"channel_models must be (N={len(fitter.freqs)}, {model.shape[0]}, {model.shape[1]}) "
            f"to match the fitter's channels and the model; got {cube.shape}"
        )
    return cube, fitter


def _spectra(
    model: np.ndarray,
    spectra: tuple[np.ndarray, SpectralFitter] | None,
    ys: np.ndarray,
    xs: np.ndarray,
    ref_freq: float,
) -> tuple[np.ndarray, np.ndarray, bool, float]:
    """Per component: I ``(k,)``, spectral terms ``(k, nterms - 1)``, LogarithmicSI, reference frequency."""
    if spectra is None:
        return model[ys, xs].astype(float), np.zeros((len(ys), 0)), True, float(ref_freq)
    cube, fitter = spectra
    flux, terms, log_si = fitter.sky_terms(fitter.fit(cube[:, ys, xs]))
    return flux, terms, log_si, fitter.reference_frequency


def _patches(
    ys: np.ndarray,
    xs: np.ndarray,
    phase_centre: tuple[float, float],
    facets: Sequence[Facet],
    labels: np.ndarray | None,
) -> tuple[list[str], dict[str, tuple[float, float]]]:
    """Each component's patch (its facet, else ``image``) and the patch centres."""
    if facets and labels is not None:
        return [facets[i].name for i in labels[ys, xs]], {f.name: (f.ra, f.dec) for f in facets}
    return [DEFAULT_PATCH] * len(ys), {DEFAULT_PATCH: phase_centre}
