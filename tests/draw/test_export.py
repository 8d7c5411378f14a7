"""What ``export`` writes: the grids drawn on several threads are the grids of each layer drawn on its
own, in the layers' order, and the statistics follow the same order."""

import csv
import io

import numpy as np
from PIL import Image

from actviz.core.probe import Probe
from actviz.draw.export import export_bundle
from actviz.draw.grids import feature_grid


def test_the_grids_drawn_together_are_each_layers_grid(flat_model, rng):
    probe = Probe(flat_model)
    batch = rng.random((1, 8, 8, 3), dtype=np.float32)
    before = batch.copy()
    names = ["conv_1", "pool_1", "conv_2"]
    files, _ = export_bundle(probe, batch, names, per_row=4, cmap="magma")
    maps = probe.run(batch, names).maps
    for name, png in zip(names, [f for f in files if f.endswith(".png")]):
        assert png.endswith(f"_{name}.png")
        decoded = Image.open(io.BytesIO(files[png]))
        grid = feature_grid(maps[name][0], per_row=4, cmap="magma")
        assert decoded.mode == "P"
        np.testing.assert_array_equal(np.asarray(decoded), grid.index)
        np.testing.assert_array_equal(np.asarray(decoded.getpalette(), np.uint8).reshape(-1, 3)[:256], grid.palette)
    rows = list(csv.DictReader(io.StringIO(files["stats.csv"].decode())))
    assert [row["layer"] for row in rows] == names
    np.testing.assert_array_equal(batch, before)  # the input is left as it was
