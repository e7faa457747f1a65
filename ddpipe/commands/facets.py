"""Write the facet layout ddpipe images with as a ds9 region file (WSClean's -facet-regions).

The facets are the Voronoi cells around the direction centres (each pixel
belongs to the nearest direction), clipped to the image: the layout
`ddpipe image` uses with the same --ms, --skymodel/--h5parm, --size and
--scale. One polygon per direction, in fk5 degrees, labelled with its name:

  ddpipe facets --ms obs.ms --skymodel sky.txt --size 1024 --scale 10asec --out facets.reg
  wsclean -facet-regions facets.reg -apply-facet-solutions sol.h5 phase000 ... obs.ms

Directions come from the sky model's patches (as `ddpipe image --skymodel`)
or the H5parm's directions. With both, their names must agree; the polygons
are the cells around the sky model's patch positions, in the H5parm's
direction order. Each polygon is followed by a point: WSClean 3.1 gives a
facet the solutions of the H5parm direction nearest that point, so with an
H5parm the point is that direction's position in the H5parm.

Size and scale default to the config's imaging section (--config), as in
`ddpipe image`.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from typing import TYPE_CHECKING

from ddpipe.errors import UserError

if TYPE_CHECKING:
    from ddpipe.solutions.types import Solutions

HELP = "write the facet layout (Voronoi cells around the directions) as a ds9 region file for WSClean"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ms", required=True, metavar="MS", help="Measurement Set (its phase centre is the image centre)"
    )
    parser.add_argument("--skymodel", metavar="SKY", help="sky model whose patches are the directions")
    parser.add_argument("--h5parm", metavar="SOL", help="H5parm whose directions are the facets (and set their order)")
    parser.add_argument("--solset", default="sol000", help="solset in the H5parm (default sol000)")
    parser.add_argument("--out", required=True, metavar="FILE.reg", help="region file to write")
    parser.add_argument(
        "--size",
        "-size",
        nargs="+",
        type=int,
        metavar="N",
        help="image width [height] in pixels (default: the config's imaging.size)",
    )
    parser.add_argument(
        "--scale",
        "-scale",
        metavar="ANGLE",
        help="pixel size, e.g. 10asec (a bare number is degrees, as in WSClean and ddpipe image; "
        "default: the config's imaging.scale)",
    )
    parser.add_argument("--config", metavar="YAML", help="ddpipe config whose 'imaging' section gives the defaults")
    parser.add_argument(
        "--data-column",
        "-data-column",
        default="DATA",
        metavar="COL",
        help="column the image is made from (checked to exist; default DATA)",
    )


def image_geometry(args: argparse.Namespace) -> tuple[int, int, float]:
    """``(nx, ny, scale_arcsec)`` from --size/--scale over the config's imaging defaults."""
    from ddpipe.commands.image import parse_angle_arcsec
    from ddpipe.config import load_config

    over: dict = {}
    if args.size is not None:
        if len(args.size) not in (1, 2):
            raise UserError(f"--size {' '.join(map(str, args.size))}: give width [height]")
        over["size"] = [args.size[0], args.size[-1]]
    if args.scale is not None:
        over["scale"] = parse_angle_arcsec(args.scale)
    params = load_config(args.config, overrides={"imaging": over}).imaging
    nx, ny = params.size[0], params.size[-1]
    for what, n in (("width", nx), ("height", ny)):
        if n % 2 or n < 32:
            raise UserError(f"--size {what} {n}: must be even and at least 32 pixels, as for ddpipe image")
    return nx, ny, float(params.scale)


def facet_directions(
    sky: list[tuple[str, float, float]] | None,
    h5: list[tuple[str, float, float]] | None,
    sky_name: str = "the sky model",
    h5_name: str = "the H5parm",
) -> list[tuple[str, float, float]]:
    """``(name, ra, dec)`` of the facets from the sky model's and/or the H5parm's directions.

    The sky model's patches at their positions (what ``ddpipe image --skymodel``
    centres its facets on), in the H5parm's direction order when both are given;
    else the one given.

    Raises
    ------
    UserError
        Neither given, or names that differ between the two (naming both files).
    """
    if sky is None and h5 is None:
        raise UserError("no directions: give --skymodel SKY (its patches) or --h5parm SOL (its directions)")
    if sky is None or h5 is None:
        return list(sky if sky is not None else h5)
    have = [n for n, _, _ in h5]
    names = [n for n, _, _ in sky]
    missing, extra = [n for n in names if n not in have], [n for n in have if n not in names]
    if missing or extra:
        what = "; ".join(
            s
            for s in (
                f"no solutions for {', '.join(missing)} of {sky_name}" if missing else "",
                f"{', '.join(extra)} not a patch of {sky_name}" if extra else "",
            )
            if s
        )
        raise UserError(
            f"{h5_name}: its directions ({', '.join(have)}) do not match the sky model's patches "
            f"({what}); give the sky model the solutions were made with"
        )
    where = {n: (ra, dec) for n, ra, dec in sky}
    return [(n, *where[n]) for n in have]


def h5_directions(sol: Solutions) -> list[tuple[str, float, float]]:
    """The H5parm's directions as ``ddpipe image`` reads them: names without brackets, radians."""
    return [(n.strip("[]"), float(rd[0]), float(rd[1])) for n, rd in zip(sol.directions, sol.direction_radec)]


def run(args: argparse.Namespace) -> int:
    from ddpipe.imaging.facets import make_facets
    from ddpipe.imaging.msdata import describe_ms
    from ddpipe.imaging.regions import facet_polygons, write_ds9

    nx, ny, scale = image_geometry(args)
    sky = h5 = None
    if args.skymodel:
        from ddpipe.sky.directions import patch_directions
        from ddpipe.sky.skymodel import read_skymodel

        sky = patch_directions(read_skymodel(args.skymodel))
    if args.h5parm:
        from ddpipe.solutions.h5parm import read_h5parm

        h5 = h5_directions(read_h5parm(args.h5parm, solset=args.solset))
    directions = facet_directions(sky, h5, args.skymodel, args.h5parm)
    centre = describe_ms(args.ms, args.data_column).phase_centre
    cell = math.radians(scale / 3600.0)
    polygons = facet_polygons(make_facets(directions, centre), (ny, nx), cell, centre)
    if h5 is not None:  # WSClean takes the solutions of the H5parm direction nearest each point
        where = {n: (ra % (2 * math.pi), dec) for n, ra, dec in h5}
        polygons = tuple(dataclasses.replace(p, ra=where[p.name][0], dec=where[p.name][1]) for p in polygons)
    source = ", ".join(f"{k} {v}" for k, v in (("sky model", args.skymodel), ("H5parm", args.h5parm)) if v)
    comments = [
        f"ddpipe facets: {len(polygons)} facets from {source}",
        f"image {nx}x{ny} pixels of {scale:g} arcsec about RA {math.degrees(centre[0]):.6f} deg, "
        f"Dec {math.degrees(centre[1]):.6f} deg (phase centre of {args.ms})",
    ]
    path = write_ds9(args.out, polygons, comments)
    print(
        f"{path}: {len(polygons)} facets ({', '.join(p.name for p in polygons)}) over {nx}x{ny} pixels "
        f"of {scale:g} arcsec"
    )
    return 0
