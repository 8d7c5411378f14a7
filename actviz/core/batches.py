"""Long work in slices: the memory a job may use, how many model inputs fit in it at once, the
slices, and the progress report that can stop the work.

Score-CAM, Ablation-CAM, SmoothGrad, Integrated Gradients, occlusion, the checks, feature
visualisation and a pass over a data set each run the model on many inputs. They are stacked into
batches as large as the job's memory allows (``Probe.max_bytes``: on a server its share of the
memory budget, on the command line the machine's available memory or ``--memory``; see
``job_memory``), worked out from the traced shapes before any pass; work that cannot fit one input
is refused in words before it starts. After each batch the caller's ``progress(done, total)`` is
told; a ``False`` answer stops the work with ``Cancelled``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Iterator, Sequence

from ..errors import BudgetError, Cancelled, ChoiceError
from .probe import Probe

#: ``progress(done, total)``, told after each step of long work; a ``False`` answer stops the work.
Progress = Callable[[int, int], "bool | None"]

__all__ = [
    "MAX_BATCH", "HEAD_STACK_BYTES", "WORKING_COPIES", "Progress", "available_memory", "job_memory", "largest_map_bytes",
    "pass_bytes", "batch_size", "head_batch_size", "slices", "report",
]
#: Most model inputs stacked in one pass, whatever the memory would allow. On a CPU a convolution
#: network is bound by arithmetic: VGG16 at 300 x 300 took as long per image in stacks of 4, 8, 16
#: or 38 as one at a time, within the noise of a shared machine; larger stacks only hold more
#: memory and move a progress bar less often.
MAX_BATCH = 16
#: Bytes of layer maps stacked in one pass through the part of a network after a layer (see
#: ``head_batch_size``).
HEAD_STACK_BYTES = 16 * 1024**2
#: Copies of the largest layer's output alive at once while a convolution runs on the CPU: its
#: input and its output, each in TensorFlow's layout and in oneDNN's blocked one. Measured on VGG16
#: at 300 x 300 (largest map 23 MB an image): the compiled class-score pass grew the process by 51
#: to 64 MB an image, the data set pass by 72 to 96 MB, where two copies (``Probe.forward_bytes``)
#: would say 44 MB.
WORKING_COPIES = 4
#: Share of the machine's available memory the command line lets one job use (the rest is left for
#: what grows beside it: decoded images, results, other programs).
AVAILABLE_SHARE = 0.8


def available_memory() -> int | None:
    """Bytes of memory this process could still take: the system's available memory (MemAvailable),
    and within a container its memory limit less what the container uses; None where neither can
    be read (not Linux)."""
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    for limit, usage in (("memory.max", "memory.current"), ("memory.limit_in_bytes", "memory.usage_in_bytes")):
        try:
            cap = Path("/sys/fs/cgroup", limit).read_text().strip()
            used = int(Path("/sys/fs/cgroup", usage).read_text())
        except (OSError, ValueError):
            continue
        if cap.isdigit() and int(cap) < 1 << 60:  # "max", or v1's huge number: no limit
            found.append(max(0, int(cap) - used))
        break
    return min(found) if found else None


def job_memory(megabytes: float | None = None) -> int:
    """The memory one job of the command line may use, in bytes: ``megabytes`` when given (the
    ``--memory`` option), else ``AVAILABLE_SHARE`` of the machine's available memory (and no more
    than ``ACTVIZ_MAX_FORWARD_MB`` where that is set), else that setting's default."""
    from ..settings import is_set, megabytes as setting_bytes

    if megabytes is not None:
        if isinstance(megabytes, bool) or not megabytes > 0:
            raise ChoiceError(f"The memory for a job must be a number of megabytes above 0 (got {megabytes}).")
        return int(float(megabytes) * 1024**2)
    free = available_memory()
    if free is None:
        return setting_bytes("ACTVIZ_MAX_FORWARD_MB")
    budget = int(free * AVAILABLE_SHARE)
    return min(budget, setting_bytes("ACTVIZ_MAX_FORWARD_MB")) if is_set("ACTVIZ_MAX_FORWARD_MB") else budget


def largest_map_bytes(probe: Probe, shape: Sequence[int]) -> int:
    """Bytes of the largest layer output of one input of ``shape`` (H, W, C), in float32."""
    shapes = probe.layer_shapes(int(shape[0]), int(shape[1]))
    return max((4 * math.prod(d or 1 for d in out) for out in shapes.values()), default=0)


def pass_bytes(probe: Probe, shape: Sequence[int], *, keep: Sequence[str] = (), backward: bool = False) -> int:
    """Memory of one model input of ``shape`` (H, W, C) in one pass, in bytes.

    ``keep``: layers whose feature maps the pass returns; besides them, ``WORKING_COPIES`` of the
    largest layer's output. With ``backward`` the pass is differentiated: every layer's output
    stays alive for the backward pass.
    """
    batch_shape = (1, *shape)
    extra = (WORKING_COPIES - 2) * largest_map_bytes(probe, shape)  # forward_bytes counts two copies
    if not backward:
        return probe.forward_bytes(batch_shape, list(keep)) + extra
    every = [info.name for info in probe.table if not info.container]
    return probe.forward_bytes(batch_shape, every) + extra


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
            f"Running an image of {height} x {width} pixels through this model would take about {_size(each)} of memory in "
            f"one pass, more than the {_size(probe.max_bytes)} this job may use. Nothing was run. Use a smaller image"
            + (" or give the job more memory." if probe.max_bytes < (available_memory() or 0) else ".")
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


def _size(count: int) -> str:
    """Bytes in words: "640 MB", "2.1 GB", "0.05 MB".

    >>> _size(640 * 1024**2), _size(int(2.1 * 1024**3)), _size(52_429)
    ('640 MB', '2.1 GB', '0.05 MB')
    """
    megabytes = count / 1024**2
    if count >= 1024**3:
        return f"{count / 1024**3:.1f} GB"
    return f"{round(megabytes):,} MB" if megabytes >= 9.5 else f"{megabytes:.2g} MB"


def slices(total: int, size: int) -> Iterator[slice]:
    """Consecutive slices of at most ``size`` covering ``range(total)``."""
    for start in range(0, total, size):
        yield slice(start, min(start + size, total))


def report(progress: Progress | None, done: int, total: int) -> None:
    """Tell ``progress`` how far the work is; raise ``Cancelled`` if it answers ``False``."""
    if progress is not None and progress(done, total) is False:
        raise Cancelled("The explanation was stopped before it finished; nothing was kept.")
