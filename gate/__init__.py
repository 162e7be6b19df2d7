"""The one judge of a run: thresholds, windows, evaluation and baseline comparison.

The pure core: `gate.thresholds` (the threshold grammar and the gate spec), `gate.window`
(the gated window of a run directory), `gate.core` (measuring thresholds, baseline
comparison, abort on fail), `gate.projections` (capacity and cost for the product's targets,
labelled as model outputs), `gate.verdict` (the verdict as data and JSON) and
`gate.evaluation.evaluate_run` (THE judgement of a run). The thin shells: `gate.record`
(the verdict into summary.json), `gate.cli` (``pitchey gate``) and `gate.report` (console,
JUnit, JSON, Markdown). Every other view of a run (the end-of-run console, summary.json, the
dashboard header, the HTML report, ``pitchey capacity``) shows the verdict this package
produces and never computes its own.
"""

__all__: list[str] = []
