"""What the study tests share: an observer that presses Ctrl-C part-way through a study."""

from __future__ import annotations

import os
import signal

from initlab.train import Observer, Run


class CtrlCInSecondStack(Observer):
    """Presses Ctrl-C in the second stack, at step 20."""

    every = 1

    def __init__(self) -> None:
        self.stacks = 0

    def on_start(self, run: Run) -> None:
        self.stacks += 1

    def on_step(self, run: Run) -> None:
        if self.stacks == 2 and run.step == 20:
            os.kill(os.getpid(), signal.SIGINT)
