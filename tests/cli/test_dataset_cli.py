"""The ``dataset`` command: what it writes, what it refuses, and resuming after Ctrl-C."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from colours import colour_images, colour_model, write_folder

from actviz.cli import main
from actviz.dataset.summary import Summary

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def data(keras, tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    images, filed, _ = colour_images(24, seed=4)
    write_folder(root / "images", images, filed)
    colour_model(keras).save(root / "colours.keras")
    return root


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _header(path: Path) -> list[str]:
    return path.read_text().splitlines()[0].split(",")


def _args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["dataset", "--model", str(data / "colours.keras"), "--images", str(data / "images"), "--out", str(out),
            "--classes", "red, green", "--top", "5", "--batch-size", "8", "--preprocess", "rescale", *extra]


def test_dataset_writes_everything_the_issue_lists(data, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(_args(data, out, "--gradcam")) == 0, capsys.readouterr().err
    said = capsys.readouterr().out
    assert "24 images in 2 classes (green, red)" in said and "right" in said and "tell the classes apart" in said
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == [
        "channels.csv", "heatmaps/cells/green__as__green.npy", "heatmaps/cells/green__as__red.npy", "heatmaps/cells/red__as__red.npy",
        "heatmaps/green.npy", "heatmaps/green.png", "heatmaps/red.npy", "heatmaps/red.png", "predictions.csv",
        "sheets/000_conv.png", "sheets/001_pool.png", "skipped.csv", "summary.npz", "top_images.csv",
    ]  # and no progress file left behind
    summary = Summary.load(out / "summary.npz")
    assert _header(out / "top_images.csv") == ["layer", "channel", "rank", "image", "value", "y", "x"]
    top = _rows(out / "top_images.csv")
    assert len(top) == 2 * 4 * 5
    first = top[0]
    assert (first["layer"], first["channel"], first["rank"]) == ("conv", "0", "1")
    index = int(summary.layers["conv"].top.image[0, 0])
    assert first["image"] == summary.images[index] and first["image"].startswith(("red/", "green/"))
    assert float(first["value"]) == pytest.approx(float(summary.layers["conv"].top.value[0, 0]), rel=1e-5)
    assert _header(out / "channels.csv") == ["layer", "channel", "mean", "std", "active_fraction", "dead", "mean_red", "mean_green", "selectivity", "selective_for"]
    channels = _rows(out / "channels.csv")
    assert [r["dead"] for r in channels[:4]] == ["false", "false", "false", "true"]
    assert channels[0]["selective_for"] == "red" and channels[1]["selective_for"] == "green" and channels[3]["selective_for"] == ""
    assert _header(out / "predictions.csv") == ["image", "label", "predicted", "confidence"]
    predictions = _rows(out / "predictions.csv")
    assert len(predictions) == 24 and {p["label"] for p in predictions} == {"red", "green"}
    assert _header(out / "skipped.csv") == ["image", "reason"] and _rows(out / "skipped.csv") == []
    heat = np.load(out / "heatmaps" / "red.npy")
    assert heat.dtype == np.float32 and heat.shape == (12, 12) and 0 <= heat.min() and heat.max() <= 1
    np.testing.assert_allclose(heat, summary.mean_heatmaps()["red"][0])
    assert Image.open(out / "sheets" / "000_conv.png").size[0] > 5 * 96


def test_reopened_summary_prints_and_rewrites_the_same_tables(data, tmp_path, capsys):
    out, again = tmp_path / "first", tmp_path / "again"
    assert main(_args(data, out)) == 0
    capsys.readouterr()
    assert main(["dataset", "--summary", str(out / "summary.npz")]) == 0
    assert "24 images were summarised" in capsys.readouterr().out
    assert main(["dataset", "--summary", str(out / "summary.npz"), "--out", str(again), "--model", str(data / "colours.keras"),
                 "--images", str(data / "images")]) == 0  # the images are named again: a summary's stored location is never opened
    for name in ("top_images.csv", "channels.csv", "predictions.csv", "skipped.csv", "sheets/000_conv.png"):
        assert (again / name).read_bytes() == (out / name).read_bytes(), name


def test_unlabelled_images(data, tmp_path):
    out = tmp_path / "out"
    assert main(_args(data, out, "--labels", "none", "--sheet-channels", "0")) == 0
    assert _header(out / "channels.csv") == ["layer", "channel", "mean", "std", "active_fraction", "dead"]
    assert {row["label"] for row in _rows(out / "predictions.csv")} == {""}
    assert not (out / "sheets").exists()


def test_names_from_files_cannot_become_spreadsheet_formulas(data, tmp_path):
    images = tmp_path / "images"
    for folder in ("=HYPERLINK(x)", "plain"):
        (images / folder).mkdir(parents=True)
        Image.new("RGB", (12, 12), (200, 0, 0)).save(images / folder / "a.png")
    out = tmp_path / "out"
    assert main(["dataset", "--model", str(data / "colours.keras"), "--images", str(images), "--out", str(out), "--sheet-channels", "0"]) == 0
    predictions = (out / "predictions.csv").read_text()
    assert "\n'=HYPERLINK(x)/a.png,'=HYPERLINK(x)," in predictions
    assert all(not line.startswith("=") for line in (out / "top_images.csv").read_text().splitlines())


def _refused(args, capsys, match, out):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1 and match in err, err
    assert not out.exists()


def test_bad_data_sets_are_refused_in_one_line_and_nothing_is_written(data, tmp_path, capsys):
    out = tmp_path / "out"
    model = ["--model", str(data / "colours.keras"), "--out", str(out)]
    (tmp_path / "empty").mkdir()
    _refused(["dataset", "--images", str(tmp_path / "empty"), *model], capsys, "no images", out)
    (tmp_path / "list.csv").write_text("path,label\nnope.png,red\n")
    _refused(["dataset", "--images", str(tmp_path / "list.csv"), *model], capsys, "do not exist: 'nope.png'", out)
    classes = tmp_path / "classes"
    (classes / "red").mkdir(parents=True)
    (classes / "green").mkdir()
    Image.new("RGB", (12, 12)).save(classes / "red" / "a.png")
    _refused(["dataset", "--images", str(classes), *model], capsys, "'green' in the folder", out)
    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as archive:
        archive.writestr("red/a.png", (classes / "red" / "a.png").read_bytes())
        archive.writestr("../../outside.png", b"x")
    _refused(["dataset", "--images", str(tmp_path / "evil.zip"), *model], capsys, "points outside its folder", out)
    _refused(["dataset", "--images", str(tmp_path / "missing"), *model], capsys, "There is no folder or file", out)
    _refused(["dataset", "--images", str(data / "images"), *model, "--top", "0"], capsys, "between 1 and 100", out)
    _refused([*_args(data, out, "--layers", "nope")], capsys, "no layer named 'nope'", out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["classes", "empty", "evil.zip", "list.csv"]


def test_ctrl_c_saves_progress_and_resume_finishes_the_same_run(tmp_path, capsys):
    out = tmp_path / "out"
    base = ["dataset", "--batch-size", "10", "--checkpoint-every", "0", "--layers", "block1_conv1", "block3_conv2", "--sheet-channels", "0"]
    command = [sys.executable, "-m", "actviz", *base, "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    progress = out / ".actviz-dataset-progress.npz"
    deadline = time.monotonic() + 240
    while not progress.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "run the same command with --resume" in err and progress.exists()
    assert not (out / "summary.npz").exists()  # no half-finished results
    done_before = int(np.unpackbits(np.load(progress)["covered"]).sum())
    assert 0 < done_before < 1000

    assert main([*base, "--out", str(out), "--resume"]) == 0
    assert not progress.exists()
    resumed = Summary.load(out / "summary.npz")
    assert main([*base, "--out", str(tmp_path / "fresh")]) == 0
    from actviz.dataset.summary import differences

    assert differences(resumed, Summary.load(tmp_path / "fresh" / "summary.npz")) == []
    assert (out / "top_images.csv").read_bytes() == (tmp_path / "fresh" / "top_images.csv").read_bytes()


def test_the_memory_option_sizes_the_batches_and_refuses_what_cannot_fit(data, tmp_path, capsys):
    from actviz.core.probe import Probe
    from actviz.dataset.plan import image_bytes

    import keras

    each = image_bytes(Probe(keras.saving.load_model(data / "colours.keras")), (12, 12, 3))
    megabytes = 3 * each / 1024**2
    assert main(_args(data, tmp_path / "small", "--memory", f"{megabytes:.6f}", "--sheet-channels", "0")) == 0
    assert Summary.load(tmp_path / "small" / "summary.npz").meta["batch_size"] == 3
    assert main(_args(data, tmp_path / "whole", "--sheet-channels", "0")) == 0
    from actviz.dataset.summary import differences

    assert differences(Summary.load(tmp_path / "small" / "summary.npz"), Summary.load(tmp_path / "whole" / "summary.npz")) == []
    capsys.readouterr()
    assert main(_args(data, tmp_path / "never", "--memory", f"{each / 2 / 1024**2:.6f}")) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "12 x 12 pixels" in error[0] and "this run may use" in error[0]
    assert not (tmp_path / "never").exists()


def test_the_progress_of_a_pass_ends_in_one_line_when_stderr_is_not_a_terminal(data, tmp_path, capsys):
    assert main(_args(data, tmp_path / "out", "--sheet-channels", "0")) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("images: ")]
    assert len(lines) == 1 and lines[0].startswith("images: 24 images done in ") and "estimated" in lines[0]


def test_a_pass_in_bfloat16_says_so_in_its_summary(data, tmp_path, monkeypatch):
    from actviz.core import precision

    monkeypatch.setattr(precision, "supports_bfloat16", lambda: True)  # the twin runs (emulated) on any processor
    assert main(_args(data, tmp_path / "fast", "--precision", "bfloat16", "--sheet-channels", "0")) == 0
    summary = Summary.load(tmp_path / "fast" / "summary.npz")
    assert any("bfloat16" in note for note in summary.meta["notes"]) and summary.count == 24
