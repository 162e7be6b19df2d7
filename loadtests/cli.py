"""`pitchey run SCENARIO` (`pitchey gate` is registered by gate.cli).

The run ends with the gate's verdict (recorded in the run's summary.json) and exits with its
code; `--gate` adds the gate's options (baseline, output files, overrides).

Standard library only at import time: Locust, pandas and the collectors load inside `_run`.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any

from gate.cli import add_gate_arguments, usage_errors_exit_config
from pitchey_cli.argtypes import positive_int
from pitchey_cli.exitcodes import ExitCode

__all__ = ["register", "resolve_scenario"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="play a load scenario against the platform and write a run directory",
        description="Start the embedded platform (unless --host), a headless Locust master and "
        "one worker per region of the scenario, play the scenario's stages, and write "
        "runs/<UTC time>-<scenario>/. Ctrl-C ends the run cleanly.",
        epilog="exit codes: the verdict of the run, as pitchey gate gives it (0 pass, 1 a "
        "measured check failed, 2 regression against --baseline, 3 run invalid); 4 bad "
        "scenario or flag; 130 interrupted; a run that could not start exits 1 (3 under "
        "--gate, where 1 would read as a failed check)",
    )
    parser.add_argument("scenario", metavar="SCENARIO",
                        help="a scenario file, or the name of one in scenarios/ (e.g. smoke)")
    parser.add_argument("--host", metavar="URL", help="load this deployment instead of "
                        "starting the embedded platform (it must already hold seeded data)")
    parser.add_argument("--duration", type=_positive_seconds, metavar="S",
                        help="stretch or squeeze the stages to S seconds")
    parser.add_argument("--users", type=positive_int, metavar="N",
                        help="scale the user levels so the peak is N")
    parser.add_argument("--out", default="runs", metavar="DIR",
                        help="where run directories go (default runs/)")
    parser.add_argument("--workers-per-region", type=positive_int, default=1, metavar="K",
                        help="Locust worker processes per region (default 1)")
    parser.add_argument("--external-workers", type=positive_int, default=0, metavar="N",
                        help="start no local workers; wait for N remote ones (Kubernetes)")
    parser.add_argument("--master-bind", default="127.0.0.1", metavar="HOST",
                        help="address the Locust master listens on (0.0.0.0 for remote "
                        "workers)")
    parser.add_argument("--master-port", type=int, default=0, metavar="PORT",
                        help="Locust master port (default: a free one; 5557 on Kubernetes)")
    parser.add_argument("--locustfile", metavar="FILE",
                        help="advanced: a locustfile of your own user classes (each with a "
                        "`portal`, subclassing loadtests.journeys.PortalUser)")
    parser.add_argument("--gate", action="store_true",
                        help="use the gate options below (--baseline, --junit, --json, "
                        "--markdown, --threshold, ...); the run is judged either way")
    add_gate_arguments(parser)
    # argparse exits 2 on a bad flag, which CI would read as the gate's "regression": use 4
    usage_errors_exit_config(parser, "pitchey run")
    parser.set_defaults(func=_run)


def _positive_seconds(text: str) -> float:
    from collectors.units import parse_duration_s

    try:
        value = parse_duration_s(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be above 0")
    return value


def resolve_scenario(name: str) -> Path:
    """A path as given, or scenarios/<name>.yaml next to the package, or in the cwd."""
    path = Path(name)
    if path.exists() or path.suffix in (".yaml", ".yml", ".json"):
        return path
    for root in (Path.cwd(), Path(__file__).resolve().parent.parent):
        candidate = root / "scenarios" / f"{name}.yaml"
        if candidate.exists():
            return candidate
    return path


def _run(args: argparse.Namespace) -> int:
    from loadtests.orchestrator import LOCUSTFILE, RunFailed, RunOptions, run
    from loadtests.scenario import ScenarioError

    options = RunOptions(
        scenario=resolve_scenario(args.scenario), host=args.host, duration_s=args.duration,
        users=args.users, out=Path(args.out), workers_per_region=args.workers_per_region,
        external_workers=args.external_workers, master_bind=args.master_bind,
        master_port=args.master_port,
        locustfile=Path(args.locustfile).resolve() if args.locustfile else LOCUSTFILE,
        gate_args=args if args.gate else None,
    )
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        outcome = run(options)
    except ScenarioError as exc:
        for problem in exc.problems:
            print(f"pitchey run: {problem}", file=sys.stderr)
        return ExitCode.CONFIG
    except RunFailed as exc:
        print(f"pitchey run: {exc}", file=sys.stderr)
        # Under --gate a CI system reads 1 as "threshold breached"; nothing was measured, so
        # it is the gate's "run invalid" (3) instead.
        return ExitCode.INVALID if args.gate else ExitCode.BREACH
    except KeyboardInterrupt:
        print("pitchey run: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous)
    return outcome.exit_code


def _terminate(signum: int, frame: Any) -> None:
    """SIGTERM ends a run the way Ctrl-C does: cleanly, children stopped."""
    raise KeyboardInterrupt
