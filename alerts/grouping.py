"""Grouping alerts into notifications, as Alertmanager's dispatcher does (pure, clock passed in).

- alerts with equal `group_by` label values share a group; a new group waits `group_wait`
  before its first notification (so alerts that fire together leave together);
- after that a group is looked at every `group_interval`: it notifies when an alert started
  firing or resolved since the last notification, or when `repeat_interval` has passed;
- resolved alerts are sent once (with `send_resolved`) and then dropped; an empty group ends.

The decision to notify follows Alertmanager's DedupStage (notify/notify.go needsUpdate).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from alerts.payload import NotifiableAlert, group_key, notification_payload
from alerts.spec import Route

__all__ = ["Dispatcher", "Notification"]


@dataclass(frozen=True)
class Notification:
    group_key: str
    receiver: str
    payload: dict[str, Any]
    created_at: float


@dataclass
class _Group:
    key: str
    labels: dict[str, str]
    next_flush: float
    alerts: dict[str, NotifiableAlert] = field(default_factory=dict)
    has_flushed: bool = False
    # the notification log: what the last notification said, and when
    last_firing: frozenset[str] | None = None
    last_resolved: frozenset[str] = frozenset()
    last_sent_at: float = 0.0


class Dispatcher:
    """Not thread-safe: one owner calls `add` and `flush` with its clock's time."""

    def __init__(self, route: Route, *, external_url: str = "") -> None:
        self.route = route
        self.external_url = external_url
        self._groups: dict[str, _Group] = {}

    def add(self, alert: NotifiableAlert, now: float) -> None:
        labels = {k: alert.labels[k] for k in self.route.group_by if k in alert.labels}
        key = group_key(labels)
        group = self._groups.get(key)
        if group is None:
            group = _Group(key, labels, now + self.route.group_wait_ms / 1000)
            self._groups[key] = group
        old = group.alerts.get(alert.fingerprint)
        if old is not None and not old.resolved(now) and alert.starts_at > old.starts_at:
            # The same episode seen again: keep when it started (Alertmanager's Merge).
            alert = NotifiableAlert(alert.labels, alert.annotations, old.starts_at,
                                    alert.ends_at, alert.generator_url)
        group.alerts[alert.fingerprint] = alert
        if not group.has_flushed and alert.starts_at + self.route.group_wait_ms / 1000 < now:
            group.next_flush = min(group.next_flush, now)  # an old alert: do not wait more

    def next_flush_at(self) -> float | None:
        return min((g.next_flush for g in self._groups.values()), default=None)

    def flush(self, now: float) -> list[Notification]:
        """Notifications of every group whose time has come."""
        sent = []
        for key in sorted(self._groups):
            group = self._groups[key]
            if group.next_flush > now:
                continue
            group.next_flush = now + self.route.group_interval_ms / 1000
            group.has_flushed = True
            notification = self._flush_group(group, now)
            if notification is not None:
                sent.append(notification)
            if not group.alerts:
                del self._groups[key]
        return sent

    def _flush_group(self, group: _Group, now: float) -> Notification | None:
        alerts = list(group.alerts.values())
        firing = frozenset(a.fingerprint for a in alerts if not a.resolved(now))
        resolved = frozenset(a.fingerprint for a in alerts if a.resolved(now))
        notification = None
        if self._needs_update(group, firing, resolved, now):
            shown = alerts if self.route.send_resolved else [
                a for a in alerts if not a.resolved(now)]
            if shown:
                payload = notification_payload(group.key, self.route.receiver, group.labels,
                                               shown, now, self.external_url)
                notification = Notification(group.key, self.route.receiver, payload, now)
            group.last_firing, group.last_resolved, group.last_sent_at = firing, resolved, now
        for fp in resolved:  # told (or nothing to tell): a resolved alert leaves the group
            del group.alerts[fp]
        return notification

    def _needs_update(self, group: _Group, firing: frozenset[str], resolved: frozenset[str],
                      now: float) -> bool:
        if group.last_firing is None:
            return bool(firing)  # never notified: only if something fires
        if not firing <= group.last_firing:
            return True  # something new fires
        if not firing:
            return bool(group.last_firing)  # all resolved: say so once
        if self.route.send_resolved and not resolved <= group.last_resolved:
            return True
        return group.last_sent_at <= now - self.route.repeat_interval_ms / 1000

    def groups(self) -> Mapping[str, int]:
        """Alerts held per group key (for /status and tests)."""
        return {key: len(g.alerts) for key, g in self._groups.items()}
