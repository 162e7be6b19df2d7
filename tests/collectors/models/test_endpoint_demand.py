"""Per-endpoint demand: recovered from a run whose mix varies, refused when it cannot be told
apart (a proportional mix), against CPU counters written from known per-endpoint demands."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from collectors.hdr import Histogram
from collectors.models.endpoint_demand import endpoint_demand
from collectors.run import load_run
from collectors.validity import Validity
from testing.rundirs import START, new_writer

TRUE_MS = {"GET /api/pitches": 2.0, "POST /api/pitches": 9.0, "GET /api/pitches/{id}": 0.5}
BACKGROUND_CORES = 0.02  # health checks and scrapes: CPU no request causes


def _write(root: Path, rates: dict[str, list[float]], seconds: int) -> Path:
    """A run whose per-second completions follow `rates` (per endpoint, per second) and whose
    service CPU counter grows by exactly Σ D_e × n_e + background, scraped every second."""
    writer = new_writer(root, "endpoints")
    cpu = 0.0
    samples = [{"t": START, "target": "service", "metric": "process_cpu_seconds_total",
                "labels": {}, "value": cpu}]
    for second in range(seconds):
        t = START + second
        rows = []
        for endpoint, per_second in rates.items():
            n = int(per_second[second])
            hist = Histogram.from_values_ms([5.0] * n)
            writer.add_histogram_interval(t, 1.0, "us-east", endpoint, "investor", "service", hist)
            rows.append({"t": t, "region": "us-east", "endpoint": endpoint,
                         "user_class": "investor", "requests": n, "failures": 0,
                         "p50_ms": 5.0, "p95_ms": 5.0, "p99_ms": 5.0, "max_ms": 5.0})
            cpu += n * TRUE_MS[endpoint] / 1000.0
        cpu += BACKGROUND_CORES
        writer.add_stats(rows)
        writer.add_load(t, 10, float(sum(r["requests"] for r in rows)), 0.0)
        samples.append({"t": t + 1.0, "target": "service",
                        "metric": "process_cpu_seconds_total", "labels": {}, "value": cpu})
    writer.add_service_samples(samples)
    return writer.finish(Validity.ok())


def test_a_varying_mix_recovers_each_endpoints_demand(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    seconds = 120
    rates = {e: list(rng.integers(5, 60, seconds)) for e in TRUE_MS}
    run = load_run(_write(tmp_path, rates, seconds))
    split = endpoint_demand(run)
    assert split.attributed, split.reason
    found = {e.endpoint: e.demand_ms for e in split.endpoints}
    assert found == pytest.approx(TRUE_MS, rel=0.03)
    assert split.background_cores == pytest.approx(BACKGROUND_CORES, rel=0.2)
    assert split.r_squared is not None and split.r_squared > 0.99
    assert sum(e.cpu_share for e in split.endpoints) == pytest.approx(1.0)
    assert split.endpoints[0].endpoint == "POST /api/pitches"  # the dearest first


def test_a_proportional_mix_is_refused_not_split(tmp_path: Path) -> None:
    """Every endpoint scaled by the same factor (what breakpoint steps do): no honest split."""
    seconds = 120
    level = [10 + 5 * (s // 20) for s in range(seconds)]
    rates = {e: [float(x * k) for x in level] for e, k in zip(TRUE_MS, (3, 1, 2), strict=True)}
    split = endpoint_demand(load_run(_write(tmp_path, rates, seconds)))
    assert not split.attributed
    assert "moved together" in split.reason


def test_too_few_bins_says_so(tmp_path: Path) -> None:
    rates = {e: [20.0] * 12 for e in TRUE_MS}
    split = endpoint_demand(load_run(_write(tmp_path, rates, 12)))
    assert not split.attributed and "too few" in split.reason
