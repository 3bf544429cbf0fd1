"""The forecast: what the signal-propagation theory expects at each layer.

Beside each measurement the probe states the theory's RMS of h and of ∂loss/∂h for the
same widths, activations, weights and biases (:func:`initlab.meanfield.forecast`), fed
with the input's and the top gradient's measured scale: "expected vs measured". Where
the theory does not cover the model (an activation it does not know, batch norm after φ,
other modules between the layers), it says why instead.

References:
    Poole et al. 2016, "Exponential expressivity in deep neural networks through transient
    chaos"; Schoenholz et al. 2017, "Deep information propagation".
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from initlab import meanfield
from initlab.probe.layers import _COMPOSITE, _EMBEDDING

if TYPE_CHECKING:
    from initlab.probe.layers import _Block
    from initlab.probe.stats import _Measured


def _forecast(
    blocks: list[_Block], measured: _Measured, members: int
) -> tuple[list[list[tuple[float, float]]], str]:
    """Per member, per layer, the theory's (RMS of h, RMS of ∂loss/∂h); or why not.

    The weights' and biases' mean squares, the input's and the top gradient come from
    ``measured``, the measurements of :func:`_measure`: nothing is computed twice.
    """
    specs_by_member: list[list[meanfield.LayerSpec]] = [[] for _ in range(members)]
    for i, block in enumerate(blocks):
        row = measured.rows[i][0]
        name = row["activation"]
        if isinstance(block.module, _EMBEDDING + _COMPOSITE):
            return [], (
                f"layer {i + 1} ({block.name}) is an {type(block.module).__name__}: the "
                "theory covers chains of Linear/Conv, batch norm and φ only"
            )
        if name is None:
            return [], (
                f"layer {i + 1} ({block.name}) is followed by an activation the theory does "
                "not cover (or by other modules): no forecast"
            )
        if block.batch_norm == "after":
            return [], f"layer {i + 1} ({block.name}) has batch norm after φ: no forecast"
        if block.others:
            return [], (
                f"layer {i + 1} ({block.name}) is followed by {', '.join(block.others)}: "
                "the theory covers chains of Linear/Conv, batch norm and φ only"
            )
        if i > 0 and blocks[i - 1].out_numel != block.x_numel:
            return [], f"layer {i + 1} ({block.name}) does not take the previous output"
        for m in range(members):
            try:
                spec = meanfield.LayerSpec(
                    fan_in=row["fan_in"],
                    fan_out=row["fan_out"],
                    weight_var=measured.weight_ms[i][m],
                    bias_var=measured.bias_ms[i][m],
                    activation=name,
                    batch_norm=block.batch_norm == "before",
                )
            except ValueError as error:  # non-finite weights
                return [], f"layer {i + 1} ({block.name}) has no forecast: {error}"
            specs_by_member[m].append(spec)
    x2 = measured.input_ms
    if blocks[-1].grad is None:
        return [], "no gradient reached the last layer"
    result = []
    for m in range(members):
        xm = x2[m if len(x2) > 1 else 0]
        gm = measured.rows[-1][m]["grad_rms"] ** 2
        try:
            layers = meanfield.forecast(specs_by_member[m], xm, gm)
        except (ValueError, OverflowError) as error:
            return [], f"the theory has no forecast: {error}"
        # h is the layer's own output, before any batch norm: the theory's a = W x + b.
        result.append(
            [(math.sqrt(f.linear_second_moment), math.sqrt(f.linear_grad_var)) for f in layers]
        )
    return result, ""


# ------------------------------------------------------------------------------ verdicts
