"""What a run should have shown, computed from the reference target's own log (issue 16).

Shared by tests/integration/test_truth.py and benchmarks/bench_truth.py: two short real runs
of `pitchey run` against `testing.reference_target`, and the truth each one is held to.

- `closed_bimodal`: a closed model of the suite's own anonymous browsers (two regions, the real
  journeys, a POST among them) against a bimodal target (10 ms / 200 ms, 10 % slow) that
  fails a seeded 2 % of its answers. Truth: every response time the server logged (arrival
  to response sent), the requests it answered, the 500s it sent, the requests it found cut.
- `open_stall`: an open model (constant rate, one request per arrival, which carries its
  intended start in `X-Intended-Start`: `testing/truth_locustfile.py`) against a target that
  stalls completely for 2 s every 8 s. Truth besides: the corrected latency, response sent −
  intended start, for every arrival; the whole seconds in which the server sent nothing.

The server stamps `sent` just before the response leaves and `arrival` once the request is
read, so each logged time is at most what the client could measure for the same request: a
reported percentile is never below the truth (`lower_ok`), and the error above it is the
generator's own overhead (the loopback, its parsing, its loop).
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testing.reference_target import ReferenceTarget, ServedRecord, TargetConfig

__all__ = [
    "BIMODAL",
    "QUANTILES",
    "STALL",
    "STALL_RATE",
    "Comparison",
    "Played",
    "Truth",
    "closed_bimodal",
    "closed_bimodal_scenario",
    "compare",
    "count_problems",
    "exact_quantile",
    "label",
    "latency_comparisons",
    "open_stall",
    "open_stall_scenario",
    "play",
    "silent_seconds",
]

QUANTILES = (0.5, 0.95, 0.99)
BIMODAL = TargetConfig("bimodal", fast_ms=10.0, slow_ms=200.0, slow_share=0.1, fail_share=0.02)
STALL = TargetConfig("stall", delay_ms=10.0, stall_ms=2000.0, every_s=8.0)
STALL_RATE = 20.0  # arrivals per second in `open_stall`
LOCUSTFILE = Path(__file__).resolve().parent / "truth_locustfile.py"
# What these runs measure is the suite's accuracy, not how busy the shared machine is: the
# generator's self-check is relaxed (a busy generator shows as a larger error instead).
_RELAXED = "self_check: {cpu_percent: 100, cpu_sustain: 1h, lag_p95: 1h}"


def label(q: float) -> str:
    """0.95 -> "p95", 0.999 -> "p99.9" (summary.json's keys)."""
    return f"p{q * 100:g}"


def exact_quantile(values: Sequence[float], q: float) -> float:
    """HdrHistogram's percentile definition on exact values: the value at rank q × n (rounded
    half up, at least 1), as `collectors.hdr.Histogram.percentile` counts it."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(int(q * 100.0 * len(ordered) / 100.0 + 0.5), 1)
    return ordered[min(rank, len(ordered)) - 1]


def silent_seconds(records: Sequence[ServedRecord]) -> list[int]:
    """Whole epoch seconds, strictly between the first and the last response sent, in which the
    server sent no response at all (a row with 0 requests/s is what a run should show)."""
    sent = sorted(int(r.sent) for r in records if r.sent is not None)
    if len(sent) < 2:
        return []
    busy = set(sent)
    return [t for t in range(sent[0] + 1, sent[-1]) if t not in busy]


@dataclass(frozen=True)
class Truth:
    """What the server did, from its log."""

    records: tuple[ServedRecord, ...]

    @property
    def answered(self) -> list[ServedRecord]:
        return [r for r in self.records if r.sent is not None]

    @property
    def requests(self) -> int:
        """Responses the server sent (a run must count exactly these)."""
        return len(self.answered)

    @property
    def failures(self) -> int:
        return sum(r.failed for r in self.answered)

    @property
    def cut(self) -> int:
        """Requests whose client had gone before the answer (the run stopped with them)."""
        return len(self.records) - self.requests

    def response_ms(self, region: str | None = None) -> list[float]:
        return [r.response_ms for r in self.answered if r.response_ms is not None
                and (region is None or r.region == region)]

    def corrected_ms(self) -> list[float]:
        """Response sent − intended start, for every answered request that carried its plan."""
        return [(r.sent - r.intended) * 1000.0 for r in self.answered
                if r.sent is not None and r.intended is not None]

    def intended(self) -> list[float]:
        return sorted(r.intended for r in self.records if r.intended is not None)


@dataclass(frozen=True)
class Comparison:
    """One reported percentile against the truth."""

    what: str  # e.g. "p99", "asia p95", "corrected p99"
    measured_ms: float
    truth_ms: float

    @property
    def error(self) -> float:
        """Relative error, signed (+: reported above the truth)."""
        return (self.measured_ms - self.truth_ms) / self.truth_ms if self.truth_ms else math.inf

    def lower_ok(self, slack: float = 0.001) -> bool:
        """Never below the truth (HdrHistogram reports a bucket's highest value; `slack`
        absorbs the µs rounding)."""
        return self.measured_ms >= self.truth_ms * (1.0 - slack)

    def within(self, relative: float, absolute_ms: float) -> bool:
        """At or above the truth and at most `relative` × truth + `absolute_ms` above it."""
        return self.lower_ok() and (self.measured_ms - self.truth_ms
                                    <= relative * self.truth_ms + absolute_ms)

    def __str__(self) -> str:
        return (f"{self.what}: {self.measured_ms:.2f} ms reported, truth {self.truth_ms:.2f} ms "
                f"({self.error:+.2%})")


def compare(what: str, measured_ms: float, truth_values: Sequence[float], q: float) -> Comparison:
    return Comparison(what, float(measured_ms), exact_quantile(truth_values, q))


# --- the runs ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Played:
    """A finished run and the target's log."""

    run_dir: Path
    summary: dict[str, Any]
    console: str
    ended: str
    truth: Truth
    config: TargetConfig
    origin: float

    @property
    def load(self) -> Any:
        from collectors import load_run

        return load_run(self.run_dir).load


def closed_bimodal_scenario(seconds: int = 14, users: int = 12) -> str:
    return f"""\
name: truth-closed
target: http://127.0.0.1:1
stages:
  - {{kind: ramp, duration: 1s, users: {users}}}
  - {{kind: hold, duration: {max(seconds - 1, 1)}s}}
users:
  browser: {{weight: 1, think_time: 0.05s}}
regions: {{us-east: 1, asia: 1}}
warmup: 0s
gate: {{product_targets: false}}
{_RELAXED}
"""


def open_stall_scenario(seconds: int = 18, rate: float = STALL_RATE, pool: int = 80) -> str:
    return f"""\
name: truth-open
target: http://127.0.0.1:1
open_model:
  arrival: constant
  rate: {rate:g}
  duration: {seconds}s
  pool_users: {pool}
  pool_spawn_rate: {pool}
users:
  browser: {{weight: 1}}
regions: {{us-east: 1}}
warmup: 0s
gate: {{product_targets: false}}
{_RELAXED}
"""


def play(config: TargetConfig, scenario_text: str, workdir: Path, name: str, *,
         locustfile: Path | None = None) -> Played:
    """`pitchey run` (in process, as the CLI does) of `scenario_text` against a reference
    target in a child process (the test process's own work cannot delay its clock readings);
    the target's log is read once it holds no request."""
    from loadtests.orchestrator import RunOptions, run

    workdir.mkdir(parents=True, exist_ok=True)
    scenario = workdir / f"{name}.yaml"
    scenario.write_text(scenario_text)
    console = io.StringIO()
    extra: dict[str, Any] = {} if locustfile is None else {"locustfile": locustfile}
    with ReferenceTarget(config, child=True, log=workdir / f"{name}-served.jsonl") as target:
        outcome = run(RunOptions(scenario=scenario, host=target.url, out=workdir / "runs",
                                 **extra), out=console)
        target.settle(15.0)
        records = tuple(target.records())
        origin = target.origin
    summary = json.loads((Path(outcome.run_dir) / "summary.json").read_text())
    return Played(Path(outcome.run_dir), summary, console.getvalue(), str(outcome.ended),
                  Truth(records), config, origin)


def latency_comparisons(played: Played) -> list[Comparison]:
    """Every reported percentile the truth can check: p50/p95/p99 over the run, p50/p95 per
    region the server saw, and the open model's corrected p50/p95/p99 when requests carried
    their intended start."""
    truth, summary = played.truth, played.summary
    comparisons = [compare(label(q), summary["latency_ms"][label(q)], truth.response_ms(), q)
                   for q in QUANTILES]
    regions = sorted({r.region for r in truth.answered if r.region})
    if len(regions) > 1:
        for region in regions:
            figures = summary["by_region"][region]["latency_ms"]
            comparisons += [compare(f"{region} {label(q)}", figures[label(q)],
                                    truth.response_ms(region), q) for q in (0.5, 0.95)]
    corrected = truth.corrected_ms()
    if corrected:
        reported = summary["open_model"]["corrected_latency_ms"]
        comparisons += [compare(f"corrected {label(q)}", reported[label(q)], corrected, q)
                        for q in QUANTILES]
    return comparisons


def count_problems(played: Played) -> list[str]:
    """How the run's counts differ from the server's (none: exact): requests and failures
    what the server answered, cut requests those it found its client gone for (so requests +
    cut = every request that reached it)."""
    truth, summary = played.truth, played.summary
    problems = []
    if summary["requests"] != truth.requests:
        problems.append(f"requests {summary['requests']} reported, {truth.requests} answered")
    if summary["failures"] != truth.failures:
        problems.append(f"failures {summary['failures']} reported, {truth.failures} sent")
    if "cut_requests" not in summary:
        problems.append(f"no cut_requests in summary.json; the server saw {truth.cut} cut")
    elif summary["cut_requests"] != truth.cut:
        problems.append(f"cut requests {summary['cut_requests']} reported, the server found "
                        f"{truth.cut} clients gone")
    return problems


def closed_bimodal(workdir: Path, seconds: int = 14) -> Played:
    return play(BIMODAL, closed_bimodal_scenario(seconds), workdir, "closed-bimodal")


def open_stall(workdir: Path, seconds: int = 18) -> Played:
    return play(STALL, open_stall_scenario(seconds), workdir, "open-stall", locustfile=LOCUSTFILE)
