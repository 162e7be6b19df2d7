"""Running promtool (Debian package `prometheus`) on rendered rules and their unit tests."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PromtoolMissing", "PromtoolResult", "check_rules", "find_promtool", "run_unit_tests"]


class PromtoolMissing(RuntimeError):
    """promtool is not installed."""


@dataclass(frozen=True)
class PromtoolResult:
    command: tuple[str, ...]
    returncode: int
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def find_promtool() -> str:
    """PITCHEY_PROMTOOL, else promtool on PATH, else /usr/bin/promtool."""
    for candidate in (os.environ.get("PITCHEY_PROMTOOL"), shutil.which("promtool"),
                      "/usr/bin/promtool"):
        if candidate and Path(candidate).exists():
            return candidate
    raise PromtoolMissing("promtool not found: install the Debian package 'prometheus' "
                          "(`make test` does) or set PITCHEY_PROMTOOL")


def _run(args: Sequence[str], timeout_s: float) -> PromtoolResult:
    command = (find_promtool(), *args)
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s,
                          check=False)
    return PromtoolResult(command, done.returncode, (done.stdout + done.stderr).strip())


def check_rules(rule_file: Path | str, timeout_s: float = 60) -> PromtoolResult:
    return _run(["check", "rules", str(rule_file)], timeout_s)


def run_unit_tests(unit_test_files: Sequence[Path | str], timeout_s: float = 120) -> PromtoolResult:
    return _run(["test", "rules", *map(str, unit_test_files)], timeout_s)
