"""The README's exit-code table is the `ExitCode` enum, every command's column filled in, and
every command exits 4 (CONFIG), not argparse's 2, on a usage error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pitchey_cli import main
from pitchey_cli.exitcodes import ExitCode

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = ("run", "gate", "capacity", "alerts", "serve", "seed", "failover", "report",
            "dashboard")


def _table() -> tuple[list[str], list[list[str]]]:
    """Header and rows of the table under README's "### Exit codes"."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n### Exit codes\n", 1)[1].split("\n#", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    rows = [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines]
    return rows[0], rows[2:]


def test_readme_table_lists_every_exit_code_once_with_its_name() -> None:
    _, rows = _table()
    listed = [(int(row[0]), row[1].strip("`")) for row in rows]
    assert listed == [(code.value, code.name) for code in ExitCode]


def test_readme_table_says_what_each_code_means_for_every_command() -> None:
    header, rows = _table()
    named = " ".join(header[3:])
    assert all(f"`{command}`" in named for command in COMMANDS), header
    assert all(len(row) == len(header) and all(row) for row in rows), rows


@pytest.mark.parametrize("argv", [
    ["--no-such-flag"],
    [],  # no command
    ["gate"],  # RUN_DIR missing
    ["report", "run-dir", "--prometheus-step", "-1"],
    ["alerts", "check", "--bogus"],
    ["alerts", "render"],  # --out missing
    ["capacity", "run-dir", "--users", "many"],
    ["serve", "--port", "eighty"],
    ["seed", "--users", "-1"],
    ["failover", "asia", "--duration", "-3"],
    ["run", "smoke", "--users", "0"],
])
def test_a_usage_error_exits_config_in_every_command(
        argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = main(argv)
    except SystemExit as exited:
        code = int(exited.code or 0)
    assert code == ExitCode.CONFIG
    assert "Traceback" not in capsys.readouterr().err


def test_the_console_command_exits_4_on_a_bad_flag() -> None:
    done = subprocess.run([sys.executable, "-m", "pitchey_cli", "report", "x", "--bogus"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == ExitCode.CONFIG
    assert done.stderr.strip().endswith("error: unrecognized arguments: --bogus")
