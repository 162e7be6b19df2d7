"""``pitchey gate RUN_DIR``: the thin shell around the gate's pure core.

It reads a run directory through ``collectors.load_run``, cuts the warm-up off, evaluates the
scenario's thresholds (and a baseline when given), writes JUnit / JSON / Markdown, prints a
console table and returns the exit code CI acts on:

    0 pass · 1 threshold breached · 2 regression against the baseline
    3 run invalid (generator saturated, target unreachable) · 4 configuration error

``loadtests.cli`` calls :func:`register_gate` to add the subcommand and, for
``pitchey run --gate``, :func:`add_gate_arguments` on its own parser and
:func:`evaluate_cli` once the run directory is written. Only the standard library is
imported at module level, so ``pitchey serve`` stays light.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from collectors.run import Run
    from gate.core import GateResult, Window
    from gate.report import ReportMeta
    from gate.thresholds import GateSpec

__all__ = [
    "DEFAULT_BASELINE_DIR",
    "EXIT_CODES",
    "add_gate_arguments",
    "evaluate_cli",
    "register",
    "threshold_aborts",
    "window_from_run",
]

DEFAULT_BASELINE_DIR = Path("baselines")
EXIT_CODES = {
    0: "pass",
    1: "threshold breached",
    2: "regression against the baseline",
    3: "run invalid (load generator saturated, target unreachable, nothing measured)",
    4: "configuration error (unknown metric, malformed threshold, bad run directory or flag)",
}
_SAVE_DEFAULT = "<baselines/SCENARIO.json>"


class _ConfigError(Exception):
    """A mistake in what the user gave us: printed as one line, exit 4."""


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``pitchey gate RUN_DIR ...`` to a ``pitchey`` subparsers object."""
    epilog = "exit codes:\n" + "\n".join(f"  {code}  {text}" for code, text in EXIT_CODES.items())
    parser = subparsers.add_parser(
        "gate", help="turn a run directory into a CI verdict (exit 0-4)",
        description="Evaluate a run's thresholds (and a baseline) and exit with a code CI acts\n"
        "on. Percentiles come from the run's merged HDR histograms, warm-up excluded.\n"
        "Thresholds, warm-up and margins come from the scenario (docs/gate.md).",
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


class _GateParser(argparse.ArgumentParser):
    """The gate's subparser: a usage error exits 4 (configuration error), not argparse's 2.

    Unknown flags are caught here too; left to the top-level parser they would exit 2.
    """

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        print(f"pitchey gate: error: {message}", file=sys.stderr)
        raise SystemExit(4)

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None,
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras


def evaluate_cli(run_dir: str | Path, args: argparse.Namespace) -> int:
    """Gate one run directory with the options in ``args``; print and return the exit code.

    Options missing from ``args`` take their defaults, so ``pitchey run --gate`` may pass its
    own namespace whether or not it added :func:`add_gate_arguments`.
    """
    from collectors.errors import RunDirError
    from gate.thresholds import ThresholdError

    try:
        return _evaluate(Path(run_dir), args)
    except (ThresholdError, RunDirError, _ConfigError) as exc:
        print(f"pitchey gate: configuration error: {exc}", file=sys.stderr)
        return 4


def _evaluate(run_dir: Path, args: argparse.Namespace) -> int:
    from dataclasses import replace

    from collectors.run import load_run
    from gate.core import gate
    from gate.report import console_table

    run = load_run(run_dir)
    spec = _spec(run, args)
    window = replace(window_from_run(run, spec.warmup_s), aborted=threshold_aborts(run, spec))
    baseline = _baseline(getattr(args, "baseline", None), spec)
    result = gate(spec, window, baseline)
    meta = _meta(run, spec, getattr(args, "baseline", None))
    _write_outputs(result, meta, args)
    sys.stdout.write(console_table(result, meta))
    save = getattr(args, "save_baseline", None)
    if save:
        _save_baseline(save, run, spec, result)
    return result.exit_code


def _spec(run: Run, args: argparse.Namespace) -> GateSpec:
    from dataclasses import replace

    from gate.thresholds import (
        check_tags_declared,
        parse_confidence,
        parse_duration,
        parse_gate_spec,
        parse_margin,
        parse_thresholds,
    )

    scenario = run.scenario
    spec = parse_gate_spec(scenario, source=f"{run.path / 'manifest.json'} scenario")
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
    spec = replace(spec, **overrides)
    check_tags_declared(spec)  # --threshold may name a tag the scenario does not declare
    return spec


# --- run directory -> Window ---------------------------------------------------------------


def window_from_run(run: Run, warmup_s: float) -> Window:
    """The run after its warm-up, one Cell per region x endpoint x user class.

    Counts come from the per-second stats, latency from the interval histograms whose midpoint
    falls after the warm-up (the whole-run histograms when there is no warm-up), merged
    losslessly by ``collectors``.
    """
    from gate.core import Cell, Window

    stats = run.stats
    cut = _run_start(run) + warmup_s if warmup_s > 0 else None
    after = stats[stats["t"] >= cut] if cut is not None else stats
    counts = after.groupby(["region", "endpoint", "user_class"], sort=True, observed=True)[
        ["requests", "failures"]].sum()
    count_of = {tuple(map(str, key)): (int(row.requests), int(row.failures))
                for key, row in zip(counts.index, counts.itertuples(), strict=True)}
    hist_keys = run.histogram_keys()
    names = sorted({k[:3] for k in hist_keys} | set(count_of))
    kinds = {k[3] for k in hist_keys}
    cells = []
    for region, endpoint, user_class in names:
        requests, failures = count_of.get((region, endpoint, user_class), (0, 0))
        service = run.histogram(region, endpoint, user_class, "service", start=cut)
        corrected = (run.histogram(region, endpoint, user_class, "corrected", start=cut)
                     if "corrected" in kinds else None)
        if requests or failures or service.total or (corrected is not None and corrected.total):
            cells.append(Cell(region, endpoint, user_class, requests, failures, service,
                              corrected))
    validity = run.validity
    return Window(
        cells=tuple(cells), duration_s=_duration_s(run, cut), users_max=_users_max(run, cut),
        valid=validity.valid, reasons=validity.reasons,
        known={field: frozenset(str(n[i]) for n in names)
               for i, field in enumerate(("region", "endpoint", "user_class"))},
    )


def threshold_aborts(run: Run, spec: GateSpec) -> tuple[str, ...]:
    """Reasons of the run's `abort` events that an abort_on_fail threshold caused.

    Such an event carries a `threshold` field, or its reason is what `should_abort` returned
    ("<threshold name> failed after ..."); an abort for any other cause (Ctrl-C) is not one.
    """
    names = tuple(f"{t.name} failed after" for t in spec.thresholds if t.abort_on_fail)
    reasons = []
    for event in run.events_of("abort"):
        reason = str(event.get("reason") or event.get("threshold") or "")
        if event.get("threshold") or (names and reason.startswith(names)):
            reasons.append(reason)
    return tuple(reasons)


def _run_start(run: Run) -> float:
    """When load began: the first recorded second (the manifest's start may precede the
    service start-up and seeding by many seconds)."""
    for frame in (run.load, run.stats):
        if len(frame):
            return float(frame["t"].min())
    return run.started_at.timestamp()


def _duration_s(run: Run, cut: float | None) -> float:
    """Seconds with load after the cut: from the cut (or the first second) to the last second."""
    frame = run.load if len(run.load) else run.stats
    if not len(frame):
        return 0.0
    seconds = sorted(set(float(t) for t in frame["t"]))
    step = min((b - a for a, b in zip(seconds, seconds[1:], strict=False)), default=1.0)
    end = seconds[-1] + step
    start = max(cut, seconds[0]) if cut is not None else seconds[0]
    return max(end - start, 0.0)


def _users_max(run: Run, cut: float | None) -> int:
    load = run.load
    after = load[load["t"] >= cut] if cut is not None else load
    return int(after["users"].max()) if len(after) else 0


# --- baselines -------------------------------------------------------------------------------


def _baseline(path_text: str | None, spec: GateSpec) -> Window | None:
    from collectors.run import load_run
    from gate.core import baseline_from_json

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


def _save_baseline(target: str, run: Run, spec: GateSpec, result: GateResult) -> None:
    from gate.core import EXIT_PASS, baseline_to_json

    path = DEFAULT_BASELINE_DIR / f"{run.scenario_name or 'run'}.json" \
        if target == _SAVE_DEFAULT else Path(target)
    if result.exit_code != EXIT_PASS:
        print(f"pitchey gate: baseline not saved to {path}: the gate did not pass",
              file=sys.stderr)
        return
    meta = {"run_id": run.run_id, "scenario_name": run.scenario_name, "target": run.target,
            "git_commit": run.manifest.get("git_commit"), "warmup_s": spec.warmup_s}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(baseline_to_json(result.window, meta)) + "\n", encoding="utf-8")
    tmp.replace(path)
    print(f"pitchey gate: baseline saved to {path}", file=sys.stderr)


# --- outputs -------------------------------------------------------------------------------


def _meta(run: Run, spec: GateSpec, baseline: str | None) -> ReportMeta:
    from gate.report import ReportMeta

    return ReportMeta(run_id=run.run_id, scenario=run.scenario_name, target=run.target,
                      warmup_s=spec.warmup_s, baseline=baseline, run_dir=str(run.path))


def _write_outputs(result: GateResult, meta: ReportMeta, args: argparse.Namespace) -> None:
    from gate.report import dumps, to_junit, to_markdown

    writers = ((getattr(args, "junit", None), to_junit),
               (getattr(args, "json_out", None), dumps),
               (getattr(args, "markdown", None), to_markdown))
    for target, render in writers:
        if target:
            _write(Path(target), render(result, meta))


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
