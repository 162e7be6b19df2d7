"""The one error a reader of a run directory raises."""

from __future__ import annotations

from pathlib import Path

__all__ = ["RunDirError"]


class RunDirError(Exception):
    """A run directory (or one file in it) is missing, foreign, truncated or corrupt.

    `path` is the offending file (or the directory itself), `line` the 1-based line number for
    JSON-lines files when one line is at fault. `str(error)` is one line a person can act on.
    """

    def __init__(self, path: Path | str, reason: str, *, line: int | None = None) -> None:
        self.path = Path(path)
        self.reason = reason
        self.line = line
        where = f"{self.path}:{line}" if line is not None else str(self.path)
        super().__init__(f"{where}: {reason}")
