"""Benchmark: robust feature visualisation against plain gradient ascent, side by side in one run.

    python bench/featurevis.py            # the full run (long on a shared 2-core CPU: VGG16 at 300x300)
    python bench/featurevis.py --quick    # fewer channels, steps and warps: a few minutes

For 16 channels of a middle and a deep layer of two models, patterns are made with both methods at
the same number of steps, then measured:

- **robustness**: the channel's activation on the pattern after a random shift of up to 8 pixels,
  a 0.9-1.1 scale and a rotation of up to 5 degrees, as a fraction of its activation on the pattern
  as it is, averaged over 20 warps (the same warps for both methods);
- **high-frequency energy**: the share of the pattern's spectral power above a quarter cycle per
  pixel (the top half of spatial frequencies), mean removed;
- **activation reached**: the channel's mean activation on the (untransformed) pattern;
- **time** for one batch of 16 patterns, all steps, and per step.

Means are over the channels that neither method reports dead (a dead channel has no pattern).

The models:

1. the bundled demo (``actviz/demo/digits_vgg.keras``: 56x56x1, trained on digits): block2_conv2
   (middle) and block3_conv2 (deep);
2. the VGG16 layout of the user's notebook at 300x300x3 (``keras.applications.VGG16(weights=None,
   include_top=False)``, truncated after block5_conv3, global average pooling, 10-class softmax).
   Random weights give meaningless filters, and no trained VGG16 weights may be downloaded, so the
   demo's *trained* filters are transplanted, offline and in a second: every VGG16 convolution
   that has a counterpart in the demo (block1_conv1 .. block3_conv2) gets the demo's kernel,
   replicated over the wider layer (VGG channel j is demo channel j mod C, inputs split evenly
   over their copies, the grey first layer spread over R, G and B); the convolutions the demo does
   not have (block3_conv3, block4_*, block5_*) pass their input through (a centre-tap identity,
   which a ReLU leaves unchanged), and the classifier is the demo's, split over the copies. The
   network then reads digits as the demo does (checked below on a 56x56 twin: feature maps equal
   to the demo's), at the cost of VGG16 at 300x300. Middle: block2_conv2; deep: block5_conv3.

Writes docs/featurevis_plain.png and docs/featurevis_robust.png (the same 16 channels of the
demo's deep layer by each method) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

#: The demo's convolutions, in order, and the VGG16 layers that receive them.
TRANSPLANT = {
    "block1_conv1": "block1_conv1", "block1_conv2": "block1_conv2", "block2_conv1": "block2_conv1",
    "block2_conv2": "block2_conv2", "block3_conv1": "block3_conv1", "block3_conv2": "block3_conv2",
}


def vgg16_with_demo_filters(size: int = 300):
    """The notebook's VGG16 layout (weights=None, truncated after block5_conv3, GAP, Dense(10,
    softmax)) at ``size`` x ``size`` x 3, carrying the demo's trained filters (see the module text)."""
    import keras

    demo = _demo_model()
    base = keras.applications.VGG16(weights=None, include_top=False, input_shape=(size, size, 3))
    features = base.get_layer("block5_conv3").output
    x = keras.layers.GlobalAveragePooling2D(name="gap")(features)
    outputs = keras.layers.Dense(10, activation="softmax", name="predictions")(x)
    model = keras.Model(base.input, outputs, name=f"vgg16_digits_{size}")
    for layer in base.layers:
        if type(layer).__name__ != "Conv2D":
            continue
        kernel, bias = layer.get_weights()
        if layer.name in TRANSPLANT:
            source_kernel, source_bias = demo.get_layer(TRANSPLANT[layer.name]).get_weights()
            layer.set_weights(_spread(source_kernel, source_bias, kernel.shape))
        else:
            identity = np.zeros_like(kernel)
            identity[1, 1, np.arange(kernel.shape[3]) % kernel.shape[2], np.arange(kernel.shape[3])] = 1.0
            layer.set_weights([identity, np.zeros_like(bias)])
    weights, bias = demo.get_layer("predictions").get_weights()
    copies = features.shape[-1] // weights.shape[0]
    model.get_layer("predictions").set_weights([np.tile(weights, (copies, 1)) / copies, bias])
    return model


def _demo_model():
    from actviz.safety.models import open_model

    return open_model(None).probe.model


def _spread(kernel: np.ndarray, bias: np.ndarray, shape: tuple) -> list[np.ndarray]:
    """A (3, 3, ci, co) kernel spread over a wider (3, 3, CI, CO) one: output j is output j mod co;
    each input i mod ci's copies share its weight equally (they carry the same values)."""
    inputs = np.arange(shape[2]) % kernel.shape[2]
    outputs = np.arange(shape[3]) % kernel.shape[3]
    copies = shape[2] / kernel.shape[2]
    return [(kernel[:, :, inputs][:, :, :, outputs] / copies).astype(np.float32), bias[outputs].astype(np.float32)]


def check_transplant() -> float:
    """The largest difference between the demo's block3_conv2 maps and the VGG16 twin's (at 56x56,
    on the demo's sample digits, grey copied to R, G, B), relative to the largest value."""
    from PIL import Image

    from actviz.demo import samples

    demo = _demo_model()
    twin = vgg16_with_demo_filters(56)
    import keras

    images = np.stack([np.asarray(Image.open(path), np.float32)[..., None] / 255.0 for path in samples()])
    ours = keras.Model(twin.input, twin.get_layer("block3_conv2").output)(np.repeat(images, 3, axis=-1))
    theirs = keras.Model(demo.input, demo.get_layer("block3_conv2").output)(images)
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    copies = ours.shape[-1] // theirs.shape[-1]
    return float(np.abs(ours - np.tile(theirs, (1, 1, 1, copies))).max() / np.abs(theirs).max())


def measure(probe, layer: str, channels: list[int], *, steps: int, warps: int) -> dict:
    """Both methods on the same channels and steps: patterns, robustness, high frequency, activation, time."""
    from actviz.featurevis.measures import high_frequency_share, robustness
    from actviz.featurevis.patterns import find_patterns

    results = {}
    for method in ("plain", "robust"):
        started = time.perf_counter()
        patterns = find_patterns(probe, layer, channels, method=method, steps=steps, preprocessing="rescale")
        seconds = time.perf_counter() - started
        results[method] = {
            "patterns": patterns, "seconds": seconds,
            "robustness": robustness(probe, layer, channels, patterns.inputs, transforms=warps, seed=1),
            "high": high_frequency_share(patterns.inputs),
        }
    alive = ~results["plain"]["patterns"].dead & ~results["robust"]["patterns"].dead
    for method, row in results.items():
        row["alive"] = alive
        row["dead"] = int(row["patterns"].dead.sum())
        row["mean_robustness"] = float(np.nanmean(row["robustness"][alive])) if alive.any() else float("nan")
        row["mean_high"] = float(np.mean(row["high"][alive])) if alive.any() else float("nan")
        row["mean_activation"] = float(np.mean(row["patterns"].activation[alive])) if alive.any() else float("nan")
    return results


def write_pictures(results: dict, folder: Path) -> None:
    from actviz.draw.figures import picture_png, tile_images

    folder.mkdir(parents=True, exist_ok=True)
    for method in ("plain", "robust"):
        images = results[method]["patterns"].images
        zoom = max(1, 128 // images.shape[1])
        (folder / f"featurevis_{method}.png").write_bytes(picture_png(tile_images(images, per_row=8, gap=4, zoom=zoom)))


def table(rows: list[tuple[str, str, int, int, dict]]) -> str:
    lines = [
        "| model | layer | channels x steps | method | robustness (kept after warp) | high-frequency share | "
        "activation reached | robust / plain activation | dead | seconds per batch | seconds per step |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for model, layer, count, steps, results in rows:
        plain = results["plain"]["mean_activation"]
        for method in ("plain", "robust"):
            row = results[method]
            ratio = f"{row['mean_activation'] / plain:.2f}" if method == "robust" and plain > 0 else ""
            lines.append(
                f"| {model} | {layer} | {count} x {steps} | {method} | {row['mean_robustness']:.3f} | {row['mean_high']:.3f} | "
                f"{row['mean_activation']:.3g} | {ratio} | {row['dead']} | {row['seconds']:.1f} | {row['seconds'] / steps:.2f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="demo: 16 channels, 64 steps; VGG16: 4 channels, 16 steps; 8 warps")
    parser.add_argument("--skip-vgg", action="store_true", help="the demo model only")
    parser.add_argument("--docs", default=str(ROOT / "docs"), help="where the two pictures go (default: docs/)")
    args = parser.parse_args()
    from actviz.cli import import_keras_quietly

    import_keras_quietly()
    from actviz.safety.models import open_model
    from actviz.core.probe import Probe

    demo_steps, vgg_steps, vgg_count, warps = (64, 16, 4, 8) if args.quick else (128, 32, 16, 20)
    rows = []
    demo = open_model(None).probe
    for layer in ("block2_conv2", "block3_conv2"):
        results = measure(demo, layer, list(range(16)), steps=demo_steps, warps=warps)
        rows.append(("demo 56x56x1", layer, 16, demo_steps, results))
        print(table(rows[-1:]).splitlines()[-2:], file=sys.stderr, flush=True)
    write_pictures(rows[-1][4], Path(args.docs))
    if not args.skip_vgg:
        error = check_transplant()
        print(f"transplant check: VGG16 twin's block3_conv2 equals the demo's within {error:.1e} (relative)", file=sys.stderr)
        vgg = Probe(vgg16_with_demo_filters(300))
        for layer in ("block2_conv2", "block5_conv3"):
            results = measure(vgg, layer, list(range(vgg_count)), steps=vgg_steps, warps=warps)
            rows.append(("VGG16 300x300x3, demo filters", layer, vgg_count, vgg_steps, results))
            print(table(rows[-1:]).splitlines()[-2:], file=sys.stderr, flush=True)
    print(f"\n{'quick run' if args.quick else 'full run'}, {os.cpu_count()} CPUs, warps per pattern: {warps}\n")
    print(table(rows))


if __name__ == "__main__":
    main()
