"""traceparent values the load generator sends, followed into the service's spans."""

from __future__ import annotations

from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from collectors import Validity, load_run
from collectors.tracecontext import make_traceparent, parse_traceparent, trace_id_of
from testing.rundirs import new_writer


def test_values_are_valid_and_fresh() -> None:
    sampled, unsampled = make_traceparent(True), make_traceparent(False)
    assert sampled.endswith("-01") and unsampled.endswith("-00")
    parsed = parse_traceparent(sampled)
    assert parsed is not None and parsed[2] is True and len(parsed[0]) == 32
    assert make_traceparent(True) != sampled
    assert parse_traceparent("00-" + "0" * 32 + "-" + "1" * 16 + "-01") is None
    assert parse_traceparent("garbage") is None and trace_id_of("x") is None


def test_opentelemetry_propagator_accepts_them() -> None:
    for sampled in (True, False):
        header = make_traceparent(sampled)
        context = TraceContextTextMapPropagator().extract({"traceparent": header})
        from opentelemetry import trace

        span_context = trace.get_current_span(context).get_span_context()
        assert span_context.is_valid and span_context.is_remote
        assert f"{span_context.trace_id:032x}" == trace_id_of(header)
        assert span_context.trace_flags.sampled is sampled


def test_a_sampled_request_is_found_in_spans_jsonl(tmp_path: Path) -> None:
    from pitchey.tracing import JsonLinesSpanExporter

    writer = new_writer(tmp_path)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(writer.path /
                                                                          "spans.jsonl")))
    tracer = provider.get_tracer("test")
    header = make_traceparent(True)
    parent = TraceContextTextMapPropagator().extract({"traceparent": header})
    with tracer.start_as_current_span("GET /api/pitches", context=parent):
        with tracer.start_as_current_span("db.select"):
            pass
    with tracer.start_as_current_span("unrelated"):
        pass
    provider.shutdown()
    run = load_run(writer.finish(Validity.ok()))
    names = sorted(span["name"] for span in run.trace(trace_id_of(header) or ""))
    assert names == ["GET /api/pitches", "db.select"]
    assert len(list(run.spans())) == 3
