"""``make_image``: weighting, gridding, major/minor-cycle CLEAN, restore and FITS output.

The Measurement Sets are streamed in row blocks on every pass (weights, then
one pass per major cycle, :mod:`ddpipe.imaging.passes`), so memory is a few
image-sized buffers plus one block whatever the size of the data; the CLEAN
loop is :mod:`ddpipe.imaging.cycles`. With facets (solutions given), every pass
predicts each facet's model, corrupts it with that direction's gains,
subtracts, and grids the residual once per facet with that direction's inverse
gains applied; each facet keeps its own Voronoi cell of the image.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from ddpipe.config import ImagingConfig, check_field
from ddpipe.errors import UserError
from ddpipe.imaging import weighting
from ddpipe.imaging.beam import fit_beam, restore
from ddpipe.imaging.components import model_to_skymodel
from ddpipe.imaging.cycles import CleanSettings, clean_cycles
from ddpipe.imaging.engine import DaskEngine, LocalEngine, natural_factor
from ddpipe.imaging.facets import (
    Facet,
    GainTable,
    facet_boxes,
    facet_centres,
    facet_labels,
    make_facets,
    neighbour_pairs,
)
from ddpipe.imaging.fitsio import ImageGeometry, read_image, write_image
from ddpipe.imaging.mfs import Channels
from ddpipe.imaging.msdata import MSDescription, describe_ms
from ddpipe.imaging.multiscale import MultiscaleCleaner
from ddpipe.imaging.passes import PassSpec, coupling_matrix, finish, finish_channels, scatter_level, split_model
from ddpipe.imaging.spectral import SpectralFitter
from ddpipe.imaging.stats import mad_rms
from ddpipe.sky.model import SkyModel
from ddpipe.sky.skymodel import write_skymodel

if TYPE_CHECKING:
    from ddpipe.solutions.types import Solutions

log = logging.getLogger(__name__)

#: major cycles at most (WSClean's -nmiter default)
MAX_MAJOR = 20
#: the five products, WSClean's names
PRODUCTS = ("dirty", "psf", "model", "residual", "image")


def products_prefix(prefix: str | Path, params: ImagingConfig) -> str:
    """Where the (MFS) products go: PREFIX-image.fits ..., or PREFIX-MFS-image.fits ... with several
    output channels (WSClean's names; the channels' own are PREFIX-0000-image.fits ...)."""
    return f"{prefix}-MFS" if params.channels_out > 1 else str(prefix)


@dataclass(frozen=True)
class ImageResult:
    """What :func:`make_image` made.

    ``beam`` is (bmaj, bmin, bpa) in degrees (FITS BMAJ/BMIN/BPA), ``rms`` the
    MAD noise of the residual (Jy/beam), ``peak`` the restored image's maximum,
    ``dynamic_range`` peak/rms (inf when rms is 0), ``components`` the CLEAN
    components as a sky model (one patch per facet, or one patch ``image``),
    ``skymodel`` the file they were written to (None without components),
    ``timings`` seconds per stage.
    """

    dirty: Path
    psf: Path
    model: Path
    residual: Path
    image: Path
    beam: tuple[float, float, float]
    rms: float
    peak: float
    dynamic_range: float
    n_components: int
    n_iterations: int
    n_major: int
    components: SkyModel
    skymodel: Path | None
    timings: Mapping[str, float] = field(default_factory=dict)

    @property
    def paths(self) -> dict[str, Path]:
        """The five FITS files by product name (dirty, psf, model, residual, image)."""
        return {k: getattr(self, k) for k in PRODUCTS}


def make_image(
    ms_paths: Sequence[str | Path],
    params: ImagingConfig,
    prefix: str | Path,
    *,
    data_column: str = "DATA",
    solutions: Solutions | None = None,
    facet_directions: Sequence[tuple[str, float, float]] | None = None,
    mask: np.ndarray | str | Path | None = None,
    client: Any = None,
    no_workers_timeout: float = 120.0,
    n_ranges: int | None = None,
) -> ImageResult:
    """Image and deconvolve Stokes I; write PREFIX-{dirty,psf,model,residual,image}.fits.

    Parameters
    ----------
    ms_paths
        Measurement Sets (sub-bands of one observation, one phase centre).
    params
        Imaging settings: size, scale, weighting, CLEAN, ``facet_smearing`` (how far each
        facet averages, :mod:`ddpipe.imaging.averaging`), ``threads``, ``wgridder_accuracy``,
        ``cache_mb`` (memory for the prepared data between passes); docs/configuration.md.
    prefix
        Output name prefix (WSClean's ``-name``); its folder is created.
    data_column
        Column to image.
    solutions
        :class:`ddpipe.solutions.types.Solutions` to correct facet by facet
        (ignored when ``params.facets`` is false).
    facet_directions
        ``(name, ra, dec)`` facet centres (radians), e.g. the sky model's patches;
        default with solutions: the solutions' directions. Without solutions they
        only group the CLEAN components into patches.
    mask
        Where CLEAN may put components: ``(ny, nx)`` bool array or a FITS file
        (non-zero = allowed) of the image's size.
    client
        A ``distributed.Client``: the passes over the data run as Dask tasks on its
        workers (one per row range, each holding a ``subprocess_slots``, with the worker's
        threads); the minor cycles stay here. None: everything in this process.
    no_workers_timeout
        With ``client``: seconds without a worker offering ``subprocess_slots`` before failing.
    n_ranges
        With ``client``: row ranges per MS (default: one per worker offering the slot when
        imaging starts). Images of different splits agree to the gridder's accuracy (about
        1e-5 of the peak: ducc0 rounds each call's sum its own way), so the pipeline gives
        its configured worker count, not the number connected.

    Returns an :class:`ImageResult`.

    Raises
    ------
    UserError
        Unusable input (MS, sizes, mask, directions) or nothing unflagged to image.
    """
    t_start = time.perf_counter()
    if not ms_paths:
        raise UserError("no Measurement Set given to image; pass at least one --ms")
    setup = _setup(ms_paths, params, data_column, solutions, facet_directions)
    clean_mask = _load_mask(mask, setup.shape)
    engine = _engine(setup, params, client, n_ranges, no_workers_timeout)
    timings = {"setup": time.perf_counter() - t_start}
    log.info(
        "imaging %d MS, %dx%d pixels of %.3g arcsec, %s weighting%s; %d row range(s) %s",
        len(setup.descs),
        setup.shape[1],
        setup.shape[0],
        params.scale,
        params.weight,
        f", {len(setup.facets)} facets with DD corrections" if setup.spec.facets else "",
        len(engine.ranges),
        "on the Dask cluster" if client is not None else "in-process",
    )
    try:
        images = _deconvolve(setup, params, _Residuals(setup, engine), clean_mask, timings)
    finally:
        engine.close()
    return _write_products(setup, params, images, Path(prefix), timings, t_start)


def _engine(setup: _Setup, params: ImagingConfig, client: Any, n_ranges: int | None, timeout: float) -> Any:
    """The passes over the data: on the Dask cluster with ``client``, else in this process."""
    budget = int(params.cache_mb * 2**20)
    if client is None:
        return LocalEngine(setup.descs, setup.spec, setup.gains, params.row_block, budget)
    return DaskEngine(
        client,
        setup.descs,
        setup.spec,
        setup.gains,
        params.row_block,
        budget,
        n_ranges=n_ranges,
        no_workers_timeout=timeout,
    )


@dataclass(frozen=True)
class _Setup:
    """What every step of one image shares: the data, the pixel grid and the facets."""

    descs: tuple[MSDescription, ...]
    shape: tuple[int, int]  # (ny, nx)
    cell: float  # radians
    facets: tuple[Facet, ...]
    labels: np.ndarray | None  # facet index per pixel
    gains: tuple[GainTable | None, ...]  # per MS; None without solutions
    spec: PassSpec


def _setup(
    ms_paths: Sequence[str | Path],
    params: ImagingConfig,
    data_column: str,
    solutions: Solutions | None,
    facet_directions: Sequence[tuple[str, float, float]] | None,
) -> _Setup:
    nx, ny = check_field(ImagingConfig, "size", params.size, "imaging.size", source="make_image")
    if params.channels_out > 1 and params.multiscale and params.niter > 0:  # the config refuses it too
        raise UserError("multiscale CLEAN does not join channels yet: image with channels_out 1, or Hogbom")
    shape = (ny, nx)
    cell = math.radians(params.scale / 3600.0)
    descs = tuple(describe_ms(p, data_column) for p in ms_paths)
    centre = descs[0].phase_centre
    for d in descs[1:]:
        if abs(d.phase_centre[0] - centre[0]) > 1e-9 or abs(d.phase_centre[1] - centre[1]) > 1e-9:
            raise UserError(
                f"{d.path}: phase centre differs from {descs[0].path}'s; "
                "image Measurement Sets of one pointing together (or phase-shift them first)"
            )
    use_solutions = solutions is not None and params.facets
    if solutions is not None and not params.facets:
        log.info("imaging.facets is false: solutions are not applied")
    if facet_directions is None and use_solutions:
        facet_directions = [
            (n.strip("[]"), float(rd[0]), float(rd[1]))
            for n, rd in zip(solutions.directions, solutions.direction_radec)
        ]
    facets = make_facets(facet_directions, centre) if facet_directions else ()
    labels = facet_labels(facets, shape, cell) if facets else None
    names = [f.name for f in facets]
    gains = tuple(GainTable(solutions, names, d.antenna_names, d.freq) if use_solutions else None for d in descs)
    sampling = dict(epsilon=params.wgridder_accuracy, nthreads=params.threads)
    sampling["channel_edges"] = channel_edges(descs, params)
    if use_solutions:
        boxes = facet_boxes(labels, names)
        spec = PassSpec(
            shape,
            cell,
            boxes,
            True,
            neighbours=neighbour_pairs(labels),
            centres=facet_centres(labels, boxes, cell),
            max_loss=params.facet_smearing,
            **sampling,
        )
    else:
        spec = PassSpec.plain(shape, cell, **sampling)
    return _Setup(descs, shape, cell, facets, labels, gains, spec)


def channel_edges(descs: Sequence[MSDescription], params: ImagingConfig) -> tuple[float, ...]:
    """The frequency edges (Hz) of ``params.channels_out`` groups of the Measurement Sets' channels,
    as WSClean makes them: the channels of all MSs in frequency order, split into groups of (nearly)
    equal count. () for one output channel."""
    n = params.channels_out
    if n <= 1:
        return ()
    freqs = np.unique(np.concatenate([d.freq for d in descs]))
    if n > len(freqs):
        raise UserError(
            f"imaging.channels_out = {n} but the Measurement Set(s) have {len(freqs)} channel(s); "
            f"use at most {len(freqs)}"
        )
    groups = np.array_split(freqs, n)
    inner = [(a[-1] + b[0]) / 2 for a, b in zip(groups[:-1], groups[1:])]
    return (float(freqs[0]) - 1.0, *map(float, inner), float(freqs[-1]) + 1.0)


def channel_geometry(descs: Sequence[MSDescription], edges: tuple[float, ...]) -> list[tuple[float, float]]:
    """(centre, bandwidth) in Hz of each output channel: the span of its channels' full widths."""
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        parts = [(d.freq, np.broadcast_to(d.chan_width, d.freq.shape)) for d in descs]
        sel = [(f[(f >= lo) & (f < hi)], w[(f >= lo) & (f < hi)]) for f, w in parts]
        low = min(float(np.min(f - w / 2)) for f, w in sel if f.size)
        high = max(float(np.max(f + w / 2)) for f, w in sel if f.size)
        out.append(((low + high) / 2, high - low))
    return out


class _Residuals:
    """One pass over the data: the residual image (and PSF) of a model; remembers how the
    facets couple, measured in the first (dirty) pass. With several output channels it returns
    the channel cubes and keeps the MFS images of the last pass in ``mfs``."""

    def __init__(self, setup: _Setup, engine: Any):
        self.setup, self.engine = setup, engine
        self.measured: dict[str, Any] = {}
        self.empty = (
            f"{', '.join(d.path for d in setup.descs)}: every visibility is flagged or has zero weight "
            f"(column {setup.descs[0].data_column}); there is nothing to image"
        )

    def __call__(self, model: np.ndarray | None, psf_shape: tuple[int, int] | None = None):
        s = self.setup
        comps = split_model(model, s.spec, s.labels) if model is not None else None
        total = self.engine.run_pass(comps, psf_shape)
        if s.spec.facets and np.any(total.wsum > 0):
            dead = [s.facets[f].name for f in np.flatnonzero(total.wsum <= 0)]
            if dead:
                raise UserError(
                    f"facet {dead[0]!r}"
                    + (f" (and {len(dead) - 1} more)" if len(dead) > 1 else "")
                    + ": no visibility has weight once its direction's gains are applied (flagged, "
                    "zero or non-finite solutions everywhere?); check the H5parm, or image without "
                    "that direction"
                )
        try:
            residual, psf_img = finish(total, s.spec, s.labels, self.empty)
        except ValueError:
            raise UserError(self.empty) from None
        if total.coupling is not None:
            self.measured.update(coupling=coupling_matrix(total.coupling), scatter=scatter_level(total))
        if total.channels is None:
            return residual, psf_img
        self.mfs = (residual, psf_img)
        cube, psf_cube, weights = finish_channels(total, s.spec, s.labels)
        if psf_cube is not None:
            self.measured["channel_weights"] = weights
        return cube, psf_cube


@dataclass(frozen=True)
class _Images:
    dirty: np.ndarray  # the MFS image with several output channels
    psf: np.ndarray
    beam: Any  # ddpipe.imaging.beam.Beam
    cleaned: Any  # ddpipe.imaging.cycles.CleanResult (cubes with several output channels)
    channels: Channels | None = None
    channel_dirty: np.ndarray | None = None  # (N, ny, nx)
    channel_psf: np.ndarray | None = None  # (N, ny, nx)


def _deconvolve(
    setup: _Setup, params: ImagingConfig, residual_of: _Residuals, clean_mask: np.ndarray | None, timings: dict
) -> _Images:
    """Weights, the dirty image and PSF, the restoring beam, then the major/minor cycles."""
    ny, nx = shape = setup.shape
    t0 = time.perf_counter()
    if params.weight == "natural":  # no pass over the data; samples off the uv grid still drop out
        factor = natural_factor(shape)
    else:
        dens, total = residual_of.engine.density()
        factor = weighting.finish(dens, total, params.weight, params.robust, grid=weighting.grid_shape(shape))
    residual_of.engine.set_factor(factor)
    timings["weights"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    # CLEAN gets a PSF twice the image size: with a clipped PSF Hogbom can diverge
    psf_shape = (2 * ny, 2 * nx) if params.niter > 0 else shape
    dirty, psf2 = residual_of(None, psf_shape)
    timings["dirty"] = time.perf_counter() - t0
    oy, ox = (psf_shape[0] - ny) // 2, (psf_shape[1] - nx) // 2
    channels = None
    if setup.spec.n_channels > 1:
        channels = _channels(setup, params, residual_of.measured["channel_weights"])
        mfs_dirty, mfs_psf2 = residual_of.mfs
    else:
        mfs_dirty, mfs_psf2 = dirty, psf2
    psf = mfs_psf2[oy : oy + ny, ox : ox + nx]  # the image-sized PSF that is written out
    t0 = time.perf_counter()
    beam = fit_beam(psf, setup.cell)
    timings["beam"] = time.perf_counter() - t0
    log.info("restoring beam %.2f x %.2f arcsec, PA %.1f deg", beam.bmaj * 3600, beam.bmin * 3600, beam.bpa)

    cleaner = None
    if params.multiscale and params.niter > 0:
        cleaner = MultiscaleCleaner(psf2, params.multiscale_scales, shape, nthreads=params.threads)
    mgain, coupling = _major_gain(setup, params, residual_of.measured)
    settings = CleanSettings(params.niter, params.gain, mgain, params.threshold, params.auto_threshold, MAX_MAJOR)
    cleaned = clean_cycles(
        dirty,
        psf2,
        settings,
        lambda m: residual_of(m)[0],
        mask=clean_mask,
        cleaner=cleaner,
        coupling=coupling,
        channels=channels,
    )
    timings["minor"] = cleaned.seconds_minor
    timings["major"] = cleaned.seconds_major
    if channels is None:
        return _Images(dirty, psf, beam, cleaned)
    return _Images(mfs_dirty, psf, beam, cleaned, channels, dirty, psf2[:, oy : oy + ny, ox : ox + nx])


def _channels(setup: _Setup, params: ImagingConfig, weights: np.ndarray) -> Channels:
    """The output channels' weights and the spectral fit joined CLEAN smooths each component with."""
    freqs = np.array([f for f, _ in channel_geometry(setup.descs, setup.spec.channel_edges)])
    fitter = spectral_fitter(params, freqs, weights)
    log.info(
        "%d output channels of %s MHz joined in CLEAN%s",
        len(freqs),
        ", ".join(f"{f / 1e6:.2f}" for f in freqs),
        ""
        if fitter is None
        else f", components fitted with {fitter.nterms} {'log-' if fitter.log else ''}polynomial terms",
    )
    return Channels(np.asarray(weights, dtype=np.float64), None if fitter is None else fitter.smooth)


def _sky_fitter(params: ImagingConfig, freqs: np.ndarray, channels: Channels) -> SpectralFitter:
    """The spectra the components' sky model carries: the deconvolution's fit, or without one a
    polynomial through every channel's flux (as many terms as channels: DP3's predict then gives
    each component its cleaned flux at every output channel's frequency)."""
    fitter = spectral_fitter(params, freqs, channels.weights)
    if fitter is None:
        fitter = SpectralFitter(freqs, np.asarray(channels.weights, dtype=np.float64), len(freqs))
    return fitter


def spectral_fitter(params: ImagingConfig, freqs: np.ndarray, weights: np.ndarray) -> SpectralFitter | None:
    """The fit ``fit_spectral_pol`` / ``fit_spectral_log_pol`` asks for, None without one."""
    terms = params.fit_spectral_pol or params.fit_spectral_log_pol
    if not terms:
        return None
    return SpectralFitter(
        np.asarray(freqs, dtype=np.float64),
        np.asarray(weights, dtype=np.float64),
        terms,
        bool(params.fit_spectral_log_pol),
    )


def _major_gain(setup: _Setup, params: ImagingConfig, measured: Mapping[str, Any]) -> tuple[float, Any]:
    """The major-cycle gain and the facet coupling the minor cycle may use (DD facets only)."""
    if "coupling" not in measured:
        return params.mgain, None
    cmat, scatter = measured["coupling"], measured["scatter"]
    off = cmat[~np.eye(len(setup.facets), dtype=bool)]
    # the minor cycle cannot know the scattered part of a component's response in the
    # other facets: cleaning a fraction g of the peak leaves errors up to scatter * g of it,
    # which stay below half the (1 - g) of it cleaned to while g <= 1 / (1 + 2 scatter)
    mgain = min(params.mgain, 1.0 / (1.0 + 2.0 * scatter))
    log.info(
        "DD facets: a component keeps %.2f (median; %.2f to %.2f) of its PSF coherent in the other "
        "facets and scatters up to %.3g of its peak there; major-cycle gain %.2g%s",
        float(np.median(off)),
        float(off.min()),
        float(off.max()),
        scatter,
        mgain,
        f" (asked {params.mgain:g})" if mgain < params.mgain else "",
    )
    return mgain, (setup.labels, cmat)


def _write_products(
    setup: _Setup, params: ImagingConfig, images: _Images, prefix: Path, timings: dict, t_start: float
) -> ImageResult:
    """Restore, write the five FITS images (per output channel and MFS, as WSClean names them, with
    several channels) and the components' sky model, and sum up."""
    cleaned, beam, channels = images.cleaned, images.beam, images.channels
    model, residual = cleaned.model, cleaned.residual
    if channels is not None:
        model, residual = channels.mfs(cleaned.model), channels.mfs(cleaned.residual)
    t0 = time.perf_counter()
    restored = restore(model, residual, beam, setup.cell, nthreads=params.threads)
    timings["restore"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    geom = _geometry(setup.descs, setup.shape, setup.cell)
    extra = {
        "DDPNITER": params.niter,
        "DDPMINOR": cleaned.n_iter,
        "DDPMAJOR": cleaned.n_major,
        "DDPWEIGH": params.weight if params.weight != "briggs" else f"briggs({params.robust:g})",
    }
    name = products_prefix(prefix, params)
    planes = dict(dirty=images.dirty, psf=images.psf, model=model, residual=residual, image=restored)
    out = _write_set(name, planes, geom, beam, extra)
    spectra = {}
    if channels is not None:
        bands = channel_geometry(setup.descs, setup.spec.channel_edges)
        _write_channels(setup, params, images, prefix, geom, extra, bands)
        freqs = np.array([f for f, _ in bands])
        spectra = dict(channel_models=cleaned.model, fitter=_sky_fitter(params, freqs, channels))
    centre = setup.descs[0].phase_centre
    components = model_to_skymodel(
        model, setup.cell, centre, geom.freq, facets=setup.facets, labels=setup.labels, **spectra
    )
    sky_path = write_skymodel(components, Path(f"{prefix}-sources.txt")) if components.sources else None
    timings["write"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_start

    rms = mad_rms(residual)
    peak = float(restored.max())
    result = ImageResult(
        **out,
        beam=beam.as_tuple(),
        rms=rms,
        peak=peak,
        dynamic_range=peak / rms if rms > 0 else math.inf,
        n_components=int(np.count_nonzero(model)),
        n_iterations=cleaned.n_iter,
        n_major=cleaned.n_major,
        components=components,
        skymodel=sky_path,
        timings=timings,
    )
    log.info(
        "image: peak %.4g Jy/beam, residual rms %.3g Jy/beam, dynamic range %.0f, %d components, %.1f s",
        peak,
        rms,
        result.dynamic_range,
        result.n_components,
        timings["total"],
    )
    return result


# --------------------------------------------------------------------------- helpers

_UNITS = dict(dirty="JY/BEAM", psf="JY/BEAM", model="JY/PIXEL", residual="JY/BEAM", image="JY/BEAM")


def _write_set(name: str, planes: Mapping[str, np.ndarray], geom: ImageGeometry, beam: Any, extra: dict) -> dict:
    """NAME-{dirty,psf,model,residual,image}.fits; their paths by product."""
    return {
        p: write_image(f"{name}-{p}.fits", planes[p], geom, bunit=_UNITS[p], beam=beam, extra=extra) for p in PRODUCTS
    }


def _write_channels(
    setup: _Setup,
    params: ImagingConfig,
    images: _Images,
    prefix: Path,
    geom: ImageGeometry,
    extra: dict,
    bands: Sequence[tuple[float, float]],
) -> None:
    """PREFIX-0000-{dirty,...}.fits per output channel (``bands``: centre and width of each), each
    restored with its own PSF's beam."""
    cleaned, weights = images.cleaned, images.channels.weights
    for c, (freq, width) in enumerate(bands):
        beam = fit_beam(images.channel_psf[c], setup.cell) if weights[c] > 0 else images.beam
        model, residual = cleaned.model[c], cleaned.residual[c]
        planes = dict(
            dirty=images.channel_dirty[c],
            psf=images.channel_psf[c],
            model=model,
            residual=residual,
            image=restore(model, residual, beam, setup.cell, nthreads=params.threads),
        )
        _write_set(f"{prefix}-{c:04d}", planes, replace(geom, freq=freq, bandwidth=width), beam, extra)


def _geometry(descs: Sequence[MSDescription], shape: tuple[int, int], cell: float) -> ImageGeometry:
    lo = min(float(np.min(d.freq - d.chan_width / 2)) for d in descs)
    hi = max(float(np.max(d.freq + d.chan_width / 2)) for d in descs)
    return ImageGeometry(
        shape=shape,
        cell=cell,
        phase_centre=descs[0].phase_centre,
        freq=(lo + hi) / 2,
        bandwidth=hi - lo,
        date_obs=min(d.time_range[0] for d in descs),
        telescope=descs[0].telescope,
    )


def _load_mask(mask: np.ndarray | str | Path | None, shape: tuple[int, int]) -> np.ndarray | None:
    if mask is None:
        return None
    if isinstance(mask, (str, Path)):
        p = Path(mask)
        if not p.is_file():
            raise UserError(f"mask {p}: file does not exist; pass a FITS image of the output size")
        try:
            data, _ = read_image(p)
        except OSError as exc:
            raise UserError(f"mask {p}: not a readable FITS image ({exc})") from None
        mask = data != 0
    m = np.asarray(mask, dtype=bool)
    if m.shape != shape:
        raise UserError(
            f"mask has shape {m.shape[::-1]} (nx, ny) but the image is {shape[::-1]}; "
            "make the mask with the same --size"
        )
    return m
