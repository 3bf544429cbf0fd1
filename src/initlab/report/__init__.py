"""Reports: figures (matplotlib, drawn off-screen) and self-contained HTML pages."""

from initlab.report.figures import (
    OKABE_ITO,
    decision_boundaries,
    draw_decision_boundaries,
    draw_histogram_heatmap,
    draw_loss_curves,
    draw_probe,
    draw_update_ratios,
    loss_curves,
    probe_figure,
    subplots,
)
from initlab.report.html import Report

__all__ = [
    "OKABE_ITO",
    "Report",
    "decision_boundaries",
    "draw_decision_boundaries",
    "draw_histogram_heatmap",
    "draw_loss_curves",
    "draw_probe",
    "draw_update_ratios",
    "loss_curves",
    "probe_figure",
    "subplots",
]
