"""The Streamlit wiring the pages share: the server's stores and job queue, the forward pass,
pictures kept for the screen, the context of this run, and links between pages.

Shared, bounded stores first (one per server, keyed by content, so visitors share work without
evicting or seeing each other's), then expensive jobs (they wait their turn in the server's queue,
with a progress bar and a Stop button), then the context ``app.py`` computes once per run for the
page it runs, then the links: ``go_to`` opens another page with a few values in its address,
``followed_link`` reads them there. Everything computed comes from the ``actviz`` package.
"""

from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, NoReturn

import streamlit as st

from actviz.core.passes import duration_words
from actviz.core.probe import Activations
from actviz.dataset import Source, Summary
from actviz.draw.stats import layer_stats
from actviz.draw.tables import layer_rows
from actviz.inputs.batch import to_batch
from actviz.safety.loading import file_digest
from actviz.safety.models import OpenModel
from actviz.serve.jobs import with_deadline
from actviz.serve.server import Server
from actviz.serve.server import server as shared_server
from actviz.settings import value as setting_value
from actviz.text import markdown_text

#: Pixels across a grid sent to the browser; downloads are full resolution.
DISPLAY_WIDTH = 1200
IMAGE_TYPES = ["png", "jpg", "jpeg", "gif", "webp", "bmp", "tif", "tiff"]


# --- starting up ---------------------------------------------------------------------------

_starting = threading.Lock()
_tensorflow: threading.Thread | None = None


def start_tensorflow(*, then: Callable[[], None] | None = None) -> None:
    """Start importing Keras and TensorFlow on a thread of their own (once per process) and return at
    once; ``then`` runs on that thread once they are imported.

    The first run of a fresh server spends most of its time importing TensorFlow (3 to 10 s on two
    cores). Started first thing, the import overlaps what the run does before it needs the model:
    Streamlit's own set-up, the sidebar, and the scan of a model file, which runs in a child
    process that never imports TensorFlow. Whatever imports Keras meanwhile waits for this import
    to finish, as Python's import lock makes it.
    """
    global _tensorflow
    with _starting:
        if _tensorflow is not None:
            return

        def load() -> None:
            import keras  # noqa: F401 -- imported for its side effect: TensorFlow loaded

            if then is not None:
                then()

        _tensorflow = threading.Thread(target=load, name="actviz-start-tensorflow", daemon=True)
        _tensorflow.start()


# --- shared by every visitor of this server, bounded ---------------------------------------


def server() -> Server:
    """This process's shared state (actviz.serve.server): not in Streamlit's caches, so no client's
    clear-cache message can empty it or make a second job queue."""
    return shared_server(fallback=_secrets())


def _secrets() -> dict:
    """The operator's Streamlit secrets ({} without a secrets file)."""
    try:
        return dict(st.secrets)
    except Exception:  # noqa: BLE001 -- no secrets file, or one that cannot be read: nothing configured
        return {}


def setting(name: str) -> Any:
    """An operator's setting (actviz.settings): the environment variable, else the Streamlit secret of that name."""
    return setting_value(name, fallback=_secrets())


def md(text: Any) -> str:
    """Text from a file or a visitor, shown literally in Markdown (no links, no formatting)."""
    return markdown_text(text)


def shown(key: tuple, compute: Callable[[], Any]) -> Any:
    """Something drawn or computed for the screen, from the server's bounded store of pictures
    (keyed by content, so visitors share it); arrays come back read-only."""
    def frozen() -> Any:
        value = compute()
        for array in value if isinstance(value, tuple) else (value,):
            if hasattr(array, "setflags"):
                array.setflags(write=False)
        return value

    return server().pictures.get(key, frozen)


def path_digest(path: Path) -> str:
    """SHA-256 of a file on disk, recomputed only when the file changes."""
    stat = path.stat()
    return server().files.get((str(path), stat.st_mtime_ns, stat.st_size), lambda: file_digest(path.read_bytes()))


def load_image(digest: str, model_key: tuple, scaling: str, data: bytes, opened: OpenModel):
    """An image file's bytes -> (uint8 (H, W, C) image as the model sees it, float32 (1, H, W, C)
    model input, scaled by ``scaling``), kept for the screen under the image's ``digest``."""
    def compute() -> tuple:
        batch = to_batch(data, opened.probe, preprocess_as=scaling)
        return batch.pixels[0], batch.inputs

    return shown(("image", digest, model_key, scaling), compute)


def all_stats(key: tuple, maps: dict) -> dict:
    """Layer name -> its ``LayerStats``, for the feature maps of one forward pass (``key``)."""
    return shown(("stats", key), lambda: {name: layer_stats(name, activation[0]) for name, activation in maps.items()})


def forward_pass(key: tuple, opened: OpenModel, batch, names: list[str], *, hold: str) -> Activations:
    """The predictions and feature maps for ``key``, shared with any visitor on the same image.

    The session keeps its own reference under ``hold`` (one result per purpose),
    so the maps live exactly as long as some visitor shows them; they are
    read-only, so no visitor can change what another sees.
    """
    def compute() -> Activations:
        result = opened.probe.run(batch, names)
        for array in [*result.predictions, *result.maps.values()]:
            array.setflags(write=False)
        return result

    result = server().results.get(key, compute, need=opened.probe.forward_bytes(batch.shape, names))
    st.session_state[hold] = result
    return result


# --- expensive jobs: one queue for the server --------------------------------------------


def queued(what: str, work: Callable[[], Any]) -> Any:
    """Run an expensive job when the server's queue gives it a turn, saying how many are ahead."""
    note = st.empty()

    def waiting(ahead: int) -> None:
        note.info(f"{what}: waiting for {ahead} other job{'s' if ahead != 1 else ''} on this server to finish ...")

    try:
        with server().queue.turn(owner=_visitor(), waiting=waiting):
            note.empty()
            return work()
    finally:
        note.empty()


def _visitor() -> str:
    """This visitor's session: the queue runs one job per session at a time."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    context = get_script_run_ctx()
    return context.session_id if context is not None else st.session_state.setdefault("_visitor", os.urandom(8).hex())


def run_job(what: str, work: Callable[[Callable[[int, int], None]], Any], *, key: str, unit: str = "steps",
            estimate: float | None = None) -> Any:
    """An expensive job with a progress bar and a Stop button: it waits its turn in the server's
    queue, and stops at the server's time limit, at a Stop, or at any other choice (each reruns the
    page, which ends the job at its next step). ``estimate``: the seconds it is expected to take,
    said until its first step is done (then the time left at the pace measured). The Stop button
    and the bar go once the job ends, so no Stop is left beside a job that is done."""
    stop = st.empty()
    stop.button("Stop", key=f"stop_{key}", help="Stop this computation.")
    guess = f" ({duration_words(estimate)} on this server)" if estimate is not None else ""
    bar = st.progress(0.0, text=f"{what} ...{guess}")
    started: list[float] = []

    def step(done: int, total: int) -> None:
        if not started:
            started.append(time.monotonic())
        words = f"{what}: {done:,} of {total:,} {unit}"
        seconds = time.monotonic() - started[0]
        if done and seconds > 1:
            rate = done / seconds
            words += f" · {rate:,.1f} {unit}/s · about {max(0.0, (total - done) / rate):,.0f} s left"
        elif estimate is not None:
            words += guess
        bar.progress(min(1.0, done / max(total, 1)), text=words)

    try:
        return queued(what, lambda: work(with_deadline(step, server().limits.job_seconds, what=what)))
    finally:
        bar.empty()
        stop.empty()


# --- the context of this run: what the sidebar chose and the forward pass ------------------


@dataclass(frozen=True)
class ModelChoice:
    """The model a visitor chose: their own name for it, a content key, how to read it if it
    must be loaded (None: it must be in the store already), class names and samples."""

    label: str
    key: tuple
    read: Callable[[], bytes | Path] | None
    origin: str  # "demo", "configured" or "upload"
    class_names: tuple = ()
    samples: tuple = ()


@dataclass
class Context:
    """Everything the pages draw from, chosen in the sidebar and computed once per run by app.py.

    ``pixels``: uint8 (H, W, C), the image as the model sees it; ``batch``: float32 (1, H, W, C),
    the model's input; ``scaling``: the preprocessing it went through, and ``requested``: the one
    asked for in the sidebar ("auto" or a name, which a data set pass resolves itself);
    ``result``: the forward pass over ``batch`` (predictions and the feature maps of the layers in
    scope); ``stats``: layer name -> its numbers; ``key``: the content key of this forward pass
    (model, image, scaling, scope), which the pictures drawn from it share.
    """

    choice: ModelChoice
    opened: OpenModel
    class_names: list | None
    image_label: str
    pixels: Any
    batch: Any
    scaling: str
    requested: str
    note: str
    selected: list
    per_row: int
    cmap: str
    contrast: str
    result: Activations
    stats: dict
    key: tuple


#: The context of the run in progress. A run goes from the entry to the end of its page on one
#: thread, and the value is reset when the run ends: the page sees its entry's context, no other run does.
_CONTEXT: ContextVar[Context] = ContextVar("actviz_context")


@contextmanager
def shared(context: Context) -> Iterator[None]:
    """app.py runs the page inside this; nothing holds the context (its model, its feature maps)
    once the run is over."""
    token = _CONTEXT.set(context)
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def context() -> Context:
    """The context app.py computed for this run."""
    return _CONTEXT.get()


#: The layer table's columns that need a word of explanation.
MODEL_COLUMNS = {
    "#": st.column_config.NumberColumn("#", help="The layer's number: the command line and the notebook take it instead of the name."),
    "type": st.column_config.TextColumn("type", help="The layer's kind, as Keras names it."),
    "parameters": st.column_config.TextColumn("parameters", help="How many numbers the layer learned in training (its weights)."),
    "shown": st.column_config.TextColumn("shown", help="yes: drawn on the pages without asking; on request: it has an image-like output, "
                                         "offered when the sidebar's switch for the other layers is on; no: it has no image-like output."),
}


def model_table(choice: ModelChoice, opened: OpenModel) -> None:
    """The layer table in words (``draw.tables.layer_rows``), the Keras types folded for programmers:
    the Model page, and what app.py shows while no image is given."""
    probe = opened.probe
    size = " x ".join("any" if d is None else str(d) for d in probe.input_shape)
    st.caption(
        f"The layers of **{md(choice.label)}**, from the input (top) to the answer (bottom), each with what it does. "
        f"The image enters as {size} numbers (height x width x colour channels)."
    )
    rows = layer_rows(probe.table)
    height = min(36 * (len(rows) + 1) + 4, 720)
    st.dataframe(rows, hide_index=True, height=height, column_config=MODEL_COLUMNS,
                 column_order=["#", "layer", "what it does", "output", "parameters", "shown"])
    st.caption(f"{sum(info.params for info in probe.table if info.depth == 0):,} parameters in all.")
    with st.expander("For programmers: the Keras types"):
        st.caption("The layers the way Keras's model.summary() lists them. A layer of a model nested inside this one is "
                   "indented under it, and its name starts with the nested model's name and a slash (vgg16/block1_conv1).")
        st.dataframe(rows, hide_index=True, height=height, column_config=MODEL_COLUMNS, column_order=["#", "layer", "type", "output", "parameters"])


def held_summary(context: Context) -> tuple[Summary, Source | None] | None:
    """The data set summary this visitor looked at last (and its images, if they are here), if it
    was made with this model."""
    held = st.session_state.get("_dataset")
    if held is None or held["digest"] != context.opened.loaded.digest:
        return None
    return held["summary"], held["source"]


# --- links between pages ------------------------------------------------------------------


#: Session key: set by go_to, read (once) by the run the link opens.
_LINKED = "_arrived_by_link"


def go_to(page: str, **link: Any) -> NoReturn:
    """Open another page (its file, e.g. ``"views/one_channel.py"``) with ``link`` in its address,
    for that page to read with ``followed_link``. The sidebar's choices go along (bound to the
    address, or kept for the session); see ``arrived_by_link`` for the uploads."""
    st.session_state[_LINKED] = True
    st.switch_page(page, query_params={name: str(value) for name, value in link.items()})


def arrived_by_link() -> bool:
    """Whether this run is the one a ``go_to`` opened; asked once per run, by app.py.

    On that run Streamlit has forgotten what the entry's file uploader and camera hold (it drops
    the values of the entry's widgets when st.switch_page changes page, and those two cannot keep
    theirs), while the browser still shows the file and sends it again on the next run.
    """
    return bool(st.session_state.pop(_LINKED, False))


def followed_link(*names: str) -> dict[str, str] | None:
    """The values named ``names`` in this page's address (sent by ``go_to``, or in a link someone
    shared), taken out of the address so that the visitor's own choices win from now on; None
    unless all of them are there."""
    params = st.query_params
    if not all(name in params for name in names):
        return None
    link = {name: params[name] for name in names}
    for name in names:
        del params[name]
    return link
