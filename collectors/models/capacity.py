"""Capacity beyond one machine, modelled from a run's concurrency steps.

Two standard models (Gunther, "Guerrilla Capacity Planning"; Jain, "The Art of Computer
Systems Performance Analysis"):

- the interactive response time law, N = X·(R + Z): N users who think Z seconds between
  requests answered in R seconds offer X requests per second;
- the Universal Scalability Law, X(N) = λN / (1 + σ(N−1) + κN(N−1)): λ is the throughput
  of one user with no contention, σ the serial fraction (contention), κ the crosstalk
  (coherency) cost. It is fitted by non-linear least squares (scipy) to the steps of a run,
  with confidence intervals from the fit's covariance.

Sizing (the what-if): along the fitted curve one instance's mean response time is
R(N) = N/X(N) − Z_eff (the law again, with the think time the run actually had), and its
p95 is R(N) times the p95/mean ratio the run measured. The largest N whose p95 meets the
target gives one instance's safe throughput; the users' required throughput, plus headroom,
divided by it gives the instances needed.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy import optimize, stats

from collectors.targets import PRODUCT_TARGETS

if TYPE_CHECKING:
    from collectors.run import Run

__all__ = [
    "CapacityError",
    "Interval",
    "UslFit",
    "LatencyModel",
    "WhatIf",
    "CapacityPlan",
    "InstanceDemand",
    "breakpoint_steps",
    "instance_demand",
    "usl_cross_check",
    "throughput_for",
    "response_time_for",
    "users_for",
    "usl_throughput",
    "fit_usl",
    "concurrency_steps",
    "latency_model",
    "plan_capacity",
]

FloatArray = NDArray[np.float64]


class CapacityError(ValueError):
    """The data cannot support the model (too few steps, non-positive values)."""


# --- interactive response time law -------------------------------------------------------

def throughput_for(users: float, response_s: float, think_s: float) -> float:
    """X = N / (R + Z)."""
    if response_s + think_s <= 0:
        raise CapacityError("response time + think time must be positive")
    return users / (response_s + think_s)


def response_time_for(users: float, throughput: float, think_s: float) -> float:
    """R = N / X − Z."""
    if throughput <= 0:
        raise CapacityError("throughput must be positive")
    return users / throughput - think_s


def users_for(throughput: float, response_s: float, think_s: float) -> float:
    """N = X · (R + Z)."""
    return throughput * (response_s + think_s)


# --- Universal Scalability Law -----------------------------------------------------------

def usl_throughput(n: ArrayLike, sigma: float, kappa: float, lam: float) -> FloatArray:
    """X(N) = λN / (1 + σ(N−1) + κN(N−1))."""
    n_arr = np.asarray(n, dtype=float)
    return np.asarray(lam * n_arr / (1.0 + sigma * (n_arr - 1.0) + kappa * n_arr * (n_arr - 1.0)))


@dataclass(frozen=True)
class Interval:
    low: float
    high: float

    def __contains__(self, value: object) -> bool:
        return isinstance(value, int | float) and self.low <= value <= self.high


@dataclass(frozen=True)
class UslFit:
    sigma: float
    kappa: float
    lam: float
    sigma_ci: Interval | None
    kappa_ci: Interval | None
    lam_ci: Interval | None
    covariance: tuple[tuple[float, ...], ...] | None
    r_squared: float
    points: int
    confidence: float
    max_users_measured: float

    def throughput(self, n: ArrayLike) -> FloatArray:
        return usl_throughput(n, self.sigma, self.kappa, self.lam)

    @property
    def peak_users(self) -> float:
        """N* = sqrt((1 − σ)/κ), where throughput peaks; infinite without crosstalk."""
        if self.kappa <= 0:
            return math.inf
        return math.sqrt(max(0.0, 1.0 - self.sigma) / self.kappa)

    @property
    def max_throughput(self) -> float:
        peak = self.peak_users
        if math.isinf(peak):
            return self.lam / self.sigma if self.sigma > 0 else math.inf
        return float(self.throughput(peak))

    def samples(self, count: int, seed: int = 0) -> FloatArray:
        """Parameter draws (σ, κ, λ) from the fit's asymptotic normal distribution."""
        mean = np.array([self.sigma, self.kappa, self.lam])
        if self.covariance is None:
            return np.tile(mean, (count, 1))
        rng = np.random.default_rng(seed)
        draws = rng.multivariate_normal(mean, np.array(self.covariance), size=count,
                                        check_valid="ignore")
        draws[:, 0:2] = np.clip(draws[:, 0:2], 0.0, 1.0)
        draws[:, 2] = np.clip(draws[:, 2], 1e-12, None)
        return np.asarray(draws, dtype=float)


def _validated_points(users: Sequence[float], throughput: Sequence[float]) -> tuple[
        FloatArray, FloatArray]:
    n = np.asarray(users, dtype=float)
    x = np.asarray(throughput, dtype=float)
    if n.shape != x.shape or n.ndim != 1:
        raise CapacityError("users and throughput must be two sequences of the same length")
    if len(np.unique(n)) < 3:
        distinct = len(np.unique(n))
        raise CapacityError(
            f"a USL fit needs at least 3 distinct concurrency steps, the run has {distinct}")
    if np.any(n <= 0) or np.any(x <= 0) or not np.all(np.isfinite(x)):
        raise CapacityError("concurrency and throughput must be positive numbers")
    return n, x


def _intervals(params: FloatArray, pcov: FloatArray, dof: int, confidence: float) -> list[
        Interval | None]:
    if dof <= 0 or not np.all(np.isfinite(pcov)):
        return [None, None, None]
    t = float(stats.t.ppf(0.5 + confidence / 2.0, dof))
    errors = np.sqrt(np.clip(np.diag(pcov), 0.0, None))
    lows = (params - t * errors).tolist()
    highs = (params + t * errors).tolist()
    # σ and κ cannot be negative; λ cannot be zero.
    lows[0], lows[1] = max(0.0, lows[0]), max(0.0, lows[1])
    lows[2] = max(1e-12, lows[2])
    return [Interval(lo, hi) for lo, hi in zip(lows, highs, strict=True)]


def fit_usl(
    users: Sequence[float], throughput: Sequence[float], *, confidence: float = 0.95,
) -> UslFit:
    """Least-squares USL fit with `confidence` intervals for σ, κ and λ."""
    n, x = _validated_points(users, throughput)
    lam0 = float(np.max(x / n))
    scale = np.array([1e-2, 1e-6, lam0])

    def model(nn: FloatArray, s: float, k: float, lam: float) -> FloatArray:
        return usl_throughput(nn, s * scale[0], k * scale[1], lam * scale[2])

    with warnings.catch_warnings():
        # An exact fit (no residual) makes scipy warn that the covariance is undefined.
        warnings.simplefilter("ignore", optimize.OptimizeWarning)
        try:
            raw, raw_cov = optimize.curve_fit(
                model, n, x, p0=[1.0, 1.0, 1.0], bounds=([0, 0, 1e-9], [100.0, 1e6, 1e3]),
                method="trf", maxfev=20_000)
        except RuntimeError as exc:
            raise CapacityError(f"the USL fit did not converge: {exc}") from None
    params = raw * scale
    pcov = raw_cov * np.outer(scale, scale)
    predicted = usl_throughput(n, *params)
    ss_res = float(np.sum((x - predicted) ** 2))
    ss_tot = float(np.sum((x - x.mean()) ** 2))
    cis = _intervals(params, pcov, len(n) - 3, confidence)
    cov = tuple(tuple(float(v) for v in row) for row in pcov) if np.all(np.isfinite(pcov)) else None
    return UslFit(
        sigma=float(params[0]), kappa=float(params[1]), lam=float(params[2]),
        sigma_ci=cis[0], kappa_ci=cis[1], lam_ci=cis[2], covariance=cov,
        r_squared=1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0, points=len(n),
        confidence=confidence, max_users_measured=float(n.max()),
    )


# --- concurrency steps from a run --------------------------------------------------------

def _segments(users: pd.Series) -> pd.Series:
    """A segment id that changes whenever the user count changes."""
    return (users.diff().fillna(0) != 0).cumsum()


def _ramp_bins(frame: pd.DataFrame, bins: int) -> pd.DataFrame:
    """For a ramp without plateaus: bin seconds by user count."""
    edges = np.unique(np.quantile(frame["users"], np.linspace(0, 1, bins + 1)))
    labels = pd.cut(frame["users"], edges, include_lowest=True)
    grouped = frame.groupby(labels, observed=True)
    out = grouped.agg(users=("users", "mean"), start=("t", "min"), end=("t", "max"),
                      seconds=("t", "size"), throughput=("rps", "mean"))
    return out.reset_index(drop=True)


def concurrency_steps(
    load: pd.DataFrame, *, min_hold_s: int = 10, settle_s: int = 5, ramp_bins: int = 8,
) -> pd.DataFrame:
    """One row per concurrency level the run held: users, start, end, seconds, throughput.

    Plateaus (the user count unchanged for at least `min_hold_s` seconds) are used, minus
    their first `settle_s` seconds; a run that only ramps is binned by user count instead.
    """
    need = {"t", "users", "rps"}
    if load is None or load.empty or not need <= set(load.columns):
        raise CapacityError("the run has no load time series (timeseries/load.parquet)")
    frame = load.sort_values("t")[["t", "users", "rps"]]
    frame = frame[frame["users"] > 0]
    rows = []
    for _, seg in frame.groupby(_segments(frame["users"]), sort=True):
        if len(seg) < min_hold_s:
            continue
        settled = seg.iloc[settle_s:]
        rows.append({"users": float(seg["users"].iloc[0]), "start": float(settled["t"].min()),
                     "end": float(settled["t"].max()) + 1.0, "seconds": len(settled),
                     "throughput": float(settled["rps"].mean())})
    steps = pd.DataFrame(rows, columns=["users", "start", "end", "seconds", "throughput"])
    # Too few plateaus, but a ramp through many levels: bin the ramp instead.
    if steps["users"].nunique() >= 3 or frame["users"].nunique() < 3 * min_hold_s:
        return steps
    binned = _ramp_bins(frame, ramp_bins)
    return binned.assign(end=binned["end"] + 1.0)


# --- latency along the curve and sizing --------------------------------------------------

@dataclass(frozen=True)
class LatencyModel:
    """Mean and p95 response time of one instance along the fitted USL curve."""

    think_eff_s: float
    p95_ratio: float
    min_response_s: float

    def mean_response(self, fit: UslFit, n: ArrayLike) -> FloatArray:
        n_arr = np.asarray(n, dtype=float)
        r = n_arr / fit.throughput(n_arr) - self.think_eff_s
        return np.asarray(np.maximum(r, self.min_response_s))

    def p95(self, fit: UslFit, n: ArrayLike) -> FloatArray:
        return self.mean_response(fit, n) * self.p95_ratio


def latency_model(steps: pd.DataFrame, think_time_s: float | None = None) -> LatencyModel:
    """From steps with mean_ms and p95_ms columns: the effective think time and p95/mean.

    The run's own think time is read back from the law (Z = N/X − R) so that client
    overhead is counted; `think_time_s` is used only when the steps carry no mean.
    """
    if "p95_ms" not in steps or steps["p95_ms"].isna().all():
        raise CapacityError("the concurrency steps carry no p95 latency")
    usable = steps.dropna(subset=["p95_ms"])
    usable = usable[usable["throughput"] > 0]
    has_mean = "mean_ms" in usable and usable["mean_ms"].notna().all()
    mean_s = (usable["mean_ms"] / 1000.0) if has_mean else None
    if mean_s is not None:
        think = float(np.median(usable["users"] / usable["throughput"] - mean_s))
        ratio = float(np.median(usable["p95_ms"] / 1000.0 / mean_s))
        floor = float(mean_s.min())
    elif think_time_s is not None:
        r = usable["users"] / usable["throughput"] - think_time_s
        think, ratio, floor = think_time_s, 1.0, float(max(r.min(), 1e-4))
    else:
        raise CapacityError("mean latency per step or the think time is needed")
    return LatencyModel(max(think, 0.0), max(ratio, 1.0), max(floor, 1e-4))


@dataclass(frozen=True)
class WhatIf:
    """The question the capacity plan answers; by default the product's (collectors.targets):
    its users at its p95 target. Think time and headroom are assumptions (docs/targets.md)."""

    users: float = float(PRODUCT_TARGETS.users)
    think_time_s: float = 30.0
    p95_target_ms: float = PRODUCT_TARGETS.p95_ms
    headroom: float = 0.3  # spare fraction kept above the required throughput

    def __post_init__(self) -> None:
        if self.users <= 0 or self.think_time_s < 0 or self.p95_target_ms <= 0:
            raise CapacityError("users and p95 target must be positive, think time >= 0")
        if self.headroom < 0:
            raise CapacityError("headroom must not be negative")


@dataclass(frozen=True)
class CapacityPlan:
    what_if: WhatIf
    required_rps: float
    response_s: float
    per_instance_users: float | None
    per_instance_rps: float | None
    instances: int | None
    instances_ci: Interval | None
    extrapolated: bool
    passes: bool
    reasons: tuple[str, ...]


def _users_at_target(
    sigma: FloatArray, kappa: FloatArray, lam: FloatArray, model: LatencyModel, target_s: float,
) -> FloatArray:
    """Largest N with p95(N) <= target: solve κN² + (σ−κ)N + (1−σ) − λ(T/q + Z) = 0."""
    c = (1.0 - sigma) - lam * (target_s / model.p95_ratio + model.think_eff_s)
    b = sigma - kappa
    with np.errstate(divide="ignore", invalid="ignore"):
        disc = np.sqrt(np.maximum(b * b - 4.0 * kappa * c, 0.0))
        quad = (-b + disc) / (2.0 * kappa)
        # No contention at all: R is flat, so the target holds for every N or for none.
        lin = np.where(b > 0, -c / b, np.where(c <= 0, np.inf, np.nan))
    n = np.where(kappa > 0, quad, lin)
    peak = np.where(kappa > 0, np.sqrt(np.maximum(1.0 - sigma, 0.0) / np.where(
        kappa > 0, kappa, 1.0)), np.inf)
    return np.asarray(np.minimum(n, peak))


def _size(
    params: FloatArray, model: LatencyModel, what: WhatIf, limit_n: float,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per-instance users, per-instance rps and instances for each (σ, κ, λ) row."""
    sigma, kappa, lam = params[:, 0], params[:, 1], params[:, 2]
    target = what.p95_target_ms / 1000.0
    n_t = np.minimum(_users_at_target(sigma, kappa, lam, model, target), limit_n)
    floor_ok = model.min_response_s * model.p95_ratio <= target
    n_t = np.where((n_t >= 1.0) & floor_ok, n_t, np.nan)
    x_t = lam * n_t / (1.0 + sigma * (n_t - 1.0) + kappa * n_t * (n_t - 1.0))
    r_t = np.maximum(n_t / x_t - model.think_eff_s, model.min_response_s)
    required = what.users / (r_t + what.think_time_s)
    instances = np.ceil(required * (1.0 + what.headroom) / x_t)
    return n_t, x_t, instances


def plan_capacity(
    fit: UslFit, model: LatencyModel, what: WhatIf, *, extrapolation_limit: float = 4.0,
    max_instances: int | None = None, ci_samples: int = 2000,
) -> CapacityPlan:
    """Instances needed for `what`, with an interval from the fit's parameter uncertainty."""
    limit_n = fit.max_users_measured * extrapolation_limit
    point = np.array([[fit.sigma, fit.kappa, fit.lam]])
    n_t, x_t, inst = (float(v[0]) for v in _size(point, model, what, limit_n))
    reasons: list[str] = []
    floor_p95_ms = float(model.p95(fit, np.array([1.0]))[0]) * 1000.0
    if math.isnan(n_t):
        reasons.append(f"p95 target {what.p95_target_ms:g} ms is below one instance's p95 at "
                       f"light load ({floor_p95_ms:.1f} ms)")
        r_law = model.min_response_s
        required = throughput_for(what.users, r_law, what.think_time_s)
        return CapacityPlan(what, required, r_law, None, None, None, None, False, False,
                            tuple(reasons))
    r_t = max(n_t / x_t - model.think_eff_s, model.min_response_s)
    required = throughput_for(what.users, r_t, what.think_time_s)
    extrapolated = n_t > fit.max_users_measured
    if extrapolated:
        reasons.append(f"per-instance operating point ({n_t:,.0f} users) is beyond the "
                       f"largest measured step ({fit.max_users_measured:,.0f})")
    ci = None
    if fit.covariance is not None and ci_samples > 0:
        _, _, sampled = _size(fit.samples(ci_samples), model, what, limit_n)
        sampled = sampled[np.isfinite(sampled)]
        if sampled.size:
            ci = Interval(float(np.percentile(sampled, 2.5)), float(np.percentile(sampled, 97.5)))
    passes = max_instances is None or inst <= max_instances
    if not passes:
        reasons.append(f"{inst:,.0f} instances needed, more than the {max_instances:,} allowed")
    return CapacityPlan(what, required, r_t, n_t, x_t, int(inst), ci, extrapolated, passes,
                        tuple(reasons))


# --- measured steps, service demand and the USL as cross-checks ------------------------------

def breakpoint_steps(run: Run) -> pd.DataFrame:
    """One row per load step of the run (contract 3; ``collectors.models.steps``)."""
    from collectors.models.steps import breakpoint_steps as steps_of

    return steps_of(run)


@dataclass(frozen=True)
class InstanceDemand:
    """What service demand says about one instance (``collectors.models.demand``), or why
    nothing: X_max (the bottleneck's cores ÷ its CPU demand), the cores an instance's
    processes can use, and the whole instance's CPU ms per completed request."""

    x_max_rps: float | None
    bottleneck: str | None
    cores: float | None
    request_ms: float | None
    note: str
    report: dict[str, object] | None = None


def instance_demand(run: Run, *, start: float | None = None,
                    end: float | None = None) -> InstanceDemand:
    """Service demand over [start, end) of the run; a run without scraped CPU says so."""
    try:
        from collectors.models.demand import service_demand
    except ImportError:
        return InstanceDemand(None, None, None, None, "service demand is not available "
                              "(collectors.models.demand is missing)")
    try:
        report = service_demand(run, start=start, end=end)
    except (ValueError, KeyError, LookupError) as exc:
        return InstanceDemand(None, None, None, None, f"no service demand: {exc}")
    processes = tuple(getattr(report, "processes", ()) or ())
    bottleneck = getattr(report, "bottleneck", None)
    x_max = getattr(report, "x_max_rps", None)
    if not processes or bottleneck is None or not isinstance(x_max, int | float) or not (
            math.isfinite(x_max) and x_max > 0):
        return InstanceDemand(None, None, None, None,
                              "no CPU series: the run scraped no process_cpu_seconds_total")
    cores = float(sum(float(getattr(p, "cores", 0.0)) for p in processes))
    per_request = getattr(report, "per_run_request_ms", None)
    as_json = report.to_json() if hasattr(report, "to_json") else None
    return InstanceDemand(
        float(x_max), str(getattr(bottleneck, "process", "")), cores or None,
        float(per_request) if isinstance(per_request, int | float) else None,
        f"bottleneck {getattr(bottleneck, 'process', '?')}: "
        f"{float(getattr(bottleneck, 'demand_ms', math.nan)):.3g} CPU ms per request on "
        f"{float(getattr(bottleneck, 'cores', math.nan)):g} core(s)",
        as_json if isinstance(as_json, dict) else None)


def usl_cross_check(steps: pd.DataFrame) -> tuple[UslFit | None, str]:
    """The USL fitted to the steps' throughput against the concurrency in the system, N = X·R
    by Little's law (R the step's mean response time); with its note, or why none."""
    usable = steps.dropna(subset=["throughput", "mean_ms"])
    usable = usable[(usable["throughput"] > 0) & (usable["mean_ms"] > 0)]
    n = (usable["throughput"] * usable["mean_ms"] / 1000.0).tolist()
    try:
        fit = fit_usl(n, usable["throughput"].tolist())
    except CapacityError as exc:
        return None, str(exc)
    peak = fit.max_throughput
    text = ("no peak within reach (no contention measured)" if math.isinf(peak)
            else f"peak {peak:,.1f} req/s")
    return fit, f"USL on N = X·R of {fit.points} steps (R² {fit.r_squared:.3f}): {text}"
