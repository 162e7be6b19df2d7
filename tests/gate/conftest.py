"""Fixtures of the gate's tests; the run-directory builder itself is testing.rundirs and the
real-run helpers are in realruns.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from testing.rundirs import RunSpec, WrittenRun, write_run
from tests.gate.realruns import Result, pitchey, require_pitchey_run, run_dirs

SMOKE_DURATION_S = "15"


@pytest.fixture
def make_run(tmp_path: Path) -> Callable[[RunSpec], WrittenRun]:
    """Write a synthetic run directory (a fresh root per call) and return it."""
    counter = iter(range(1_000))

    def make(spec: RunSpec) -> WrittenRun:
        return write_run(tmp_path / f"runs{next(counter)}", spec)

    return make


@dataclass
class SmokeGate:
    result: Result
    run_dir: Path
    junit: Path
    json: Path
    markdown: Path


@pytest.fixture(scope="session")
def smoke_gate(tmp_path_factory: pytest.TempPathFactory) -> SmokeGate:
    """`pitchey run smoke --gate` against the embedded service, once per session."""
    require_pitchey_run()
    root = tmp_path_factory.mktemp("smoke")
    outputs = SmokeGate(Result(-1, "", ""), root, root / "gate/junit.xml",
                        root / "gate/gate.json", root / "gate/summary.md")
    outputs.result = pitchey(["run", "smoke", "--duration", SMOKE_DURATION_S,
                              "--out", str(root / "runs"), "--gate",
                              "--junit", str(outputs.junit), "--json", str(outputs.json),
                              "--markdown", str(outputs.markdown)], timeout_s=240)
    dirs = run_dirs(root / "runs")
    assert len(dirs) == 1, outputs.result.text
    outputs.run_dir = dirs[0]
    return outputs
