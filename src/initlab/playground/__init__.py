"""The playground: a local page where lanes of configurations train side by side, live.

``initlab playground`` serves it (:func:`~initlab.playground.server.serve`); the lanes'
settings and checks are in :mod:`~initlab.playground.lanes`, the training behind one
page in :mod:`~initlab.playground.session`. docs/playground.md has the protocol.
"""

from initlab.playground.lanes import PRESETS, Lane, LaneErrors, check_lanes, command
from initlab.playground.session import Session

__all__ = ["PRESETS", "Lane", "LaneErrors", "Session", "check_lanes", "command"]
