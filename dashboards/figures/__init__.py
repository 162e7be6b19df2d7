"""Pure figure builders: prepared data in, `plotly.graph_objects.Figure` out."""

from __future__ import annotations

from dashboards.figures.capacity import capacity_figure
from dashboards.figures.compare import compare_figure, endpoint_deltas
from dashboards.figures.cost import breakdown_figure, burn_figure, seed_comparison_figure
from dashboards.figures.overview import (
    heatmap_figure,
    heatmap_patch_data,
    latency_extension,
    latency_figure,
    load_extension,
    load_figure,
)

__all__ = [
    "breakdown_figure",
    "burn_figure",
    "capacity_figure",
    "compare_figure",
    "endpoint_deltas",
    "heatmap_figure",
    "heatmap_patch_data",
    "latency_extension",
    "latency_figure",
    "load_extension",
    "load_figure",
    "seed_comparison_figure",
]
