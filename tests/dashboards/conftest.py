"""Synthetic run directories (written with collectors' real RunWriter) and a real Chromium."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from testing.demo import DemoSpec, write_demo_run
from tests.dashboards.verdicts import judge

SMALL = DemoSpec(endpoints=4, step_s=10)
# Fast, error-free and well under the product's p95 target: a run the gate passes.
PASSING = DemoSpec(endpoints=4, step_s=10, steps=(10, 15, 20), base_response_s=0.01,
                   failure_rate=0.0, scenario_name="passing", start=SMALL.start + 7200)
# The demo's own error rate (0.2 % and up) is over the product's 0.1 %: a run the gate fails.
FAILING = DemoSpec(endpoints=4, step_s=10, scenario_name="failing", start=SMALL.start + 10800)
UNJUDGED = DemoSpec(endpoints=4, step_s=10, steps=(10, 20, 40), scenario_name="unjudged",
                    start=SMALL.start + 14400)


@pytest.fixture(scope="session")
def runs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two complete runs: `demo` and a slower `demo-b` an hour later."""
    root = tmp_path_factory.mktemp("runs")
    write_demo_run(root, SMALL)
    write_demo_run(root, DemoSpec(endpoints=4, step_s=10, seed=3, sigma=0.004,
                                  scenario_name="demo-b", start=SMALL.start + 3600))
    return root


@pytest.fixture(scope="session")
def judged_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A run the gate passes, one it fails (both with the verdict recorded in summary.json, as
    `pitchey run` leaves them) and one with no verdict (an older run)."""
    root = tmp_path_factory.mktemp("judged")
    runs = {spec.scenario_name: write_demo_run(root, spec)
            for spec in (PASSING, FAILING, UNJUDGED)}
    judge(runs["passing"])
    judge(runs["failing"])
    return runs


@pytest.fixture(scope="session")
def demo_run(runs_dir: Path) -> Path:
    return next(p for p in runs_dir.iterdir() if p.name.endswith("-demo"))


@pytest.fixture(scope="session")
def sparse_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Runs that lack pieces: one concurrency level and no service scrape; a broken one."""
    root = tmp_path_factory.mktemp("sparse")
    from testing.demo import DemoRun

    run = DemoRun(root, DemoSpec(steps=(30,), step_s=20, endpoints=3, scenario_name="flat"))
    run.write_seconds(20)
    path = run.finish()
    for file in (path / "timeseries").glob("service.parquet"):
        _empty_service(file)
    broken = root / "20250101T000000Z-broken"
    broken.mkdir()
    (broken / "manifest.json").write_text('{"format": "pitchey-run", "format_version": 1, ')
    return root


def _empty_service(file: Path) -> None:
    import pyarrow.parquet as pq

    table = pq.read_table(file)
    pq.write_table(table.slice(0, 0), file)


def manifest(path: Path) -> dict[str, Any]:
    return dict(json.loads((path / "manifest.json").read_text()))
