"""Figures (matplotlib, drawn off-screen) for runs and lessons."""

from initlab.report.figures import OKABE_ITO, decision_boundaries, loss_curves, probe_figure

__all__ = ["OKABE_ITO", "decision_boundaries", "loss_curves", "probe_figure"]
