"""The run-directory format, version 1: file names, Parquet schemas, histogram layout.

Documented for people in docs/run-directory.md; any change here that a version-1 reader cannot
read must bump FORMAT_VERSION.
"""

from __future__ import annotations

import pyarrow as pa

__all__ = [
    "EVENTS",
    "EVENT_TYPES",
    "FORMAT",
    "FORMAT_VERSION",
    "HDR_HIGHEST_US",
    "HDR_LOWEST_US",
    "HDR_SIGNIFICANT_FIGURES",
    "HIST_INTERVALS",
    "HIST_KINDS",
    "HIST_WHOLE",
    "MANIFEST",
    "PARTS_SUFFIX",
    "SCHEMAS",
    "SPANS",
    "SUMMARY",
    "TABLES",
    "table_path",
]

FORMAT = "pitchey-run"
FORMAT_VERSION = 1

MANIFEST = "manifest.json"
SUMMARY = "summary.json"
EVENTS = "events.jsonl"
SPANS = "spans.jsonl"
HIST_WHOLE = "histograms/whole.jsonl"
HIST_INTERVALS = "histograms/intervals.jsonl"
PARTS_SUFFIX = ".parts"  # timeseries/stats.parts/part-000001.parquet while a run is being written

# HdrHistogram(1, 3_600_000_000, 3): microseconds from 1 µs to one hour, 3 significant digits.
HDR_LOWEST_US = 1
HDR_HIGHEST_US = 3_600_000_000
HDR_SIGNIFICANT_FIGURES = 3

HIST_KINDS = ("service", "corrected")
EVENT_TYPES = (
    "stage", "failover", "alert_firing", "alert_resolved", "abort", "invalid", "scrape_gap",
)

_STR = pa.dictionary(pa.int32(), pa.string())

SCHEMAS: dict[str, pa.Schema] = {
    "stats": pa.schema([
        ("t", pa.float64()), ("region", _STR), ("endpoint", _STR), ("user_class", _STR),
        ("requests", pa.int64()), ("failures", pa.int64()), ("p50_ms", pa.float64()),
        ("p95_ms", pa.float64()), ("p99_ms", pa.float64()), ("max_ms", pa.float64()),
    ]),
    "load": pa.schema([
        ("t", pa.float64()), ("users", pa.int64()), ("rps", pa.float64()),
        ("failures_per_s", pa.float64()),
    ]),
    "generator": pa.schema([
        ("t", pa.float64()), ("worker", _STR), ("region", _STR), ("cpu_percent", pa.float64()),
        ("lag_ms", pa.float64()),
    ]),
    "service": pa.schema([
        ("t", pa.float64()), ("target", _STR), ("metric", _STR), ("labels", _STR),
        ("value", pa.float64()),
    ]),
}
TABLES = tuple(SCHEMAS)


def table_path(table: str) -> str:
    """Relative path of a time-series table, e.g. "timeseries/stats.parquet"."""
    return f"timeseries/{table}.parquet"
