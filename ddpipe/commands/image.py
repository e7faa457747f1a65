"""Image and deconvolve Measurement Sets in-process (NumPy + ducc0), optionally facet by facet
with direction-dependent solutions.

Option names follow WSClean's (two dashes, or one as WSClean writes them). Writes NAME-dirty.fits,
NAME-psf.fits, NAME-model.fits, NAME-residual.fits and NAME-image.fits (restored) — with
``--channels-out N`` (N > 1) NAME-0000-*.fits ... per output channel and NAME-MFS-*.fits, as WSClean —
and NAME-sources.txt (the CLEAN components as a makesourcedb sky model, one
patch per facet) when there are components.

Examples:
  ddpipe image --ms obs.ms --size 1024 --scale 10asec --weight briggs 0 --niter 1000 --name img
  ddpipe image --ms obs.ms --h5parm cal.h5 --skymodel sky.txt --auto-threshold 3 --name facet

Defaults come from the packaged config (or --config FILE, its imaging section);
options given here override them.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from ddpipe.errors import UserError

HELP = "image and CLEAN Measurement Sets (WSClean-style options), with DD facet corrections"

_ANGLE_UNITS = {"asec": 1.0, "arcsec": 1.0, "amin": 60.0, "arcmin": 60.0, "deg": 3600.0, "": 3600.0}
_FLUX_UNITS = {"": 1.0, "jy": 1.0, "mjy": 1e-3, "ujy": 1e-6, "µjy": 1e-6}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ms",
        nargs="+",
        action="extend",
        required=True,
        metavar="MS",
        help="Measurement Set(s) to image together (one phase centre)",
    )
    parser.add_argument(
        "--name",
        "-name",
        default="ddpipe",
        metavar="PREFIX",
        help="output prefix: PREFIX-dirty.fits ... (default ddpipe)",
    )
    parser.add_argument("--config", metavar="YAML", help="ddpipe config whose 'imaging' section gives the defaults")
    parser.add_argument(
        "--data-column",
        "-data-column",
        default=None,
        metavar="COL",
        help="column to image (default: the config's inputs.data_column, DATA)",
    )
    _add_image_arguments(parser.add_argument_group("image"))
    _add_deconvolution_arguments(parser.add_argument_group("deconvolution"))
    _add_facet_arguments(parser.add_argument_group("direction-dependent facets"))


def _add_image_arguments(g: Any) -> None:  # an argparse argument group
    g.add_argument("--size", "-size", nargs="+", type=int, metavar="N", help="width [height] in pixels (even, >= 32)")
    g.add_argument(
        "--scale",
        "-scale",
        metavar="ANGLE",
        help="pixel size, e.g. 10asec, 0.5amin, 0.002deg (a bare number is degrees, as in WSClean)",
    )
    g.add_argument(
        "--weight",
        "-weight",
        nargs="+",
        metavar="MODE",
        help="natural | uniform | briggs R (e.g. --weight briggs -0.5)",
    )
    g.add_argument(
        "--threads", "-j", type=int, metavar="N", help="gridding/FFT/CLEAN threads (imaging.threads, default 2)"
    )
    g.add_argument(
        "--wgridder-accuracy",
        "-wgridder-accuracy",
        type=float,
        metavar="EPS",
        help="w-gridder accuracy (imaging.wgridder_accuracy, default 1e-4 as WSClean)",
    )
    g.add_argument("--row-block", type=int, metavar="ROWS", help="rows read at a time (bounds memory)")
    g.add_argument(
        "--cache-mb",
        type=float,
        metavar="MIB",
        help="memory kept between major cycles: prepared data and facet corrections (default 4096)",
    )


def _add_deconvolution_arguments(c: Any) -> None:  # an argparse argument group
    c.add_argument("--niter", "-niter", type=int, metavar="N", help="CLEAN components at most (0: dirty image only)")
    c.add_argument("--gain", "-gain", type=float, metavar="G", help="minor-cycle loop gain")
    c.add_argument(
        "--mgain", "-mgain", type=float, metavar="M", help="major-cycle gain (fraction of the peak cleaned per cycle)"
    )
    c.add_argument(
        "--threshold",
        "-threshold",
        metavar="FLUX",
        help="stop at this residual peak, e.g. 0.01 or 10mJy (without --auto-threshold: no auto-threshold)",
    )
    c.add_argument(
        "--auto-threshold",
        "-auto-threshold",
        type=float,
        metavar="SIGMA",
        help="stop at SIGMA x the MAD noise (0: off)",
    )
    c.add_argument(
        "--multiscale", "-multiscale", action="store_true", default=None, help="multiscale CLEAN instead of Hogbom"
    )
    c.add_argument("--multiscale-scales", "-multiscale-scales", metavar="LIST", help="scales in pixels, e.g. 0,4,16")
    c.add_argument(
        "--channels-out",
        "-channels-out",
        type=int,
        metavar="N",
        help="image N output channels, cleaned jointly (peaks on their weighted sum, as WSClean's "
        "-join-channels); writes NAME-0000-*.fits ... and NAME-MFS-*.fits",
    )
    c.add_argument(
        "--fit-spectral-pol",
        "-fit-spectral-pol",
        type=int,
        metavar="TERMS",
        help="fit each component's channel fluxes with a polynomial of TERMS terms",
    )
    c.add_argument(
        "--fit-spectral-log-pol",
        "-fit-spectral-log-pol",
        type=int,
        metavar="TERMS",
        help="the same with a polynomial in log flux vs log frequency",
    )
    c.add_argument(
        "--fits-mask", "-fits-mask", metavar="FITS", help="clean only where this image (same size) is non-zero"
    )


def _add_facet_arguments(f: Any) -> None:  # an argparse argument group
    f.add_argument("--h5parm", metavar="SOL", help="H5parm with per-direction solutions to correct facet by facet")
    f.add_argument("--solset", default="sol000", help="solset in the H5parm (default sol000)")
    f.add_argument(
        "--skymodel",
        metavar="SKY",
        help="sky model whose patches are the facet centres (default: the H5parm's directions)",
    )
    f.add_argument("--no-facets", action="store_true", help="do not apply the solutions (plain imaging)")
    f.add_argument(
        "--facet-smearing",
        type=float,
        metavar="LOSS",
        help="average each facet's data while a source at its far edge loses at most this fraction of its "
        "peak (default 0.01; 0: no averaging)",
    )


def parse_angle_arcsec(text: str) -> float:
    """'10asec' → 10.0, '0.5amin' → 30.0, '0.01deg' or '0.01' → 36.0 (arcsec)."""
    m = re.fullmatch(r"\s*([-+0-9.eE]+)\s*([a-zA-Z]*)\s*", text or "")
    unit = m.group(2).lower() if m else None
    if not m or unit not in _ANGLE_UNITS:
        raise UserError(f"--scale {text!r}: expected a number with asec, amin or deg (e.g. 10asec)")
    try:
        value = float(m.group(1))
    except ValueError:
        raise UserError(f"--scale {text!r}: {m.group(1)!r} is not a number") from None
    return value * _ANGLE_UNITS[unit]


def parse_flux_jy(text: str) -> float:
    """'0.01' → 0.01, '10mJy' → 0.01 (Jy)."""
    m = re.fullmatch(r"\s*([-+0-9.eE]+)\s*([a-zA-Zµ]*)\s*", text or "")
    unit = m.group(2).lower() if m else None
    if not m or unit not in _FLUX_UNITS:
        raise UserError(f"--threshold {text!r}: expected Jy, e.g. 0.01 or 10mJy")
    try:
        return float(m.group(1)) * _FLUX_UNITS[unit]
    except ValueError:
        raise UserError(f"--threshold {text!r}: {m.group(1)!r} is not a number") from None


def imaging_overrides(args: argparse.Namespace) -> dict:
    """The ``imaging`` config keys the options set (validated later with the config)."""
    out: dict = {}
    if args.size is not None:
        if len(args.size) not in (1, 2):
            raise UserError(f"--size {' '.join(map(str, args.size))}: give width [height]")
        out["size"] = [args.size[0], args.size[-1]]
    if args.scale is not None:
        out["scale"] = parse_angle_arcsec(args.scale)
    if args.weight is not None:
        mode = args.weight[0].lower()
        if mode == "briggs":
            if len(args.weight) != 2:
                raise UserError("--weight briggs needs the robustness, e.g. --weight briggs 0")
            try:
                out["robust"] = float(args.weight[1])
            except ValueError:
                raise UserError(f"--weight briggs {args.weight[1]!r}: robustness must be a number") from None
        elif len(args.weight) != 1:
            raise UserError(f"--weight {' '.join(args.weight)}: only briggs takes a value")
        out["weight"] = mode
    for key in (
        "niter",
        "gain",
        "mgain",
        "auto_threshold",
        "multiscale",
        "row_block",
        "facet_smearing",
        "cache_mb",
        "threads",
        "wgridder_accuracy",
        "channels_out",
        "fit_spectral_pol",
        "fit_spectral_log_pol",
    ):
        value = getattr(args, key)
        if value is not None:
            out[key] = value
    if args.threshold is not None:
        out["threshold"] = parse_flux_jy(args.threshold)
        if args.auto_threshold is None:  # as in WSClean: a fixed threshold alone means no auto-threshold
            out["auto_threshold"] = 0.0
    if args.multiscale_scales is not None:
        try:
            out["multiscale_scales"] = [int(s) for s in args.multiscale_scales.split(",") if s.strip()]
        except ValueError:
            raise UserError(f"--multiscale-scales {args.multiscale_scales!r}: expected integers like 0,4,16") from None
        out.setdefault("multiscale", True)
    if args.no_facets:
        out["facets"] = False
    return out


def run(args: argparse.Namespace) -> int:
    from ddpipe.config import load_config
    from ddpipe.imaging import make_image
    from ddpipe.validation import validate

    # paths given on the command line are the current folder's, whichever folder --config is in
    over: dict = {"imaging": imaging_overrides(args), "inputs": {"ms": [str(Path(p).resolve()) for p in args.ms]}}
    if args.data_column:
        over["inputs"]["data_column"] = args.data_column
    cfg = load_config(args.config, overrides=over)
    validate(cfg, "image")
    params = cfg.imaging
    solutions = None
    directions = None
    if args.h5parm:
        from ddpipe.solutions.h5parm import read_h5parm

        solutions = read_h5parm(args.h5parm, solset=args.solset)
    if args.skymodel:
        from ddpipe.sky.directions import patch_directions
        from ddpipe.sky.skymodel import read_skymodel

        directions = patch_directions(read_skymodel(args.skymodel))
    if solutions is not None and directions is not None and not args.no_facets:
        have = [d.strip("[]") for d in solutions.directions]
        missing = [name for name, _, _ in directions if name not in have]
        if missing:
            raise UserError(
                f"{args.h5parm}: no solutions for the facet direction(s) {', '.join(missing)} of "
                f"{args.skymodel} (it has {', '.join(have)}); give the sky model it was solved with"
            )
    result = make_image(
        list(cfg.inputs.ms),
        params,
        args.name,
        data_column=cfg.inputs.data_column,
        solutions=solutions,
        facet_directions=directions,
        mask=args.fits_mask,
    )
    bmaj, bmin, bpa = result.beam
    for name, path in result.paths.items():
        print(f"{name:9s} {path}")
    if result.skymodel is not None:
        print(f"{'sources':9s} {result.skymodel} ({result.n_components} components)")
    print(
        f'beam {bmaj * 3600:.2f}" x {bmin * 3600:.2f}", PA {bpa:.1f} deg; peak {result.peak:.5g} Jy/beam, '
        f"residual rms {result.rms:.4g} Jy/beam, dynamic range {result.dynamic_range:.0f}; "
        f"{result.n_iterations} iterations in {result.n_major} major cycles; {result.timings['total']:.1f} s"
    )
    return 0
