"""Benchmark: the ``dataset`` pass against the floor, on the user's architecture, in the same run.

    python bench/dataset.py                                   # short: about 20 minutes on 2 busy cores
    python bench/dataset.py --images 500 --rss 500 2000 --batch-size 32 --runs 3   # the full sizes

The model: VGG16 (weights=None, 300x300x3) truncated after block5_conv3, GlobalAveragePooling2D,
Dense(2, softmax), saved as a Keras 2 .h5 by tf_keras (as a .keras file without tf_keras). The
data: generated greyscale JPEGs of 320-480 pixels (X-ray-like: gradient, noise, a bright
patch, a corner marker) in two class folders on disk. Each measurement runs in a fresh process
(so peak memory is its own) and the floor and the pass alternate, so both see the same load:

1. the floor: the same files decoded and resized with Pillow, divided by 255 and run through
   ``model.predict`` at the same batch size (nothing else kept);
2. ``actviz.dataset.summarize`` without Grad-CAM, local engine (17 layers: every conv and pool);
3. peak RSS of (2) over the larger data set size, read after the smaller number of images and at
   the end of the same run (peak so far after 500 images is the peak of a 500-image run; target:
   the end within 100 MB). TensorFlow's allocator warms up over the first few batches (the floor's
   peak grows as much), so the smaller size should be several batches;
4. the Ray engine on this machine (``ray.init`` here: start-up included) vs the local engine;
5. the local engine with Grad-CAM.

Times exclude importing TensorFlow and loading the model (the same for every way), and include
everything after: tracing, decoding, the forward passes, merging. Prints a Markdown table, and
what the measured throughput means for a CheXpert-sized data set (200,000 images).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
CHEXPERT = 200_000


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- set-up -------------------------------------------------------------------------------------


def build_model(folder: Path) -> Path:
    """The user's architecture, written the way the user's file was (tf_keras .h5) if possible."""
    try:
        import tf_keras as k2

        k2.utils.set_random_seed(9)
        base = k2.applications.VGG16(weights=None, include_top=False, input_shape=(300, 300, 3))
        x = k2.layers.GlobalAveragePooling2D()(base.get_layer("block5_conv3").output)
        path = folder / "vgg16_custom.h5"
        k2.Model(base.input, k2.layers.Dense(2, activation="softmax")(x)).save(path)
    except ImportError:
        import keras

        keras.utils.set_random_seed(9)
        base = keras.applications.VGG16(weights=None, include_top=False, input_shape=(300, 300, 3))
        x = keras.layers.GlobalAveragePooling2D()(base.get_layer("block5_conv3").output)
        path = folder / "vgg16_custom.keras"
        keras.Model(base.input, keras.layers.Dense(2, activation="softmax")(x)).save(path)
    return path


def make_images(folder: Path, count: int, seed: int = 0) -> Path:
    """``count`` greyscale JPEGs in folder/NORMAL and folder/PNEUMONIA (alternating)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for i in range(count):
        height, width = rng.integers(320, 481, size=2)
        y, x = np.mgrid[0:height, 0:width]
        pixels = 40 + 150 * x / width + rng.normal(0, 18, (height, width))
        cy, cx, r = rng.integers(60, height - 60), rng.integers(60, width - 60), rng.integers(20, 60)
        pixels += 60 * ((y - cy) ** 2 + (x - cx) ** 2 < r**2) * (i % 2)
        pixels[8:24, 8:40] = 250  # a corner marker, as hospitals put on X-rays
        path = folder / ("PNEUMONIA" if i % 2 else "NORMAL") / f"{i:05d}.jpeg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "L").save(path, quality=90)
    return folder


# --- workers: each runs in a fresh process and prints one JSON line ------------------------------


def worker_floor(model_path: str, folder: str, batch: int) -> dict:
    import keras
    import numpy as np
    from PIL import Image

    model = keras.saving.load_model(model_path, compile=False)
    files = sorted(Path(folder).rglob("*.jpeg"))
    start = time.perf_counter()
    for i in range(0, len(files), batch):
        pixels = [np.asarray(Image.open(f).convert("RGB").resize((300, 300), Image.Resampling.BILINEAR)) for f in files[i : i + batch]]
        model.predict(np.stack(pixels).astype(np.float32) / 255.0, batch_size=batch, verbose=0)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "images": len(files), "rate": len(files) / seconds, "rss_mb": peak_rss_mb()}


def worker_dataset(model_path: str, folder: str, batch: int, engine: str, gradcam: bool) -> dict:
    from actviz.dataset import summarize
    from actviz.safety.models import open_model

    opened = open_model(model_path)
    stamps = []
    start = time.perf_counter()
    summary = summarize(opened, folder, batch_size=batch, engine=engine, gradcam=gradcam,
                        progress=lambda done, total: stamps.append((time.perf_counter() - start, done, peak_rss_mb())))
    seconds = time.perf_counter() - start
    first = next((t for t, d, _ in stamps if d > 0), seconds)
    return {"seconds": seconds, "images": summary.count, "rate": summary.count / seconds, "first_batch": first,
            "rss_mb": peak_rss_mb(), "peaks": [(d, m) for _, d, m in stamps], "layers": len(summary.layout.names)}


def run_worker(name: str, *args) -> dict:
    code = f"import json, sys; sys.path.insert(0, {str(ROOT / 'bench')!r}); import dataset as b; print(json.dumps(b.worker_{name}(*{args!r})))"
    done = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=6 * 3600)
    if done.returncode:
        raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- the benchmark -------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32, help="images for the throughput runs (default 32; the issue: 500)")
    parser.add_argument("--rss", type=int, nargs=2, default=[64, 256], metavar=("SMALL", "LARGE"), help="data set sizes for peak memory (default 64 256; the issue: 500 2000)")
    parser.add_argument("--batch-size", type=int, default=16, help="batch size of the floor and the pass (default 16; the CLI's default is 32)")
    parser.add_argument("--runs", type=int, default=1, help="alternating repetitions of the floor and the pass (medians reported)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["ray", "gradcam", "rss"], help="measurements to leave out")
    parser.add_argument("--raw", help="also write every measurement as JSON to this file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="actviz-bench-") as tmp:
        tmp = Path(tmp)
        model = str(build_model(tmp))
        folders = {n: str(make_images(tmp / f"images_{n}", n)) for n in sorted({args.images, max(args.rss)})}
        small = folders[args.images]
        results: dict[str, list] = {"floor": [], "local": []}
        for run in range(args.runs):  # alternate, so both see the same load on a shared machine
            results["floor"].append(run_worker("floor", model, small, args.batch_size))
            results["local"].append(run_worker("dataset", model, small, args.batch_size, "local", False))
            print(f"run {run + 1}: floor {results['floor'][-1]['rate']:.2f} images/s, dataset {results['local'][-1]['rate']:.2f} images/s", file=sys.stderr)
        if "rss" not in args.skip:
            results["rss"] = [run_worker("dataset", model, folders[max(args.rss)], args.batch_size, "local", False)]
        if "ray" not in args.skip:
            results["ray"] = [run_worker("dataset", model, small, args.batch_size, "ray", False)]
            results["ray_local"] = [run_worker("dataset", model, small, args.batch_size, "local", False)]
        if "gradcam" not in args.skip:
            results["gradcam"] = [run_worker("dataset", model, small, args.batch_size, "local", True)]
            results["gradcam_local"] = [run_worker("dataset", model, small, args.batch_size, "local", False)]
    if args.raw:
        Path(args.raw).write_text(json.dumps(results, indent=1))
    report(results, args, Path(model).suffix)


def report(results: dict, args: argparse.Namespace, kind: str) -> None:
    med = lambda key, field: statistics.median(r[field] for r in results[key])  # noqa: E731
    floor, local = med("floor", "rate"), med("local", "rate")
    # each pass against the floor run just before it: on a shared machine the load drifts between runs
    paired = statistics.median(d["rate"] / f["rate"] for f, d in zip(results["floor"], results["local"]))
    lines = [
        f"VGG16 to block5_conv3 at 300x300, Dense(2) ({kind}), {args.images} generated JPEGs, batch {args.batch_size}, "
        f"{os.cpu_count()} CPU cores, {args.runs} alternating run(s), medians:", "",
        "| measurement | result | target |", "|---|---|---|",
        f"| floor: decode + resize + `model.predict` | {floor:.2f} images/s | |",
        f"| `dataset`, local, no Grad-CAM ({results['local'][0]['layers']} layers) | {local:.2f} images/s; each run against the floor run "
        f"just before it: **{paired:.0%} of the floor** (median) | >= 80% |",
    ]
    if "rss" in results:
        run = results["rss"][0]
        small = next(m for d, m in run["peaks"] if d >= min(args.rss))
        lines.append(f"| peak RSS after {min(args.rss):,} / {run['images']:,} images (one run) | {small:.0f} MB / {run['rss_mb']:.0f} MB: "
                     f"**{run['rss_mb'] - small:+.0f} MB** | within 100 MB |")
    if "ray" in results:
        ray, here = results["ray"][0], results["ray_local"][0]
        lines.append(f"| Ray engine vs local, whole pass (Ray start-up included) | {ray['seconds']:.0f} s vs {here['seconds']:.0f} s: **{ray['seconds'] / here['seconds']:.2f}x** | <= 1.5x |")
        after = (ray["seconds"] - ray["first_batch"]) / max(here["seconds"] - here["first_batch"], 1e-9)
        lines.append(f"| of which to the first batch's summary: Ray (start Ray, ship the model, load it in an actor) vs local | "
                     f"{ray['first_batch']:.0f} s vs {here['first_batch']:.0f} s; after it: {after:.2f}x | |")
    if "gradcam" in results:
        cam, here = results["gradcam"][0], results["gradcam_local"][0]
        lines.append(f"| with Grad-CAM (a backward pass per batch) | {cam['rate']:.2f} images/s ({here['rate'] / cam['rate']:.1f}x the time without) | |")
    cores = os.cpu_count() or 1
    hours = CHEXPERT / local / 3600
    slower = results["gradcam_local"][0]["rate"] / results["gradcam"][0]["rate"] if "gradcam" in results else None
    per_core = local / cores
    lines += [
        "", f"A CheXpert-sized set ({CHEXPERT:,} images) at the measured {local:.2f} images/s: about {hours:.0f} hours on this machine "
        f"({cores} cores, shared with other work while measured)" + (f"; with Grad-CAM about {hours * slower:.0f} hours" if slower else "") + ". "
        f"On a Ray cluster the pass scales with the cores running the model (one actor per node, TensorFlow using all its cores; "
        f"the partial summaries are small): at {per_core:.2f} images/s per core, 10 machines of 16 cores would take about "
        f"{CHEXPERT / (per_core * 160) / 3600:.1f} hours, plus a minute or so to start.",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
