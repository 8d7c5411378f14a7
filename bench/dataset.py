"""Benchmark: the ``dataset`` pass on the user's architecture: its speed against the bare compiled
call of the model and the machine's ceiling, in float32 and bfloat16, its memory, and bfloat16's
error against float32.

    python bench/dataset.py                                   # about 15 minutes on 2 cores
    python bench/dataset.py --images 96 --runs 3              # more images, more alternating runs
    python bench/dataset.py --skip ray gradcam                # leave parts out

The model: VGG16 (weights=None, 300x300x3) truncated after block5_conv3, Flatten, Dense(2, softmax)
(the user's head: a 59 MB file), saved as a Keras 2 .h5 by tf_keras (as a .keras file without
tf_keras). The data: generated greyscale JPEGs of 320-480 pixels (X-ray-like: gradient, noise, a
bright patch, a corner marker) in two class folders on disk. Each measurement runs in a fresh
process (so its peak memory is its own), and the measurements of a run alternate, so all of them
see the same load on a shared machine:

1. speed (images/s, after the model is loaded and every pass compiled): the bare compiled call
   (``tf.function`` of the model on batches of preprocessed images: nothing decoded, nothing
   kept), and ``summarize`` (the local engine: decoding, 17 layers reduced, merging), each in
   float32 and in bfloat16; with the ceiling of the machine (a compiled 4096 x 4096 matrix
   product, float32 and bfloat16) and the operations of one image (54.2 GFLOP);
2. peak memory of the whole ``actviz dataset`` command (6 images, with Grad-CAM): at the default
   settings, with ``--batch-size 4``, and with ``--memory 500`` (the dashboard's share of a
   Community Cloud container);
3. bfloat16 against float32 over the same images: the top images of each channel, the channels'
   statistics, the mean heat maps, and, on one batch, block5_conv3's relative error and the share
   of its ReLU decisions that flip;
4. the Ray engine on this machine (``ray.init`` here: start-up included) vs the local engine, and
   the local engine with Grad-CAM.

Prints Markdown tables (and every measurement as JSON with ``--raw``).
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
#: Multiply-adds of VGG16 to block5_conv3 at 300 x 300, x2: one image's floating-point operations.
IMAGE_GFLOP = 54.2


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- set-up -------------------------------------------------------------------------------------


def build_model(folder: Path) -> Path:
    """The user's architecture (Flatten/Dense head), written as the user's file was (tf_keras .h5) if possible."""
    try:
        import tf_keras as k2

        k2.utils.set_random_seed(9)
        base = k2.applications.VGG16(weights=None, include_top=False, input_shape=(300, 300, 3))
        x = k2.layers.Flatten()(base.get_layer("block5_conv3").output)
        path = folder / "vgg16_custom.h5"
        k2.Model(base.input, k2.layers.Dense(2, activation="softmax")(x)).save(path)
    except ImportError:
        import keras

        keras.utils.set_random_seed(9)
        base = keras.applications.VGG16(weights=None, include_top=False, input_shape=(300, 300, 3))
        x = keras.layers.Flatten()(base.get_layer("block5_conv3").output)
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


def _opened(model_path: str, precision: str):
    from actviz.core.precision import at_precision
    from actviz.safety.models import open_model

    return at_precision(open_model(model_path), precision)


def worker_bare(model_path: str, folder: str, batch: int, precision: str) -> dict:
    """The bare compiled call: ``tf.function`` of the model (the twin in bfloat16) on batches of
    already preprocessed images, after one compiling call."""
    import numpy as np
    import tensorflow as tf
    from PIL import Image

    opened = _opened(model_path, precision)
    model = opened.probe.model
    files = sorted(Path(folder).rglob("*.jpeg"))
    pixels = np.stack([np.asarray(Image.open(f).convert("RGB").resize((300, 300), Image.Resampling.BILINEAR)) for f in files])
    inputs = pixels.astype(np.float32) / 255.0
    call = tf.function(lambda x: model(x, training=False))
    call(inputs[:batch])
    start = time.perf_counter()
    for i in range(0, len(inputs) - batch + 1, batch):
        call(inputs[i : i + batch])
    done = (len(inputs) // batch) * batch
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "images": done, "rate": done / seconds, "rss_mb": peak_rss_mb()}


def worker_dataset(model_path: str, folder: str, batch: int, engine: str, gradcam: bool, precision: str) -> dict:
    """``summarize`` over the folder after one compiling batch (the local engine's pass compiled, the
    model loaded), the time of the whole pass; the summary itself for the comparison of precisions."""
    from actviz.dataset import open_source, summarize

    opened = _opened(model_path, precision)
    source = open_source(folder)
    summarize(opened, source, indices=range(batch), batch_size=batch, gradcam=gradcam)  # compiles the pass
    stamps = []
    start = time.perf_counter()
    summary = summarize(opened, source, batch_size=batch, engine=engine, gradcam=gradcam,
                        progress=lambda done, total: stamps.append((time.perf_counter() - start, done, peak_rss_mb())))
    seconds = time.perf_counter() - start
    first = next((t for t, d, _ in stamps if d > 0), seconds)
    out = Path(folder).parent / f"summary_{precision}_{gradcam}.npz"
    out.write_bytes(summary.to_bytes())
    return {"seconds": seconds, "images": summary.count, "rate": summary.count / seconds, "first_batch": first,
            "rss_mb": peak_rss_mb(), "layers": len(summary.layout.names), "batch": summary.meta["batch_size"], "summary": str(out)}


def worker_command(*args: str) -> dict:
    """The whole ``actviz dataset`` command (in this process): its peak memory and time."""
    from actviz.cli import main

    start = time.perf_counter()
    code = main(["dataset", *args])
    return {"code": code, "seconds": time.perf_counter() - start, "rss_mb": peak_rss_mb()}


def worker_ceiling(precision: str) -> dict:
    """GFLOP/s of a compiled 4096 x 4096 matrix product: what this machine's cores reach on dense arithmetic."""
    import tensorflow as tf

    dtype = tf.bfloat16 if precision == "bfloat16" else tf.float32
    a = tf.random.normal((4096, 4096), dtype=tf.float32)
    a = tf.cast(a, dtype)
    product = tf.function(lambda x: tf.matmul(x, x))
    product(a).numpy()
    start, count = time.perf_counter(), 0
    while time.perf_counter() - start < 5:
        product(a).numpy()
        count += 1
    return {"gflops": count * 2 * 4096**3 / (time.perf_counter() - start) / 1e9}


def worker_error(model_path: str, folder: str) -> dict:
    """bfloat16 against float32 on one batch: block5_conv3's relative L2 error and ReLU decisions flipped."""
    import numpy as np
    from PIL import Image

    exact, fast = _opened(model_path, "float32").probe, _opened(model_path, "bfloat16").probe
    files = sorted(Path(folder).rglob("*.jpeg"))[:8]
    inputs = np.stack([np.asarray(Image.open(f).convert("RGB").resize((300, 300), Image.Resampling.BILINEAR)) for f in files]) / 255.0
    a = exact.run(inputs.astype(np.float32), ["block5_conv3"]).maps["block5_conv3"]
    b = fast.run(inputs.astype(np.float32), ["block5_conv3"]).maps["block5_conv3"]
    return {"relative_l2": float(np.linalg.norm(a - b) / np.linalg.norm(a)), "relu_flipped": float(((a > 0) != (b > 0)).mean())}


def run_worker(name: str, *args) -> dict:
    code = f"import json, sys; sys.path.insert(0, {str(ROOT / 'bench')!r}); import dataset as b; print(json.dumps(b.worker_{name}(*{args!r})))"
    done = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=6 * 3600)
    if done.returncode:
        raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare_precisions(exact_path: str, fast_path: str) -> dict:
    """bfloat16's summary against float32's: top images kept, channel means, mean heat maps."""
    import numpy as np

    sys.path.insert(0, str(ROOT))
    from actviz.dataset.summary import Summary

    exact, fast = Summary.load(exact_path), Summary.load(fast_path)
    same, total, worst_mean, heat = 0, 0, 0.0, 0.0
    for name in exact.layout.names:
        a, b = exact.layers[name].top.image, fast.layers[name].top.image
        same += sum(len(set(a[:, c]) & set(b[:, c])) for c in range(a.shape[1]))
        total += a.size
        ma, mb = exact.channels(name)["mean"], fast.channels(name)["mean"]
        worst_mean = max(worst_mean, float(np.abs(ma - mb).max() / max(np.abs(ma).max(), 1e-9)))
    for label, (mean, _) in exact.mean_heatmaps().items():
        heat = max(heat, float(np.abs(fast.mean_heatmaps()[label][0] - mean).max()))
    answers = float((exact.predicted == fast.predicted).mean())
    return {"top_kept": same / total, "mean_error": worst_mean, "heat_error": heat, "same_answers": answers}


# --- the benchmark -------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=48, help="images for the speed runs (default 48)")
    parser.add_argument("--batch-size", type=int, default=8, help="batch of the bare call and the pass (default 8)")
    parser.add_argument("--runs", type=int, default=2, help="alternating repetitions of the speed runs (medians reported)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["ray", "gradcam", "memory", "bfloat16"], help="measurements to leave out")
    parser.add_argument("--raw", help="also write every measurement as JSON to this file")
    args = parser.parse_args()
    results: dict = {"load_start": os.getloadavg()[0]}
    precisions = ["float32"] + ([] if "bfloat16" in args.skip else ["bfloat16"])
    with tempfile.TemporaryDirectory(prefix="actviz-bench-") as tmp:
        tmp = Path(tmp)
        model = str(build_model(tmp))
        images = str(make_images(tmp / "images", args.images))
        six = str(make_images(tmp / "six", 6, seed=1))
        for precision in precisions:
            results[f"ceiling_{precision}"] = run_worker("ceiling", precision)["gflops"]
        for run in range(args.runs):  # alternate, so every way sees the same load on a shared machine
            for precision in precisions:
                for kind in ("bare", "dataset"):
                    extra = (args.batch_size, precision) if kind == "bare" else (args.batch_size, "local", False, precision)
                    found = run_worker(kind, model, images, *extra)
                    results.setdefault(f"{kind}_{precision}", []).append(found)
                    print(f"run {run + 1}: {kind} {precision} {found['rate']:.2f} images/s", file=sys.stderr, flush=True)
        if "bfloat16" in precisions:
            results["error"] = run_worker("error", model, images)
            cam = "gradcam" not in args.skip
            results["agreement"] = compare_precisions(*[run_worker("dataset", model, images, args.batch_size, "local", cam, p)["summary"]
                                                        for p in precisions])
        if "memory" not in args.skip:
            command = ["--model", model, "--images", six, "--gradcam", "--sheet-channels", "0"]
            for label, extra in (("default", []), ("batch 4", ["--batch-size", "4"]), ("memory 500", ["--memory", "500"])):
                results[f"command {label}"] = run_worker("command", *command, "--out", str(tmp / label.replace(" ", "_")), *extra)
                print(f"command {label}: {results[f'command {label}']['rss_mb']:.0f} MB", file=sys.stderr, flush=True)
        if "ray" not in args.skip:
            results["ray"] = run_worker("dataset", model, images, args.batch_size, "ray", False, "float32")
        if "gradcam" not in args.skip:
            results["gradcam"] = run_worker("dataset", model, images, args.batch_size, "local", True, "float32")
    results["load_end"] = os.getloadavg()[0]
    if args.raw:
        Path(args.raw).write_text(json.dumps(results, indent=1))
    report(results, args)


def report(results: dict, args: argparse.Namespace) -> None:
    med = lambda key: statistics.median(r["rate"] for r in results[key])  # noqa: E731
    # each pass against the bare call run just before it: on a shared machine the load drifts between runs
    paired = lambda kind, precision: statistics.median(  # noqa: E731
        d["rate"] / b["rate"] for b, d in zip(results["bare_float32"], results[f"{kind}_{precision}"]))
    lines = [
        f"VGG16 to block5_conv3 at 300x300, Flatten/Dense(2) (.h5), {args.images} generated JPEGs, batch {args.batch_size}, "
        f"{os.cpu_count()} CPU cores, load average {results['load_start']:.1f} at the start and {results['load_end']:.1f} at the end, "
        f"{args.runs} alternating run(s), medians:", "",
        "| measurement | images/s | GFLOP/s | against the bare float32 call | target |", "|---|---:|---:|---:|---|",
    ]
    for precision in [name for name in ("float32", "bfloat16") if f"bare_{name}" in results]:
        bare, engine = med(f"bare_{precision}"), med(f"dataset_{precision}")
        ceiling = results[f"ceiling_{precision}"]
        lines += [
            f"| bare compiled call, {precision} | {bare:.2f} | {bare * IMAGE_GFLOP:.0f} (ceiling: a matrix product, {ceiling:.0f}) "
            f"| {paired('bare', precision):.2f} | |",
            f"| `dataset` engine, {precision}, 17 layers reduced | {engine:.2f} | {engine * IMAGE_GFLOP:.0f} | **{paired('dataset', precision):.2f}** "
            f"| {'>= 0.75' if precision == 'float32' else '>= 1.4'} |",
        ]
    if "command default" in results:
        lines += ["", "| `actviz dataset`, 6 images, with Grad-CAM | peak RSS (MB) | time (s) |", "|---|---:|---:|"]
        for label in ("default", "batch 4", "memory 500"):
            found = results[f"command {label}"]
            flag = {"default": "default settings", "batch 4": "`--batch-size 4`", "memory 500": "`--memory 500`"}[label]
            lines.append(f"| {flag} | {found['rss_mb']:,.0f} | {found['seconds']:.1f} |")
    if "agreement" in results:
        agree, error = results["agreement"], results["error"]
        lines += [
            "", "| bfloat16 against float32 | measured |", "|---|---:|",
            f"| block5_conv3, relative L2 error (8 images) | {error['relative_l2']:.2%} |",
            f"| block5_conv3, ReLU decisions flipped | {error['relu_flipped']:.2%} |",
            f"| top images of each channel kept (all 17 layers) | {agree['top_kept']:.1%} |",
            f"| channel means, largest error (share of the layer's largest mean) | {agree['mean_error']:.2%} |",
            f"| mean heat maps, largest difference (0..1) | {agree['heat_error']:.3f} |",
            f"| same answers | {agree['same_answers']:.0%} |",
        ]
    if "ray" in results:
        ray, here = results["ray"], results["dataset_float32"][0]
        lines.append(f"\nRay engine vs local, whole pass (Ray's start-up included): {ray['seconds']:.0f} s vs {here['seconds']:.0f} s "
                     f"({ray['seconds'] / here['seconds']:.2f}x; its first batch after {ray['first_batch']:.0f} s).")
    if "gradcam" in results:
        cam = results["gradcam"]
        lines.append(f"With Grad-CAM: {cam['rate']:.2f} images/s ({med('dataset_float32') / cam['rate']:.1f}x the time without).")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
