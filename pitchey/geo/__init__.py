"""The geo topology of "Pitchey Platform - Auto-Scaling & Load Balancing Architecture"
(docs/targets.md): an edge load balancer in front of one regional worker per region, each a
separate OS process, with health checks, circuit breakers, failover, coalescing, a multi-tier
cache, a read/write split with a latency model, adaptive timeouts and priority shedding.
`pitchey serve --topology geo` runs it (`supervisor.serve_geo`); `pitchey failover REGION`
rehearses losing a region (`failover.main`).

Modules are imported on demand; this package imports nothing heavy itself.
"""

__all__ = ["DEFAULT_REGIONS_FILE"]

from pathlib import Path

DEFAULT_REGIONS_FILE = Path(__file__).with_name("regions.yaml")
