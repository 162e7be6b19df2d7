"""Service series from a real Prometheus (HTTP API `query_range`) instead of local scrapes.

For long or distributed runs against a real deployment, Prometheus already scrapes the
service; `PrometheusSource` reads the same series back over the run's time range and shapes
them exactly like service.parquet (t, target, metric, labels, value), so everything that reads
a run works the same. `target` is taken from a label (`instance` by default, optionally mapped
to a name such as "edge"); `instance` and `job` are dropped from the labels.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from collectors.rundir import RunWriter, ServiceSample
from collectors.series import Series, SeriesStore

__all__ = ["DEFAULT_SELECTOR", "PrometheusError", "PrometheusSource"]

# The suite's own series: the service's metric families, Prometheus' scrape health.
DEFAULT_SELECTOR = (
    '{__name__=~"http_server_.*|pitchey_.*|process_cpu_seconds_total|'
    'process_resident_memory_bytes|up|scrape_duration_seconds"}'
)
_MAX_POINTS = 10_000  # Prometheus refuses more than 11,000 points per series per query


class PrometheusError(Exception):
    """Prometheus could not be reached or refused the query; the message says which."""


class PrometheusSource:
    """A Prometheus HTTP API at `base_url` (e.g. http://prometheus:9090)."""

    def __init__(
        self, base_url: str, *, timeout_s: float = 30.0, target_label: str = "instance",
        target_names: Mapping[str, str] | None = None,
        drop_labels: Sequence[str] = ("instance", "job"),
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.target_label = target_label
        self.target_names = dict(target_names or {})
        self.drop_labels = frozenset(drop_labels) | {"__name__"}

    # raw API ---------------------------------------------------------------------------------
    def query_range(
        self, expr: str, start: float, end: float, step: float
    ) -> list[dict[str, Any]]:
        """The matrix result of /api/v1/query_range, split into chunks Prometheus accepts."""
        merged: dict[str, dict[str, Any]] = {}
        for chunk_start, chunk_end in _chunks(start, end, step):
            data = self._get("/api/v1/query_range", {
                "query": expr, "start": _fmt(chunk_start), "end": _fmt(chunk_end),
                "step": _fmt(step),
            })
            if data.get("resultType") != "matrix":
                raise PrometheusError(f"expected a matrix, got {data.get('resultType')!r}")
            for item in data.get("result", []):
                key = json.dumps(item.get("metric", {}), sort_keys=True)
                entry = merged.setdefault(key, {"metric": item.get("metric", {}), "values": []})
                entry["values"].extend(item.get("values", []))
        return list(merged.values())

    def ready(self) -> bool:
        """True when Prometheus answers /-/ready."""
        try:
            self._fetch(f"{self.base_url}/-/ready")
        except PrometheusError:
            return False
        return True

    # shaped like a run -----------------------------------------------------------------------
    def samples(
        self, start: float, end: float, step: float = 1.0, selector: str = DEFAULT_SELECTOR
    ) -> Iterator[ServiceSample]:
        """Every point of every selected series in [start, end], as service samples."""
        for item in self.query_range(selector, start, end, step):
            metric = dict(item["metric"])
            name = metric.get("__name__", "")
            instance = str(metric.get(self.target_label, ""))
            target = self.target_names.get(instance, instance)
            labels = {k: v for k, v in metric.items() if k not in self.drop_labels}
            seen: set[float] = set()
            for t, value in item["values"]:
                if t in seen:  # chunk edges repeat a point
                    continue
                seen.add(t)
                yield {"t": float(t), "target": target, "metric": name, "labels": labels,
                       "value": _number(value)}

    def service_frame(
        self, start: float, end: float, step: float = 1.0, selector: str = DEFAULT_SELECTOR
    ) -> Any:
        """A pandas DataFrame with service.parquet's columns, sorted by t."""
        import pandas as pd

        from collectors.rundir import labels_json

        rows = [(s["t"], s["target"], s["metric"], labels_json(s["labels"]), s["value"])
                for s in self.samples(start, end, step, selector)]
        frame = pd.DataFrame(rows, columns=["t", "target", "metric", "labels", "value"])
        return frame.sort_values("t", kind="stable").reset_index(drop=True)

    def write_into(
        self, writer: RunWriter, start: float, end: float, step: float = 1.0,
        selector: str = DEFAULT_SELECTOR,
    ) -> int:
        """Copy the run's window into a RunWriter's service table; returns the sample count."""
        count = 0
        batch: list[ServiceSample] = []
        for sample in self.samples(start, end, step, selector):
            batch.append(sample)
            if len(batch) >= 50_000:
                writer.add_service_samples(batch)
                count += len(batch)
                batch = []
        writer.add_service_samples(batch)
        return count + len(batch)

    def store(
        self, start: float, end: float, step: float = 1.0, selector: str = DEFAULT_SELECTOR
    ) -> SeriesStore:
        """A SeriesStore (what the alert evaluator reads) filled from Prometheus."""
        store = SeriesStore()
        store.add_many(self.samples(start, end, step, selector))
        return store

    def series(
        self, expr: str, start: float, end: float, step: float = 1.0
    ) -> list[Series]:
        """An arbitrary PromQL expression over a range, as Series: the answer's labels (minus
        `drop_labels`; `__name__` kept when the answer has one), `instance` set to the target
        name taken from `target_label` when it has one."""
        result = []
        for item in self.query_range(expr, start, end, step):
            metric = {str(k): str(v) for k, v in dict(item["metric"]).items()}
            labels = {k: v for k, v in metric.items()
                      if k == "__name__" or k not in self.drop_labels}
            instance = metric.get(self.target_label, "")
            if instance:
                labels["instance"] = self.target_names.get(instance, instance)
            points = sorted({round(float(t) * 1000): _number(v) for t, v in item["values"]}.items())
            result.append(Series.of(labels, points))
        return result

    # HTTP ------------------------------------------------------------------------------------
    def _get(self, path: str, params: Mapping[str, str]) -> dict[str, Any]:
        url = f"{self.base_url}{path}?{urllib.parse.urlencode(params)}"
        body = self._fetch(url)
        try:
            answer = json.loads(body)
        except json.JSONDecodeError:
            raise PrometheusError(f"{self.base_url} did not answer JSON for {path}") from None
        if not isinstance(answer, dict) or answer.get("status") != "success":
            error = answer.get("error") if isinstance(answer, dict) else None
            raise PrometheusError(f"Prometheus refused the query: {error or answer!r}")
        data = answer.get("data")
        if not isinstance(data, dict):
            raise PrometheusError("Prometheus answer has no data object")
        return data

    def _fetch(self, url: str) -> bytes:
        try:
            with urllib.request.urlopen(url, timeout=self.timeout_s) as response:  # noqa: S310
                body: bytes = response.read()
                return body
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")
            try:
                detail = json.loads(detail).get("error", detail)
            except (json.JSONDecodeError, AttributeError):
                pass
            raise PrometheusError(f"Prometheus at {self.base_url}: HTTP {exc.code}: "
                                  f"{str(detail).strip()[:200]}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise PrometheusError(f"cannot reach Prometheus at {self.base_url}: {reason}") from None


def _chunks(start: float, end: float, step: float) -> Iterator[tuple[float, float]]:
    if step <= 0:
        raise ValueError("step must be positive")
    if end < start:
        raise ValueError("end must not be before start")
    span = step * _MAX_POINTS
    chunk_start = start
    while True:
        chunk_end = min(end, chunk_start + span)
        yield chunk_start, chunk_end
        if chunk_end >= end:
            return
        chunk_start = chunk_end


def _fmt(value: float) -> str:
    return repr(float(value))


def _number(text: Any) -> float:
    try:
        return float(text)  # Prometheus sends "NaN", "+Inf", "-Inf" as strings too
    except (TypeError, ValueError):
        return math.nan
