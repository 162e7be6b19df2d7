"""Locust event wiring for the master, the workers and a single local process.

Workers: record every request (`request` event) into the runtime's per-second cells, sample
CPU and loop lag, and ship everything new with Locust's own report (`report_to_master`). On
"pitchey_flush" a worker sends what is left as "pitchey_final".

Master: reads the scenario (`--pitchey-scenario`), hands it to workers inside the options
Locust already sends them (`--pitchey-scenario-json`), places users by region
(`loadtests.dispatch`), merges reports (`worker_report`) into a `MasterBook` that writes the
stream (`--pitchey-stream`), and plays the plan through `ScenarioShape`.

A worker learns its region from PITCHEY_LOAD_REGION, not from an option: Locust copies the
master's custom options onto every worker, which would give every worker the same region.
"""

from __future__ import annotations

import functools
import gc
import json
import logging
import sys
import time
from typing import Any

import gevent
from locust import events
from locust.env import Environment
from locust.runners import LocalRunner, MasterRunner, WorkerRunner

from loadtests.breakpoint import StepWatch
from loadtests.heap import HeapFreezer
from loadtests.journeys import PortalUser
from loadtests.master import MasterBook
from loadtests.runtime import WorkerRuntime, runtime_of
from loadtests.scenario import Scenario, ScenarioError, load_scenario, scenario_from_json
from loadtests.selfcheck import CpuMeter, Limits
from loadtests.shapes import LoadPlan, Segment, plan_for
from loadtests.stream import StreamWriter, stop_requested
from loadtests.weighting import worker_weights

__all__ = ["install", "portal_classes"]

log = logging.getLogger("pitchey.loadtests")
REGION_WAIT_S = 30.0
_installed = False


def _listen(hook: Any, listener: Any) -> None:
    """Locust's EventHook.add_listener is untyped; one typed door for every listener."""
    hook.add_listener(listener)


def install() -> None:
    """Register the listeners once (the locustfile calls this at import)."""
    global _installed
    if _installed:
        return
    _installed = True
    _listen(events.init_command_line_parser, _add_options)
    _listen(events.init, _on_init)


def _add_options(parser: Any, **_: Any) -> None:
    parser.add_argument("--pitchey-scenario", default="", env_var="PITCHEY_SCENARIO",
                        help="scenario file to play (master)")
    parser.add_argument("--pitchey-stream", default="", env_var="PITCHEY_STREAM",
                        help="JSON-lines file the master writes its measurements to")
    parser.add_argument("--pitchey-scenario-json", default="", include_in_web_ui=False,
                        help="(set by the master for its workers)")


def _on_init(environment: Environment, **_: Any) -> None:
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        _init_worker(environment, runner)
    elif isinstance(runner, MasterRunner):
        _init_master(environment, runner)
    elif isinstance(runner, LocalRunner):
        _init_master(environment, runner)
        _init_worker(environment, runner)


# --- workers ---------------------------------------------------------------------------------


def _cache_default_args() -> None:
    """Work around a Locust 2.47 worker stall: on every spawn message the worker rebuilds its
    whole argument parser once per option (`k not in default_args_dict()` inside a dict
    comprehension, locust/runners.py), blocking the event loop for ~0.5 s a second while
    users ramp, which delays every request timer. The defaults never change in a process,
    so one computation serves them all."""
    from locust import argument_parser

    original = argument_parser.default_args_dict
    if not getattr(original, "_pitchey_cached", False):
        cached = functools.cache(original)
        cached._pitchey_cached = True  # type: ignore[attr-defined]
        argument_parser.default_args_dict = cached


def _init_worker(environment: Environment, runner: Any) -> None:
    _cache_default_args()
    runtime = runtime_of(environment)
    PortalUser.default_headers = {"X-Pitchey-Region": runtime.region}

    def on_report(client_id: str, data: dict[str, Any], **_: Any) -> None:
        data["pitchey"] = runtime.report()

    def on_plan(environment: Environment, msg: Any, **_: Any) -> None:
        runtime.plan_arrivals(float(msg.data["share"]), float(msg.data["start"]))

    def on_flush(environment: Environment, msg: Any, **_: Any) -> None:
        runner.send_message("pitchey_final", runtime.report(final=True))

    _listen(environment.events.request, runtime.on_request)
    _listen(environment.events.test_start, lambda **_: _worker_start(environment, runtime))
    _listen(environment.events.spawning_complete, lambda **_: _freeze_users())
    if isinstance(runner, WorkerRunner):
        _listen(environment.events.report_to_master, on_report)
        runner.register_message("pitchey_who", lambda environment, msg, **_: _hello(runner))
        runner.register_message("pitchey_plan", on_plan)
        runner.register_message("pitchey_flush", on_flush)
        _hello(runner)


def _hello(runner: WorkerRunner) -> None:
    runner.send_message("pitchey_hello", {"region": runtime_of(runner.environment).region})


def _worker_start(environment: Environment, runtime: WorkerRuntime) -> None:
    options = environment.parsed_options
    text = getattr(options, "pitchey_scenario_json", "") if options else ""
    if text and runtime.scenario is None:
        scenario = scenario_from_json(text)
        runtime.configure(scenario)
        _configure_users(environment, scenario)
    if not runtime.samplers_started:
        runtime.samplers_started = True
        gevent.spawn(_probe_loop, runtime)
        gevent.spawn(_sample_loop, runtime)


def _configure_users(environment: Environment, scenario: Scenario) -> None:
    for user_class in portal_classes(environment).values():
        user_class.network_timeout = scenario.request_timeout
        user_class.connection_timeout = min(10.0, scenario.request_timeout)
    if scenario.connection_pool:
        from geventhttpclient.client import HTTPClientPool

        # users share connections, so open files do not cap the users a worker holds
        PortalUser.client_pool = HTTPClientPool(concurrency=scenario.connection_pool)


def _freeze_users() -> None:
    """Users spawned: move them out of the garbage collector's sight.

    Tens of thousands of users are millions of long-lived objects; every full collection
    walks them all (tens of milliseconds at 20,000 users, seconds at 100,000) and every
    request in flight waits. `gc.freeze()` (constant time) puts what exists now in the
    permanent generation; objects made later are collected as usual, and frozen ones are still
    freed by reference counting when dropped.
    """
    gc.freeze()


def _probe_loop(runtime: WorkerRuntime) -> None:
    interval = runtime.probe.interval_s
    while True:
        started = time.perf_counter()
        gevent.sleep(interval)
        runtime.probe.observe(time.perf_counter() - started)


def _sample_loop(runtime: WorkerRuntime) -> None:
    meter = CpuMeter()
    freezer = HeapFreezer(freeze=_freeze_users)
    next_at = time.time() + 1.0
    while True:
        gevent.sleep(max(0.0, next_at - time.time()))
        next_at += 1.0
        runtime.sample_generator(meter.read())
        freezer.tick(time.monotonic())


# --- master ----------------------------------------------------------------------------------


class _MasterState:
    def __init__(self, scenario: Scenario, plan: LoadPlan, book: MasterBook) -> None:
        self.scenario = scenario
        self.plan = plan
        self.book = book
        self.finals: set[str] = set()
        self.planned_arrivals = False


def _init_master(environment: Environment, runner: Any) -> None:
    options = environment.parsed_options
    path = getattr(options, "pitchey_scenario", "") if options else ""
    if not path:
        _fail(runner, "no scenario: pass --pitchey-scenario FILE (or PITCHEY_SCENARIO)")
        return
    try:
        scenario = load_scenario(path)
    except ScenarioError as exc:
        _fail(runner, str(exc))
        return
    options.pitchey_scenario_json = json.dumps(scenario.to_json())  # type: ignore[union-attr]
    stream_path = getattr(options, "pitchey_stream", "") or "pitchey-stream.jsonl"
    check = scenario.self_check
    limits = Limits(check.cpu_percent, check.cpu_sustain, check.lag_p95,
                    check.unreachable_ratio, cpu_share=check.cpu_share,
                    late_share=check.late_share)
    model = scenario.open_model
    tolerance = model.late_tolerance if model else None
    shape = environment.shape_class
    steps = (StepWatch.for_model(model, scenario.self_check)
             if model is not None and model.arrival == "steps" else None)
    # a step that breaks ends the run like a stop request (cleanly, with the final reports)
    on_stop = shape.request_stop if shape is not None and hasattr(shape, "request_stop") \
        else None
    book = MasterBook(StreamWriter(stream_path), limits, open_model_tolerance_ms=tolerance,
                      warmup_s=scenario.warmup, steps=steps, on_stop=on_stop)
    if book.open_model is not None and model is not None:
        book.open_model.pool_users = model.pool_users
    plan = plan_for(scenario)
    state = _MasterState(scenario, plan, book)
    book.stream.write("meta", t=time.time(), scenario=scenario.name, planned_s=plan.duration_s,
                      lead_in_s=plan.lead_in_s, regions=scenario.regions)
    class_weights = _weigh_classes(environment, scenario)
    if isinstance(runner, MasterRunner):
        _wire_master(environment, runner, state, class_weights)
    else:
        book.hello("local", runtime_of(environment).region, time.time())
    _listen(environment.events.test_start, lambda **_: _master_start(environment, state))
    _listen(environment.events.quitting, lambda **_: _master_quit(environment, state))
    if shape is not None and hasattr(shape, "configure"):
        shape.configure(
            plan,
            on_stage=lambda segment: _stage(book, segment),
            request_finals=lambda: _request_finals(environment, state),
            finals_done=lambda: _finals_done(environment, state),
        )
    gevent.spawn(_master_loop, environment, state)


def portal_classes(environment: Environment) -> dict[str, type[PortalUser]]:
    """The locustfile's user class for each portal (the suite's own, or a test's)."""
    return {cls.portal: cls for cls in environment.user_classes
            if isinstance(cls, type) and issubclass(cls, PortalUser) and cls.portal}


def _wire_master(environment: Environment, runner: MasterRunner, state: _MasterState,
                 class_weights: dict[str, float]) -> None:
    from loadtests.dispatch import region_dispatcher

    book = state.book

    def on_hello(environment: Environment, msg: Any, **_: Any) -> None:
        book.hello(msg.node_id, str(msg.data.get("region", "unknown")), time.time())

    def on_final(environment: Environment, msg: Any, **_: Any) -> None:
        _final(state, msg.node_id, msg.data)

    def on_worker_report(client_id: str, data: dict[str, Any], **_: Any) -> None:
        if "pitchey" in data:
            book.report(client_id, data["pitchey"], time.time())

    environment.dispatcher_class = region_dispatcher(
        lambda: book.regions, state.scenario.regions, class_weights
    )
    runner.register_message("pitchey_hello", on_hello)
    runner.register_message("pitchey_final", on_final)
    _listen(environment.events.worker_report, on_worker_report)


def _weigh_classes(environment: Environment, scenario: Scenario) -> dict[str, float]:
    """Only the scenario's classes with a weight run; Locust's own weights mirror the mix.
    Returns {class name: weight} for the dispatcher."""
    classes = portal_classes(environment)
    missing = [p for p, spec in scenario.users.items() if spec.weight > 0 and p not in classes]
    if missing:
        log.warning("the locustfile has no user class for %s; those users are skipped",
                    ", ".join(missing))
    chosen = {p: spec.weight for p, spec in scenario.users.items()
              if spec.weight > 0 and p in classes}
    for portal, weight in chosen.items():
        classes[portal].weight = max(1, round(weight * 100))
    environment.user_classes = [classes[p] for p in chosen]
    return {classes[p].__name__: weight for p, weight in chosen.items()}


def _fail(runner: Any, message: str) -> None:
    print(f"pitchey: {message}", file=sys.stderr, flush=True)
    runner.environment.process_exit_code = 4
    gevent.spawn_later(0.1, runner.quit)


def _stage(book: MasterBook, segment: Segment) -> None:
    book.start(time.time())
    book.event(time.time(), "stage", stage=segment.label, users=segment.users,
               spawn_rate=round(segment.spawn_rate, 3))


def _master_start(environment: Environment, state: _MasterState) -> None:
    """Before the first users: know every worker's region, give each its arrival share."""
    runner = environment.runner
    if isinstance(runner, MasterRunner):
        expected = int(getattr(environment.parsed_options, "expect_workers", 1) or 1)
        deadline = time.monotonic() + REGION_WAIT_S
        while len(state.book.regions) < expected and time.monotonic() < deadline:
            runner.send_message("pitchey_who")
            gevent.sleep(0.5)
        missing = expected - len(state.book.regions)
        if missing > 0:
            log.warning("%d worker(s) never announced a region; they get average weight", missing)
    if state.scenario.open_model is not None and not state.planned_arrivals:
        state.planned_arrivals = True
        start = time.time() + state.plan.lead_in_s
        if state.book.steps is not None:
            state.book.steps.begin(start)
        shares = worker_weights(dict(state.book.regions), state.scenario.regions)
        total = sum(shares.values()) or 1.0
        for worker, weight in shares.items():
            data = {"share": weight / total, "start": start}
            if isinstance(runner, MasterRunner):
                runner.send_message("pitchey_plan", data, client_id=worker)
            else:
                runtime_of(environment).plan_arrivals(data["share"], data["start"])


def _request_finals(environment: Environment, state: _MasterState) -> None:
    runner = environment.runner
    if isinstance(runner, MasterRunner):
        runner.send_message("pitchey_flush")
    else:
        _final(state, "local", runtime_of(environment).report(final=True))


def _final(state: _MasterState, worker: str, data: dict[str, Any]) -> None:
    state.book.report(worker, data, time.time())
    state.finals.add(worker)


def _finals_done(environment: Environment, state: _MasterState) -> bool:
    return set(state.book.regions) <= state.finals


def _master_loop(environment: Environment, state: _MasterState) -> None:
    """Once a second: merge what every worker has reported past, write it, watch for stops."""
    next_at = time.time() + 1.0
    while True:
        gevent.sleep(max(0.0, next_at - time.time()))
        next_at += 1.0
        try:
            _master_tick(environment, state)
        except Exception:  # a bad report must not stop the stream; it is logged
            log.exception("pitchey: the master's once-a-second merge failed")


def _master_tick(environment: Environment, state: _MasterState) -> None:
    runner = environment.runner
    shape = environment.shape_class
    now = time.time()
    if isinstance(runner, LocalRunner):
        state.book.report("local", runtime_of(environment).report(), now)
    reason = stop_requested(state.book.stream.path)
    if reason and shape is not None and hasattr(shape, "request_stop"):
        shape.request_stop(reason)
    started = state.book.started_at
    elapsed = now - started if started is not None else 0.0
    state.book.tick(now, runner.user_count if runner else 0, elapsed, state.plan.duration_s,
                    load_end=getattr(shape, "stopped_at", None))


def _master_quit(environment: Environment, state: _MasterState) -> None:
    shape = environment.shape_class
    reason = getattr(shape, "stop_reason", None) or "interrupted: the master was stopped"
    state.book.finish(time.time(), reason, load_end=getattr(shape, "stopped_at", None))
    state.book.stream.close()
