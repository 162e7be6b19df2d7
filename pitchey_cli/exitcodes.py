"""The exit codes of every `pitchey` command: one enum, so CI reads one vocabulary.

The order of precedence when several apply (the gate's rule) is CONFIG, INVALID, BREACH,
REGRESSION: a run that could not be judged is never reported as a mere regression.
Standard library only: `pitchey serve` and the platform import it too.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["ExitCode"]


class ExitCode(IntEnum):
    """What a `pitchey` command's exit status means (README, "Exit codes")."""

    OK = 0  # pass: the command did its job; for the gate, every check holds
    BREACH = 1  # a threshold is breached, or a command failed at its job (e.g. a run not started)
    REGRESSION = 2  # worse than the baseline beyond the margin, and not noise
    INVALID = 3  # the run cannot be judged (generator saturated, nothing measured, no answer)
    CONFIG = 4  # bad input: a flag, a scenario, a spec, a missing file or tool
    INTERRUPTED = 130  # Ctrl-C or SIGTERM (128 + SIGINT, the shell's convention)
