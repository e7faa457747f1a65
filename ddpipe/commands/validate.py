"""Check a ddpipe YAML config as ``ddpipe run`` would before it starts: unknown keys, wrong types and
out-of-range values, and the files it names (Measurement Sets, sky model, DP3, truth, scheduler file)."""

from __future__ import annotations

import argparse

HELP = "check a YAML config file"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="YAML config file")
    parser.add_argument(
        "--schema-only",
        action="store_true",
        help="check the keys and values only, not the files they name (e.g. a template)",
    )


def run(args: argparse.Namespace) -> int:
    from ddpipe.cluster import check_cluster
    from ddpipe.config import load_config
    from ddpipe.validation import validate

    cfg = load_config(args.config, expand_globs=not args.schema_only)  # a template's globs match nothing yet
    if not args.schema_only:
        validate(cfg, "run")  # what `ddpipe run` checks before it starts, nothing less
        warning = check_cluster(cfg.cluster)  # `run` says it when it connects
        if warning:
            print(f"{args.config}: warning: {warning}")
    what = "keys and values" if args.schema_only else "keys, values and the files it names"
    print(f"{args.config}: OK ({len(cfg.cycles)} self-cal cycle(s), cluster mode {cfg.cluster.mode}; {what})")
    return 0
