"""Locustfile for the every-second test: one browsing journey against the test's target."""

import locust  # noqa: F401  (first: gevent monkey-patching)

from loadtests.control import ScenarioShape
from loadtests.hooks import install
from loadtests.journeys import PortalUser, journey

install()


class WorkUser(PortalUser):
    portal = "browser"

    @journey(1)
    def work(self) -> None:
        self.client.get("/work", name="/work")


__all__ = ["ScenarioShape", "WorkUser"]
