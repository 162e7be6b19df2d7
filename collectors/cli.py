"""`pitchey report RUN_DIR --html FILE [--prometheus URL]` (standard library at import time).

Exit codes (`ExitCode`): 0 the report is written; 4 bad input (a missing or foreign run
directory, a bad flag, an output file that cannot be written); 1 the report could not be made
(Prometheus did not answer the queries).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pitchey_cli.argtypes import positive_float
from pitchey_cli.exitcodes import ExitCode

__all__ = ["register", "report_command"]


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "report",
        help="write a self-contained HTML report of a run directory",
        description="Write one self-contained HTML file (plotly, no network needed) with the "
        "key charts and tables of a run: load, latency over time and by percentile, per "
        "region/endpoint/user class, generator health, service series, events.",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", type=Path, help="a run directory")
    parser.add_argument("--html", metavar="FILE", type=Path, default=None,
                        help="output file (default: RUN_DIR/report.html)")
    parser.add_argument("--prometheus", metavar="URL", default=None,
                        help="read the service series from this Prometheus HTTP API over the "
                        "run's time range instead of the run's own scrapes")
    parser.add_argument("--prometheus-step", metavar="SECONDS", type=positive_float,
                        default=1.0, help="query_range step (default 1)")
    parser.set_defaults(func=report_command)


def report_command(args: argparse.Namespace) -> ExitCode:
    from collectors.errors import RunDirError
    from collectors.prometheus import PrometheusError, PrometheusSource
    from collectors.report import write_report
    from collectors.run import load_run

    out: Path = args.html or args.run_dir / "report.html"
    try:
        run = load_run(args.run_dir)
        service = None
        source = None
        if args.prometheus:
            start, end = _time_range(run)
            service = PrometheusSource(args.prometheus).service_frame(
                start, end, args.prometheus_step
            )
            source = f"Prometheus at {args.prometheus} (query_range, step {args.prometheus_step} s)"
        write_report(run, out, service=service, service_source=source)
    except RunDirError as exc:
        return _fail(str(exc), ExitCode.CONFIG)
    except PrometheusError as exc:
        return _fail(str(exc), ExitCode.BREACH)
    except OSError as exc:
        return _fail(f"cannot write {out}: {exc.strerror or exc}", ExitCode.CONFIG)
    print(f"wrote {out}")
    return ExitCode.OK


def _fail(message: str, code: ExitCode) -> ExitCode:
    print(f"pitchey report: {message}", file=sys.stderr)
    return code


def _time_range(run: object) -> tuple[float, float]:
    from collectors.run import Run

    assert isinstance(run, Run)
    times = [frame["t"] for frame in (run.load, run.stats) if len(frame)]
    if times:
        return float(min(t.min() for t in times)), float(max(t.max() for t in times)) + 1.0
    ended = run.ended_at or run.started_at
    return run.started_at.timestamp(), max(ended.timestamp(), run.started_at.timestamp() + 1)


