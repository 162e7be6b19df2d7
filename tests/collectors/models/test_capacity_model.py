"""The capacity model: response time law, USL fit, steps from a run, sizing."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from collectors.models.capacity import (
    CapacityError,
    LatencyModel,
    WhatIf,
    concurrency_steps,
    fit_usl,
    latency_model,
    plan_capacity,
    response_time_for,
    throughput_for,
    users_for,
    usl_throughput,
)

TRUE_SIGMA, TRUE_KAPPA, TRUE_LAMBDA = 0.03, 2e-4, 12.0
STEPS = np.array([1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128], dtype=float)


def noisy_usl(noise: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    clean = usl_throughput(STEPS, TRUE_SIGMA, TRUE_KAPPA, TRUE_LAMBDA)
    return clean * (1.0 + rng.normal(0.0, noise, STEPS.size))


def test_response_time_law_reference_worked_check() -> None:
    # cloud-pricing.md: 100,000 users, 5 s think, 100 ms response -> about 19,600 requests/s
    x = throughput_for(100_000, 0.1, 5.0)
    assert x == pytest.approx(100_000 / 5.1)
    assert round(x, -2) == 19_600
    assert users_for(x, 0.1, 5.0) == pytest.approx(100_000)
    assert response_time_for(100_000, x, 5.0) == pytest.approx(0.1)


def test_response_time_law_rejects_impossible_inputs() -> None:
    with pytest.raises(CapacityError):
        throughput_for(10, 0.0, 0.0)
    with pytest.raises(CapacityError):
        response_time_for(10, 0.0, 1.0)


def test_usl_fit_recovers_known_parameters_exactly_without_noise() -> None:
    fit = fit_usl(STEPS, usl_throughput(STEPS, TRUE_SIGMA, TRUE_KAPPA, TRUE_LAMBDA))
    assert fit.sigma == pytest.approx(TRUE_SIGMA, rel=1e-4)
    assert fit.kappa == pytest.approx(TRUE_KAPPA, rel=1e-3)
    assert fit.lam == pytest.approx(TRUE_LAMBDA, rel=1e-5)
    assert fit.r_squared == pytest.approx(1.0)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_usl_fit_with_noise_has_intervals_that_cover_the_truth(seed: int) -> None:
    fit = fit_usl(STEPS, noisy_usl(0.02, seed))
    assert fit.sigma_ci is not None and fit.kappa_ci is not None and fit.lam_ci is not None
    assert TRUE_SIGMA in fit.sigma_ci
    assert TRUE_KAPPA in fit.kappa_ci
    assert TRUE_LAMBDA in fit.lam_ci
    # the intervals are informative, not the whole parameter range
    assert fit.lam_ci.high - fit.lam_ci.low < TRUE_LAMBDA * 0.35
    assert fit.peak_users == pytest.approx(math.sqrt((1 - TRUE_SIGMA) / TRUE_KAPPA), rel=0.25)


def test_usl_intervals_narrow_with_less_noise() -> None:
    wide = fit_usl(STEPS, noisy_usl(0.05, 7))
    narrow = fit_usl(STEPS, noisy_usl(0.005, 7))
    assert wide.sigma_ci and narrow.sigma_ci
    assert (narrow.sigma_ci.high - narrow.sigma_ci.low) < (wide.sigma_ci.high - wide.sigma_ci.low)


def test_usl_fit_needs_three_distinct_steps() -> None:
    with pytest.raises(CapacityError, match="at least 3 distinct"):
        fit_usl([10, 10, 20], [100, 101, 180])
    with pytest.raises(CapacityError, match="positive"):
        fit_usl([1, 2, 3], [1.0, 0.0, 2.0])


def test_three_steps_fit_but_have_no_interval() -> None:
    n = [1.0, 10.0, 50.0]
    fit = fit_usl(n, usl_throughput(n, 0.05, 1e-3, 5.0))
    assert fit.sigma_ci is None  # zero degrees of freedom


def plateau_load(levels: list[int], hold: int, rps_per_user: float) -> pd.DataFrame:
    rows = []
    t = 1_700_000_000.0
    for users in levels:
        for _ in range(hold):
            rows.append({"t": t, "users": users, "rps": users * rps_per_user,
                         "failures_per_s": 0.0})
            t += 1.0
    return pd.DataFrame(rows)


def test_concurrency_steps_finds_plateaus_and_skips_settling() -> None:
    load = plateau_load([10, 20, 40, 5], hold=30, rps_per_user=0.5)
    steps = concurrency_steps(load, min_hold_s=10, settle_s=5)
    assert steps["users"].tolist() == [10, 20, 40, 5]
    assert steps["seconds"].tolist() == [25, 25, 25, 25]
    assert steps["throughput"].tolist() == pytest.approx([5.0, 10.0, 20.0, 2.5])


def test_concurrency_steps_bins_a_pure_ramp() -> None:
    t = np.arange(200, dtype=float)
    load = pd.DataFrame({"t": t, "users": (t + 1).astype(int), "rps": (t + 1) * 0.2,
                         "failures_per_s": 0.0})
    steps = concurrency_steps(load, ramp_bins=8)
    assert len(steps) == 8
    assert steps["users"].is_monotonic_increasing


def test_concurrency_steps_without_load_data_explains() -> None:
    with pytest.raises(CapacityError, match="load.parquet"):
        concurrency_steps(pd.DataFrame())


def synthetic_steps(think_s: float, p95_ratio: float) -> pd.DataFrame:
    x = usl_throughput(STEPS, TRUE_SIGMA, TRUE_KAPPA, TRUE_LAMBDA)
    mean_s = STEPS / x - think_s
    return pd.DataFrame({"users": STEPS, "throughput": x, "mean_ms": mean_s * 1000,
                         "p95_ms": mean_s * 1000 * p95_ratio})


def test_latency_model_reads_back_think_time_and_tail_ratio() -> None:
    think = 1.0 / TRUE_LAMBDA - 0.02  # one user: 20 ms response + think
    model = latency_model(synthetic_steps(think, 2.5))
    assert model.think_eff_s == pytest.approx(think, rel=1e-6)
    assert model.p95_ratio == pytest.approx(2.5)


def test_plan_capacity_scales_with_users_and_meets_the_target() -> None:
    think = 1.0 / TRUE_LAMBDA - 0.02
    fit = fit_usl(STEPS, noisy_usl(0.01, 4))
    model = latency_model(synthetic_steps(think, 2.0))
    small = plan_capacity(fit, model, WhatIf(users=10_000, think_time_s=30, p95_target_ms=100,
                                             headroom=0.0))
    big = plan_capacity(fit, model, WhatIf(users=100_000, think_time_s=30, p95_target_ms=100,
                                           headroom=0.0))
    assert small.passes and big.passes
    assert small.instances is not None and big.instances is not None
    assert big.instances > small.instances
    assert big.required_rps == pytest.approx(small.required_rps * 10)
    assert big.per_instance_rps is not None
    assert big.instances == math.ceil(big.required_rps / big.per_instance_rps)
    # the operating point really meets the target
    assert big.per_instance_users is not None
    assert float(model.p95(fit, np.array([big.per_instance_users]))[0]) <= 0.1 + 1e-9
    assert big.instances_ci is not None
    assert big.instances_ci.low <= big.instances <= big.instances_ci.high
    # required throughput is the response time law at the modelled response time
    assert big.required_rps == pytest.approx(100_000 / (big.response_s + 30))


def test_headroom_adds_instances() -> None:
    think = 1.0 / TRUE_LAMBDA - 0.02
    fit = fit_usl(STEPS, usl_throughput(STEPS, TRUE_SIGMA, TRUE_KAPPA, TRUE_LAMBDA))
    model = latency_model(synthetic_steps(think, 2.0))
    base = plan_capacity(fit, model, WhatIf(headroom=0.0))
    spare = plan_capacity(fit, model, WhatIf(headroom=0.5))
    assert base.instances and spare.instances
    assert spare.per_instance_rps is not None
    assert spare.instances == math.ceil(spare.required_rps * 1.5 / spare.per_instance_rps)
    assert spare.instances > base.instances


def test_unattainable_p95_target_fails_with_a_reason() -> None:
    fit = fit_usl(STEPS, usl_throughput(STEPS, TRUE_SIGMA, TRUE_KAPPA, TRUE_LAMBDA))
    model = LatencyModel(think_eff_s=0.05, p95_ratio=2.0, min_response_s=0.03)
    plan = plan_capacity(fit, model, WhatIf(p95_target_ms=10))
    assert not plan.passes
    assert plan.instances is None
    assert "below one instance's p95" in plan.reasons[0]


def test_what_if_rejects_nonsense() -> None:
    with pytest.raises(CapacityError):
        WhatIf(users=0)
    with pytest.raises(CapacityError):
        WhatIf(headroom=-0.1)
