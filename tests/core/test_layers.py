"""The layer table without TensorFlow: which layers qualify, and finding one by name or number."""

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
    assert TABLE.last_convolution().name == "other/block2_conv1"
    assert TABLE[2].channels == 8 and TABLE[7].channels is None and len(TABLE) == 9
    only_dense = LayerTable([ROWS[8]])
    with pytest.raises(LayerNotFoundError, match="no convolution layer"):
        only_dense.last_convolution()


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
