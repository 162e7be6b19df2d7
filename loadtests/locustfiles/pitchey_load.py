"""The suite's locustfile: `locust -f loadtests/locustfiles/pitchey_load.py --pitchey-scenario X`.

`pitchey run` starts it as a headless master plus one worker per region; on Kubernetes the
manifests in deploy/ start the same file. Locust is imported first so gevent patches the
standard library before anything else is loaded.
"""

import locust  # noqa: F401  (must come first: gevent monkey-patching)

from loadtests.control import ScenarioShape
from loadtests.hooks import install
from loadtests.journeys import BrowserUser, CreatorUser, InvestorUser, ProductionUser

install()

__all__ = ["BrowserUser", "CreatorUser", "InvestorUser", "ProductionUser", "ScenarioShape"]
