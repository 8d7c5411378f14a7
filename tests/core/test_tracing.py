"""The trace marks what class activation maps need (which maps lead to the answer, what reads the
last of them), steps into layers that hold a stack of blocks, and gives names Keras accepts."""

from __future__ import annotations

import numpy as np
import pytest

from actviz.core.probe import Probe
from actviz.core.tracing import TokenGrid, _token_grid
from actviz.errors import LayerNotFoundError
from actviz.explainers.explain import explain


def test_side_branch_and_flatten_marked(keras):
    """A map no output reads does not lead to the answer; the Flatten layer reads a pooling, so the map
    that pooling shrinks is the default."""
    inputs = keras.Input((8, 8, 1))
    conv = keras.layers.Conv2D(2, 3, padding="same", name="conv")(inputs)
    side = keras.layers.Conv2D(2, 1, name="side")(conv)
    pooled = keras.layers.MaxPooling2D(name="pool")(conv)
    outputs = [keras.layers.Dense(2, name="probs")(keras.layers.Flatten(name="flat")(pooled)), keras.layers.GlobalAveragePooling2D(name="aux")(side)]
    table = Probe(keras.Model(inputs, outputs)).table
    assert [info.name for info in table.cam_layers] == ["conv", "pool"]  # "side" feeds the second output only
    chosen, reason = table.default_cam_layer()
    assert table.resolve("pool").read_by == "Flatten"
    assert chosen.name == "conv" and "before the final pooling: pool only shrinks its map to 4 x 4" in reason
    with pytest.raises(LayerNotFoundError, match="only layers whose map leads to the model's answer qualify"):
        explain(Probe(keras.Model(inputs, outputs)), np.zeros((1, 8, 8, 1), np.float32), method="gradcam", layer="side")


def test_linear_output_with_a_skip_connection(keras, rng):
    """Grad-CAM inside a residual block of a model that gives logits (no softmax): the part after the
    layer reads the image too, and gives one tensor as both scores and output."""
    import tensorflow as tf

    keras.utils.set_random_seed(2)
    inputs = keras.Input((8, 8, 3))
    first = keras.layers.Conv2D(4, 3, padding="same", name="c1")(inputs)
    second = keras.layers.Conv2D(4, 3, padding="same", name="c2")(first)
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Add(name="sum")([first, second]))
    model = keras.Model(inputs, keras.layers.Dense(3, name="out")(pooled))
    x = rng.random((2, 8, 8, 3), dtype=np.float32)
    cam = explain(Probe(model), x, method="gradcam", layer="c2", class_index=1)
    sub = keras.Model(inputs, [second, model.output])
    with tf.GradientTape() as tape:
        maps, logits = sub(x)
        score = tf.reduce_sum(logits[:, 1])
    grads = tape.gradient(score, maps).numpy()
    want = (maps.numpy() * grads.mean(axis=(1, 2))[:, None, None, :]).sum(-1)
    np.testing.assert_allclose(cam.raw, want, rtol=1e-4, atol=1e-6)


def test_layers_with_one_name_in_two_nested_models(keras, rng):
    """Two nested bases each with a layer called "conv": one traced graph, each under its own path."""
    def base(name):
        image = keras.Input((6, 6, 3))
        return keras.Model(image, keras.layers.Conv2D(3, 3, padding="same", name="conv")(image), name=name)

    first, second = base("first"), base("second")
    inputs = keras.Input((6, 6, 3))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(second(first(inputs)))))
    x = rng.random((1, 6, 6, 3), dtype=np.float32)
    maps = Probe(model).run(x, ["first/conv", "second/conv"]).maps
    np.testing.assert_allclose(maps["first/conv"], np.asarray(first(x)), rtol=1e-6)
    np.testing.assert_allclose(maps["second/conv"], np.asarray(second(first(x))), rtol=1e-5, atol=1e-6)


def test_a_stack_of_blocks_is_stepped_into(keras, rng):
    """A layer holding a list of blocks (as a transformer's encoder does): each block and what it
    calls is a row, under stable names, with the same values as the layer called whole."""

    class Block(keras.layers.Layer):
        def build(self, shape):
            self.scale = keras.layers.Dense(shape[-1], name="scale")
            self.norm = keras.layers.LayerNormalization(name="norm")

        def call(self, x):
            return self.norm(self.scale(x) + x)

    class Stack(keras.layers.Layer):
        def build(self, shape):
            self.blocks = [Block(name=f"block_{i}") for i in (1, 2)]

        def call(self, x):
            for block in self.blocks:
                x = block(x)
            return x

    inputs = keras.Input((4, 4, 3))
    stack = Stack(name="stack")
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(stack(inputs))))
    probe = Probe(model)
    names = [info.name for info in probe.table.spatial]
    assert names == ["stack/block_1/scale", "stack/block_1/add", "stack/block_1/norm", "stack/block_1",
                     "stack/block_2/scale", "stack/block_2/add", "stack/block_2/norm", "stack/block_2", "stack"]
    x = rng.random((2, 4, 4, 3), dtype=np.float32)
    maps = probe.run(x, ["stack/block_1", "stack"]).maps
    np.testing.assert_allclose(maps["stack/block_1"], np.asarray(stack.blocks[0](x)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(maps["stack"], np.asarray(stack(x)), rtol=1e-5, atol=1e-6)
    assert probe.table.default_cam_layer()[0].name == "stack"


def test_token_layout_from_the_patch_size_or_the_image_proportions(keras):
    class Patches(keras.layers.Layer):
        def __init__(self, patch_size=None, **kwargs):
            super().__init__(**kwargs)
            self.patch_size = patch_size

        def get_config(self):
            return {**super().get_config(), "patch_size": self.patch_size}

    image = keras.KerasTensor((None, 32, 48, 3))
    assert _token_grid(Patches(8), (image,), keras.KerasTensor((None, 25, 16))) == TokenGrid(1, 4, 6)
    assert _token_grid(Patches((16, 8)), (image,), keras.KerasTensor((None, 12, 16))) == TokenGrid(0, 2, 6)
    assert _token_grid(Patches(), (image,), keras.KerasTensor((None, 26, 16))) == TokenGrid(2, 4, 6)  # the proportions 2:3
    assert _token_grid(Patches(), (image,), keras.KerasTensor((None, 50, 16))) is None  # no grid of 2:3 with 0 to 8 tokens apart
