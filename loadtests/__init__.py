"""Load tests: Locust users per portal, geo regions, load shapes, HDR accounting, `pitchey run`.

Nothing is imported here: `loadtests.cli` must stay standard-library-only at import, and only
the locustfiles (loadtests/locustfiles/) may import Locust (gevent patches the process).
"""

__all__: list[str] = []
