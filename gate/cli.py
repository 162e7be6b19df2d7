"""``pitchey gate RUN_DIR``: the thin shell around the gate's pure core.

It reads a run directory through ``collectors.load_run``, judges it with
``gate.evaluation.evaluate_run`` (the scenario's thresholds and the product's targets after
the warm-up, validity, a baseline when given, projections), records the verdict in the run's
summary.json, writes JUnit / JSON / Markdown, prints the console table and verdict line and
returns the exit code CI acts on (``pitchey_cli.exitcodes.ExitCode``; see ``EXIT_CODES``).

The dispatcher calls :func:`register`; ``pitchey run`` adds :func:`add_gate_arguments` to its
own parser and calls :func:`judge` once the run directory is written. Only the standard
library (and the ExitCode enum) is imported at module level, so ``pitchey serve`` stays
light.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from pitchey_cli.exitcodes import ExitCode

if TYPE_CHECKING:
    from collectors.run import Run
    from gate.core import Window
    from gate.report import ReportMeta
    from gate.thresholds import GateSpec
    from gate.verdict import RunVerdict

__all__ = [
    "DEFAULT_BASELINE_DIR",
    "EXIT_CODES",
    "Judged",
    "add_gate_arguments",
    "evaluate_cli",
    "judge",
    "register",
    "usage_errors_exit_config",
]

DEFAULT_BASELINE_DIR = Path("baselines")
EXIT_CODES: dict[ExitCode, str] = {
    ExitCode.OK: "pass: every measured check holds, no regression, the run is valid",
    ExitCode.BREACH: "a measured check failed (a scenario threshold or a product target)",
    ExitCode.REGRESSION: "regression against the baseline",
    ExitCode.INVALID: "run invalid (load generator saturated, target unreachable, nothing "
                      "measured)",
    ExitCode.CONFIG: "configuration error (unknown metric, malformed threshold, bad run "
                     "directory or flag)",
}
_SAVE_DEFAULT = "<baselines/SCENARIO.json>"


class _ConfigError(Exception):
    """A mistake in what the user gave us: printed as one line, exit 4."""


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``pitchey gate RUN_DIR ...`` to a ``pitchey`` subparsers object."""
    epilog = "exit codes:\n" + "\n".join(f"  {int(code)}  {text}"
                                         for code, text in EXIT_CODES.items())
    parser = subparsers.add_parser(
        "gate", help="judge a run directory: the verdict every view shows (exit 0-4)",
        description="Judge a run: the scenario's thresholds and the product's targets after\n"
        "the warm-up, the run's validity and a baseline when given. The verdict is recorded\n"
        "in the run's summary.json and the exit code is what CI acts on. Percentiles come\n"
        "from the run's merged HDR histograms; thresholds, warm-up and margins from the\n"
        "scenario (docs/gate.md). Capacity and cost projections are shown, never judged.",
        epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (runs/<id>/)")
    add_gate_arguments(parser)
    # argparse exits 2 on a bad flag, which CI would read as "regression": make it 4.
    parser.__class__ = _GateParser
    parser.set_defaults(func=lambda args: evaluate_cli(args.run_dir, args))


def add_gate_arguments(parser: argparse.ArgumentParser) -> None:
    """The gate's options, shared by ``pitchey gate`` and ``pitchey run --gate``."""
    group = parser.add_argument_group("gate")
    group.add_argument("--baseline", metavar="RUN_DIR_OR_FILE",
                       help="compare p95 and error rate with this run directory or saved "
                       "baseline file")
    group.add_argument("--save-baseline", nargs="?", const=_SAVE_DEFAULT, metavar="FILE",
                       help="when the gate passes, store this run as a baseline "
                       "(default baselines/<scenario>.json)")
    group.add_argument("--junit", metavar="FILE", help="write JUnit XML (one testcase per "
                       "threshold)")
    group.add_argument("--json", dest="json_out", metavar="FILE", help="write the verdict as "
                       "JSON")
    group.add_argument("--markdown", metavar="FILE", help="write a Markdown summary for a "
                       "pull-request comment")
    group.add_argument("--margin", metavar="PCT", help="p95 worsening tolerated against the "
                       "baseline, e.g. 10%% (default: the scenario's gate.margin, else 10%%)")
    group.add_argument("--error-margin", metavar="PCT", help="error-rate worsening tolerated, "
                       "in points, e.g. 0.1%% (default: gate.error_margin, else 0.1%%)")
    group.add_argument("--confidence", metavar="PCT", help="confidence of the regression "
                       "check, e.g. 95%% (default: gate.confidence, else 95%%)")
    group.add_argument("--warmup", metavar="DURATION", help="seconds excluded at the start, "
                       "e.g. 10s (default: the scenario's warmup)")
    group.add_argument("--threshold", dest="thresholds", action="append", metavar="CHECK",
                       help="a threshold such as 'p95 < 100ms'; repeatable; replaces the "
                       "scenario's list")
    group.add_argument("--product-targets", action=argparse.BooleanOptionalAction,
                       default=None, help="judge the product's targets (p95, error rate; "
                       "docs/targets.md) beside the thresholds (default: the scenario's "
                       "gate.product_targets, else yes)")


def usage_errors_exit_config(parser: argparse.ArgumentParser, command: str) -> None:
    """Make a (sub)parser's usage errors exit 4 (configuration error) rather than argparse's
    2, which CI would read as the gate's "regression"; the message names ``command``."""

    def error(message: str) -> NoReturn:
        parser.print_usage(sys.stderr)
        print(f"{command}: error: {message}", file=sys.stderr)
        raise SystemExit(ExitCode.CONFIG)

    setattr(parser, "error", error)  # noqa: B010 - an instance override, on purpose


class _GateParser(argparse.ArgumentParser):
    """The gate's subparser: a usage error exits 4 (configuration error), not argparse's 2.

    Unknown flags are caught here too; left to the top-level parser they would exit 2.
    """

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        print(f"pitchey gate: error: {message}", file=sys.stderr)
        raise SystemExit(ExitCode.CONFIG)

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None,
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras


@dataclass(frozen=True)
class Judged:
    """What gating one run directory gave: the verdict (None after a configuration error,
    which was printed to stderr) and the exit code."""

    verdict: RunVerdict | None
    code: ExitCode


def evaluate_cli(run_dir: str | Path, args: argparse.Namespace) -> int:
    """Gate one run directory with the options in ``args``; print and return the exit code.

    Options missing from ``args`` take their defaults, so ``pitchey run --gate`` may pass its
    own namespace whether or not it added :func:`add_gate_arguments`.
    """
    from gate.report import console_table

    judged = judge(run_dir, args)
    if judged.verdict is not None:
        sys.stdout.write(console_table(judged.verdict))
    return int(judged.code)


def judge(run_dir: str | Path, args: argparse.Namespace) -> Judged:
    """Evaluate, record the verdict in summary.json, write the requested outputs and save a
    baseline when asked; a configuration error is printed (one line) and gives CONFIG."""
    from collectors.errors import RunDirError
    from gate.thresholds import ThresholdError
    from gate.verdict import VerdictError

    try:
        return _judge(Path(run_dir), args)
    except (ThresholdError, RunDirError, VerdictError, _ConfigError) as exc:
        print(f"pitchey gate: configuration error: {exc}", file=sys.stderr)
        return Judged(None, ExitCode.CONFIG)


def _judge(run_dir: Path, args: argparse.Namespace) -> Judged:
    from collectors.run import load_run
    from gate.evaluation import evaluate_run, record_verdict

    run = load_run(run_dir)
    spec = _spec(run, args)
    baseline_text = getattr(args, "baseline", None)
    baseline = _baseline(baseline_text, spec)
    verdict = evaluate_run(run, spec, baseline, baseline_source=baseline_text)
    _write_outputs(verdict, _meta(run), args)
    try:
        record_verdict(run.path, verdict)
    except OSError as exc:
        raise _ConfigError(f"cannot record the verdict in {run.path / 'summary.json'}: "
                           f"{exc.strerror or exc}") from None
    save = getattr(args, "save_baseline", None)
    if save:
        _save_baseline(save, run, spec, verdict)
    return Judged(verdict, verdict.exit_code)


def _spec(run: Run, args: argparse.Namespace) -> GateSpec:
    from dataclasses import replace

    from gate.evaluation import spec_from_run
    from gate.thresholds import (
        check_tags_declared,
        parse_confidence,
        parse_duration,
        parse_margin,
        parse_thresholds,
    )

    spec = spec_from_run(run)
    overrides: dict[str, Any] = {}
    if getattr(args, "thresholds", None):
        overrides["thresholds"] = parse_thresholds(args.thresholds, where="--threshold")
    if getattr(args, "warmup", None) is not None:
        overrides["warmup_s"] = parse_duration(args.warmup, where="--warmup")
    if getattr(args, "margin", None) is not None:
        overrides["margin"] = parse_margin(args.margin, where="--margin")
    if getattr(args, "error_margin", None) is not None:
        overrides["error_margin"] = parse_margin(args.error_margin, where="--error-margin")
    if getattr(args, "confidence", None) is not None:
        overrides["confidence"] = parse_confidence(args.confidence, where="--confidence")
    if getattr(args, "product_targets", None) is not None:
        overrides["product_targets"] = bool(args.product_targets)
    spec = replace(spec, **overrides)
    check_tags_declared(spec)  # --threshold may name a tag the scenario does not declare
    return spec


# --- baselines -------------------------------------------------------------------------------


def _baseline(path_text: str | None, spec: GateSpec) -> Window | None:
    from collectors.run import load_run
    from gate.core import baseline_from_json
    from gate.window import window_from_run

    if not path_text:
        return None
    path = Path(path_text)
    if path.is_dir():
        run = load_run(path)
        if not run.validity.valid:
            raise _ConfigError(f"--baseline {path}: that run is invalid, so its figures cannot "
                               f"serve as a baseline ({'; '.join(run.validity.reasons)})")
        return window_from_run(run, spec.warmup_s)
    if not path.exists():
        raise _ConfigError(f"--baseline {path}: does not exist (give a run directory or a file "
                           "written by --save-baseline)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _ConfigError(f"--baseline {path}: not a readable JSON baseline ({exc})") from None
    return baseline_from_json(data, source=str(path))


def _save_baseline(target: str, run: Run, spec: GateSpec, verdict: RunVerdict) -> None:
    from gate.core import baseline_to_json
    from gate.window import window_from_run

    path = DEFAULT_BASELINE_DIR / f"{run.scenario_name or 'run'}.json" \
        if target == _SAVE_DEFAULT else Path(target)
    if verdict.exit_code != ExitCode.OK:
        print(f"pitchey gate: baseline not saved to {path}: the gate did not pass",
              file=sys.stderr)
        return
    meta = {"run_id": run.run_id, "scenario_name": run.scenario_name, "target": run.target,
            "git_commit": run.manifest.get("git_commit"), "warmup_s": spec.warmup_s}
    window = window_from_run(run, spec.warmup_s)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(baseline_to_json(window, meta)) + "\n", encoding="utf-8")
    tmp.replace(path)
    print(f"pitchey gate: baseline saved to {path}", file=sys.stderr)


# --- outputs -------------------------------------------------------------------------------


def _meta(run: Run) -> ReportMeta:
    from gate.report import ReportMeta

    return ReportMeta(run_id=run.run_id, scenario=run.scenario_name, target=run.target,
                      run_dir=str(run.path))


def _write_outputs(verdict: RunVerdict, meta: ReportMeta, args: argparse.Namespace) -> None:
    from gate.report import dumps, to_junit, to_markdown

    writers = ((getattr(args, "junit", None), to_junit),
               (getattr(args, "json_out", None), dumps),
               (getattr(args, "markdown", None), to_markdown))
    for target, render in writers:
        if target:
            _write(Path(target), render(verdict, meta))


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise _ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m gate.cli RUN_DIR ...`` without the ``pitchey`` dispatcher."""
    parser = argparse.ArgumentParser(prog="pitchey")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["gate", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
