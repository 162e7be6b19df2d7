"""Capacity validation: the suite's capacity method against reference servers of known truth.

Two real `pitchey run`s (testing.capacity_validation): service demand against a burn-mode
server (X_max = 1000 / burn-ms by construction), and a USL fitted on the lower concurrency
steps of a contention-mode server predicting the highest step's throughput and p95. Prints
the errors against the issue's targets (X_max ≤ 10 %, held-out step ≤ 15 %). About a minute.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from testing.capacity_validation import run_burn, run_contention
from testing.reference_server import ReferenceConfig

__all__ = ["main"]

BURN = ReferenceConfig("burn", burn_ms=4.0)
CONTENTION = ReferenceConfig("contention", base_ms=80.0, sigma=0.05, kappa=0.002)


def main() -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="bench-capacity-") as tmp:
        work = Path(tmp)
        demand = run_burn(work / "burn", BURN)
        usl = run_contention(work / "contention", CONTENTION)
    print(f"burn {BURN.burn_ms:g} ms: X_max {demand.x_max_rps:.1f} req/s measured, "
          f"{demand.x_max_true_rps:.1f} true ({demand.requests} requests; {demand.source})"
          + (f"; knee {demand.knee_rps:.1f} req/s" if demand.knee_rps is not None else ""))
    print(f"contention (base {CONTENTION.base_ms:g} ms, σ {CONTENTION.sigma:g}, "
          f"κ {CONTENTION.kappa:g}): fitted σ {usl.sigma:.3f} κ {usl.kappa:.4f}; at "
          f"{usl.held_out_users:g} users {usl.predicted_rps:.1f} req/s predicted, "
          f"{usl.measured_rps:.1f} measured ({usl.truth_rps:.1f} by construction); p95 "
          f"{usl.predicted_p95_ms:.1f} ms predicted, {usl.measured_p95_ms:.1f} measured")
    print(f"capacity validation: X_max error {100 * demand.error:.1f} % (target ≤ 10 %); "
          f"held-out step throughput error {100 * usl.throughput_error:.1f} %, p95 error "
          f"{100 * usl.p95_error:.1f} % (target ≤ 15 %)")
    return {
        "x_max_rps": demand.x_max_rps, "x_max_true_rps": demand.x_max_true_rps,
        "x_max_error": demand.error, "demand_source": demand.source,
        "knee_rps": demand.knee_rps,
        "held_out_users": usl.held_out_users, "throughput_predicted_rps": usl.predicted_rps,
        "throughput_measured_rps": usl.measured_rps, "throughput_error": usl.throughput_error,
        "p95_predicted_ms": usl.predicted_p95_ms, "p95_measured_ms": usl.measured_p95_ms,
        "p95_error": usl.p95_error,
    }


if __name__ == "__main__":
    main()
