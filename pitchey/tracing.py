"""OpenTelemetry tracing, configured only by the standard OTEL_* variables.

Cost control: the sampling decision is made before any span object exists. A request with no
`traceparent` is sampled by a single random draw against the ratio; a request with one follows
its parent's sampled flag (parent-based samplers). Only sampled requests create spans, so an
unsampled request pays one dictionary lookup and one random number, not a span, a context
attach and an id generation. The SDK itself then records every span it is asked for
(ALWAYS_ON), which is what keeps the decision from being taken twice.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from contextvars import ContextVar, Token
from pathlib import Path
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from pitchey.settings import Settings

__all__ = ["Tracing", "JsonLinesSpanExporter"]

_PROPAGATOR = TraceContextTextMapPropagator()
# True inside a sampled request's server span. Child spans check this one C-level lookup
# instead of asking OpenTelemetry for the current span (several Python calls) on every
# cache or storage call of every unsampled request.
_SAMPLED: ContextVar[bool] = ContextVar("pitchey_request_sampled", default=False)


class JsonLinesSpanExporter(SpanExporter):
    """Writes each finished span as one JSON line (used when no OTLP endpoint is set)."""

    def __init__(self, path: str | Path) -> None:
        self._path = Path(path)
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = [json.dumps(json.loads(span.to_json(indent=None))) + "\n" for span in spans]
        with self._lock, self._path.open("a", encoding="utf-8") as handle:
            handle.writelines(lines)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


class _NoSpan:
    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info: object) -> None:
        return None


_NO_SPAN = _NoSpan()


class _CurrentSpan:
    """A started span made current for a `with` block, ended on exit: what the SDK's
    `start_as_current_span` does, without its three nested generator-based context managers
    (they were most of a sampled request's tracing cost). An exception leaving the block is
    recorded on the span, which is then marked as an error, as the SDK does."""

    __slots__ = ("_span", "_sampled", "_token", "_sampled_token")

    def __init__(self, span: Span, sampled: bool = False) -> None:
        self._span = span
        self._sampled = sampled
        self._token: object = None
        self._sampled_token: Token[bool] | None = None

    def __enter__(self) -> Span:
        if self._sampled:
            self._sampled_token = _SAMPLED.set(True)
        self._token = context_api.attach(trace.set_span_in_context(self._span))
        return self._span

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        span = self._span
        try:
            if exc is not None and span.is_recording():
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            span.end()
        finally:
            context_api.detach(self._token)  # type: ignore[arg-type]
            if self._sampled_token is not None:
                _SAMPLED.reset(self._sampled_token)


class Tracing:
    """The tracer provider plus the cheap per-request sampling decision."""

    def __init__(self, settings: Settings, exporter: SpanExporter | None = None) -> None:
        resource = Resource.create(
            {"service.name": settings.otel_service_name, "service.version": settings.version,
             "cloud.region": settings.region}
        )
        self.provider = TracerProvider(resource=resource, sampler=ALWAYS_ON)
        if exporter is not None:
            self.provider.add_span_processor(SimpleSpanProcessor(exporter))
        elif settings.otel_exporter_otlp_endpoint:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            # OTEL_EXPORTER_OTLP_ENDPOINT is the base URL; the signal path is appended (spec).
            endpoint = settings.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/traces"
            self.provider.add_span_processor(
                BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint))
            )
        elif settings.otel_spans_file:
            self.provider.add_span_processor(
                BatchSpanProcessor(JsonLinesSpanExporter(settings.otel_spans_file))
            )
        self.tracer = self.provider.get_tracer("pitchey")
        sampler = settings.otel_traces_sampler
        self.parent_based = sampler.startswith("parentbased_")
        base = sampler.removeprefix("parentbased_")
        if base == "always_on":
            self.ratio = 1.0
        elif base == "always_off":
            self.ratio = 0.0
        else:
            self.ratio = min(1.0, max(0.0, settings.otel_traces_sampler_arg))
        self._random = random.random

    def decide(self, headers: Mapping[str, str]) -> tuple[bool, Context | None]:
        """Whether this request is traced, and the remote parent context if it has one."""
        if "traceparent" not in headers:
            return self.draw(), None
        context = _PROPAGATOR.extract(headers)
        parent = trace.get_current_span(context).get_span_context()
        if self.parent_based and parent.is_valid:
            return parent.trace_flags.sampled, context
        return self._random() < self.ratio, context

    def draw(self) -> bool:
        """The head-sampling draw for a request without a parent."""
        return self._random() < self.ratio

    def start_server_span(
        self, name: str, context: Context | None, attributes: Mapping[str, Any]
    ) -> AbstractContextManager[Span]:
        """The server span of a sampled request, made current; child spans are recorded
        inside it."""
        span = self.tracer.start_span(name, context=context, kind=SpanKind.SERVER,
                                      attributes=attributes)
        return _CurrentSpan(span, sampled=True)

    def recording(self) -> bool:
        """Whether the current request is sampled (child spans would be recorded)."""
        return _SAMPLED.get()

    def span(
        self, name: str, kind: SpanKind = SpanKind.INTERNAL, **attributes: Any
    ) -> AbstractContextManager[Span | None]:
        """A child span of the current request's span, or nothing when it is not sampled.

        The unsampled case returns one shared no-op object: no generator, no span."""
        if not _SAMPLED.get():
            return _NO_SPAN
        return _CurrentSpan(self.tracer.start_span(name, kind=kind, attributes=attributes))

    def shutdown(self) -> None:
        self.provider.shutdown()
