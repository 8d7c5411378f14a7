"""The Ray engine on a local Ray instance (2 CPUs): the same images give the same summary as the
local engine, whether Ray Data reads files or the images live in the package."""

from __future__ import annotations

import numpy as np
import pytest
from colours import CLASSES, colour_images, colour_model, write_folder

from actviz.dataset import demo_digits, open_source, summarize
from actviz.dataset.summary import differences

import ray  # requirements-dev.txt installs ray[data]: a missing Ray fails here instead of skipping
import ray.data  # noqa: F401


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()


def test_ray_equals_local_on_300_image_files(keras, tmp_path, local_ray):
    images, filed, _ = colour_images(300, seed=11)
    write_folder(tmp_path / "images", images, filed)
    (tmp_path / "images" / "red" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    colour_model(keras).save(tmp_path / "colours.keras")
    source = open_source(tmp_path / "images")
    kwargs = dict(class_names=CLASSES, top_k=7, batch_size=16, preprocessing="rescale", gradcam=True)
    local = summarize(tmp_path / "colours.keras", source, **kwargs)
    seen = []
    distributed = summarize(tmp_path / "colours.keras", source, engine="ray", progress=lambda done, total: seen.append((done, total)), **kwargs)
    assert distributed.count == local.count == 300 and [s[1] for s in distributed.skipped] == ["red/broken.png"]
    assert differences(distributed, local) == []
    assert seen[0] == (0, 301) and seen[-1] == (301, 301)
    assert ray.is_initialized()  # a Ray the caller started is left running


def test_ray_equals_local_on_the_demo_digits(local_ray):
    source = demo_digits()
    kwargs = dict(indices=np.arange(0, 1000, 10), layers=["block3_conv2"], batch_size=25)
    assert differences(summarize(None, source, engine="ray", **kwargs), summarize(None, source, **kwargs)) == []
