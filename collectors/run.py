"""Reading a run directory: `load_run(path) -> Run`.

`load_run` checks what is cheap to check at once (the manifest, summary.json, every Parquet
file's footer and columns, the whole-run histogram lines) and raises `RunDirError` naming the
file and the reason. Tables, interval histograms, events and spans are read on first use,
with the same kind of error. A run still being written (or one whose writer died) is readable:
its tables come from the flushed part files and `Run.complete` is False.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from collectors._format import (
    EVENTS,
    FORMAT,
    FORMAT_VERSION,
    HIST_INTERVALS,
    HIST_WHOLE,
    MANIFEST,
    PARTS_SUFFIX,
    SCHEMAS,
    SPANS,
    SUMMARY,
    TABLES,
    table_path,
)
from collectors.errors import RunDirError
from collectors.hdr import Histogram
from collectors.histstore import HistogramKey, HistogramStore, Scope
from collectors.validity import Validity

__all__ = ["DEFAULT_QUANTILES", "Run", "load_run", "quantile_label"]

DEFAULT_QUANTILES = (0.5, 0.9, 0.95, 0.99, 0.999)
_STATUSES = ("running", "complete", "aborted")
_PRELOADABLE = (*TABLES, "events")


def quantile_label(q: float) -> str:
    """0.95 -> "p95", 0.999 -> "p99.9", 0.5 -> "p50"."""
    return "p" + f"{q * 100:.6f}".rstrip("0").rstrip(".")


def load_run(path: Path | str) -> Run:
    """Open a run directory (complete, running or aborted); raises RunDirError."""
    root = Path(path)
    if not root.exists():
        raise RunDirError(root, "does not exist")
    if not root.is_dir():
        raise RunDirError(root, "is not a directory (expected a run directory)")
    manifest = _read_manifest(root / MANIFEST)
    status = manifest["status"]
    files = {table: _table_files(root, table, complete=status == "complete") for table in TABLES}
    summary = _read_summary(root / SUMMARY, required=status == "complete")
    histograms = HistogramStore.open(
        root / HIST_WHOLE, root / HIST_INTERVALS, incomplete=status != "complete"
    )
    return Run(root, manifest, summary, files, histograms)


class Run:
    """One run directory, typed. DataFrames and histograms are loaded on first use."""

    def __init__(
        self, path: Path, manifest: dict[str, Any], summary: dict[str, Any] | None,
        table_files: dict[str, list[Path]], histograms: HistogramStore,
        *, preloaded: Mapping[str, Any] | None = None,
    ) -> None:
        self.path = path
        self.manifest = manifest
        self.summary = summary
        self._table_files = table_files
        self._histograms = histograms
        # Tables and events already read elsewhere (collectors.live), used instead of the files.
        for name, value in (preloaded or {}).items():
            if name not in _PRELOADABLE:
                raise ValueError(f"cannot preload {name!r}; one of {_PRELOADABLE}")
            self.__dict__[name] = value

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, status={self.status!r})"

    # manifest --------------------------------------------------------------------------------
    @property
    def run_id(self) -> str:
        return str(self.manifest["run_id"])

    @property
    def scenario_name(self) -> str:
        return str(self.manifest.get("scenario_name", ""))

    @property
    def scenario(self) -> dict[str, Any]:
        return dict(self.manifest.get("scenario") or {})

    @property
    def target(self) -> str:
        return str(self.manifest.get("target", ""))

    @property
    def topology(self) -> dict[str, Any]:
        return dict(self.manifest.get("topology") or {})

    @property
    def status(self) -> str:
        """"running" (being written, or its writer died), "complete" or "aborted"."""
        return str(self.manifest["status"])

    @property
    def complete(self) -> bool:
        return self.status == "complete"

    @property
    def started_at(self) -> datetime:
        return _parse_time(self.manifest["started_at"])

    @property
    def ended_at(self) -> datetime | None:
        ended = self.manifest.get("ended_at")
        return _parse_time(ended) if ended else None

    @property
    def validity(self) -> Validity:
        """The manifest's validity; a run that is not complete is never valid."""
        recorded = Validity.from_json(self.manifest["validity"])
        if self.complete:
            return recorded
        if self.status == "aborted":
            return Validity(False, recorded.reasons or ("run aborted",))
        return Validity.invalid("run incomplete: still being written, or its writer stopped")

    # tables ----------------------------------------------------------------------------------
    @cached_property
    def stats(self) -> pd.DataFrame:
        """t, region, endpoint, user_class, requests, failures, p50_ms, p95_ms, p99_ms, max_ms."""
        return self._table("stats")

    @cached_property
    def load(self) -> pd.DataFrame:
        """t, users, rps, failures_per_s."""
        return self._table("load")

    @cached_property
    def generator(self) -> pd.DataFrame:
        """t, worker, region, cpu_percent, lag_ms."""
        return self._table("generator")

    @cached_property
    def service(self) -> pd.DataFrame:
        """t, target, metric, labels (canonical JSON text), value."""
        return self._table("service")

    def _table(self, table: str) -> pd.DataFrame:
        schema = SCHEMAS[table]
        plain = pa.schema([
            pa.field(f.name, pa.string()) if pa.types.is_dictionary(f.type) else f for f in schema
        ])
        parts: list[pa.Table] = []
        for file in self._table_files[table]:
            try:
                parts.append(pq.read_table(file, columns=plain.names).cast(plain))
            except (OSError, pa.ArrowException) as exc:
                raise RunDirError(file, f"unreadable Parquet ({_first_line(exc)})") from None
        data = pa.concat_tables(parts) if parts else plain.empty_table()
        return data.to_pandas()

    # events and spans ------------------------------------------------------------------------
    @cached_property
    def events(self) -> list[dict[str, Any]]:
        """events.jsonl as dicts, each with at least `t` (epoch seconds) and `type`."""
        events: list[dict[str, Any]] = []
        for number, item in _json_lines(self.path / EVENTS, tolerate_torn_tail=not self.complete):
            if not isinstance(item.get("t"), int | float) or not isinstance(item.get("type"), str):
                raise RunDirError(self.path / EVENTS, "an event needs a numeric t and a string "
                                  "type", line=number)
            events.append(item)
        return events

    def events_of(self, *types: str) -> list[dict[str, Any]]:
        return [event for event in self.events if event["type"] in types]

    def spans(self) -> Iterator[dict[str, Any]]:
        """spans.jsonl, one OpenTelemetry span (its `to_json()` form) per item, streamed."""
        for _number, item in _json_lines(self.path / SPANS, tolerate_torn_tail=True):
            yield item

    def trace(self, trace_id: str) -> list[dict[str, Any]]:
        """Every span of one trace (trace id as 32 hex digits, with or without 0x)."""
        wanted = trace_id.lower().removeprefix("0x")
        return [s for s in self.spans()
                if str(s.get("context", {}).get("trace_id", "")).removeprefix("0x") == wanted]

    # histograms and percentiles --------------------------------------------------------------
    def histogram_keys(self) -> list[HistogramKey]:
        """(region, endpoint, user_class, kind) of every recorded histogram."""
        return self._histograms.keys()

    def scopes(self, field: str, kind: str = "service") -> list[str]:
        """Distinct values of "region", "endpoint" or "user_class" among the histograms."""
        position = ("region", "endpoint", "user_class", "kind").index(field)
        return sorted({key[position] for key in self.histogram_keys() if key[3] == kind})

    def histogram(
        self, region: Scope = None, endpoint: Scope = None, user_class: Scope = None,
        kind: str = "service", start: float | None = None, end: float | None = None,
    ) -> Histogram:
        """Merged histogram of a scope; None matches everything, a collection any of its values.

        Without start/end the whole-run histograms are used; with them, the interval histograms
        whose midpoint lies in [start, end) (epoch seconds).
        """
        if start is None and end is None:
            return self._histograms.whole(region, endpoint, user_class, kind)
        if not self._histograms.has_intervals() and self._histograms.whole_lines:
            raise RunDirError(self.path / HIST_INTERVALS,
                              "no interval histograms, so no percentiles over a time window")
        return self._histograms.window(region, endpoint, user_class, kind, start, end)

    def histograms_by_key(
        self, kind: str = "service", start: float | None = None, end: float | None = None
    ) -> dict[HistogramKey, Histogram]:
        """{(region, endpoint, user_class, kind): histogram} of every key, whole run or window."""
        if start is None and end is None and self._histograms.whole_lines:
            return {key: self._histograms.whole(*key) for key in self.histogram_keys()
                    if key[3] == kind}
        return self._histograms.window_by_key(kind, start, end)

    def percentiles(
        self, quantiles: Sequence[float] = DEFAULT_QUANTILES, region: Scope = None,
        endpoint: Scope = None, user_class: Scope = None, kind: str = "service",
        start: float | None = None, end: float | None = None,
    ) -> dict[float, float]:
        """{quantile: milliseconds} from the merged HDR histogram of the scope and window."""
        hist = self.histogram(region, endpoint, user_class, kind, start, end)
        return hist.quantiles(quantiles)

    def percentile_series(
        self, quantiles: Sequence[float] = (0.5, 0.95, 0.99), by: Sequence[str] = ("region",),
        region: Scope = None, endpoint: Scope = None, user_class: Scope = None,
        kind: str = "service", start: float | None = None, end: float | None = None,
    ) -> pd.DataFrame:
        """Percentiles over time from merged interval histograms, one row per interval and
        group: t, interval_s, <by...>, requests, p50_ms, p95_ms, ... (never averaged)."""
        labels = [f"{quantile_label(q)}_ms" for q in quantiles]
        rows: list[dict[str, Any]] = []
        for t, interval_s, group, hist in self._histograms.grouped_windows(
            tuple(by), region, endpoint, user_class, kind, start, end
        ):
            row: dict[str, Any] = {"t": t, "interval_s": interval_s, **dict(zip(by, group,
                                                                                strict=True))}
            row["requests"] = hist.total
            row.update(zip(labels, (hist.quantile(q) for q in quantiles), strict=True))
            rows.append(row)
        columns = ["t", "interval_s", *by, "requests", *labels]
        return pd.DataFrame(rows, columns=columns)


# reading helpers -----------------------------------------------------------------------------
def _read_manifest(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise RunDirError(path, "missing: this is not a run directory (no manifest.json)")
    manifest = _read_json_object(path)
    if manifest.get("format") != FORMAT:
        raise RunDirError(path, f"foreign file: format is {manifest.get('format')!r}, "
                          f"expected {FORMAT!r}")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise RunDirError(path, f"format_version {version!r} is not supported (this reader "
                          f"reads {FORMAT_VERSION})")
    for key, kind in (("run_id", str), ("status", str), ("started_at", str),
                      ("validity", dict)):
        if not isinstance(manifest.get(key), kind):
            raise RunDirError(path, f"{key} is missing or not a {kind.__name__}")
    if manifest["status"] not in _STATUSES:
        raise RunDirError(path, f"status {manifest['status']!r} is not one of {_STATUSES}")
    try:
        _parse_time(manifest["started_at"])
        Validity.from_json(manifest["validity"])
    except ValueError as exc:
        raise RunDirError(path, str(exc)) from None
    return manifest


def _read_summary(path: Path, *, required: bool) -> dict[str, Any] | None:
    if not path.exists():
        if required:
            raise RunDirError(path, "missing (the manifest says the run is complete)")
        return None
    return _read_json_object(path)


def _read_json_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RunDirError(path, f"not valid JSON (line {exc.lineno}, column {exc.colno}: "
                          f"{exc.msg})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RunDirError(path, f"unreadable ({exc})") from None
    if not isinstance(data, dict):
        raise RunDirError(path, "not a JSON object")
    return data


def _table_files(root: Path, table: str, *, complete: bool) -> list[Path]:
    final = root / table_path(table)
    if final.exists():
        files = [final]
    elif complete:
        raise RunDirError(final, "missing (the manifest says the run is complete)")
    else:
        parts_dir = root / (table_path(table).removesuffix(".parquet") + PARTS_SUFFIX)
        files = sorted(parts_dir.glob("part-*.parquet")) if parts_dir.is_dir() else []
    for file in files:
        _check_parquet(file, table)
    return files


def _check_parquet(file: Path, table: str) -> None:
    try:
        schema = pq.read_schema(file)
    except (OSError, pa.ArrowException) as exc:
        raise RunDirError(file, f"not a readable Parquet file ({_first_line(exc)})") from None
    missing = [name for name in SCHEMAS[table].names if name not in schema.names]
    if missing:
        raise RunDirError(file, f"lacks column(s) {', '.join(missing)}")


def _json_lines(path: Path, *, tolerate_torn_tail: bool) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        handle = path.open(encoding="utf-8")
    except FileNotFoundError:
        return
    with handle:
        previous: tuple[int, str] | None = None
        for number, raw in enumerate(handle, start=1):
            if previous is not None:
                yield previous[0], _json_line(path, *previous)
            previous = (number, raw) if raw.strip() else None
        if previous is not None:
            number, raw = previous
            if not raw.endswith("\n") and tolerate_torn_tail:
                try:
                    yield number, _json_line(path, number, raw)
                except RunDirError:
                    return  # a partial last line of a file still being written
            else:
                yield number, _json_line(path, number, raw)


def _json_line(path: Path, number: int, raw: str) -> dict[str, Any]:
    try:
        item = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise RunDirError(path, f"not valid JSON ({exc.msg})", line=number) from None
    if not isinstance(item, dict):
        raise RunDirError(path, "not a JSON object", line=number)
    return item


def _parse_time(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        raise ValueError(f"{text!r} is not an ISO 8601 time") from None


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
