"""Loading a 1-hour run directory and computing every summary percentile (target < 2 s).

A synthetic run is written with the real RunWriter: 3,600 s × 4 regions × 20 endpoints ×
3 user classes (864,000 per-second stats rows), interval histograms every 10 s per key
(86,400 HDR histograms, about 14 requests/s per key: roughly 3,400 requests/s in all, the
rate 100,000 users at 30 s think time make), per-second load and generator rows, and
300 scraped service samples per second. Then, timed: `load_run` plus `summarize` (the
overall, per-region, per-endpoint and per-user-class p50/p90/p95/p99/p99.9/max from merged
histograms, counts and rates from the stats table). Also reported: the on-disk size per hour,
and two heavier reads a gate or a dashboard makes (percentiles over a window after warm-up,
from the decoded copy of the interval histograms; latency over time per region).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from collectors.hdr import Histogram
from collectors.run import load_run
from collectors.rundir import RunWriter
from collectors.summary import summarize
from collectors.validity import Validity

SECONDS = 3_600
REGIONS = ("us-east", "us-west", "eu-west", "asia")
ENDPOINTS = tuple(f"GET /api/endpoint{n:02d}" for n in range(20))
USER_CLASSES = ("creator", "investor", "production")
HIST_INTERVAL_S = 10
REQUESTS_PER_KEY_PER_S = 14
LIGHT_SERVICE_SAMPLES_PER_S = 300
SERVICE_BLOCK_S = 300
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
TARGET_S = 2.0
T0 = 1_700_000_000.0


def _histogram_pool(rng: np.random.Generator, size: int = 400) -> list[str]:
    """Distinct encoded 10-second histograms to draw from (writing stays fast)."""
    count = REQUESTS_PER_KEY_PER_S * HIST_INTERVAL_S
    return [Histogram.from_values_ms(rng.lognormal(np.log(35), 0.7, count)).encode()
            for _ in range(size)]


def write_hour(root: Path, seed: int = 1) -> Path:
    """The synthetic hour (service series at a light rate; see `service_block` for the real)."""
    rng = np.random.default_rng(seed)
    pool = _histogram_pool(rng)
    keys = [(r, e, u) for r in REGIONS for e in ENDPOINTS for u in USER_CLASSES]
    writer = RunWriter.create(root, "bench-hour", {"name": "bench-hour"}, "embedded",
                              {"edge": "http://127.0.0.1:9"},
                              started_at=datetime.fromtimestamp(T0, UTC), flush_interval_s=10.0)
    base = rng.uniform(20, 40, len(keys))
    for second in range(SECONDS):
        t = T0 + second
        requests = rng.poisson(REQUESTS_PER_KEY_PER_S, len(keys))
        failures = rng.binomial(requests, 0.001)
        p50 = np.round(base * rng.lognormal(0, 0.1, len(keys)), 3)
        p95, p99 = np.round(p50 * rng.uniform(2, 3, len(keys)), 3), np.round(p50 * 4, 3)
        writer.add_stats(
            {"t": t, "region": r, "endpoint": e, "user_class": u, "requests": int(requests[n]),
             "failures": int(failures[n]), "p50_ms": float(p50[n]), "p95_ms": float(p95[n]),
             "p99_ms": float(p99[n]), "max_ms": float(p99[n] * 1.7)}
            for n, (r, e, u) in enumerate(keys)
        )
        writer.add_load(t, 100_000, float(requests.sum()), float(failures.sum()))
        for worker, region in enumerate(REGIONS):
            writer.add_generator(t, f"{region}-{worker}", region,
                                 float(rng.uniform(30, 60)), float(rng.gamma(2, 1.5)))
        values = rng.normal(100, 10, LIGHT_SERVICE_SAMPLES_PER_S)
        writer.add_service_samples(
            {"t": t, "target": REGIONS[n % 4], "metric": f"pitchey_metric_{n % 60}",
             "labels": {"http_route": ENDPOINTS[n % 20]}, "value": float(values[n])}
            for n in range(LIGHT_SERVICE_SAMPLES_PER_S)
        )
        if second % HIST_INTERVAL_S == 0:
            for r, e, u in keys:
                writer.add_histogram_interval(t, HIST_INTERVAL_S, r, e, u, "service",
                                              pool[int(rng.integers(len(pool)))])
    return writer.finish(Validity.ok())


def service_block(root: Path, seconds: int, seed: int = 2) -> Path:
    """Service series as scraped from the edge and 4 workers: 25 route/method/status label
    sets x (14 buckets + +Inf + sum + count) plus 75 other samples, per target and second."""
    rng = np.random.default_rng(seed)
    writer = RunWriter.create(root, "bench-service", {}, "embedded", flush_interval_s=10.0)
    targets = ("edge", *REGIONS)
    les = (*(str(b) for b in BUCKETS), "+Inf")
    routes = [{"http_route": ENDPOINTS[n % 20], "http_request_method": "GET",
               "http_response_status_code": "200" if n < 20 else "404"} for n in range(25)]
    totals = np.zeros((len(targets), len(routes), len(les)))
    for second in range(seconds):
        t = T0 + second
        arrivals = rng.poisson(3, (len(targets), len(routes)))
        shares = rng.dirichlet(np.ones(len(les)), (len(targets), len(routes)))
        totals += np.cumsum(arrivals[..., None] * shares, axis=2).round()
        rows = []
        for i, target in enumerate(targets):
            for j, route in enumerate(routes):
                name = "http_server_request_duration_seconds"
                rows += [{"t": t, "target": target, "metric": f"{name}_bucket",
                          "labels": {**route, "le": le}, "value": float(totals[i, j, k])}
                         for k, le in enumerate(les)]
                rows.append({"t": t, "target": target, "metric": f"{name}_count",
                             "labels": route, "value": float(totals[i, j, -1])})
                rows.append({"t": t, "target": target, "metric": f"{name}_sum",
                             "labels": route, "value": float(totals[i, j, -1] * 0.03)})
            rows += [{"t": t, "target": target, "metric": f"pitchey_gauge_{n}", "labels": {},
                      "value": float(rng.integers(0, 50))} for n in range(75)]
        writer.add_service_samples(rows)
    return writer.finish(Validity.ok())


def _size_mb(path: Path, pattern: str) -> float:
    return sum(p.stat().st_size for p in path.glob(pattern)) / 1e6


def main() -> dict[str, float]:
    root = Path(tempfile.mkdtemp(prefix="bench-collectors-"))
    try:
        started = time.perf_counter()
        run_dir = write_hour(root)
        write_s = time.perf_counter() - started

        started = time.perf_counter()
        run = load_run(run_dir)
        summary = summarize(run)
        load_summary_s = time.perf_counter() - started
        scopes = 1 + sum(len(summary[f"by_{f}"]) for f in ("region", "endpoint", "user_class"))

        started = time.perf_counter()
        window = run.percentiles([0.95, 0.99], start=T0 + 300)  # after a 5-minute warm-up
        window_s = time.perf_counter() - started
        started = time.perf_counter()
        series = run.percentile_series([0.5, 0.95, 0.99], by=["region"])
        series_s = time.perf_counter() - started
        sizes = {name: _size_mb(run_dir, f"timeseries/{name}.parquet")
                 for name in ("stats", "load", "generator")}
        histograms_mb = _size_mb(run_dir, "histograms/*.jsonl")
        copy_mb = _size_mb(run_dir, "histograms/*.parquet")

        block = service_block(root, SERVICE_BLOCK_S)
        started = time.perf_counter()
        service_rows = len(load_run(block).service)
        service_read_s = time.perf_counter() - started
        service_mb_hour = _size_mb(block, "timeseries/service.parquet") * 3600 / SERVICE_BLOCK_S
    finally:
        shutil.rmtree(root, ignore_errors=True)

    rate = service_rows // SERVICE_BLOCK_S
    parquet_mb = sum(sizes.values()) + service_mb_hour
    print(f"synthetic 1-hour run: {SECONDS} s x {len(REGIONS)} regions x {len(ENDPOINTS)} "
          f"endpoints x {len(USER_CLASSES)} user classes = {SECONDS * 240:,} stats rows, "
          f"{SECONDS // HIST_INTERVAL_S * 240:,} interval histograms ({HIST_INTERVAL_S} s), "
          f"~{REQUESTS_PER_KEY_PER_S * 240:,} requests/s (written in {write_s:.0f} s)")
    print(f"load_run + summarize ({scopes} scopes x p50/p90/p95/p99/p99.9/max/mean from merged "
          f"histograms): {load_summary_s:.2f} s  (target < {TARGET_S:.0f} s: "
          f"{'met' if load_summary_s < TARGET_S else 'NOT met'})")
    print(f"Parquet per hour: {parquet_mb:.1f} MB = stats {sizes['stats']:.1f} + load "
          f"{sizes['load']:.2f} + generator {sizes['generator']:.2f} + service "
          f"{service_mb_hour:.1f} MB (service at {rate:,} samples/s, 5 targets; measured over "
          f"{SERVICE_BLOCK_S} s and scaled to the hour); HDR histograms: {histograms_mb:.1f} MB "
          f"(+ {copy_mb:.1f} MB decoded copy)")
    print(f"reading {service_rows:,} service rows ({SERVICE_BLOCK_S} s): {service_read_s:.2f} s")
    decoded = SECONDS // HIST_INTERVAL_S * 240
    print(f"p95/p99 after a 5-minute warm-up (merges {decoded:,} interval histograms from "
          f"the decoded copy): {window_s:.2f} s -> p95 {window[0.95]:.1f} ms")
    print(f"latency over time per region ({len(series):,} points, decoded histograms reused): "
          f"{series_s:.2f} s")
    return {
        "load_and_summarize_s": round(load_summary_s, 3),
        "target_s": TARGET_S,
        "parquet_mb_per_hour": round(parquet_mb, 2),
        "stats_parquet_mb_per_hour": round(sizes["stats"], 2),
        "service_parquet_mb_per_hour": round(service_mb_hour, 2),
        "service_samples_per_s": float(rate),
        "histograms_mb_per_hour": round(histograms_mb, 2),
        "histogram_copy_mb_per_hour": round(copy_mb, 2),
        "window_percentiles_s": round(window_s, 3),
        "percentile_series_s": round(series_s, 3),
        "write_s": round(write_s, 1),
    }


if __name__ == "__main__":
    main()
