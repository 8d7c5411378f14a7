"""``actviz concepts`` and ``actviz tcav``: exactly the files and keys the issue lists (and the
pictures), and every mistake refused in one line with exit status 2, nothing written."""

from __future__ import annotations

import json

import numpy as np
import pytest

from actviz.cli import main

CONCEPT_KEYS = {"concept", "importance", "random_importance", "examples", "mean_map", "sheet"}
FINDING_KEYS = {"concept", "kind", "share", "region", "words", "picture"}


def _concepts(data, out, *extra):
    return ["concepts", "--model", str(data["file"]), "--images", str(data["root"] / "images"), "--class", "marked",
            "--classes", "marked, plain", "--out", str(out), "--crops", "160", *extra]


def _tcav(data, out, *extra):
    root = data["root"]
    return ["tcav", "--model", str(data["file"]), "--images", str(root / "images"), "--class", "marked", "--classes", "marked, plain",
            "--concept", str(root / "squares"), "--random", str(root / "noise"), "--out", str(out), *extra]


def test_concepts_writes_the_json_the_maps_and_the_pictures(planted_data, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(_concepts(planted_data, out)) == 0
    said = capsys.readouterr()
    assert "computing concepts" in said.err and "In 100% of 'marked' images the model relies on" in said.out
    concepts = json.loads((out / "concepts.json").read_text())
    findings = json.loads((out / "findings.json").read_text())
    count = len(concepts["concepts"])
    expected = {"concepts.json", "findings.json", *(f"finding_{i + 1}.png" for i in range(len(findings["findings"])))}
    expected |= {f"concept_{n}_{what}" for n in range(1, count + 1) for what in ("map.npy", "map.png", "crops.png")}
    assert {p.name for p in out.iterdir()} == expected
    assert set(concepts) == {"class", "class_index", "layer", "images", "reconstruction_error", "notes", "concepts"}
    assert concepts["class"] == "marked" and concepts["layer"] == "conv2" and concepts["images"] == 40
    importance = [c["importance"] for c in concepts["concepts"]]
    assert importance == sorted(importance, reverse=True) and [c["concept"] for c in concepts["concepts"]] == list(range(1, count + 1))
    for concept in concepts["concepts"]:
        assert set(concept) == CONCEPT_KEYS and all((planted_data["root"] / "images" / name).is_file() for name in concept["examples"])
        mean_map = np.load(out / concept["mean_map"])
        assert mean_map.shape == (24, 24) and mean_map.dtype == np.float32 and (out / concept["sheet"]).read_bytes()[:4] == b"\x89PNG"
    assert set(findings) == {"class", "findings"} and len(findings["findings"]) == 1
    finding = findings["findings"][0]
    assert set(finding) == FINDING_KEYS and finding["concept"] == 1 and finding["share"] >= 0.95
    assert len(finding["region"]) == 4 and max(abs(a - b) for a, b in zip(finding["region"], [0, 0, 4, 4])) <= 2


def test_tcav_writes_its_json_and_chart(planted_data, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(_tcav(planted_data, out)) == 0
    assert "not chance" in capsys.readouterr().out
    assert {p.name for p in out.iterdir()} == {"tcav.json", "tcav.png"}
    result = json.loads((out / "tcav.json").read_text())
    assert set(result) == {"class", "concept", "layer", "score", "p_value", "runs", "verdict", "words", "notes"}
    assert result["concept"] == "squares" and result["score"] >= 0.9 and result["p_value"] < 0.05 and len(result["runs"]) == 10


@pytest.mark.parametrize("extra, message", [
    (["--class", "lungs"], "There is no class 'lungs'"),
    (["--concepts", "0"], "--concepts must be 1 or more"),
    (["--concepts", "99"], "between 1 and 8"),
    (["--layer", "nowhere"], "There is no layer named 'nowhere'"),
    (["--images", "/nonexistent/folder"], "There is no folder or file"),
    (["--crops", "1"], "between 2 and 100,000"),
])
def test_concepts_refuses_mistakes_with_one_line_and_writes_nothing(planted_data, tmp_path, capsys, extra, message):
    out = tmp_path / "out"
    assert main(_concepts(planted_data, out, *extra)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and message in err[-1]
    assert not out.exists()


@pytest.mark.parametrize("extra, message", [
    (["--runs", "1"], "between 2 and 500 runs"),
    (["--concept", "/nonexistent/squares"], "There is no folder or file"),
    (["--alpha", "2"], "significance level"),
])
def test_tcav_refuses_mistakes_with_one_line_and_writes_nothing(planted_data, tmp_path, capsys, extra, message):
    out = tmp_path / "out"
    assert main(_tcav(planted_data, out, *extra)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and message in err[-1]
    assert not out.exists()


def test_a_missing_class_is_a_usage_error(planted_data, tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["concepts", "--model", str(planted_data["file"]), "--out", str(tmp_path / "out")])
    assert stopped.value.code == 2 and "--class" in capsys.readouterr().err
