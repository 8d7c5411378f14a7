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
    assert "actviz/demo/digits.npz" in names and "actviz/demo/ATTRIBUTION.md" in names  # the data set view's demo digits
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


def test_installed_in_a_fresh_environment_it_runs_from_anywhere(wheel, tmp_path):
    """As a user would: a new virtual environment, the wheel installed, `actviz export` run from
    another folder (the dependencies come from this machine's site-packages: no network)."""
    import venv

    from PIL import Image

    env_dir = tmp_path / "env"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    work = tmp_path / "elsewhere"
    work.mkdir()
    Image.new("L", (40, 40), 200).save(work / "blank.png")
    clean = {"PATH": f"{env_dir / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "TF_CPP_MIN_LOG_LEVEL": "3"}
    where = subprocess.run([str(python), "-c", "import actviz; print(actviz.__file__)"], capture_output=True, text=True, cwd=work, env=clean, timeout=300)
    assert str(env_dir) in where.stdout, where.stdout + where.stderr  # the installed copy, not the checkout
    run = subprocess.run([str(env_dir / "bin" / "actviz"), "export", "--image", "blank.png", "--out", "grids"],
                         capture_output=True, text=True, cwd=work, env=clean, timeout=600)
    assert run.returncode == 0, run.stderr
    assert (work / "grids" / "stats.csv").is_file() and len(list((work / "grids").glob("*.png"))) >= 9
