"""Live alerting during a run: evaluate every interval, group, queue, deliver.

    store = SeriesStore(job=spec.job, retention_s=store_retention_s(spec))  # collectors.series
    scraper = Scraper(targets, writer=writer, store=store)     # the scraper feeds it
    with LiveAlerting(spec, store, LiveSettings(webhook_urls=("http://127.0.0.1:9095/webhook",),
                      outbox_path="runs/.../alerts-outbox.sqlite3"),
                      on_transition=run_events(writer)) as live:
        ...                                          # the run
    # stop() evaluates no more, and gives delivery a moment to drain the outbox

Two threads (greenlets under gevent): one evaluates the spec at every multiple of the interval
on the clock and commits each notification to the SQLite outbox; one delivers from the outbox.
`step(now)` is the whole evaluation pass, callable without threads (tests, replay).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from prometheus_client import CollectorRegistry

from alerts.clock import Clock, SystemClock
from alerts.delivery import Backoff, Deliverer, Transport
from alerts.evaluator import AlertState, Evaluator, Transition
from alerts.expr import DEFAULT_LOOKBACK_MS
from alerts.grouping import Dispatcher, Notification
from alerts.metrics import AlertMetrics
from alerts.outbox import Outbox
from alerts.payload import NotifiableAlert
from alerts.spec import Spec
from collectors.series import SeriesSource

__all__ = ["LiveAlerting", "LiveSettings", "notifiable", "run_events", "store_retention_s"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LiveSettings:
    webhook_urls: tuple[str, ...] = ()
    outbox_path: str = "alerts-outbox.sqlite3"
    secret: str | None = None
    interval_s: float = 1.0
    external_url: str = ""
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 30.0
    max_age_s: float = 86_400.0
    drain_s: float = 5.0
    # Evaluate as soon as new samples arrive too (not only on the interval's ticks), at most
    # every interval / 4: a breach is then seen one scrape after it happens, not one scrape
    # plus up to one interval. Sources without a change signal are polled every poll_s.
    on_new_data: bool = True
    poll_s: float = 0.05

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], **overrides: Any) -> LiveSettings:
        """PITCHEY_ALERTS_WEBHOOK_URLS (comma-separated), PITCHEY_ALERTS_OUTBOX,
        PITCHEY_ALERTS_WEBHOOK_SECRET, PITCHEY_ALERTS_INTERVAL_S."""
        settings = cls()
        urls = environ.get("PITCHEY_ALERTS_WEBHOOK_URLS", "")
        interval = environ.get("PITCHEY_ALERTS_INTERVAL_S", "")
        try:
            interval_s = float(interval) if interval else settings.interval_s
        except ValueError:
            raise ValueError(f"PITCHEY_ALERTS_INTERVAL_S={interval!r} is not a number") from None
        if interval_s <= 0:
            raise ValueError(f"PITCHEY_ALERTS_INTERVAL_S={interval!r} must be positive")
        settings = replace(
            settings,
            webhook_urls=tuple(u.strip() for u in urls.split(",") if u.strip()),
            outbox_path=environ.get("PITCHEY_ALERTS_OUTBOX") or settings.outbox_path,
            secret=environ.get("PITCHEY_ALERTS_WEBHOOK_SECRET") or None,
            interval_s=interval_s,
        )
        return replace(settings, **overrides)


def store_retention_s(spec: Spec) -> float:
    """How much of each series the live store must keep for `spec`: its longest window plus
    the instant lookback (5 min), and a minute of slack."""
    return (spec.longest_window_ms() + DEFAULT_LOOKBACK_MS) / 1000 + 60.0


def notifiable(transition: Transition, external_url: str = "") -> NotifiableAlert:
    """The notifier's view of a firing or resolved transition (Prometheus sends StartsAt =
    the time the alert fired)."""
    fired = transition.fired_at_ms if transition.fired_at_ms is not None else transition.at_ms
    ends = transition.at_ms / 1000 if transition.kind == "resolved" else None
    url = f"{external_url.rstrip('/')}/alerts#{transition.rule}" if external_url else ""
    return NotifiableAlert(dict(transition.labels), dict(transition.annotations), fired / 1000,
                           ends, url)


def run_events(writer: Any) -> Callable[[Transition], None]:
    """A transition callback writing alert_firing / alert_resolved events to a RunWriter."""
    def record(transition: Transition) -> None:
        if transition.kind in ("firing", "resolved"):
            labels = {k: v for k, v in transition.labels.items()
                      if k not in ("alertname", "severity")}
            writer.add_event(transition.at_ms / 1000, f"alert_{transition.kind}",
                             alert=transition.rule, severity=transition.severity, labels=labels)
    return record


class LiveAlerting:
    def __init__(self, spec: Spec, source: SeriesSource, settings: LiveSettings, *,
                 clock: Clock | None = None, registry: CollectorRegistry | None = None,
                 on_transition: Callable[[Transition], None] | None = None,
                 transport: Transport | None = None) -> None:
        self.spec = spec
        self.settings = settings
        self.clock = clock or SystemClock()
        self.metrics = AlertMetrics(registry if registry is not None else CollectorRegistry())
        self.evaluator = Evaluator(spec, source)
        self.dispatcher = Dispatcher(spec.route, external_url=settings.external_url)
        self.outbox = Outbox(settings.outbox_path)
        self.deliverer = Deliverer(
            self.outbox, clock=self.clock, metrics=self.metrics, transport=transport,
            secret=settings.secret, backoff=Backoff(settings.backoff_base_s,
                                                    settings.backoff_cap_s),
            max_age_s=settings.max_age_s)
        self.on_transition = on_transition
        self.source = source
        self._stop = threading.Event()
        self._wake = threading.Event()  # new data, or stop
        self._threads: list[threading.Thread] = []
        subscribe = getattr(source, "subscribe", None)
        self._pushed = callable(subscribe) and settings.on_new_data
        if self._pushed:
            subscribe(self._wake.set)  # type: ignore[misc]

    # ---- one evaluation pass (pure apart from the outbox) -----------------------------------
    def step(self, now: float) -> list[Transition]:
        started = time.perf_counter()
        # The wall clock may step back (NTP); evaluation times must not.
        t_ms = max(round(now * 1000), self.evaluator.last_t_ms or 0)
        transitions = self.evaluator.evaluate(t_ms)
        self.metrics.evaluations.inc()
        self.metrics.evaluation_seconds.observe(time.perf_counter() - started)
        for transition in transitions:
            if self.on_transition is not None:
                self.on_transition(transition)
            if transition.kind in ("firing", "resolved"):
                self.dispatcher.add(notifiable(transition, self.settings.external_url), now)
        self.enqueue(self.dispatcher.flush(now), now)
        self.metrics.active.labels("pending").set(len(self.evaluator.alerts(AlertState.PENDING)))
        self.metrics.active.labels("firing").set(len(self.evaluator.alerts(AlertState.FIRING)))
        return transitions

    def enqueue(self, notifications: list[Notification], now: float) -> None:
        for notification in notifications:
            body = json.dumps(notification.payload, separators=(",", ":")).encode()
            for url in self.settings.webhook_urls:
                self.outbox.enqueue(url, notification.group_key, body, now)
                self.metrics.enqueued.inc()
        if notifications:
            self.deliverer.wakeup.set()

    # ---- threads --------------------------------------------------------------------------------
    def start(self) -> LiveAlerting:
        self._stop.clear()
        self._threads = [
            threading.Thread(target=self._evaluate_loop, name="alerts-evaluate", daemon=True),
            threading.Thread(target=self.deliverer.run, args=(self._stop,),
                             name="alerts-deliver", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def _evaluate_loop(self) -> None:
        interval = self.settings.interval_s
        while not self._stop.is_set():
            now = self.clock.now()
            self._wake.clear()
            version = getattr(self.source, "version", None)
            started = time.perf_counter()
            try:
                self.step(now)
            except Exception:  # a bad evaluation must not end live alerting for the run
                log.exception("alert evaluation failed; trying again next tick")
            spent = time.perf_counter() - started
            next_tick = (now // interval + 1) * interval  # on multiples of the interval
            if self.settings.on_new_data:
                # At most four evaluations a tick, and never more than a third of a core.
                self.clock.wait(self._stop, max(interval / 4, 2 * spent))
                self._await_data(version, next_tick)
            else:
                self.clock.wait(self._stop, next_tick - self.clock.now())

    def _await_data(self, version: object, next_tick: float) -> None:
        """Until the next tick, or earlier when the source has new samples."""
        while not self._stop.is_set():
            left = next_tick - self.clock.now()
            if left <= 0:
                return
            if self._pushed:
                if self.clock.wait(self._wake, left):
                    return
                continue
            if version is not None and getattr(self.source, "version", None) != version:
                return
            self.clock.wait(self._stop, min(left, self.settings.poll_s))

    def stop(self, drain: bool = True) -> None:
        """Stop evaluating; with `drain`, give delivery up to `drain_s` to empty the outbox
        (what is left stays in it for the next sender)."""
        if drain:
            deadline = time.monotonic() + self.settings.drain_s
            while self.outbox.due(self.clock.now()) and time.monotonic() < deadline:
                self.deliverer.wakeup.set()
                time.sleep(0.05)
        self._stop.set()
        self._wake.set()
        self.deliverer.wakeup.set()
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads = []
        self.outbox.close()

    def __enter__(self) -> LiveAlerting:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
