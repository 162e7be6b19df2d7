"""The example GitHub workflow stays in step with the CLI it calls."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from gate.cli import register

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github/workflows/perf-gate.yml"


def _steps() -> list[dict[str, Any]]:
    data = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    (job,) = data["jobs"].values()
    steps: list[dict[str, Any]] = job["steps"]
    return steps


def _commands(program: str) -> list[list[str]]:
    """Every `pitchey <program> ...` command line in the run scripts, shell-split, with
    `${{ ... }}` expressions and shell variables replaced by placeholders."""
    found = []
    for step in _steps():
        script = re.sub(r"\$\{\{[^}]*\}\}", "EXPR", step.get("run", ""))
        script = script.replace("\\\n", " ")
        # a bash array such as baseline=(--baseline FILE) expands to its fullest assignment
        for name, items in re.findall(r"(\w+)=\(([^)]+)\)", script):
            script = script.replace(f'"${{{name}[@]}}"', items)
        for line in script.splitlines():
            line = re.sub(r'"?\$\{?[A-Za-z_]+(\[@\])?\}?"?', "VAR", line.strip())
            if line.startswith(f"pitchey {program}"):
                found.append(shlex.split(line)[1:])
    return found


def test_workflow_runs_the_smoke_scenario_gates_and_uploads() -> None:
    steps = _steps()
    names = " / ".join(str(step.get("name", step.get("uses", ""))) for step in steps)
    assert _commands("run") and _commands("gate") and _commands("report")
    uses = [str(step.get("uses", "")) for step in steps]
    assert any(u.startswith("actions/upload-artifact@") for u in uses), names
    upload = next(s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact"))
    assert "gate/" in upload["with"]["path"]  # junit.xml, report.html, summary.md
    assert upload.get("if") == "always()"  # a failed gate still publishes its evidence


def test_the_scenario_the_workflow_runs_exists() -> None:
    for command in _commands("run"):
        scenario = ROOT / command[1]
        assert scenario.is_file(), f"{scenario} named by the workflow is missing"


@pytest.mark.parametrize("command", _commands("gate"), ids=lambda c: " ".join(c))
def test_gate_command_lines_parse(command: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="pitchey")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(command)
    assert args.command == "gate"


def test_job_fails_with_the_gates_exit_code() -> None:
    last = _steps()[-1]
    assert "steps.gate.outputs.code" in last["if"]
    assert 'exit "${{ steps.gate.outputs.code }}"' in last["run"]
