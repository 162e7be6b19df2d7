"""`pitchey dashboard` and `pitchey capacity` (registered by the pitchey_cli dispatcher).

Only the standard library is imported at module level: `pitchey serve` must not pay for Dash,
pandas or scipy. Mistakes a user makes (a missing run, a bad number or flag) print one line to
stderr and exit 4 (`ExitCode.CONFIG`).

`pitchey capacity RUN_DIR` judges nothing of its own: it prints the gate's verdict line and
the verdict's projections for the product's targets (the numbers summary.json records), then
the capacity model behind them. It exits 0 when the run supports an answer and 3 (INVALID)
when it cannot (no load steps and no service demand, or the first step already
missed the p95 target), saying why. `--users`, `--think-time`,
`--p95-target`, `--headroom` and `--budget` ask a what-if, labelled as such.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from collectors.targets import PRODUCT_TARGETS
from gate.cli import usage_errors_exit_config
from pitchey_cli.argtypes import non_negative_float, positive_float
from pitchey_cli.exitcodes import ExitCode

if TYPE_CHECKING:
    from collectors.run import Run
    from gate.projections import ProjectionInputs
    from gate.verdict import Projection, RunVerdict

__all__ = ["register", "run_dashboard", "run_capacity"]


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not between 0 and 65535")
    return value


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `dashboard` and `capacity` to the `pitchey` command."""
    dash = subparsers.add_parser(
        "dashboard", help="serve the cost-and-latency dashboard over run directories",
        description="Serve the Dash dashboard (verdict, latency, capacity, cost, comparison) "
                    "over the run directories under --runs.")
    dash.add_argument("--runs", type=Path, default=Path("runs"),
                      help="folder of run directories, or one run directory (default: runs)")
    dash.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    dash.add_argument("--port", type=_port, default=8050, help="port (default 8050)")
    dash.add_argument("--cache-dir", type=Path, default=None,
                      help="where prepared views of finished runs are kept "
                           "(default: <runs>/.dashboard-cache)")
    dash.add_argument("--users", type=positive_float, default=float(PRODUCT_TARGETS.users),
                      help="target concurrent users for the verdict and cost (default "
                           f"{PRODUCT_TARGETS.users})")
    dash.add_argument("--think-time", type=non_negative_float, default=None,
                      help="think time (s) for projections (default: the run's own)")
    dash.add_argument("--budget", type=positive_float, default=PRODUCT_TARGETS.budget_usd_month,
                      help=f"monthly budget in dollars (default "
                           f"{PRODUCT_TARGETS.budget_usd_month:g})")
    dash.add_argument("--live-interval", type=positive_float, default=2.0,
                      help="seconds between live refreshes of a run being written (default 2)")
    dash.set_defaults(func=run_dashboard)

    cap = subparsers.add_parser(
        "capacity", help="the gate's capacity and cost projections for a run, with the model",
        description="Print the gate's verdict line and its projections for the product's "
                    "targets (instances, cores and monthly cost for "
                    f"{PRODUCT_TARGETS.users:,} users at p95 < {PRODUCT_TARGETS.p95_ms:g} ms, "
                    f"budget ${PRODUCT_TARGETS.budget_usd_month:,.0f}), then the model behind "
                    "them: the run's load steps, the knee at the p95 target (bootstrap "
                    "interval), X_max from service demand, the USL cross-check, the response "
                    "time law X/N = 1/(R+Z) and the sizing. Any of --users, --think-time, "
                    "--p95-target, --headroom or --budget asks a what-if, labelled as such.",
        epilog="exit codes: 0 answered, 3 the run cannot support an answer (the reason is "
               "printed), 4 bad input (a missing or broken run directory, a bad flag)")
    cap.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    cap.add_argument("--users", type=positive_float, default=None,
                     help=f"what-if: concurrent users (default: the product target, "
                     f"{PRODUCT_TARGETS.users:,})")
    cap.add_argument("--think-time", type=non_negative_float, default=None,
                     help="what-if: seconds each user waits between requests (default: the "
                     "scenario's, weighted by user class)")
    cap.add_argument("--p95-target", type=positive_float, default=None,
                     help=f"what-if: p95 latency target in ms (default: the product target, "
                     f"{PRODUCT_TARGETS.p95_ms:g})")
    cap.add_argument("--headroom", type=non_negative_float, default=None,
                     help="what-if: spare capacity in percent (default 30)")
    cap.add_argument("--budget", type=positive_float, default=None,
                     help=f"what-if: monthly budget in dollars (default: the product target, "
                     f"{PRODUCT_TARGETS.budget_usd_month:,.0f})")
    cap.add_argument("--json", action="store_true", help="print JSON instead of text")
    usage_errors_exit_config(cap, "pitchey capacity")  # a bad flag is bad input: exit 4
    cap.set_defaults(func=run_capacity)


def _fail(message: str) -> int:
    print(f"pitchey: {message}", file=sys.stderr)
    return ExitCode.CONFIG


def run_dashboard(args: argparse.Namespace) -> int:
    runs: Path = args.runs
    if not runs.exists():
        return _fail(f"{runs}: no such folder (make a run with `pitchey run SCENARIO`, "
                     "or pass --runs DIR)")
    from dashboards.analysis import Settings
    from dashboards.app import create_app

    cache = args.cache_dir or ((runs if runs.is_dir() else runs.parent) / ".dashboard-cache")
    settings = Settings(users=args.users, think_time_s=args.think_time, budget_usd=args.budget)
    app = create_app(runs, cache_dir=cache, settings=settings,
                     live_interval_ms=int(args.live_interval * 1000))
    problem = _port_problem(args.host, args.port)
    if problem:
        return _fail(f"cannot listen on {args.host}:{args.port}: {problem}")
    print(f"dashboard on http://{args.host}:{args.port}/ (runs: {runs})", flush=True)
    app.run(host=args.host, port=args.port, debug=False)
    return ExitCode.OK


def _port_problem(host: str, port: int) -> str | None:
    """Why binding would fail (werkzeug would exit instead of raising), or None."""
    import socket

    try:
        with socket.create_server((host, port)):
            return None
    except OSError as exc:
        return exc.strerror or str(exc)


def run_capacity(args: argparse.Namespace) -> int:
    from collectors.errors import RunDirError
    from collectors.run import load_run
    from gate.thresholds import ThresholdError
    from gate.verdict import VerdictError

    try:
        run = load_run(args.run_dir)
        verdict = _verdict(run)
    except (RunDirError, ThresholdError, VerdictError) as exc:
        return _fail(str(exc))
    report = _capacity_report(run, verdict, args)
    print(json.dumps(report, indent=2) if args.json else _text(report))
    answer = report["what_if"] or report
    if not answer["answered"]:
        print(f"pitchey capacity: no answer: {answer['reason']}", file=sys.stderr)
        return ExitCode.INVALID
    return ExitCode.OK


def _verdict(run: Run) -> RunVerdict:
    """The verdict summary.json records; a run without one (older, or still being written) is
    judged now, the way `pitchey gate` would, without recording anything."""
    from gate.evaluation import evaluate_run, spec_from_run
    from gate.record import recorded_verdict

    recorded = recorded_verdict(run.summary)
    return recorded if recorded is not None else evaluate_run(run, spec_from_run(run))


def _what_if(run: Run, args: argparse.Namespace) -> tuple[ProjectionInputs, bool]:
    """The inputs the model details are for: the product's, or the user's what-if."""
    from dataclasses import replace

    from gate.projections import product_inputs

    inputs = product_inputs(run)
    changes: dict[str, Any] = {}
    if args.users is not None and args.users != inputs.users:
        changes["users"] = float(args.users)
    if args.think_time is not None and args.think_time != inputs.think_time_s:
        changes.update(think_time_s=float(args.think_time), think_source="your input")
    if args.p95_target is not None and args.p95_target != inputs.p95_ms:
        changes["p95_ms"] = float(args.p95_target)
    if args.headroom is not None and args.headroom / 100.0 != inputs.headroom:
        changes["headroom"] = args.headroom / 100.0
    if args.budget is not None and args.budget != inputs.budget_usd:
        changes["budget_usd"] = float(args.budget)
    if not changes:
        return inputs, False
    return replace(inputs, origin="what-if (your inputs)", **changes), True


def _capacity_report(run: Run, verdict: RunVerdict, args: argparse.Namespace) -> dict[str, Any]:
    """The verdict's line and projections, and the model details for the inputs asked."""
    from gate.projections import capacity_model, inputs_to_json, model_to_json, project
    from gate.window import bounds_of

    inputs, what_if = _what_if(run, args)
    model = capacity_model(run, inputs)
    report: dict[str, Any] = {
        "run_id": run.run_id, "scenario": run.scenario_name,
        "verdict": {"status": verdict.status, "headline": verdict.headline,
                    "line": verdict.line,
                    "capacity": None if verdict.capacity is None else dict(verdict.capacity)},
        "projections": [p.to_json() for p in verdict.projections],
        **_answer(verdict.projections),
        "what_if": None,
        **model_to_json(model, inputs),
    }
    if what_if:
        bounds = bounds_of(run, verdict.window.warmup_s)
        projections = project(run, bounds, inputs)
        report["what_if"] = {"inputs": inputs_to_json(inputs),
                             "projections": [p.to_json() for p in projections],
                             **_answer(projections)}
    return report


def _answer(projections: Any) -> dict[str, Any]:
    """Whether the capacity projection (instances) is available, and why not."""
    instances: Projection | None = next(
        (p for p in projections if p.unit == "instances"), None)
    if instances is None:
        return {"answered": False, "reason": "the verdict holds no capacity projection"}
    return {"answered": instances.available, "reason": instances.reason}


def _projection_lines(projections: list[dict[str, Any]]) -> list[str]:
    lines = []
    for projection in projections:
        lines.append(f"  {projection['name']}: {projection['text']}")
        lines += [f"      {assumption}" for assumption in projection["assumptions"]]
    return lines


def _text(report: dict[str, Any]) -> str:
    lines = [f"run {report['run_id']} ({report['scenario']}): "
             f"{len(report['steps'])} load steps",
             report["verdict"]["line"],
             "projections for the product targets (model, not measured; from the verdict):",
             *_projection_lines(report["projections"])]
    what_if = report["what_if"]
    if what_if is not None:
        inputs = what_if["inputs"]
        lines += [f"what-if (your inputs): {inputs['users']:,.0f} users, think time "
                  f"{inputs['think_time_s']:g} s, p95 < {inputs['p95_target_ms']:g} ms, "
                  f"{inputs['headroom']:.0%} headroom, budget ${inputs['budget_usd']:,.0f}",
                  *_projection_lines(what_if["projections"])]
    label = "what-if" if what_if is not None else "the product targets"
    lines.append(f"capacity model (for {label}):")
    return "\n".join(lines + _model_lines(report) + _endpoint_lines(report))


def _endpoint_lines(report: dict[str, Any]) -> list[str]:
    """CPU per endpoint, when the run's mix let it be attributed (the verdict's record)."""
    split = ((report["verdict"].get("capacity") or {}).get("endpoints")) or {}
    if not split:
        return []
    if not split.get("attributed"):
        return [f"  CPU per endpoint: not attributed: {split.get('reason', '')}"]
    lines = [f"  CPU per endpoint (regression over {split['bins']} bins, R² "
             f"{split['r_squared']:.3f}; background {split['background_cores']:.3f} cores):"]
    lines += [f"    {e['endpoint']:<40} {e['demand_ms']:>8.3f} ms/request  "
              f"{e['cpu_share']:>6.1%} of request CPU" for e in split["endpoints"]]
    return lines


def _model_lines(report: dict[str, Any]) -> list[str]:
    lines = [f"  steps ({'offered rate' if report['load'] == 'rate' else 'concurrent users'}, "
             "throughput, p95, errors):"]
    column = "rate" if report["load"] == "rate" else "users"
    for step in report["steps"]:
        p95 = step.get("p95_ms")
        lines.append(f"    {step.get(column) or 0:>10,.4g}  {step.get('throughput') or 0:>9,.1f} "
                     f"req/s  p95 {'-' if p95 is None else f'{p95:,.1f} ms':>10}  errors "
                     f"{(step.get('error_rate') or 0):.2%}")
    estimate = report.get("estimate")
    if estimate is None:
        return [*lines, f"  no capacity estimate: {report['problem']}"]
    knee = estimate["knee"]
    lines += [
        f"  knee: {knee['text'] if knee else 'no steps'}",
        "  X_max: " + (f"{estimate['x_max_rps']:,.1f} req/s ({estimate['x_max_note']})"
                       if estimate["x_max_rps"] else estimate["x_max_note"] or "none"),
        f"  USL cross-check: {estimate['usl_note'] or 'none'}",
        f"  trusted: {estimate['trusted']}: {estimate['why']}",
        *[f"  disagreement: {text}" for text in estimate["disagreements"]],
    ]
    law, plan = report.get("response_time_law"), report.get("plan")
    if law is not None:
        lines.append(f"  response time law X/N = 1/(R+Z): {law['users']:,.0f} users, Z = "
                     f"{law['think_time_s']:g} s, R = {law['response_ms']:.1f} ms "
                     f"({law['response_source']}) -> X = {law['throughput_rps']:,.0f} req/s")
    if plan is not None:
        ci = plan["instances_ci"]
        low, high = plan["per_instance_range"]
        lines += [
            f"  one instance at p95 <= {plan['p95_target_ms']:g} ms: "
            f"{plan['per_instance_rps']:,.1f} req/s (range {low:,.1f}-{high:,.1f})",
            f"  instances needed with {plan['headroom']:.0%} headroom: {plan['instances']:,}"
            + (f" (range {ci[0]:,.0f}-{ci[1]:,.0f})" if ci else ""),
        ]
        if plan["cores"] is not None:
            value, c_low, c_high = plan["cores"]
            lines.append(f"  CPU cores: {value:,.0f} (range {c_low:,.0f}-{c_high:,.0f}), "
                         f"{plan['cores_per_instance']:g} per instance "
                         f"({plan['cores_source']})")
    return lines
