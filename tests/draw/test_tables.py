import doctest

from actviz.core.layers import LayerInfo, LayerTable
from actviz.draw import tables
from actviz.draw.tables import layer_rows


def test_layer_rows_say_what_each_layer_does_in_network_order():
    table = LayerTable([
        LayerInfo(0, "vgg16", "Functional", (7, 7, 512), 14_714_688, True, 0, container=True),
        LayerInfo(1, "vgg16/block1_conv1", "Conv2D", (None, None, 64), 1_792, True, 1),
        LayerInfo(2, "gap", "GlobalAveragePooling2D", (512,), 0, False, 0),
        LayerInfo(3, "odd", "MyLayer", (4,), 12, False, 0),
    ])
    rows = layer_rows(table)
    assert [row["#"] for row in rows] == [0, 1, 2, 3]
    assert [row["layer"] for row in rows] == ["vgg16", "\u2003vgg16/block1_conv1", "gap", "odd"]  # nested: indented
    assert [row["what it does"] for row in rows] == [
        "a model inside this model: its layers follow, indented",
        "learned filters, each looking for one small pattern all over its input",
        "averages each map into one number",
        "a MyLayer layer",
    ]
    assert [row["output"] for row in rows] == ["7 x 7 x 512", "? x ? x 64", "512", "4"]
    assert [row["parameters"] for row in rows] == ["14,714,688", "1,792", "0", "12"]
    assert [row["shown"] for row in rows] == ["on request", "yes", "no", "no"]


def test_unit_words_call_a_convolution_s_channels_filters():
    conv = LayerInfo(1, "c", "Conv2D", (8, 8, 4), 40, True, 0)
    pool = LayerInfo(2, "p", "MaxPooling2D", (4, 4, 4), 0, True, 0)
    assert (conv.unit_words, pool.unit_words) == ("filters", "channels")


def test_tables_doctests_run():

    result = doctest.testmod(tables)
    assert result.failed == 0 and result.attempted > 0
