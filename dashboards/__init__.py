"""The Dash cost-and-latency dashboard and `pitchey capacity` (docs/dashboard.md).

Importing this package imports nothing heavy: `dashboards.cli` is standard-library only at
import time. The pure models it shows live in `collectors.models` (shared with the gate).

- `dashboards.app.create_app(runs_dir)`: the Dash application;
- `dashboards.verdict_header.verdict_bar(view)`: the header, the gate's verdict as summary.json
  records it (the dashboard never judges a run);
- `dashboards.data.build_view(run)`: what the panels need, prepared once per run;
- `dashboards.figures`: pure figure builders (prepared data in, Plotly figure dicts out);
- `dashboards.screenshots`: a PNG of every page in headless Chromium.
"""

__all__: list[str] = []
