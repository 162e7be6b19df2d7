"""`pitchey dashboard` and `pitchey capacity` (registered by the pitchey_cli dispatcher).

Only the standard library is imported at module level: `pitchey serve` must not pay for Dash,
pandas or scipy. Mistakes a user makes (a missing run, a bad number) print one line to stderr
and return 2; a computed capacity verdict returns 0 whether it passes or not.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from collectors.argtypes import non_negative_float, positive_float

__all__ = ["register", "run_dashboard", "run_capacity"]

EXIT_USAGE = 2






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
    dash.add_argument("--users", type=positive_float, default=100_000,
                      help="target concurrent users for the verdict and cost (default 100000)")
    dash.add_argument("--think-time", type=non_negative_float, default=None,
                      help="think time (s) for projections (default: the run's own)")
    dash.add_argument("--budget", type=positive_float, default=5000.0,
                      help="monthly budget in dollars (default 5000)")
    dash.add_argument("--live-interval", type=positive_float, default=2.0,
                      help="seconds between live refreshes of a run being written (default 2)")
    dash.set_defaults(func=run_dashboard)

    cap = subparsers.add_parser(
        "capacity", help="USL fit and instances needed for a target load, from one run",
        description="Fit the Universal Scalability Law to the run's concurrency steps, project "
                    "the interactive response time law N = X(R+Z) to --users at --think-time, "
                    "and size the fleet for a p95 target.")
    cap.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    cap.add_argument("--users", type=positive_float, default=100_000)
    cap.add_argument("--think-time", type=non_negative_float, default=30.0,
                     help="seconds each user waits between requests (default 30)")
    cap.add_argument("--p95-target", type=positive_float, default=100.0,
                     help="p95 latency target in ms (default 100)")
    cap.add_argument("--headroom", type=non_negative_float, default=30.0,
                     help="spare capacity in percent (default 30)")
    cap.add_argument("--budget", type=positive_float, default=5000.0,
                     help="monthly budget in dollars (default 5000)")
    cap.add_argument("--json", action="store_true", help="print JSON instead of text")
    cap.set_defaults(func=run_capacity)


def _fail(message: str) -> int:
    print(f"pitchey: {message}", file=sys.stderr)
    return EXIT_USAGE


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
    return 0


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
    from dashboards.analysis import Settings, capacity_report
    from dashboards.data import build_view

    try:
        view = build_view(load_run(args.run_dir), full=False)
    except RunDirError as exc:
        return _fail(str(exc))
    settings = Settings(users=args.users, think_time_s=args.think_time,
                        p95_target_ms=args.p95_target, headroom=args.headroom / 100.0,
                        budget_usd=args.budget)
    report = capacity_report(view, settings)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(_text(report))
    return 0


def _ci(ci: Any) -> str:
    return f" [{ci[0]:.3g}, {ci[1]:.3g}]" if ci else ""


def _text(report: dict[str, Any]) -> str:
    lines = [f"run {report['run_id']} ({report['scenario']}): "
             f"{len(report['steps'])} concurrency steps"]
    fit = report.get("usl")
    if fit is None:
        lines.append(f"no capacity model: {report['problem']}")
        return "\n".join(lines)
    ci = f"{fit['confidence']:.0%} CI"
    lines += [
        f"USL fit ({ci}): sigma = {fit['sigma']:.4g}{_ci(fit['sigma_ci'])}, "
        f"kappa = {fit['kappa']:.4g}{_ci(fit['kappa_ci'])}, "
        f"lambda = {fit['lambda']:.4g}{_ci(fit['lambda_ci'])} req/s per user, "
        f"R^2 = {fit['r_squared']:.4f}",
        f"  one instance peaks at {fit['max_throughput']:,.1f} req/s"
        + (f" with {fit['peak_users']:,.0f} users" if fit["peak_users"] else ""),
    ]
    law, plan = report["response_time_law"], report.get("plan")
    lines.append(f"response time law N = X(R+Z): {law['users']:,.0f} users, Z = "
                 f"{law['think_time_s']:g} s, R = {law['response_ms']:.1f} ms -> "
                 f"X = {law['throughput_rps']:,.0f} req/s")
    if plan is not None and plan["instances"] is not None:
        ci_text = (f" (95% CI {plan['instances_ci'][0]:,.0f}-{plan['instances_ci'][1]:,.0f})"
                   if plan["instances_ci"] else "")
        lines += [
            f"one instance meets p95 <= {plan['p95_target_ms']:g} ms up to "
            f"{plan['per_instance_users']:,.0f} users = {plan['per_instance_rps']:,.1f} req/s",
            f"instances needed with {plan['headroom']:.0%} headroom: {plan['instances']:,}"
            + ci_text,
        ]
    lines.append(f"projected cost: ${report['cost']['monthly_usd']:,.0f}/month "
                 f"(budget ${report['cost']['budget_usd']:,.0f})")
    for reason in report.get("reasons", []):
        lines.append(f"  note: {reason}")
    lines.append(f"verdict: {'PASS' if report['passes'] else 'FAIL'}")
    return "\n".join(lines)
