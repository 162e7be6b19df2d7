from __future__ import annotations

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pitchey.runtime import RuntimeStats
from pitchey.settings import Settings
from pitchey.tracing import Tracing

SAMPLED_PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
UNSAMPLED_PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"


def test_recent_window_counts_only_the_last_minute() -> None:
    now = [0.0]
    stats = RuntimeStats(clock=lambda: now[0], window_s=60)
    for i in range(100):
        now[0] = i * 0.5
        stats.record(0.001 * (i + 1), error=(i % 10 == 0))
    recent = stats.recent()
    assert recent.requests == 100 and recent.errors == 10
    assert recent.p95_ms is not None and 94.0 <= recent.p95_ms <= 96.0
    now[0] = 200.0
    assert stats.recent().requests == 0


def test_parent_based_sampling_follows_the_traceparent_flag() -> None:
    tracing = Tracing(Settings(otel_traces_sampler="parentbased_traceidratio",
                               otel_traces_sampler_arg=0.0))
    assert tracing.decide({})[0] is False
    assert tracing.decide({"traceparent": SAMPLED_PARENT})[0] is True
    assert tracing.decide({"traceparent": UNSAMPLED_PARENT})[0] is False


def test_ratio_sampling_samples_about_the_ratio() -> None:
    tracing = Tracing(Settings(otel_traces_sampler="traceidratio", otel_traces_sampler_arg=0.25))
    sampled = sum(tracing.decide({})[0] for _ in range(20_000))
    assert 4_400 < sampled < 5_600


def test_child_spans_exist_only_under_a_sampled_request() -> None:
    exporter = InMemorySpanExporter()
    tracing = Tracing(Settings(otel_traces_sampler="always_on"), exporter=exporter)
    with tracing.span("db.query") as nothing:
        assert nothing is None
    traced, parent = tracing.decide({"traceparent": SAMPLED_PARENT})
    assert traced
    with tracing.start_server_span("GET /api/pitches", parent, {}):
        with tracing.span("db.query", db_operation="select") as child:
            assert child is not None
    names = {span.name: span for span in exporter.get_finished_spans()}
    assert set(names) == {"GET /api/pitches", "db.query"}
    server = names["GET /api/pitches"]
    assert server.context.trace_id == int("0af7651916cd43dd8448eb211c80319c", 16)
    assert names["db.query"].parent is not None
    assert names["db.query"].parent.span_id == server.context.span_id
    tracing.shutdown()
