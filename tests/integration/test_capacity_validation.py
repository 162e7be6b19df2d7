"""The capacity method against reference servers that know the truth (issue 15).

- Burn mode: each request costs exactly `burn_ms` of CPU, so X_max = 1000 / burn_ms. A real
  `pitchey run` against it, then the suite's service demand over the hold: X_max within 10 %.
- Contention mode: requests sleep base × (1 + σ(n−1) + κn(n−1)), so closed-loop throughput
  follows the USL by construction. A real stepped `pitchey run`; the USL and latency model
  fitted on the lower steps predict the highest step's throughput and p95 within 15 %.

The reference server itself is checked first, from its own request log (the truth).
"""

from __future__ import annotations

import statistics
import urllib.request
from pathlib import Path

import pytest

from testing.capacity_validation import run_burn, run_contention
from testing.reference_server import ReferenceConfig, ReferenceServer, contention_delay_s

BURN = ReferenceConfig("burn", burn_ms=4.0)
# a long base keeps the generator's own per-request overhead small beside the server's time
CONTENTION = ReferenceConfig("contention", base_ms=80.0, sigma=0.05, kappa=0.002)


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback
        body: bytes = response.read()
        return body


def test_reference_server_charges_exactly_its_burn_and_counts_work(tmp_path: Path) -> None:
    with ReferenceServer(BURN, tmp_path) as server:
        for _ in range(30):
            _get(server.url + "/api/pitches?page=1")
        _get(server.url + "/health")
        metrics = _get(server.url + "/metrics").decode()
        records = server.records()
    assert "process_cpu_seconds_total" in metrics
    assert "reference_requests_total 30.0" in metrics  # /health and /metrics are not work
    assert len(records) == 30
    charged = [r.cpu_ms for r in records[1:]]  # the first absorbs the start-up's idle CPU
    assert min(charged) >= BURN.burn_ms
    assert statistics.median(charged) == pytest.approx(BURN.burn_ms, rel=0.02)


def test_contention_delay_is_the_usl_denominator() -> None:
    base = CONTENTION.base_ms / 1000.0
    assert contention_delay_s(CONTENTION, 1) == pytest.approx(base)
    assert contention_delay_s(CONTENTION, 10) == pytest.approx(
        base * (1 + 0.05 * 9 + 0.002 * 90))


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_service_demand_of_the_burn_server_gives_its_x_max(tmp_path: Path) -> None:
    check = run_burn(tmp_path, BURN)
    print(f"X_max {check.x_max_rps:.1f} req/s vs {check.x_max_true_rps:.1f} "
          f"({check.error:.1%}), from {check.source}")
    assert check.source.startswith("collectors.models.demand"), check.source
    assert check.requests > 500
    assert check.error <= 0.10, check
    if check.knee_rps is not None:
        assert check.knee_rps <= check.x_max_true_rps * 1.10, check


@pytest.mark.integration
@pytest.mark.timeout(150)
def test_usl_fitted_on_lower_steps_predicts_the_highest(tmp_path: Path) -> None:
    check = run_contention(tmp_path, CONTENTION)
    print(f"held-out {check.held_out_users:g} users: throughput {check.predicted_rps:.1f} "
          f"predicted, {check.measured_rps:.1f} measured ({check.throughput_error:.1%}); "
          f"p95 {check.predicted_p95_ms:.1f} vs {check.measured_p95_ms:.1f} ms "
          f"({check.p95_error:.1%}); fitted σ {check.sigma:.3f} κ {check.kappa:.4f}")
    assert check.steps == 5
    assert check.throughput_error <= 0.15, check
    assert check.p95_error <= 0.15, check
