"""The capacity method checked against servers that know the truth (`testing.reference_server`).

Shared by tests/integration/test_capacity_validation.py and benchmarks/bench_capacity.py:

- `validate_demand`: a real `pitchey run` (Locust, the scraper, the run directory) against a
  burn-mode server; the service demand the suite reports for the "service" process
  (`collectors.models.demand.service_demand` when that module exists, else the same law on
  the scraped `process_cpu_seconds_total` and `reference_requests_total`, labelled so) gives
  X_max, compared with 1000 / burn-ms.
- `validate_contention`: a real `pitchey run` of closed-model concurrency steps against a
  contention-mode server; the USL is fitted (`collectors.models.capacity.fit_usl`) on every
  step but the highest, and the fitted curve and the latency model predict the highest step's
  throughput and p95, compared with what the run measured there.

Each returns a frozen result carrying the figures and the relative errors; nothing here
judges them (the test asserts, the benchmark prints).
"""

from __future__ import annotations

import importlib
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from collectors import load_run
from collectors.run import Run
from testing.reference_server import ReferenceConfig, ReferenceServer

__all__ = [
    "ContentionCheck",
    "DemandCheck",
    "burn_scenario",
    "contention_scenario",
    "measured_steps",
    "play",
    "relative_error",
    "run_burn",
    "run_contention",
    "validate_contention",
    "validate_demand",
]

SERVICE = "service"  # the scrape target name of a single-topology run
# The method is what is validated here, not how busy the shared machine is: the generator's
# self-check limits are relaxed (a saturated generator shows as a larger error instead).
_RELAXED = "self_check: {cpu_percent: 100, cpu_sustain: 1h, lag_p95: 1h, unreachable_ratio: 1}"


def relative_error(measured: float, truth: float) -> float:
    return abs(measured - truth) / abs(truth) if truth else math.inf


def burn_scenario(users: int, hold_s: float) -> str:
    """Closed model: `users` anonymous browsers with no think time, held `hold_s` seconds."""
    return f"""\
name: reference-burn
target: http://127.0.0.1:1
stages:
  - {{kind: hold, duration: {hold_s:g}s, users: {users}, rise: 1s}}
users:
  browser: {{weight: 1, think_time: 0s}}
regions: {{us-east: 1}}
{_RELAXED}
"""


def contention_scenario(levels: tuple[int, ...], hold_s: float) -> str:
    """Closed model: one hold stage per concurrency level, no think time."""
    stages = "\n".join([f"  - {{kind: hold, duration: {hold_s:g}s, users: {n}, rise: 1s}}"
                        for n in levels]
                       # a short tail, so that the highest step does not end with the run
                       + ["  - {kind: hold, duration: 3s, users: 1, rise: 1s}"])
    return f"""\
name: reference-contention
target: http://127.0.0.1:1
stages:
{stages}
users:
  browser: {{weight: 1, think_time: 0s}}
regions: {{us-east: 1}}
{_RELAXED}
"""


def play(scenario_text: str, host: str, workdir: Path, name: str) -> Run:
    """`pitchey run` (in process, as the CLI does) of a scenario against `host`."""
    from loadtests.orchestrator import RunOptions, run

    workdir.mkdir(parents=True, exist_ok=True)
    scenario = workdir / f"{name}.yaml"
    scenario.write_text(scenario_text)
    outcome = run(RunOptions(scenario=scenario, host=host, out=workdir / "runs"),
                  out=io.StringIO())
    if outcome.ended != "completed":
        raise RuntimeError(f"the run ended {outcome.ended!r}:\n{outcome.summary}")
    return load_run(outcome.run_dir)


# --- demand ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemandCheck:
    burn_ms: float
    x_max_true_rps: float
    x_max_rps: float
    demand_ms: float
    requests: int
    source: str  # which code computed the demand
    knee_rps: float | None
    run_dir: Path

    @property
    def error(self) -> float:
        return relative_error(self.x_max_rps, self.x_max_true_rps)


def _hold_window(run: Run, trim_s: float = 2.0) -> tuple[float, float]:
    """The seconds the run held its largest user count, minus `trim_s` at each end."""
    load = run.load.sort_values("t")
    held = load[load["users"] >= load["users"].max()]
    if held.empty:
        raise RuntimeError(f"{run.path}: no load time series")
    return float(held["t"].min()) + trim_s, float(held["t"].max()) - trim_s


def _scraped_delta(run: Run, metric: str, start: float, end: float) -> float:
    frame = run.service
    frame = frame[(frame["target"] == SERVICE) & (frame["metric"] == metric)].sort_values("t")
    inside = frame[(frame["t"] >= start) & (frame["t"] <= end)]
    if len(inside) < 2:
        raise RuntimeError(f"{run.path}: fewer than two {metric} samples in the window")
    return float(inside["value"].iloc[-1] - inside["value"].iloc[0])


def _suite_demand(run: Run, start: float, end: float) -> tuple[float, float, int] | None:
    """(x_max_rps, demand_ms, requests) of the "service" process from the suite's own model,
    or None while collectors.models.demand does not exist."""
    try:
        module: Any = importlib.import_module("collectors.models.demand")
    except ImportError:
        return None
    report = module.service_demand(run, start=start, end=end)
    process = next(p for p in report.processes if p.process == SERVICE)
    return float(process.x_max_rps), float(process.demand_ms), int(process.requests)


def _knee(run: Run, x_max: float) -> float | None:
    """The knee at the product's p95 target when the run has breakpoint steps and the
    model module provides them; None otherwise."""
    try:
        module: Any = importlib.import_module("collectors.models.capacity")
    except ImportError:
        return None
    if not hasattr(module, "breakpoint_steps") or not hasattr(module, "knee"):
        return None
    if not run.events_of("step"):
        return None
    from collectors.targets import PRODUCT_TARGETS

    found = module.knee(module.breakpoint_steps(run), PRODUCT_TARGETS.p95_ms)
    value = getattr(found, "throughput_rps", None)
    return float(value) if value is not None else None


def validate_demand(run: Run, config: ReferenceConfig) -> DemandCheck:
    """X_max of the burn-mode server as the suite reports it, over the run's hold."""
    start, end = _hold_window(run)
    suite = _suite_demand(run, start, end)
    if suite is not None:
        x_max, demand_ms, requests = suite
        source = "collectors.models.demand.service_demand"
    else:
        cpu_s = _scraped_delta(run, "process_cpu_seconds_total", start, end)
        done = _scraped_delta(run, "reference_requests_total", start, end)
        if done <= 0 or cpu_s <= 0:
            raise RuntimeError(f"{run.path}: no CPU or no requests in the window")
        demand_ms, requests = 1000.0 * cpu_s / done, int(done)
        x_max, source = 1000.0 / demand_ms, "scraped series (collectors.models.demand missing)"
    truth = 1000.0 / config.burn_ms
    return DemandCheck(config.burn_ms, truth, x_max, demand_ms, requests, source,
                       _knee(run, x_max), run.path)


def run_burn(workdir: Path, config: ReferenceConfig, *, users: int = 3,
             hold_s: float = 16.0) -> DemandCheck:
    with ReferenceServer(config, workdir) as server:
        run = play(burn_scenario(users, hold_s), server.url, workdir, "burn")
    return validate_demand(run, config)


# --- contention --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContentionCheck:
    held_out_users: float
    measured_rps: float
    predicted_rps: float
    truth_rps: float
    measured_p95_ms: float
    predicted_p95_ms: float
    sigma: float
    kappa: float
    steps: int
    run_dir: Path

    @property
    def throughput_error(self) -> float:
        return relative_error(self.predicted_rps, self.measured_rps)

    @property
    def p95_error(self) -> float:
        return relative_error(self.predicted_p95_ms, self.measured_p95_ms)


def measured_steps(run: Run, *, min_hold_s: int, settle_s: int) -> pd.DataFrame:
    """The run's concurrency steps with each step's throughput, mean and p95, from its merged
    HDR interval histograms."""
    from collectors.models.capacity import concurrency_steps

    steps = concurrency_steps(run.load, min_hold_s=min_hold_s, settle_s=settle_s)
    p95s, means, throughput = [], [], []
    # a step's last second may be cut short (the level changes, or the run stops, within it)
    steps = steps.assign(end=steps["end"] - 1.0, seconds=steps["seconds"] - 1)
    for row in steps.itertuples():
        hist = run.histogram(start=float(row.start), end=float(row.end))
        p95s.append(float(hist.quantile(0.95)))
        means.append(float(hist.mean_ms))
        # completed requests over the step's seconds (the load table's rps is Locust's
        # moving average, which lags a step change)
        throughput.append(hist.total / float(row.seconds))
    return steps.assign(throughput=throughput, p95_ms=p95s, mean_ms=means)


def validate_contention(run: Run, config: ReferenceConfig, *, min_hold_s: int = 6,
                        settle_s: int = 2) -> ContentionCheck:
    """USL and latency model fitted on every step but the highest, checked on the highest."""
    from collectors.models.capacity import fit_usl, latency_model
    from testing.reference_server import usl_truth

    steps = measured_steps(run, min_hold_s=min_hold_s, settle_s=settle_s).sort_values("users")
    if steps["users"].nunique() < 4:
        raise RuntimeError(f"{run.path}: {steps['users'].nunique()} concurrency steps, "
                           "4 are needed (3 to fit, 1 to check)")
    top = steps["users"].max()
    lower, held_out = steps[steps["users"] < top], steps[steps["users"] == top].iloc[0]
    fit = fit_usl(lower["users"].tolist(), lower["throughput"].tolist())
    model = latency_model(lower)
    n = np.array([float(top)])
    predicted_rps = float(fit.throughput(n)[0])
    predicted_p95_ms = float(model.p95(fit, n)[0]) * 1000.0
    return ContentionCheck(
        held_out_users=float(top), measured_rps=float(held_out["throughput"]),
        predicted_rps=predicted_rps, truth_rps=usl_truth(config, float(top))[0],
        measured_p95_ms=float(held_out["p95_ms"]), predicted_p95_ms=predicted_p95_ms,
        sigma=fit.sigma, kappa=fit.kappa, steps=len(steps), run_dir=run.path)


def run_contention(workdir: Path, config: ReferenceConfig, *,
                   levels: tuple[int, ...] = (1, 2, 4, 8, 16),
                   hold_s: float = 7.0) -> ContentionCheck:
    with ReferenceServer(config, workdir) as server:
        run = play(contention_scenario(levels, hold_s), server.url, workdir, "contention")
    return validate_contention(run, config)
