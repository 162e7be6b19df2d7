"""Locustfile for the truth checks (issue 16): one request per arrival, carrying its plan.

`TruthUser` is a browser-portal user of the suite (same accounting, recording and open-model
pacing as `loadtests.journeys`) whose one journey is a single GET that sends the arrival's
intended start time (open model) in `X-Intended-Start`, so the reference target
(`testing.reference_target`) logs the plan beside what it served, and the truth of the
corrected latency (response sent − intended start) comes from the target's log alone.
"""

import locust  # noqa: F401  (must come first: gevent monkey-patching)

from loadtests.control import ScenarioShape
from loadtests.hooks import install
from loadtests.journeys import PortalUser, journey
from testing.reference_target import INTENDED_HEADER

install()


class TruthUser(PortalUser):
    portal = "browser"

    @journey(1)
    def one_request(self) -> None:
        intended = self._intended
        headers = {INTENDED_HEADER: repr(intended)} if intended is not None else None
        self.client.get("/truth", name="/truth", headers=headers)


__all__ = ["ScenarioShape", "TruthUser"]
