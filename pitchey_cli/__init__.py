"""The `pitchey` console command: a thin dispatcher over the packages' own `cli` modules.

Each package's `cli.py` only builds its argparse subcommands at import time and imports its
heavy dependencies inside the command function, so `pitchey serve` never imports Locust or Dash.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from pitchey_cli.exitcodes import ExitCode
from pitchey_cli.usage import CommandParser

__all__ = ["main", "build_parser", "COMMAND_MODULES"]

# Subcommand groups in the order `pitchey --help` lists them.
COMMAND_MODULES = (
    "pitchey.cli",  # serve, seed, failover
    "loadtests.cli",  # run
    "gate.cli",  # gate
    "collectors.cli",  # report
    "alerts.cli",  # alerts render|replay|receive|check
    "dashboards.cli",  # dashboard, capacity
)


def build_parser() -> argparse.ArgumentParser:
    from collectors.targets import PRODUCT_TARGETS as TARGETS  # standard library only

    # Every subcommand's parser is a CommandParser too: a bad flag anywhere exits 4 (CONFIG).
    parser = CommandParser(
        prog="pitchey",
        description="Pitchey platform service and performance suite: does the platform hold "
        f"{TARGETS.users:,} concurrent users at p95 < {TARGETS.p95_ms:g} ms, and what does "
        "that cost?",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                continue  # that part of the suite is not installed
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return ExitCode.CONFIG
    try:
        return int(args.func(args) or ExitCode.OK)
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
