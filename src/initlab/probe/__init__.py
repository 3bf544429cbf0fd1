"""Why a network will not train, layer by layer, and what to change: the probe.

:func:`probe` runs one forward and backward pass of any ``nn.Module`` on a batch (on a
copy: the user's model, its gradients and its batch-norm statistics are left untouched),
with hooks on every layer, and returns a :class:`ProbeReport`: one :class:`Probe` per
member (one for a plain model, one per member of an initlab ``Stack``) holding, per weight
layer (Linear, Conv, and initlab's stacked layers), the statistics a practitioner reads —

* the layer's output h (pre-activation) root mean square and the block's output mean and
  std (after the activation and any batch norm),
* the fraction of saturated outputs (|tanh| > 0.97, sigmoid < 0.03 or > 0.97) and of
  dead units (output exactly 0 for every example of the batch),
* the std of ∂loss/∂h, the weight's std, its gradient's norm and std, and the
  gradient:weight norm ratio; with ``steps > 0`` also the update:weight ratio of a few
  optimizer steps,
* a symmetry score: the fraction of the layer's units that compute the same function as
  another unit on the batch (after a zero or constant init, all but one),

beside the forecast of the signal-propagation theory (:mod:`initlab.meanfield`) for the
same widths, activations and weights: "expected vs measured". From these it states
verdicts with their evidence and a concrete fix: vanishing or exploding signal or gradient
(with the per-layer factor), saturated, dead, symmetric, non-finite, and a bias made
redundant by the batch norm after it. Every verdict's threshold is a field of
:class:`Thresholds`.

During training, :class:`Watch` records the same statistics from the training step's own
forward and backward passes, so probing every 10th step costs little (see
``benchmarks/probe.py``).

The package, in the order the data flows:

* :mod:`~initlab.probe.layers`: which modules carry signal, which φ follows each weight
  layer, and the blocks (a weight layer and what follows it);
* :mod:`~initlab.probe.watch`: the hooks that record a pass, and the report;
* :mod:`~initlab.probe.stats`: the statistics engine (each tensor reduced to a few
  numbers per member, read together);
* :mod:`~initlab.probe.forecast`: the theory's expectation beside each measurement;
* :mod:`~initlab.probe.verdicts`: the thresholds and the rules, one function per
  verdict, with its reasoning and its paper: the file to read and tune;
* :mod:`~initlab.probe.results`: what is returned (:class:`LayerStats`,
  :class:`Probe`, :class:`ProbeReport`);
* :mod:`~initlab.probe.run`: :func:`probe` itself;
* :mod:`~initlab.probe.during`: :class:`ProbeEvery`, the probe as an observer of
  :func:`initlab.train.train` (every k steps, optionally stopping the run).

Example:
    >>> import torch
    >>> from torch import nn
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> layers = []
    >>> for _ in range(20):
    ...     layers += [nn.Linear(100, 100), nn.Tanh()]
    >>> model = nn.Sequential(*layers, nn.Linear(100, 10))
    >>> for layer in model:
    ...     if isinstance(layer, nn.Linear):
    ...         _ = nn.init.normal_(layer.weight, std=0.01), nn.init.zeros_(layer.bias)
    >>> report = probe(model, torch.randn(256, 100))
    >>> len(report)  # one member: the report reads as that member
    1
    >>> [v.kind for v in report.verdicts]
    ['vanishing', 'vanishing']
    >>> round(report.forward_factor, 2)  # the signal shrinks 10× per layer: 0.01·√100
    0.1
"""

from initlab.probe.during import ProbeEvery
from initlab.probe.fix import FixResult, fix
from initlab.probe.results import (
    AttentionStats,
    Histogram,
    LayerStats,
    NormStats,
    OutputStats,
    Probe,
    ProbeReport,
    RecurrentStats,
    ResidualStats,
)
from initlab.probe.run import probe
from initlab.probe.verdicts import Thresholds, Verdict, VerdictKind
from initlab.probe.watch import Watch

__all__ = [
    "AttentionStats",
    "FixResult",
    "Histogram",
    "LayerStats",
    "NormStats",
    "OutputStats",
    "Probe",
    "ProbeEvery",
    "ProbeReport",
    "RecurrentStats",
    "ResidualStats",
    "Thresholds",
    "Verdict",
    "VerdictKind",
    "Watch",
    "fix",
    "probe",
]
