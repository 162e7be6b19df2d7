"""The run's self-check: generator CPU, loop lag, unreachable targets."""

from __future__ import annotations

from collectors.hdr import Histogram
from loadtests.selfcheck import GeneratorSample, LagProbe, Limits, assess, longest_run_above


def samples(worker: str, cpus: list[float], start: float = 100.0) -> list[GeneratorSample]:
    return [GeneratorSample(start + i, worker, "asia", cpu, 1.0) for i, cpu in enumerate(cpus)]


def test_sustained_cpu_is_the_longest_stretch_at_or_above_the_limit() -> None:
    cpus = [50, 95, 96, 97, 40, 91, 92, 93, 94, 95, 20]
    assert longest_run_above(samples("w", cpus), 90) == 5
    gap = samples("w", [95, 95]) + samples("w", [95, 95], start=110.0)
    assert longest_run_above(gap, 90) == 2  # a gap in the samples breaks the stretch


def test_a_saturated_worker_makes_the_run_invalid() -> None:
    limits = Limits(cpu_percent=90, cpu_sustain_s=3)
    calm = samples("w1", [30] * 10)
    busy = samples("w2", [30, 95, 99, 97, 30])
    valid, reasons = assess(calm, Histogram(), limits, requests=100, unreachable=0)
    assert valid and reasons == ()
    valid, reasons = assess(calm + busy, Histogram(), limits, requests=100, unreachable=0)
    assert not valid
    assert reasons == ("load generator saturated: worker w2 (asia) CPU at or above 90% for "
                       "3 s (limit 3 s)",)


def test_loop_lag_counts_the_time_a_stall_lasted() -> None:
    probe = LagProbe(interval_s=0.05)
    for _ in range(60):
        probe.observe(0.051)  # 1 ms late
    probe.observe(0.55)  # one stall of 500 ms hides nine more probes
    values = probe.take()
    assert len(values) == 70 and max(values) == 500.0
    lag = Histogram.from_values_ms(values)
    assert lag.quantile(0.95) > 200  # >5% of the time the loop was that late
    valid, reasons = assess([], lag, Limits(lag_p95_ms=50), requests=10, unreachable=0)
    assert not valid and reasons[0].startswith("load generator lagging: scheduling lag p95")
    assert probe.take() == []


def test_an_unreachable_target_or_no_traffic_is_invalid() -> None:
    limits = Limits(unreachable_ratio=0.5)
    assert assess([], Histogram(), limits, requests=10, unreachable=6)[1] == (
        "target unreachable: 6 of 10 requests got no response (limit 50%)",)
    assert assess([], Histogram(), limits, requests=10, unreachable=5)[0]
    assert assess([], Histogram(), limits, requests=0, unreachable=0)[1] == (
        "no request completed: nothing was measured",)
