"""The layer concepts are read at: which one by default, and its compiled passes, run in chunks
of a fixed size.

**Default layer**: the layer that feeds the network's global pooling (or its ``Flatten``): the
last grid of the network, where CRAFT reads concepts (its "g" ends there, the head "h" is
pooling and the classifier), coarse enough to hold parts of objects and still a map of where
they are. For TCAV the default is the convolution before the last one: after the last
convolution there is usually only pooling and a dense layer, which are linear, so the class
score's gradient there is the same for every image and TCAV would only measure the class's
weights, not how each image's answer responds.

**Chunks**: every pass runs the model on stacks of exactly ``chunk`` inputs (the last one padded
with zeros, whose results are dropped), ``chunk`` worked out from the memory budget
(``core.batches``) and never from how many images a batch holds. Each compiled function is then
traced once, and an image's numbers come from the same kernels whichever batch, process or
machine it lands in: the results do not depend on the batch size.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ..core import batches
from ..errors import LayerNotFoundError
from .classes import class_score

def default_layer(probe: Any) -> str:
    """The name of the layer class activation maps default to (``LayerTable.default_cam_layer``):
    the map the network's global pooling (or ``Flatten``) reads, or the map a last pooling before
    it shrinks (VGG's block5_conv3: the same evidence in more detail)."""
    return probe.table.default_cam_layer()[0].name


def tcav_default_layer(probe: Any) -> str:
    """The convolution before the last one (see the module); the only one if there is one."""
    convolutions = probe.table.convolutions
    if not convolutions:
        raise LayerNotFoundError("This model has no convolution layer; give the layer to test with layer=.")
    return (convolutions[-2] if len(convolutions) > 1 else convolutions[-1]).name


def layer_name(probe: Any, layer: str | int | None, *, tcav: bool = False) -> str:
    """The chosen layer's full name (a name, a unique suffix or a table number), or the default."""
    if layer is None:
        return tcav_default_layer(probe) if tcav else default_layer(probe)
    return probe.layer(layer).name


def map_shape(probe: Any, layer: str, image_shape: Sequence[int]) -> tuple[int, int, int]:
    """The layer's map (h, w, C) for an input of ``image_shape`` (H, W, C)."""
    shape = probe.layer_shapes(int(image_shape[0]), int(image_shape[1]))[layer]
    return tuple(int(d) for d in shape)  # type: ignore[return-value]


def forward_chunk(probe: Any, layer: str, image_shape: Sequence[int]) -> int:
    """Inputs per forward pass that keeps the layer's map: ``core.batches.batch_size``."""
    return batches.batch_size(probe, tuple(image_shape), keep=[layer])


def head_chunk(probe: Any, layer: str, image_shape: Sequence[int], *, backward: bool = False) -> int:
    """Maps per pass through the rest of the network: ``core.batches.head_batch_size``."""
    _, takes_image = probe.head_model(layer)
    return batches.head_batch_size(probe, tuple(image_shape), layer, takes_image=takes_image, backward=backward)


def run_chunked(function: Callable, arrays: Sequence[np.ndarray], chunk: int) -> list[np.ndarray]:
    """``function`` over stacks of exactly ``chunk`` rows of ``arrays`` (same first length n; the
    last stack padded with zeros): each of its outputs, numpy, rows [:n] in order."""
    count = len(arrays[0])
    parts: list[list[np.ndarray]] = []
    for start in range(0, count, chunk):
        stack = []
        for array in arrays:
            piece = np.asarray(array[start : start + chunk], np.float32)
            if len(piece) < chunk:
                piece = np.concatenate([piece, np.zeros((chunk - len(piece), *piece.shape[1:]), np.float32)])
            stack.append(piece)
        found = function(*stack)
        found = found if isinstance(found, (list, tuple)) else [found]
        parts.append([np.asarray(t)[: count - start] for t in found])
    if not parts:
        return []
    return [np.concatenate([p[i] for p in parts]) for i in range(len(parts[0]))]


def forward(probe: Any, layer: str, image_shape: Sequence[int], chunk: int) -> Callable:
    """Compiled: inputs float32 (chunk, H, W, C) -> [the layer's map float32 (chunk, h, w, C'),
    logits float32 (chunk, K), the model's first output float32 (chunk, K')]."""

    def build() -> Callable:
        import tensorflow as tf

        model = probe.score_model(layer)

        @tf.function(input_signature=[tf.TensorSpec((chunk, *image_shape), tf.float32)])
        def run(x):
            feature, logits, outputs = model(x, training=False)
            return [tf.cast(feature, tf.float32), tf.reshape(tf.cast(logits, tf.float32), (chunk, -1)),
                    tf.reshape(tf.cast(outputs, tf.float32), (chunk, -1))]

        return run

    return probe.cached_model(("concepts", "forward", layer, tuple(image_shape), int(chunk)), build)


def crop_forward(probe: Any, layer: str, image_shape: Sequence[int], chunk: int) -> Callable:
    """Compiled: inputs float32 (chunk, H, W, C) -> [each input's positive part of the layer's
    map averaged over the grid, float32 (chunk, C'); each map's lowest value float32 (chunk,)].
    The maps are reduced inside the graph, so they never reach numpy."""

    def build() -> Callable:
        import tensorflow as tf

        model = probe.feature_model(layer)

        @tf.function(input_signature=[tf.TensorSpec((chunk, *image_shape), tf.float32)])
        def run(x):
            feature = tf.cast(model(x, training=False), tf.float32)
            return [tf.reduce_mean(tf.nn.relu(feature), axis=[1, 2]), tf.reduce_min(feature, axis=[1, 2, 3])]

        return run

    return probe.cached_model(("concepts", "crops", layer, tuple(image_shape), int(chunk)), build)


def outputs_forward(probe: Any, image_shape: Sequence[int], chunk: int) -> Callable:
    """Compiled: inputs float32 (chunk, H, W, C) -> the model's first output float32 (chunk, K')."""

    def build() -> Callable:
        import tensorflow as tf

        model = probe.logits_model()

        @tf.function(input_signature=[tf.TensorSpec((chunk, *image_shape), tf.float32)])
        def run(x):
            return tf.reshape(tf.cast(model(x, training=False)[1], tf.float32), (chunk, -1))

        return run

    return probe.cached_model(("concepts", "outputs", tuple(image_shape), int(chunk)), build)


def head_logits(probe: Any, layer: str, shapes: tuple[tuple, tuple], chunk: int) -> Callable:
    """Compiled: the rest of the network after ``layer`` fed maps float32 (chunk, h, w, C') and
    the images float32 (chunk, H, W, C) (read only by a head with a connection around the layer)
    -> logits float32 (chunk, K). ``shapes``: ((h, w, C'), (H, W, C))."""
    feature_shape, image_shape = shapes

    def build() -> Callable:
        import tensorflow as tf

        head, takes_image = probe.head_model(layer)

        @tf.function(input_signature=[tf.TensorSpec((chunk, *feature_shape), tf.float32), tf.TensorSpec((chunk, *image_shape), tf.float32)])
        def run(maps, images):
            logits = head([images, maps] if takes_image else maps, training=False)[0]
            return tf.reshape(tf.cast(logits, tf.float32), (chunk, -1))

        return run

    return probe.cached_model(("concepts", "head", layer, tuple(feature_shape), tuple(image_shape), int(chunk)), build)


def head_gradients(probe: Any, layer: str, shapes: tuple[tuple, tuple], chunk: int, class_index: int) -> Callable:
    """Compiled: maps float32 (chunk, h, w, C') and images (as ``head_logits``) -> [logits float32
    (chunk, K), the gradient of the class score (``classes.class_score``) with respect to each
    map, float32 (chunk, h, w, C')]."""
    feature_shape, image_shape = shapes

    def build() -> Callable:
        import tensorflow as tf

        head, takes_image = probe.head_model(layer)

        @tf.function(input_signature=[tf.TensorSpec((chunk, *feature_shape), tf.float32), tf.TensorSpec((chunk, *image_shape), tf.float32)])
        def run(maps, images):
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(maps)
                logits = head([images, maps] if takes_image else maps, training=False)[0]
                flat = tf.reshape(tf.cast(logits, tf.float32), (chunk, -1))
                total = tf.reduce_sum(class_score(flat, class_index))  # each image's score depends on it alone
            return [flat, tape.gradient(total, maps)]

        return run

    return probe.cached_model(("concepts", "gradients", layer, tuple(feature_shape), tuple(image_shape), int(chunk), int(class_index)), build)
