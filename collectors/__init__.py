"""Collectors: the run directory (writer and reader), histograms, scrapers, summaries, report.

Names are imported lazily (PEP 562), so `import collectors.cli` or `collectors.tracecontext`
stays standard-library-only and cheap; `from collectors import load_run` pulls in pandas and
pyarrow on first use.

Writing: `RunWriter.create(out_root, scenario_name, scenario, target, topology)`.
Reading: `load_run(path) -> Run`; `Run.percentiles(...)` from merged HDR histograms.
Following a run being written: `LiveRunReader(path).refresh() -> RunDelta` (appended data only).
Format: docs/run-directory.md.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collectors.errors import RunDirError
    from collectors.hdr import Histogram
    from collectors.live import LiveRunReader, RunDelta
    from collectors.prometheus import PrometheusSource
    from collectors.run import Run, load_run
    from collectors.rundir import RunWriter, ServiceSample, StatsRow
    from collectors.scrape import Scraper, ScrapeTarget
    from collectors.series import Series, SeriesStore
    from collectors.summary import summarize
    from collectors.validity import Validity

__all__ = [
    "Histogram",
    "LiveRunReader",
    "PrometheusSource",
    "Run",
    "RunDelta",
    "RunDirError",
    "RunWriter",
    "ScrapeTarget",
    "Scraper",
    "Series",
    "SeriesStore",
    "ServiceSample",
    "StatsRow",
    "Validity",
    "load_run",
    "summarize",
]

_HOME = {
    "Histogram": "collectors.hdr",
    "LiveRunReader": "collectors.live",
    "PrometheusSource": "collectors.prometheus",
    "Run": "collectors.run",
    "RunDelta": "collectors.live",
    "RunDirError": "collectors.errors",
    "RunWriter": "collectors.rundir",
    "ScrapeTarget": "collectors.scrape",
    "Scraper": "collectors.scrape",
    "Series": "collectors.series",
    "SeriesStore": "collectors.series",
    "ServiceSample": "collectors.rundir",
    "StatsRow": "collectors.rundir",
    "Validity": "collectors.validity",
    "load_run": "collectors.run",
    "summarize": "collectors.summary",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'collectors' has no attribute {name!r}")
    value = getattr(import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
