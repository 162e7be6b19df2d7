"""Alerts: one spec (alerts/rules.yaml), Prometheus rules and promtool tests rendered from it,
an embedded evaluator, an Alertmanager-compatible notifier with a durable outbox, and a
webhook receiver. Guide: docs/alerts.md.

Names are imported lazily (PEP 562): `import alerts.cli` stays standard-library-only.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from alerts.evaluator import Evaluator, Transition
    from alerts.live import LiveAlerting, LiveSettings, run_events
    from alerts.receiver import ReceiverSettings, create_receiver_app
    from alerts.render import render
    from alerts.replay import replay
    from alerts.spec import Rule, Spec
    from alerts.specload import load_spec
    from alerts.yamlload import SpecError

__all__ = [
    "Evaluator",
    "LiveAlerting",
    "LiveSettings",
    "ReceiverSettings",
    "Rule",
    "Spec",
    "SpecError",
    "Transition",
    "create_receiver_app",
    "load_spec",
    "render",
    "replay",
    "run_events",
]

_HOME = {
    "Evaluator": "alerts.evaluator",
    "LiveAlerting": "alerts.live",
    "LiveSettings": "alerts.live",
    "ReceiverSettings": "alerts.receiver",
    "Rule": "alerts.spec",
    "Spec": "alerts.spec",
    "SpecError": "alerts.yamlload",
    "Transition": "alerts.evaluator",
    "create_receiver_app": "alerts.receiver",
    "load_spec": "alerts.specload",
    "render": "alerts.render",
    "replay": "alerts.replay",
    "run_events": "alerts.live",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'alerts' has no attribute {name!r}")
    value = getattr(import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
