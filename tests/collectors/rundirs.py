"""Helpers that write run directories with the real RunWriter from known, seeded values."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from collectors.hdr import Histogram
from collectors.rundir import RunWriter, stats_row

T0 = 1_700_000_000.0
KEYS: tuple[tuple[str, str, str], ...] = (
    ("us-east", "GET /api/pitches", "investor"),
    ("us-east", "POST /api/pitches", "creator"),
    ("eu-west", "GET /api/pitches", "investor"),
    ("eu-west", "GET /api/pitches/{id}", "anonymous"),
)


@dataclass
class Recorded:
    """Every latency (ms) written, by (region, endpoint, user_class) and second."""

    values: dict[tuple[str, str, str], dict[int, np.ndarray]] = field(default_factory=dict)
    failures: dict[tuple[str, str, str], dict[int, int]] = field(default_factory=dict)

    def select(self, region: str | None = None, endpoint: str | None = None,
               user_class: str | None = None, seconds: Sequence[int] | None = None) -> np.ndarray:
        parts = [
            v for key, by_second in self.values.items()
            if (region is None or key[0] == region) and (endpoint is None or key[1] == endpoint)
            and (user_class is None or key[2] == user_class)
            for second, v in by_second.items() if seconds is None or second in seconds
        ]
        return np.concatenate(parts) if parts else np.zeros(0)


def fill(writer: RunWriter, seconds: int, seed: int = 1, *, corrected: bool = False) -> Recorded:
    """Write `seconds` seconds of load, stats, generator samples and interval histograms."""
    rng = np.random.default_rng(seed)
    recorded = Recorded()
    for second in range(seconds):
        t = T0 + second
        total = 0
        for key in KEYS:
            region, endpoint, user_class = key
            values = rng.lognormal(np.log(30 if region == "us-east" else 80), 0.8,
                                   int(rng.integers(5, 40)))
            failed = int(rng.integers(0, 3))
            recorded.values.setdefault(key, {})[second] = values
            recorded.failures.setdefault(key, {})[second] = failed
            hist = Histogram.from_values_ms(values)
            writer.add_stats([stats_row(t, region, endpoint, user_class, hist, failed)])
            writer.add_histogram_interval(t, 1.0, region, endpoint, user_class, "service", hist)
            if corrected:
                writer.add_histogram_interval(t, 1.0, region, endpoint, user_class, "corrected",
                                              Histogram.from_values_ms(values + 5.0))
            total += values.size
        writer.add_load(t, 10 + second, float(total), 1.0)
        writer.add_generator(t, "us-east-1", "us-east", 20.0 + second, 1.0 + second / 10)
        writer.add_service_samples([
            {"t": t, "target": "edge", "metric": "http_server_active_requests", "labels": {},
             "value": float(second)},
        ])
    return recorded


def new_writer(root: Path, name: str = "unit", **kwargs: object) -> RunWriter:
    return RunWriter.create(root, name, {"name": name, "users": 10}, "embedded",
                            {"edge": "http://127.0.0.1:9"},
                            started_at=datetime.fromtimestamp(T0, UTC), **kwargs)  # type: ignore[arg-type]
