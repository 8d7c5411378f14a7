"""Long explanations in slices: how many model inputs fit in memory at once, the slices, and the
progress report that can stop the work.

Score-CAM, Ablation-CAM, SmoothGrad, Integrated Gradients, occlusion and the
checks each run the model on many variants of an image. They are stacked into
batches as large as the memory budget allows (worked out from the traced shapes
before any pass, as ``Probe.check_budget`` does), and after each batch the
caller's ``progress(done, total)`` is told; a ``False`` answer stops the work
with ``Cancelled``.
"""

from __future__ import annotations

import math
from typing import Callable, Iterator, Sequence

from ..errors import BudgetError, Cancelled, ChoiceError
from .probe import Probe

#: ``progress(done, total)``, told after each step of long work; a ``False`` answer stops the work.
Progress = Callable[[int, int], "bool | None"]

__all__ = ["MAX_BATCH", "HEAD_STACK_BYTES", "Progress", "pass_bytes", "batch_size", "head_batch_size", "slices", "report"]
#: Most model inputs stacked in one pass, whatever the memory would allow. On a CPU a convolution
#: network is bound by arithmetic: VGG16 at 300 x 300 took as long per image in stacks of 4, 8, 16
#: or 38 as one at a time, within the noise of a shared machine; larger stacks only hold more
#: memory and move a progress bar less often.
MAX_BATCH = 16
#: Bytes of layer maps stacked in one pass through the part of a network after a layer (see
#: ``head_batch_size``).
HEAD_STACK_BYTES = 16 * 1024**2


def pass_bytes(probe: Probe, shape: Sequence[int], *, keep: Sequence[str] = (), backward: bool = False) -> int:
    """Memory of one model input of ``shape`` (H, W, C) in one pass, in bytes.

    ``keep``: layers whose feature maps the pass returns. With ``backward`` the
    pass is differentiated: every layer's output stays alive for the backward
    pass and gets a gradient of the same size, so each counts twice.
    """
    batch_shape = (1, *shape)
    if not backward:
        return probe.forward_bytes(batch_shape, list(keep))
    every = [info.name for info in probe.table if not info.container]
    return 2 * probe.forward_bytes(batch_shape, every)


def batch_size(
    probe: Probe, shape: Sequence[int], *, keep: Sequence[str] = (), backward: bool = False,
    requested: int | None = None, extra_bytes: int = 0,
) -> int:
    """How many inputs of ``shape`` (H, W, C) to stack in one pass: ``requested`` (or ``MAX_BATCH``),
    lowered to what the memory budget allows. ``extra_bytes``: memory each stacked input needs
    besides the pass (e.g. a mask). ``BudgetError`` when not even one fits."""
    if requested is not None and (isinstance(requested, bool) or int(requested) < 1):
        raise ChoiceError(f"The batch size must be a whole number of at least 1 (got {requested}).")
    each = pass_bytes(probe, shape, keep=keep, backward=backward) + int(extra_bytes)
    fits = probe.max_bytes // max(each, 1)
    if fits < 1:
        height, width = shape[0], shape[1]
        raise BudgetError(
            f"Explaining an image of {height} x {width} pixels would take about {each / 1e9:.1f} GB of memory in one "
            f"pass, more than the {probe.max_bytes / 1e9:.1f} GB allowed here. Use a smaller image."
        )
    return int(max(1, min(fits, requested if requested is not None else MAX_BATCH)))


def head_batch_size(
    probe: Probe, shape: Sequence[int], name: str, *, takes_image: bool, backward: bool = False,
    requested: int | None = None,
) -> int:
    """How many copies of a layer's map to stack when feeding the part of the network after it
    (``Probe.head_model``): each copy costs the map plus the largest layer after it, twice (three
    times over with ``backward``); a head that also reads the image costs a whole pass besides.

    Unless ``requested``, the stack is also kept to about ``HEAD_STACK_BYTES`` of maps: a small
    head (pooling and a dense layer) is bound by memory traffic, and on VGG16's block5_conv3 at
    300 x 300 stacks of 32 copies ran three times faster than stacks of 256.
    """
    height, width = int(shape[0]), int(shape[1])
    shapes = probe.layer_shapes(height, width)
    index = probe.layer(name).index
    after = [4 * math.prod(d or 1 for d in shapes[info.name]) for info in probe.table
             if info.index > index and not info.container and info.name in shapes]
    feature = 4 * math.prod(d or 1 for d in shapes[name])
    each = feature * 2 + (3 if backward else 2) * max(after, default=0)
    if takes_image:
        each += pass_bytes(probe, shape, backward=False)
    fits = probe.max_bytes // max(each, 1)
    if fits < 1:
        return batch_size(probe, shape, keep=[name], requested=1)  # raises BudgetError in words
    cap = requested if requested is not None else max(1, min(256, HEAD_STACK_BYTES // max(feature, 1)))
    return int(max(1, min(fits, cap)))


def slices(total: int, size: int) -> Iterator[slice]:
    """Consecutive slices of at most ``size`` covering ``range(total)``."""
    for start in range(0, total, size):
        yield slice(start, min(start + size, total))


def report(progress: Progress | None, done: int, total: int) -> None:
    """Tell ``progress`` how far the work is; raise ``Cancelled`` if it answers ``False``."""
    if progress is not None and progress(done, total) is False:
        raise Cancelled("The explanation was stopped before it finished; nothing was kept.")
