"""Simulate a direction-dependently corrupted Measurement Set.

Writes OUT.ms plus, beside it, OUT.skymodel (the true sky, one patch per
direction) and OUT.truth.h5 (the true gains as an H5parm DP3 can apply). Model
visibilities come from ddpipe's own DFT, not from DP3. With no options: a
demo-sized MS (24 LOFAR-like stations, 16 channels near 150 MHz, 180 x 10 s,
4 directions) in a few seconds. --no-corrupt with the same --seed gives the same
sky and noise without the gains: the reference for "what calibration should
reach".

--subbands K writes K sub-band MSs of contiguous frequency instead, named as
LOFAR names them: OUT_SB000.ms ... OUT_SB<K-1>.ms (OUT's .ms/.MS suffix kept),
each of --channels channels, sub-band k starting at --freq-start +
k * channels * --chan-width; one OUT.skymodel and one OUT.truth.h5 cover the
whole band. E.g. a 40 MHz band as 4 x 8 channels from 130 MHz:
  ddpipe simulate obs.ms --subbands 4 --channels 8 --chan-width 1.25e6 --freq-start 130e6
and in the config: inputs.ms: "obs_SB*.ms".
"""

from __future__ import annotations

import argparse

HELP = "simulate a DD-corrupted Measurement Set with its true sky model and gains"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ddpipe.simulate.spec import LAYOUTS, SimulationSpec

    d = SimulationSpec()
    parser.add_argument("out", metavar="OUT.ms", help="Measurement Set to create")
    g = parser.add_argument_group("array and observation")
    g.add_argument("--stations", type=int, default=d.stations, help=f"number of stations (default {d.stations})")
    g.add_argument("--layout", choices=LAYOUTS, default=d.layout, help=f"station layout (default {d.layout})")
    g.add_argument(
        "--channels", type=int, default=d.channels, help=f"number of channels per sub-band (default {d.channels})"
    )
    g.add_argument(
        "--subbands",
        type=int,
        default=d.subbands,
        metavar="K",
        help="write K sub-band MSs of contiguous frequency, OUT_SB000.ms ... (one sky model and truth "
        f"over the whole band) (default {d.subbands}: one MS, OUT.ms)",
    )
    g.add_argument(
        "--freq-start",
        type=float,
        default=d.freq_start,
        help=f"centre of the first channel, Hz (default {d.freq_start:g})",
    )
    g.add_argument(
        "--chan-width", type=float, default=d.chan_width, help=f"channel width, Hz (default {d.chan_width:g})"
    )
    g.add_argument("--times", type=int, default=d.times, help=f"number of time slots (default {d.times})")
    g.add_argument("--interval", type=float, default=d.interval, help=f"integration time, s (default {d.interval:g})")
    g.add_argument("--start", default=d.start, help=f"start, UTC (default {d.start})")
    g.add_argument("--ra", help="phase centre RA: degrees, or hh:mm:ss (default: transits at mid-observation)")
    g.add_argument(
        "--dec",
        help="phase centre Dec: degrees, or dd:mm:ss; write a negative one as --dec=-30:00:00 "
        "(default +50 lofar, -30 ska-low)",
    )
    _sky_arguments(parser.add_argument_group("sky, gains and noise"), d)
    parser.add_argument("--overwrite", action="store_true", help="replace OUT.ms and its sky model/truth")


def _sky_arguments(s, d) -> None:
    """The options of the sky, the gains and the noise (defaults from the SimulationSpec ``d``)."""
    s.add_argument(
        "--directions",
        type=int,
        default=None,
        help=f"random patches (directions) (default {d.directions}; not with --skymodel)",
    )
    s.add_argument(
        "--sources-per-direction",
        type=int,
        default=d.sources_per_direction,
        help=f"random sources per patch (default {d.sources_per_direction})",
    )
    s.add_argument(
        "--faint-sources",
        type=int,
        default=d.faint_sources,
        help="extra point sources of --faint-flux Jy spread over the patches, named P<d>_f<k>: "
        f"what a catalogue misses (default {d.faint_sources})",
    )
    s.add_argument(
        "--faint-flux",
        type=float,
        default=d.faint_flux,
        help=f"flux of each faint source, Jy (default {d.faint_flux:g})",
    )
    s.add_argument("--skymodel", metavar="FILE", help="use this sky model (its patches are the directions)")
    s.add_argument(
        "--noise",
        type=float,
        default=d.noise,
        help=f"noise per visibility, Jy, per real/imaginary part (default {d.noise:g})",
    )
    s.add_argument(
        "--phase-scale",
        type=float,
        default=d.phase_scale,
        help=f"RMS of the DD phases at the band centre, rad (default {d.phase_scale:g})",
    )
    s.add_argument(
        "--amplitude-scale",
        type=float,
        default=d.amplitude_scale,
        help=f"RMS of the DD log-amplitudes (default {d.amplitude_scale:g}: amplitudes stay 1)",
    )
    s.add_argument(
        "--no-corrupt", action="store_true", help="do not apply the gains (same sky and noise as with the same --seed)"
    )
    s.add_argument("--seed", type=int, default=d.seed, help=f"random seed (default {d.seed})")


def spec_from_args(args: argparse.Namespace):
    """The :class:`~ddpipe.simulate.spec.SimulationSpec` the options describe (UserError on bad ones)."""
    from ddpipe.errors import UserError
    from ddpipe.simulate.spec import SimulationSpec, check_spec, parse_sky_angle

    if args.skymodel and args.directions is not None:
        raise UserError("--directions and --skymodel: the sky model's patches are the directions; give one of them")
    spec = SimulationSpec(
        stations=args.stations,
        layout=args.layout,
        channels=args.channels,
        subbands=args.subbands,
        freq_start=args.freq_start,
        chan_width=args.chan_width,
        times=args.times,
        interval=args.interval,
        start=args.start,
        ra=None if args.ra is None else parse_sky_angle(args.ra, "ra"),
        dec=None if args.dec is None else parse_sky_angle(args.dec, "dec"),
        directions=SimulationSpec.directions if args.directions is None else args.directions,
        sources_per_direction=args.sources_per_direction,
        faint_sources=args.faint_sources,
        faint_flux=args.faint_flux,
        skymodel=args.skymodel,
        noise=args.noise,
        phase_scale=args.phase_scale,
        amplitude_scale=args.amplitude_scale,
        corrupt=not args.no_corrupt,
        seed=args.seed,
        overwrite=args.overwrite,
    )
    check_spec(spec)
    return spec


def run(args: argparse.Namespace) -> int:
    from ddpipe.simulate import simulate

    result = simulate(args.out, spec_from_args(args))
    rate = result.nvis / result.seconds if result.seconds > 0 else float("inf")
    k = len(result.ms_paths)
    what = str(result.ms) if k == 1 else f"{k} sub-bands"
    chans = f"{result.nchannels} channels" if k == 1 else f"{k} x {result.nchannels // k} channels"
    print(
        f"{what}: {result.nstations} stations, {result.nbaselines} baselines, {result.ntimes} time slots, "
        f"{chans}, {result.ndirections} directions, {result.nsources} sources "
        f"({result.seconds:.1f} s, {rate:.3g} visibilities/s)"
    )
    for p in result.ms_paths if k > 1 else ():
        print(f"  sub-band {p}")
    print(f"  sky model {result.skymodel}")
    print(f"  true gains {result.truth}")
    return 0
