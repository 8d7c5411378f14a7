"""Class activation maps against hand-set models with known answers and against independent
computations: plain-numpy formulas on gradients from tf.GradientTape on a plain Keras model,
direct one-channel-at-a-time loops for Score-CAM and Ablation-CAM, numpy's SVD for Eigen-CAM."""

import numpy as np
import pytest

from actviz.errors import Cancelled, ChoiceError, ClassNotFoundError, LayerNotFoundError
from actviz.explainers.explain import explain
from actviz.explainers.registry import METHOD_INFO
from actviz.core.probe import Probe

CAMS = [name for name, info in METHOD_INFO.items() if info.family == "cam"]


def hand_set_model(keras, kernel=(1.0, -1.0), dense=((1.0, 0.0), (0.5, 1.0))):
    """One channel in, 2x3; conv 1x1 -> [k0 x, k1 x] (no bias, no ReLU); GAP; Dense(2, softmax), no bias."""
    inputs = keras.Input((2, 3, 1))
    conv = keras.layers.Conv2D(2, 1, use_bias=False, name="conv")
    head = keras.layers.Dense(2, activation="softmax", use_bias=False, name="probs")
    model = keras.Model(inputs, head(keras.layers.GlobalAveragePooling2D(name="gap")(conv(inputs))))
    conv.set_weights([np.array(kernel, np.float32).reshape(1, 1, 1, 2)])
    head.set_weights([np.array(dense, np.float32)])
    return model


X = np.arange(1, 7, dtype=np.float32).reshape(1, 2, 3, 1)


def test_gradient_cams_exact_on_hand_set_model(keras):
    # A = [x, -x]; logit_0 = mean(x) - 0.5 mean(x) = 0.5 mean(x); dS0/dA = [1, 0.5] / 6 everywhere
    probe = Probe(hand_set_model(keras))
    x = X[0, :, :, 0].astype(np.float64)
    for method in ("gradcam", "hirescam", "xgradcam"):
        result = explain(probe, X, method=method, class_index=0)
        np.testing.assert_allclose(result.raw[0], x / 6 - 0.5 * x / 6, rtol=1e-6)  # x / 12
        np.testing.assert_allclose(result.heatmap[0], x / 6, rtol=1e-6)
    # LayerCAM keeps positive gradients only; for class 1 the gradient is [0, 1/6]: map = -x/6 < 0
    layer = explain(probe, X, method="layercam", class_index=1)
    np.testing.assert_allclose(layer.raw[0], -x / 6, rtol=1e-6)
    np.testing.assert_array_equal(layer.heatmap[0], np.zeros((2, 3), np.float32))
    # Grad-CAM++: alpha = g^2 / (2 g^2 + sum(A) g^3), weight = sum(alpha * relu(g))
    g = np.array([1 / 6, 0.5 / 6])
    total = np.array([x.sum(), -x.sum()])
    alpha = g**2 / (2 * g**2 + total * g**3)
    plus = explain(probe, X, method="gradcam++", class_index=0)
    np.testing.assert_allclose(plus.weights[0], 6 * alpha * g, rtol=1e-6)
    np.testing.assert_allclose(plus.raw[0], 6 * alpha[0] * g[0] * x - 6 * alpha[1] * g[1] * x, rtol=1e-6)
    assert plus.score[0] == pytest.approx(0.5 * x.mean(), rel=1e-6)


def test_ablation_cam_exact_on_hand_set_model(keras):
    # S = 0.5 m (m = mean x = 3.5); channel 0 off: S = 0.5 mean(-x) = -1.75; channel 1 off: S = mean(x) = 3.5
    result = explain(Probe(hand_set_model(keras)), X, method="ablationcam", class_index=0)
    np.testing.assert_allclose(result.weights[0], [(1.75 + 1.75) / 1.75, (1.75 - 3.5) / 1.75], rtol=1e-6)
    np.testing.assert_allclose(result.raw[0], 2 * X[0, :, :, 0] + 1 * X[0, :, :, 0], rtol=1e-6)  # 2x + (-1)(-x)
    np.testing.assert_allclose(result.details["ablated_scores"][0], [-1.75, 3.5], rtol=1e-6)


def test_score_cam_exact_on_hand_set_model(keras):
    # the layer has the input's size, so a mask is the channel scaled to 0..1: (x - 1)/5 and (6 - x)/5
    x = X[0, :, :, 0].astype(np.float64)
    weights = []
    for mask in ((x - 1) / (5 + 1e-7), (6 - x) / (5 + 1e-7)):
        m = (x * mask).mean()
        logits = np.array([m - 0.5 * m, -m])
        weights.append(np.exp(logits[0]) / np.exp(logits).sum())
    result = explain(Probe(hand_set_model(keras)), X, method="scorecam", class_index=0)
    np.testing.assert_allclose(result.weights[0], weights, rtol=1e-5)
    np.testing.assert_allclose(result.raw[0], weights[0] * x - weights[1] * x, rtol=1e-5)


def test_eigen_cam_exact_on_hand_set_model(keras):
    # A = [x, 2x]: the centred matrix is (x - m) [1, 2], its first direction [1, 2] / sqrt(5)
    result = explain(Probe(hand_set_model(keras, kernel=(1.0, 2.0))), X, method="eigencam")
    x = X[0, :, :, 0].astype(np.float64)
    np.testing.assert_allclose(result.weights[0], np.array([1, 2]) / np.sqrt(5), rtol=1e-6)
    np.testing.assert_allclose(result.raw[0], np.sqrt(5) * (x - x.mean()), rtol=1e-5, atol=1e-6)


def linear_twin(keras, model):
    """The same functional model with its last softmax removed (shared weights), for plain gradients."""
    config = model.get_config()
    config["layers"][-1]["config"]["activation"] = "linear"
    twin = keras.Model.from_config(config)
    twin.set_weights(model.get_weights())
    return twin


def plain_gradients(keras, model, layer_name, x, class_index):
    """Feature maps A and dS/dA by the textbook recipe on a flat functional model (independent of actviz)."""
    import tensorflow as tf

    twin = linear_twin(keras, model)
    grad_model = keras.Model(twin.inputs, [twin.get_layer(layer_name).output, twin.output])
    with tf.GradientTape() as tape:
        conv, logits = grad_model(x)
        score = tf.reduce_sum(tf.gather(logits, class_index, axis=1))
    return conv.numpy().astype(np.float64), tape.gradient(score, conv).numpy().astype(np.float64)


def plain_cam(A, G, method):
    """The methods' formulas written out as pytorch-grad-cam writes them, channels last, one image."""
    A, G = A.astype(np.float64), G.astype(np.float64)
    if method == "gradcam":
        return (A * G.mean(axis=(0, 1))).sum(-1)
    if method == "hirescam":
        return (G * A).sum(-1)
    if method == "xgradcam":
        weights = (G * A / (A.sum(axis=(0, 1)) + 1e-7)).sum(axis=(0, 1))
        return (A * weights).sum(-1)
    if method == "layercam":
        return (np.maximum(G, 0) * A).sum(-1)
    if method == "gradcam++":  # eq. 19 of the paper (pytorch-grad-cam adds 1e-6 to the denominator)
        denominator = 2 * G**2 + A.sum(axis=(0, 1)) * G**3
        a = np.where(denominator != 0, G**2 / np.where(denominator != 0, denominator, 1), 0)
        return (A * (np.maximum(G, 0) * a).sum(axis=(0, 1))).sum(-1)
    raise AssertionError(method)


@pytest.mark.parametrize("layer", ["conv_1", "conv_2"])
def test_gradient_cams_match_plain_formulas(keras, flat_model, rng, layer):
    x = rng.random((2, 8, 8, 3), dtype=np.float32)
    probe = Probe(flat_model)
    for class_index in (0, 2):
        A, G = plain_gradients(keras, flat_model, layer, x, class_index)
        for method in ("gradcam", "gradcam++", "hirescam", "xgradcam", "layercam"):
            ours = explain(probe, x, method=method, layer=layer, class_index=class_index)
            assert ours.raw.dtype == np.float32 and ours.raw.shape == A.shape[:3] and ours.layer == layer
            for n in range(2):
                expected = plain_cam(A[n], G[n], method)
                np.testing.assert_allclose(ours.raw[n], expected, rtol=2e-4, atol=1e-6 * np.abs(expected).max())
                top = np.maximum(expected, 0).max()
                if top > 0:
                    np.testing.assert_allclose(ours.heatmap[n], np.maximum(expected, 0) / top, atol=1e-4)


def test_score_cam_against_one_channel_at_a_time_loop(keras, flat_model, rng):
    """Score-CAM as its papers' code does it, one masked image per call: scipy's zoom (order 1),
    scaled to 0..1, the class probability from the model's softmax."""
    from scipy.ndimage import zoom

    x = rng.random((2, 8, 8, 3), dtype=np.float32)
    probe = Probe(flat_model)
    feature = keras.Model(flat_model.inputs, flat_model.get_layer("conv_2").output)
    for class_index in (1, [0, 2]):
        ours = explain(probe, x, method="scorecam", layer="conv_2", class_index=class_index, batch_size=5)
        wanted = [class_index] * 2 if np.ndim(class_index) == 0 else class_index
        for n in range(2):
            A = feature(x[n:n + 1]).numpy()[0].astype(np.float64)
            weights = []
            for k in range(A.shape[-1]):
                up = zoom(A[:, :, k], (8 / 4, 8 / 4), order=1)
                mask = (up - up.min()) / (up.max() - up.min() + 1e-7)
                probabilities = flat_model(x[n:n + 1] * mask[None, :, :, None].astype(np.float32)).numpy()[0]
                weights.append(probabilities[wanted[n]])
            np.testing.assert_allclose(ours.weights[n], weights, rtol=1e-4, atol=1e-6)
            np.testing.assert_allclose(ours.raw[n], (A * np.array(weights)).sum(-1), rtol=1e-4, atol=1e-6)


def test_score_cam_batches_progress_cancel_and_faster_variant(flat_model, rng):
    x = rng.random((2, 8, 8, 3), dtype=np.float32)
    probe = Probe(flat_model)
    calls = []
    whole = explain(probe, x, method="scorecam", class_index=1, progress=lambda d, t: calls.append((d, t)))
    one = explain(probe, x, method="scorecam", class_index=1, batch_size=1)
    np.testing.assert_allclose(whole.raw, one.raw, rtol=1e-5, atol=1e-7)
    assert calls[-1][0] == calls[-1][1] and all(d <= t for d, t in calls)
    with pytest.raises(Cancelled):
        explain(probe, x, method="scorecam", batch_size=3, progress=lambda d, t: d < 6)
    # Faster Score-CAM: only the 5 channels whose maps vary most; the others weigh nothing
    fast = explain(probe, x, method="scorecam", class_index=1, channels=5)
    A = probe.run(x, ["conv_2"]).maps["conv_2"]
    for n in range(2):
        kept = np.argsort(-A[n].std(axis=(0, 1)), kind="stable")[:5]
        np.testing.assert_allclose(fast.weights[n, kept], whole.weights[n, kept], rtol=1e-5)
        assert np.count_nonzero(fast.weights[n]) <= 5
    with pytest.raises(ChoiceError, match="1 to 20 channels"):
        explain(probe, x, method="scorecam", channels=21)


def test_ablation_cam_against_one_channel_at_a_time_loop(keras, flat_model, rng):
    """Ablation-CAM by hand: the layer's map with one channel zeroed, through the layers after it."""
    x = rng.random((2, 8, 8, 3), dtype=np.float32)
    twin = linear_twin(keras, flat_model)
    A = keras.Model(twin.inputs, twin.get_layer("conv_2").output)(x).numpy()
    rest_in = keras.Input(A.shape[1:])
    rest = keras.Model(rest_in, twin.get_layer("probs")(twin.get_layer("gap")(rest_in)))
    ours = explain(Probe(flat_model), x, method="ablationcam", class_index=2, batch_size=7)
    for n in range(2):
        score = rest(A[n:n + 1]).numpy()[0, 2]
        weights = []
        for k in range(A.shape[-1]):
            off = A[n:n + 1].copy()
            off[..., k] = 0
            weights.append((score - rest(off).numpy()[0, 2]) / abs(score))
        np.testing.assert_allclose(ours.weights[n], weights, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(ours.raw[n], (A[n] * np.array(weights)).sum(-1), rtol=1e-4, atol=1e-6)


def test_ablation_cam_around_a_skip_connection(keras, rng):
    """A layer with a skip connection around it: the rest of the network also reads the layer below,
    so the part after the layer takes the image too. Checked against a model with a mask input."""
    keras.utils.set_random_seed(5)
    inputs = keras.Input((6, 6, 2))
    a = keras.layers.Conv2D(3, 3, padding="same", activation="relu", name="a")(inputs)
    b = keras.layers.Conv2D(3, 3, padding="same", activation="relu", name="b")(a)
    out = keras.layers.Dense(2, activation="softmax", name="probs")(keras.layers.GlobalAveragePooling2D()(keras.layers.Add()([a, b])))
    model = keras.Model(inputs, out)
    probe = Probe(model)
    assert probe.head_model("b")[1] is True and probe.head_model("a")[1] is False
    mask = keras.Input((3,))
    logits_layer = keras.layers.Dense(2, use_bias=True)
    masked = keras.layers.Multiply()([model.get_layer("b").output, keras.layers.Reshape((1, 1, 3))(mask)])
    added = keras.layers.Add()([model.get_layer("a").output, masked])
    with_mask = keras.Model([model.inputs[0], mask], logits_layer(keras.layers.GlobalAveragePooling2D()(added)))
    logits_layer.set_weights(model.get_layer("probs").get_weights())
    x = rng.random((1, 6, 6, 2), dtype=np.float32)
    score = with_mask([x, np.ones((1, 3), np.float32)]).numpy()[0, 1]
    dropped = [with_mask([x, np.eye(3, dtype=np.float32)[k:k + 1] * -1 + 1]).numpy()[0, 1] for k in range(3)]
    ours = explain(probe, x, method="ablationcam", layer="b", class_index=1)
    np.testing.assert_allclose(ours.weights[0], (score - np.array(dropped)) / abs(score), rtol=1e-4, atol=1e-6)
    # gradients at a layer inside a skip connection flow through the same part of the network
    grad = explain(probe, x, method="gradcam", layer="b", class_index=1)
    assert np.isfinite(grad.raw).all() and grad.weights.shape == (1, 3)


def test_eigen_cam_against_numpy_svd(flat_model, rng):
    x = rng.random((3, 8, 8, 3), dtype=np.float32)
    probe = Probe(flat_model)
    ours = explain(probe, x, method="eigencam", layer="conv_1")
    A = probe.run(x, ["conv_1"]).maps["conv_1"].astype(np.float64)
    for n in range(3):
        matrix = A[n].reshape(-1, A.shape[-1])
        matrix = matrix - matrix.mean(axis=0)
        _, _, vt = np.linalg.svd(matrix, full_matrices=True)
        v = vt[0] if vt[0].sum() >= 0 else -vt[0]
        projection = (matrix @ v).reshape(8, 8)
        np.testing.assert_allclose(ours.raw[n], projection, rtol=1e-4, atol=1e-6 * np.abs(projection).max())
        # oriented toward activity: never anti-correlated with the channels' sum
        assert np.corrcoef(projection.ravel(), A[n].sum(-1).ravel())[0, 1] >= 0
    # class-agnostic: the same map for every class
    np.testing.assert_array_equal(explain(probe, x, method="eigencam", layer="conv_1", class_index=0).raw, ours.raw)


def test_every_cam_on_nested_model_matches_flat_equivalent(keras, nested_model, nested_base_flat, rng):
    inputs, x = nested_base_flat
    flat = keras.Model(inputs, nested_model.get_layer("probs")(nested_model.get_layer("gap")(x)))
    batch = rng.random((2, 32, 32, 3), dtype=np.float32)
    for method in CAMS:
        nested = explain(Probe(nested_model), batch, method=method, layer="block2_conv2", class_index=[0, 1])
        plain = explain(Probe(flat), batch, method=method, layer="block2_conv2", class_index=[0, 1])
        assert nested.layer == "vgg_base/block2_conv2" and plain.layer == "block2_conv2"
        assert nested.raw.shape == (2, 16, 16)
        np.testing.assert_allclose(nested.raw, plain.raw, rtol=1e-4, atol=1e-6 * max(1e-3, np.abs(plain.raw).max()))


def test_sigmoid_keras2_file_class_zero_is_one_minus_p(keras2_files, rng):
    """A Sequential MobileNetV2 from a Keras 2 file with one sigmoid output: class 0 scores -z
    (Ablation-CAM's weights turn their sign) and has probability 1 - p (Score-CAM's weights add to 1)."""
    from actviz.safety.loading import load_model

    probe = Probe(load_model(keras2_files["seq_mobilenetv2"]).model)
    x = rng.random((1, 32, 32, 3), dtype=np.float32)
    layer = "block_5_project"
    one, zero = (explain(probe, x, method="scorecam", layer=layer, class_index=c) for c in (1, 0))
    np.testing.assert_allclose(one.weights + zero.weights, np.ones_like(one.weights), rtol=1e-5)
    assert one.probability[0] + zero.probability[0] == pytest.approx(1.0, rel=1e-5)
    one, zero = (explain(probe, x, method="ablationcam", layer=layer, class_index=c) for c in (1, 0))
    np.testing.assert_allclose(zero.weights, -one.weights, rtol=1e-5, atol=1e-7)
    assert zero.score[0] == pytest.approx(-one.score[0], rel=1e-6)
    for method in ("hirescam", "xgradcam", "layercam", "eigencam"):
        result = explain(probe, x, method=method, layer=layer, class_index=0)
        assert result.raw.shape == (1, 4, 4) and np.isfinite(result.raw).all()


def test_sequential_without_input_and_mistakes(keras2_files, flat_model, rng):
    from actviz.safety.loading import load_model

    probe = Probe(load_model(keras2_files["seq_input_shape"]).model)
    x = rng.random((1, 12, 10, 1), dtype=np.float32)
    for method in CAMS:  # by default, the map the pooling read by the Flatten layer shrinks: c1
        result = explain(probe, x, method=method)
        assert result.layer == "c1" and result.raw.shape == (1, 10, 8) and "before the final pooling: p1 only shrinks" in result.layer_reason
    flat = Probe(flat_model)
    batch = rng.random((1, 8, 8, 3), dtype=np.float32)
    assert explain(flat, batch, method="gradcam", layer="pool_1").raw.shape == (1, 4, 4)  # any map that leads to the answer
    with pytest.raises(LayerNotFoundError, match="'gap' \\(GlobalAveragePooling2D, output \\(20\\)\\) cannot be used here"):
        explain(flat, batch, method="gradcam", layer="gap")
    with pytest.raises(ClassNotFoundError, match="numbered 0 to 2"):
        explain(flat, batch, method="ablationcam", class_index=3)
    with pytest.raises(ChoiceError, match="explains the input pixels, not a layer"):
        explain(flat, batch, method="saliency", layer="conv_2")
    with pytest.raises(ChoiceError, match="2 classes were given for 1 images"):
        explain(flat, batch, method="gradcam", class_index=[0, 1])


def test_inputs_are_not_modified(flat_model, rng):
    x = rng.random((2, 8, 8, 3), dtype=np.float32)
    kept = x.copy()
    for method in CAMS:
        explain(Probe(flat_model), x, method=method)
    np.testing.assert_array_equal(x, kept)
