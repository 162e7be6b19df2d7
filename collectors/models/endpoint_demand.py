"""Service demand per endpoint, where the run lets it be attributed.

A process's CPU is one counter for all its endpoints, so per-endpoint demand is read from how
the CPU moved with the mix: over time bins, the CPU the platform spent is
``background × seconds + Σ_e D_e × completed_e`` (the utilisation law per endpoint, plus the
work no request causes: health checks, scrapes, timers). Non-negative least squares over the
bins gives each endpoint's ``D_e`` (CPU ms per request) and the background. It is only an
answer when the endpoints' rates moved independently enough across the bins: a run whose mix
stays proportional (every breakpoint step scales the same mix) cannot tell them apart, and the
report says so instead of inventing a split (a calibration run per journey would).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import optimize

from collectors.models.demand import CPU_METRIC

if TYPE_CHECKING:
    import pandas as pd

    from collectors.run import Run

__all__ = ["EndpointDemand", "EndpointShare", "endpoint_demand"]

# The mix must vary this much for the split to mean something: the design matrix's condition
# number (columns scaled to unit norm) above this says two endpoints' rates moved together.
MAX_CONDITION = 30.0
MIN_REQUESTS = 20  # an endpoint with fewer completed requests in the window is not split out


@dataclass(frozen=True)
class EndpointShare:
    endpoint: str
    requests: int
    demand_ms: float  # CPU ms per completed request of this endpoint
    cpu_share: float  # of the CPU the requests caused (background excluded)


@dataclass(frozen=True)
class EndpointDemand:
    """The split, or why there is none (`reason`)."""

    endpoints: tuple[EndpointShare, ...]
    background_cores: float | None  # CPU seconds per second no request caused
    r_squared: float | None
    bins: int
    reason: str = ""

    @property
    def attributed(self) -> bool:
        return bool(self.endpoints) and not self.reason

    def to_json(self) -> dict[str, Any]:
        return {
            "attributed": self.attributed, "reason": self.reason, "bins": self.bins,
            "background_cores": self.background_cores, "r_squared": self.r_squared,
            "endpoints": [{"endpoint": e.endpoint, "requests": e.requests,
                           "demand_ms": e.demand_ms, "cpu_share": e.cpu_share}
                          for e in self.endpoints],
        }


def endpoint_demand(run: Run, *, start: float | None = None, end: float | None = None,
                    bin_s: float = 5.0) -> EndpointDemand:
    """Per-endpoint CPU demand of the platform (every scraped process's CPU together)."""
    stats = _window(run.stats, start, end)
    service = run.service
    if stats.empty or service is None or service.empty:
        return EndpointDemand((), None, None, 0, "the run has no client stats or no scraped "
                                                 "service series in the window")
    cpu = service[service["metric"] == CPU_METRIC]
    if cpu.empty:
        return EndpointDemand((), None, None, 0, f"no {CPU_METRIC} series was scraped")
    origin = float(stats["t"].min())
    counts = _requests_per_bin(stats, origin, bin_s)
    busy = _cpu_per_bin(_window(cpu, start, end), origin, bin_s)
    bins = sorted(set(counts.index) & set(busy))
    return _split(counts.loc[bins], np.array([busy[b] for b in bins]), bin_s)


def _window(frame: pd.DataFrame, start: float | None, end: float | None) -> pd.DataFrame:
    keep = np.ones(len(frame), dtype=bool)
    if start is not None:
        keep &= frame["t"].to_numpy() >= start
    if end is not None:
        keep &= frame["t"].to_numpy() < end
    return frame[keep]


def _requests_per_bin(stats: pd.DataFrame, origin: float, bin_s: float) -> pd.DataFrame:
    binned = stats.assign(bin=((stats["t"] - origin) // bin_s).astype(int))
    table = binned.pivot_table(index="bin", columns="endpoint", values="requests",
                               aggfunc="sum", fill_value=0, observed=True)
    return table.astype(float)


def _cpu_per_bin(cpu: pd.DataFrame, origin: float, bin_s: float) -> dict[int, float]:
    """CPU seconds spent in each bin by every process, from reset-aware counter steps: a step
    between two scrapes is spent in the bin of their midpoint (the time it measured; scrapes
    are a second apart, bins five, so a step rarely straddles two bins)."""
    spent: dict[int, float] = {}
    for _, series in cpu.groupby(["target", "labels"], observed=True):
        ordered = series.sort_values("t")
        t = ordered["t"].to_numpy(dtype=float)
        v = ordered["value"].to_numpy(dtype=float)
        steps = np.where(np.diff(v) >= 0, np.diff(v), v[1:])
        for moment, step in zip((t[1:] + t[:-1]) / 2.0, steps, strict=True):
            key = int((moment - origin) // bin_s)
            spent[key] = spent.get(key, 0.0) + float(step)
    return spent


def _split(counts: pd.DataFrame, busy: np.ndarray, bin_s: float) -> EndpointDemand:
    totals = counts.sum()
    kept = [str(e) for e in totals.index if totals[e] >= MIN_REQUESTS]
    bins = len(counts)
    if not kept:
        return EndpointDemand((), None, None, bins, "no endpoint completed enough requests")
    if bins < len(kept) + 3:
        return EndpointDemand((), None, None, bins, f"{bins} time bins of {bin_s:g} s for "
                              f"{len(kept)} endpoints: too few to split the CPU between them")
    other = counts.drop(columns=kept).sum(axis=1).to_numpy()
    columns = [counts[e].to_numpy() for e in kept] + [other, np.full(bins, bin_s)]
    design = np.column_stack(columns)
    used = [i for i in range(design.shape[1]) if np.any(design[:, i])]
    scaled = design[:, used] / np.linalg.norm(design[:, used], axis=0)
    condition = float(np.linalg.cond(scaled))
    if not math.isfinite(condition) or condition > MAX_CONDITION:
        return EndpointDemand((), None, None, bins, (
            f"the endpoints' rates moved together across the run (condition number "
            f"{condition:.3g} > {MAX_CONDITION:g}): their CPU cannot be told apart; a run whose "
            "mix varies, or a calibration run per journey, would"))
    solution, _ = optimize.nnls(design[:, used], busy)
    coefficients = np.zeros(design.shape[1])
    coefficients[used] = solution
    fitted = design @ coefficients
    residual = float(np.sum((busy - fitted) ** 2))
    spread = float(np.sum((busy - busy.mean()) ** 2))
    caused = [coefficients[i] * float(totals[e]) for i, e in enumerate(kept)]
    caused_total = sum(caused) or 1.0
    shares = tuple(
        EndpointShare(e, int(totals[e]), coefficients[i] * 1000.0, caused[i] / caused_total)
        for i, e in enumerate(kept))
    return EndpointDemand(tuple(sorted(shares, key=lambda s: -s.demand_ms)),
                          float(coefficients[-1]), 1.0 - residual / spread if spread else None,
                          bins)
