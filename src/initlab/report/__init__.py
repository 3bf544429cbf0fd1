"""Figures (matplotlib, drawn off-screen) for runs and lessons."""

from initlab.report.figures import decision_boundaries, loss_curves

__all__ = ["decision_boundaries", "loss_curves"]
