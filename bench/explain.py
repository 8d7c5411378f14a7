"""Benchmark: every explanation method on the user's architecture, one image and one class, and
Score-CAM / Ablation-CAM batched next to the same computation one mask / one channel at a time.

    python bench/explain.py            # about 15 minutes on 2 busy cores
    python bench/explain.py --quick    # about 3 minutes: Score-CAM on 64 channels, fewer samples and steps

The model: keras.applications.VGG16(weights=None, include_top=False, input_shape=(300, 300, 3))
truncated after block5_conv3, GlobalAveragePooling2D, Dense(2, softmax); seeded weights. The image:
a seeded smooth picture, pixels / 255. Times are wall-clock seconds for one call after the views
are built (one warm-up Grad-CAM and Saliency); the loops run right after their batched twin, in the
same process, so their ratio holds on a shared CPU even when the absolute times do not. Prints a
Markdown table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402


def build_model(size: int):
    import keras

    keras.utils.set_random_seed(0)
    base = keras.applications.VGG16(weights=None, include_top=False, input_shape=(size, size, 3))
    x = keras.layers.GlobalAveragePooling2D()(base.get_layer("block5_conv3").output)
    return keras.Model(base.input, keras.layers.Dense(2, activation="softmax")(x))


def picture(size: int) -> np.ndarray:
    """A seeded smooth image (blobs and stripes), float32 (1, size, size, 3) in 0..1."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(1)
    noise = gaussian_filter(rng.random((size, size, 3)), sigma=(size / 30, size / 30, 0))
    y, x = np.mgrid[0:size, 0:size] / size
    stripes = 0.5 + 0.5 * np.sin(12 * x + 5 * y)[..., None]
    image = 0.6 * (noise - noise.min()) / np.ptp(noise) + 0.4 * stripes
    return image[None].astype(np.float32)


def timed(call):
    start = time.perf_counter()
    result = call()
    return time.perf_counter() - start, result


def score_cam_loop(probe, batch, activation, channels, class_index):
    """Score-CAM one masked image per pass: scipy's zoom (order 1) for the mask, as tf-keras-vis."""
    from scipy.ndimage import zoom

    from actviz.core.passes import class_logits
    from actviz.core.target import Target

    height, width = batch.shape[1:3]
    h, w = activation.shape[1:3]
    weights = {}
    for k in channels:
        up = zoom(activation[0, :, :, k], (height / h, width / w), order=1)
        mask = (up - up.min()) / (up.max() - up.min() + 1e-7)
        logits = class_logits(probe, batch * mask[None, :, :, None].astype(np.float32))
        weights[k] = float(Target(np.array([class_index])).probabilities(logits)[0])
    return weights


def ablation_loop(probe, activation, name, class_index):
    """Ablation-CAM one switched-off channel per pass, through the same part of the network."""
    from actviz.core.target import Target

    head, takes_image = probe.head_model(name)
    assert not takes_image
    scores = []
    for k in range(activation.shape[-1]):
        off = activation.astype(np.float32).copy()
        off[..., k] = 0
        logits, _ = head(off, training=False)
        scores.append(float(Target(np.array([class_index])).scores(np.asarray(logits))[0]))
    return scores


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Score-CAM on 64 channels, fewer samples and steps, shorter checks")
    parser.add_argument("--size", type=int, default=300)
    parser.add_argument("--methods", nargs="+", help="only these methods (default: all); the checks run with gradcam only")
    parser.add_argument("--no-checks", action="store_true", help="leave out the timing of the checks")
    parser.add_argument("--samples", type=int, help="SmoothGrad's noisy copies (default: the library's 20; 4 with --quick)")
    parser.add_argument("--steps", type=int, help="Integrated Gradients' steps (default: the library's 50; 8 with --quick)")
    args = parser.parse_args()

    from actviz.core.target import Target
    from actviz.explainers.ablationcam import ablation_weights
    from actviz.explainers.cam import first_pass
    from actviz.explainers.checks import run_checks
    from actviz.explainers.explain import explain
    from actviz.core.passes import ablated_logits, class_logits
    from actviz.core.probe import Probe

    load = os.getloadavg()[0]
    probe = Probe(build_model(args.size))
    batch = picture(args.size)
    layer = "block5_conv3"
    klass = 1
    # a warm dashboard has built the views and traced the compiled passes once
    explain(probe, batch, method="gradcam", class_index=klass)
    explain(probe, batch, method="saliency", class_index=klass)
    class_logits(probe, batch)
    ablated_logits(probe, layer, first_pass(probe, batch, layer)[0][0], np.array([0]))

    quick = args.quick
    settings = {
        "scorecam": {"channels": 64} if quick else {},
        "smoothgrad": {"samples": args.samples or 4} if quick or args.samples else {},
        "integrated-gradients": {"steps": args.steps or 8} if quick or args.steps else {},
        "occlusion": {"patch": 75} if quick else {},
    }
    rows, figures = [], {}
    every = ("gradcam", "gradcam++", "hirescam", "xgradcam", "layercam", "eigencam", "saliency", "gradient-x-input",
             "smoothgrad", "integrated-gradients", "occlusion", "ablationcam", "scorecam")
    for method in [m for m in every if not args.methods or m in args.methods]:
        chosen = settings.get(method, {})
        seconds, result = timed(lambda: explain(probe, batch, method=method, class_index=klass, **chosen))
        row = {"method": method, "settings": chosen or "defaults", "seconds": seconds}
        if method == "ablationcam":
            # whole call against the first pass plus the loop; and the ablation stage alone, both ways
            loop_seconds, (activation, scores) = timed(lambda: (lambda a: (a, ablation_loop(probe, a, layer, klass)))(first_pass(probe, batch, layer)[0]))
            np.testing.assert_allclose(result.details["ablated_scores"][0], scores, rtol=1e-4, atol=1e-5)
            logits = first_pass(probe, batch, layer)[1]
            stage, _ = timed(lambda: ablation_weights(probe, batch, layer, activation, logits, Target(np.array([klass]))))
            stage_loop, _ = timed(lambda: ablation_loop(probe, activation, layer, klass))
            row.update(loop=loop_seconds, ratio=loop_seconds / seconds, stage=stage, stage_loop=stage_loop, stage_ratio=stage_loop / stage)
        if method == "scorecam":
            activation = first_pass(probe, batch, layer)[0]
            used = np.nonzero(result.weights[0])[0] if quick else np.arange(activation.shape[-1])
            constant = int((activation[0].max(axis=(0, 1)) == activation[0].min(axis=(0, 1))).sum())
            loop_seconds, weights = timed(lambda: score_cam_loop(probe, batch, first_pass(probe, batch, layer)[0], used, klass))
            np.testing.assert_allclose(result.weights[0, used], [weights[k] for k in used], rtol=1e-3, atol=1e-6)
            row.update(loop=loop_seconds, ratio=loop_seconds / seconds, channels=len(used), constant_channels=constant)
        rows.append(row)
        figures[method] = row
        print(f"{method}: {seconds:.2f} s" + (f" (loop {row['loop']:.2f} s, x{row['ratio']:.2f})" if "loop" in row else ""), file=sys.stderr, flush=True)

    if not args.no_checks:
        cam = explain(probe, batch, method="gradcam", class_index=klass)
        check_seconds, checks = timed(lambda: run_checks(probe, batch, cam, steps=8 if quick else 32, depths=3 if quick else None))
        figures["checks_gradcam"] = {"seconds": check_seconds, "depths": len(checks.randomisation.layers)}

    print(f"\nVGG16 to block5_conv3, {args.size}x{args.size}, one image, class {klass}; load average {load:.1f} at the start, "
          f"{os.getloadavg()[0]:.1f} at the end ({os.cpu_count()} CPUs).\n")
    print("| method | settings | time (s) | one at a time (s) | batched speed-up | under 10 s |")
    print("|---|---|---:|---:|---:|:---:|")
    for row in rows:
        loop = f"{row['loop']:.1f}" if "loop" in row else ""
        ratio = f"x{row['ratio']:.1f}" if "ratio" in row else ""
        limit = "" if row["method"] in ("scorecam", "ablationcam") else ("yes" if row["seconds"] < 10 else "no")
        what = row["settings"] if isinstance(row["settings"], str) else ", ".join(f"{k}={v}" for k, v in row["settings"].items())
        print(f"| {row['method']} | {what} | {row['seconds']:.2f} | {loop} | {ratio} | {limit} |")
    if "ablationcam" in figures:
        ablation = figures["ablationcam"]
        print(f"| ablationcam, the ablation stage alone | 512 channels | {ablation['stage']:.2f} | {ablation['stage_loop']:.1f} "
              f"| x{ablation['stage_ratio']:.1f} | |")
    if "checks_gradcam" in figures:
        print(f"| checks of Grad-CAM | curves {'8' if quick else '32'} steps, {figures['checks_gradcam']['depths']} randomised depths "
              f"| {figures['checks_gradcam']['seconds']:.1f} | | | |")
    print()
    print(json.dumps({"size": args.size, "quick": quick, "load_start": load, "rows": figures}, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
