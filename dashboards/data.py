"""What the panels show, prepared once per run from `collectors.load_run`.

A `RunView` holds the run's series reduced to what the figures need: time bins of merged HDR
histograms (overall and per region; percentiles read off merged histograms, never averaged),
the per-endpoint table for every region x user-class filter, the concurrency steps for the
capacity model and the measured usage for the cost model. Building it decodes every interval
histogram once, which is the slow part on a long run, so complete runs are cached on disk
(`RunCache`); callbacks then only slice prepared data.

A run that lacks a piece gets a `notes[panel]` explanation instead of the data.
"""

from __future__ import annotations

import hashlib
import math
import pickle
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from collectors.errors import RunDirError
from collectors.hdr import Histogram
from collectors.models.usage import ServiceTotals, service_totals
from collectors.run import Run
from collectors.targets import PRODUCT_TARGETS
from gate.projections import scenario_think_time, steps_with_latency

__all__ = [
    "ALL",
    "HEAT_EDGES_MS",
    "NEAR_SLO_MS",
    "SLO_MS",
    "Bins",
    "EndpointRow",
    "RunView",
    "build_view",
    "choose_bin_s",
    "apply_extension",
    "compute_extension",
    "extend_view",
    "think_time_s",
]

ALL = "(all)"
SLO_MS = PRODUCT_TARGETS.p95_ms  # the product's latency target, drawn on the latency figures
NEAR_SLO_MS = 0.8 * SLO_MS  # "near the target": within it, but in its last 20%
# Log-spaced latency buckets for the heatmap, 1 ms .. 10 s (1-2-5 per decade), fixed so that
# live updates can append columns.
HEAT_EDGES_MS = tuple(float(m * 10**e) for e in range(4) for m in (1, 2, 5)) + (10_000.0,)
_BIN_CHOICES = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800)
MAX_BINS = 240
CACHE_VERSION = 2


def choose_bin_s(duration_s: float, max_bins: int = MAX_BINS) -> float:
    """The smallest of 1, 2, 5, 10 ... seconds that keeps a run within `max_bins` bins."""
    for size in _BIN_CHOICES:
        if duration_s / size <= max_bins:
            return float(size)
    return float(_BIN_CHOICES[-1])


def think_time_s(scenario: Mapping[str, Any]) -> float | None:
    """Mean think time of the scenario as run (weighted by user class when it has classes):
    the think time the gate's projections use, so a what-if at its defaults matches them."""
    found = scenario_think_time(scenario)
    return None if found is None else found[0]


@dataclass
class Bins:
    """Merged histograms per time bin, overall and per region, plus failures per bin."""

    bin_s: float
    starts: list[float] = field(default_factory=list)
    overall: list[Histogram] = field(default_factory=list)
    by_region: dict[str, list[Histogram]] = field(default_factory=dict)
    failures: list[int] = field(default_factory=list)

    @property
    def end(self) -> float | None:
        return self.starts[-1] + self.bin_s if self.starts else None


@dataclass(frozen=True)
class EndpointRow:
    region: str
    user_class: str
    endpoint: str
    requests: int
    failures: int
    p50_ms: float
    p95_ms: float
    p99_ms: float


@dataclass
class RunView:
    """Everything the panels need from one run, prepared once."""

    path: str
    run_id: str
    scenario_name: str
    status: str
    t0: float
    manifest: dict[str, Any]
    summary: dict[str, Any]
    think_time_s: float | None
    load: pd.DataFrame
    bins: Bins | None
    regions: list[str]
    user_classes: list[str]
    endpoint_rows: list[EndpointRow]
    steps: pd.DataFrame | None
    requests_by_endpoint: dict[str, float]
    totals: ServiceTotals
    events: list[dict[str, Any]]
    notes: dict[str, str] = field(default_factory=dict)
    signature: str = ""

    @property
    def live(self) -> bool:
        return self.status == "running"

    @property
    def duration_s(self) -> float:
        if len(self.load):
            return float(self.load["t"].max() - self.t0 + 1.0)
        return float(self.summary.get("duration_s") or 0.0)

    @property
    def mean_response_s(self) -> float:
        latency = self.summary.get("latency_ms") or {}
        mean = latency.get("mean") if isinstance(latency, Mapping) else None
        return float(mean) / 1000.0 if isinstance(mean, int | float) and mean > 0 else 0.1


def run_signature(path: Path) -> str:
    """Changes whenever the run directory's files change (for the on-disk cache)."""
    digest = hashlib.sha256(str(path.resolve()).encode())
    for file in sorted(path.rglob("*")):
        if file.is_file():
            stat = file.stat()
            digest.update(f"{file.relative_to(path)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return f"v{CACHE_VERSION}-{digest.hexdigest()[:24]}"


# --- building ----------------------------------------------------------------------------

def _t0(run: Run, load: pd.DataFrame) -> float:
    started = run.started_at.timestamp()
    return min(started, float(load["t"].min())) if len(load) else started


def _quantile_or_nan(hist: Histogram, q: float) -> float:
    return hist.quantile(q) if hist.total else math.nan


def _bin_failures(stats: pd.DataFrame, starts: list[float], bin_s: float) -> list[int]:
    if not len(stats) or not starts:
        return [0] * len(starts)
    index = np.floor((stats["t"].to_numpy() - starts[0]) / bin_s).astype(int)
    keep = (index >= 0) & (index < len(starts))
    sums = np.bincount(index[keep], weights=stats["failures"].to_numpy()[keep],
                       minlength=len(starts))
    return [int(v) for v in sums]


def _interval_span(run: Run) -> tuple[float, float] | None:
    """(first, last) second covered by interval histograms, via the load series."""
    stats_t = run.stats["t"] if len(run.stats) else run.load["t"]
    if not len(stats_t):
        return None
    return float(stats_t.min()), float(stats_t.max()) + 1.0


def _fill_bins(run: Run, bins: Bins, regions: list[str], first: float, upto: float) -> None:
    """Append complete bins starting at `first` whose end is at most `upto`."""
    start = first
    while start + bins.bin_s <= upto + 1e-9:
        end = start + bins.bin_s
        bins.starts.append(start)
        bins.overall.append(run.histogram(start=start, end=end))
        for region in regions:
            bins.by_region.setdefault(region, []).append(
                run.histogram(region=region, start=start, end=end))
        start = end


def _build_bins(run: Run, regions: list[str], t0: float, bin_s: float | None,
                final: bool) -> tuple[Bins | None, str | None]:
    span = _interval_span(run)
    if span is None:
        return None, "The run has no per-second statistics yet."
    first, last = span
    size = bin_s or choose_bin_s(last - t0)
    bins = Bins(size)
    try:
        # A finished run's last, partial bin is shown; a live run waits for bins to fill
        # (and leaves its newest second, which may still be arriving).
        upto = last + size - 1e-6 if final else last - 1.0
        _fill_bins(run, bins, regions, t0 + math.floor((first - t0) / size) * size, upto)
    except RunDirError as exc:
        return None, f"No interval histograms, so no latency over time ({exc.reason})."
    bins.failures = _bin_failures(run.stats, bins.starts, size)
    return bins, None


def _endpoint_rows(run: Run, regions: list[str], classes: list[str]) -> list[EndpointRow]:
    by_key = run.histograms_by_key()
    stats = run.stats
    counts: dict[tuple[str, str, str], tuple[int, int]] | None = None
    if len(stats):  # a plain dict: hundreds of pandas slices per refresh cost most of a second
        sums = stats.groupby(["region", "user_class", "endpoint"], observed=True)[
            ["requests", "failures"]].sum()
        counts = {(str(r), str(u), str(e)): (int(q), int(f)) for (r, u, e), q, f in zip(
            sums.index, sums["requests"], sums["failures"], strict=True)}
    rows: list[EndpointRow] = []
    endpoints = sorted({key[1] for key in by_key})
    for region in [ALL, *regions]:
        for user_class in [ALL, *classes]:
            rows.extend(_endpoint_group(by_key, counts, region, user_class, endpoints))
    return rows


def _endpoint_group(
    by_key: Mapping[tuple[str, str, str, str], Histogram],
    counts: Mapping[tuple[str, str, str], tuple[int, int]] | None,
    region: str, user_class: str, endpoints: Iterable[str],
) -> list[EndpointRow]:
    rows = []
    for endpoint in endpoints:
        hists = [h for (r, e, u, _k), h in by_key.items() if e == endpoint
                 and region in (ALL, r) and user_class in (ALL, u)]
        hist = Histogram.merge(hists)
        requests, failures = hist.total, 0
        if counts is not None:
            chosen = [v for (r, u, e), v in counts.items() if e == endpoint
                      and region in (ALL, r) and user_class in (ALL, u)]
            requests, failures = sum(v[0] for v in chosen), sum(v[1] for v in chosen)
        if requests == 0 and hist.total == 0:
            continue
        rows.append(EndpointRow(region, user_class, endpoint, requests, failures,
                                _quantile_or_nan(hist, 0.5), _quantile_or_nan(hist, 0.95),
                                _quantile_or_nan(hist, 0.99)))
    return rows


def _requests_by_endpoint(summary: Mapping[str, Any], stats: pd.DataFrame) -> dict[str, float]:
    by_endpoint = summary.get("by_endpoint")
    if isinstance(by_endpoint, Mapping) and by_endpoint:
        return {str(k): float(v.get("requests", 0)) for k, v in by_endpoint.items()
                if isinstance(v, Mapping)}
    if len(stats):
        return {str(k): float(v) for k, v in stats.groupby("endpoint")["requests"].sum().items()}
    return {}


def _summary(run: Run) -> dict[str, Any]:
    if run.summary is not None:
        return dict(run.summary)
    from collectors.summary import summarize

    return summarize(run)


_SHOWN_EVENTS = ("stage", "failover", "alert_firing", "alert_resolved", "abort", "invalid")


def build_view(run: Run, *, bin_s: float | None = None, full: bool = True) -> RunView:
    """Prepare every panel's data for `run` (complete, running or aborted).

    `full=False` skips the time bins and the endpoint table (what `pitchey capacity` does
    not need), so no interval histogram outside the concurrency steps is decoded.
    """
    notes: dict[str, str] = {}
    summary = _summary(run)
    load = run.load
    if not len(load):
        notes["load"] = "The run has no load time series (timeseries/load.parquet is empty)."
    t0 = _t0(run, load)
    regions = run.scopes("region") or sorted(summary.get("by_region") or {})
    classes = run.scopes("user_class") or sorted(summary.get("by_user_class") or {})
    bins, note = (_build_bins(run, regions, t0, bin_s, final=run.status != "running")
                  if full else (None, "not prepared"))
    if note:
        notes["latency"] = note
    steps, note = steps_with_latency(run)  # the steps the gate's capacity projection fits
    if note:
        notes["capacity"] = note
    service = run.service
    if not len(service):
        notes["cost"] = ("The run has no scraped service series: cache hit rates, database "
                         "statements and CPU are the Auto-Scaling document's figures "
                         "(docs/targets.md), not measurements.")
    events = [e for e in run.events if e["type"] in _SHOWN_EVENTS][:200]
    return RunView(
        path=str(run.path), run_id=run.run_id, scenario_name=run.scenario_name,
        status=run.status, t0=t0, manifest=dict(run.manifest), summary=summary,
        think_time_s=think_time_s(run.scenario),
        load=load, bins=bins, regions=regions, user_classes=classes,
        endpoint_rows=_endpoint_rows(run, regions, classes) if full else [], steps=steps,
        requests_by_endpoint=_requests_by_endpoint(summary, run.stats),
        totals=service_totals(service), events=events, notes=notes,
    )


@dataclass(frozen=True)
class LiveDelta:
    """What a live refresh adds: new load rows and new complete bins (by index)."""

    load: pd.DataFrame
    first_new_bin: int


@dataclass(frozen=True)
class Extension:
    """A live refresh computed off to the side, applied to the view in one short step."""

    run: Run
    new_load: pd.DataFrame
    bins: Bins | None  # new bins only, or every bin when `replace_bins`
    replace_bins: bool
    failures: list[int] | None
    endpoint_rows: list[EndpointRow] | None  # None: not re-read this time
    steps: pd.DataFrame | None
    totals: ServiceTotals | None


def compute_extension(view: RunView, run: Run, *, tables: bool = True) -> Extension:
    """Read what `run` (a fresh load of the view's directory) adds; the view is not changed.

    `tables=False` skips the endpoint table, the concurrency steps and the service totals
    (the overview's series come first; a live refresher re-reads those less often).
    """
    last_t = float(view.load["t"].max()) if len(view.load) else -math.inf
    load = run.load
    final = run.status != "running"
    regions = view.regions or run.scopes("region")
    classes = view.user_classes or run.scopes("user_class")
    tables = tables or final
    rows = _endpoint_rows(run, regions, classes) if tables else None
    steps = steps_with_latency(run)[0] if tables else None
    totals = service_totals(run.service) if tables else None
    if view.bins is None:
        bins, _note = _build_bins(run, regions, view.t0, None, final=final)
        return Extension(run, load[load["t"] > last_t], bins, True, None, rows, steps, totals)
    added = Bins(view.bins.bin_s)
    span = _interval_span(run)
    if span is not None:
        upto = span[1] + added.bin_s - 1e-6 if final else span[1] - 1.0
        start = view.bins.end if view.bins.end is not None else view.t0
        _fill_bins(run, added, view.regions, start, upto)
    starts = view.bins.starts + added.starts
    return Extension(run, load[load["t"] > last_t], added, False,
                     _bin_failures(run.stats, starts, added.bin_s), rows, steps, totals)


def apply_extension(view: RunView, ext: Extension) -> LiveDelta:
    """Apply a computed refresh (cheap: list appends and attribute swaps)."""
    first_new = len(view.bins.starts) if view.bins and not ext.replace_bins else 0
    view.load = ext.run.load
    view.status = ext.run.status
    view.manifest = dict(ext.run.manifest)
    if ext.run.summary is not None:  # the run finished: its summary (and any verdict) is final
        view.summary = dict(ext.run.summary)
    if ext.endpoint_rows is not None:
        view.endpoint_rows = ext.endpoint_rows
        view.requests_by_endpoint = {r.endpoint: float(r.requests) for r in ext.endpoint_rows
                                     if r.region == ALL and r.user_class == ALL}
    if ext.totals is not None:
        view.totals = ext.totals
    if ext.steps is not None:
        view.steps = ext.steps
        view.notes.pop("capacity", None)
    if ext.replace_bins:
        view.bins = ext.bins
        if ext.bins is not None:
            view.notes.pop("latency", None)
            view.regions = sorted(ext.bins.by_region)
    elif view.bins is not None and ext.bins is not None:
        view.bins.starts.extend(ext.bins.starts)
        view.bins.overall.extend(ext.bins.overall)
        for region, hists in ext.bins.by_region.items():
            view.bins.by_region.setdefault(region, []).extend(hists)
        view.bins.failures = ext.failures or view.bins.failures
    return LiveDelta(ext.new_load, first_new)


def extend_view(view: RunView, run: Run) -> LiveDelta:
    """Bring a live view up to date with `run` (a fresh load of the same directory)."""
    return apply_extension(view, compute_extension(view, run))


# --- on-disk cache of complete runs --------------------------------------------------------

@dataclass
class RunCache:
    """Pickled views of complete runs, keyed by the run directory's signature."""

    directory: Path

    def _file(self, run_id: str, signature: str) -> Path:
        return self.directory / f"{run_id}-{signature}.pickle"

    def get(self, run_id: str, signature: str) -> RunView | None:
        file = self._file(run_id, signature)
        try:
            with file.open("rb") as handle:
                view = pickle.load(handle)
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
            return None
        return view if isinstance(view, RunView) else None

    def put(self, view: RunView) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp = self._file(view.run_id, view.signature).with_suffix(".tmp")
            with tmp.open("wb") as handle:
                pickle.dump(view, handle, protocol=pickle.HIGHEST_PROTOCOL)
            tmp.replace(self._file(view.run_id, view.signature))
        except OSError:
            pass  # a cache that cannot be written only costs time
