"""Benchmark: every explanation method on the user's architecture, one image and one class, with
the time each announced beforehand against the time it took, with and without its checks; and
Score-CAM / Ablation-CAM batched next to the same computation one mask / one channel at a time.

    python bench/explain.py            # about 40 minutes on 2 cores: every method, its checks, the loops
    python bench/explain.py --quick    # about 5 minutes: Score-CAM on 64 channels, fewer samples and steps
    python bench/explain.py --precision bfloat16 --no-loops   # the same in bfloat16

The model: keras.applications.VGG16(weights=None, include_top=False, input_shape=(300, 300, 3))
truncated after block5_conv3, GlobalAveragePooling2D, Dense(2, softmax); seeded weights. The image:
a seeded smooth picture, pixels / 255. Times are wall-clock seconds for one call after the views
are built (one warm-up Grad-CAM and Saliency); the loops run right after their batched twin, in the
same process, so their ratio holds on a shared CPU even when the absolute times do not. "Announced"
is what ``explainers.cost.method_seconds`` and ``explainers.checks.checks_estimate`` said before
the call (the command line and the dashboard show it); the checks run with their default depths
(as many as fit in ``CHECK_SECONDS``). Prints a Markdown table and one JSON line.
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
    parser.add_argument("--methods", nargs="+", help="only these methods (default: all)")
    parser.add_argument("--no-checks", action="store_true", help="leave out the checks")
    parser.add_argument("--no-loops", action="store_true", help="leave out the one-at-a-time loops of Score-CAM and Ablation-CAM")
    parser.add_argument("--samples", type=int, help="SmoothGrad's noisy copies (default: the library's 20; 4 with --quick)")
    parser.add_argument("--steps", type=int, help="Integrated Gradients' steps (default: the library's 50; 8 with --quick)")
    parser.add_argument("--precision", choices=("float32", "bfloat16"), default="float32")
    args = parser.parse_args()

    from actviz.core.precision import probe_at
    from actviz.core.passes import class_logits, pass_seconds
    from actviz.explainers.checks import checks_estimate, run_checks
    from actviz.explainers.cost import method_seconds
    from actviz.explainers.explain import explain
    from actviz.core.probe import Probe

    load = os.getloadavg()[0]
    probe = probe_at(Probe(build_model(args.size)), args.precision)
    batch = picture(args.size)
    klass = 1
    # a warm dashboard has built the views, traced the compiled passes and timed one pass once
    explain(probe, batch, method="gradcam", class_index=klass)
    explain(probe, batch, method="saliency", class_index=klass)
    class_logits(probe, batch)
    pass_seconds(probe, batch.shape[1:])

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
        announced = method_seconds(probe, batch.shape, method, chosen)
        seconds, result = timed(lambda: explain(probe, batch, method=method, class_index=klass, **chosen))
        row = {"method": method, "settings": chosen or "defaults", "seconds": seconds, "announced": announced}
        if not args.no_loops:
            row.update(loops(probe, batch, method, result, seconds, klass, quick))
        if not args.no_checks:
            planned = checks_estimate(probe, batch, result, steps=8 if quick else 32)
            took, checks = timed(lambda: run_checks(probe, batch, result, steps=8 if quick else 32))
            row.update(checks_announced=planned.seconds, checks=took, depths=len(checks.randomisation.layers), cascade=planned.cascade)
        rows.append(row)
        figures[method] = row
        print(f"{method}: announced {announced:.1f} s, took {seconds:.2f} s" + (f" (loop {row['loop']:.2f} s, x{row['ratio']:.2f})" if "loop" in row else "")
              + (f"; checks announced {row['checks_announced']:.0f} s, took {row['checks']:.0f} s" if "checks" in row else ""), file=sys.stderr, flush=True)

    print(f"\nVGG16 to block5_conv3, {args.size}x{args.size}, {args.precision}, one image, class {klass}; load average {load:.1f} "
          f"at the start, {os.getloadavg()[0]:.1f} at the end ({os.cpu_count()} CPUs).\n")
    print("| method | settings | announced (s) | took (s) | one at a time (s) | batched speed-up | checks: announced / took (s) | randomised depths |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        loop = f"{row['loop']:.1f}" if "loop" in row else ""
        ratio = f"x{row['ratio']:.1f}" if "ratio" in row else ""
        what = row["settings"] if isinstance(row["settings"], str) else ", ".join(f"{k}={v}" for k, v in row["settings"].items())
        checks = f"{row['checks_announced']:.0f} / {row['checks']:.0f}" if "checks" in row else ""
        depths = f"{row['depths']} of {row['cascade']}" if "checks" in row else ""
        print(f"| {row['method']} | {what} | {row['announced']:.2f} | {row['seconds']:.2f} | {loop} | {ratio} | {checks} | {depths} |")
    if "ablationcam" in figures and "stage" in figures["ablationcam"]:
        ablation = figures["ablationcam"]
        print(f"| ablationcam, the ablation stage alone | 512 channels | | {ablation['stage']:.2f} | {ablation['stage_loop']:.1f} "
              f"| x{ablation['stage_ratio']:.1f} | | |")
    print()
    print(json.dumps({"size": args.size, "quick": quick, "precision": args.precision, "load_start": load, "rows": figures}, default=str))
    return 0


def loops(probe, batch, method: str, result, seconds: float, klass: int, quick: bool) -> dict:
    """Ablation-CAM and Score-CAM against the same computation one channel / one mask at a time."""
    from actviz.core.target import Target
    from actviz.explainers.ablationcam import ablation_weights
    from actviz.explainers.cam import first_pass

    layer = result.layer
    found = {}
    if method == "ablationcam":
        # whole call against the first pass plus the loop; and the ablation stage alone, both ways
        loop_seconds, (activation, scores) = timed(lambda: (lambda a: (a, ablation_loop(probe, a, layer, klass)))(first_pass(probe, batch, layer)[0]))
        np.testing.assert_allclose(result.details["ablated_scores"][0], scores, rtol=1e-4, atol=1e-5)
        logits = first_pass(probe, batch, layer)[1]
        stage, _ = timed(lambda: ablation_weights(probe, batch, layer, activation, logits, Target(np.array([klass]))))
        stage_loop, _ = timed(lambda: ablation_loop(probe, activation, layer, klass))
        found.update(loop=loop_seconds, ratio=loop_seconds / seconds, stage=stage, stage_loop=stage_loop, stage_ratio=stage_loop / stage)
    if method == "scorecam":
        activation = first_pass(probe, batch, layer)[0]
        used = np.nonzero(result.weights[0])[0] if quick else np.arange(activation.shape[-1])
        constant = int((activation[0].max(axis=(0, 1)) == activation[0].min(axis=(0, 1))).sum())
        loop_seconds, weights = timed(lambda: score_cam_loop(probe, batch, first_pass(probe, batch, layer)[0], used, klass))
        np.testing.assert_allclose(result.weights[0, used], [weights[k] for k in used], rtol=1e-3, atol=1e-6)
        found.update(loop=loop_seconds, ratio=loop_seconds / seconds, channels=len(used), constant_channels=constant)
    return found


if __name__ == "__main__":
    raise SystemExit(main())
