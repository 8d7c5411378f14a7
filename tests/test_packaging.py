"""The package as pip installs it: a wheel with the demo assets, the console script, the extras."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The wheel built offline from a copy of the tracked files (nothing is written into the checkout)."""
    source = tmp_path_factory.mktemp("source")
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for name in tracked:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(source)],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return next(out.glob("actviz-*.whl"))


def test_wheel_carries_the_demo_and_the_command(wheel):
    import actviz

    names = set(zipfile.ZipFile(wheel).namelist())
    assert "actviz/demo/digits_vgg.keras" in names and "actviz/demo/classes.json" in names
    assert sum(n.startswith("actviz/demo/samples/") and n.endswith(".png") for n in names) == 10
    assert not any(n.startswith(("tests/", "bench/", "app.py")) for n in names)
    info = next(n for n in names if n.endswith(".dist-info/METADATA"))
    metadata = zipfile.ZipFile(wheel).read(info).decode()
    assert f"Version: {actviz.__version__}" in metadata
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert any("keras" in r for r in requires) and any("tensorflow-cpu" in r for r in requires)
    assert not any("streamlit" in r and "extra" not in r for r in requires)  # the dashboard is an extra
    assert not any("mlxtend" in r and "extra" not in r for r in requires)  # training the demo is not a runtime need
    assert any('extra == "ray"' in r for r in requires) and any('extra == "app"' in r for r in requires)
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "actviz = actviz.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()


def test_program_name_follows_how_it_was_called(tmp_path):
    module = subprocess.run([sys.executable, "-m", "actviz", "layers", "--bogus"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert module.returncode == 2 and "(see 'python -m actviz --help')" in module.stderr
    script = tmp_path / "actviz"
    script.write_text("import sys\nfrom actviz.cli import main\nsys.exit(main())\n")
    called = subprocess.run([sys.executable, str(script), "layers", "--bogus"], capture_output=True, text=True, cwd=ROOT, timeout=300,
                            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert called.returncode == 2 and "(see 'actviz --help')" in called.stderr
