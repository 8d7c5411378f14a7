"""Benchmark: what isolating untrusted model files costs, and long Sequential models before/after.

    python bench/hardening.py                 # about 5 minutes on 2 shared cores
    python bench/hardening.py --layers 900 --keras-layers 300   # the Keras-own path is quadratic

Each figure comes from fresh worker processes (median of --runs), as bench/run.py does:

1. the bundled demo model (.keras) and the user's architecture (VGG16 weights=None, 300x300x3 to
   block5_conv3, GAP, Dense(2), saved as .h5, ~60 MB): the structure scan in this process vs
   isolated in a child (the copy to a private folder included); loading with the isolated scan
   vs plain ``keras.saving.load_model`` (the floor); the full vet (a child that loads the model
   and runs one pass) and loading after it; the peak memory of the parent and of the children.
2. a Sequential model of N 1x1 convolutions: Keras's own ``Sequential.from_config`` path (what
   actviz ran before: ``model_from_json`` for the dry build, then ``keras.saving.load_model``)
   against actviz's dry build and ``load_model`` now.

Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
sys.path.insert(0, str(ROOT))


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def children_peak_mb() -> float:
    """Largest peak resident memory of any child this process waited for, in MB."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


# --- workers: each runs in a fresh process and prints one JSON line ------------------------


def worker_scan_inprocess(model: str) -> dict:
    from actviz.safety.loading import read_model_source
    from actviz.safety.scan import read_model_file

    kind = read_model_source(model).kind
    read_model_file(model, kind=kind)  # h5py and the file in the page cache, as for the isolated run
    started = time.perf_counter()
    read_model_file(model, kind=kind)
    return {"seconds": time.perf_counter() - started, "parent_peak_mb": peak_rss_mb()}


def worker_scan_isolated(model: str) -> dict:
    from actviz.safety import isolation
    from actviz.safety.loading import private_copy, read_model_source

    data = Path(model).read_bytes()
    started = time.perf_counter()
    file = read_model_source(data)
    with private_copy(file) as path:
        isolation.scan_file(path, kind=file.kind)
    return {"seconds": time.perf_counter() - started, "parent_peak_mb": peak_rss_mb(), "child_peak_mb": children_peak_mb()}


def worker_load_floor(model: str) -> dict:
    import keras

    started = time.perf_counter()
    keras.saving.load_model(model, compile=False)
    return {"seconds": time.perf_counter() - started, "parent_peak_mb": peak_rss_mb()}


def worker_load_scan(model: str) -> dict:
    import keras  # noqa: F401 -- imported first, as in the floor: the figure is the load, not TensorFlow's start

    from actviz.safety.loading import load_model

    started = time.perf_counter()
    load_model(model, isolate="scan")
    return {"seconds": time.perf_counter() - started, "parent_peak_mb": peak_rss_mb(), "child_peak_mb": children_peak_mb()}


def worker_vet(model: str) -> dict:
    import keras  # noqa: F401 -- a dashboard has TensorFlow loaded already

    from actviz.safety.loading import vet_model

    data = Path(model).read_bytes()
    started = time.perf_counter()
    report = vet_model(data, name=Path(model).name)
    return {"seconds": time.perf_counter() - started, "child_load_seconds": report.load_seconds,
            "child_forward_seconds": report.forward_seconds, "parent_peak_mb": peak_rss_mb(),
            "child_peak_mb": report.peak_memory_mb}


def worker_load_vet(model: str) -> dict:
    import keras  # noqa: F401

    from actviz.safety.loading import load_model

    data = Path(model).read_bytes()
    started = time.perf_counter()
    load_model(data, isolate="vet")
    return {"seconds": time.perf_counter() - started, "parent_peak_mb": peak_rss_mb(), "child_peak_mb": children_peak_mb()}


def worker_sequential_keras(model: str) -> dict:
    """What actviz ran before: Keras's own Sequential.from_config for the dry build, then for the load."""
    import zipfile

    import keras

    config = zipfile.ZipFile(model).read("config.json").decode()
    started = time.perf_counter()
    keras.models.model_from_json(config)
    dry = time.perf_counter() - started
    started = time.perf_counter()
    keras.saving.load_model(model, compile=False)
    return {"dry_seconds": dry, "load_seconds": time.perf_counter() - started}


def worker_sequential_actviz(model: str) -> dict:
    import keras  # noqa: F401

    from actviz.safety import building
    from actviz.safety.loading import load_model
    from actviz.safety.scan import read_model_file

    scanned = read_model_file(model, kind="keras")
    started = time.perf_counter()
    building.dry_weight_bytes(building.keras_builder(scanned.config, "keras"))
    dry = time.perf_counter() - started
    started = time.perf_counter()
    load_model(model, isolate="scan")  # its own dry build included
    return {"dry_seconds": dry, "load_seconds": time.perf_counter() - started}


WORKERS = {name[len("worker_"):]: function for name, function in globals().items() if name.startswith("worker_")}


# --- the driver -----------------------------------------------------------------------------


def run_worker(name: str, model: Path, timeout: float | None = None) -> dict:
    done = subprocess.run([sys.executable, __file__, "--worker", name, str(model)], env=ENV, capture_output=True,
                          text=True, cwd=ROOT, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"worker {name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def median_of(name: str, model: Path, runs: int) -> dict:
    samples = [run_worker(name, model) for _ in range(runs)]
    return {key: statistics.median(s[key] for s in samples) for key in samples[0]}


def build_sequential(folder: Path, layers: int) -> Path:
    import keras

    model = keras.Sequential(
        [keras.Input((8, 8, 3))] + [keras.layers.Conv2D(3, 1, name=f"c{i}") for i in range(layers)]
        + [keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2, activation="softmax")]
    )
    path = folder / f"sequential{layers}.keras"
    model.save(path)
    return path


def isolation_table(models: list[tuple[str, Path]], runs: int) -> str:
    rows = ["| model | scan here | scan isolated | load: keras floor | load: isolated scan | vet (child) | load after vet | parent peak (vet) | child peak (vet) |",
            "|---|---|---|---|---|---|---|---|---|"]
    for label, path in models:
        here = median_of("scan_inprocess", path, runs)
        isolated = median_of("scan_isolated", path, runs)
        floor = median_of("load_floor", path, runs)
        scanned = median_of("load_scan", path, runs)
        vet = median_of("vet", path, runs)
        vetted = median_of("load_vet", path, runs)
        rows.append(
            f"| {label} | {here['seconds']:.2f} s | {isolated['seconds']:.2f} s (child {isolated['child_peak_mb']:.0f} MB) "
            f"| {floor['seconds']:.2f} s | {scanned['seconds']:.2f} s | {vet['seconds']:.1f} s (load {vet['child_load_seconds']:.1f} s, "
            f"pass {vet['child_forward_seconds']:.2f} s) | {vetted['seconds']:.1f} s | {vet['parent_peak_mb']:.0f} MB | {vet['child_peak_mb']:.0f} MB |"
        )
    return "\n".join(rows)


def sequential_table(folder: Path, layers: int, keras_layers: int) -> str:
    rows = ["| Sequential of | dry build: Keras's from_config (before) | dry build: actviz (after) | load: before | load: actviz (after) |",
            "|---|---|---|---|---|"]
    for count in sorted({keras_layers, layers}):
        path = build_sequential(folder, count)
        after = run_worker("sequential_actviz", path)
        before = run_worker("sequential_keras", path) if count <= keras_layers else None
        rows.append(
            f"| {count} layers | {before['dry_seconds']:.1f} s |" if before else f"| {count} layers | not run (quadratic) |"
        )
        rows[-1] += f" {after['dry_seconds']:.1f} s | " + (f"{before['load_seconds']:.1f} s" if before else "not run") + f" | {after['load_seconds']:.1f} s |"
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--layers", type=int, default=900, help="layers of the long Sequential model (default 900)")
    parser.add_argument("--keras-layers", type=int, default=900, help="largest Sequential timed on Keras's own quadratic path")
    parser.add_argument("--skip-isolation", action="store_true")
    parser.add_argument("--worker", nargs=2, metavar=("NAME", "MODEL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        print(json.dumps(WORKERS[args.worker[0]](args.worker[1])))
        return
    from actviz import demo

    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        if not args.skip_isolation:
            from run import build_user_model  # bench/run.py: the user's architecture, saved as .h5

            models = [("demo (digits_vgg.keras, 0.9 MB)", Path(demo.MODEL)), ("VGG16 300x300 .h5 (59 MB)", build_user_model(folder))]
            print(isolation_table(models, args.runs), flush=True)
            print()
        print(sequential_table(folder, args.layers, args.keras_layers), flush=True)


if __name__ == "__main__":
    main()
