"""Locustfile for the accuracy test: the suite's accounting around a server of fixed delays.

Each worker also keeps every raw response time (the truth) and the master writes Locust's
own percentile table, both into $PITCHEY_ACCURACY_DIR, for the test to compare.
"""

import json
import os
from typing import Any

import locust  # noqa: F401  (first: gevent monkey-patching)
from locust import events

from loadtests.control import ScenarioShape
from loadtests.hooks import install
from loadtests.journeys import PortalUser, journey

install()
OUT = os.environ["PITCHEY_ACCURACY_DIR"]
QUANTILES = (0.5, 0.95, 0.99, 0.999)
raw: list[float] = []


class DelayUser(PortalUser):
    portal = "browser"

    @journey(70)
    def fast(self) -> None:
        self.client.get("/delay/20", name="/delay/20")

    @journey(25)
    def slow(self) -> None:
        self.client.get("/delay/120", name="/delay/120")

    @journey(5)
    def slowest(self) -> None:
        self.client.get("/delay/950", name="/delay/950")


@events.request.add_listener
def _keep(response_time: float, **_: Any) -> None:
    raw.append(response_time)


@events.quitting.add_listener
def _dump(environment: Any, **_: Any) -> None:
    runner = environment.runner
    if type(runner).__name__ == "WorkerRunner":
        with open(os.path.join(OUT, f"raw-{os.getpid()}.json"), "w") as handle:
            json.dump(raw, handle)
    elif type(runner).__name__ == "MasterRunner":
        total = runner.stats.total
        table = {str(q): total.get_response_time_percentile(q) for q in QUANTILES}
        with open(os.path.join(OUT, "locust.json"), "w") as handle:
            json.dump(table, handle)


__all__ = ["DelayUser", "ScenarioShape"]
