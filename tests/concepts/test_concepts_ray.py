"""The Ray engine on a local Ray instance (2 CPUs): the same concepts, numbers and findings as the
local engine on a tiny set (Ray Data reads the files, actors hold the model)."""

from __future__ import annotations

import numpy as np
import pytest
from planted import CLASSES

import actviz

import ray  # requirements-dev.txt installs ray[data]: a missing Ray fails here instead of skipping
import ray.data  # noqa: F401


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()


def test_ray_finds_the_same_concepts_as_local(planted_data, local_ray):
    kwargs = dict(class_names=CLASSES, max_crops=80, batch_size=8)
    local = actviz.discover_concepts(planted_data["file"], planted_data["root"] / "images", "marked", **kwargs)
    seen = []
    distributed = actviz.discover_concepts(planted_data["file"], planted_data["root"] / "images", "marked", engine="ray",
                                  progress=lambda done, total: seen.append((done, total)), **kwargs)
    for key in ("index", "kind", "cell"):
        np.testing.assert_array_equal(distributed.per_image[key], local.per_image[key])
    for key in ("score", "drop", "random", "all", "strength"):
        np.testing.assert_allclose(distributed.per_image[key], local.per_image[key], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.stack([c.direction for c in distributed.concepts]), np.stack([c.direction for c in local.concepts]), rtol=1e-6, atol=1e-7)
    assert [f.to_json() for f in distributed.findings] == [f.to_json() for f in local.findings] and len(local.findings) == 1
    assert seen[0][0] == 0 and seen[-1][0] == seen[-1][1] == 80 + 80  # 80 crops, then the 80 labelled images read
    assert ray.is_initialized()  # a Ray the caller started is left running


def test_ray_gives_the_same_tcav_as_local(planted_data, local_ray):
    root = planted_data["root"]
    kwargs = dict(concept=root / "squares", random=root / "noise", class_names=CLASSES, runs=3, examples=12)
    local = actviz.tcav(planted_data["file"], root / "images", "marked", **kwargs)
    distributed = actviz.tcav(planted_data["file"], root / "images", "marked", engine="ray", **kwargs)
    assert distributed.to_json() == local.to_json()
