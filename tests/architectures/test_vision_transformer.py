"""A vision transformer from keras_hub (``ViTBackbone`` + ``ViTImageClassifier``, built from its
constructor: nothing downloaded): opened through the safe path, its tokens shown per block as a
patch grid with the class token apart, class activation maps on the token grid, and attention
rollout, each against an independent computation with the model's own layers.

The model: 32 x 32 images in 8 x 8 patches (a 4 x 4 grid and a class token: 17 tokens of 16
values), two blocks of two heads, keras_hub's default head (the class token, a Dense layer giving
the logits).
"""

from __future__ import annotations

import keras_hub
import numpy as np
import pytest

from actviz.core.probe import Probe
from actviz.errors import LayerNotFoundError
from actviz.explainers.explain import explain
from actviz.safety.loading import load_model

GRID, DEPTH, BLOCKS = 4, 16, 2


@pytest.fixture(scope="module")
def classifier(keras):
    keras.utils.set_random_seed(17)
    backbone = keras_hub.models.ViTBackbone(
        image_shape=(32, 32, 3), patch_size=8, num_layers=BLOCKS, num_heads=2, hidden_dim=DEPTH, mlp_dim=32, name="vit",
    )
    return keras_hub.models.ViTImageClassifier(backbone=backbone, num_classes=3)  # keras_hub's default head: the logits


@pytest.fixture(scope="module")
def probe(classifier, tmp_path_factory):
    """The classifier saved as a .keras file and opened through the safe path."""
    path = tmp_path_factory.mktemp("vit") / "vit.keras"
    classifier.save(path)
    return Probe(load_model(path).model)


@pytest.fixture()
def images():
    return np.random.default_rng(3).random((2, 32, 32, 3), dtype=np.float32)


def _parts(classifier):
    encoder = classifier.backbone.get_layer("vit_encoder")
    return classifier.backbone.get_layer("vit_patching_and_embedding"), encoder, encoder.encoder_layers


def _as_grid(tokens) -> np.ndarray:
    """Tokens (N, 17, D) -> the patches (N, 4, 4, D), row by row, without the class token."""
    return np.asarray(tokens)[:, 1:, :].reshape(-1, GRID, GRID, DEPTH)


def test_token_grids_are_the_blocks_outputs_reshaped(classifier, probe, images):
    patching, encoder, blocks = _parts(classifier)
    shown = [info.name for info in probe.default_layers]
    assert shown == ["vit/vit_patching_and_embedding", "vit/vit_encoder/transformer_block_1", "vit/vit_encoder/transformer_block_2"]
    assert all(probe.layer(name).output_shape == (GRID, GRID, DEPTH) and probe.layer(name).tokens == 1 for name in shown)
    maps = probe.run(images, shown).maps
    tokens = patching(images)
    np.testing.assert_allclose(maps[shown[0]], _as_grid(tokens), rtol=1e-5, atol=1e-6)
    tokens = encoder.dropout(tokens)
    for name, block in zip(shown[1:], blocks):
        tokens = block(tokens)
        np.testing.assert_allclose(maps[name], _as_grid(tokens), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(probe.run(images).predictions[0], np.asarray(classifier(images)), rtol=1e-4, atol=1e-6)
    inside = probe.run(images, ["transformer_block_2/ln_1"]).maps["vit/vit_encoder/transformer_block_2/ln_1"]
    np.testing.assert_allclose(inside, _as_grid(blocks[1].layer_norm_1(blocks[0](encoder.dropout(patching(images))))), rtol=1e-4, atol=1e-5)


def test_default_layer_is_the_last_attention_input(probe):
    chosen, reason = probe.table.default_cam_layer()
    assert chosen.name == "vit/vit_encoder/transformer_block_2/ln_1" and chosen.read_by == "MultiHeadAttention"
    assert "last attention" in reason and "only the class token reaches the classifier" in reason
    after = ["transformer_block_2/mha", "transformer_block_2", "vit_encoder/ln"]
    assert not any(probe.layer(name).leads_to_output for name in after)
    with pytest.raises(LayerNotFoundError, match="up to the input of its last attention"):
        explain(probe, np.zeros((1, 32, 32, 3), np.float32), method="gradcam", layer="transformer_block_2")


def _score_and_query(classifier, images, class_index):
    """Independent: the class score (logit) and the last block's attention input, by the layers'
    own calls with the head written out: ln_1 -> mha(x, x) -> + x -> ln_2 -> mlp -> + x -> ln -> token 0 -> Dense."""
    import tensorflow as tf

    patching, encoder, blocks = _parts(classifier)
    before = blocks[0](encoder.dropout(patching(images)))
    last = blocks[-1]
    kernel, bias = classifier.get_layer("predictions").get_weights()
    with tf.GradientTape() as tape:
        query = last.layer_norm_1(before)
        tape.watch(query)
        x = last.dropout(last.mha(query, query)) + before
        x = x + last.mlp(last.layer_norm_2(x))
        score = tf.reduce_sum((encoder.layer_norm(x)[:, 0] @ kernel + bias)[:, class_index])
    return query, tape.gradient(score, query)


def test_grad_cam_on_tokens_against_the_tape(classifier, probe, images):
    query, grads = _score_and_query(classifier, images, 1)
    activation, gradient = _as_grid(query), _as_grid(grads)  # pytorch-grad-cam's reshape_transform
    assert np.abs(gradient).max() > 0
    want = (activation * gradient.mean(axis=(1, 2))[:, None, None, :]).sum(axis=-1)
    cam = explain(probe, images, method="gradcam", class_index=1)
    assert cam.layer == "vit/vit_encoder/transformer_block_2/ln_1" and cam.raw.shape == (2, GRID, GRID)
    np.testing.assert_allclose(cam.raw, want, rtol=1e-3, atol=1e-4 * np.abs(want).max())
    hires = explain(probe, images, method="hirescam", class_index=1)
    np.testing.assert_allclose(hires.raw, (activation * gradient).sum(axis=-1), rtol=1e-3, atol=1e-4 * np.abs(want).max())
    for method in ("gradcam++", "xgradcam", "layercam", "scorecam", "ablationcam", "eigencam"):
        result = explain(probe, images, method=method, class_index=1)
        assert result.raw.shape == (2, GRID, GRID) and np.isfinite(result.raw).all(), method


def _numpy_rollout(scores: list[np.ndarray]) -> np.ndarray:
    """Abnar & Zuidema's rollout written out: per image, heads averaged, identity added, rows
    renormalised, layers multiplied from the first; the class token's row over the patches."""
    maps = []
    for n in range(scores[0].shape[0]):
        flow = np.eye(scores[0].shape[-1])
        for layer in scores:
            step = layer[n].mean(axis=0) + np.eye(layer.shape[-1])
            step = step / step.sum(axis=1, keepdims=True)
            flow = step @ flow
        maps.append(flow[0, 1:].reshape(GRID, GRID))
    return np.stack(maps)


def test_attention_rollout_against_numpy(classifier, probe, images):
    patching, encoder, blocks = _parts(classifier)
    tokens, scores = encoder.dropout(patching(images)), []
    for block in blocks:
        query = block.layer_norm_1(tokens)
        scores.append(np.asarray(block.mha(query, query, return_attention_scores=True)[1], dtype=np.float64))
        tokens = block(tokens)
    assert [info.name for info in probe.attention_layers] == [f"vit/vit_encoder/transformer_block_{i}/mha" for i in (1, 2)]
    result = explain(probe, images, method="rollout", class_index=[0, 2])
    assert result.layer is None and result.family == "attention" and result.raw.shape == (2, GRID, GRID)
    np.testing.assert_allclose(result.raw, _numpy_rollout(scores), rtol=1e-5, atol=1e-7)
    assert result.class_index.tolist() == [0, 2] and result.heatmap.max() == pytest.approx(1.0)


def test_every_view_works_on_the_token_grid(probe, images, tmp_path):
    from PIL import Image

    from actviz.dataset import open_source, summarize
    from actviz.draw.compare import compare_maps
    from actviz.draw.figures import channel_picture
    from actviz.draw.grids import feature_grid
    from actviz.draw.stats import layer_stats

    name = "vit/vit_encoder/transformer_block_1"
    maps = probe.run(images, [name]).maps[name]
    assert feature_grid(maps[0], per_row=4).index.shape == (4 * GRID + 3, 4 * GRID + 3)  # 16 channels of 4 x 4 patches
    assert channel_picture(maps[0, :, :, 5]).dtype == np.uint8
    assert len(layer_stats(name, maps[0]).channel_means) == DEPTH
    assert compare_maps(maps[0], maps[1]).ranking.shape == (DEPTH,)
    for index, image in enumerate((np.random.default_rng(4).random((6, 32, 32, 3)) * 255).astype(np.uint8)):
        folder = tmp_path / ("a" if index % 2 else "b")
        folder.mkdir(exist_ok=True)
        Image.fromarray(image).save(folder / f"{index}.png")
    summary = summarize(probe.model, open_source(tmp_path), layers=[name], gradcam=True, batch_size=4)
    assert summary.layout.cam_layer == "vit/vit_encoder/transformer_block_2/ln_1" and summary.layout.cam_shape == (GRID, GRID)
    assert summary.channels(name)["selectivity"].shape == (DEPTH,)


def test_rollout_refused_in_words_without_attention(flat_model):
    with pytest.raises(LayerNotFoundError, match="this model has none"):
        explain(Probe(flat_model), np.zeros((1, 8, 8, 3), np.float32), method="rollout")
