"""Closed-model runs and coordinated omission: what a run shows, and the evidence.

In a closed model each user waits for its response before it thinks and sends again, so while
the service stalls the users send nothing: the slow period holds one request per user while
the healthy periods hold many, and service-time percentiles come out far lower than what a
user arriving at any moment would wait (coordinated omission). This module reads a run
directory and says so, with the evidence: what the users' pacing or think time is, against
the stalls observed (the longest single request, the longest stretch of whole seconds with no
completion), and the expected-interval-corrected figures where the pacing is constant (a
`pacing`, or a fixed think time above 0: `loadtests.journeys.PortalUser.pace`, recorded as
kind "corrected" as HdrHistogram's `record_corrected_value` does).

Pure over a `collectors.run.Run`; used by `collectors.summary` (summary.json's
`closed_model` section) and by the gate (the note on every latency check of such a run).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from collectors.hdr import Histogram
from collectors.run import Run, quantile_label

__all__ = [
    "OPEN_MODEL_ADVICE",
    "ClosedModelEvidence",
    "UserPacing",
    "closed_model_evidence",
    "closed_model_section",
    "user_pacing",
]

OPEN_MODEL_ADVICE = ("to judge what users wait, use the open model (open_model: arrivals at "
                     "a rate, latency from each intended start)")
_QUANTILES = (0.5, 0.9, 0.95, 0.99, 0.999)


@dataclass(frozen=True)
class UserPacing:
    """How a user class of a closed-model scenario spaces its journeys."""

    user_class: str
    low_s: float
    high_s: float
    pacing: bool  # True: a journey starts every low_s (constant pacing); False: think time

    @property
    def interval_s(self) -> float | None:
        """The constant expected interval the corrected histogram uses, or None."""
        if self.pacing or (self.low_s == self.high_s and self.low_s > 0):
            return self.low_s
        return None

    @property
    def text(self) -> str:
        if self.pacing:
            return f"{self.user_class} starts a journey every {self.low_s:g} s (pacing)"
        if self.low_s == self.high_s:
            return f"{self.user_class} thinks {self.low_s:g} s"
        return f"{self.user_class} thinks {self.low_s:g}-{self.high_s:g} s"

    def to_json(self) -> dict[str, Any]:
        return {"user_class": self.user_class, "pacing": self.pacing,
                "min_s": self.low_s, "max_s": self.high_s, "interval_s": self.interval_s}


def user_pacing(scenario: Mapping[str, Any]) -> tuple[UserPacing, ...] | None:
    """Each weighted user class's pacing, from the scenario as the manifest records it
    (`Scenario.to_json`); None when the scenario is not a closed-model one (an open model, or
    no load model recorded at all, as in synthetic runs)."""
    if "open_model" in scenario or not scenario.get("stages"):
        return None
    default_think = _range(scenario.get("think_time"), (1.0, 3.0))
    default_pacing = scenario.get("pacing")
    found = []
    for portal, spec in sorted((scenario.get("users") or {}).items()):
        spec = spec if isinstance(spec, Mapping) else {}
        if not float(spec.get("weight", 1.0) or 0.0) > 0:
            continue
        pacing = spec.get("pacing")
        if pacing is None and spec.get("think_time") is None:
            pacing = default_pacing
        if pacing is not None:
            found.append(UserPacing(str(portal), float(pacing), float(pacing), True))
        else:
            low, high = _range(spec.get("think_time"), default_think)
            found.append(UserPacing(str(portal), low, high, False))
    return tuple(found)


def _range(value: Any, default: tuple[float, float]) -> tuple[float, float]:
    if isinstance(value, Mapping):
        return float(value.get("min", default[0])), float(value.get("max", default[1]))
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value), float(value)
    return default


@dataclass(frozen=True)
class ClosedModelEvidence:
    """A closed-model run's pacing against the stalls it saw, over one window."""

    users: tuple[UserPacing, ...]
    longest_request_ms: float | None  # the longest service time recorded
    longest_gap_s: int  # the longest stretch of whole seconds with no completed request
    requests: int  # service-time samples of the classes with a corrected histogram
    corrected: Histogram | None  # expected-interval corrected (constant pacing only)

    @property
    def shortest_wait_s(self) -> float | None:
        waits = [u.low_s for u in self.users]
        return min(waits) if waits else None

    @property
    def omitted(self) -> int | None:
        """Requests the corrected histogram adds: what paced users did not send while they
        waited (None without a corrected histogram)."""
        if self.corrected is None:
            return None
        return max(0, self.corrected.total - self.requests)

    def note(self) -> str:
        """One sentence for a latency check of this run (the gate's `note`)."""
        users = "; ".join(u.text for u in self.users) or "users"
        stall = ("no request recorded" if self.longest_request_ms is None else
                 f"the longest request took {_ms(self.longest_request_ms)}")
        if self.longest_gap_s:
            stall += f", nothing completed for {self.longest_gap_s} s at a stretch"
        parts = [f"closed-model run: {users}; {stall}: a user waiting on a slow response sends "
                 "nothing meanwhile, so service-time percentiles leave out the requests it "
                 "would have sent (coordinated omission)"]
        wait = self.shortest_wait_s
        if self.longest_request_ms is not None and wait:
            ratio = self.longest_request_ms / 1000.0 / wait
            if ratio >= 1:
                parts.append(f"that stall spans about {ratio:.0f} of the shortest user wait")
        if self.corrected is not None and self.corrected.total:
            parts.append(f"corrected p99 {_ms(self.corrected.quantile(0.99))} "
                         f"({self.omitted} requests not sent; threshold scope kind: corrected)")
        elif not any(u.interval_s for u in self.users):
            parts.append("no user class has a constant pacing, so no corrected figure")
        parts.append(OPEN_MODEL_ADVICE)
        return "; ".join(parts)

    def to_json(self) -> dict[str, Any]:
        corrected: dict[str, Any] | None = None
        if self.corrected is not None:
            corrected = {quantile_label(q): self.corrected.quantile(q) for q in _QUANTILES}
            corrected["max"] = self.corrected.max_ms
            corrected["count"] = self.corrected.total
        return {
            "users": [u.to_json() for u in self.users],
            "longest_request_ms": self.longest_request_ms,
            "longest_gap_s": self.longest_gap_s,
            "corrected_latency_ms": corrected,
            "omitted_requests": self.omitted,
            "note": self.note(),
            "recommendation": OPEN_MODEL_ADVICE,
        }


def closed_model_evidence(run: Run, start: float | None = None, end: float | None = None
                          ) -> ClosedModelEvidence | None:
    """The evidence over [start, end) (the whole run when both are None); None when the run is
    not a closed-model one."""
    users = user_pacing(run.scenario)
    if users is None:
        return None
    service = run.histogram(start=start, end=end)
    corrected: Histogram | None = None
    requests = 0
    paced = sorted({k[2] for k in run.histogram_keys() if k[3] == "corrected"})
    if paced:
        corrected = run.histogram(user_class=paced, kind="corrected", start=start, end=end)
        requests = run.histogram(user_class=paced, start=start, end=end).total
    return ClosedModelEvidence(
        users=users, longest_request_ms=service.max_ms if service.total else None,
        longest_gap_s=_longest_gap_s(run, start, end), requests=requests, corrected=corrected)


def closed_model_section(run: Run, start: float | None = None, end: float | None = None
                         ) -> dict[str, Any]:
    """summary.json's `closed_model`: {} unless the run is a closed-model one."""
    evidence = closed_model_evidence(run, start, end)
    return {} if evidence is None else evidence.to_json()


def _longest_gap_s(run: Run, start: float | None, end: float | None) -> int:
    """Whole seconds between two seconds that had completions, none in between (rows of zero
    requests and missing rows alike)."""
    stats = run.stats
    if not len(stats):
        return 0
    t = stats["t"].to_numpy(dtype=float)
    keep = stats["requests"].to_numpy() > 0
    if start is not None:
        keep &= t >= start
    if end is not None:
        keep &= t < end
    seconds = np.unique(t[keep])
    if seconds.size < 2:
        return 0
    return int(max(0.0, float(np.diff(seconds).max()) - 1.0))


def _ms(value: float) -> str:
    return f"{value / 1000.0:.2f} s" if value >= 1000.0 else f"{value:.1f} ms"
