"""`python -m dashboards.screenshots [--runs DIR] [--out DIR]`: a PNG of every page.

Serves the dashboard on a free local port, opens each page in headless Chromium, waits
until every figure is drawn, and saves a full-page screenshot. Without --runs it writes two
synthetic runs (`testing.demo`) to a temporary folder first, so it works on a fresh clone:
this developer tool is the one module of the product packages that imports `testing`.
Exit codes (`ExitCode`): 0 every page saved; 1 a page logged a browser console error or never
finished drawing (the messages say which); 4 a missing --runs folder or no Chromium.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from pitchey_cli.exitcodes import ExitCode
from pitchey_cli.usage import CommandParser

__all__ = ["PAGES", "take_screenshots", "main"]

# (file name, path, element that shows the page is complete)
PAGES = (
    ("overview", "/", "#heatmap-graph"),
    ("endpoints", "/endpoints", "#ep-grid"),
    ("capacity", "/capacity", "#cap-result"),
    ("cost", "/cost", "#cost-total"),
    ("compare", "/compare", "#cmp-graph"),
)
WIDTH = 1400


def _demo_runs(root: Path) -> Path:
    from testing.demo import DemoSpec, write_demo_run

    write_demo_run(root, DemoSpec())
    write_demo_run(root, DemoSpec(seed=11, sigma=0.004, kappa=2e-5, scenario_name="demo-tuned",
                                  start=DemoSpec().start + 3600))
    return root


def take_screenshots(runs: Path, out: Path, *, run_id: str | None = None) -> tuple[
        list[Path], list[str]]:
    """Screenshot every page; returns the files written and any console errors."""
    from dashboards.app import create_app
    from dashboards.browser import chromium, console_errors, serve, wait_page_ready

    out.mkdir(parents=True, exist_ok=True)
    app = create_app(runs, cache_dir=out / ".cache")
    written, errors = [], []
    query = f"?run={run_id}" if run_id else ""
    with serve(app.server) as url, chromium(width=WIDTH) as driver:
        for name, path, ready in PAGES:
            driver.set_window_size(WIDTH, 1000)
            driver.get(f"{url}{path}{query}")
            wait_page_ready(driver, ready, timeout_s=60)
            height = driver.execute_script("return document.documentElement.scrollHeight")
            driver.set_window_size(WIDTH, min(int(height) + 40, 6000))
            wait_page_ready(driver, ready, timeout_s=60)
            file = out / f"{name}.png"
            driver.save_screenshot(str(file))
            written.append(file)
            errors += [f"{name}: {message}" for message in console_errors(driver)]
    return written, errors


def main(argv: list[str] | None = None) -> ExitCode:
    parser = CommandParser(prog="python -m dashboards.screenshots",
                           description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=None,
                        help="folder of run directories (default: synthetic demo runs)")
    parser.add_argument("--run", default=None, help="run id to show (default: the newest)")
    parser.add_argument("--out", type=Path, default=Path("screenshots"),
                        help="output folder (default: screenshots)")
    args = parser.parse_args(argv)
    from dashboards.browser import BrowserMissing

    with tempfile.TemporaryDirectory(prefix="pitchey-demo-runs-") as tmp:
        runs = args.runs or _demo_runs(Path(tmp))
        if not runs.exists():
            print(f"screenshots: {runs}: no such folder", file=sys.stderr)
            return ExitCode.CONFIG
        try:
            written, errors = take_screenshots(runs, args.out, run_id=args.run)
        except BrowserMissing as exc:
            print(f"screenshots: {exc}", file=sys.stderr)
            return ExitCode.CONFIG
        except TimeoutError as exc:
            print(f"screenshots: {exc}", file=sys.stderr)
            return ExitCode.BREACH
    for file in written:
        print(f"wrote {file}")
    for error in errors:
        print(f"console error: {error}", file=sys.stderr)
    return ExitCode.BREACH if errors else ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
