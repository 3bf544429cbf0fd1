"""Each lesson's takeaway and "try next" commands, the closing parts of its page.

A lesson module may define ``TAKEAWAY`` (one sentence a learner should remember) and
``TRY_NEXT`` (commands) itself; :func:`initlab.lessons._lesson.run_lesson` prefers those,
and falls back on the texts here, keyed by the lesson's ``NAME``. Every command here is a
real ``initlab`` command (``tests/test_lessons.py`` parses each against the CLI); a
``# …`` after a command is a shell comment telling what to pick once it runs.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["TAKEAWAYS", "TRY_NEXT"]

#: lesson name → the one sentence a learner should remember.
TAKEAWAYS: Mapping[str, str] = {
    "init": (
        "Start the weights random, at a variance set by the layer's fan-in and its "
        "activation (Xavier for tanh, He for ReLU): constants never break symmetry, too "
        "small vanishes and too large saturates."
    ),
    "optimizers": (
        "At the same small learning rate, momentum and above all Adam fit far sooner than "
        "plain gradient descent, and decaying a larger rate lets even plain descent catch up."
    ),
    "batching": (
        "An epoch is one pass whatever the batch size: batch GD takes one smooth, slow step "
        "per epoch, SGD many noisy, unvectorized ones, and mini-batches are usually the "
        "fastest to a given cost in wall time."
    ),
    "batchnorm": (
        "Batch norm keeps each unit's input steady, so a net learns faster and trains over "
        "a much wider range of init scales and learning rates — and at inference it uses "
        "running averages, so eval() outputs are deterministic."
    ),
    "clipping": (
        "Where the loss has cliffs or the rate is too high, one huge gradient throws the "
        "weights away; clipping the gradient's norm keeps its direction and bounds the step."
    ),
    "gradients": (
        "Each layer multiplies the backward gradient by about √(n·Var(w)·E[φ′²]), so only an "
        "init that makes that factor 1 (Xavier for tanh, He for ReLU) keeps a deep net's "
        "gradient from vanishing or exploding."
    ),
    "landscape": (
        "Gradient descent reaches the minimum downhill of where it starts, crawls past "
        "saddles a cost-based stopping rule mistakes for minima, and gradient noise can "
        "shake it out of a shallow minimum."
    ),
    "chaos": (
        "A deep tanh net trains only when its depth is within about 6ξ_c, and ξ_c diverges "
        "at the edge of chaos (χ₁ = 1): there, and only there, very deep nets train."
    ),
}

#: lesson name → commands to run next.
TRY_NEXT: Mapping[str, tuple[str, ...]] = {
    "init": (
        "initlab train --data circles --model 2,10,5,1 --init 'zeros,normal(std=10),he_normal'"
        " --steps 2000",
        "initlab playground  # then the preset “Too small / appropriate / too large”",
        "initlab lesson gradients --depth 50 --activation tanh",
    ),
    "optimizers": (
        "initlab train --data moons --model 2,5,2,1 --optimizer sgd,momentum,adam "
        "--lr 0.0007 --batch-size 64 --epochs 500",
        "initlab lesson batching --quick",
    ),
    "batching": (
        "initlab playground  # then the preset “Batch GD vs mini-batch vs SGD”",
        "initlab train --data digits --model 64,32,10 --activation tanh --init xavier_normal"
        " --lr 0.1 --batch-size 16 --epochs 10",
        "initlab lesson optimizers --quick",
    ),
    "batchnorm": (
        "initlab playground  # then the preset “Batch norm vs none at a high rate”",
        "initlab train --data moons --model 2,32,32,32,1 --init he_normal --lr 2 "
        "--batch-size 32 --batch-norm before --steps 2000",
        "initlab lesson clipping --quick",
    ),
    "clipping": (
        "initlab playground  # then the preset “Clipping rescues a diverging run”",
        "initlab train --data moons --model 2,32,32,32,1 --init he_normal --lr 2 "
        "--batch-size 32 --clip norm --clip-threshold 1 --steps 2000",
        "initlab lesson batchnorm --quick",
    ),
    "gradients": (
        "initlab lesson gradients --depth 50 --activation tanh",
        "initlab lesson chaos --quick",
        "initlab playground  # then the preset “MNIST tanh: zeros / uniform / Xavier / N(0, 1)”",
    ),
    "landscape": (
        "initlab train --data moons --model 2,16,8,1 --lr 0.1 --steps 20000 --tol 1e-6 "
        "--window 200",
        "initlab lesson optimizers --quick",
        "initlab lesson landscape  # the full sizes: longer runs, a finer loss slice",
    ),
    "chaos": (
        "initlab lesson chaos  # the full sizes: more depths and σ_w² on the grid",
        "initlab lesson gradients --depth 50 --activation tanh",
    ),
}
