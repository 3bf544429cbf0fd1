"""Reports: figures (matplotlib, drawn off-screen) and self-contained HTML pages."""

from initlab.report.figures import (
    OKABE_ITO,
    decision_boundaries,
    draw_decision_boundaries,
    draw_loss_curves,
    draw_probe,
    loss_curves,
    probe_figure,
)
from initlab.report.html import Report

__all__ = [
    "OKABE_ITO",
    "Report",
    "decision_boundaries",
    "draw_decision_boundaries",
    "draw_loss_curves",
    "draw_probe",
    "loss_curves",
    "probe_figure",
]
