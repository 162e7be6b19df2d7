"""Alertmanager's webhook payload (version "4"): building it, and reading one safely.

Fingerprints and group keys are computed exactly as Alertmanager does (FNV-1a 64 over the
sorted label names and values, `{route}:{labels}` keys), so a receiver de-duplicating on
(groupKey, fingerprint, status, startsAt) treats our notifier and a real Alertmanager alike.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "ZERO_TIME",
    "NotifiableAlert",
    "PayloadError",
    "ReceivedAlert",
    "ReceivedNotification",
    "fingerprint",
    "format_time",
    "group_key",
    "label_set_text",
    "notification_payload",
    "parse_notification",
]

ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time: "no end yet"
_FNV_OFFSET = 14695981039346656037
_FNV_PRIME = 1099511628211
_MASK = (1 << 64) - 1
_SEPARATOR = 0xFF


def _fnv_add(h: int, data: bytes) -> int:
    for byte in data:
        h = ((h ^ byte) * _FNV_PRIME) & _MASK
    return h


def fingerprint(labels: Mapping[str, str]) -> str:
    """prometheus/common model.LabelSet.Fingerprint(), as 16 hex digits."""
    h = _FNV_OFFSET
    for name in sorted(labels):
        h = _fnv_add(h, name.encode())
        h = _fnv_add(h, bytes([_SEPARATOR]))
        h = _fnv_add(h, str(labels[name]).encode())
        h = _fnv_add(h, bytes([_SEPARATOR]))
    return f"{h:016x}"


def _go_quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def label_set_text(labels: Mapping[str, str]) -> str:
    """model.LabelSet.String(): `{a="1", b="2"}`."""
    return "{" + ", ".join(sorted(f"{k}={_go_quote(v)}" for k, v in labels.items())) + "}"


def group_key(group_labels: Mapping[str, str], route_key: str = "{}") -> str:
    """Alertmanager's group key for the root route: `{}:{alertname="X"}`."""
    return f"{route_key}:{label_set_text(group_labels)}"


def format_time(epoch_s: float | None) -> str:
    """RFC 3339 with the fraction trimmed, as Go writes it; None is Go's zero time."""
    if epoch_s is None:
        return ZERO_TIME
    moment = datetime.fromtimestamp(epoch_s, UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S.%f").rstrip("0").rstrip(".")
    return text + "Z"


@dataclass(frozen=True)
class NotifiableAlert:
    """An alert as the notifier holds it: open while `ends_at` is None or in the future."""

    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: float
    ends_at: float | None = None
    generator_url: str = ""

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.labels)

    def resolved(self, now: float) -> bool:
        return self.ends_at is not None and self.ends_at <= now

    def to_json(self, now: float) -> dict[str, Any]:
        return {
            "status": "resolved" if self.resolved(now) else "firing",
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "startsAt": format_time(self.starts_at),
            "endsAt": format_time(self.ends_at if self.resolved(now) else None),
            "generatorURL": self.generator_url,
            "fingerprint": self.fingerprint,
        }


def _common(maps: Sequence[Mapping[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    shared = dict(maps[0])
    for other in maps[1:]:
        shared = {k: v for k, v in shared.items() if other.get(k) == v}
    return shared


def notification_payload(key: str, receiver: str, group_labels: Mapping[str, str],
                         alerts: Sequence[NotifiableAlert], now: float,
                         external_url: str = "") -> dict[str, Any]:
    """The JSON body Alertmanager's webhook integration posts (version 4)."""
    ordered = sorted(alerts, key=lambda a: label_set_text(a.labels))
    firing = any(not a.resolved(now) for a in ordered)
    return {
        "version": "4",
        "groupKey": key,
        "truncatedAlerts": 0,
        "status": "firing" if firing else "resolved",
        "receiver": receiver,
        "groupLabels": dict(group_labels),
        "commonLabels": _common([a.labels for a in ordered]),
        "commonAnnotations": _common([a.annotations for a in ordered]),
        "externalURL": external_url,
        "alerts": [a.to_json(now) for a in ordered],
    }


# ---- reading a payload (the receiver) -----------------------------------------------------------
class PayloadError(ValueError):
    """A webhook body that is not an Alertmanager v4 notification; `field` says where."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class ReceivedAlert:
    status: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: str
    ends_at: str
    fingerprint: str


@dataclass(frozen=True)
class ReceivedNotification:
    group_key: str
    status: str
    receiver: str
    alerts: tuple[ReceivedAlert, ...]


def _text_map(value: object, field: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise PayloadError(field, "must be an object of text values")
    return dict(value)


def _text(value: object, field: str, *, allowed: tuple[str, ...] = ()) -> str:
    if not isinstance(value, str) or (allowed and value not in allowed):
        expected = f"one of {', '.join(allowed)}" if allowed else "text"
        raise PayloadError(field, f"must be {expected}")
    return value


def parse_notification(body: object) -> ReceivedNotification:
    if not isinstance(body, dict):
        raise PayloadError("body", "must be a JSON object")
    if body.get("version") != "4":
        raise PayloadError("version", 'must be "4" (Alertmanager webhook payload)')
    raw_alerts = body.get("alerts")
    if not isinstance(raw_alerts, list):
        raise PayloadError("alerts", "must be a list")
    alerts = []
    for i, item in enumerate(raw_alerts):
        where = f"alerts[{i}]"
        if not isinstance(item, dict):
            raise PayloadError(where, "must be an object")
        labels = _text_map(item.get("labels"), f"{where}.labels")
        given = item.get("fingerprint")
        alerts.append(ReceivedAlert(
            status=_text(item.get("status"), f"{where}.status", allowed=("firing", "resolved")),
            labels=labels,
            annotations=_text_map(item.get("annotations", {}), f"{where}.annotations"),
            starts_at=_text(item.get("startsAt"), f"{where}.startsAt"),
            ends_at=_text(item.get("endsAt", ZERO_TIME), f"{where}.endsAt"),
            fingerprint=_text(given, f"{where}.fingerprint") if given else fingerprint(labels),
        ))
    return ReceivedNotification(
        group_key=_text(body.get("groupKey"), "groupKey"),
        status=_text(body.get("status"), "status", allowed=("firing", "resolved")),
        receiver=_text(body.get("receiver", ""), "receiver"),
        alerts=tuple(alerts),
    )
