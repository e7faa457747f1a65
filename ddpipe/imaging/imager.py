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
from dataclasses import dataclass, field
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
from ddpipe.imaging.msdata import MSDescription, describe_ms
from ddpipe.imaging.multiscale import MultiscaleCleaner
from ddpipe.imaging.passes import PassSpec, coupling_matrix, finish, scatter_level, split_model
from ddpipe.imaging.stats import mad_rms
from ddpipe.sky.model import SkyModel

if TYPE_CHECKING:
    from ddpipe.solutions.types import Solutions

log = logging.getLogger(__name__)

#: major cycles at most (WSClean's -nmiter default)
MAX_MAJOR = 20
#: the five products, WSClean's names
PRODUCTS = ("dirty", "psf", "model", "residual", "image")


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
    epsilon: float = 1e-4,
    nthreads: int = 2,
    cache_mb: float | None = None,
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
        Imaging settings (size, scale, weighting, CLEAN, ``facet_smearing``: how far each
        facet averages its visibilities, see :mod:`ddpipe.imaging.averaging`).
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
    epsilon
        Gridder accuracy.
    nthreads
        Threads for gridding and FFTs.
    cache_mb
        Override ``params.cache_mb``: keep the prepared visibilities in memory between
        major cycles when they fit in this many MiB (per worker with ``client``); larger
        data are streamed from disk on every pass, a quarter of this at a time. With
        facets, each facet's per-sample corrections are kept too when they also fit (8
        bytes per visibility and facet).
    client
        A ``distributed.Client``: the passes over the data run as Dask tasks on its
        workers (one per row range, each holding a ``subprocess_slots``); the minor
        cycles stay here. None: everything in this process.
    no_workers_timeout
        With ``client``: seconds without a worker offering ``subprocess_slots`` before failing.
    n_ranges
        With ``client``: row ranges per MS (default: one per worker offering the slot when
        imaging starts). The pipeline gives its configured worker count, so that the split
        does not depend on how many workers are connected. Images of different splits (or
        in-process, one range per MS while it fits ``cache_mb``) agree to the gridder's
        accuracy, about 1e-5 of the peak: ducc0 rounds each call's sum its own way.

    Returns
    -------
    ImageResult

    Raises
    ------
    UserError
        Unusable input (MS, sizes, mask, directions) or nothing unflagged to image.
    """
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    if not ms_paths:
        raise UserError("no Measurement Set given to image; pass at least one --ms")
    nx, ny = check_field(ImagingConfig, "size", params.size, "imaging.size", source="make_image")
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
    clean_mask = _load_mask(mask, shape)
    facets: tuple[Facet, ...] = ()
    use_solutions = solutions is not None and params.facets
    if solutions is not None and not params.facets:
        log.info("imaging.facets is false: solutions are not applied")
    if facet_directions is None and use_solutions:
        facet_directions = [
            (n.strip("[]"), float(rd[0]), float(rd[1]))
            for n, rd in zip(solutions.directions, solutions.direction_radec)
        ]
    if facet_directions:
        facets = make_facets(facet_directions, centre)
    labels = facet_labels(facets, shape, cell) if facets else None
    gains = tuple(
        GainTable(solutions, [f.name for f in facets], d.antenna_names, d.freq) if use_solutions else None
        for d in descs
    )
    if use_solutions:
        boxes = facet_boxes(labels, [f.name for f in facets])
        spec = PassSpec(
            shape,
            cell,
            boxes,
            True,
            epsilon,
            nthreads,
            neighbours=neighbour_pairs(labels),
            centres=facet_centres(labels, boxes, cell),
            max_loss=params.facet_smearing,
        )
    else:
        spec = PassSpec.plain(shape, cell, epsilon=epsilon, nthreads=nthreads)
    budget = int((params.cache_mb if cache_mb is None else cache_mb) * 2**20)
    if client is not None:
        engine = DaskEngine(
            client,
            descs,
            spec,
            gains,
            params.row_block,
            budget,
            n_ranges=n_ranges,
            no_workers_timeout=no_workers_timeout,
        )
    else:
        engine = LocalEngine(descs, spec, gains, params.row_block, budget)
    timings["setup"] = time.perf_counter() - t_start
    log.info(
        "imaging %d MS, %dx%d pixels of %.3g arcsec, %s weighting%s; %d row range(s) %s",
        len(descs),
        nx,
        ny,
        params.scale,
        params.weight,
        f", {len(facets)} facets with DD corrections" if use_solutions else "",
        len(engine.ranges),
        "on the Dask cluster" if client is not None else "in-process",
    )
    empty = (
        f"{', '.join(d.path for d in descs)}: every visibility is flagged or has zero weight (column "
        f"{descs[0].data_column}); there is nothing to image"
    )

    measured: dict[str, object] = {}  # facet coupling and scatter, from the dirty pass

    def residual_of(model: np.ndarray | None, psf_shape: tuple[int, int] | None = None):
        comps = split_model(model, spec, labels) if model is not None else None
        total = engine.run_pass(comps, psf_shape)
        if spec.facets and np.any(total.wsum > 0):
            dead = [facets[f].name for f in np.flatnonzero(total.wsum <= 0)]
            if dead:
                raise UserError(
                    f"facet {dead[0]!r}"
                    + (f" (and {len(dead) - 1} more)" if len(dead) > 1 else "")
                    + ": no visibility has weight once its direction's gains are applied (flagged, "
                    "zero or non-finite solutions everywhere?); check the H5parm, or image without "
                    "that direction"
                )
        try:
            residual, psf_img = finish(total, spec, labels, empty)
        except ValueError:
            raise UserError(empty) from None
        if total.coupling is not None:
            measured.update(coupling=coupling_matrix(total.coupling), scatter=scatter_level(total))
        return residual, psf_img

    try:
        t0 = time.perf_counter()
        if params.weight == "natural":  # no pass over the data; samples off the uv grid still drop out
            factor = natural_factor(shape)
        else:
            dens, total = engine.density()
            factor = weighting.finish(dens, total, params.weight, params.robust, grid=weighting.grid_shape(shape))
        engine.set_factor(factor)
        timings["weights"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        # CLEAN gets a PSF twice the image size: with a clipped PSF Hogbom can diverge
        psf_shape = (2 * ny, 2 * nx) if params.niter > 0 else shape
        dirty, psf2 = residual_of(None, psf_shape)
        timings["dirty"] = time.perf_counter() - t0
        oy, ox = (psf_shape[0] - ny) // 2, (psf_shape[1] - nx) // 2
        psf = psf2[oy : oy + ny, ox : ox + nx]  # the image-sized PSF that is written out
        t0 = time.perf_counter()
        beam = fit_beam(psf, cell)
        timings["beam"] = time.perf_counter() - t0
        log.info("restoring beam %.2f x %.2f arcsec, PA %.1f deg", beam.bmaj * 3600, beam.bmin * 3600, beam.bpa)

        cleaner = None
        if params.multiscale and params.niter > 0:
            cleaner = MultiscaleCleaner(psf2, params.multiscale_scales, shape, nthreads=nthreads)
        mgain, coupling = params.mgain, None
        if measured:
            cmat, scatter = measured["coupling"], measured["scatter"]
            coupling = (labels, cmat)
            off = cmat[~np.eye(len(facets), dtype=bool)]
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
        settings = CleanSettings(params.niter, params.gain, mgain, params.threshold, params.auto_threshold, MAX_MAJOR)
        cleaned = clean_cycles(
            dirty, psf2, settings, lambda m: residual_of(m)[0], mask=clean_mask, cleaner=cleaner, coupling=coupling
        )
    finally:
        engine.close()
    model, residual, n_iter, n_major = cleaned.model, cleaned.residual, cleaned.n_iter, cleaned.n_major
    timings["minor"] = cleaned.seconds_minor
    timings["major"] = cleaned.seconds_major

    t0 = time.perf_counter()
    restored = restore(model, residual, beam, cell, nthreads=nthreads)
    timings["restore"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    geom = _geometry(descs, shape, cell)
    prefix = Path(prefix)
    extra = {
        "DDPNITER": params.niter,
        "DDPMINOR": n_iter,
        "DDPMAJOR": n_major,
        "DDPWEIGH": params.weight if params.weight != "briggs" else f"briggs({params.robust:g})",
    }
    out = {}
    for name, img, unit in (
        ("dirty", dirty, "JY/BEAM"),
        ("psf", psf, "JY/BEAM"),
        ("model", model, "JY/PIXEL"),
        ("residual", residual, "JY/BEAM"),
        ("image", restored, "JY/BEAM"),
    ):
        out[name] = write_image(f"{prefix}-{name}.fits", img, geom, bunit=unit, beam=beam, extra=extra)
    ref_freq = geom.freq
    components = model_to_skymodel(model, cell, centre, ref_freq, facets=facets, labels=labels)
    sky_path = None
    if components.sources:
        from ddpipe.sky.skymodel import write_skymodel

        sky_path = write_skymodel(components, Path(f"{prefix}-sources.txt"))
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
        n_iterations=n_iter,
        n_major=n_major,
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
