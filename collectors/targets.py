"""The product's targets, defined once: what the suite exists to prove or disprove.

Every view that names a target (the gate's checks, the capacity and cost projections, the
dashboard, the console) reads it from here; `docs/targets.md` lists each with the document
and section it comes from. The source documents are the Pitchey team's architecture notes;
their titles are quoted so a reader can find the passage without the files.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AUTO_SCALING_DOC", "PRODUCT_TARGETS", "ProductTargets", "Source"]

# The title of the document most targets come from (it is the spec of the geo topology).
AUTO_SCALING_DOC = "Pitchey Platform - Auto-Scaling & Load Balancing Architecture"


@dataclass(frozen=True)
class Source:
    """Where a target comes from: a document's title and the section that states it."""

    document: str
    section: str
    quote: str

    def __str__(self) -> str:
        return f'"{self.document}", § {self.section} ("{self.quote}")'


@dataclass(frozen=True)
class ProductTargets:
    """The claim: `users` concurrent users at p95 below `p95_ms`, errors below `error_rate`,
    for at most `budget_usd_month` a month."""

    p95_ms: float = 100.0
    users: int = 100_000
    error_rate: float = 0.001  # a fraction: 0.1 %
    budget_usd_month: float = 5000.0

    @property
    def sources(self) -> dict[str, Source]:
        return {
            "p95_ms": Source(AUTO_SCALING_DOC, "Performance Benchmarks › Current Performance",
                             "Global Latency: <100ms (P95)"),
            "users": Source(AUTO_SCALING_DOC, "Performance Benchmarks › Current Performance",
                            "Concurrent Users: 100,000+"),
            "error_rate": Source(AUTO_SCALING_DOC,
                                 "Performance Benchmarks › Current Performance",
                                 "Error Rate: <0.1%"),
            "budget_usd_month": Source(AUTO_SCALING_DOC,
                                       "Monitoring & Alerting › Key Performance Indicators",
                                       "cost: { budget: 5000.00 }"),
        }


PRODUCT_TARGETS = ProductTargets()
