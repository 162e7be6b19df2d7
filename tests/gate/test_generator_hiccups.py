"""A latency breach the load generator's own hiccups could account for cannot be judged.

Issue 16: four workers, each with 107-125 ms loop stalls and a loop-lag p95 of 3.4 ms, were
judged valid while the gate failed asia's p95 above the server's truth. Here the workers are
simulated (`tests.loadtests.stalls`: the suite's own LagProbe sleeping through the stalls,
responses read when a stall ends), the run directory holds what they measured and the
hiccups the master recorded (`loadtests.selfcheck.generator_figures`), and the truth is the
service's own times of the same requests.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from collectors.hdr import Histogram
from collectors.run import load_run
from collectors.validity import Validity
from gate.evaluation import evaluate_run, record_verdict, spec_from_run
from gate.verdict import RunVerdict
from loadtests.selfcheck import generator_figures
from testing.rundirs import CellSpec, new_writer, scenario, write_seconds
from tests.loadtests.stalls import StalledWorker, stalled_worker

ASIA = ("asia", "GET /api/pitches", "investor")
EAST = ("us-east", "GET /api/pitches", "investor")
SECONDS = 60


def _workers(seed: int = 16, *, every_s: float = 4.0) -> list[StalledWorker]:
    rng = np.random.default_rng(seed)
    return [stalled_worker(rng, seconds=SECONDS, every_s=every_s) for _ in range(4)]


def _per_second(values: np.ndarray) -> list[np.ndarray]:
    """The values dealt out over the run's seconds (in order: each second a slice)."""
    return np.array_split(values, SECONDS)


def _write(tmp_path: Path, thresholds: list[object], cells: dict[tuple[str, str, str],
           np.ndarray], generator: dict[str, object] | None) -> Path:
    writer = new_writer(tmp_path, "stalls", scenario(thresholds, gate={"product_targets": False}))
    parts = {key: _per_second(values) for key, values in cells.items()}
    specs = {key: CellSpec(lambda second, rng, p=p: p[second]) for key, p in parts.items()}
    write_seconds(writer, specs, range(SECONDS), np.random.default_rng(0))
    extra = {"generator": generator} if generator is not None else None
    return writer.finish(Validity.ok(), summary_extra=extra)


def _hiccups(workers: list[StalledWorker]) -> Histogram:
    return Histogram.from_values_ms([v for w in workers for v in w.lag_values])


def _verdict(path: Path) -> RunVerdict:
    run = load_run(path)
    return evaluate_run(run, spec_from_run(run))


def test_a_breach_within_the_generators_hiccups_is_invalid(tmp_path: Path) -> None:
    workers = _workers()
    measured = np.concatenate([w.measured_ms for w in workers])
    true = np.concatenate([w.true_ms for w in workers])
    hiccups = _hiccups(workers)
    assert hiccups.quantile(0.95) < 5.0  # what the self-check looked at, and passed
    measured_p95 = Histogram.from_values_ms(measured).quantile(0.95)
    true_p95 = Histogram.from_values_ms(true).quantile(0.95)
    assert measured_p95 > true_p95 + 2  # the stalls pushed the measured p95 up
    limit = round((measured_p95 + true_p95) / 2, 1)  # the truth holds it, the measure breaks it
    path = _write(tmp_path, [{"scope": {"region": "asia"}, "check": f"p95 < {limit}ms"}],
                  {ASIA: measured}, generator_figures([], hiccups, {"asia": hiccups}))

    summary_generator = load_run(path).summary["generator"]  # type: ignore[index]
    assert summary_generator["hiccup_ms"]["p99"] > 20.0  # reported: the stalls show
    assert summary_generator["hiccup_ms"]["max"] >= 107.0

    verdict = _verdict(path)
    assert verdict.status == "invalid" and int(verdict.exit_code) == 3
    (check,) = verdict.checks
    assert not check.ok and check.measured == measured_p95
    assert check.generator_hiccup_ms is not None and check.generator_hiccup_ms > 0
    (reason,) = verdict.validity.reasons
    assert reason.startswith(f"p95 region=asia {measured_p95:.4g} ms breaches < {limit:.4g} ms,"
                             f" but the generator's own hiccups could account for it: ")
    assert f"late by {check.generator_hiccup_ms:.4g} ms or more" in reason
    assert f"max {hiccups.max_ms:.4g} ms" in reason
    assert reason.endswith("the breach may be the generator's")
    assert verdict.line.startswith("gate: INVALID (exit 3): the run cannot be judged: p95 ")
    assert RunVerdict.from_json(verdict.to_json()) == verdict
    recorded = record_verdict(path, verdict)
    assert recorded["verdict"]["checks"][0]["generator_hiccup_ms"] == check.generator_hiccup_ms
    assert recorded["generator"]["hiccup_ms"] == summary_generator["hiccup_ms"]


def test_a_breach_beyond_the_hiccups_is_the_services(tmp_path: Path) -> None:
    workers = _workers()
    measured = np.concatenate([w.measured_ms for w in workers])
    true_p95 = Histogram.from_values_ms(np.concatenate([w.true_ms for w in workers])
                                        ).quantile(0.95)
    hiccups = _hiccups(workers)
    limit = round(true_p95 - 30, 1)  # the service's own times break it by 30 ms
    path = _write(tmp_path, [f"p95 < {limit}ms"], {ASIA: measured},
                  generator_figures([], hiccups, {"asia": hiccups}))
    verdict = _verdict(path)
    assert verdict.status == "breach" and int(verdict.exit_code) == 1
    assert verdict.validity.valid and verdict.checks[0].generator_hiccup_ms is None


def test_only_the_hiccups_of_the_scopes_workers_count(tmp_path: Path) -> None:
    stalled = _workers()
    calm = _workers(seed=17, every_s=10_000.0)  # no stall within the run
    assert _hiccups(calm).max_ms < 5.0
    asia = np.concatenate([w.measured_ms for w in stalled])
    true_p95 = Histogram.from_values_ms(np.concatenate([w.true_ms for w in stalled])
                                        ).quantile(0.95)
    # a breach by more than the calm workers' largest hiccup (a few ms of scheduling noise)
    limit = round(true_p95 - 2, 1)
    assert Histogram.from_values_ms(asia).quantile(0.95) - limit > _hiccups(calm).max_ms
    east = np.concatenate([w.measured_ms for w in calm])
    both = _hiccups(stalled) + _hiccups(calm)
    scoped = [{"scope": {"region": "asia"}, "check": f"p95 < {limit}ms"}]
    # asia's requests were timed by calm workers, us-east's by the stalled ones: not judgeable
    # only if the breach is within the hiccups of the workers that timed it
    path = _write(tmp_path / "a", scoped, {ASIA: asia, EAST: east}, generator_figures(
        [], both, {"asia": _hiccups(calm), "us-east": _hiccups(stalled)}))
    assert _verdict(path).status == "breach"
    path = _write(tmp_path / "b", scoped, {ASIA: asia, EAST: east}, generator_figures(
        [], both, {"asia": _hiccups(stalled), "us-east": _hiccups(calm)}))
    assert _verdict(path).status == "invalid"


def test_a_run_without_recorded_hiccups_is_judged_as_before(tmp_path: Path) -> None:
    workers = _workers()
    measured = np.concatenate([w.measured_ms for w in workers])
    true_p95 = Histogram.from_values_ms(np.concatenate([w.true_ms for w in workers])
                                        ).quantile(0.95)
    limit = round((Histogram.from_values_ms(measured).quantile(0.95) + true_p95) / 2, 1)
    path = _write(tmp_path, [f"p95 < {limit}ms"], {ASIA: measured}, None)
    assert _verdict(path).status == "breach"
