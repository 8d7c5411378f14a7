"""Benchmark: actviz against the original notebook's way, on the same work, in the same run.

    python bench/run.py            # about 3 minutes on 2 cores; --runs N for more repetitions

Builds the user's architecture (VGG16 with weights=None, input 300x300x3, truncated after
block5_conv3, GlobalAveragePooling2D, Dense(2, softmax)) and saves it as .h5, then measures, each
in fresh processes and as the median of several runs:

1. the notebook's way, run faithfully (its code, Agg backend, each layer's figure saved as PNG);
2. actviz doing the same job (load, forward pass, all 17 grids rendered and written as PNG);
3. the forward pass alone;
4. the dashboard's warm interactions (AppTest reruns: colour map, layer, channel) and the
   display-sized render of the shown grids;
5. cold start: `streamlit run app.py` to the first feature map visible in headless Chromium;
6. peak memory (RSS) of each, and of the dashboard after viewing ten different images.

The same on the bundled demo model. Prints a Markdown table; README.md carries the latest one.
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
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- workers: each runs in a fresh process and prints one JSON line ------------------------


def worker_notebook(model_path: str, image_path: str, out: str) -> dict:
    """The notebook's cells, as written (Keras 3 imports), with figures saved instead of shown."""
    times = {}
    start = time.perf_counter()
    import matplotlib

    matplotlib.use("Agg")
    import keras  # noqa: F401 -- as the notebook does (its first cell prints keras.__version__)
    import matplotlib.pyplot as plt
    import numpy as np
    from keras import models
    from keras.models import load_model
    from keras.preprocessing import image

    times["import"] = time.perf_counter() - start
    t = time.perf_counter()
    model = load_model(model_path)
    times["load"] = time.perf_counter() - t
    img = image.load_img(image_path, target_size=(300, 300))
    img_tensor = np.expand_dims(image.img_to_array(img), axis=0)
    img_tensor /= 255.0
    t = time.perf_counter()
    layer_outputs = [layer.output for layer in model.layers[1:18]]
    activation_model = models.Model(inputs=model.input, outputs=layer_outputs)
    activations = activation_model.predict(img_tensor, verbose=0)
    times["forward"] = time.perf_counter() - t
    layer_names = [layer.name for layer in model.layers[:18]]
    images_per_row = 16
    t = time.perf_counter()
    loop = 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        for index, (layer_name, layer_activation) in enumerate(zip(layer_names, activations)):
            t_loop = time.perf_counter()
            n_features = layer_activation.shape[-1]
            size = layer_activation.shape[1]
            n_cols = n_features // images_per_row
            display_grid = np.zeros((size * n_cols, images_per_row * size))
            for col in range(n_cols):
                for row in range(images_per_row):
                    channel_image = layer_activation[0, :, :, col * images_per_row + row]
                    channel_image -= channel_image.mean()
                    channel_image /= channel_image.std()
                    channel_image *= 64
                    channel_image += 128
                    channel_image = np.clip(channel_image, 0, 255).astype("uint8")
                    display_grid[col * size: (col + 1) * size, row * size: (row + 1) * size] = channel_image
            loop += time.perf_counter() - t_loop
            scale = 1.0 / size
            plt.figure(figsize=(scale * display_grid.shape[1], scale * display_grid.shape[0]))
            plt.title(layer_name)
            plt.grid(False)
            plt.imshow(display_grid, aspect="auto", cmap="viridis")
            plt.savefig(Path(out) / f"{index:02d}.png")
            plt.close("all")
    times["render"] = time.perf_counter() - t
    times["render_loop"] = loop
    times["total"] = time.perf_counter() - start
    times["rss_mb"] = peak_rss_mb()
    return times


def worker_actviz(model_path: str, image_path: str, out: str) -> dict:
    """What `python -m actviz export` does: load, one forward pass, grids rendered and written."""
    times = {}
    start = time.perf_counter()
    from actviz.cli import import_keras_quietly
    from actviz.draw.grids import feature_grid, save_png
    from actviz.inputs.batch import to_batch
    from actviz.inputs.images import open_image
    from actviz.safety.models import open_model

    import_keras_quietly()
    times["import"] = time.perf_counter() - start
    t = time.perf_counter()
    opened = open_model(model_path if model_path != "demo" else None)
    times["load"] = time.perf_counter() - t
    batch = to_batch(open_image(image_path), opened.probe).inputs
    t = time.perf_counter()
    result = opened.probe.run(batch)
    times["forward"] = time.perf_counter() - t
    t = time.perf_counter()
    for index, (name, activation) in enumerate(result.maps.items()):
        save_png(feature_grid(activation), Path(out) / f"{index:03d}.png")
    times["render"] = time.perf_counter() - t
    t = time.perf_counter()
    repeats = [time.perf_counter()]
    for _ in range(3):
        opened.probe.run(batch)
        repeats.append(time.perf_counter())
    times["forward_warm"] = statistics.median(b - a for a, b in zip(repeats, repeats[1:]))
    shown = list(result.maps.values())
    screen = []
    for _ in range(3):  # the dashboard's first screen: the first and last convolution layers
        t = time.perf_counter()
        from actviz.draw.grids import png_bytes

        for activation in (shown[0], shown[-1]):
            png_bytes(feature_grid(activation, display_width=1200))
        screen.append(time.perf_counter() - t)
    times["screen_render"] = statistics.median(screen)
    t = time.perf_counter()
    for activation in shown:
        png_bytes(feature_grid(activation, display_width=1200))
    times["screen_render_all"] = time.perf_counter() - t
    times["total"] = time.perf_counter() - start
    times["rss_mb"] = peak_rss_mb()
    return times


def worker_forward(model_path: str, image_path: str, out: str) -> dict:
    """The floor: import, load and one forward pass, nothing drawn."""
    start = time.perf_counter()
    from actviz.cli import import_keras_quietly
    from actviz.inputs.batch import to_batch
    from actviz.inputs.images import open_image
    from actviz.safety.models import open_model

    import_keras_quietly()
    opened = open_model(model_path if model_path != "demo" else None)
    batch = to_batch(open_image(image_path), opened.probe, preprocess_as="rescale").inputs
    opened.probe.run(batch)
    return {"total": time.perf_counter() - start, "rss_mb": peak_rss_mb()}


def worker_forward_cli(model_path: str, image_path: str, out: str) -> dict:
    """The floor as a whole command: a process that imports, loads and runs one forward pass."""
    t = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--worker", "forward", model_path, image_path, out], check=True, env=ENV, capture_output=True, cwd=ROOT)
    return {"total": time.perf_counter() - t}


def worker_export_cli(model_path: str, image_path: str, out: str) -> dict:
    """The whole `python -m actviz export` command, as a user runs it."""
    args = [sys.executable, "-m", "actviz", "export", "--image", image_path, "--out", out]
    if model_path != "demo":
        args += ["--model", model_path]
    t = time.perf_counter()
    subprocess.run(args, check=True, env=ENV, capture_output=True, cwd=ROOT)
    return {"total": time.perf_counter() - t}


def worker_dashboard(model_path: str, image_path: str, out: str) -> dict:
    """Warm interactions of the dashboard (AppTest reruns) and its memory after ten images."""
    import numpy as np
    from PIL import Image
    from streamlit.testing.v1 import AppTest

    if model_path != "demo":
        os.environ["ACTVIZ_MODEL"] = model_path
        os.environ["ACTVIZ_SAMPLES"] = str(Path(image_path).parent)  # the operator's samples: the benchmark image
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
    at.run()
    assert not at.exception, at.exception

    def timed(action) -> float:
        values = []
        for value in action["values"]:
            t = time.perf_counter()
            action["set"](value).run()
            values.append(time.perf_counter() - t)
            assert not at.exception, at.exception
        return statistics.median(values)

    results = {}
    results["cmap"] = timed({"values": ["magma", "gray", "viridis", "magma"], "set": lambda v: at.sidebar.selectbox(key="cmap").set_value(v)})
    layers = at.sidebar.multiselect[0]
    options = list(layers.options)
    results["layer"] = timed({"values": [options[1:2], options[2:3], options[3:4], options[0:1]], "set": lambda v: at.sidebar.multiselect[0].set_value(v)})
    results["per_row"] = timed({"values": [8, 32, 16], "set": lambda v: at.sidebar.slider(key="per_row").set_value(v)})
    at.switch_page("views/one_channel.py").run()
    channel = at.selectbox(key=f"channel_{at.selectbox(key='channel_layer').value}")
    results["channel"] = timed({"values": list(channel.options[1:4]), "set": lambda v: at.selectbox(key=channel.key).set_value(v)})
    at.switch_page("views/feature_maps.py")
    at.sidebar.radio(key="image_source").set_value("Upload an image").run()
    rng = np.random.default_rng(0)
    rss = []
    for index in range(10):
        pixels = (rng.random((320, 300, 3)) * 255).astype(np.uint8)
        buffer = Path(out) / f"img{index}.png"
        Image.fromarray(pixels).save(buffer)
        at.sidebar.file_uploader(key="image_upload").set_value((buffer.name, buffer.read_bytes(), "image/png")).run()
        assert not at.exception and not at.error
        rss.append(_current_rss_mb())
    results["rss_after_10_images_mb"] = rss[-1]
    results["rss_after_5_images_mb"] = rss[4]
    results["rss_mb"] = peak_rss_mb()
    return results


def _current_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def worker_cold_start(model_path: str, image_path: str, out: str) -> dict:
    """`streamlit run app.py` until the first feature map is visible in headless Chromium."""
    import socket
    import urllib.request

    from playwright.sync_api import sync_playwright

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(ENV)
    if model_path != "demo":
        env["ACTVIZ_MODEL"] = model_path
        env["ACTVIZ_SAMPLES"] = str(Path(image_path).parent)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        start = time.perf_counter()
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1).read()
                    break
                except OSError:
                    time.sleep(0.05)
            healthy = time.perf_counter() - start
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}")
            page.locator('[data-testid="stImage"] img').nth(1).wait_for(state="visible", timeout=300_000)
            first = time.perf_counter() - start
            rss = _process_rss_mb(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=30)
            browser.close()
    return {"healthy": healthy, "total": first, "rss_mb": rss}


def _process_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


WORKERS = {
    "notebook": worker_notebook, "actviz": worker_actviz, "forward": worker_forward,
    "export_cli": worker_export_cli, "forward_cli": worker_forward_cli, "dashboard": worker_dashboard, "cold_start": worker_cold_start,
}


# --- the driver -----------------------------------------------------------------------------


def run_worker(name: str, model: str, image: str) -> dict:
    with tempfile.TemporaryDirectory() as out:
        done = subprocess.run(
            [sys.executable, __file__, "--worker", name, model, image, out],
            env=ENV, capture_output=True, text=True, cwd=ROOT,
        )
    if done.returncode != 0:
        raise RuntimeError(f"worker {name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def median_of(name: str, model: str, image: str, runs: int) -> dict:
    samples = [run_worker(name, model, image) for _ in range(runs)]
    return {key: statistics.median(s[key] for s in samples) for key in samples[0]}


def export_over_floor(model: str, image: str, runs: int) -> tuple[dict, dict, float]:
    """The whole export command and the floor (a command that only imports, loads and runs one forward
    pass), alternating, so both see the same load: their medians, and the median of each export
    run's cost over the floor run just before it."""
    floors, exports = [], []
    for _ in range(runs):
        floors.append(run_worker("forward_cli", model, image))
        exports.append(run_worker("export_cli", model, image))
    over = statistics.median(e["total"] - f["total"] for f, e in zip(floors, exports))
    return {"total": statistics.median(f["total"] for f in floors)}, {"total": statistics.median(e["total"] for e in exports)}, over


def build_user_model(folder: Path) -> Path:
    import keras

    keras.utils.set_random_seed(0)
    base = keras.applications.VGG16(weights=None, include_top=False, input_shape=(300, 300, 3))
    x = keras.layers.GlobalAveragePooling2D()(base.get_layer("block5_conv3").output)
    model = keras.Model(base.input, keras.layers.Dense(2, activation="softmax")(x))
    path = folder / "vgg16_custom.09-0.9650.h5"
    model.save(path)
    return path


def make_image(folder: Path) -> Path:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(1)
    gradient = np.linspace(30, 200, 512)[None, :] + rng.normal(0, 25, (512, 512))
    path = folder / "cxr (1).jpg"
    Image.fromarray(np.clip(gradient, 0, 255).astype(np.uint8), "L").convert("RGB").save(path)
    return path


def table(model_label: str, nb: dict | None, av: dict, fw: dict, cli: dict, over: float, dash: dict, cold: dict | None) -> str:
    def ratio(a, b):
        return f"{a / b:.2f}" if b else "-"

    lines = [f"### {model_label}", "", "| measure | notebook's way | actviz | actviz / notebook |", "|---|---|---|---|"]
    if nb:
        lines += [
            f"| load + activation model + predict (s) | {nb['load'] + nb['forward']:.2f} | {av['load'] + av['forward']:.2f} | {ratio(av['load'] + av['forward'], nb['load'] + nb['forward'])} |",
            f"| render and save all grids (s) | {nb['render']:.2f} (loop {nb['render_loop']:.2f}) | {av['render']:.3f} | {ratio(av['render'], nb['render'])} |",
            f"| whole job, import included (s) | {nb['total']:.2f} | {av['total'] - av['forward_warm'] * 3 - av['screen_render'] * 3 - av['screen_render_all']:.2f} | - |",
            f"| peak RSS of the job (MB) | {nb['rss_mb']:.0f} | {av['rss_mb']:.0f} | {ratio(av['rss_mb'], nb['rss_mb'])} |",
        ]
    lines += [
        f"| forward pass alone, warm (s) | - | {av['forward_warm']:.3f} | - |",
        f"| `python -m actviz export` whole command (s) | - | {cli['total']:.2f} | - |",
        f"| the same command doing only import + load + one forward pass (s) | - | {fw['total']:.2f} | - |",
        f"| export cost over the bare forward pass (s; median of alternating pairs) | - | {over:.2f} | - |",
        f"| screen render of the first screen's 2 grids (s) | - | {av['screen_render']:.3f} ({av['screen_render'] / av['forward_warm']:.0%} of a warm forward pass) | - |",
        f"| screen render of all {17 if nb else 'shown'} grids (s) | - | {av['screen_render_all']:.3f} | - |",
        f"| dashboard rerun: colour map / layer / row width / channel (ms) | - | {dash['cmap'] * 1000:.0f} / {dash['layer'] * 1000:.0f} / {dash['per_row'] * 1000:.0f} / {dash['channel'] * 1000:.0f} | - |",
        f"| dashboard RSS after 5 / 10 different images (MB) | - | {dash['rss_after_5_images_mb']:.0f} / {dash['rss_after_10_images_mb']:.0f} | - |",
    ]
    if cold:
        lines.append(f"| cold start: `streamlit run` to first feature map in Chromium (s) | - | {cold['total']:.2f} (server healthy at {cold['healthy']:.2f}) | - |")
    return "\n".join(lines)


def part_table(label: str, part: str, model: str, image: str, runs: int, chromium: bool) -> str:
    """One part of the table, measured alone: the export against its floor, or the cold start
    against import + load + one forward pass (fresh processes, alternating)."""
    lines = [f"### {label}", "", "| measure | seconds |", "|---|---:|"]
    if part == "export":
        floor, export, over = export_over_floor(model, image, runs)
        return "\n".join(lines + [
            f"| `python -m actviz export` whole command | {export['total']:.2f} |",
            f"| the same command doing only import + load + one forward pass | {floor['total']:.2f} |",
            f"| export cost over the bare forward pass (median of alternating pairs) | **{over:.2f}** |",
        ])
    if not chromium:
        return "\n".join(lines + ["| cold start | (no Chromium here) |"])
    cold, bare = [], []
    for _ in range(runs):
        bare.append(run_worker("forward", model, image)["total"])
        cold.append(run_worker("cold_start", model, image))
    first, floor = statistics.median(c["total"] for c in cold), statistics.median(bare)
    return "\n".join(lines + [
        f"| import tensorflow + load + one forward pass, in one process | {floor:.2f} |",
        f"| `streamlit run` to the first feature map in Chromium (server healthy at {statistics.median(c['healthy'] for c in cold):.2f}) "
        f"| {first:.2f} (**{first / floor:.2f}x**) |",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="fresh processes per measure (median reported)")
    parser.add_argument("--only", choices=["export", "cold"], help="only the export against its floor, or only the cold start")
    parser.add_argument("--worker", nargs=4, metavar=("NAME", "MODEL", "IMAGE", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        name, model, image, out = args.worker
        print(json.dumps(WORKERS[name](model, image, out)))
        return
    chromium = Path("/usr/bin/chromium").exists()
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        os.environ.update({k: v for k, v in ENV.items() if k == "TF_CPP_MIN_LOG_LEVEL"})
        model = str(build_user_model(folder))
        image = str(make_image(folder))
        sample = str(sorted((ROOT / "actviz" / "demo" / "samples").glob("*.png"))[3])
        sections = []
        for label, model_path, image_path, with_notebook in [
            ("User's architecture: VGG16 (weights=None) 300x300x3 to block5_conv3, GAP, Dense(2), saved as .h5", model, image, True),
            ("Bundled demo model (56x56x1, 9 conv/pool layers)", "demo", sample, False),
        ]:
            print(f"measuring: {label}", file=sys.stderr)
            if args.only:
                sections.append(part_table(label, args.only, model_path, image_path, args.runs, chromium))
                continue
            nb = median_of("notebook", model_path, image_path, args.runs) if with_notebook else None
            av = median_of("actviz", model_path, image_path, args.runs)
            fw, cli, over = export_over_floor(model_path, image_path, args.runs)
            dash = run_worker("dashboard", model_path, image_path)
            cold = median_of("cold_start", model_path, image_path, args.runs) if chromium else None
            sections.append(table(label, nb, av, fw, cli, over, dash, cold))
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(f"Machine: {machine}; medians of {args.runs} fresh processes (dashboard: one process, medians of its reruns).\n")
    print("\n\n".join(sections))


if __name__ == "__main__":
    main()
