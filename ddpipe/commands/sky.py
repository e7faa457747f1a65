"""Sky-model tools. ``ddpipe sky convert IN OUT`` reads any sky model DP3 reads (as LINC, Rapthor,
lsmtool or makesourcedb write them) and writes one that ddpipe and DP3 both read, printing one line
per input column it dropped and why. A column DP3 does not know (often a misspelling) stops it with
file:line unless --drop-unknown is given."""

from __future__ import annotations

import argparse

HELP = "convert a sky model to one ddpipe and DP3 both read"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="sky_command", metavar="ACTION")
    sub.required = True
    convert = sub.add_parser(
        "convert",
        help="write IN as a sky model ddpipe and DP3 both read",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # the common options also after the action (``ddpipe sky convert IN OUT --debug``); SUPPRESS keeps
    # those given before it
    convert.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    convert.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS, help="more log output")
    convert.add_argument("-q", "--quiet", action="count", default=argparse.SUPPRESS, help="less log output")
    convert.add_argument("input", metavar="IN", help="sky model in any form DP3 reads (makesourcedb text)")
    convert.add_argument("output", metavar="OUT", help="sky model to write (.skymodel or .txt for DP3)")
    convert.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    convert.add_argument(
        "--drop-unknown", action="store_true", help="drop columns DP3 does not know instead of stopping"
    )


def run(args: argparse.Namespace) -> int:
    from ddpipe.sky.convert import convert_skymodel

    result = convert_skymodel(args.input, args.output, overwrite=args.overwrite, drop_unknown=args.drop_unknown)
    for line in result.dropped:
        print(f"{args.input}: dropped {line}")
    model = result.model
    print(
        f"{args.output}: {len(model.sources)} source(s) in {len(model.patch_names())} patch(es), "
        "as ddpipe and DP3 read it"
    )
    return 0
