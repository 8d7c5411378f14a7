"""Benchmark: several visitors on one dashboard server, before and after "Shared safely".

    python bench/sessions.py                 # 1, 2 and 8 sessions on the VGG16 layout (about 10 minutes on 2 cores)
    python bench/sessions.py --quick         # the demo model, 1 and 2 sessions

Each run is a fresh process that opens N sessions of app.py on one server
(streamlit.testing.v1.AppTest: every session has its own session state and
shares the server's caches, as visitors of one `streamlit run` do), each
session on its own image of the user's architecture (VGG16 with weights=None,
300x300x3, truncated after block5_conv3, GlobalAveragePooling2D, Dense(2),
saved as .h5 by tf_keras when it is installed). The sessions then take turns:
every session changes its colour map, then its layers, round after round.
Measured: forward passes per interaction, the server time of each change
(p50 and p95), and the process's peak and final memory (RSS).

The same script runs against the app before this change (a git worktree of
``--before``, default the commit before "Shared safely") when that checkout
exists or can be made, side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEFORE = "a5bdb99"


def rss_mb(kind: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(kind + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def worker(app_root: str, model: str, samples: str, sessions: int, rounds: int) -> dict:
    """N sessions of ``app_root``/app.py taking turns; prints one JSON line."""
    os.chdir(app_root)
    sys.path.insert(0, app_root)
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    if model != "demo":
        os.environ["ACTVIZ_MODEL"] = model
        os.environ["ACTVIZ_SAMPLES"] = samples  # the "before" app ignores it and gets uploads instead
    from streamlit.testing.v1 import AppTest

    probe_module = _probe_module()
    calls = []
    original = probe_module.Probe.run

    def counting(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    probe_module.Probe.run = counting
    images = sorted(Path(samples).iterdir())
    apps = []
    start = time.perf_counter()
    for index in range(sessions):
        at = AppTest.from_file(str(Path(app_root) / "app.py"), default_timeout=900).run()
        _choose_image(at, images[index % len(images)], index)
        assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
        apps.append(at)
    opened = time.perf_counter() - start
    before = len(calls)
    colour, layer = [], []
    cmaps = ["magma", "gray", "viridis", "inferno"]
    for turn in range(rounds):
        for at in apps:
            t = time.perf_counter()
            at.sidebar.selectbox(key="cmap").set_value(cmaps[turn % len(cmaps)]).run()
            colour.append(time.perf_counter() - t)
        for at in apps:
            chooser = at.sidebar.multiselect[0]
            options = list(chooser.options)
            t = time.perf_counter()
            chooser.set_value([options[(turn + 1) % len(options)]]).run()
            layer.append(time.perf_counter() - t)
            assert not at.exception and not at.error, at.exception
    interactions = len(colour) + len(layer)
    return {
        "sessions": sessions, "open_s": opened, "passes_to_open": before,
        "passes_per_interaction": (len(calls) - before) / interactions,
        "colour_p50_ms": 1000 * statistics.median(colour), "colour_p95_ms": 1000 * _p95(colour),
        "layer_p50_ms": 1000 * statistics.median(layer), "layer_p95_ms": 1000 * _p95(layer),
        "rss_final_mb": rss_mb("VmRSS"), "rss_peak_mb": rss_mb("VmHWM"),
    }


def _probe_module():
    try:
        import actviz.core.probe as module  # this version
    except ImportError:
        import actviz.graph as module  # the version before the package was split
    return module


def _choose_image(at, path: Path, index: int) -> None:
    """Sample images where the app offers them; otherwise upload the file (the app before this change)."""
    try:
        chooser = at.sidebar.selectbox(key="sample")
        labels = list(chooser.options)
        if labels and path.stem.replace("_", " ") in labels:
            chooser.set_value(path.stem.replace("_", " ")).run()
            return
    except KeyError:
        pass
    at.sidebar.radio(key="image_source").set_value("Upload an image").run()
    at.sidebar.file_uploader(key="image_upload").set_value((path.name, path.read_bytes(), "image/png")).run()


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def build_user_model(folder: Path) -> str:
    """VGG16 (weights=None) 300x300x3 to block5_conv3, GAP, Dense(2), saved as .h5 (by tf_keras if installed)."""
    path = folder / "vgg16_custom.09-0.9650.h5"
    code = (
        "import os; os.environ['TF_CPP_MIN_LOG_LEVEL']='3'\n"
        "try:\n import tf_keras as k\nexcept ImportError:\n import keras as k\n"
        "k.utils.set_random_seed(9)\n"
        "base = k.applications.VGG16(weights=None, include_top=False, input_shape=(300, 300, 3))\n"
        "x = k.layers.GlobalAveragePooling2D()(base.get_layer('block5_conv3').output)\n"
        f"k.Model(base.input, k.layers.Dense(2, activation='softmax')(x)).save({str(path)!r})\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    return str(path)


def make_samples(folder: Path, count: int, size: tuple[int, int]) -> str:
    import numpy as np
    from PIL import Image

    samples = folder / "samples"
    samples.mkdir()
    rng = np.random.default_rng(0)
    for index in range(count):
        gradient = np.linspace(30, 220, size[1])[None, :, None]
        pixels = (rng.random((size[0], size[1], 3)) * 60 + gradient).clip(0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(samples / f"xray_{index}.png")
    return str(samples)


def before_checkout(commit: str) -> str | None:
    """A worktree of the app before this change, made once (None if git cannot make it)."""
    target = Path(tempfile.gettempdir()) / f"actviz-before-{commit}"
    if (target / "app.py").is_file():
        return str(target)
    done = subprocess.run(["git", "worktree", "add", "--detach", str(target), commit], cwd=ROOT, capture_output=True, text=True)
    return str(target) if done.returncode == 0 else None


def run(app_root: str, model: str, samples: str, sessions: int, rounds: int) -> dict:
    args = [sys.executable, __file__, "--worker", app_root, model, samples, str(sessions), str(rounds)]
    done = subprocess.run(args, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": app_root})
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"error": (done.stderr or done.stdout)[-800:]}
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the demo model, 1 and 2 sessions")
    parser.add_argument("--sessions", type=int, nargs="+", help="session counts (default 1 2 8)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before", default=BEFORE, help="commit of the app before this change ('' to skip)")
    parser.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        app_root, model, samples, sessions, rounds = args.worker
        print(json.dumps(worker(app_root, model, samples, int(sessions), int(rounds))))
        return
    counts = args.sessions or ([1, 2] if args.quick else [1, 2, 8])
    with tempfile.TemporaryDirectory(prefix="actviz-sessions-") as folder:
        folder = Path(folder)
        model = "demo" if args.quick else build_user_model(folder)
        samples = make_samples(folder, max(counts), (56, 56) if args.quick else (300, 300))
        if args.quick:  # the demo model: its own digits are the samples
            samples = str(ROOT / "actviz" / "demo" / "samples")
        before = before_checkout(args.before) if args.before else None
        rows = []
        for count in counts:
            after = run(str(ROOT), model, samples, count, args.rounds)
            old = run(before, model, samples, count, args.rounds) if before else {}
            rows.append((count, old, after))
            print(f"{count} sessions: before {old}\n            after  {after}", file=sys.stderr)
    print(f"\n{'demo model' if args.quick else 'VGG16 (weights=None) 300x300x3 to block5_conv3, .h5'}; "
          f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; {args.rounds} rounds of "
          "a colour change and a layer change in every session, sessions taking turns\n")
    print("| sessions | forward passes per interaction | colour change p50 / p95 (ms) | layer change p50 / p95 (ms) | peak RSS (MB) |")
    print("|---|---|---|---|---|")
    for count, old, new in rows:
        def cell(*keys, fmt="{:.0f}"):
            def one(result):
                return " / ".join(fmt.format(result[k]) for k in keys) if all(k in result for k in keys) else "-"
            return f"{one(old)} \u2192 {one(new)}"

        print(f"| {count} | {cell('passes_per_interaction', fmt='{:.2f}')} | {cell('colour_p50_ms', 'colour_p95_ms')} | "
              f"{cell('layer_p50_ms', 'layer_p95_ms')} | {cell('rss_peak_mb')} |")
    print("\n(before \u2192 after; server time of one AppTest rerun, sessions taking turns in one process)")


if __name__ == "__main__":
    main()
