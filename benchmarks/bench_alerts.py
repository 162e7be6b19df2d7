"""Time from a breach in the data to the webhook's arrival: embedded evaluator vs Prometheus +
Alertmanager, side by side in one run.

The breach: a service exposing the real metric names (pitchey.metrics.ServiceMetrics) sets
pitchey_db_up to 0 at a random moment; the rule is PrimaryDatabaseUnavailable with `for` and
keep_firing_for set to 0 (this measures the pipeline, not the rule's patience). Arrival is the
time our receiver stored the firing notification. Both paths scrape the same /metrics.

1. Embedded (measured): the collectors' Scraper every 1 s -> their SeriesStore ->
   LiveAlerting evaluating every 1 s and as soon as new samples land (its default) -> outbox
   -> webhook. Target <= 2 s.
2. Prometheus + Alertmanager with compressed intervals (measured): scrape 1 s, evaluation
   1 s, group_wait 1 s.
3. Prometheus + Alertmanager at their defaults (computed, not measured: it would take
   minutes per trial): scrape_interval 1m, evaluation_interval 1m, group_wait 30s. A breach
   waits on average half a scrape interval to be scraped, half an evaluation interval to be
   evaluated, then group_wait: 30 + 30 + 30 = 90 s (worst case 60 + 60 + 30 = 150 s). The same
   model is checked against measurement 2 (0.5 + 0.5 + 1 = 2 s).
"""

from __future__ import annotations

import asyncio
import random
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest

from alerts.live import LiveAlerting, LiveSettings
from alerts.receiver import ReceiverSettings, create_receiver_app
from alerts.render import RULES_FILE, render
from alerts.specload import load_spec
from collectors.scrape import Scraper, ScrapeTarget
from collectors.series import SeriesStore
from collectors.units import parse_prometheus_duration_ms
from pitchey.metrics import ServiceMetrics
from testing.localstack import LocalStack, StackMissing, StackTimings

RULE = "PrimaryDatabaseUnavailable"
EMBEDDED_TRIALS = 6
PROMETHEUS_TRIALS = 3
TARGET_S = 2.0
DEFAULTS = {"scrape_interval_s": 60.0, "evaluation_interval_s": 60.0, "group_wait_s": 30.0}


def expected_latency(scrape_s: float, evaluation_s: float, group_wait_s: float
                     ) -> tuple[float, float]:
    """(mean, worst) wait from a breach to the notification leaving Alertmanager."""
    return (scrape_s / 2 + evaluation_s / 2 + group_wait_s,
            scrape_s + evaluation_s + group_wait_s)


class Breach:
    """A service exposing the real metric names whose database can be switched off."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.metrics = ServiceMetrics(self.registry, process=False)
        self.metrics.db_up.set(1)
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        async def expose(request: web.Request) -> web.Response:
            return web.Response(body=generate_latest(self.registry),
                                content_type="text/plain")

        app = web.Application()
        app.router.add_get("/metrics", expose)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


async def _receiver(tmp: Path) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(create_receiver_app(ReceiverSettings(db_path=str(tmp / "r.db"))))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


async def _arrival(session: aiohttp.ClientSession, status_url: str, status: str, after: float,
                   timeout_s: float) -> float:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        async with session.get(status_url) as response:
            recent = (await response.json())["recent"]
        times = [a["receivedAt"] for a in recent if a["alertname"] == RULE
                 and a["status"] == status and a["receivedAt"] >= after]
        if times:
            return float(min(times))
        await asyncio.sleep(0.02)
    raise TimeoutError(f"no {status} {RULE} notification within {timeout_s:g} s")


async def _trials(breach: Breach, session: aiohttp.ClientSession, status_url: str,
                  trials: int, timeout_s: float) -> list[float]:
    rng = random.Random(6)
    latencies = []
    for _ in range(trials):
        await asyncio.sleep(rng.uniform(0.0, 1.0))  # a random phase against the ticks
        broke = time.time()
        breach.metrics.db_up.set(0)
        latencies.append(await _arrival(session, status_url, "firing", broke, timeout_s)
                         - broke)
        fixed = time.time()
        breach.metrics.db_up.set(1)
        await _arrival(session, status_url, "resolved", fixed, timeout_s)
    return latencies


def _spec() -> Any:
    """The rule with for/keep 0; the notifier's group_interval at 1 s like the compressed
    Alertmanager's, so each trial's resolved notification (not timed) comes back quickly."""
    spec = load_spec().only(RULE)
    rule = replace(spec.rule(RULE), for_ms=0, keep_firing_for_ms=0)
    return replace(spec, rules=(rule,), route=replace(spec.route, group_interval_ms=1000))


async def _embedded(tmp: Path) -> list[float]:
    breach = Breach()
    await breach.start()
    receiver, receiver_url = await _receiver(tmp / "embedded")
    store = SeriesStore(retention_s=600)
    scraper = Scraper([ScrapeTarget("pitchey", breach.url, "/metrics", None)],
                      store=store, interval_s=1.0)
    live = LiveAlerting(_spec(), store, LiveSettings(
        webhook_urls=(f"{receiver_url}/webhook",), outbox_path=str(tmp / "outbox.db"),
        interval_s=1.0))
    scraper.start()
    live.start()
    try:
        async with aiohttp.ClientSession() as session:
            await asyncio.sleep(1.5)  # a few scrapes of the healthy state first
            return await _trials(breach, session, f"{receiver_url}/status", EMBEDDED_TRIALS,
                                 timeout_s=15)
    finally:
        await asyncio.to_thread(live.stop, False)
        await asyncio.to_thread(scraper.stop)
        await receiver.cleanup()
        await breach.stop()


async def _prometheus(tmp: Path, timings: StackTimings) -> list[float]:
    breach = Breach()
    await breach.start()
    receiver, receiver_url = await _receiver(tmp / "prometheus")
    render(_spec(), tmp / "rules", with_tests=False)
    stack = LocalStack(tmp / "stack", tmp / "rules" / RULES_FILE,
                       scrape_targets=[breach.url.removeprefix("http://")],
                       webhook_url=f"{receiver_url}/webhook", timings=timings)
    try:
        await asyncio.to_thread(stack.start)
        async with aiohttp.ClientSession() as session:
            await asyncio.sleep(2.0)
            return await _trials(breach, session, f"{receiver_url}/status",
                                 PROMETHEUS_TRIALS, timeout_s=30)
    finally:
        await asyncio.to_thread(stack.stop)
        await receiver.cleanup()
        await breach.stop()


def _seconds(text: str) -> float:
    return parse_prometheus_duration_ms(text) / 1000.0


async def _run() -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-alerts-") as scratch:
        tmp = Path(scratch)
        embedded = await _embedded(tmp)
        timings = StackTimings(scrape_interval="1s", evaluation_interval="1s",
                               group_wait="1s", group_interval="1s")
        try:
            compressed = await _prometheus(tmp, timings)
        except StackMissing as exc:
            print(f"Prometheus + Alertmanager not measured: {exc}")
            compressed = []
    figures = {
        "embedded_mean_s": statistics.fmean(embedded),
        "embedded_max_s": max(embedded),
    }
    model_mean, model_max = expected_latency(_seconds(timings.scrape_interval),
                                             _seconds(timings.evaluation_interval),
                                             _seconds(timings.group_wait))
    default_mean, default_max = expected_latency(DEFAULTS["scrape_interval_s"],
                                                 DEFAULTS["evaluation_interval_s"],
                                                 DEFAULTS["group_wait_s"])
    figures.update({
        "prometheus_compressed_model_mean_s": model_mean,
        "prometheus_defaults_computed_mean_s": default_mean,
        "prometheus_defaults_computed_max_s": default_max,
        "defaults_over_embedded_ratio": default_mean / figures["embedded_mean_s"],
    })
    if compressed:
        figures["prometheus_compressed_measured_mean_s"] = statistics.fmean(compressed)
        figures["prometheus_compressed_measured_max_s"] = max(compressed)
    _report(embedded, compressed, figures)
    return figures


def _report(embedded: list[float], compressed: list[float], f: dict[str, float]) -> None:
    print("breach in the data (pitchey_db_up -> 0) to webhook arrival, "
          f"rule {RULE} with for=0s:")
    print(f"  embedded evaluator (scrape 1 s; evaluate every 1 s and on new samples), measured "
          f"over {len(embedded)} "
          f"trials: mean {f['embedded_mean_s']:.2f} s, max {f['embedded_max_s']:.2f} s "
          f"(target <= {TARGET_S:g} s: {'met' if f['embedded_max_s'] <= TARGET_S else 'MISSED'})")
    if compressed:
        print(f"  Prometheus + Alertmanager, intervals compressed to 1 s, measured over "
              f"{len(compressed)} trials: mean {f['prometheus_compressed_measured_mean_s']:.2f} s"
              f", max {f['prometheus_compressed_measured_max_s']:.2f} s (model: mean "
              f"{f['prometheus_compressed_model_mean_s']:.1f} s)")
    print(f"  Prometheus + Alertmanager at their defaults (scrape 1m, evaluate 1m, group_wait "
          f"30s), COMPUTED from the model, not measured: mean "
          f"{f['prometheus_defaults_computed_mean_s']:.0f} s, worst "
          f"{f['prometheus_defaults_computed_max_s']:.0f} s")
    print(f"  ratio, defaults (computed) / embedded (measured): "
          f"{f['defaults_over_embedded_ratio']:.0f}x")


def main() -> dict[str, float]:
    return asyncio.run(_run())


if __name__ == "__main__":
    main()
