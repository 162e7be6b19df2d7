"""The `pitchey` argument parser: a usage error (unknown flag, bad value, missing argument)
exits 4 (`ExitCode.CONFIG`), not argparse's own 2, which CI would read as the gate's
"regression". Standard library only.

`argparse` builds every subcommand's parser with the class of the parser that holds the
subparsers, so the dispatcher's one `CommandParser` covers every `pitchey` command and its
own subcommands (`pitchey alerts render ...`).
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from pitchey_cli.exitcodes import ExitCode

__all__ = ["CommandParser"]


class CommandParser(argparse.ArgumentParser):
    """An `ArgumentParser` whose usage errors exit `ExitCode.CONFIG`."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(ExitCode.CONFIG)
