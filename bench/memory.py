"""Benchmark: what gives the dashboard's memory back after a data set run.

    python bench/memory.py                 # about 5 minutes on 2 cores

The dashboard (``streamlit.testing.v1.AppTest``: app.py in this process, as ``streamlit run``
runs it) on the user's architecture (VGG16 to block5_conv3 at 300x300, Flatten/Dense(2), a
Keras 2 .h5) runs "Across a data set" over 6 images, with Grad-CAM, its results looked at on the
dead channels (which run no model). Each way runs in a fresh process; the process's resident
memory (psutil) is read before the run, after it, and after asking glibc to give freed memory
back (``malloc_trim(0)``):

- in the server's process, at the batch its memory share allows (``ACTVIZ_WORKER=0``);
- in the server's process, in batches of 2 (``ACTVIZ_WORKER=0``, ``ACTVIZ_MEMORY_MB=1000``: a
  work share of 250 MB);
- in a process of its own (``ACTVIZ_WORKER=1``, the default).

Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
WAYS = {
    "in the server's process, batches as its share allows": {"ACTVIZ_WORKER": "0"},
    "in the server's process, batches of 2": {"ACTVIZ_WORKER": "0", "ACTVIZ_MEMORY_MB": "1000"},
    "in a process of its own (the default)": {"ACTVIZ_WORKER": "1"},
}


def worker(folder: str) -> dict:
    """One dashboard, one data set run; resident memory before, after, after malloc_trim (MB)."""
    import ctypes

    import psutil
    from streamlit.testing.v1 import AppTest

    def rss() -> float:
        return psutil.Process().memory_info().rss / 1024**2

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=1800)
    at.run()
    at.switch_page("views/dataset.py").run()
    at.radio(key="dataset_source").set_value("The data set of this server").run()
    at.session_state["dataset_section"] = "Dead channels"
    before = rss()
    at.button(key="dataset_go").click().run()
    assert not at.exception and not at.error, (at.exception, at.error)
    after = rss()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    return {"before": before, "after": after, "trimmed": rss(), "batch": at.session_state["_dataset"]["summary"].meta["batch_size"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    sys.path.insert(0, str(ROOT / "bench"))
    from dataset import build_model, make_images

    with tempfile.TemporaryDirectory(prefix="actviz-bench-") as tmp:
        tmp = Path(tmp)
        model = build_model(tmp)
        images = make_images(tmp / "six", 6)
        samples = make_images(tmp / "samples", 1, seed=5)
        rows = []
        for way, settings in WAYS.items():
            env = {**ENV, "ACTVIZ_MODEL": str(model), "ACTVIZ_DATASET": str(images),
                   "ACTVIZ_SAMPLES": str(next(samples.rglob("*.jpeg")).parent), **settings}
            code = f"import json, sys; sys.path.insert(0, {str(ROOT / 'bench')!r}); import memory; print(json.dumps(memory.worker({str(images)!r})))"
            done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=3600)
            if done.returncode:
                raise SystemExit(f"{way} failed:\n{done.stderr[-3000:]}")
            found = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append((way, found))
            print(f"{way}: {found}", file=sys.stderr, flush=True)
    print(f"Load average {os.getloadavg()[0]:.1f} at the end, {os.cpu_count()} CPU cores.\n")
    print("| the data set run (6 images of VGG16 at 300x300, Grad-CAM) | batch | before (MB) | after (MB) | after malloc_trim (MB) | kept |")
    print("|---|---:|---:|---:|---:|---:|")
    for way, found in rows:
        print(f"| {way} | {found['batch']} | {found['before']:,.0f} | {found['after']:,.0f} | {found['trimmed']:,.0f} "
              f"| **{found['trimmed'] - found['before']:+,.0f} MB** |")


if __name__ == "__main__":
    main()
