"""Grouping into notifications (Alertmanager's dispatcher rules) and the v4 payload."""

from __future__ import annotations

from alerts.grouping import Dispatcher
from alerts.payload import (
    NotifiableAlert,
    fingerprint,
    format_time,
    group_key,
    parse_notification,
)
from alerts.spec import Route

T0 = 1_767_261_600.0  # 2026-01-01T10:00:00Z


def alert(name: str, starts: float = T0, ends: float | None = None, **labels: str
          ) -> NotifiableAlert:
    return NotifiableAlert({"alertname": name, "severity": "critical", **labels},
                           {"summary": f"{name} summary"}, starts, ends)


def route(**overrides: object) -> Route:
    base = {"group_wait_ms": 10_000, "group_interval_ms": 60_000,
            "repeat_interval_ms": 3_600_000}
    base.update(overrides)
    return Route(**base)  # type: ignore[arg-type]


def test_payload_has_the_version_4_shape() -> None:
    dispatcher = Dispatcher(route(group_wait_ms=0), external_url="http://127.0.0.1:9093")
    dispatcher.add(alert("HighErrorRate"), T0)
    (notification,) = dispatcher.flush(T0)
    body = notification.payload
    assert set(body) == {"version", "groupKey", "truncatedAlerts", "status", "receiver",
                         "groupLabels", "commonLabels", "commonAnnotations", "externalURL",
                         "alerts"}
    assert body["version"] == "4" and body["status"] == "firing"
    assert body["groupKey"] == '{}:{alertname="HighErrorRate"}'
    assert body["groupLabels"] == {"alertname": "HighErrorRate"}
    assert body["commonLabels"] == {"alertname": "HighErrorRate", "severity": "critical"}
    (item,) = body["alerts"]
    assert item["startsAt"] == "2026-01-01T10:00:00Z" and item["endsAt"] == "0001-01-01T00:00:00Z"
    assert item["fingerprint"] == fingerprint(item["labels"]) and len(item["fingerprint"]) == 16
    assert parse_notification(body).alerts[0].fingerprint == item["fingerprint"]


def test_fingerprint_is_fnv1a_over_sorted_labels() -> None:
    # FNV-1a 64 of "" is the offset basis; labels are hashed as name 0xff value 0xff, sorted.
    assert fingerprint({}) == "cbf29ce484222325"
    assert fingerprint({"b": "2", "a": "1"}) == fingerprint({"a": "1", "b": "2"})
    assert fingerprint({"a": "1"}) != fingerprint({"a": "2"})
    assert group_key({"b": "x\"y", "a": "1"}) == '{}:{a="1", b="x\\"y"}'
    assert format_time(T0 + 0.25) == "2026-01-01T10:00:00.25Z"


def test_group_wait_batches_alerts_that_fire_together() -> None:
    dispatcher = Dispatcher(route(group_by=("severity",)))
    dispatcher.add(alert("A"), T0)
    dispatcher.add(alert("B"), T0 + 4)
    assert dispatcher.flush(T0 + 9) == []
    (notification,) = dispatcher.flush(T0 + 10)
    assert [a["labels"]["alertname"] for a in notification.payload["alerts"]] == ["A", "B"]
    assert notification.payload["commonLabels"] == {"severity": "critical"}


def test_new_alerts_in_a_flushed_group_wait_for_the_group_interval() -> None:
    dispatcher = Dispatcher(route(group_by=("severity",)))
    dispatcher.add(alert("A"), T0)
    assert len(dispatcher.flush(T0 + 10)) == 1
    dispatcher.add(alert("B", starts=T0 + 20), T0 + 20)
    assert dispatcher.flush(T0 + 30) == []
    (second,) = dispatcher.flush(T0 + 70)
    assert len(second.payload["alerts"]) == 2


def test_resolved_is_sent_once_then_the_group_ends() -> None:
    dispatcher = Dispatcher(route(group_wait_ms=0))
    dispatcher.add(alert("A"), T0)
    dispatcher.flush(T0)
    dispatcher.add(alert("A", ends=T0 + 30), T0 + 30)
    (resolved,) = dispatcher.flush(T0 + 60)
    assert resolved.payload["status"] == "resolved"
    assert resolved.payload["alerts"][0]["endsAt"] == "2026-01-01T10:00:30Z"
    assert dispatcher.groups() == {}
    assert dispatcher.flush(T0 + 120) == []


def test_unchanged_groups_repeat_only_after_repeat_interval() -> None:
    dispatcher = Dispatcher(route(group_wait_ms=0, repeat_interval_ms=180_000))
    dispatcher.add(alert("A"), T0)
    assert len(dispatcher.flush(T0)) == 1
    assert dispatcher.flush(T0 + 60) == [] and dispatcher.flush(T0 + 120) == []
    assert len(dispatcher.flush(T0 + 180)) == 1


def test_without_send_resolved_nothing_is_sent_when_all_resolve() -> None:
    dispatcher = Dispatcher(route(group_wait_ms=0, send_resolved=False))
    dispatcher.add(alert("A"), T0)
    dispatcher.flush(T0)
    dispatcher.add(alert("A", ends=T0 + 1), T0 + 1)
    assert dispatcher.flush(T0 + 60) == []


def test_an_alert_that_fired_and_resolved_before_any_notification_is_not_sent() -> None:
    dispatcher = Dispatcher(route())
    dispatcher.add(alert("A"), T0)
    dispatcher.add(alert("A", ends=T0 + 2), T0 + 2)
    assert dispatcher.flush(T0 + 10) == []


def test_an_old_alert_in_a_new_group_does_not_wait() -> None:
    dispatcher = Dispatcher(route())
    dispatcher.add(alert("A", starts=T0 - 60), T0)
    assert len(dispatcher.flush(T0)) == 1
