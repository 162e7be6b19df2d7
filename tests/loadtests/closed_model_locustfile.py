"""Locustfile for the closed-model test: one paced request per journey, each user its own path
(`/paced/<user>`), so the target's log tells every user's sends apart."""

import itertools
import os

import locust  # noqa: F401  (first: gevent monkey-patching)

from loadtests.control import ScenarioShape
from loadtests.hooks import install
from loadtests.journeys import PortalUser, journey

install()
_numbers = itertools.count(1)


class PacedUser(PortalUser):
    portal = "browser"

    def on_start(self) -> None:
        self.number = f"{os.getpid()}-{next(_numbers)}"
        super().on_start()

    @journey(1)
    def paced(self) -> None:
        self.client.get(f"/paced/{self.number}", name="/paced")


__all__ = ["PacedUser", "ScenarioShape"]
