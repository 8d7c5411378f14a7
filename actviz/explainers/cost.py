"""How long an explanation takes on this machine, said before it runs.

A method's work is counted in passes of the whole model (``method_passes``): forward passes,
and forward-and-backward passes for the gradients, first over the images themselves, then over
the many inputs the slow methods make (stacked as memory allows); a pass through a part of the
network (the layers after a class activation map's layer) counts as its share of the model's
operations. ``core.passes`` turns passes into seconds with the time of one compiled pass of this
model, measured on this machine once per model, alone and in stacks (a single input costs more
each). The counts follow each method's settings: Score-CAM runs one pass a channel, occlusion one
a patch, SmoothGrad and Integrated Gradients one backward pass a noisy copy or a step.

>>> method_seconds(probe, batch.shape, "integrated-gradients", {"steps": 64})   # doctest: +SKIP
41.7
>>> duration_words(_)          # core.passes: in words                           # doctest: +SKIP
'about 40 seconds'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ..core.passes import flops, seconds
from ..core.probe import Probe
from .registry import method_info
from .schema import Limits

#: A class activation map's first pass calls the Keras model eagerly: measured 1.1 to 1.15 times a
#: compiled pass on VGG16 at 300 x 300.
EAGER_COST = 1.15


@dataclass(frozen=True)
class Passes:
    """Passes of the whole model an explanation of one image takes: ``forward`` and ``backward``
    (forward and backward) over the image itself, ``made`` and ``made_backward`` over the inputs
    the method makes from it (masked, noisy, hidden or on a path), which are stacked."""

    forward: float = 0.0
    backward: float = 0.0
    made: float = 0.0
    made_backward: float = 0.0


def method_passes(probe: Probe, shape: Sequence[int], method: str, settings: Mapping[str, Any], *, layer: str | None = None) -> Passes:
    """The ``Passes`` explaining one input of ``shape`` (H, W, C) by ``method`` takes with
    ``settings`` (missing ones at their defaults), ``layer`` being a class activation map's layer
    (default: the model's default one)."""
    info = method_info(method)
    at = _layer(probe, info, layer)
    options = info.check({k: v for k, v in settings.items() if k in info.settings},
                         Limits(side=min(int(shape[0]), int(shape[1])), channels=None if at is None else at.channels))
    head = 0.0 if at is None else flops(probe, shape, after=at.name) / max(flops(probe, shape), 1.0)
    if info.family == "cam":
        backward = head if getattr(info.method, "gradients", False) else 0.0
        if "channels" in info.settings:  # Score-CAM: one pass of the image lit by each channel
            return Passes(EAGER_COST, backward, made=float(options.get("channels") or at.channels or 1))
        if method == "ablationcam":  # each channel switched off, through the layers after it
            return Passes(EAGER_COST, backward, made=float(at.channels or 1) * head)
        return Passes(EAGER_COST, backward)
    if "steps" in info.settings:  # Integrated Gradients: the image and the baseline, then one step each
        return Passes(forward=2.0, made_backward=float(options["steps"]))
    if "samples" in info.settings:  # SmoothGrad: the image, then each noisy copy
        return Passes(backward=1.0, made_backward=float(options["samples"]))
    if "patch" in info.settings:  # occlusion: the image, then each hidden patch
        return Passes(forward=1.0, made=float(_windows(shape, options)))
    return Passes(forward=1.0) if not getattr(info.method, "gradient_at_image", True) else Passes(backward=1.0)


def method_seconds(probe: Probe, batch_shape: Sequence[int], method: str, settings: Mapping[str, Any], *, layer: str | None = None) -> float:
    """Seconds explaining a batch of ``batch_shape`` (N, H, W, C) by ``method`` takes on this machine
    (measured speed of the model, see ``core.passes.pass_seconds``)."""
    count, shape = int(batch_shape[0]), tuple(batch_shape[1:])
    found = method_passes(probe, shape, method, settings, layer=layer)
    own = seconds(probe, shape, forward=found.forward, backward=found.backward, stacked=count > 1)
    made = seconds(probe, shape, forward=found.made, backward=found.made_backward) if found.made or found.made_backward else 0.0
    return count * (own + made)


def _layer(probe: Probe, info: Any, layer: str | None) -> Any:
    if not info.layer:
        return None
    table = probe.table
    return table.default_cam_layer()[0] if layer is None else table.resolve(layer, among=table.cam_layers)


def _windows(shape: Sequence[int], options: Mapping[str, Any]) -> int:
    """Patches occlusion hides on an input of ``shape`` with the checked ``options``."""
    from .occlusion import default_patch, patch_positions

    height, width = int(shape[0]), int(shape[1])
    patch = options.get("patch") or default_patch(height, width)
    stride = options.get("stride") or patch
    return len(patch_positions(height, patch, stride)) * len(patch_positions(width, patch, stride))
