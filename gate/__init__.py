"""The one judge of a run: thresholds, windows, evaluation and baseline comparison.

`gate.core` and `gate.thresholds` are the pure core; `gate.cli` (``pitchey gate``) and
`gate.report` (JUnit, JSON, Markdown, console) are thin shells over it. Every other view of a
run (the end-of-run console, summary.json, the dashboard header, the HTML report) shows the
verdict this package produces and never computes its own.
"""

__all__: list[str] = []
