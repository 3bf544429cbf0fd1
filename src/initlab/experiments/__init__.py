"""Experiments built from the library: the classic lessons, reproduced exactly."""

from initlab.experiments.lessons import LessonResult, lesson_init, lesson_optimizers

__all__ = ["LessonResult", "lesson_init", "lesson_optimizers"]
