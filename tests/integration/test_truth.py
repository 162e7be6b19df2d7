"""What a run shows is what happened (issue 16), checked against the truth a reference target
computes from its own log (`testing.reference_target`, `testing.truth`).

The target first (its schedule, its log, its determinism), then two short real `pitchey run`s:

- closed model, bimodal target (10/200 ms, 2 % seeded 500s), two regions: p50/p95/p99, global
  and per region, against every response time the server logged; requests, failures and cut
  requests exactly as the server counted them;
- open model at 20 arrivals/s, target stalling 2 s every 8 s: the stall seconds appear as rows
  with 0 requests/s, the corrected latency (from each arrival's intended start) against
  response sent − intended start in the server's log, and the arrivals' plan itself.

Tolerances hold on a busy two-core machine: a reported percentile may never be below the
truth (the server's times are what the client measures, minus the loopback and the client's
own work), and may be above it by at most 5 % + 5 ms (the generator's overhead; measured errors
are in docs/loadtests.md, "How far to trust a run").
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from testing.reference_target import (
    INTENDED_HEADER,
    ReferenceTarget,
    TargetConfig,
    read_log,
    read_origin,
    stall_end,
    stall_windows,
)
from testing.truth import (
    STALL,
    STALL_RATE,
    Comparison,
    Played,
    Truth,
    closed_bimodal,
    count_problems,
    exact_quantile,
    label,
    latency_comparisons,
    open_stall,
    silent_seconds,
)

RELATIVE, ABSOLUTE_MS = 0.05, 5.0  # allowed above the truth on a busy 2-core machine


def _get(url: str, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:  # noqa: S310 - loopback
            reply.read()
            return int(reply.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


# --- the target itself -------------------------------------------------------------------------


def test_stall_schedule_starts_on_whole_seconds_after_the_first_period() -> None:
    config = TargetConfig("stall", delay_ms=10, stall_ms=2000, every_s=10)
    assert stall_windows(config, 100.0, 131.0) == [(110.0, 112.0), (120.0, 122.0),
                                                   (130.0, 132.0)]
    assert stall_end(config, 100.0, 105.0) is None  # before the first period ends
    assert stall_end(config, 100.0, 110.0) == 112.0
    assert stall_end(config, 100.0, 111.999) == 112.0
    assert stall_end(config, 100.0, 112.0) is None
    assert stall_windows(TargetConfig("fixed"), 100.0, 200.0) == []
    with pytest.raises(ValueError, match="shorter"):
        TargetConfig("stall", stall_ms=10_000, every_s=10)


def test_bimodal_draws_are_seeded_and_failures_are_500s() -> None:
    config = TargetConfig("bimodal", fast_ms=1, slow_ms=5, slow_share=0.3, fail_share=0.2,
                          seed=7)
    runs = []
    for _ in range(2):
        with ReferenceTarget(config) as target:
            statuses = [_get(target.url + f"/api/pitches/{i}") for i in range(60)]
            assert target.settle(5.0)
            records = target.records()
        assert [r.status for r in records] == statuses
        runs.append([(r.delay_ms, r.status) for r in records])
    assert runs[0] == runs[1]  # same seed, same delays and failures in arrival order
    delays = [d for d, _ in runs[0]]
    assert set(delays) == {1.0, 5.0} and 5 <= delays.count(5.0) <= 35
    assert 2 <= sum(s == 500 for _, s in runs[0]) <= 25
    assert all(r.response_ms is not None and r.response_ms >= r.delay_ms for r in records)


def test_a_request_in_a_stall_waits_for_its_end_and_the_log_says_so(tmp_path: Path) -> None:
    config = TargetConfig("stall", delay_ms=5, stall_ms=400, every_s=1)
    log = tmp_path / "served.jsonl"
    with ReferenceTarget(config, log=log) as target:
        windows = target.stalls(time.time() + 3)
        start, end = next(w for w in windows if w[0] > time.time() + 0.05)
        time.sleep(max(0.0, start + 0.1 - time.time()))  # 100 ms into a stall
        assert _get(target.url + "/x", {INTENDED_HEADER: "123.25"}) == 200
        assert _get(target.url + "/health") == 200  # not work: not logged, never stalled
        assert _get(target.url + "/metrics") == 200
        assert target.settle(5.0)
        records = target.records()
    assert read_origin(log) == target.origin == float(int(target.origin))
    assert read_log(log) == records
    assert len(records) == 1
    only = records[0]
    assert start <= only.arrival < end and only.intended == 123.25
    assert only.sent is not None and only.sent >= end + 0.005
    assert only.stall_ms == pytest.approx((end - only.arrival) * 1000, abs=15)
    assert only.response_ms == pytest.approx(only.stall_ms + 5, abs=15)


def test_a_client_that_leaves_before_the_answer_is_logged_as_cut() -> None:
    with ReferenceTarget(TargetConfig("fixed", delay_ms=300)) as target:
        port = int(target.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"GET /leaving HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(0.05)
        assert target.settle(5.0)
        records = target.records()
    assert [(r.path, r.sent) for r in records] == [("/leaving", None)]
    assert Truth(tuple(records)).cut == 1 and Truth(tuple(records)).requests == 0


def test_the_command_line_target_writes_its_port_and_log(tmp_path: Path) -> None:
    config = TargetConfig("fixed", delay_ms=20)
    with ReferenceTarget(config, child=True, log=tmp_path / "served.jsonl") as target:
        assert target.process is not None
        assert [_get(target.url + "/a") for _ in range(3)] == [200, 200, 200]
        assert target.settle(5.0)
    records = read_log(tmp_path / "served.jsonl")
    assert len(records) == 3 and all(r.delay_ms == 20 for r in records)
    assert all(20 <= (r.response_ms or 0) < 200 for r in records)
    assert target.process.poll() is not None  # stopped with the context


def test_truth_arithmetic() -> None:
    values = [float(v) for v in range(1, 101)]
    assert exact_quantile(values, 0.5) == 50.0 and exact_quantile(values, 0.99) == 99.0
    assert exact_quantile([3.0], 0.999) == 3.0
    assert label(0.5) == "p50" and label(0.999) == "p99.9"
    over = Comparison("p99", 103.0, 100.0)
    assert over.error == pytest.approx(0.03) and over.within(0.03, 0.5)
    assert not Comparison("p99", 99.0, 100.0).lower_ok()  # below the truth: impossible
    assert not Comparison("p99", 110.0, 100.0).within(0.03, 4.0)


# --- real runs ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def closed_run(tmp_path_factory: pytest.TempPathFactory) -> Played:
    return closed_bimodal(tmp_path_factory.mktemp("truth-closed"))


@pytest.fixture(scope="module")
def open_run(tmp_path_factory: pytest.TempPathFactory) -> Played:
    return open_stall(tmp_path_factory.mktemp("truth-open"))


def _check(comparisons: list[Comparison]) -> None:
    print("\n".join(str(c) for c in comparisons))
    wrong = [c for c in comparisons if not c.within(RELATIVE, ABSOLUTE_MS)]
    assert not wrong, "reported percentiles off the truth: " + "; ".join(map(str, wrong))


@pytest.mark.integration
@pytest.mark.timeout(90)
def test_closed_run_percentiles_match_the_servers_truth(closed_run: Played) -> None:
    assert closed_run.ended == "completed", closed_run.console
    assert closed_run.truth.requests > 800
    comparisons = latency_comparisons(closed_run)
    assert {c.what for c in comparisons} >= {"p50", "p95", "p99", "us-east p95", "asia p95"}
    for region in ("us-east", "asia"):
        assert (len(closed_run.truth.response_ms(region))
                == closed_run.summary["by_region"][region]["requests"])
    _check(comparisons)


@pytest.mark.integration
@pytest.mark.timeout(90)
def test_closed_run_counts_are_the_servers_exactly(closed_run: Played) -> None:
    assert closed_run.truth.failures > 0
    assert count_problems(closed_run) == []


@pytest.mark.integration
@pytest.mark.timeout(90)
def test_open_run_corrected_latency_matches_the_truth_over_intended_starts(
    open_run: Played,
) -> None:
    assert open_run.ended == "completed", open_run.console
    truth, summary = open_run.truth, open_run.summary
    # the plan itself: evenly spaced at the rate, as many arrivals as planned
    intended = truth.intended()
    gaps = [b - a for a, b in zip(intended, intended[1:], strict=False)]
    assert max(abs(g - 1 / STALL_RATE) for g in gaps) < 1e-6, "arrivals not evenly spaced"
    assert len(intended) == summary["open_model"]["arrivals_planned"]
    stalled = [r for r in truth.answered if r.stall_ms > 0]
    assert len(stalled) > 20, "no arrival met a stall"

    comparisons = latency_comparisons(open_run)
    assert {c.what for c in comparisons} >= {"p99", "corrected p95", "corrected p99"}
    _check(comparisons)
    # the stalls are in the corrected p99: a 2 s stall at 20/s puts ~1.9 s there
    assert summary["open_model"]["corrected_latency_ms"]["p99"] > 0.8 * STALL.stall_ms


@pytest.mark.integration
@pytest.mark.timeout(90)
def test_open_run_counts_and_cut_requests_are_the_servers(open_run: Played) -> None:
    assert count_problems(open_run) == []
    assert open_run.summary["failures"] == 0


@pytest.mark.integration
@pytest.mark.timeout(90)
def test_stall_seconds_are_rows_with_zero_requests(open_run: Played) -> None:
    silent = silent_seconds(open_run.truth.records)
    assert len(silent) >= 2, f"the target never stalled a whole second: {silent}"
    load = open_run.load
    rows = {int(t): float(rps) for t, rps in zip(load["t"], load["rps"], strict=True)}
    missing = [t for t in silent if t not in rows]
    assert not missing, (f"seconds in which the server sent nothing have no load row: "
                         f"{missing} (rows {sorted(rows)})")
    assert all(rows[t] == 0 for t in silent), {t: rows[t] for t in silent}
    # and the seconds around them: what the server sent is what the rows say
    sent_per_second: dict[int, int] = {}
    for record in open_run.truth.answered:
        assert record.sent is not None
        sent_per_second[int(record.sent)] = sent_per_second.get(int(record.sent), 0) + 1
    assert sum(rows.values()) == pytest.approx(sum(sent_per_second.values()), abs=0.5)
    print(json.dumps({"silent": silent, "rows": {t: rows[t] for t in sorted(rows)}}))
