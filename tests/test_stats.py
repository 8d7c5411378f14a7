import numpy as np

from actviz.stats import depth_summary, layer_stats


def test_layer_stats_hand_made():
    activation = np.zeros((2, 2, 4), np.float32)
    activation[:, :, 0] = [[1, 2], [3, 4]]      # mean 2.5
    activation[:, :, 1] = 5.0                   # constant: blank
    activation[0, 0, 3] = 8.0                   # mean 2.0
    stats = layer_stats("conv", activation, top_k=2)
    assert stats.blank == (1, 2)                # constant 5 and all-zero
    assert stats.top == (1, 0)                  # means 5, 2.5
    assert stats.sparsity == 7 / 16
    assert stats.max == 8.0 and abs(stats.mean - (2.5 + 5 + 0 + 2) / 4) < 1e-9
    row = stats.row()
    assert row["blank_channels"] == 2 and row["blank_list"] == "1 2" and row["channels"] == 4


def test_depth_summary_reports_growth():
    dense = layer_stats("first", np.ones((2, 2, 2), np.float32) + np.arange(8).reshape(2, 2, 2))
    sparse = layer_stats("last", np.zeros((2, 2, 2), np.float32))
    text = depth_summary([dense, sparse])
    assert "grows" in text and "0% to 100%" in text and "2 of 2" in text
