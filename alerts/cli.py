"""`pitchey alerts render|replay|receive|check`.

Standard library only at import time: the work happens in functions that import the package.
A mistake a user makes (bad spec, missing file or run directory, bad flag) prints one line per
problem to stderr and exits 4 (`ExitCode.CONFIG`), never with a traceback; a check that finds a
rule failing its own test vectors, or promtool disagreeing, exits 1 (`ExitCode.BREACH`); a run
with nothing to replay exits 3 (`ExitCode.INVALID`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from pitchey_cli.exitcodes import ExitCode

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "alerts", help="alert rules: render for Prometheus, replay a run, receive webhooks",
        description="Alert spec (alerts/rules.yaml): Prometheus rules and promtool tests, "
                    "replay over a finished run, a webhook receiver, and a self-check.")
    parser.set_defaults(func=lambda args: _usage(parser))
    commands = parser.add_subparsers(dest="alerts_command", metavar="ACTION")

    render = commands.add_parser("render", help="write Prometheus rule files and promtool "
                                                 "unit tests")
    render.add_argument("--out", required=True, type=Path, help="directory to write into")
    _rules_option(render)
    render.add_argument("--time-scale", type=float, default=1.0, metavar="F",
                        help="multiply every window, for and keep_firing_for by F (demos)")
    render.add_argument("--no-tests", action="store_true", help="rule file only")
    render.set_defaults(func=_render)

    replay = commands.add_parser("replay", help="when would each alert have fired in a run?")
    replay.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    _rules_option(replay)
    replay.add_argument("--interval", default=None, metavar="DURATION",
                        help="evaluation interval (default: the spec's, 1s)")
    replay.add_argument("--pending", action="store_true", help="show pending alerts too")
    replay.add_argument("--json", action="store_true", help="transitions as JSON lines")
    replay.set_defaults(func=_replay)

    receive = commands.add_parser(
        "receive", help="run the webhook receiver",
        description="Alertmanager-compatible webhook receiver: POST /webhook, GET /status. "
                    "Set PITCHEY_ALERTS_WEBHOOK_SECRET to require signed requests.")
    receive.add_argument("--host", default="127.0.0.1")
    receive.add_argument("--port", type=int, default=9095)
    receive.add_argument("--db", default=None, help="SQLite file (default "
                                                    "PITCHEY_ALERTS_RECEIVER_DB or "
                                                    "alerts-received.sqlite3)")
    receive.add_argument("--max-in-flight", type=int, default=None)
    receive.set_defaults(func=_receive)

    check = commands.add_parser(
        "check", help="validate the spec; evaluator and promtool on every rule's vectors")
    _rules_option(check)
    check.add_argument("--promtool", action="store_true",
                       help="also run promtool check rules / test rules (semantic and "
                            "evaluator-agreement tests)")
    check.add_argument("--out", type=Path, default=None,
                       help="keep the rendered files here (default: a temporary directory)")
    check.set_defaults(func=_check)


def _usage(parser: argparse.ArgumentParser) -> ExitCode:
    parser.print_help(sys.stderr)
    return ExitCode.CONFIG


def _rules_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rules", type=Path, default=None, metavar="FILE",
                        help="alert spec (default: the packaged alerts/rules.yaml)")


def _fail(*lines: str, code: ExitCode = ExitCode.CONFIG) -> ExitCode:
    """Print one line per problem; a mistake in what the user gave us is CONFIG by default."""
    for line in lines:
        print(f"pitchey alerts: {line}", file=sys.stderr)
    return code


def _load(args: argparse.Namespace) -> Any:
    from alerts.specload import load_spec

    return load_spec(args.rules)


def _render(args: argparse.Namespace) -> ExitCode:
    from alerts.render import render
    from alerts.yamlload import SpecError

    try:
        spec = _load(args)
        if args.time_scale != 1.0:
            spec = spec.scaled(args.time_scale)
        written = render(spec, args.out, with_tests=not args.no_tests)
    except SpecError as exc:
        return _fail(*exc.errors)
    except OSError as exc:
        return _fail(f"cannot write into {args.out}: {exc.strerror or exc}")
    except ValueError as exc:
        return _fail(str(exc))
    print(f"wrote {written[0]} ({len(spec.rules)} rules)")
    if len(written) > 1:
        print(f"wrote {len(written) - 1} promtool test files in {written[1].parent}")
        print(f"check: promtool check rules {written[0]} && promtool test rules "
              f"{written[1].parent}/*.test.yml")
    return ExitCode.OK


def _replay(args: argparse.Namespace) -> ExitCode:
    from alerts.replay import ReplayError, load_service_frame, replay, replay_lines
    from alerts.yamlload import SpecError
    from collectors.units import UnitError

    try:
        spec = _load(args)
        interval = _interval_ms(args.interval)
        frame = load_service_frame(args.run_dir)
    except SpecError as exc:
        return _fail(*exc.errors)
    except (ReplayError, UnitError) as exc:
        return _fail(str(exc))
    try:
        result = replay(spec, frame, interval_ms=interval)
    except ReplayError as exc:  # a run directory with nothing to replay
        return _fail(str(exc), code=ExitCode.INVALID)
    if args.json:
        for t in result.transitions:
            if t.kind in ("firing", "resolved") or args.pending:
                print(json.dumps({"t": t.at_ms / 1000, "kind": t.kind, "alert": t.rule,
                                  "severity": t.severity, "labels": dict(t.labels)}))
        return ExitCode.OK
    print("\n".join(replay_lines(result, show_pending=args.pending)))
    return ExitCode.OK


def _interval_ms(text: str | None) -> int | None:
    from collectors.units import UnitError, parse_prometheus_duration_ms

    if not text:
        return None
    try:
        interval = parse_prometheus_duration_ms(text)
    except UnitError as exc:
        raise UnitError(f"--interval: {exc}", text=text) from None
    if interval == 0:
        raise UnitError("--interval must be longer than 0s", text=text)
    return interval


def _receive(args: argparse.Namespace) -> ExitCode:
    from aiohttp import web

    from alerts.receiver import ReceiverSettings, create_receiver_app

    overrides: dict[str, Any] = {}
    if args.db:
        overrides["db_path"] = args.db
    if args.max_in_flight is not None:
        overrides["max_in_flight"] = args.max_in_flight
    if not 0 < args.port < 65536:
        return _fail(f"--port {args.port} is not a TCP port")
    try:
        settings = ReceiverSettings.from_environ(os.environ, **overrides)
    except ValueError as exc:
        return _fail(str(exc))
    signed = "signature required" if settings.secret else "no signature required"
    print(f"alert receiver on http://{args.host}:{args.port}/webhook ({signed}); "
          f"stored in {settings.db_path}; status at /status", flush=True)
    try:
        web.run_app(create_receiver_app(settings), host=args.host, port=args.port,
                    print=None)
    except OSError as exc:
        return _fail(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}",
                     code=ExitCode.BREACH)
    return ExitCode.OK


def _check(args: argparse.Namespace) -> ExitCode:
    from alerts.agreement import random_scenario, scenario_failures, timeline_scenario
    from alerts.promtool import PromtoolMissing, check_rules, run_unit_tests
    from alerts.render import (
        dump,
        render,
        single_rule_document,
        unit_test_document,
        unit_test_files,
    )
    from alerts.vectors import rule_scenarios
    from alerts.yamlload import SpecError

    try:
        spec = _load(args)
    except SpecError as exc:
        return _fail(*exc.errors)
    print(f"{spec.path}: {len(spec.rules)} rules")
    scenarios = {rule.name: rule_scenarios(spec, rule) for rule in spec.rules}
    failures = [f for found in scenarios.values() for s in found
                for f in scenario_failures(spec, s)]
    count = sum(len(found) for found in scenarios.values())
    print(f"embedded evaluator: every scenario passes ({count} scenarios)"
          if not failures else f"embedded evaluator: {len(failures)} failed checks")
    if failures:
        return _fail(*failures, code=ExitCode.BREACH)
    if not args.promtool:
        return ExitCode.OK
    with tempfile.TemporaryDirectory(prefix="pitchey-alerts-") as scratch:
        out = args.out or Path(scratch)
        try:
            render(spec, out)
            agreement = out / "agreement"
            agreement.mkdir(parents=True, exist_ok=True)
            for rule in spec.rules:
                timelines = [timeline_scenario(spec, s) for s in scenarios[rule.name]]
                timelines.append(timeline_scenario(spec, random_scenario(spec, rule, 1)))
                (agreement / f"{rule.name}.rules.yml").write_text(
                    dump(single_rule_document(rule)), encoding="utf-8")
                (agreement / f"{rule.name}.test.yml").write_text(
                    dump(unit_test_document(f"{rule.name}.rules.yml", timelines)), encoding="utf-8")
            results = [check_rules(out / "pitchey-alerts.rules.yml"),
                       run_unit_tests(unit_test_files(out)),
                       run_unit_tests(sorted(agreement.glob("*.test.yml")))]
        except PromtoolMissing as exc:
            return _fail(str(exc))
        except OSError as exc:
            return _fail(f"cannot write into {out}: {exc.strerror or exc}")
        for result, what in zip(results, ("promtool check rules", "promtool test rules "
                                          "(scenarios)", "promtool test rules (evaluator "
                                          "timelines)"), strict=True):
            print(f"{what}: {'ok' if result.ok else 'FAILED'}")
            if not result.ok:
                print(result.output, file=sys.stderr)
        return ExitCode.OK if all(r.ok for r in results) else ExitCode.BREACH
