"""Lesson "optimizers": gradient descent, momentum and Adam, with and without decay.

The deeplearning.ai notebook "Optimization Methods" (Improving Deep Neural Networks,
course 2, week 2), reproduced exactly in float64 by
:func:`initlab.lessons.notebooks.lesson_optimizers`: moons (300 points, noise 0.2), the
net [2, 5, 2, 1] He-initialized as the notebook draws it, mini-batches of 64 reshuffled
each epoch as the notebook shuffles them, 5000 epochs. Seven runs as one stack: GD,
momentum (β 0.9, the notebook's damped form) and Adam at lr 0.0007; GD with
``update_lr`` (lr₀/(1 + epoch)); GD, momentum and Adam with ``schedule_lr_decay``
(lr₀/(1 + ⌊epoch/1000⌋)).

The report shows the printed output the notebook prints, the epoch-cost curves and each
run's decision boundary. ``quick`` runs the first 400 epochs only.
"""

from __future__ import annotations

from pathlib import Path

import torch

from initlab.compat import legacy_make_moons
from initlab.lessons._lesson import Context, Lesson, LessonProgress
from initlab.lessons.notebooks import lesson_optimizers
from initlab.report.figures import draw_decision_boundaries, draw_loss_curves

__all__ = ["run"]

TITLE = "Optimizers: gradient descent, momentum and Adam, with and without learning-rate decay"


def run(
    out: str | Path | None = None,
    *,
    quick: bool = False,
    device: str = "cpu",
    progress: LessonProgress | None = None,
) -> Lesson:
    """Run the lesson (see the module's doc); write its report into ``out``."""
    epochs = 400 if quick else 5000
    ctx = Context(
        "optimizers",
        TITLE,
        out,
        quick=quick,
        device=device,
        progress=progress,
        subtitle=(
            f"The deeplearning.ai notebook 'Optimization Methods', reproduced exactly in "
            f"float64: moons, net [2, 5, 2, 1], mini-batches of 64, {epochs} epochs, "
            "seven runs trained as one stack."
        ),
    )
    ctx.stage(f"7 optimizers × {epochs} epochs, one stack")
    notebook = lesson_optimizers(None, progress=ctx.progress, epochs=epochs, device=ctx.device)
    result = notebook.result
    if result.interrupted:
        raise KeyboardInterrupt
    labels = notebook.runs
    acc = notebook.train_accuracy
    final = {label: float(result.epoch_loss[-1, m]) for m, label in enumerate(labels)}

    ctx.report.section(
        "Cost per epoch",
        "The epoch cost is the summed cross-entropy of the epoch's mini-batches over m, as "
        "the notebook computes it. Its wiggles are the mini-batches: each epoch sees them "
        "in a new order.",
    )
    epochs_axis = torch.arange(result.epoch_loss.shape[0])
    ctx.figure(
        draw_loss_curves(epochs_axis, result.epoch_loss.cpu(), list(labels), "epoch cost", "epoch"),
        "cost",
        "Epoch cost of each run (log scale). Adam, and every run with decay, leave "
        "plain gradient descent at lr 0.0007 behind.",
    )
    ctx.report.section("Decision boundaries", "Each run's classifier on the training points.")
    x, y = (torch.from_numpy(a) for a in legacy_make_moons(300, 0.2, seed=3))
    ctx.figure(
        draw_decision_boundaries(notebook.model.cpu(), x, y, list(labels)),
        "decision-boundaries",
        "Decision regions (orange: class 1) after training, one panel per run.",
    )
    ctx.report.section("Accuracy")
    ctx.report.table(
        ["run", "final epoch cost", "training accuracy"],
        [[label, final[label], f"{acc[label]:.1%}"] for label in labels],
        caption=f"after {epochs} epochs",
    )
    ctx.report.section("What the notebook prints")
    ctx.report.preformatted(notebook.lines)

    best = max(labels, key=lambda label: acc[label])
    findings = [
        f"Plain gradient descent at lr 0.0007 reached {acc['gd']:.1%} training accuracy in "
        f"{epochs} epochs; momentum {acc['momentum']:.1%}; Adam {acc['adam']:.1%}.",
        f"From lr₀ 0.1, gradient descent with schedule_lr_decay reached "
        f"{acc['gd, schedule_lr_decay']:.1%} and with update_lr (lr₀/(1 + epoch), which "
        f"decays much faster) {acc['gd, update_lr']:.1%}.",
        f"The best run was {best!r} at {acc[best]:.1%}, final epoch cost {final[best]:.4f}.",
    ]
    facts = {"epochs": epochs, "train_accuracy": dict(acc), "final_cost": final, "best": best}
    return ctx.finish(findings, facts, notebook.lines)
