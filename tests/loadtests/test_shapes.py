"""Load shapes as pure functions of time."""

from __future__ import annotations

import math

import pytest

from loadtests.scenario import OpenModel, Stage
from loadtests.shapes import (
    ArrivalSchedule,
    RateSegment,
    closed_plan,
    open_plan,
    rate_segments,
    scale_stages,
)


def stage(**fields: object) -> Stage:
    return Stage.model_validate(fields)


def test_ramp_hold_ramp_reads_as_locust_ticks() -> None:
    plan = closed_plan([
        stage(kind="ramp", duration=10, users=100),
        stage(kind="hold", duration=20),
        stage(kind="ramp", duration=5, users=0),
    ])
    assert plan.duration_s == 35
    assert plan.max_users == 100
    first, hold, down = (plan.at(t) for t in (0.0, 15.0, 31.0))
    assert (first.users, first.spawn_rate) == (100, 10.0)  # type: ignore[union-attr]
    assert hold.users == 100 and hold.label == "2:hold"  # type: ignore[union-attr]
    assert (down.users, down.spawn_rate) == (0, 20.0)  # type: ignore[union-attr]
    assert plan.at(35.0) is None  # the plan is over: the shape ends the run
    assert plan.users_at(5) == pytest.approx(50)
    assert plan.users_at(32.5) == pytest.approx(50)


def test_spike_rises_holds_and_falls_back_inside_its_duration() -> None:
    plan = closed_plan([
        stage(kind="hold", duration=10, users=50),
        stage(kind="spike", duration=30, users=500, rise=5),
        stage(kind="hold", duration=10),
    ])
    assert plan.duration_s == 50
    spike, fall, after = plan.at(12.0), plan.at(37.0), plan.at(45.0)
    assert spike is not None and (spike.users, spike.spawn_rate) == (500, 90.0)
    assert fall is not None and (fall.users, fall.spawn_rate) == (50, 90.0)
    assert after is not None and after.users == 50  # back to the level before the spike
    assert plan.users_at(20) == 500 and plan.users_at(45) == 50


def test_step_climbs_in_equal_steps() -> None:
    plan = closed_plan([stage(kind="step", duration=40, users=100, steps=4, rise=2)])
    levels = [plan.at(t).users for t in (1, 11, 21, 31)]  # type: ignore[union-attr]
    assert levels == [25, 50, 75, 100]
    assert {s.spawn_rate for s in plan.segments} == {12.5}


def test_scaling_keeps_the_shape() -> None:
    stages = [stage(kind="ramp", duration=60, users=1000), stage(kind="hold", duration=240),
              stage(kind="spike", duration=60, users=3000, rise=10)]
    scaled = scale_stages(stages, duration_s=36, users=30)
    assert [s.duration for s in scaled] == pytest.approx([6, 24, 6])
    assert [s.users for s in scaled] == [10, None, 30]
    assert scaled[2].rise == pytest.approx(2)  # a spike's rise shrinks with it


def test_constant_arrivals_are_evenly_spaced_like_wrk2() -> None:
    model = OpenModel(arrival="constant", rate=10, duration=2, pool_users=5)
    schedule = ArrivalSchedule(rate_segments(model))
    times = [schedule.next() for _ in range(21)]
    assert times[:3] == pytest.approx([0.05, 0.15, 0.25])
    assert times[19] == pytest.approx(1.95)
    assert times[20] is None and schedule.total == 20


def test_ramping_arrivals_follow_the_integral_of_the_rate() -> None:
    segments = (RateSegment(0, 10, 0, 20), RateSegment(10, 20, 20, 20))
    schedule = ArrivalSchedule(segments)
    assert schedule.total == 300  # 100 while ramping (triangle) + 200 while holding
    # arrival k is intended when the rate's integral t^2 (t <= 10) reaches k + 1/2
    for k in (0, 10, 49, 99):
        assert schedule.time_of(k) == pytest.approx(math.sqrt(k + 0.5))
    assert schedule.time_of(100) == pytest.approx(10 + 0.5 / 20)
    times = [schedule.time_of(k) for k in range(schedule.total)]
    pairs = zip(times, times[1:], strict=False)
    assert all(a is not None and b is not None and a < b for a, b in pairs)


def test_a_worker_takes_its_share_of_the_arrivals() -> None:
    segments = (RateSegment(0, 10, 40, 40),)
    shares = [ArrivalSchedule(segments, share).total for share in (0.3, 0.25, 0.25, 0.2)]
    assert shares == [120, 100, 100, 80]


def test_the_open_model_spawns_its_pool_before_arrivals() -> None:
    model = OpenModel(arrival="ramping", start_rate=5, pool_users=100, pool_spawn_rate=50,
                      stages=({"duration": 30, "rate": 60}, {"duration": 60, "rate": 60}))
    plan = open_plan(model)
    assert plan.lead_in_s == 3.0
    assert plan.duration_s == 93.0
    assert plan.at(50.0).users == 100  # type: ignore[union-attr]
