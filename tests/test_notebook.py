"""examples/quickstart.ipynb, executed on a real Jupyter kernel, with its outputs checked."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quickstart_notebook_runs_and_shows_its_results():
    import nbclient  # requirements-dev.txt installs both
    import nbformat

    notebook = nbformat.read(ROOT / "examples" / "quickstart.ipynb", as_version=4)
    assert not any(cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")  # kept clean in git
    client = nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}},
    )
    client.execute()
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert not [o for cell in code for o in cell.outputs if o.output_type == "error"]

    first = code[0].outputs[-1]["data"]
    assert "text/html" in first and "Feature maps of 1 image at 9 layers" in first["text/html"]
    assert "the model says <b>digit 7</b>" in first["text/html"] and first["text/html"].count("data:image/png;base64,") == 9
    grid = code[1].outputs
    assert any("| the model says: ('digit 7'" in o.get("text", "") for o in grid)
    assert any("image/png" in o.get("data", {}) for o in grid)
    shapes = "".join(o.get("text", "") for o in code[2].outputs)
    assert "'conv_1': (4, 30, 30, 8)" in shapes and "'conv_2': (4, 13, 13, 16)" in shapes
    cams = code[3].outputs
    assert any("HeatMaps(gradcam at block3_conv2, 4 images: digit 0" in o.get("text", "") for o in cams)
    assert any("image/png" in o.get("data", {}) for o in cams)
