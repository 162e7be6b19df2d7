"""W3C Trace Context `traceparent` values for the load generator (standard library only).

The load generator sets `traceparent` on a sample of requests; the service's parent-based
sampler follows the flag, so a sampled request's spans land in spans.jsonl (or OTLP) under the
trace id the generator chose and logged, and a slow sample can be followed into the service.
"""

from __future__ import annotations

import re
import secrets

__all__ = ["make_traceparent", "parse_traceparent", "trace_id_of"]

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def make_traceparent(sampled: bool) -> str:
    """A fresh `00-<trace id>-<parent id>-<flags>` header value; flags 01 when sampled."""
    trace_id = secrets.token_hex(16)
    while trace_id == "0" * 32:  # all-zero ids are invalid; astronomically unlikely
        trace_id = secrets.token_hex(16)
    span_id = secrets.token_hex(8)
    while span_id == "0" * 16:
        span_id = secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-{'01' if sampled else '00'}"


def parse_traceparent(value: str) -> tuple[str, str, bool] | None:
    """(trace id, parent span id, sampled) of a valid version-00 header, else None."""
    match = _TRACEPARENT.match(value.strip().lower())
    if match is None:
        return None
    trace_id, span_id, flags = match.groups()
    if trace_id == "0" * 32 or span_id == "0" * 16:
        return None
    return trace_id, span_id, bool(int(flags, 16) & 1)


def trace_id_of(value: str) -> str | None:
    """The trace id of a traceparent value (to log next to a slow sample), else None."""
    parsed = parse_traceparent(value)
    return parsed[0] if parsed else None
