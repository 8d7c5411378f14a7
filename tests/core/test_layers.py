"""The layer table without TensorFlow: which layers qualify, and finding one by name or number."""

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from actviz.errors import LayerNotFoundError
from actviz.core.layers import LayerInfo, LayerTable

ROWS = [
    LayerInfo(0, "rescale", "Rescaling", (32, 32, 3), 0, True, 0),
    LayerInfo(1, "vgg16", "Functional", (), 1000, False, 0, container=True),
    LayerInfo(2, "vgg16/block1_conv1", "Conv2D", (32, 32, 8), 224, True, 1),
    LayerInfo(3, "vgg16/block1_pool", "MaxPooling2D", (16, 16, 8), 0, True, 1),
    LayerInfo(4, "vgg16/block2_conv1", "Conv2D", (16, 16, 16), 1168, True, 1),
    LayerInfo(5, "other/block2_conv1", "DepthwiseConv2D", (16, 16, 16), 160, True, 1),
    LayerInfo(6, "relu", "ReLU", (16, 16, 16), 0, True, 0),
    LayerInfo(7, "gap", "GlobalAveragePooling2D", (16,), 0, False, 0),
    LayerInfo(8, "probs", "Dense", (2,), 34, False, 0),
]
TABLE = LayerTable(ROWS)


def test_which_layers_qualify():
    assert [i.index for i in TABLE.spatial] == [0, 2, 3, 4, 5, 6]
    assert [i.index for i in TABLE.default] == [2, 3, 4, 5]  # convolution and pooling, as the notebook showed
    assert [i.index for i in TABLE.convolutions] == [2, 4, 5]
    assert [i.index for i in TABLE.cam_layers] == [0, 2, 3, 4, 5, 6]  # every map that leads to the answer
    assert TABLE[2].channels == 8 and TABLE[7].channels is None and len(TABLE) == 9
    only_dense = LayerTable([ROWS[8]])
    with pytest.raises(LayerNotFoundError, match="no layer with an image-like output that leads to its answer"):
        only_dense.default_cam_layer()


def test_default_cam_layer_and_its_words():
    read = [ROWS[0], ROWS[2], ROWS[3], dataclasses.replace(ROWS[6], read_by="GlobalAveragePooling2D"), ROWS[7], ROWS[8]]
    chosen, reason = LayerTable(read).default_cam_layer()
    assert chosen.name == "relu"
    assert reason == (
        "relu (ReLU) is the last layer that still has a 16 x 16 map (16 channels): the global average pooling averages it into "
        "what the classifier reads, so its map holds the model's final evidence (the layer keras.io's and pytorch-grad-cam's "
        "Grad-CAM use)."
    )
    tokens = [
        LayerInfo(0, "vit/embedding", "ViTPatchingAndEmbedding", (14, 14, 768), 0, True, 1, tokens=1, block=True),
        LayerInfo(1, "vit/block_12/ln_1", "LayerNormalization", (14, 14, 768), 0, True, 2, tokens=1, read_by="MultiHeadAttention"),
        LayerInfo(2, "vit/block_12", "ViTEncoderBlock", (14, 14, 768), 0, True, 1, tokens=1, block=True, leads_to_output=False),
    ]
    table = LayerTable(tokens)
    chosen, reason = table.default_cam_layer()
    assert chosen.name == "vit/block_12/ln_1" and [i.name for i in table.cam_layers] == ["vit/embedding", "vit/block_12/ln_1"]
    assert "the last layer where the class token still reads a 14 x 14 grid of patches" in reason
    assert [i.name for i in table.default] == ["vit/embedding", "vit/block_12"]  # the embedding and each block, shown without asking
    chosen, reason = LayerTable(ROWS).default_cam_layer()  # nothing marked as read: the last map that leads to the answer
    assert chosen.name == "relu" and reason == "relu (ReLU) is the last layer with a 16 x 16 map that leads to the model's answer."


def test_default_cam_layer_steps_back_over_a_last_pooling():
    """VGG's head reads block5_pool; the map it shrinks (block5_conv3) is the default, said in words;
    a pooling that changes the channels, or nothing before it, leaves the pooling layer chosen."""
    rows = [
        LayerInfo(0, "block5_conv3", "Conv2D", (18, 18, 512), 10, True, 0),
        LayerInfo(1, "block5_pool", "MaxPooling2D", (9, 9, 512), 0, True, 0, read_by="Flatten"),
        LayerInfo(2, "flatten", "Flatten", (41472,), 0, False, 0),
    ]
    chosen, reason = LayerTable(rows).default_cam_layer()
    assert chosen.name == "block5_conv3"
    assert reason == (
        "block5_conv3 (Conv2D) is the last layer before the final pooling: block5_pool only shrinks its map to 9 x 9 before "
        "it is flattened into what the classifier reads, so block5_conv3's 18 x 18 map (512 channels) holds the model's "
        "final evidence in more detail (the layer the Grad-CAM paper uses for VGG16)."
    )
    other = [dataclasses.replace(rows[0], output_shape=(18, 18, 256)), rows[1], rows[2]]
    assert LayerTable(other).default_cam_layer()[0].name == "block5_pool"
    assert LayerTable(rows[1:]).default_cam_layer()[0].name == "block5_pool"


def test_resolve_by_full_name_unique_suffix_and_number():
    assert TABLE.resolve("vgg16/block1_conv1").index == 2
    assert TABLE.resolve("block1_conv1").index == 2
    assert TABLE.resolve("block1_pool").index == 3
    assert TABLE.resolve(4).name == TABLE.resolve("4").name == TABLE.resolve(" 4").name == "vgg16/block2_conv1"
    assert TABLE.resolve("relu", among=TABLE.spatial).index == 6


def test_resolve_refusals_name_the_way_out():
    with pytest.raises(LayerNotFoundError, match="ambiguous.*vgg16/block2_conv1, other/block2_conv1"):
        TABLE.resolve("block2_conv1")
    with pytest.raises(LayerNotFoundError, match="Did you mean 'vgg16/block1_conv1'"):
        TABLE.resolve("block1_cnv1")
    with pytest.raises(LayerNotFoundError, match="'probs' \\(Dense, output \\(2\\)\\) cannot be used here"):
        TABLE.resolve("probs")
    with pytest.raises(LayerNotFoundError, match="only convolution layers qualify"):
        TABLE.resolve("relu", among=TABLE.convolutions)
    with pytest.raises(LayerNotFoundError, match="Layer number 7 \\(gap, GlobalAveragePooling2D\\) cannot be used here"):
        TABLE.resolve(7)
    with pytest.raises(LayerNotFoundError, match="no layer number 42: the table has layers 0 to 8"):
        TABLE.resolve(42)
    with pytest.raises(LayerNotFoundError, match="not by float"):
        TABLE.resolve(2.5)


def test_layer_table_needs_no_tensorflow():
    code = "import sys, actviz.core.layers; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[2])
    assert done.stdout.strip() == "False False"
