"""Writing a run directory (format: docs/run-directory.md) while a run is going on.

`RunWriter` is synchronous and uses no asyncio, so it works inside a gevent-patched Locust
master as well as anywhere else; it is safe to call from several threads or greenlets. Rows are
buffered and flushed every `flush_interval_s` (checked on each add, against an injectable
clock): Parquet rows go to small part files (`timeseries/<table>.parts/part-NNNNNN.parquet`),
histograms and events are appended to their JSON-lines files. The manifest is written at once
with `"status": "running"`, so a process that dies mid-run leaves a directory `load_run` can
read (marked incomplete) with everything up to the last flush. `finish()` merges the parts into
one Parquet file per table, writes the whole-run histograms and summary.json, and only then
marks the manifest complete.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TypedDict

import numpy as np
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
    SUMMARY,
    table_path,
)
from collectors.hdr import Histogram, HistogramDecodeError
from collectors.hdrbatch import BatchDecodeError, check_encoded, decode_batch
from collectors.histindex import IntervalIndex, write_index
from collectors.machine import git_commit, machine_info, package_versions
from collectors.validity import Validity

__all__ = [
    "HistogramKey", "RunWriter", "ServiceSample", "StatsRow", "labels_json", "stats_row",
]

HistogramKey = tuple[str, str, str, str]  # (region, endpoint, user_class, kind)


class StatsRow(TypedDict):
    """One second of one region × endpoint × user class, as `add_stats` takes it."""

    t: float
    region: str
    endpoint: str
    user_class: str
    requests: int
    failures: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float


class ServiceSample(TypedDict):
    """One scraped value, as `add_service_samples` takes it; labels as a mapping or JSON text."""

    t: float
    target: str
    metric: str
    labels: Mapping[str, str] | str
    value: float


_COLUMNS = {name: tuple(schema.names) for name, schema in SCHEMAS.items()}
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


_LABELS_CACHE: dict[tuple[tuple[str, str], ...], str] = {}


def labels_json(labels: Mapping[str, str] | str) -> str:
    """Canonical JSON text of a label set (sorted keys, no spaces), as service.parquet holds it."""
    if isinstance(labels, str):
        return labels
    key = tuple(labels.items())
    text = _LABELS_CACHE.get(key)  # scrapes repeat the same label sets every second
    if text is None:
        text = json.dumps(dict(labels), sort_keys=True, separators=(",", ":"))
        if len(_LABELS_CACHE) >= 50_000:
            _LABELS_CACHE.clear()
        _LABELS_CACHE[key] = text
    return text


def stats_row(
    t: float, region: str, endpoint: str, user_class: str, hist: Histogram | str | bytes | Any,
    failures: int,
) -> StatsRow:
    """The stats row of one second from that second's latency histogram (all requests of the
    scope, failed ones included) and its failure count."""
    merged = Histogram.coerce(hist)
    return {
        "t": float(t), "region": region, "endpoint": endpoint, "user_class": user_class,
        "requests": merged.total, "failures": int(failures),
        "p50_ms": merged.quantile(0.5), "p95_ms": merged.quantile(0.95),
        "p99_ms": merged.quantile(0.99), "max_ms": merged.max_ms,
    }


def _utc_iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


class RunWriter:
    """Builds one run directory. Create it with `RunWriter.create(...)`."""

    def __init__(
        self,
        path: Path,
        manifest: dict[str, Any],
        *,
        clock: Callable[[], float] = time.monotonic,
        flush_interval_s: float = 5.0,
        histogram_interval_s: float | None = None,
    ) -> None:
        self.path = path
        self._manifest = manifest
        self._clock = clock
        self._flush_interval_s = flush_interval_s
        self._last_flush = clock()
        self._lock = threading.RLock()
        self._rows: dict[str, dict[str, list[Any]]] = {
            table: {column: [] for column in columns} for table, columns in _COLUMNS.items()
        }
        self._part_numbers = dict.fromkeys(_COLUMNS, 0)
        self._interval_lines: list[str] = []
        self._histogram_interval_s = histogram_interval_s
        self._coarse: dict[HistogramKey, dict[float, Histogram]] = {}
        self._event_lines: list[str] = []
        self._whole: dict[HistogramKey, str] = {}
        self._finished = False

    # creation --------------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        out_root: Path | str,
        scenario_name: str,
        scenario: Mapping[str, Any],
        target: str,
        topology: Mapping[str, Any] | None = None,
        *,
        started_at: datetime | None = None,
        clock: Callable[[], float] = time.monotonic,
        flush_interval_s: float = 5.0,
        histogram_interval_s: float | None = None,
    ) -> RunWriter:
        """Make `out_root/<YYYYmmddTHHMMSSZ>-<scenario_name>/` and write its first manifest.

        `scenario` is the scenario as run (after CLI overrides), `target` "embedded" or the base
        URL loaded, `topology` e.g. {"edge": url, "regions": {name: url}}; all must be JSON-able.
        `histogram_interval_s` (e.g. 10 for hour-long runs): merge incoming interval histograms
        into aligned windows of that width before writing them, which keeps intervals.jsonl
        and time-window queries small; None writes them as given.
        """
        started = started_at or datetime.now(UTC)
        safe_name = _SAFE_NAME.sub("-", scenario_name).strip("-") or "run"
        root = Path(out_root)
        root.mkdir(parents=True, exist_ok=True)
        run_id = f"{started.astimezone(UTC):%Y%m%dT%H%M%SZ}-{safe_name}"
        path = root / run_id
        suffix = 1
        while True:
            try:
                path.mkdir()
                break
            except FileExistsError:
                suffix += 1
                path = root / f"{run_id}-{suffix}"
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "run_id": path.name,
            "status": "running",
            "scenario_name": scenario_name,
            "scenario": dict(scenario),
            "target": target,
            "topology": dict(topology) if topology is not None else {},
            "started_at": _utc_iso(started),
            "ended_at": None,
            "updated_at": _utc_iso(datetime.now(UTC)),
            "writer_pid": os.getpid(),
            "git_commit": git_commit(),
            "packages": package_versions(),
            "machine": machine_info(),
            "validity": {"valid": False, "reasons": ["run not finished"]},
        }
        (path / "timeseries").mkdir()
        (path / "histograms").mkdir()
        for name in (EVENTS, HIST_INTERVALS):
            (path / name).touch()
        _write_json_atomic(path / MANIFEST, manifest)
        if histogram_interval_s is not None and not histogram_interval_s > 0:
            raise ValueError("histogram_interval_s must be positive")
        return cls(path, manifest, clock=clock, flush_interval_s=flush_interval_s,
                   histogram_interval_s=histogram_interval_s)

    @property
    def run_id(self) -> str:
        return str(self._manifest["run_id"])

    # rows ------------------------------------------------------------------------------------
    def add_stats(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Per-second request statistics; each row has the keys of `StatsRow`."""
        self._add_rows("stats", rows)

    def add_load(self, t: float, users: int, rps: float, failures_per_s: float) -> None:
        """One second of the whole load: users running, requests/s and failures/s."""
        self._add_rows("load", [
            {"t": t, "users": users, "rps": rps, "failures_per_s": failures_per_s}
        ])

    def add_generator(
        self, t: float, worker: str, region: str, cpu_percent: float, lag_ms: float
    ) -> None:
        """One load-generator health sample (CPU of the worker process, scheduling lag)."""
        self._add_rows("generator", [
            {"t": t, "worker": worker, "region": region, "cpu_percent": cpu_percent,
             "lag_ms": lag_ms}
        ])

    def add_service_samples(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Scraped service values; each row has the keys of `ServiceSample`."""
        self._add_rows("service", (
            {**row, "labels": labels_json(row["labels"])} if "labels" in row else row
            for row in rows
        ))

    # histograms ------------------------------------------------------------------------------
    def add_histogram_interval(
        self, t: float, interval_s: float, region: str, endpoint: str, user_class: str,
        kind: str, hist: Histogram | str | bytes | Any,
    ) -> None:
        """Latencies recorded in [t, t + interval_s) for one scope; `hist` is a Histogram, an
        `hdrh` HdrHistogram(1, 3_600_000_000, 3) in µs, or its `encode()` text.
        `kind` is "service" (measured from the actual send) or "corrected" (from the intended
        start, open model)."""
        key = (region, endpoint, user_class, kind)
        if self._histogram_interval_s is None:
            line = _interval_line(_finite("t", t), _finite("interval_s", interval_s), key,
                                  _encoded(hist))
            with self._lock:
                self._interval_lines.append(line)
                self._maybe_flush()
            return
        width = self._histogram_interval_s
        start = math.floor(_finite("t", t) / width) * width
        decoded = Histogram.coerce(hist)
        with self._lock:
            pending = self._coarse.setdefault(key, {})
            pending[start] = pending[start] + decoded if start in pending else decoded
            for older in sorted(s for s in pending if s < start):  # that window is over
                self._interval_lines.append(
                    _interval_line(older, width, key, pending.pop(older).encode()))
            self._maybe_flush()

    def set_whole_histogram(
        self, region: str, endpoint: str, user_class: str, kind: str,
        hist: Histogram | str | bytes | Any,
    ) -> None:
        """The whole-run histogram of one scope (replaces an earlier one). Scopes never set are
        merged from their interval histograms by `finish()`."""
        with self._lock:
            self._whole[(region, endpoint, user_class, kind)] = _encoded(hist)

    # events ----------------------------------------------------------------------------------
    def add_event(self, t: float, type: str, **fields: Any) -> None:  # noqa: A002 - format name
        """Something that happened at epoch time `t`: stage, failover, alert_firing,
        alert_resolved, abort, invalid, scrape_gap (others are allowed). Written at once."""
        try:
            line = json.dumps({"t": _finite("t", t), "type": type, **fields}, default=str)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"event {type!r} is not JSON-serialisable: {exc}") from None
        with self._lock:
            self._event_lines.append(line)
            self._flush_events()

    # flushing and finishing ------------------------------------------------------------------
    def flush(self) -> None:
        """Write everything buffered now (part files, JSON lines, manifest `updated_at`)."""
        with self._lock:
            self._flush_locked()

    def finish(
        self, validity: Validity, *, summary_extra: Mapping[str, Any] | None = None
    ) -> Path:
        """Complete the directory: one Parquet file per table, whole-run histograms,
        summary.json (from `collectors.summarize`, with `summary_extra` merged in, e.g.
        {"open_model": {"late_starts": 12}}), then the manifest with validity and end time.
        Stop the service first so that spans.jsonl is complete. Returns the directory."""
        from collectors.run import load_run
        from collectors.summary import summarize

        with self._lock:
            if self._finished:
                return self.path
            self._drain_coarse()
            self._flush_locked()
            self._consolidate()
            self._write_whole_histograms()
            self._manifest["ended_at"] = _utc_iso(datetime.now(UTC))
            self._manifest["validity"] = validity.to_json()
            summary = summarize(load_run(self.path), extra=summary_extra, validity=validity)
            _write_json_atomic(self.path / SUMMARY, summary)
            self._manifest["status"] = "complete"
            self._write_manifest()
            self._finished = True
        return self.path

    def abort(self, reason: str) -> Path:
        """Stop writing after a failure: flush and merge what there is, mark it aborted."""
        with self._lock:
            if self._finished:
                return self.path
            self._drain_coarse()
            self._flush_locked()
            self._consolidate()
            self._write_whole_histograms()
            self._manifest["status"] = "aborted"
            self._manifest["ended_at"] = _utc_iso(datetime.now(UTC))
            self._manifest["validity"] = Validity.invalid(f"aborted: {reason}").to_json()
            self._write_manifest()
            self._finished = True
        return self.path

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None and not self._finished:
            self.abort(f"{type(exc).__name__}: {exc}")

    # internals -------------------------------------------------------------------------------
    def _add_rows(self, table: str, rows: Iterable[Mapping[str, Any]]) -> None:
        columns = self._rows[table]
        with self._lock:
            if self._finished:
                raise RuntimeError(f"run {self.run_id} is finished; no more rows")
            for row in rows:
                try:
                    values = [row[name] for name in columns]
                except KeyError as exc:
                    raise ValueError(f"{table} row lacks {exc.args[0]!r}: {dict(row)}") from None
                for name, value in zip(columns, values, strict=True):
                    columns[name].append(value)
            self._maybe_flush()

    def _drain_coarse(self) -> None:
        width = self._histogram_interval_s or 0.0
        for key, pending in self._coarse.items():
            for start in sorted(pending):
                self._interval_lines.append(_interval_line(start, width, key,
                                                           pending[start].encode()))
        self._coarse.clear()

    def _maybe_flush(self) -> None:
        if self._clock() - self._last_flush >= self._flush_interval_s:
            self._flush_locked()

    def _flush_locked(self) -> None:
        self._last_flush = self._clock()
        for table, columns in self._rows.items():
            if columns["t"]:
                self._write_part(table, columns)
                for values in columns.values():
                    values.clear()
        if self._interval_lines:
            with (self.path / HIST_INTERVALS).open("a", encoding="utf-8") as handle:
                handle.write("\n".join(self._interval_lines) + "\n")
            self._interval_lines.clear()
        self._flush_events()
        self._write_manifest()

    def _flush_events(self) -> None:
        if self._event_lines:
            with (self.path / EVENTS).open("a", encoding="utf-8") as handle:
                handle.write("\n".join(self._event_lines) + "\n")
            self._event_lines.clear()

    def _write_part(self, table: str, columns: Mapping[str, list[Any]]) -> None:
        try:
            data = pa.Table.from_pydict(dict(columns), schema=SCHEMAS[table])
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise ValueError(f"bad {table} row: {exc}") from None
        parts = self._parts_dir(table)
        parts.mkdir(exist_ok=True)
        self._part_numbers[table] += 1
        final = parts / f"part-{self._part_numbers[table]:06d}.parquet"
        tmp = parts / f".{final.name}.tmp"
        pq.write_table(data, tmp, compression="zstd")
        os.replace(tmp, final)  # a reader never sees a half-written part

    def _parts_dir(self, table: str) -> Path:
        return self.path / (table_path(table).removesuffix(".parquet") + PARTS_SUFFIX)

    def _consolidate(self) -> None:
        for table, schema in SCHEMAS.items():
            parts_dir = self._parts_dir(table)
            parts = sorted(parts_dir.glob("part-*.parquet")) if parts_dir.exists() else []
            data = (pa.concat_tables([pq.read_table(p, schema=schema) for p in parts])
                    if parts else schema.empty_table())
            data = data.sort_by("t") if data.num_rows else data
            final = self.path / table_path(table)
            tmp = final.with_name(f".{final.name}.tmp")
            pq.write_table(data, tmp, compression="zstd", row_group_size=1 << 20)
            os.replace(tmp, final)
            if parts_dir.exists():
                shutil.rmtree(parts_dir)

    def _write_whole_histograms(self) -> None:
        """Whole-run histograms (merged from intervals where not set) and the decoded copy of
        intervals.jsonl (collectors.histindex)."""
        intervals_path = self.path / HIST_INTERVALS
        times: list[float] = []
        widths: list[float] = []
        keys: list[HistogramKey] = []
        texts: list[str] = []
        with intervals_path.open(encoding="utf-8") as handle:
            for text in handle:
                if text.strip():
                    item = json.loads(text)
                    times.append(float(item["t"]))
                    widths.append(float(item["interval_s"]))
                    keys.append((item["region"], item["endpoint"], item["user_class"],
                                 item["kind"]))
                    texts.append(item["hist"])
        distinct = sorted(set(keys))
        number = {key: n for n, key in enumerate(distinct)}
        key_id = np.fromiter((number[key] for key in keys), np.int64, len(keys))
        batch = decode_batch(texts)
        whole = dict(self._whole)
        for key, hist in zip(distinct, batch.merged_by_group(key_id, len(distinct)), strict=True):
            whole.setdefault(key, hist.encode())
        lines = [
            json.dumps({"region": r, "endpoint": e, "user_class": u, "kind": k, "hist": h},
                       separators=(",", ":"))
            for (r, e, u, k), h in sorted(whole.items())
        ]
        target = self.path / HIST_WHOLE
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        os.replace(tmp, target)
        index = IntervalIndex(np.asarray(times, dtype=np.float64),
                              np.asarray(widths, dtype=np.float64), key_id, distinct)
        write_index(intervals_path, index, batch)

    def _write_manifest(self) -> None:
        self._manifest["updated_at"] = _utc_iso(datetime.now(UTC))
        _write_json_atomic(self.path / MANIFEST, self._manifest)


def _interval_line(t: float, interval_s: float, key: HistogramKey, encoded: str) -> str:
    region, endpoint, user_class, kind = key
    return json.dumps({
        "t": t, "interval_s": interval_s, "region": region, "endpoint": endpoint,
        "user_class": user_class, "kind": kind, "hist": encoded,
    }, separators=(",", ":"))


def _encoded(hist: Histogram | str | bytes | Any) -> str:
    """Validate and return the histogram's encoded text."""
    if isinstance(hist, str | bytes):
        try:  # headers, compression and layout; cheaper than a full decode
            check_encoded(hist)
        except BatchDecodeError as exc:
            raise HistogramDecodeError(exc.reason) from None
        return hist if isinstance(hist, str) else hist.decode("ascii")
    return Histogram.coerce(hist).encode()


def _finite(name: str, value: float) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return number
