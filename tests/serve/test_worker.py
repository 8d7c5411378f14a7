"""A data set pass in a process of its own: the same summary as in this process, its mistakes in the
same words, its progress passed on, and the process gone when the job is stopped."""

import psutil
import pytest

from actviz.dataset import open_source, summarize
from actviz.dataset.summary import differences
from actviz.errors import BudgetError, Cancelled
from actviz.serve.worker import summarize_apart

from colours import CLASSES, colour_images, colour_model, write_folder


@pytest.fixture(scope="module")
def colours(keras, tmp_path_factory):
    from actviz.safety.models import open_model

    root = tmp_path_factory.mktemp("colours")
    images, filed, _ = colour_images(16)
    write_folder(root / "data", images, filed)
    return open_model(colour_model(keras), name="colours", class_names=CLASSES), open_source(root / "data")


def _workers() -> list:
    return [p for p in psutil.Process().children(recursive=True) if "actviz.serve.worker" in " ".join(p.cmdline())]


def test_the_pass_apart_gives_the_same_summary_and_its_progress(colours):
    opened, source = colours
    options = {"class_names": CLASSES, "top_k": 3, "batch_size": 4, "preprocessing": "rescale", "gradcam": True}
    here = summarize(opened, source, **options)
    seen = []
    apart = summarize_apart(opened, source, progress=lambda done, total: seen.append((done, total)), **options)
    assert differences(apart, here) == []
    assert apart.meta["model"] == "colours" and apart.meta["model_digest"] == opened.loaded.digest
    assert seen[0] == (0, 16) and seen[-1] == (16, 16)
    assert not _workers()


def test_a_mistake_in_the_child_comes_back_in_its_words(colours):
    opened, source = colours
    with pytest.raises(BudgetError, match="this run may use"):
        summarize_apart(opened, source, memory_bytes=1000, class_names=CLASSES)
    assert not _workers()


def test_a_stopped_job_takes_its_process_with_it(colours):
    opened, source = colours

    def stop(done, total):
        assert _workers()  # the child is running while it reports
        raise Cancelled("Stopped by the visitor.")

    with pytest.raises(Cancelled, match="Stopped by the visitor"):
        summarize_apart(opened, source, progress=stop, class_names=CLASSES)
    assert not _workers()
