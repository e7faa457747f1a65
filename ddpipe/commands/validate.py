"""Check a ddpipe YAML config: unknown keys, wrong types and out-of-range values are errors."""

from __future__ import annotations

import argparse

HELP = "check a YAML config file"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="YAML config file")


def run(args: argparse.Namespace) -> int:
    from ddpipe.config import load_config

    cfg = load_config(args.config)
    if cfg.cluster.slurm.lifetime:
        from ddpipe.cluster import check_lifetime

        check_lifetime(cfg.cluster)
    print(f"{args.config}: OK ({len(cfg.cycles)} self-cal cycle(s), cluster mode {cfg.cluster.mode})")
    return 0
