"""Benchmark: every architecture of ``keras.applications`` (and keras_hub's ViT-B/16) at 224 x 224, as
a user who fine-tuned it would open it in actviz, against plain Keras on the same file and input.

    python bench/architectures.py                      # every architecture, about 2 hours on 2 cores
    python bench/architectures.py ResNet50 ViT-B/16    # some of them
    python bench/architectures.py --table              # the Markdown table of the results so far

Each model: the architecture with ``weights=None`` (seeded; nothing downloaded),
``include_top=False``, global average pooling and ``Dense(3, softmax)``, saved as ``.keras``;
ViT-B/16 is keras_hub's ``ViTImageClassifier`` (patches of 16, 12 blocks of 12 heads, 768 wide).
Three processes per architecture, so that each peak resident memory (RSS) is its own: one builds
and saves the file; one is plain Keras (``keras.saving.load_model``, then ``predict`` on one image,
twice: the first call builds its graph); one is actviz:

- open: the safe path (``load_model``: the scan in a child, the policy, the dry build, the load)
  and the trace (``Probe``), in seconds;
- first grid: the first layer shown by default, its maps computed and tiled (``feature_grid``);
- Grad-CAM: one image at the default layer (``LayerTable.default_cam_layer``), the first call;
- Score-CAM: the same layer, the ``--channels`` channels whose maps vary most (Faster Score-CAM;
  64 by default: all 1,024 to 4,032 channels of these layers would take hours per architecture;
  every channel is one forward pass, so the time grows in proportion).

The image is a seeded random picture, float32 in 0..1. Results go to ``--out`` (JSON lines; an
architecture already there is not run again, so a run can be resumed), then the table is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

SIZE = 224
VIT = "ViT-B/16"
#: Loading a 1.4 GB model (ConvNeXtXLarge) takes about 7 GB at its peak: more than the default budget.
MODEL_MB = "16384"


def architectures() -> list[str]:
    import keras

    return sorted(name for name in dir(keras.applications) if name[:1].isupper()) + [VIT]


def image() -> np.ndarray:
    return np.random.default_rng(0).random((1, SIZE, SIZE, 3), dtype=np.float32)


def peak_mb() -> float:
    """This process's peak resident memory, in MB (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(name: str, path: str) -> dict:
    """Build the fine-tuned model and save it at ``path``: its parameters and seconds."""
    import keras

    keras.utils.set_random_seed(0)
    started = time.perf_counter()
    if name == VIT:
        import keras_hub

        backbone = keras_hub.models.ViTBackbone(image_shape=(SIZE, SIZE, 3), patch_size=16, num_layers=12, num_heads=12,
                                                hidden_dim=768, mlp_dim=3072)
        model = keras_hub.models.ViTImageClassifier(backbone=backbone, num_classes=3, activation="softmax")
    else:
        base = getattr(keras.applications, name)(weights=None, include_top=False, input_shape=(SIZE, SIZE, 3))
        pooled = keras.layers.GlobalAveragePooling2D()(base.output)
        model = keras.Model(base.input, keras.layers.Dense(3, activation="softmax")(pooled))
    built = time.perf_counter() - started
    started = time.perf_counter()
    model.save(path)
    return {"parameters": int(model.count_params()), "build_s": built, "save_s": time.perf_counter() - started,
            "file_mb": os.path.getsize(path) / 1e6}


def plain(name: str, path: str) -> dict:
    """Plain Keras on the file: load, then predict one image twice."""
    import keras

    if name == VIT:
        import keras_hub  # noqa: F401 -- its classes registered, as a user's script would have them
    started = time.perf_counter()
    model = keras.saving.load_model(path)
    loaded = time.perf_counter() - started
    x = image()
    started = time.perf_counter()
    model.predict(x, verbose=0)
    first = time.perf_counter() - started
    started = time.perf_counter()
    model.predict(x, verbose=0)
    return {"keras_load_s": loaded, "keras_predict_first_s": first, "keras_predict_s": time.perf_counter() - started,
            "keras_peak_mb": peak_mb()}


def actviz(path: str, channels: int) -> dict:
    """actviz on the file: open and trace, the first grid, Grad-CAM and Score-CAM at the default layer."""
    from actviz.core.probe import Probe
    from actviz.draw.grids import feature_grid
    from actviz.explainers.explain import explain
    from actviz.safety.loading import load_model

    x = image()
    started = time.perf_counter()
    probe = Probe(load_model(path).model)
    opened = time.perf_counter() - started
    first = probe.default_layers[0].name
    started = time.perf_counter()
    feature_grid(probe.run(x, [first]).maps[first][0])
    grid = time.perf_counter() - started
    layer, reason = probe.table.default_cam_layer()
    started = time.perf_counter()
    explain(probe, x, method="gradcam")
    gradcam = time.perf_counter() - started
    used = min(channels, layer.channels)
    started = time.perf_counter()
    explain(probe, x, method="scorecam", channels=used)
    return {
        "open_s": opened, "first_grid_s": grid, "gradcam_s": gradcam, "scorecam_s": time.perf_counter() - started,
        "scorecam_channels": used, "layer": layer.name, "layer_map": list(layer.output_shape), "reason": reason,
        "peak_mb": peak_mb(),
    }


def in_child(step: str, name: str, path: str, channels: int) -> dict:
    """Run one step in a fresh process: its own memory, its own peak."""
    command = [sys.executable, __file__, "--step", step, "--path", path, "--channels", str(channels), name]
    env = {**os.environ, "ACTVIZ_MAX_MODEL_MB": MODEL_MB}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        return {"error": f"{step}: " + " ".join(done.stderr.strip().splitlines()[-1:])}
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(name: str, channels: int) -> dict:
    row = {"name": name, "load_start": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="bench-arch-") as folder:
        path = os.path.join(folder, "model.keras")
        for step in ("build", "plain", "actviz"):
            row.update(in_child(step, name, path, channels))
            if "error" in row:
                break
    row["load_end"] = os.getloadavg()[0]
    return row


def table(rows: list[dict]) -> str:
    lines = [
        "| architecture | parameters | default CAM layer (map) | Keras: load / predict s (first, then) / peak MB "
        "| actviz: open s | first grid s | Grad-CAM s | Score-CAM s (channels) | peak MB |",
        "|---|---:|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['name']} | | {row['error']} | | | | | | |")
            continue
        shape = " x ".join(str(d) for d in row["layer_map"][:2])
        lines.append(
            f"| {row['name']} | {row['parameters'] / 1e6:.1f} M | {row['layer']} ({shape}) | {row['keras_load_s']:.1f} / "
            f"{row['keras_predict_first_s']:.1f}, {row['keras_predict_s']:.2f} / {row['keras_peak_mb']:,.0f} | {row['open_s']:.1f} "
            f"| {row['first_grid_s']:.1f} | {row['gradcam_s']:.1f} | {row['scorecam_s']:.1f} ({row['scorecam_channels']}) "
            f"| {row['peak_mb']:,.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="architectures (default: all)")
    parser.add_argument("--channels", type=int, default=64, help="Score-CAM: channels used (default 64)")
    parser.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "actviz-bench-architectures.jsonl"),
                        help="results, one JSON line per architecture (default: in the temporary folder)")
    parser.add_argument("--table", action="store_true", help="only print the table of the results so far")
    parser.add_argument("--step", choices=("build", "plain", "actviz"), help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:  # inside a child: one step, one JSON line
        found = {"build": lambda: build(args.names[0], args.path), "plain": lambda: plain(args.names[0], args.path),
                 "actviz": lambda: actviz(args.path, args.channels)}[args.step]()
        print(json.dumps(found))
        return
    out = Path(args.out)
    done = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    if not args.table:
        for name in args.names or architectures():
            if any(row["name"] == name for row in done):
                continue
            row = run(name, args.channels)
            done.append(row)
            with out.open("a") as handle:
                handle.write(json.dumps(row) + "\n")
            print(f"{name}: {json.dumps(row)}", file=sys.stderr, flush=True)
    print(table(done))


if __name__ == "__main__":
    main()
