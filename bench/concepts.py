"""Benchmark: concept discovery (``actviz.discover_concepts``) on the demo digits and on the user's
architecture: images per second, peak memory, and the time to the first concept.

    python bench/concepts.py                                # both: about 5 minutes on 2 busy cores
    python bench/concepts.py --skip vgg16                   # the demo digits only
    python bench/concepts.py --vgg-images 64 --vgg-crops 256 --skip demo   # a larger VGG16 run

1. **Demo digits**: the bundled demo model (``actviz.open_model()``), the 1,000 held-out demo
   digits (``actviz.dataset.open_source(None)``), the concepts of one class ("digit 7" by
   default) at the default layer, ``--demo-crops`` crops; the reading pass covers every labelled
   digit (to find the model's false alarms for the class).
2. **VGG16 layout**: VGG16 (weights=None, 300 x 300 x 3) to ``block5_conv3``, global average
   pooling, Dense(2), written as a Keras 2 ``.h5`` by tf_keras when installed (``bench/dataset.py``
   builds it, and the X-ray-like generated greyscale JPEGs in two class folders); the concepts of
   "PNEUMONIA" from ``--vgg-crops`` crops of its images, then every image read.

Each run is a fresh process (its peak RSS is its own, read from ``VmHWM``). Reported: crops per
second (each crop one forward pass to the layer), images per second of the reading pass (a
forward pass each; for the class's images and the false alarms also the projection on the
concepts and 2K + 2 passes of the network's head), the whole call's time after the model is
loaded, the **time to the first concept** (until the factorisation has produced the concepts: the
crops pass and NMF), and peak RSS when the concepts are found and at the end (the reading pass
keeps a few numbers per image, so the two should be close whatever the number of images).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(model: str | None, images: str | None, class_choice: str, max_crops: int, batch: int) -> dict:
    """One run in this process: the numbers of the table, as a dict."""
    import actviz

    opened = actviz.open_model(model)
    stamps = []
    start = time.perf_counter()
    found = actviz.discover_concepts(opened, images, class_choice, max_crops=max_crops, batch_size=batch,
                            progress=lambda done, total: stamps.append((time.perf_counter() - start, peak_rss_mb())))
    seconds = time.perf_counter() - start
    stages = found.meta["seconds"]
    first = stages.get("answers", 0.0) + stages["crops"] + stages["factorise"]
    at_first = next((rss for t, rss in stamps if t >= first), stamps[-1][1])  # the reading pass's first report
    read = found.meta["images_read"]  # every image through the reading pass (its others only for the answer)
    return {
        "seconds": seconds, "first_concept": first, "crops": found.meta["crops"], "crops_per_s": found.meta["crops"] / stages["crops"],
        "read": read, "kept": len(found.per_image["index"]), "images_per_s": read / stages["readings"], "class_images": found.count, "concepts": len(found),
        "layer": found.layer, "findings": len(found.findings), "rss_mb": peak_rss_mb(), "rss_first_mb": at_first, "stages": stages,
    }


def run_worker(*args) -> dict:
    code = (f"import json, sys; sys.path.insert(0, {str(ROOT / 'bench')!r}); import concepts as b; "
            f"print(json.dumps(b.worker(*{args!r})))")
    done = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=6 * 3600)
    if done.returncode:
        raise SystemExit(f"the run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def vgg16_setup(folder: Path, count: int) -> tuple[str, str]:
    """The VGG16 model file and a folder of ``count`` generated JPEGs (``bench/dataset.py``'s)."""
    sys.path.insert(0, str(ROOT / "bench"))
    import dataset as data_bench

    return str(data_bench.build_model(folder)), str(data_bench.make_images(folder / "images", count))


def row(name: str, result: dict) -> str:
    return (f"| {name} | {result['layer']} | {result['class_images']:,} / {result['read']:,} | {result['crops']:,} | "
            f"{result['crops_per_s']:.1f} | {result['images_per_s']:.2f} | **{result['first_concept']:.1f} s** | {result['seconds']:.1f} s | "
            f"{result['rss_first_mb']:,.0f} / {result['rss_mb']:,.0f} MB | {result['concepts']} / {result['findings']} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo-class", default="digit 7", help="the demo class (default 'digit 7')")
    parser.add_argument("--demo-crops", type=int, default=1024, help="crops for the demo digits (default 1024, the library's default)")
    parser.add_argument("--vgg-images", type=int, default=16, help="generated images for VGG16, half of them PNEUMONIA (default 16)")
    parser.add_argument("--vgg-crops", type=int, default=64, help="crops for VGG16 (default 64)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per batch (default 32)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["demo", "vgg16"], help="parts to leave out")
    parser.add_argument("--raw", help="also write the measurements as JSON to this file")
    args = parser.parse_args()
    results = {}
    if "demo" not in args.skip:
        results["demo"] = run_worker(None, None, args.demo_class, args.demo_crops, args.batch_size)
        print(f"demo digits: {results['demo']['seconds']:.1f} s", file=sys.stderr)
    if "vgg16" not in args.skip:
        with tempfile.TemporaryDirectory(prefix="actviz-bench-") as tmp:
            model, images = vgg16_setup(Path(tmp), args.vgg_images)
            results["vgg16"] = run_worker(model, images, "PNEUMONIA", args.vgg_crops, args.batch_size)
        print(f"VGG16: {results['vgg16']['seconds']:.1f} s", file=sys.stderr)
    if args.raw:
        Path(args.raw).write_text(json.dumps(results, indent=1))
    lines = [
        f"{os.cpu_count()} CPU cores; one fresh process per row; times after the model is loaded.", "",
        "| data | layer | images of the class / read whole | crops | crops/s | images/s (reading) | time to the first concept | whole call | peak RSS at the first concept / at the end | concepts / findings |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    if "demo" in results:
        lines.append(row(f"demo digits, '{args.demo_class}' (28 x 28 grey, upsampled to 56)", results["demo"]))
    if "vgg16" in results:
        lines.append(row(f"VGG16 300 x 300, 'PNEUMONIA', {args.vgg_images} generated JPEGs", results["vgg16"]))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
