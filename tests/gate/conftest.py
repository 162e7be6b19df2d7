"""Fixtures of the gate's tests; the run-directory builder itself is testing.rundirs and the
real-run helpers are in realruns.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from testing.rundirs import RunSpec, WrittenRun, write_run


@pytest.fixture
def make_run(tmp_path: Path) -> Callable[[RunSpec], WrittenRun]:
    """Write a synthetic run directory (a fresh root per call) and return it."""
    counter = iter(range(1_000))

    def make(spec: RunSpec) -> WrittenRun:
        return write_run(tmp_path / f"runs{next(counter)}", spec)

    return make
