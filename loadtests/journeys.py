"""One Locust user class per portal, doing what that portal's people do on Pitchey.

Requests are named by route template ("/api/pitches/{id}"), so statistics stay bounded;
every request carries the worker's region in `X-Pitchey-Region` and the user's class in its
Locust context. Weights and think times come from the scenario (set on each worker by
`loadtests.hooks` before users start). Answers the journey itself provokes under concurrency
(a second NDA request for the same pitch, an approval a sibling user already made) are the
service behaving correctly and are counted as successes.
"""

from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import gevent
from locust import FastHttpUser, task
from locust.contrib.fasthttp import ResponseContextManager

from collectors.tracecontext import make_traceparent
from loadtests.runtime import WorkerRuntime, runtime_of

__all__ = [
    "BrowserUser",
    "CreatorUser",
    "InvestorUser",
    "PortalUser",
    "ProductionUser",
    "USER_CLASSES",
    "journey",
    "write_headers",
]

GENRES = ("Action", "Comedy", "Drama", "Horror", "Sci-Fi", "Thriller")
BUDGET_RANGES = ("micro", "low", "medium", "high", "blockbuster")
DEMO_PASSWORD = "Demo123"
DEMO_ACCOUNTS = {
    "creator": "alex.creator@demo.com",
    "investor": "sarah.investor@demo.com",
    "production": "stellar.production@demo.com",
}
MAX_OWN_PITCHES = 5  # a creator deletes its oldest pitch past this, so long runs stay bounded

Task = TypeVar("Task", bound=Callable[..., None])


def journey(weight: int) -> Callable[[Task], Task]:
    """A Locust task that, in the open model, starts on its arrival's intended time."""

    def decorate(function: Task) -> Task:
        def run(user: PortalUser) -> None:
            if user.begin_task():  # closed model: always (it notes the start, for pacing)
                if TRACE_SAMPLE_RATIO > 0 and random.random() < TRACE_SAMPLE_RATIO:
                    user.traced(function)
                else:
                    function(user)

        run.__name__ = function.__name__
        run.__doc__ = function.__doc__
        return task(weight)(run)  # type: ignore[return-value]

    return decorate


# Share of journeys whose requests carry a sampled W3C `traceparent` (a fresh trace per
# request): the service's parent-based sampler follows the flag, so those requests' spans land
# in the run's spans.jsonl under the trace id the generator chose, and a slow one can be
# followed into the service. Drawn per journey, not per request, so the other journeys' requests
# pay nothing for it.
TRACE_SAMPLE_RATIO = float(os.environ.get("PITCHEY_TRACE_SAMPLE_RATIO", "0.01"))


IDEMPOTENCY_HEADER = "Idempotency-Key"


def write_headers() -> dict[str, str]:
    """A fresh Idempotency-Key for one logical write (these journeys never resend one):
    when a regional worker dies with the write in flight, the edge retries it on the next
    region and the service executes it once. Logins send none (the service ignores it there)."""
    return {IDEMPOTENCY_HEADER: uuid.uuid4().hex}


def _with_traceparent(request: Callable[..., Any]) -> Callable[..., Any]:
    def traced(method: str, url: str, **kwargs: Any) -> Any:
        if random.random() < TRACE_SAMPLE_RATIO:
            headers = dict(kwargs.get("headers") or {})
            headers["traceparent"] = make_traceparent(sampled=True)
            kwargs["headers"] = headers
        return request(method, url, **kwargs)

    return traced


class PortalUser(FastHttpUser):
    """What every portal user shares: login, pacing, the region header, a pitch catalogue."""

    abstract = True
    portal: ClassVar[str] = ""
    # overridden per worker by loadtests.hooks from the scenario
    network_timeout = 30.0
    connection_timeout = 10.0

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.runtime: WorkerRuntime = runtime_of(environment)
        self.user_id: int | None = None
        self.pitch_ids: list[int] = []
        self.creators: dict[int, int] = {}  # pitch id -> creator id
        self.pages = 1
        self._intended: float | None = None
        # what every request of this user reports in Locust's context; Locust copies it per
        # request, so one dict per user serves (the open model updates its lateness)
        self._context: dict[str, Any] = {"user_class": self.portal, "lateness_ms": None}
        self._think: tuple[float, float] | None = None  # the scenario's range, read once
        self._pacing: float | None = None  # closed model: seconds between journey starts
        self._journey_started = 0.0

    # pacing ------------------------------------------------------------------------------------
    def wait_time(self) -> float:
        arrivals = self.runtime.arrivals
        if arrivals is None:
            if self._pacing is not None:  # constant pacing: what is left of the period
                return max(0.0, self._pacing - (time.time() - self._journey_started))
            think = self._think
            if think is None:
                think = self._think = self.runtime.think_time(self.portal)
            low, high = think
            return low + (high - low) * random.random()
        self._intended = arrivals.take()
        if self._intended is None:
            return 1.0  # the schedule is used up; the shape ends the run shortly
        return max(0.0, self._intended - time.time())

    def begin_task(self) -> bool:
        """Open model: note how late this arrival starts; False once no arrival is left.
        Closed model: note when the journey starts (constant pacing counts from there)."""
        arrivals = self.runtime.arrivals
        if arrivals is None:
            self._journey_started = time.time()
            return True
        if self._intended is None:
            return False
        lateness_ms = max(0.0, (time.time() - self._intended) * 1000.0)
        arrivals.started(lateness_ms)
        self._context["lateness_ms"] = lateness_ms
        return True

    def context(self) -> dict[str, Any]:
        self.runtime.requests_started += 1  # Locust asks once, as each request starts
        return self._context

    def traced(self, function: Callable[[PortalUser], None]) -> None:
        """Run one journey with a sampled `traceparent` on each of its requests: every
        get/post goes through the session's request(), wrapped for this journey only."""
        session = self.client
        session.request = _with_traceparent(session.request)  # type: ignore[method-assign]
        try:
            function(self)
        finally:
            del session.request  # the class's method again

    def on_start(self) -> None:
        self.login()
        self.pace()
        arrivals = self.runtime.arrivals
        if arrivals is not None:  # the first task waits for its arrival too
            self._intended = arrivals.take()
            if self._intended is not None:
                gevent.sleep(max(0.0, self._intended - time.time()))

    def pace(self) -> None:
        """Closed model: read this class's pacing, and when the interval between journey starts
        is constant (a `pacing`, or a fixed think time above 0: then a lower bound), tell the
        recorder, which adds the expected-interval-corrected histogram (kind "corrected",
        HdrHistogram's `record_corrected_value`). The login before it is not paced."""
        scenario = self.runtime.scenario
        if scenario is None or scenario.open_model is not None:
            return
        self._pacing = scenario.pacing_for(self.portal)
        interval = self._pacing
        if interval is None:
            think = scenario.think_time_for(self.portal)
            interval = think.min if think.min == think.max and think.min > 0 else None
        if interval is not None:
            self._context["interval_ms"] = interval * 1000.0

    def login(self) -> None:
        if self.portal not in DEMO_ACCOUNTS:
            return
        body = {"email": self.runtime.account(self.portal), "password": DEMO_PASSWORD}
        with self.client.post(f"/api/auth/{self.portal}/login", json=body,
                              name=f"/api/auth/{self.portal}/login",
                              catch_response=True) as response:
            data = _json(response)
            if response.status_code == 200 and isinstance(data, dict):
                self.user_id = data.get("user", {}).get("id")
            elif response.status_code:
                response.failure(f"login as {body['email']} failed: {response.status_code}")

    # shared steps ------------------------------------------------------------------------------
    def browse(self, **filters: str) -> None:
        params = {"page": str(random.randint(1, max(1, min(self.pages, 10)))), "per_page": "20"}
        params.update(filters)
        query = "&".join(f"{k}={v}" for k, v in params.items())
        with self.client.get(f"/api/pitches?{query}", name="/api/pitches",
                             catch_response=True) as response:
            data = _json(response)
            if isinstance(data, dict):
                self.pages = int(data.get("pages") or 1) if not filters else self.pages
                for item in data.get("items", []):
                    self.remember(item)

    def remember(self, pitch: dict[str, Any]) -> None:
        pitch_id = pitch.get("id")
        if not isinstance(pitch_id, int):
            return
        if pitch_id not in self.creators:
            self.pitch_ids.append(pitch_id)
            if len(self.pitch_ids) > 200:
                self.creators.pop(self.pitch_ids.pop(0), None)
        self.creators[pitch_id] = int((pitch.get("creator") or {}).get("id") or 0)

    def view_pitch(self) -> int | None:
        if not self.pitch_ids:
            self.browse()
        if not self.pitch_ids:
            return None
        pitch_id = random.choice(self.pitch_ids)
        with self.client.get(f"/api/pitches/{pitch_id}", name="/api/pitches/{id}",
                             catch_response=True) as response:
            if response.status_code == 404:  # deleted by its creator meanwhile
                response.success()
                self.forget(pitch_id)
                return None
        return pitch_id

    def forget(self, pitch_id: int) -> None:
        self.creators.pop(pitch_id, None)
        if pitch_id in self.pitch_ids:
            self.pitch_ids.remove(pitch_id)

    def request_nda(self) -> None:
        pitch_id = self.view_pitch()
        if pitch_id is None:
            return
        body = {"pitch_id": pitch_id, "message": "We would like to read the full treatment."}
        with self.client.post("/api/info-requests", json=body, name="/api/info-requests",
                              headers=write_headers(), catch_response=True) as response:
            if response.status_code in (409, 422):  # already asked / pitch no longer public
                response.success()

    def notifications(self) -> None:
        self.client.get("/api/notifications?unread=true", name="/api/notifications")

    def messages(self, reply: bool) -> None:
        with self.client.get("/api/messages", name="/api/messages",
                             catch_response=True) as response:
            data = _json(response)
        if not reply or not isinstance(data, dict):
            return
        senders = [m.get("sender", {}).get("id") for m in data.get("items", [])]
        senders = [s for s in senders if isinstance(s, int) and s != self.user_id]
        if senders:
            self.send_message(random.choice(senders), None)

    def send_message(self, recipient: int, pitch_id: int | None) -> None:
        body: dict[str, Any] = {"recipient_id": recipient,
                                "body": "Thanks, let's set up a call next week."}
        if pitch_id is not None:
            body["pitch_id"] = pitch_id
        with self.client.post("/api/messages", json=body, name="/api/messages",
                              headers=write_headers(), catch_response=True) as response:
            if response.status_code == 422:  # the pitch was deleted meanwhile
                response.success()


class CreatorUser(PortalUser):
    """Logs in, watches the dashboard, writes and edits pitches, answers NDA requests."""

    portal = "creator"

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.own: list[int] = []

    @journey(3)
    def dashboard(self) -> None:
        self.client.get("/api/dashboard/creator/metrics", name="/api/dashboard/creator/metrics")

    @journey(1)
    def create_pitch(self) -> None:
        number = random.randint(1, 1_000_000)
        body = {
            "title": f"Load test feature {number}",
            "logline": "A courier crosses four regions before the network goes dark.",
            "synopsis": "When the last undersea cable fails, a courier must carry the "
                        "only copy of a film across four continents in seven days.",
            "genre": random.choice(GENRES),
            "budget_range": random.choice(BUDGET_RANGES),
            "status": "published",
        }
        with self.client.post("/api/pitches", json=body, name="/api/pitches",
                              headers=write_headers(), catch_response=True) as response:
            data = _json(response)
            if isinstance(data, dict) and isinstance(data.get("id"), int):
                self.own.append(data["id"])
        if len(self.own) > MAX_OWN_PITCHES:
            self.delete_pitch(self.own.pop(0))

    @journey(1)
    def update_pitch(self) -> None:
        if not self.own:
            self.create_pitch()
            return
        pitch_id = random.choice(self.own)
        body = {"logline": f"Revised {random.randint(1, 999)}: a courier races the blackout."}
        with self.client.put(f"/api/pitches/{pitch_id}", json=body, name="/api/pitches/{id}",
                             headers=write_headers(), catch_response=True) as response:
            if response.status_code == 404:  # a sibling session of this account deleted it
                response.success()
                self.own.remove(pitch_id)

    def delete_pitch(self, pitch_id: int) -> None:
        with self.client.delete(f"/api/pitches/{pitch_id}", name="/api/pitches/{id}",
                                headers=write_headers(), catch_response=True) as response:
            if response.status_code == 404:
                response.success()

    @journey(2)
    def answer_info_requests(self) -> None:
        with self.client.get("/api/info-requests?status=pending", name="/api/info-requests",
                             catch_response=True) as response:
            data = _json(response)
        items = data.get("items", []) if isinstance(data, dict) else []
        if not items:
            return
        request_id = random.choice(items).get("id")
        verb = "approve" if random.random() < 0.8 else "reject"
        with self.client.post(f"/api/info-requests/{request_id}/{verb}",
                              name=f"/api/info-requests/{{id}}/{verb}",
                              headers=write_headers(), catch_response=True) as response:
            if response.status_code in (404, 409):  # decided by a sibling session already
                response.success()

    @journey(1)
    def inbox(self) -> None:
        self.messages(reply=random.random() < 0.3)

    @journey(1)
    def check_notifications(self) -> None:
        self.notifications()


class InvestorUser(PortalUser):
    """Browses and filters pitches, reads them, asks for NDAs, follows the portfolio."""

    portal = "investor"

    @journey(4)
    def browse_pitches(self) -> None:
        self.browse()

    @journey(2)
    def filter_pitches(self) -> None:
        self.browse(genre=random.choice(GENRES), budget_range=random.choice(BUDGET_RANGES))

    @journey(4)
    def read_pitch(self) -> None:
        self.view_pitch()

    @journey(1)
    def ask_for_nda(self) -> None:
        self.request_nda()

    @journey(2)
    def portfolio(self) -> None:
        self.client.get("/api/dashboard/investor/metrics",
                        name="/api/dashboard/investor/metrics")

    @journey(1)
    def check_notifications(self) -> None:
        self.notifications()

    @journey(1)
    def message_creator(self) -> None:
        pitch_id = self.view_pitch()
        creator = self.creators.get(pitch_id or 0)
        if pitch_id is not None and creator and creator != self.user_id:
            self.send_message(creator, pitch_id)


class ProductionUser(PortalUser):
    """Browses, requests NDAs, follows approvals into full pitches, talks to creators."""

    portal = "production"

    @journey(3)
    def browse_pitches(self) -> None:
        self.browse()

    @journey(2)
    def read_pitch(self) -> None:
        self.view_pitch()

    @journey(1)
    def ask_for_nda(self) -> None:
        self.request_nda()

    @journey(2)
    def nda_approvals(self) -> None:
        with self.client.get("/api/info-requests?status=approved", name="/api/info-requests",
                             catch_response=True) as response:
            data = _json(response)
        items = data.get("items", []) if isinstance(data, dict) else []
        if items:
            pitch_id = (random.choice(items).get("pitch") or {}).get("id")
            if isinstance(pitch_id, int):
                with self.client.get(f"/api/pitches/{pitch_id}", name="/api/pitches/{id}",
                                     catch_response=True) as response:
                    if response.status_code == 404:
                        response.success()

    @journey(1)
    def dashboard(self) -> None:
        self.client.get("/api/dashboard/production/metrics",
                        name="/api/dashboard/production/metrics")

    @journey(1)
    def inbox(self) -> None:
        self.messages(reply=random.random() < 0.3)


class BrowserUser(PortalUser):
    """Anonymous: the public pitch list and details, and the analytics beacon."""

    portal = "browser"

    @journey(5)
    def list_pitches(self) -> None:
        self.browse()

    @journey(2)
    def filter_pitches(self) -> None:
        self.browse(genre=random.choice(GENRES))

    @journey(4)
    def read_pitch(self) -> None:
        pitch_id = self.view_pitch()
        if pitch_id is not None and random.random() < 0.25:
            body = {"event_type": "pitch.view", "pitch_id": pitch_id,
                    "properties": {"source": "loadtest"}}
            with self.client.post("/api/analytics/events", json=body,
                                  name="/api/analytics/events", headers=write_headers(),
                                  catch_response=True) as response:
                if response.status_code == 422:  # the pitch was deleted meanwhile
                    response.success()


USER_CLASSES: dict[str, type[PortalUser]] = {
    "creator": CreatorUser,
    "investor": InvestorUser,
    "production": ProductionUser,
    "browser": BrowserUser,
}


def _json(response: ResponseContextManager | Any) -> Any:
    try:
        return response.json()
    except Exception:  # noqa: BLE001 - an unparseable body is reported by its status already
        return None
