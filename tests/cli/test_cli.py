import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from actviz.cli import main
from actviz.demo import MODEL as DEMO_MODEL, samples as demo_samples

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def user_vgg16_h5(tmp_path_factory):
    """The user's architecture as a genuine Keras 2 file: VGG16 (weights=None), 300x300x3,
    truncated after block5_conv3, GlobalAveragePooling2D, Dense(2, softmax)."""
    tf_keras = pytest.importorskip("tf_keras")
    tf_keras.utils.set_random_seed(9)
    base = tf_keras.applications.VGG16(weights=None, include_top=False, input_shape=(300, 300, 3))
    x = tf_keras.layers.GlobalAveragePooling2D()(base.get_layer("block5_conv3").output)
    model = tf_keras.Model(base.input, tf_keras.layers.Dense(2, activation="softmax")(x))
    path = tmp_path_factory.mktemp("user") / "vgg16_custom.09-0.9650.h5"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def xray_like(tmp_path_factory):
    rng = np.random.default_rng(5)
    pixels = (rng.random((420, 380)) * 60 + np.linspace(40, 190, 380)[None, :]).astype(np.uint8)
    path = tmp_path_factory.mktemp("img") / "cxr (1).jpg"
    Image.fromarray(pixels, "L").save(path)
    return path


def test_export_seed_scale_user_architecture(user_vgg16_h5, xray_like, tmp_path, capsys):
    import keras

    out = tmp_path / "grids"
    code = main(["export", "--image", str(xray_like), "--model", str(user_vgg16_h5), "--out", str(out), "--npz"])
    assert code == 0, capsys.readouterr().err
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == 17  # the notebook's model.layers[1:18]
    with open(out / "stats.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["layer"] for r in rows][:3] == ["block1_conv1", "block1_conv2", "block1_pool"]
    assert rows[-1]["layer"] == "block5_conv3" and rows[-1]["channels"] == "512"
    first = Image.open(pngs[0])
    assert first.size == (16 * 301 - 1, 4 * 301 - 1)  # 64 channels, 16 a row, 1-pixel separators

    # Independent computation: the notebook's own way, a plain multi-output keras.Model.
    model = keras.saving.load_model(user_vgg16_h5, compile=False)
    image = Image.open(xray_like).convert("RGB").resize((300, 300), Image.Resampling.BILINEAR)
    x = np.asarray(image, np.float32)[None] / 255.0
    plain = keras.Model(model.inputs, [layer.output for layer in model.layers[1:18]])
    saved = np.load(out / "activations.npz")
    for layer, want in zip(model.layers[1:18], plain(x)):
        np.testing.assert_allclose(saved[layer.name], np.asarray(want)[0], rtol=1e-4, atol=1e-4)
    assert "predicted class " in capsys.readouterr().out


def test_export_several_images_on_demo_model(tmp_path, capsys):
    samples = [str(p) for p in demo_samples()[:2]]
    code = main(["export", "--image", *samples, "--out", str(tmp_path), "--layers", "block1_conv1", "2", "--per-row", "5", "--cmap", "gray"])
    assert code == 0
    folders = sorted(p.name for p in tmp_path.iterdir())
    assert folders == [Path(s).stem for s in samples]
    files = sorted(p.name for p in (tmp_path / folders[0]).iterdir())
    assert files == ["000_block1_conv1.png", "002_block1_pool.png", "stats.csv"]
    grid = Image.open(tmp_path / folders[0] / "000_block1_conv1.png")
    assert grid.size == (5 * 57 - 1, 4 * 57 - 1)  # 16 channels at 5 a row: a partial last row
    assert "predicted digit" in capsys.readouterr().out


def test_layers_lists_table(capsys):
    assert main(["layers"]) == 0
    out = capsys.readouterr().out
    assert "block1_conv1" in out and "Conv2D" in out and "(56, 56, 16)" in out and "default" in out


@pytest.mark.parametrize("argv,message", [
    (["export", "--image", "missing.png", "--out", "x"], "no image file"),
    (["export", "--image", __file__, "--out", "x"], "not an image"),
    (["export", "--image", "{sample}", "--out", "x", "--model", str(ROOT / "requirements.txt")], "not a Keras model file"),
    (["export", "--image", "{sample}", "--out", "x", "--layers", "block9"], "no layer named 'block9'"),
    (["export", "--image", "{sample}", "--out", "x", "--cmap", "rainbowish"], "Unknown colour map"),
    (["export", "--image", "{sample}", "--out", "x", "--per-row", "0"], "at least 1"),
    (["layers", "--model", "nowhere.h5"], "no model file"),
])
def test_bad_input_exit_2_one_line(argv, message, capsys):
    argv = [a.replace("{sample}", str(demo_samples()[0])) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_subprocess_error_is_one_line_without_traceback(tmp_path):
    broken = tmp_path / "broken.h5"
    broken.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    done = subprocess.run(
        [sys.executable, "-m", "actviz", "export", "--image", str(demo_samples()[0]), "--model", str(broken), "--out", str(tmp_path)],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
    assert "Traceback" not in done.stderr


def test_demo_model_is_bundled():
    assert DEMO_MODEL.is_file() and DEMO_MODEL.stat().st_size < 5_000_000
    assert len(demo_samples()) >= 5


def test_importing_actviz_does_not_import_streamlit_or_tensorflow():
    code = "import sys, actviz, actviz.cli, actviz.safety.models; print('streamlit' in sys.modules, 'tensorflow' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.stdout.strip() == "False False"


def test_export_bundle_and_zip(flat_model, rng):
    import io
    import zipfile

    from actviz.core.probe import Probe
    from actviz.draw.export import export_bundle, zip_bytes

    probe = Probe(flat_model)
    batch = rng.random((1, 8, 8, 3), dtype=np.float32)
    files, predictions = export_bundle(probe, batch, ["conv_1", "conv_2"], npz=True)
    assert sorted(files) == ["000_conv_1.png", "002_conv_2.png", "activations.npz", "stats.csv"]
    np.testing.assert_allclose(predictions, np.asarray(flat_model(batch))[0], rtol=1e-6)
    saved = np.load(io.BytesIO(files["activations.npz"]))
    np.testing.assert_allclose(saved["conv_2"], probe.run(batch, ["conv_2"]).maps["conv_2"][0])
    archive = zipfile.ZipFile(io.BytesIO(zip_bytes(files)))
    assert archive.read("stats.csv") == files["stats.csv"]
    assert files["stats.csv"].decode().splitlines()[0].startswith("layer,height,width,channels")


def test_gradcam_command_writes_overlay_heatmap_ranking(tmp_path, capsys):
    sample = str(demo_samples()[7])
    assert main(["gradcam", "--image", sample, "--out", str(tmp_path), "--class", "1", "--method", "gradcam++"]) == 0
    heatmap = np.load(tmp_path / "heatmap.npy")
    assert heatmap.dtype == np.float32 and heatmap.shape == (14, 14) and 0 <= heatmap.min() and heatmap.max() <= 1
    assert Image.open(tmp_path / "overlay.png").size == (56, 56)
    with open(tmp_path / "channels.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 64 and rows[0]["rank"] == "1"
    assert "map for digit 1" in capsys.readouterr().out
    assert main(["gradcam", "--image", sample, "--out", str(tmp_path), "--class", "12"]) == 2


def test_filters_and_compare_commands(tmp_path, capsys):
    assert main(["filters", "--layer", "block1_conv2", "--channels", "0", "1", "--steps", "3", "--out", str(tmp_path / "f")]) == 0
    assert sorted(p.name for p in (tmp_path / "f").iterdir()) == ["kernels_block1_conv1.png", "patterns_block1_conv2.png"]
    samples = [str(p) for p in demo_samples()[:2]]
    assert main(["compare", "--image", *samples, "--layer", "block2_conv1", "--out", str(tmp_path / "c")]) == 0
    names = sorted(p.name for p in (tmp_path / "c").iterdir())
    assert names == ["block2_conv1_difference.png", "block2_conv1_first.png", "block2_conv1_second.png", "channels.csv"]
    with open(tmp_path / "c" / "channels.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 32
    assert main(["filters", "--layer", "block1_conv2", "--channels", "99", "--out", str(tmp_path)]) == 2
    assert "channels 0 to 15" in capsys.readouterr().err


def test_prediction_reading():
    from actviz.core.predictions import class_probabilities, is_probability

    assert is_probability(np.array([0.2, 0.8])) and is_probability(np.array([0.3]))
    assert not is_probability(np.array([3.5])) and not is_probability(np.array([0.2, 0.3]))
    assert class_probabilities(np.array([0.3]), ["normal", "pneumonia"]) == [("normal", 0.7), ("pneumonia", 0.3)]
    assert class_probabilities(np.array([0.1, 0.6, 0.3]))[0] == ("class 1", 0.6)


@pytest.fixture(scope="module")
def hostile_names_model(tmp_path_factory):
    """Layer names a stranger could choose: a spreadsheet formula, and a terminal escape 5,000 characters long."""
    import keras

    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(2, 3, name="=SUM(1+1)*cmd")(inputs)
    x = keras.layers.Conv2D(2, 3, name="\x1b[31mred\x1b[0m" + "a" * 5000)(x)
    path = tmp_path_factory.mktemp("hostile") / "hostile.keras"
    keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x)).save(path)
    return path


def test_hostile_layer_names_are_harmless_in_terminal_csv_and_file_names(hostile_names_model, tmp_path, capsys):
    assert main(["layers", "--model", str(hostile_names_model)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "=SUM(1+1)*cmd" in out and max(len(line) for line in out.splitlines()) < 200
    code = main(["export", "--model", str(hostile_names_model), "--image", str(demo_samples()[0]), "--out", str(tmp_path / "out")])
    assert code == 0, capsys.readouterr().err
    with open(tmp_path / "out" / "stats.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0]["layer"] == "'=SUM(1+1)*cmd"  # a spreadsheet shows it as text
    assert "\x1b" not in rows[1]["layer"] and rows[1]["layer"].startswith("red")
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert len(names) == 3 and all(len(name) <= 130 for name in names)
    assert "not probabilities" in capsys.readouterr().out  # a linear output is not shown as a percentage


def test_failed_export_leaves_the_folder_as_it_was(tmp_path, monkeypatch, capsys):
    import actviz.draw.export

    out = tmp_path / "out"
    out.mkdir()
    (out / "stats.csv").write_text("the user's own file")
    calls = []
    original = actviz.draw.export.feature_grid

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return original(*args, **kwargs)

    monkeypatch.setattr(actviz.draw.export, "feature_grid", failing)
    code = main(["export", "--image", str(demo_samples()[0]), str(demo_samples()[1]), "--out", str(out)])
    assert code == 1  # an OSError here is not the user's mistake: reported as unexpected
    assert sorted(p.name for p in out.iterdir()) == ["stats.csv"]
    assert (out / "stats.csv").read_text() == "the user's own file"


def test_output_folder_commit_failure_restores_what_was_there(tmp_path, monkeypatch):
    import os

    from actviz.errors import ActvizError
    from actviz.draw.export import OutputFolder

    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "a.txt").write_text("old a")
    real_replace, moves = os.replace, []

    def replace(source, target):
        moves.append((str(source), str(target)))
        if str(source).endswith(".b.txt.actviz-partial"):
            raise OSError(5, "Input/output error")
        return real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(ActvizError, match="Nothing was changed"):
        with OutputFolder(folder) as out:
            out.write("a.txt", b"new a")
            out.write("sub/b.txt", b"new b")
    monkeypatch.setattr(os, "replace", real_replace)
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) == ["a.txt"]
    assert (folder / "a.txt").read_text() == "old a"
    with OutputFolder(tmp_path / "new" / "deeper") as out:
        out.write("x.bin", b"1")
    assert (tmp_path / "new" / "deeper" / "x.bin").read_bytes() == b"1"
    with pytest.raises(ActvizError, match="outside the folder"):
        with OutputFolder(tmp_path / "third") as out:
            out.write("../escape.txt", b"no")
    assert not (tmp_path / "third").exists() and not (tmp_path / "escape.txt").exists()


def test_filters_in_groups_that_fit_the_memory_make_the_same_patterns(tmp_path, capsys):
    """With memory for two patterns at a time, four channels are made in two groups: the same patterns
    (each from its own seed) as all four at once, and the progress runs over both groups."""
    from actviz.core.batches import pass_bytes
    from actviz.safety.models import open_model

    each = pass_bytes(open_model().probe, (56, 56, 1), backward=True)
    common = ["filters", "--layer", "block2_conv1", "--channels", "0", "1", "2", "3", "--steps", "6"]
    assert main([*common, "--out", str(tmp_path / "all")]) == 0
    assert main([*common, "--memory", f"{2.5 * each / 1024**2:.6f}", "--out", str(tmp_path / "pairs")]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("robust patterns: ")]
    assert lines[-1].startswith("robust patterns: 12 steps done in ")  # 6 steps for each of two groups
    together = np.asarray(Image.open(tmp_path / "all" / "patterns_block2_conv1.png"), np.int16)
    grouped = np.asarray(Image.open(tmp_path / "pairs" / "patterns_block2_conv1.png"), np.int16)
    assert np.abs(together - grouped).max() <= 2  # the same pictures, to a grey level or two of rounding
