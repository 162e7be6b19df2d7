"""Prometheus metrics of the alerting parts, on a registry the caller injects.

Pass the service's registry to mount them on its /metrics; tests pass a fresh one.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["AlertMetrics", "ReceiverMetrics"]


class AlertMetrics:
    """Evaluator and notifier (sender side)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.evaluations = Counter(
            "pitchey_alert_evaluations", "Evaluations of the alert spec.", registry=registry)
        self.evaluation_seconds = Histogram(
            "pitchey_alert_evaluation_duration_seconds", "Time to evaluate every rule once.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
            registry=registry)
        self.active = Gauge(
            "pitchey_alerts_active", "Alerts pending or firing in the embedded evaluator.",
            ["state"], registry=registry)
        self.enqueued = Counter(
            "pitchey_alert_notifications_enqueued", "Notifications committed to the outbox.",
            registry=registry)
        self.finished = Counter(
            "pitchey_alert_notifications_finished",
            "Notifications that left the outbox: delivered, rejected (4xx) or expired.",
            ["outcome"], registry=registry)
        self.attempts = Counter(
            "pitchey_alert_delivery_attempts",
            "Webhook delivery attempts by result: success, client_error, server_error, "
            "connection_error.", ["result"], registry=registry)
        self.pending = Gauge(
            "pitchey_alert_outbox_pending", "Notifications waiting in the outbox.",
            registry=registry)
        self.delivery_seconds = Histogram(
            "pitchey_alert_delivery_latency_seconds",
            "From a notification's creation to the receiver accepting it.",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900),
            registry=registry)
        for outcome in ("delivered", "rejected", "expired"):
            self.finished.labels(outcome)
        for result in ("success", "client_error", "server_error", "connection_error"):
            self.attempts.labels(result)
        for state in ("pending", "firing"):
            self.active.labels(state)


class ReceiverMetrics:
    """Webhook receiver side."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "pitchey_alert_webhooks_received",
            "Webhook requests by result: accepted, duplicate, unauthorized, invalid, "
            "overloaded.", ["result"], registry=registry)
        self.alerts = Counter(
            "pitchey_alert_webhook_alerts",
            "Alerts in accepted webhooks: new (stored) or duplicate (already seen).",
            ["kind"], registry=registry)
        for result in ("accepted", "duplicate", "unauthorized", "invalid", "overloaded"):
            self.requests.labels(result)
        for kind in ("new", "duplicate"):
            self.alerts.labels(kind)
