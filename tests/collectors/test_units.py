"""collectors.units, the suite's one vocabulary: what each parser reads, what it refuses and how
it says so, and that every reader of quantities (scenario, gate, alert spec, dashboard) agrees."""

from __future__ import annotations

import pytest
import yaml

from alerts.specload import parse_spec
from alerts.yamlload import SpecError
from collectors.units import (
    UnitError,
    format_duration,
    format_prometheus_duration,
    parse_count,
    parse_duration_s,
    parse_fraction,
    parse_latency_ms,
    parse_number,
    parse_prometheus_duration_ms,
    parse_rate_per_s,
    parse_size_bytes,
)
from dashboards.data import think_time_s
from gate.thresholds import ThresholdError, parse_duration, parse_gate_spec
from loadtests.scenario import ScenarioError, parse_scenario


@pytest.mark.parametrize(("value", "seconds"), [
    ("1h30m", 5400.0), ("1m30s", 90.0), ("250ms", 0.25), ("2.5s", 2.5), ("1h 30m", 5400.0),
    ("90", 90.0), (90, 90.0), (0.5, 0.5), ("0", 0.0), ("1500us", 0.0015), ("1500µs", 0.0015),
    ("1.5h", 5400.0), (" 2 s ", 2.0), ("1e3ms", 1.0), ("1h0m1s", 3601.0),
])
def test_durations_in_seconds(value: object, seconds: float) -> None:
    assert parse_duration_s(value) == pytest.approx(seconds)


@pytest.mark.parametrize(("value", "token", "phrase"), [
    ("-1s", "-1", "is negative"),
    ("ten", "ten", "'ten' is not a duration"),
    ("5d", "d", "unit 'd' of duration '5d' is not a time unit"),
    ("30s1m", "s1m", "several largest first"),
    ("1m1m", "m1m", "not a time unit"),
    ("", "", "'' is not a duration"),
    (True, "True", "True is not a duration"),
    (None, "None", "None is not a duration"),
    (float("nan"), "nan", "not a finite number"),
])
def test_a_bad_duration_names_the_text_and_the_token(value: object, token: str,
                                                      phrase: str) -> None:
    with pytest.raises(UnitError) as caught:
        parse_duration_s(value)
    assert isinstance(caught.value, ValueError)
    assert caught.value.token == token and phrase in str(caught.value)


def test_latencies_in_milliseconds() -> None:
    assert parse_latency_ms("100ms") == 100.0
    assert parse_latency_ms("0.3ms") == 0.3  # exact: milliseconds are not a round trip via s
    assert parse_latency_ms("1.5s") == 1500.0
    assert parse_latency_ms("1500us") == pytest.approx(1.5)
    assert parse_latency_ms(80) == parse_latency_ms("80") == 80.0  # bare: milliseconds
    with pytest.raises(UnitError, match="'100' needs a time unit: write 100ms or 100s") as bare:
        parse_latency_ms("100", bare=False)
    assert bare.value.token == "100"
    with pytest.raises(UnitError, match="unit '%' of p95 '5%' is not a time unit") as unit:
        parse_latency_ms("5%", what="p95")
    assert unit.value.token == "%"


@pytest.mark.parametrize(("text", "ms"), [
    ("0", 0), ("0s", 0), ("250ms", 250), ("90s", 90_000), ("1h30m", 5_400_000),
    ("2d", 172_800_000), ("1w", 604_800_000), ("1y", 31_536_000_000), ("1d2h3m4s5ms", 93_784_005),
])
def test_prometheus_durations_are_whole_milliseconds_and_format_back(text: str, ms: int) -> None:
    assert parse_prometheus_duration_ms(text) == ms
    assert parse_prometheus_duration_ms(format_prometheus_duration(ms)) == ms


def test_prometheus_spelling() -> None:
    assert [format_prometheus_duration(ms) for ms in (0, 1, 1000, 90_000, 5_400_000,
                                                       604_800_000, 93_784_005)] \
        == ["0s", "1ms", "1s", "1m30s", "1h30m", "7d", "1d2h3m4s5ms"]
    with pytest.raises(UnitError, match="negative duration"):
        format_prometheus_duration(-1)


@pytest.mark.parametrize(("value", "phrase"), [
    ("5 minutes", "'5 minutes' is not a duration"),
    ("1.5h", "whole numbers"),
    ("30s1m", "largest first"),
    (5, "5 has no unit (write e.g. 5s)"),
    ("", "is not a duration"),
    (1.5, "is not a duration"),
])
def test_prometheus_durations_refused(value: object, phrase: str) -> None:
    with pytest.raises(UnitError, match=phrase.replace("(", r"\(").replace(")", r"\)")):
        parse_prometheus_duration_ms(value)


def test_human_duration_format() -> None:
    assert [format_duration(s) for s in (0, 5.4, 65, 3600, 5400)] \
        == ["0s", "5s", "1m05s", "1h00m00s", "1h30m00s"]


def test_percentages_and_fractions() -> None:
    assert parse_fraction("0.1%") == pytest.approx(0.001)
    assert parse_fraction("95%") == pytest.approx(0.95)
    assert parse_fraction(0.1) == parse_fraction("0.1") == 0.1
    assert parse_fraction("150%") == pytest.approx(1.5)  # a margin may exceed 100 %
    with pytest.raises(UnitError, match="is outside 0-100%"):
        parse_fraction("150%", at_most_one=True)
    with pytest.raises(UnitError, match="write 3% for a percentage") as bare:
        parse_fraction(3)
    assert bare.value.token == "3"
    with pytest.raises(UnitError, match="unit 'ms' does not apply to error_rate"):
        parse_fraction("1ms", what="error_rate")
    with pytest.raises(UnitError, match="'lots' is not a percentage"):
        parse_fraction("lots")


def test_counts_rates_and_numbers() -> None:
    assert parse_count("100_000") == parse_count("100,000") == parse_count("100k") == 100_000
    assert parse_count("2M") == 2_000_000
    assert parse_rate_per_s("1.5k/s") == parse_rate_per_s("1500") == 1500.0
    assert parse_number("1e3") == 1000.0
    with pytest.raises(UnitError, match="unit 'x' does not apply to users") as caught:
        parse_count("10x", what="users")
    assert caught.value.token == "x"
    with pytest.raises(UnitError, match="'1,5' is not a number"):
        parse_number("1,5")


@pytest.mark.parametrize(("value", "size"), [
    (512, 512), ("512", 512), ("512B", 512), ("64MB", 64_000_000), ("64MiB", 64 * 2**20),
    ("64Mi", 64 * 2**20), ("1GiB", 2**30), ("1.5KiB", 1536), ("2 kb", 2000), ("1TB", 10**12),
])
def test_sizes_in_bytes(value: object, size: int) -> None:
    assert parse_size_bytes(value) == size


@pytest.mark.parametrize(("value", "phrase"), [
    ("64XB", "unit 'XB' is not a size unit"), ("0.5B", "not a whole number of bytes"),
    ("-1MB", "is negative"), ("big", "'big' is not a size"),
])
def test_sizes_refused(value: object, phrase: str) -> None:
    with pytest.raises(UnitError, match=phrase):
        parse_size_bytes(value)


SCENARIO = """
name: long-warmup
stages:
  - {kind: ramp, duration: 2h, users: 10}
users:
  browser: {weight: 1, think_time: 1m30s}
warmup: WARMUP
thresholds:
  - {check: "p95 < 1.5s", grace: 1m30s}
"""


def test_a_scenario_warmup_of_1h30m_loads_and_the_gate_reads_5400_s() -> None:
    text = SCENARIO.replace("WARMUP", "1h30m")
    scenario = parse_scenario(text, source="long.yaml")
    assert scenario.warmup == 5400.0
    for written in (yaml.safe_load(text), scenario.to_json()):  # as written; as run (manifest)
        spec = parse_gate_spec(written, source="long.yaml")
        assert spec.warmup_s == 5400.0
        assert spec.thresholds[0].limit == 1500.0 and spec.thresholds[0].grace_s == 90.0


@pytest.mark.parametrize("text", ["1h30m", "1m30s", "250ms", "2.5s", "90", "1h 30m", "1500us"])
def test_scenario_gate_and_dashboard_read_every_duration_alike(text: str) -> None:
    seconds = parse_duration_s(text)
    scenario = parse_scenario(SCENARIO.replace("WARMUP", f'"{text}"'), source="s.yaml")
    assert scenario.warmup == pytest.approx(seconds)
    assert parse_gate_spec({"warmup": text}).warmup_s == pytest.approx(seconds)
    assert parse_duration(text, where="x") == pytest.approx(seconds)
    assert think_time_s({"think_time": text}) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["soon", "5d", "-1s", "30s1m"])
def test_scenario_and_gate_refuse_the_same_durations(text: str) -> None:
    with pytest.raises(ScenarioError, match=r"s\.yaml:7: warmup: "):
        parse_scenario(SCENARIO.replace("WARMUP", f'"{text}"'), source="s.yaml")
    with pytest.raises(ThresholdError, match="^x: "):
        parse_duration(text, where="x")
    assert think_time_s({"think_time": text}) is None


@pytest.mark.parametrize(("text", "ms"), [("1h30m", 5_400_000), ("250ms", 250),
                                         ("2d", 172_800_000)])
def test_the_alert_spec_reads_prometheus_durations_from_the_same_module(text: str,
                                                                       ms: int) -> None:
    spec = parse_spec(f"version: 1\nevaluation_interval: {text}\n", "spec.yaml")
    assert spec.evaluation_interval_ms == parse_prometheus_duration_ms(text) == ms
    with pytest.raises(SpecError, match=r"spec\.yaml:2: key 'evaluation_interval': '1\.5h' is "
                                        "not a duration"):
        parse_spec("version: 1\nevaluation_interval: 1.5h\n", "spec.yaml")
