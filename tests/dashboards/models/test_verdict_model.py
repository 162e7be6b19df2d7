"""The headline verdict: six checks, each green, red or unknown with its number."""

from __future__ import annotations

from collectors.models.verdict import Measured, Targets, evaluate, measured_from_summary

GOOD = Measured(users_max=100_000, p95_ms=80.0, region_p95_ms={"us-east": 60.0, "asia": 95.0},
                error_rate=0.0005, requests=1e6, monthly_cost_usd=4000.0, valid=True)


def test_everything_met_passes() -> None:
    verdict = evaluate(GOOD)
    assert verdict.status == "PASS"
    assert verdict.check("p95_region").value == "95.0 ms (asia)"


def test_each_miss_fails_its_own_check() -> None:
    cases = {
        "users": Measured(**{**GOOD.__dict__, "users_max": 99_999}),
        "p95": Measured(**{**GOOD.__dict__, "p95_ms": 100.0}),
        "p95_region": Measured(**{**GOOD.__dict__, "region_p95_ms": {"asia": 130.0}}),
        "error_rate": Measured(**{**GOOD.__dict__, "error_rate": 0.002}),
        "cost": Measured(**{**GOOD.__dict__, "monthly_cost_usd": 5000.01}),
        "validity": Measured(**{**GOOD.__dict__, "valid": False,
                                "invalid_reasons": ("generator CPU 97%",)}),
    }
    for key, measured in cases.items():
        verdict = evaluate(measured)
        assert verdict.status == "FAIL", key
        assert [c.key for c in verdict.failed] == [key]
    assert evaluate(cases["validity"]).check("validity").detail == "generator CPU 97%"


def test_missing_data_is_incomplete_not_pass() -> None:
    verdict = evaluate(Measured())
    assert verdict.status == "INCOMPLETE"
    assert all(c.ok is None for c in verdict.checks)
    assert verdict.check("p95").value == "no data"


def test_targets_are_configurable() -> None:
    verdict = evaluate(GOOD, Targets(users=1000, p95_ms=50, error_rate=0.01, budget_usd=1e6))
    assert verdict.check("p95").ok is False
    assert verdict.check("users").ok is True


def test_measured_from_summary_reads_nested_latency() -> None:
    summary = {"users_max": 500, "requests": 1000, "error_rate": 0.01,
               "latency_ms": {"p95": 42.0},
               "by_region": {"europe": {"latency_ms": {"p95": 51.5}}, "asia": {"requests": 3}},
               "validity": {"valid": False, "reasons": ["lag"]}}
    m = measured_from_summary(summary, monthly_cost_usd=12.0)
    assert m.users_max == 500 and m.p95_ms == 42.0 and m.error_rate == 0.01
    assert m.region_p95_ms == {"europe": 51.5}
    assert m.valid is False and m.invalid_reasons == ("lag",)
    assert m.monthly_cost_usd == 12.0
