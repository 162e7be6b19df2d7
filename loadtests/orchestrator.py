"""`pitchey run`: platform up, Locust master and one worker per region, run directory out.

The order of things: load the scenario (with --duration/--users/--host applied), create the
run directory, start the embedded platform unless a host was given (seed, serve, wait for
/health), start a headless Locust master and the workers (each with its region), start the
collectors' scraper, then follow the master's stream into the run directory while printing
progress. At the end (or on Ctrl-C, abort-on-fail, a dead master) every child is stopped,
the directory is finished with the run's validity, the gate judges it and records its verdict
in summary.json, and the summary (over the judged window), the gate's table and the verdict
line are printed. The exit code is the verdict's (130 when interrupted).

A stepped open model (the `capacity` breakpoint scenario) stops itself: the master judges each
step and ends the run at the first that breaks; each judged step and the breakpoint are
printed as they come, and the breakpoint again with the summary. Stopping at the breakpoint is
the scenario doing its job, not an abort.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from collectors.series import SeriesStore
from collectors.targets import PRODUCT_TARGETS
from gate.cli import judge
from gate.report import console_table
from loadtests.breakpoint import breakpoint_line, step_line
from loadtests.console import progress_line, summary_text
from loadtests.ingest import StreamIngest
from loadtests.processes import Child, free_port, wait_http
from loadtests.runtime import REGION_ENV
from loadtests.scenario import Scenario, load_scenario, with_overrides
from loadtests.stream import StreamReader, request_stop
from pitchey_cli.exitcodes import ExitCode

__all__ = ["RunFailed", "RunOptions", "RunOutcome", "run", "LOCUSTFILE"]

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_DIR.parent
LOCUSTFILE = PACKAGE_DIR / "locustfiles" / "pitchey_load.py"
STARTUP_S = 90.0  # workers connecting, seeding, users logging in
EXTERNAL_STARTUP_S = 900.0  # remote workers: pods being scheduled, images pulled
FINISH_GRACE_S = 45.0  # after the plan: draining users, final reports
INTERRUPT_GRACE_S = 20.0
WORKERS_GONE_S = 10.0  # every worker gone this long, with the master still running: stop


class RunFailed(Exception):
    """The run could not start or went wrong in a way the user must see (one line)."""


@dataclass(frozen=True)
class RunOptions:
    scenario: Path
    host: str | None = None
    duration_s: float | None = None
    users: int | None = None
    out: Path = Path("runs")
    workers_per_region: int = 1
    external_workers: int = 0
    master_bind: str = "127.0.0.1"
    master_port: int = 0
    scrape_interval_s: float = 1.0
    python: str = sys.executable
    locustfile: Path = LOCUSTFILE
    progress_every_s: float | None = None  # None: every second on a terminal, else every 5 s
    # `pitchey run --gate`'s options (baseline, outputs, overrides) for the gate; None: the
    # scenario's own gate spec, no outputs
    gate_args: Any = None


@dataclass
class RunOutcome:
    run_dir: Path
    valid: bool
    reasons: list[str]
    ended: str
    exit_code: int
    summary: str = ""


@dataclass
class _Run:
    options: RunOptions
    scenario: Scenario
    writer: Any
    out: IO[str]
    children: list[Child] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    target_url: str = ""
    scraper: Any = None
    alerting: Any = None
    tmp_dir: Path | None = None


def run(options: RunOptions, out: IO[str] | None = None) -> RunOutcome:
    """Play one scenario end to end; raises ScenarioError for a bad file, RunFailed when the
    platform or Locust cannot start (the run directory is then marked aborted)."""
    from collectors.rundir import RunWriter

    stream_out = out or sys.stdout
    scenario = with_overrides(load_scenario(options.scenario), duration_s=options.duration_s,
                              users=options.users, target=options.host)
    writer = RunWriter.create(options.out, scenario.name, scenario.to_json(), scenario.target,
                              _topology(scenario, options))
    state = _Run(options, scenario, writer, stream_out)
    try:
        _start(state)
        ingest = _follow(state)
    except BaseException as exc:
        _stop_children(state)
        if not isinstance(exc, KeyboardInterrupt | SystemExit):
            writer.abort(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        else:
            writer.abort("interrupted before the run started")
        raise
    _stop_children(state)
    return _finish(state, ingest)


# --- starting ------------------------------------------------------------------------------


def _topology(scenario: Scenario, options: RunOptions) -> dict[str, Any]:
    return {
        "kind": scenario.topology,
        "embedded": scenario.target == "embedded",
        "load_regions": {region: options.workers_per_region for region in scenario.regions}
        if not options.external_workers else {"external_workers": options.external_workers},
    }


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(PROJECT_ROOT) + (os.pathsep + path if path else "")
    env.update(extra)
    return env


def _start(state: _Run) -> None:
    logs = state.writer.path / "logs"
    logs.mkdir(exist_ok=True)
    if state.scenario.target == "embedded":
        state.target_url = _start_platform(state, logs)
    else:
        state.target_url = state.scenario.target
    (logs / "scenario.json").write_text(json.dumps(state.scenario.to_json(), indent=2) + "\n")
    _start_locust(state, logs)
    _start_scraper(state)


def _start_platform(state: _Run, logs: Path) -> str:
    state.tmp_dir = Path(tempfile.mkdtemp(prefix="pitchey-run-"))
    embedded = state.scenario.embedded
    env = _env({
        "PITCHEY_SQLITE_PATH": str(state.tmp_dir / "pitchey.db"),
        "PITCHEY_RATE_LIMIT_PER_MINUTE": "0",  # every simulated user shares 127.0.0.1
        "PITCHEY_SPANS_FILE": str(state.writer.path / "spans.jsonl"),
        **embedded.env,
    })
    python = state.options.python
    _say(state, f"seeding the embedded platform ({embedded.seed.users} users, "
                f"{embedded.seed.pitches} pitches)")
    seed = Child("seed", [python, "-m", "pitchey_cli", "seed", "--users",
                          str(embedded.seed.users), "--pitches", str(embedded.seed.pitches),
                          "--seed", str(embedded.seed.seed)], log_path=logs / "seed.log",
                 env=env, cwd=PROJECT_ROOT)
    code = seed.wait(180.0)
    seed.stop(5.0)
    if code != 0:
        raise RunFailed(f"pitchey seed failed (exit {code}); see {seed.log_path}:\n"
                        f"{seed.tail()}")
    port = free_port()
    command = [python, "-m", "pitchey_cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    if state.scenario.topology == "geo":
        command += ["--topology", "geo"]
    service = Child("service", command, log_path=logs / "service.log", env=env,
                    cwd=PROJECT_ROOT)
    state.children.append(service)
    url = f"http://127.0.0.1:{port}"
    if not wait_http(url + "/health", 60.0, alive=service):
        raise RunFailed(f"the platform did not answer {url}/health within 60 s; see "
                        f"{service.log_path}:\n{service.tail()}")
    _say(state, f"platform up at {url} (topology {state.scenario.topology}, pid {service.pid})")
    return url


def _start_locust(state: _Run, logs: Path) -> None:
    options = state.options
    port = options.master_port or free_port(options.master_bind
                                            if options.master_bind != "0.0.0.0" else "127.0.0.1")
    regions = list(state.scenario.regions)
    expected = options.external_workers or len(regions) * options.workers_per_region
    python = options.python
    master = Child("master", [
        python, "-m", "locust", "-f", str(options.locustfile), "--master", "--headless",
        "--expect-workers", str(expected),
        "--expect-workers-max-wait", str(int(_startup_s(options))),
        "--master-bind-host", options.master_bind, "--master-bind-port", str(port),
        "--host", state.target_url, "--pitchey-scenario", str(logs / "scenario.json"),
        "--pitchey-stream", str(logs / "locust-stream.jsonl"), "--exit-code-on-error", "0",
        "--only-summary", "--stop-timeout", "0",
    ], log_path=logs / "locust-master.log", env=_env({}), cwd=PROJECT_ROOT)
    state.children.append(master)
    if options.external_workers:
        _say(state, f"waiting for {expected} external worker(s) at {options.master_bind}:{port}")
        return
    connect = "127.0.0.1" if options.master_bind in ("0.0.0.0", "") else options.master_bind
    for region in regions:
        for index in range(options.workers_per_region):
            name = f"worker-{region}-{index + 1}"
            state.children.append(Child(name, [
                python, "-m", "locust", "-f", str(options.locustfile), "--worker",
                "--master-host", connect, "--master-port", str(port),
            ], log_path=logs / f"locust-{name}.log", env=_env({REGION_ENV: region}),
                cwd=PROJECT_ROOT))
    _say(state, f"Locust master (pid {master.pid}) and {expected} worker(s): "
                + ", ".join(f"{r} x{options.workers_per_region}" for r in regions))


def _start_scraper(state: _Run) -> None:
    from collectors.scrape import Scraper, ScrapeTarget

    targets = {"edge" if state.scenario.topology == "geo" else "service": state.target_url}
    extra: list[ScrapeTarget] = []
    if state.scenario.topology == "geo":
        targets.update(_regional_workers(state.target_url))
        # HAProxy's CPU (service demand): the edge agent's metrics, through the edge URL
        if _answers(state.target_url + EDGE_AGENT_METRICS):
            extra.append(ScrapeTarget("edge", state.target_url, EDGE_AGENT_METRICS, None))
    state.scraper = Scraper([*(ScrapeTarget(n, u) for n, u in targets.items()), *extra],
                            writer=state.writer, store=_start_alerting(state),
                            interval_s=state.options.scrape_interval_s)
    state.scraper.start()
    _say(state, f"scraping {', '.join(targets)} every {state.options.scrape_interval_s:g} s"
                + (f" (and the edge's {EDGE_AGENT_METRICS})" if extra else ""))


def _start_alerting(state: _Run) -> SeriesStore:
    """The embedded alert evaluator over the scraped series, every second: transitions go to
    events.jsonl, notifications to PITCHEY_ALERTS_WEBHOOK_URLS (if set) through an outbox in
    the run directory. Returns the store the scraper feeds and the evaluator reads."""
    from alerts.live import LiveAlerting, LiveSettings, run_events, store_retention_s
    from alerts.specload import load_spec

    spec = load_spec()
    store = SeriesStore(job=spec.job, retention_s=store_retention_s(spec))
    settings = LiveSettings.from_environ(
        os.environ, outbox_path=str(Path(state.writer.path) / "alerts-outbox.sqlite3"))
    state.alerting = LiveAlerting(spec, store, settings,
                                  on_transition=run_events(state.writer)).start()
    _say(state, "alert rules evaluated live every "
                f"{settings.interval_s:g} s (alerts/rules.yaml)"
                + (f"; webhooks to {', '.join(settings.webhook_urls)}"
                   if settings.webhook_urls else ""))
    return store


EDGE_AGENT_METRICS = "/_edge/metrics"  # the edge processes' CPU (pitchey.geo.edge_status)


def _answers(url: str) -> bool:
    """Whether `url` answers 200 now: an edge older than its /_edge/metrics is not scraped
    for it (every scrape would be a gap and the ServiceDown alert would fire)."""
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - our URL
            return int(response.status) == 200
    except (OSError, ValueError):
        return False


def _regional_workers(edge_url: str) -> dict[str, str]:
    """The regional workers the edge's /status lists (their own /metrics and /status)."""
    import urllib.request

    try:
        with urllib.request.urlopen(edge_url + "/status", timeout=5) as response:  # noqa: S310
            status = json.loads(response.read())
    except (OSError, ValueError):
        return {}
    regions = status.get("regions", []) if isinstance(status, dict) else []
    return {str(r["name"]): str(r["url"]) for r in regions
            if isinstance(r, dict) and r.get("name") and str(r.get("url", "")).startswith("http")}


# --- following the run ------------------------------------------------------------------------


def _follow(state: _Run) -> StreamIngest:
    master = next(c for c in state.children if c.name == "master")
    reader = StreamReader(master.command[master.command.index("--pitchey-stream") + 1])
    ingest = StreamIngest(state.writer, _abort_monitor(state.scenario))
    failovers = _FailoverSchedule(state)
    printer = _Printer(state)
    steps = _StepPrinter(state)
    started = time.monotonic()
    deadline = started + _startup_s(state.options) + _planned_s(state.scenario) + FINISH_GRACE_S
    stop_sent: str | None = None
    workers_gone_since: float | None = None
    while True:
        try:
            ingest.apply(reader.read())
            if ingest.ended is not None:
                break
            if not master.running():
                ingest.apply(reader.read())
                if ingest.ended is None:
                    state.notes.append(f"the Locust master exited early (code {master.poll()});"
                                       f" see {master.log_path}")
                break
            printer.maybe(ingest)
            steps.maybe(ingest, printer)
            failovers.poll(ingest.started_at)
            # workers also exit when the master ends the run: only a lasting loss counts
            lost = _lost_all_workers(state)
            workers_gone_since = (workers_gone_since or time.monotonic()) if lost else None
            lasting = workers_gone_since is not None and (
                time.monotonic() - workers_gone_since > WORKERS_GONE_S)
            reason = ingest.abort_reason or (lost if lasting else None)
            if reason and stop_sent is None:
                stop_sent = reason
                if ingest.abort_reason:
                    state.writer.add_event(time.time(), "abort", reason=reason)
                    reason = f"aborted: {reason}"
                request_stop(reader.path, reason)
                _say(state, f"stopping early: {reason}")
                deadline = min(deadline, time.monotonic() + INTERRUPT_GRACE_S)
            if time.monotonic() > deadline:
                state.notes.append("the run overran its plan; stopped by pitchey run")
                break
            time.sleep(0.25)
        except KeyboardInterrupt:
            if stop_sent is not None and stop_sent.startswith("interrupted"):
                state.notes.append("interrupted twice: stopped without the final reports")
                break
            stop_sent = "interrupted: Ctrl-C"
            request_stop(reader.path, stop_sent)
            _say(state, "\nCtrl-C: ending the run cleanly (press again to stop at once)")
            deadline = time.monotonic() + INTERRUPT_GRACE_S
    failovers.finish()
    printer.done()
    if master.running():
        master.wait(15.0)
    ingest.apply(reader.read())
    steps.maybe(ingest, printer)
    return ingest


def _startup_s(options: RunOptions) -> float:
    return EXTERNAL_STARTUP_S if options.external_workers else STARTUP_S


def _planned_s(scenario: Scenario) -> float:
    from loadtests.shapes import plan_for

    return plan_for(scenario).duration_s


def _abort_monitor(scenario: Scenario) -> Any:
    from gate.core import AbortMonitor
    from gate.thresholds import parse_gate_spec

    closed = "closed-model run" if scenario.open_model is None else None  # service time
    monitor = AbortMonitor(parse_gate_spec(scenario.to_json(), source=scenario.name), closed)
    return monitor if monitor.active else None


def _lost_all_workers(state: _Run) -> str | None:
    workers = [c for c in state.children if c.name.startswith("worker-")]
    if workers and not any(w.running() for w in workers):
        return "every load-generator worker exited"
    return None


class _FailoverSchedule:
    """Starts `pitchey failover REGION` at the scenario's times and records the reports."""

    def __init__(self, state: _Run) -> None:
        self.state = state
        self.pending = sorted(state.scenario.failover, key=lambda step: step.at)
        self.running: list[tuple[Any, Child]] = []

    def poll(self, started_at: float | None) -> None:
        now = time.time()
        while self.pending and started_at is not None and now >= started_at + self.pending[0].at:
            step = self.pending.pop(0)
            logs = self.state.writer.path / "logs"
            child = Child(f"failover-{step.region}", [
                self.state.options.python, "-m", "pitchey_cli", "failover", step.region,
                "--url", self.state.target_url, "--duration", f"{step.duration:g}", "--json",
            ], log_path=logs / f"failover-{step.region}-{int(step.at)}.log", env=_env({}),
                cwd=PROJECT_ROOT)
            self.state.children.append(child)
            self.running.append((step, child))
            self.state.writer.add_event(now, "failover", region=step.region, phase="start")
        for step, child in list(self.running):
            if not child.running():
                self.running.remove((step, child))
                self._record(step, child)

    def finish(self) -> None:
        for step, child in self.running:
            child.wait(30.0)
            self._record(step, child)
        self.running = []

    def _record(self, step: Any, child: Child) -> None:
        report = _last_json(child.log_path)
        self.state.writer.add_event(time.time(), "failover", region=step.region, phase="done",
                                    exit_code=child.poll(), report=report)


def _last_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    start = text.find("{")
    while start >= 0:
        try:
            return json.loads(text[start:])
        except ValueError:
            start = text.find("{", start + 1)
    return None


class _Printer:
    def __init__(self, state: _Run) -> None:
        self.state = state
        self.tty = state.out.isatty()
        every = state.options.progress_every_s
        self.every = every if every is not None else (1.0 if self.tty else 5.0)
        self.last = 0.0
        self.shown = False

    def maybe(self, ingest: StreamIngest) -> None:
        now = time.monotonic()
        if not ingest.progress or now - self.last < self.every:
            return
        self.last = now
        line = progress_line(ingest.progress, PRODUCT_TARGETS.p95_ms)
        if self.tty:
            self.state.out.write("\r\x1b[2K" + line)
        else:
            self.state.out.write(line + "\n")
        self.state.out.flush()
        self.shown = True

    def done(self) -> None:
        if self.tty and self.shown:
            self.state.out.write("\n")
            self.state.out.flush()
            self.shown = False


class _StepPrinter:
    """A stepped run's judged steps and its breakpoint, each printed once as it arrives."""

    def __init__(self, state: _Run) -> None:
        self.state = state
        self.shown = 0
        self.breakpoint_shown = False

    def maybe(self, ingest: StreamIngest, printer: _Printer) -> None:
        new = ingest.steps[self.shown:]
        outcome = ingest.breakpoint if not self.breakpoint_shown else None
        if not new and outcome is None:
            return
        printer.done()  # a progress line being redrawn on a terminal ends first
        for step in new:
            _say(self.state, step_line(step))
        self.shown += len(new)
        if outcome is not None:
            self.breakpoint_shown = True
            _say(self.state, breakpoint_line(outcome))



# --- the end -----------------------------------------------------------------------------------


def _stop_children(state: _Run) -> None:
    """Workers and master first (they hold connections), then the scraper, then the service."""
    order: list[Callable[[], None]] = []
    for child in state.children:
        if child.name != "service":
            order.append(lambda c=child: _stop(state, c, 10.0))  # type: ignore[misc]
    if state.scraper is not None:
        order.append(lambda: state.scraper.stop())
    if state.alerting is not None:
        order.append(lambda: state.alerting.stop())
    for child in state.children:
        if child.name == "service":
            order.append(lambda c=child: _stop(state, c, 15.0))  # type: ignore[misc]
    for step in order:
        step()
    state.children = []
    state.scraper = None
    state.alerting = None
    if state.tmp_dir is not None:
        shutil.rmtree(state.tmp_dir, ignore_errors=True)
        state.tmp_dir = None


def _stop(state: _Run, child: Child, grace_s: float) -> None:
    if child.name.startswith("worker-") and child.running():
        child.wait(5.0)  # workers quit on their own once the master tells them
    code = child.stop(grace_s)
    if code not in (0, None, -15) and child.name.startswith(("master", "worker-")):
        state.notes.append(f"{child.name} exited with code {code}; see {child.log_path}")


def _finish(state: _Run, ingest: StreamIngest) -> RunOutcome:
    from collectors.validity import Validity

    final = ingest.final
    reasons = list((final or {}).get("validity", {}).get("reasons", []))
    valid = bool((final or {}).get("validity", {}).get("valid", False))
    if final is None:
        reasons.append("the load generator sent no final report")
    reasons.extend(state.notes)
    valid = valid and not state.notes
    for reason in reasons:
        state.writer.add_event(time.time(), "invalid", reason=reason)
    validity = Validity(valid, tuple(dict.fromkeys(reasons)))
    extra: dict[str, Any] = {"ended": ingest.ended or "cut short"}
    if final and final.get("generator"):
        # the figures the self-check judged (after the warm-up; loop lag weighted by time)
        extra["generator"] = {**final["generator"], "workers": int(
            final["generator"].get("workers", 0))}
    if final and final.get("open_model"):
        extra["open_model"] = final["open_model"]
    if ingest.abort_reason:
        extra["aborted"] = ingest.abort_reason
    if ingest.breakpoint is not None:
        extra["breakpoint"] = ingest.breakpoint
    run_dir = state.writer.finish(validity, summary_extra=extra)
    # the gate judges the finished directory and records its verdict in summary.json; the
    # summary printed below is read back from there, over the window the gate judged
    judged = judge(run_dir, state.options.gate_args or argparse.Namespace())
    text = summary_text(scenario_name=state.scenario.name, run_dir=run_dir,
                        summary=_read_summary(run_dir), final=final, notes=state.notes)
    if ingest.breakpoint is not None:
        text += "\n" + breakpoint_line(ingest.breakpoint)
    if judged.verdict is not None:
        text += "\n" + console_table(judged.verdict).rstrip("\n")
    state.out.write(text + "\n")
    state.out.flush()
    interrupted = (ingest.ended or "").startswith("interrupted")
    code = ExitCode.INTERRUPTED if interrupted else judged.code
    return RunOutcome(run_dir, valid, list(validity.reasons), ingest.ended or "cut short",
                      int(code), text)


def _read_summary(run_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _say(state: _Run, message: str) -> None:
    state.out.write(f"pitchey run: {message}\n")
    state.out.flush()
