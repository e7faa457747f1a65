"""The ``ddpipe`` command line: argparse subcommands, one module each.

Each subcommand lives in ``ddpipe/commands/<name>.py`` and defines ``HELP`` (one
line), ``add_arguments(parser)`` and ``run(args) -> int``. ``--help`` imports every
command module, so their heavy imports stay inside ``run`` and ``ddpipe --help``
starts at once: the one place in ddpipe where imports are inside functions (every
other module imports at its top).

Errors: a :class:`ddpipe.errors.DdpipeError` becomes one line on stderr and its
exit code (2 for user error); anything else is an internal error (exit 1). A
traceback is printed only with ``--debug``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Sequence

from ddpipe import __version__
from ddpipe.errors import DdpipeError

log = logging.getLogger("ddpipe")

#: Subcommands in the order ``--help`` lists them.
COMMANDS = (
    "validate",
    "inspect",
    "plan",
    "calibrate",
    "run",
    "demo",
    "simulate",
    "image",
    "facets",
    "sky",
)


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on bad arguments already; keep its one-line message."""


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ddpipe",
        description="Direction-dependent self-calibration: DP3 ddecal per time chunk on Dask, "
        "facet imaging on NumPy/ducc0.",
    )
    parser.add_argument("--version", action="version", version=f"ddpipe {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    common.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    common.add_argument("-q", "--quiet", action="count", default=0, help="less log output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMANDS:
        module = importlib.import_module(f"ddpipe.commands.{name}")
        p = sub.add_parser(
            name,
            help=module.HELP,
            description=(module.__doc__ or module.HELP).strip(),
            parents=[common],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def setup_logging(verbosity: int, debug: bool) -> None:
    """Console logging for the CLI: INFO by default, -v for DEBUG, -q for WARNING."""
    level = logging.INFO - 10 * verbosity
    if debug:
        level = logging.DEBUG
    level = min(max(level, logging.DEBUG), logging.ERROR)
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_ddpipe", False):
            root.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S"))
    handler._ddpipe = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("distributed", "bokeh", "tornado", "asyncio", "matplotlib", "fsspec"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING if not debug else logging.INFO))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 runtime failure, 2 bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = bool(getattr(args, "debug", False))
    setup_logging(getattr(args, "verbose", 0) - getattr(args, "quiet", 0), debug)
    try:
        return int(args._run(args) or 0)
    except DdpipeError as exc:
        if debug:
            log.exception("failed")
        print(f"ddpipe {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"ddpipe {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # an internal error: one line unless --debug
        if debug:
            raise
        print(
            f"ddpipe {args.command}: internal error: {type(exc).__name__}: {exc} "
            "(rerun with --debug for the traceback and please report it)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
