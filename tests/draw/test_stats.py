import numpy as np

from actviz.draw.stats import channel_moments, depth_summary, layer_stats


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


def test_channel_moments_match_numpy_float64(rng):
    activation = rng.normal(0, 1, (40, 30, 5)).astype(np.float32)
    activation[:, :, 1] += 1000.0  # far from zero: no cancellation allowed
    activation[:, :, 2] = 3.0
    moments = channel_moments(activation)
    x = activation.astype(np.float64)
    np.testing.assert_allclose(moments.mean, x.mean(axis=(0, 1)), rtol=1e-7)
    np.testing.assert_allclose(moments.std, x.std(axis=(0, 1)), rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(moments.flat, [False, False, True, False, False])
    pooled = moments.pooled()
    np.testing.assert_allclose(pooled.mean[0], x.mean(), rtol=1e-9)
    np.testing.assert_allclose(pooled.std[0], x.std(), rtol=1e-6)


def test_titles_and_the_first_screen_words_name_the_layer_and_its_ranking():
    from actviz.draw.stats import first_screen_words, layer_title, technical_line

    activation = np.zeros((3, 4, 5), np.float32)
    activation[:, :, 2] = 82.2886          # the most active channel
    activation[0, 0, 0] = 0.012            # mean 0.001: the second
    stats = layer_stats("block2_pool", activation)
    assert layer_title(stats, position=6, count=9, unit="channels") == "Layer 6 of 9 (block2_pool): 5 channels, each 3 x 4"
    assert technical_line(stats, "MaxPooling2D") == "block2_pool · MaxPooling2D · 3 x 4 x 5 · 4 of 5 channels blank"
    words = first_screen_words(stats, 2, unit="channels")
    assert words.startswith("The 2 most active of its 5 channels, most active first")
    assert "from 82 (channel 2) down to 0.001 (channel 0)" in words
