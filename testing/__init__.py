"""Test fixtures shared by `tests/`, `benchmarks/` and the screenshot tool: nothing here ships
in the product.

- `testing.rundirs`: THE builder of synthetic run directories, written with collectors' real
  `RunWriter` from seeded generators (so a test computes the figures it expects from the
  values it recorded, never hard-codes them);
- `testing.demo`: a dashboard-sized run on a known Universal Scalability Law curve, built on
  `testing.rundirs` (dashboard tests, `dashboards.screenshots`, the dashboard benchmark);
- `testing.localstack`: a throwaway local Prometheus + Alertmanager around rendered rules.

Product packages (`pitchey`, `pitchey_cli`, `loadtests`, `gate`, `collectors`, `alerts`,
`dashboards`) never import `testing`; the one exception is `dashboards.screenshots`, a
developer tool that writes demo runs when it is given none.
"""

__all__: list[str] = []
