"""The ``explain`` command, the method table the dashboard and --help are made from, and the
result's helpers for pictures and captions."""

import io
import json

import numpy as np
import pytest
from PIL import Image

from actviz.cli import main
from actviz.demo import SAMPLES
from actviz.explainers.explain import explain
from actviz.explainers.registry import FAMILIES, METHOD_NAMES, check_settings, method_info, method_table
from actviz.core.probe import Probe

SAMPLE = str(sorted(SAMPLES.iterdir())[3])


def test_method_table_grouped_by_family():
    rows = method_table()
    assert [row["name"] for row in rows] == list(METHOD_NAMES)
    assert METHOD_NAMES == (
        "gradcam", "gradcam++", "hirescam", "xgradcam", "layercam", "scorecam", "ablationcam", "eigencam",
        "saliency", "smoothgrad", "integrated-gradients", "gradient-x-input", "occlusion", "rollout",
    )
    families = [row["family"] for row in rows]
    assert families == sorted(families, key=list(FAMILIES).index)  # grouped, families in menu order
    assert all(row["sentence"].endswith(".") and row["family_sentence"] == FAMILIES[row["family"]] for row in rows)
    assert {row["name"] for row in rows if row["expensive"]} == {"scorecam", "ablationcam", "smoothgrad", "integrated-gradients", "occlusion"}
    assert {row["name"] for row in rows if row["needs_layer"]} == set(METHOD_NAMES[:8])
    assert check_settings("smoothgrad", {"samples": 4}) == {"samples": 4, "noise": 0.2, "seed": 0}
    assert method_info("integrated-gradients").settings["steps"] == 50


def test_explain_command_cam_and_checks(tmp_path, capsys):
    out = tmp_path / "cam"
    assert main(["explain", "--image", SAMPLE, "--out", str(out), "--method", "ablationcam", "--class", "5",
                 "--layer", "block2_conv2", "--checks", "--depths", "2", "--curve-steps", "8"]) == 0
    saved = np.load(out / "map.npy")
    assert saved.dtype == np.float32 and saved.shape == (28, 28)
    assert Image.open(out / "overlay.png").size == (56, 56)
    figures = json.loads((out / "checks.json").read_text())
    assert figures["method"] == "ablationcam" and figures["class_index"] == 5 and figures["layer"] == "block2_conv2"
    assert len(figures["randomisation_rank_correlation"]) == 2 and figures["randomised_layers"][0] == "predictions"
    assert 0 <= figures["deletion_auc"] <= 1 and 0 <= figures["insertion_auc"] <= 1 and "completeness_gap" not in figures
    text = capsys.readouterr().out
    assert "Ablation-CAM map for digit 5" in text and "model randomisation:" in text
    # the map is the raw map of the package's own call
    from actviz.inputs.images import open_image
    from actviz.safety.models import open_model
    from actviz.inputs.batch import to_batch

    opened = open_model()
    batch = to_batch(open_image(SAMPLE), opened.probe, preprocess_as="rescale").inputs
    np.testing.assert_allclose(saved, explain(opened.probe, batch, method="ablationcam", class_index=5, layer="block2_conv2").raw[0], rtol=1e-5, atol=1e-7)


def test_explain_command_pixel_methods(tmp_path):
    out = tmp_path / "ig"
    assert main(["explain", "--image", SAMPLE, "--out", str(out), "--method", "integrated-gradients",
                 "--steps", "8", "--checks", "--depths", "1", "--curve-steps", "4"]) == 0
    assert np.load(out / "map.npy").shape == (56, 56)
    figures = json.loads((out / "checks.json").read_text())
    assert 0 <= figures["completeness_gap"] and len(figures["verdicts"]) == 3
    assert main(["explain", "--image", SAMPLE, "--out", str(tmp_path / "occ"), "--method", "occlusion", "--patch", "14", "--fill", "0.5"]) == 0
    assert sorted(p.name for p in (tmp_path / "occ").iterdir()) == ["map.npy", "overlay.png"]


@pytest.mark.parametrize("arguments, words", [
    (["--method", "guided-backprop"], "Unknown explanation method 'guided-backprop'"),
    (["--method", "gradcam", "--class", "10"], "the model has 10 classes"),
    (["--method", "gradcam", "--layer", "gap"], "only layers with an image-like output (height x width x channels) qualify"),
    (["--method", "saliency", "--layer", "block1_conv1"], "explains the input pixels, not a layer"),
    (["--method", "gradcam", "--steps", "4"], "Grad-CAM has no setting 'steps'"),
    (["--method", "scorecam", "--channels", "0"], "1 to 64 channels"),
    (["--method", "occlusion", "--fill", "grey"], "Unknown fill 'grey'"),
    (["--method", "gradcam", "--opacity", "2"], "--opacity must be between 0 and 1"),
])
def test_explain_command_mistakes_exit_2_with_one_line(tmp_path, capsys, arguments, words):
    out = tmp_path / "never"
    assert main(["explain", "--image", SAMPLE, "--out", str(out), *arguments]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("error: ") and words in error[0]
    assert not out.exists()


def test_result_helpers(flat_model, rng):
    x = rng.random((2, 8, 8, 3), dtype=np.float32)
    result = explain(Probe(flat_model), x, method="gradcam", layer="conv_2", class_index=1)
    pixels = (x[1] * 255).astype(np.uint8)
    picture = result.overlay(pixels, 1, opacity=0.0)
    np.testing.assert_array_equal(picture, pixels)
    assert result.overlay(pixels, 1).shape == (8, 8, 3)
    large = result.at_input_size(0)
    assert large.shape == (8, 8) and large.dtype == np.float32
    np.testing.assert_allclose(large[::7, ::7], result.heatmap[0][::3, ::3], atol=1e-6)  # corners aligned
    caption = result.caption(0, ["cat", "dog", "bird"])
    assert caption.startswith("Grad-CAM at layer conv_2, for dog (probability ")
    assert Image.open(io.BytesIO(result._repr_png_())).size == (224, 224)
    assert len(result) == 2 and result.ranking.shape == (2, 20)


def test_explain_flags_come_from_the_registry_with_their_words():
    """One flag per setting people choose, made from the registry's schema, with the names, types and
    words the command has always had."""
    import argparse

    from actviz.cli import build_parser

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    flags = {action.dest: action for action in commands.choices["explain"]._actions}
    assert {name: (flags[name].type, flags[name].help) for name in ("channels", "samples", "noise", "steps", "baseline", "patch", "stride", "fill")} == {
        "channels": (int, "scorecam: only the N channels whose maps vary most (Faster Score-CAM)"),
        "samples": (int, "smoothgrad: noisy copies of the image (default 20)"),
        "noise": (float, "smoothgrad: the noise's spread, as a share of the image's range (default 0.2)"),
        "steps": (int, "integrated-gradients: points on the path (default 50)"),
        "baseline": (None, "integrated-gradients: the image the path starts from: black (default), blur or noise"),
        "patch": (int, "occlusion: side of the hidden square in pixels (default: an eighth of the image)"),
        "stride": (int, "occlusion: pixels between patches (default: the patch)"),
        "fill": (None, "occlusion: what hides a patch: black (default), mean, blur, or a number"),
    }
    assert all(flags[name].default is None for name in ("channels", "samples", "noise", "steps", "baseline", "patch", "stride", "fill"))
    assert commands.choices["gradcam"]._option_string_actions["--method"].choices == ["gradcam", "gradcam++"]


class _Terminal(io.StringIO):
    """stderr as a terminal shows it."""

    def isatty(self):
        return True


def test_checks_show_progress_on_a_terminal_and_one_line_elsewhere(tmp_path, capsys, monkeypatch):
    """The checks say beforehand how long they will take and how many randomised depths they run; on
    a terminal a bar with the time left moves from the start ("compiling ..." before the first step),
    elsewhere one line says what was done once they finish."""
    import re
    import sys

    args = ["explain", "--image", SAMPLE, "--method", "integrated-gradients", "--steps", "8", "--checks", "--curve-steps", "4"]
    assert main([*args, "--out", str(tmp_path / "file")]) == 0
    said = capsys.readouterr()
    assert re.search(r"checks: (about \d+ seconds|under a second) here \(curves of 4 steps; model randomisation at (\d+) of the "
                     r"model's (\d+) depths", said.out)
    lines = [line for line in said.err.splitlines() if line.startswith("checks: ")]
    assert len(lines) == 1 and re.fullmatch(r"checks: done in [\d.]+ s; estimated .+ beforehand", lines[0])
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main([*args, "--out", str(tmp_path / "terminal")]) == 0
    shown = terminal.getvalue().split("\r")
    assert any(line.startswith("checks (compiling ...)") and "left, estimated" in line for line in shown)
    assert any(re.match(r"checks: +\d+%\|.*\| \[\d\d:\d\d<\d\d:\d\d", line) for line in shown)  # time left, at the pace measured
    assert any(line.startswith("Integrated Gradients") for line in shown)
    figures = json.loads((tmp_path / "terminal" / "checks.json").read_text())
    depths = int(re.search(r"at (\d+) of", said.out).group(1))
    assert len(figures["randomisation_rank_correlation"]) == depths


def test_explain_in_bfloat16_and_a_memory_too_small_for_one_image(tmp_path, capsys):
    assert main(["explain", "--image", SAMPLE, "--out", str(tmp_path / "fast"), "--method", "saliency", "--precision", "bfloat16"]) == 0
    plain = tmp_path / "plain"
    assert main(["explain", "--image", SAMPLE, "--out", str(plain), "--method", "saliency"]) == 0
    fast, exact = np.load(tmp_path / "fast" / "map.npy"), np.load(plain / "map.npy")
    assert np.corrcoef(fast.ravel(), exact.ravel())[0, 1] > 0.95  # the same map, to bfloat16's digits
    capsys.readouterr()
    assert main(["explain", "--image", SAMPLE, "--out", str(tmp_path / "never"), "--method", "smoothgrad", "--memory", "0.01"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "this job may use" in error[0] and "Nothing was run" in error[0]
    assert not (tmp_path / "never").exists()
