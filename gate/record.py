"""``record_verdict(run_dir, verdict)``: the verdict and its window into summary.json.

The thin shell that makes every view agree: summary.json's top-level figures are recomputed
over the window the verdict judged (``collectors.summarize(run, start=...)``), the whole-run
figures are kept under ``whole_run``, and the verdict's JSON goes under ``verdict`` with its
``window`` beside the figures. The file is replaced atomically (a temporary file, then
``os.replace``), so a reader sees the old summary or the new one, never half of either.
Recording again (``pitchey gate`` after ``pitchey run``) replaces the verdict and keeps the
whole-run figures as they were first written.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gate.verdict import RunVerdict

__all__ = ["record_verdict", "recorded_verdict"]

_OWN_KEYS = ("verdict", "whole_run")


def record_verdict(run_dir: Path | str, verdict: RunVerdict) -> dict[str, Any]:
    """Rewrite ``run_dir/summary.json`` with the verdict; returns what was written."""
    from collectors.run import load_run
    from collectors.summary import summarize

    run = load_run(run_dir)
    previous = dict(run.summary or {})
    whole = previous.get("whole_run")
    if not isinstance(whole, Mapping):
        whole = {k: v for k, v in previous.items() if k not in _OWN_KEYS} or summarize(run)
    window = verdict.window
    cut = window.start if window.warmup_s > 0 else None
    summary = summarize(run, start=cut, validity=run.validity)
    summary = _with_extras(summary, whole)
    summary["window"] = window.to_json()
    summary["whole_run"] = dict(whole)
    summary["verdict"] = verdict.to_json()
    _write_atomic(run.path / "summary.json", summary)
    return summary


def recorded_verdict(summary: Mapping[str, Any] | None) -> RunVerdict | None:
    """The verdict a summary.json holds, or None (an older run, or one still being written).
    Raises VerdictError when it is there but malformed."""
    from gate.verdict import RunVerdict

    data = (summary or {}).get("verdict")
    return None if data is None else RunVerdict.from_json(data)


def _with_extras(summary: dict[str, Any], whole: Mapping[str, Any]) -> dict[str, Any]:
    """What the run added to its summary beyond the figures (``ended``, ``aborted``, the
    generator's self-check, open-model arrival counts) is kept: keys, or keys of a nested
    object, that the recomputation does not produce are copied from the whole-run summary."""
    for key, value in whole.items():
        if key not in summary:
            summary[key] = value
        elif isinstance(value, Mapping) and isinstance(summary[key], dict):
            for inner, item in value.items():
                summary[key].setdefault(inner, item)
    return summary


def _write_atomic(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
