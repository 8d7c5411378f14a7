"""actviz dashboard: what a trained Keras convolutional network sees.

    streamlit run app.py

The only file that imports Streamlit. Shared, bounded stores first (one per
server, keyed by content so visitors share work without evicting or seeing
each other's), then small ``*_ui()`` functions that draw widgets and return
what was chosen, then one function per view and ``main()``, a table of views.
Everything computed comes from the ``actviz`` package.
"""

from __future__ import annotations

import inspect
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import streamlit as st

from actviz import demo
from actviz.draw.compare import compare_maps, shared_range
from actviz.dataset import Source, Summary, demo_digits, open_source, summarize
from actviz.dataset.summary import SummaryLimits
from actviz.dataset.report import output_files, prediction_rows, top_image_rows
from actviz.dataset.views import (
    CAPTIONS, cache_key, cell_heatmaps, channel_ranking, class_heatmaps, confusion_rows, dead_channels, matching_source, mistakes,
    overview, spread_subset, top_images, top_strip,
)
from actviz.errors import ActvizError, ChoiceError, ModelFileError
from actviz.explainers.attributions import black_input
from actviz.explainers.checks import run_checks
from actviz.explainers.explain import explain
from actviz.draw.export import export_bundle, zip_bytes
from actviz.draw.figures import channel_picture, depth_chart, overlay, picture_png, tile_images
from actviz.featurevis.patterns import find_patterns, first_layer_kernels
from actviz.inputs.images import open_image
from actviz.serve.jobs import Limits, with_deadline
from actviz.safety.loading import file_digest
from actviz.explainers.registry import BASELINES, FAMILIES, FILLS, METHOD_INFO
from actviz.safety.models import OpenModel, open_model
from actviz.explainers.occlusion import default_patch
from actviz.core.predictions import class_count, class_labels, class_probabilities, is_probability, parse_class_names, predicted_class
from actviz.inputs.preprocessing import PREPROCESSING, choose_preprocessing, prepare
from actviz.core.probe import Activations
from actviz.draw.grids import CONTRASTS, colour_maps, feature_grid, png_bytes
from actviz.inputs.samples import Sample, sample_images
from actviz.serve.server import Server
from actviz.serve.server import server as shared_server
from actviz.settings import value as setting_value
from actviz.draw.stats import channel_numbers, depth_summary, layer_caption, layer_stats
from actviz.text import file_name, markdown_text
from actviz.serve.trust import trust_switch_allowed

#: Pixels across a grid sent to the browser; downloads are full resolution.
DISPLAY_WIDTH = 1200
IMAGE_TYPES = ["png", "jpg", "jpeg", "gif", "webp", "bmp", "tif", "tiff"]

log = logging.getLogger("actviz.app")
st.set_page_config(page_title="actviz: what the network sees", page_icon=":material/visibility:", layout="wide")


def _keep_keras_state_across_reruns() -> None:
    """Stop Streamlit from calling keras.backend.clear_session() after every rerun.

    Streamlit does that to free models that a script builds on each run. Ours are
    built once and shared, so the call only costs: a full garbage collection
    over TensorFlow's objects and a cleared kernel cache, about 200 ms of every
    interaction (measured with bench/run.py). Calls from anywhere else go through.
    """
    import keras

    original = keras.backend.clear_session
    if getattr(original, "_actviz_wrapped", False):
        return

    def clear_session(*args, **kwargs):
        caller = inspect.currentframe().f_back.f_globals.get("__name__", "")
        if not caller.startswith("streamlit."):
            return original(*args, **kwargs)

    clear_session._actviz_wrapped = True
    keras.backend.clear_session = clear_session


_keep_keras_state_across_reruns()


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


def _shown(key: tuple, compute: Callable[[], Any]) -> Any:
    """Something drawn or computed for the screen, from the server's bounded store of pictures
    (keyed by content, so visitors share it); arrays come back read-only."""
    def frozen() -> Any:
        value = compute()
        for array in value if isinstance(value, tuple) else (value,):
            if hasattr(array, "setflags"):
                array.setflags(write=False)
        return value

    return server().pictures.get(key, frozen)


def _path_digest(path: Path) -> str:
    """SHA-256 of a file on disk, recomputed only when the file changes."""
    stat = path.stat()
    return server().files.get((str(path), stat.st_mtime_ns, stat.st_size), lambda: file_digest(path.read_bytes()))


def load_image(digest: str, model_key: tuple, method: str, data: bytes, opened: OpenModel):
    """(uint8 (H, W, C) image as the model sees it, float32 (1, H, W, C) model input)."""
    return _shown(("image", digest, model_key, method), lambda: prepare(opened.probe, open_image(data), method))


def all_stats(key: tuple, maps: dict) -> dict:
    return _shown(("stats", key), lambda: {name: layer_stats(name, activation[0]) for name, activation in maps.items()})


def grid_for_screen(key: tuple, layer: str, per_row: int, cmap: str, contrast: str, activation) -> bytes:
    """A layer's grid sized for a screen, as PNG bytes (palette PNG: small and quick)."""
    return _shown(("grid", key, layer, per_row, cmap, contrast), lambda: png_bytes(
        feature_grid(activation, per_row=per_row, cmap=cmap, contrast=contrast, display_width=DISPLAY_WIDTH)))


def channel_png(key: tuple, title: str, channel: int, cmap: str, activation) -> bytes:
    return _shown(("channel", key, title, channel, cmap), lambda: picture_png(channel_picture(activation[:, :, channel], cmap=cmap, title=title)))


def depth_png(key: tuple, stats: tuple) -> bytes:
    return _shown(("depth", key), lambda: depth_chart(list(stats)))


def real_images_strip(key: tuple, summary, source, probe):
    """The crops of a channel's four strongest images of a data set, side by side (None: none readable)."""
    return _shown(("strip", key), lambda: top_strip(summary, source, key[-2], key[-1], probe=probe))


def _summary_key(summary: Summary, layer: str, channel: int) -> tuple:
    meta = summary.meta
    return (meta.get("model_digest"), meta.get("fingerprint"), meta.get("preprocessing"), summary.count, layer, int(channel))


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


def run_job(what: str, work: Callable[[Callable[[int, int], None]], Any], *, key: str, unit: str = "steps") -> Any:
    """An expensive job with a progress bar and a Stop button: it waits its turn in the server's
    queue, and stops at the server's time limit, at a Stop, or at any other choice (each reruns the
    page, which ends the job at its next step)."""
    st.button("Stop", key=f"stop_{key}", help="Stop this computation.")
    bar = st.progress(0.0, text=f"{what} ...")
    started: list[float] = []

    def step(done: int, total: int) -> None:
        if not started:
            started.append(time.monotonic())
        words = f"{what}: {done:,} of {total:,} {unit}"
        seconds = time.monotonic() - started[0]
        if done and seconds > 1:
            rate = done / seconds
            words += f" · {rate:,.1f} {unit}/s · about {max(0.0, (total - done) / rate):,.0f} s left"
        bar.progress(min(1.0, done / max(total, 1)), text=words)

    try:
        return queued(what, lambda: work(with_deadline(step, server().limits.job_seconds, what=what)))
    finally:
        bar.empty()


def _md(text: Any) -> str:
    """Text from a file or a visitor, shown literally in Markdown (no links, no formatting)."""
    return markdown_text(text)


# --- sidebar: each *_ui() draws widgets and returns what was chosen ---------------------


def _setting(name: str) -> Any:
    """An operator's setting (actviz.settings): the environment variable, else the Streamlit secret of that name."""
    return setting_value(name, fallback=_secrets())


def _trust_allowed() -> bool:
    """The trust switch only for one local user, or where the operator turned it on (see actviz.serve.trust)."""
    headers = dict(st.context.headers)
    return trust_switch_allowed(
        operator_allows=bool(_setting("ACTVIZ_ALLOW_TRUST")), server_address=st.get_option("server.address"),
        host=headers.get("Host"), remote_loopback=st.context.ip_address is None, headers=headers,
    )


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


def _demo_choice() -> ModelChoice:
    samples = tuple(Sample(path, path.stem.replace("_", " ")) for path in demo.samples())
    return ModelChoice(
        demo.NAME, (_path_digest(demo.MODEL), False), lambda: demo.MODEL, "demo",
        tuple(demo.class_names()), samples,
    )


def _configured_choice(where: str) -> ModelChoice:
    """The operator's model (ACTVIZ_MODEL: a path or an http(s) address), names and samples."""
    names = tuple(parse_class_names(_setting("ACTVIZ_CLASSES")) or ())
    folder, samples = _setting("ACTVIZ_SAMPLES"), ()
    if folder:
        try:
            samples = tuple(sample_images(folder))
        except ActvizError as exc:  # the model still works: visitors upload their own images
            st.warning(f"The sample images set by ACTVIZ_SAMPLES cannot be offered: {_md(exc)}")
    if where.lower().startswith(("http://", "https://")):
        digest, read = _downloaded(where)
        return ModelChoice(where.rsplit("/", 1)[-1] or where, (digest, False), read, "configured", names, samples)
    path = Path(where).expanduser()
    if not path.is_file():
        raise ModelFileError(f"There is no model file at '{path}' (set by ACTVIZ_MODEL).")
    return ModelChoice(path.name, (_path_digest(path), False), lambda: path, "configured", names, samples)


def _downloaded(url: str) -> tuple[str, Callable[[], bytes]]:
    """The digest of the model at ``url`` and how to read it: downloaded once to learn the digest
    (the bytes kept only for this run), again only if the model must be loaded again later."""
    from actviz.safety.download import fetch_model

    digest = server().files.peek(("url", url))
    if digest is not None:
        return digest, lambda: fetch_model(url)
    with st.spinner("Downloading the model ..."):
        data = fetch_model(url)
    digest = file_digest(data)
    server().files.put(("url", url), digest)
    return digest, lambda: data


def _upload_choice() -> ModelChoice | None:
    """The visitor's uploaded model, read once: its bytes go to the loader and are then let go
    (the uploader is reset), so a large file is held once per content, not once per visitor."""
    limit = server().limits.upload_mb
    count = st.session_state.setdefault("_model_uploads", 0)
    upload = st.sidebar.file_uploader(f"A Keras model file (.keras or .h5, up to {limit} MB)", type=["keras", "h5", "hdf5"], key=f"model_upload_{count}")
    trusted = False
    if _trust_allowed():
        trusted = st.sidebar.checkbox(
            "I trust this file (allow code inside it)", key="trust_model",
            help="Only for files you made yourself: a model file with custom code can run that code on this computer.",
        )
    if upload is not None:
        st.session_state["_model_uploads"] = count + 1  # the next run shows an empty uploader: Streamlit lets the bytes go
        if upload.size > limit * 1024**2:
            raise ModelFileError(f"The model file is {upload.size / 1024**2:.0f} MB; uploads may be at most {limit} MB here.")
        server().budget.refuse_over("models", upload.size, "This model file")
        data = upload.getvalue()
        return ModelChoice(upload.name, (file_digest(data), trusted), lambda: data, "upload")
    held = st.session_state.get("_uploaded_model")
    if held is None:
        return None
    st.sidebar.caption(f"Using your upload: {_md(held['label'])}. Upload another file to replace it.")
    return ModelChoice(held["label"], held["key"], None, "upload")


def model_ui() -> ModelChoice:
    configured = _setting("ACTVIZ_MODEL")
    options = (["Configured model"] if configured else []) + ["Demo: handwritten digits", "Upload a model file"]
    kind = st.sidebar.radio("Model", options, key="model_source", help="Which trained network to look inside.", bind="query-params")
    try:
        if kind == "Upload a model file":
            chosen = _upload_choice()
            if chosen is not None:
                return chosen
            st.sidebar.caption("Until a file is uploaded, the demo model is shown.")
        elif kind == "Configured model":
            return _configured_choice(configured)
    except ActvizError as exc:
        st.error(f"This model cannot be used: {_md(exc)} Showing the demo model instead.")
    return _demo_choice()


def open_chosen(choice: ModelChoice) -> OpenModel:
    """The chosen model from the shared store, loaded (through the job queue) if it is not there."""
    store = server().models
    opened = store.peek(choice.key)
    if opened is not None:
        return opened
    if choice.read is None:
        st.session_state.pop("_uploaded_model", None)
        raise ModelFileError("The model you uploaded was unloaded to make room for others' models; please upload it again.")
    digest, trusted = choice.key

    def load() -> OpenModel:
        source = choice.read()
        # a visitor's file is loaded and run once in a separate process first (actviz.safety.isolation)
        isolate = "vet" if choice.origin == "upload" else None
        return open_model(None if source == demo.MODEL else source, trust=trusted, name=choice.label, isolate=isolate)

    words = "Checking the model in a separate process, then opening it ..." if choice.origin == "upload" and not trusted else "Opening the model ..."
    with st.spinner(words):
        opened = queued("Opening the model", lambda: store.get(choice.key, load))
    # one forward pass may take the working memory of one job on this server, no more
    opened.probe.max_bytes = min(opened.probe.max_bytes, server().forward_bytes)
    return opened


def class_names_ui(choice: ModelChoice, opened: OpenModel) -> list | None:
    """Names for the model's outputs: the demo's or the operator's, else typed by the visitor."""
    if choice.class_names:
        return list(choice.class_names)
    typed = st.sidebar.text_input(
        "Class names (optional)", key=f"classes_{choice.key[0][:12]}", placeholder="e.g. normal, pneumonia",
        help="The names of the model's outputs, in order, separated by commas. Shown instead of 'class 0', 'class 1'.",
    )
    return parse_class_names(typed)


def image_ui(choice: ModelChoice) -> tuple[str, bytes] | None:
    """The image to look at: a sample that goes with the model, an upload, or a camera picture."""
    kinds = (["Sample image"] if choice.samples else []) + ["Upload an image", "Camera"]
    kind = st.sidebar.radio("Image", kinds, key="image_source", horizontal=True, bind="query-params")
    if kind == "Upload an image":
        upload = st.sidebar.file_uploader("An image file", type=IMAGE_TYPES, key="image_upload")
        if upload is not None:
            return upload.name, upload.getvalue()
    elif kind == "Camera":
        shot = st.sidebar.camera_input("Take a picture", key="camera")
        if shot is not None:
            return "camera picture", shot.getvalue()
    if not choice.samples:
        return None
    if kind != "Sample image":
        st.sidebar.caption("Until an image is given, a sample image is shown.")
    samples = {sample.label: sample.path for sample in choice.samples}
    chosen = st.sidebar.selectbox("Sample", list(samples), key="sample", disabled=kind != "Sample image", bind="query-params")
    return chosen, samples[chosen].read_bytes()


def preprocessing_ui(opened: OpenModel):
    labels = {"auto": "automatic (recommended)", **{k: f"{k}: {v}" for k, v in PREPROCESSING.items()}}
    requested = st.sidebar.selectbox(
        "Preprocessing", list(labels), format_func=labels.get, key="preprocess",
        help="How pixel values are scaled before they enter the model. It must match how the model was trained.",
    )
    return choose_preprocessing(opened.probe, requested)


def layers_ui(choice: ModelChoice, opened: OpenModel) -> tuple[str, list[str]]:
    table = opened.probe.table
    every = st.sidebar.toggle(
        "Show every layer with an image-like output", key="all_layers",
        help="By default only convolution and pooling layers are offered, as in the original notebook.",
    )
    scope = "all" if every else "default"
    offered = [info.name for info in (table.spatial if every else table.default)]
    convs = [info.name for info in table.convolutions if info.default_view]
    default = [convs[0], convs[-1]] if len(convs) > 1 else offered[:1]
    chosen = st.sidebar.multiselect(
        "Layers to show", offered, default=default, key=f"layers_{choice.key[0][:12]}_{scope}",
        help="In network order, from the input to the output.", bind="query-params",
    )
    return scope, [name for name in offered if name in chosen]


def display_ui() -> tuple[int, str, str]:
    per_row = st.sidebar.slider("Channels per row", 4, 64, 16, key="per_row", bind="query-params")
    cmap = st.sidebar.selectbox("Colour map", colour_maps(), key="cmap", bind="query-params")
    contrast = st.sidebar.radio(
        "Contrast", list(CONTRASTS), key="contrast", format_func=lambda k: "per channel" if k == "channel" else "shared across the layer",
        help=" / ".join(CONTRASTS.values()),
    )
    return per_row, cmap, contrast


# --- the page ----------------------------------------------------------------------------


@dataclass
class Page:
    """Everything the views draw from, chosen in the sidebar and computed once per rerun."""

    choice: ModelChoice
    opened: OpenModel
    class_names: list | None
    image_label: str
    pixels: Any
    batch: Any
    scaling: str
    note: str
    selected: list
    per_row: int
    cmap: str
    contrast: str
    result: Activations
    stats: dict
    key: tuple


def header(page: Page) -> None:
    left, right = st.columns([1, 3])
    pixels = page.pixels
    with left:
        st.image(pixels if pixels.shape[-1] == 3 else pixels[:, :, 0], caption=f"{page.image_label}, as the model sees it "
                 f"({pixels.shape[1]} x {pixels.shape[0]} pixels)", width=200)
    with right:
        prediction = page.result.predictions[0][0]
        if is_probability(prediction):
            ranked = class_probabilities(prediction, page.class_names)
            best, probability = ranked[0]
            st.markdown(f"#### The model says: **{_md(best)}** ({probability:.1%} sure)")
            for label, value in ranked[:3]:
                st.progress(value, text=f"{_md(label)}: {value:.1%}")
        else:  # scores or a regression: show the numbers, not made-up percentages
            values = ", ".join(f"{v:.4g}" for v in prediction.ravel()[:10])
            st.markdown(f"#### The model's output: {values}")
            st.caption("These are not probabilities (the model has no softmax or sigmoid at its end), so they are shown as they are.")
        st.caption(_md(page.note) + ("" if page.class_names else " Class names are unknown for this model: type them in the sidebar."))
        for remark in page.opened.notes:
            st.caption(_md(remark))


def _deferred_bundle(page: Page, names: list[str], *, pick: str | None = None, npz: bool = False):
    """A download computed when clicked, from the model and the image only.

    Download buttons keep their callables for the whole session; capturing the
    feature maps here would keep 100+ MB alive per visitor after the view let
    them go. Clicking costs one forward pass instead.
    """
    opened, batch, per_row, cmap, contrast = page.opened, page.batch, page.per_row, page.cmap, page.contrast

    def build() -> bytes:
        files, _ = export_bundle(opened.probe, batch, names, per_row=per_row, cmap=cmap, contrast=contrast, npz=npz)
        if pick:
            return next(data for file, data in files.items() if file.endswith(pick))
        return zip_bytes(files)

    return build


def feature_maps_view(page: Page) -> None:
    st.caption(
        "A **feature map** is what one layer of the network makes of the image. Each small picture below is one "
        "channel: the answer of one learned filter. Bright means the filter found its pattern there; a picture in one "
        "flat colour is blank: that filter found nothing."
    )
    if not page.selected:
        st.info("Choose one or more layers in the sidebar.")
        return
    order = list(page.result.maps)
    for name in page.selected:
        info = page.opened.probe.layer(name)
        numbers = page.stats[name]
        height, width, channels = numbers.shape
        st.markdown(f"##### {_md(name)} · {_md(info.type)} · {height} x {width} x {channels} · {len(numbers.blank)} of {channels} channels blank")
        st.caption(layer_caption(order.index(name), len(order), numbers))
        st.image(grid_for_screen(page.key, name, page.per_row, page.cmap, page.contrast, page.result.maps[name][0]), width="content")
        st.download_button(
            "Download this grid at full resolution (PNG)", key=f"png_{name}", on_click="ignore", mime="image/png",
            file_name=f"{file_name(name)}.png", data=_deferred_bundle(page, [name], pick=".png"),
        )
    left, right = st.columns(2)
    left.download_button(
        "All grids and statistics (ZIP)", data=_deferred_bundle(page, order),
        file_name="actviz_grids.zip", mime="application/zip", on_click="ignore", key="zip",
    )
    right.download_button(
        "Raw activations (NumPy .npz)", data=_deferred_bundle(page, order, pick=".npz", npz=True),
        file_name="actviz_activations.npz", on_click="ignore", key="npz",
    )


def channel_view(page: Page) -> None:
    st.caption(
        "One channel up close: the answer of a single filter, with its actual values. The most active channels of the "
        "layer are listed first."
    )
    layer = st.selectbox("Layer", list(page.result.maps), key="channel_layer", bind="query-params")
    numbers = page.stats[layer]
    channel = st.selectbox(
        "Channel", numbers.channels_by_activity(), key=f"channel_{layer}", bind="query-params",
        format_func=lambda c: f"channel {c} (average {numbers.channel_means[c]:.3g}{', blank' if c in numbers.blank else ''})",
    )
    activation = page.result.maps[layer][0]
    values = channel_numbers(activation[:, :, channel])
    left, right = st.columns([3, 2])
    title = f"{layer}, channel {channel}" if activation.shape[-1] > 1 else layer
    left.image(channel_png(page.key, title, channel, page.cmap, activation), width="content")
    right.metric("Lowest value", f"{values.low:.4g}")
    right.metric("Highest value", f"{values.high:.4g}")
    right.metric("Share of zeros", f"{values.zeros:.0%}")
    right.caption("Bright areas are where this filter's pattern is in the image. All one colour: the filter found nothing.")
    held = _held_summary(page)
    if held is not None and layer in held[0].layout.names:
        right.button("The images of the data set that excite this channel most", key="channel_to_dataset",
                     on_click=_show_dataset_channel, args=(layer, channel))
    else:
        right.caption("Run the model over a data set ('Across a data set') to see the images that excite this channel most.")


def _show_channel(layer: str, channel: int) -> None:
    """Callback: open the one-channel view on this layer and channel."""
    st.session_state["channel_layer"] = layer
    st.session_state[f"channel_{layer}"] = channel
    st.session_state["view"] = "One channel"


#: Methods shown side by side at most (each is a column).
MOST_METHODS = 4


def _explanation_settings(page: Page, method: str, chosen: dict) -> dict:
    """The settings a method runs with: the visitor's ``chosen`` ones, a black pixel in the model's scaling, a fixed seed."""
    wanted = METHOD_INFO[method].settings
    settings = {"black": black_input(page.scaling, page.pixels.shape[-1])} if "black" in wanted else {}
    return settings | ({"seed": 0} if "seed" in wanted else {}) | chosen


def method_settings_ui(methods: list[str], depth: int, size: tuple[int, int]) -> dict[str, dict]:
    """The settings chosen for the slower methods among ``methods`` (the library's defaults unless
    changed), in one folded box; ``depth``: channels of the maps' layer, ``size``: the image's (H, W)."""
    chosen: dict[str, dict] = {method: {} for method in methods}
    tunable = [m for m in methods if m in ("scorecam", "smoothgrad", "integrated-gradients", "occlusion")]
    if not tunable:
        return chosen
    defaults = {m: METHOD_INFO[m].settings for m in tunable}
    with st.expander("Settings of the slower methods: fewer passes of the model are quicker, more are smoother"):
        for method in tunable:
            st.markdown(f"**{METHOD_INFO[method].title}**")
            left, right = st.columns(2)
            if method == "scorecam":
                counts = [n for n in (16, 32, 64, 128, 256) if n < depth] + [depth]
                if len(counts) == 1:
                    left.caption(f"All {depth} channels of the layer are used: one pass of the model each.")
                    continue
                used = left.select_slider(
                    "Channels used", counts, value=depth, key="why_scorecam_channels",
                    format_func=lambda n: f"all {n}" if n == depth else str(n),
                    help="Fewer: only the channels whose maps vary most (Faster Score-CAM); one pass of the model per channel.")
                chosen[method] = {"channels": None if used == depth else int(used)}
            elif method == "smoothgrad":
                chosen[method] = {
                    "samples": left.slider("Noisy copies", 4, 50, defaults[method]["samples"], key="why_smoothgrad_samples",
                                           help="One pass of the model, forward and back, per copy."),
                    "noise": right.slider("Noise, as a share of the range of values", 0.05, 0.5, defaults[method]["noise"], 0.05,
                                          key="why_smoothgrad_noise"),
                }
            elif method == "integrated-gradients":
                chosen[method] = {
                    "steps": left.slider("Steps along the path", 8, 128, defaults[method]["steps"], key="why_ig_steps",
                                         help="One pass of the model, forward and back, per step; more steps: the attributions "
                                              "add up more exactly to the change in the score (the completeness check)."),
                    "baseline": right.selectbox("Start from", list(BASELINES), key="why_ig_baseline", format_func=BASELINES.get),
                }
            else:
                shorter = min(size)
                patch = left.slider("Side of the hidden patch, in pixels", max(1, shorter // 32), max(2, shorter // 2),
                                    default_patch(*size), key="why_occlusion_patch")
                overlap = right.radio("Patches", ["side by side", "overlapping by half"], key="why_occlusion_overlap", horizontal=True)
                fill = right.selectbox("Hidden with", list(FILLS), key="why_occlusion_fill", format_func=FILLS.get)
                chosen[method] = {"patch": int(patch), "stride": int(patch) if overlap == "side by side" else max(1, int(patch) // 2),
                                  "fill": fill}
    return chosen


def methods_ui() -> list[str]:
    """The explanation methods chosen, by family, each family with its sentence."""
    chosen = []
    for family, sentence in FAMILIES.items():
        names = [name for name, info in METHOD_INFO.items() if info.family == family]
        picked = st.pills(
            sentence.split(":")[0], names, selection_mode="multi", key=f"why_{family}", default=["gradcam"] if family == "cam" else None,
            format_func=lambda name: METHOD_INFO[name].title + (" (slow)" if METHOD_INFO[name].expensive else ""),
            help=sentence,
        )
        chosen += list(picked or [])
    return chosen


def why_view(page: Page) -> None:
    st.caption(
        "Where did the model look, and which pixels made it answer as it did? Each method below answers in its own way; "
        "seeing several side by side, and checking them, tells you how far to trust them. Red: strong evidence for the "
        "chosen answer; blue: none."
    )
    table = page.opened.probe.table
    prediction = page.result.predictions[0][0]
    labels = class_labels(class_count(prediction), page.class_names)
    probability = dict(class_probabilities(prediction, page.class_names))
    convs = [info.name for info in table.convolutions]
    left, middle, right = st.columns(3)
    class_index = left.selectbox(
        "Explain the answer", list(range(len(labels))), index=predicted_class(prediction), key="cam_class",
        format_func=lambda i: f"{labels[i]} ({probability.get(labels[i], 0):.1%})",
    )
    layer = middle.selectbox("Layer of the class activation maps", convs, index=len(convs) - 1, key="cam_layer",
                             help="Deeper layers: coarser maps that speak for whole objects; earlier layers: finer detail.")
    opacity = right.slider("Heat map opacity", 0.0, 1.0, 0.45, 0.05, key="cam_opacity")
    methods = methods_ui()
    if not methods:
        st.info("Choose one or more methods above.")
        return
    if len(methods) > MOST_METHODS:
        st.warning(f"{len(methods)} methods are chosen; the first {MOST_METHODS} are shown side by side.")
        methods = methods[:MOST_METHODS]
    depth = next(info.output_shape[-1] for info in table.convolutions if info.name == layer)
    chosen = method_settings_ui(methods, depth, page.batch.shape[1:3])
    store = server().explanations
    keys = {m: (page.key, m, int(class_index), layer if METHOD_INFO[m].layer else None, tuple(sorted(chosen[m].items())))
            for m in methods}

    def compute(method: str, report=None) -> Any:
        return store.get(keys[method], lambda: explain(
            page.opened.probe, page.batch, method=method, class_index=int(class_index),
            layer=layer if METHOD_INFO[method].layer else None, progress=report,
            **_explanation_settings(page, method, chosen[method])))

    for method in methods:
        if not METHOD_INFO[method].expensive and keys[method] not in store:
            with st.spinner(f"{METHOD_INFO[method].title} ..."):
                queued(METHOD_INFO[method].title, lambda: compute(method))
    slow = [m for m in methods if keys[m] not in store]
    if slow and st.button(f"Compute {', '.join(METHOD_INFO[m].title for m in slow)} (slower: the model runs many times)", key="why_go", type="primary"):
        for method in slow:
            run_job(METHOD_INFO[method].title, lambda report: compute(method, report), key=f"why_{method}", unit="passes")
        st.rerun()
    columns = st.columns(len(methods))
    for column, method in zip(columns, methods):
        info, result = METHOD_INFO[method], store.peek(keys[method])
        column.markdown(f"**{_md(info.title)}**")
        if result is None:
            column.info("Slower method: press the button above to compute it.")
        else:
            column.image(result.overlay(page.pixels, 0, opacity=opacity), width="stretch",
                         caption=_md(result.caption(0, page.class_names)))
        column.caption(_md(info.sentence))
    done = {m: store.peek(keys[m]) for m in methods if keys[m] in store}
    ranked = next(((m, r) for m, r in done.items() if r.ranking is not None), None)
    if ranked is not None:
        method, result = ranked
        st.markdown(f"**These filters mattered most for this answer** (the largest shares of the {_md(METHOD_INFO[method].title)} map, "
                    "each with the weight the method gave it):")
        for rank, channel in enumerate(result.ranking[0][:6], start=1):
            cols = st.columns([3, 2])
            cols[0].write(f"{rank}. channel {int(channel)} of {_md(result.layer)}: weight {result.weights[0, channel]:.3g}")
            cols[1].button("Show it up close", key=f"cam_show_{rank}", on_click=_show_channel, args=(result.layer, int(channel)))
    if done:
        _checks_ui(page, done, keys)


def _checks_ui(page: Page, done: dict, keys: dict) -> None:
    st.markdown("**Can this heat map be trusted?**")
    st.caption(
        "Two checks. Deletion and insertion: the pixels the map calls important are removed (or revealed) first; if the "
        "map is right, the answer collapses quickly (or comes back quickly). Model randomisation: the same method on the "
        "model with its learned weights replaced by random ones, from the top layer down; a map that barely changes does "
        "not depend on what the model learned (Adebayo et al. 2018). Integrated Gradients also gets its completeness gap."
    )
    method = st.selectbox("Check", list(done), format_func=lambda m: METHOD_INFO[m].title, key="why_check_method")
    store, wanted = server().explanations, keys[method] + ("checks",)
    checks = store.peek(wanted)
    if checks is None and st.button("Run the checks (the model runs many times)", key="why_checks_go"):
        checks = run_job(f"Checking {METHOD_INFO[method].title}", lambda report: store.get(wanted, lambda: run_checks(
            page.opened.probe, page.batch, done[method], black=black_input(page.scaling, page.pixels.shape[-1]), progress=report)),
            key="why_checks", unit="steps")
        st.rerun()  # draw the verdicts without the finished job's buttons
    if checks is None:
        return
    for verdict in checks.verdicts(0):
        {True: st.success, False: st.warning, None: st.info}[verdict["passed"]](_md(verdict["sentence"]))
    if checks.curves is not None:
        st.line_chart(checks.curves.rows(0), x="share", y=["deletion", "insertion"], x_label="share of pixels removed or revealed",
                      y_label="class probability", height=240)
    randomised = checks.randomisation
    if randomised is not None and randomised.maps is not None:
        st.markdown("The map as the model's weights are replaced by random ones, from the top layer down:")
        rows = randomised.rows(0)
        shown = sorted({round(i * (len(rows) - 1) / 5) for i in range(6)})  # at most six steps, the first and the last among them
        columns = st.columns(len(shown) + 1)
        columns[0].image(done[method].overlay(page.pixels, 0), caption="the trained model", width="stretch")
        for column, depth in zip(columns[1:], shown):
            row = rows[depth]
            column.image(overlay(page.pixels, randomised.maps[0, depth]), width="stretch",
                         caption=f"random down to {_md(row['layer'])}: rank correlation {row['correlation']:.2f}")


def filters_view(page: Page) -> None:
    st.caption(
        "What does a filter look for? Below: the first layer's filters themselves (tiny patterns the network learned), "
        "and, on request, pictures made to excite chosen filters (or a class) as much as possible."
    )
    probe, limits = page.opened.probe, server().limits
    first, kernels = first_layer_kernels(probe)
    st.image(tile_images(kernels, per_row=16, gap=2, zoom=max(1, 48 // kernels.shape[1])), caption=f"The {len(kernels)} filters of {_md(first)}, enlarged (grey: zero weight)")
    pick, how = st.columns(2)
    objective = pick.radio(
        "Make a picture that excites", list(OBJECTIVE_WORDS), key="pattern_objective", format_func=OBJECTIVE_WORDS.get, horizontal=True,
    )
    method = how.radio(
        "How", list(PATTERN_METHODS), key="pattern_method", format_func=PATTERN_METHODS.get, horizontal=True,
        help="Robust: the picture must keep exciting the filter when shifted, scaled and turned a little, which gives "
             "patterns people recognise. Plain: unconstrained gradient ascent (fine stripes and noise).",
    )
    layer, targets = _pattern_targets(page, objective, limits)
    top = min(256 if method == "robust" else 60, limits.pattern_steps)
    steps = st.slider("Steps", min(16, top), top, min(64 if method == "robust" else 30, top), key=f"pattern_steps_{method}",
                      help="More steps: clearer pictures, and a longer wait.")
    wanted = (page.choice.key, page.scaling, layer, tuple(targets), method, objective, steps)
    patterns = server().patterns.peek(wanted)
    if patterns is None and targets and st.button("Make these pictures", key="pattern_go", type="primary"):
        patterns = run_job("Making the pictures", lambda report: server().patterns.get(wanted, lambda: find_patterns(
            probe, layer, targets, method=method, objective=objective, steps=steps, preprocessing=page.scaling,
            class_names=page.class_names, progress=report)), key="patterns")
    if patterns is None:
        if targets:
            st.info("Press the button to make the pictures. Choosing something else stops the computation.")
        return
    captions = patterns.captions()
    held = _held_summary(page)
    columns = st.columns(min(4, len(patterns)))
    for index in range(len(patterns)):
        column = columns[index % len(columns)]
        if patterns.dead[index]:
            column.info(_md(captions[index]))
            continue
        column.image(patterns.picture(index, side=160), caption=_md(captions[index]))
        if layer == first and objective != "class":
            column.image(tile_images(kernels[patterns.targets[index]:patterns.targets[index] + 1], zoom=max(1, 48 // kernels.shape[1])),
                         caption="its kernel (the filter itself)")
        if held is not None and held[1] is not None and objective != "class" and layer in held[0].layout.names:
            strip = real_images_strip(_summary_key(held[0], layer, patterns.targets[index]), held[0], held[1], page.opened.probe)
            if strip is not None:
                column.image(strip, caption="the real images that excite it most (from the data set view)", width="stretch")
    st.caption(_md(patterns.note()))
    if held is None and objective != "class":
        st.caption("Run the model over a data set ('Across a data set') to see, beside each picture, the real images that excite the filter most.")


#: What a pattern is made to excite, in words.
OBJECTIVE_WORDS = {"channel": "channels (all over)", "neuron": "channels (at the centre)", "class": "a class"}
PATTERN_METHODS = {"robust": "robust (recommended)", "plain": "plain"}


def _pattern_targets(page: Page, objective: str, limits: Limits) -> tuple[str | None, list[int]]:
    """The layer and the channels (or classes) whose pictures are wanted."""
    most = min(8, limits.pattern_channels)
    if objective == "class":
        labels = class_labels(class_count(page.result.predictions[0][0]), page.class_names)
        chosen = st.multiselect("Classes", list(range(len(labels))), default=[predicted_class(page.result.predictions[0][0])],
                                format_func=lambda i: labels[i], key="pattern_classes", max_selections=most)
        return None, chosen
    convs = [info.name for info in page.opened.probe.table.convolutions]
    layer = st.selectbox("Layer", convs, index=len(convs) // 2, key="pattern_layer")
    total = page.opened.probe.layer(layer).output_shape[-1]
    chosen = st.multiselect(
        f"Channels (up to {most}: each takes a while on a CPU)", list(range(total)), default=list(range(min(4, total))),
        key=f"pattern_channels_{layer}", max_selections=most,
    )
    return layer, chosen


def compare_view(page: Page) -> None:
    st.caption(
        "Two images through the same layer, on one colour scale, so equal colours mean equal responses. The third grid "
        "shows the difference (red: stronger for the first image, blue: stronger for the second)."
    )
    samples = {sample.label: sample.path for sample in page.choice.samples}
    sources = (["Sample image"] if samples else []) + ["Upload"]
    source = st.radio("Second image", sources, key="compare_source", horizontal=True)
    if source == "Upload":
        upload = st.file_uploader("Second image", type=IMAGE_TYPES, key="compare_upload")
        if upload is None:
            st.info("Upload a second image to compare.")
            return
        other_name, other_bytes = upload.name, upload.getvalue()
    else:
        label = st.selectbox("Sample", list(samples), index=min(1, len(samples) - 1), key="compare_sample")
        other_name, other_bytes = label, samples[label].read_bytes()
    layer = st.selectbox("Layer", list(page.result.maps), key="compare_layer")
    other_digest = file_digest(other_bytes)
    try:
        other_pixels, other_batch = load_image(other_digest, page.choice.key, page.scaling, other_bytes, page.opened)
        other = forward_pass((page.choice.key, other_digest, page.scaling, ("layer", layer)), page.opened, other_batch, [layer], hold="_compare_result")
    except ActvizError as exc:
        st.error(f"The second image cannot be used: {_md(exc)}")
        return
    first_map, second_map = page.result.maps[layer][0], other.maps[layer][0]
    if first_map.shape != second_map.shape:
        st.error("The two images give feature maps of different sizes at this layer (the model takes any size); use images of the same size.")
        return
    per_row = min(page.per_row, 8)  # two grids side by side: fewer, larger tiles
    comparison = compare_maps(first_map, second_map, per_row=per_row, cmap=page.cmap, display_width=DISPLAY_WIDTH // 2, difference_layout=(per_row * 2, DISPLAY_WIDTH))
    columns = st.columns(2)
    for column, title, picture, prediction, grid in (
        (columns[0], "First image (chosen in the sidebar)", page.pixels, page.result.predictions[0][0], comparison.grid_a),
        (columns[1], f"Second image: {_md(other_name)}", other_pixels, other.predictions[0][0], comparison.grid_b),
    ):
        best, chance = class_probabilities(prediction, page.class_names)[0]
        column.markdown(f"**{title}**  \nThe model says: **{_md(best)}** ({chance:.1%})")
        column.image(picture if picture.shape[-1] == 3 else picture[:, :, 0], width=120)
        column.image(png_bytes(grid), width="content")
    st.markdown("**Difference** (first minus second; white: the same, red: stronger for the first image, blue: for the second)")
    st.image(png_bytes(comparison.difference), width="content")
    st.markdown("**Channels that respond most differently** (how far apart, in standard deviations of that channel)")
    channel = st.selectbox(
        "Look at one channel in both images", [int(c) for c in comparison.ranking], key=f"compare_channel_{layer}",
        format_func=lambda c: f"channel {c}: {comparison.scores[c]:.2f} apart",
    )
    a, b = first_map[:, :, channel], second_map[:, :, channel]
    scale = shared_range(a, b)
    left, right = st.columns(2)
    left.image(channel_picture(a, cmap=page.cmap, size=320, title=f"First image, channel {channel}", value_range=scale))
    right.image(channel_picture(b, cmap=page.cmap, size=320, title=f"Second image, channel {channel}", value_range=scale))


# --- across a data set -------------------------------------------------------------------


@dataclass
class DataSet:
    """The data set a visitor chose: its name in words, how to open it (None: a saved summary),
    and the saved summary if one was opened."""

    label: str
    source: Source | None = None
    summary: Summary | None = None


def _held_source(key: tuple, open_it: Callable[[], tuple[Source, int]]) -> Source:
    return server().sources.get(key, open_it)[0]


def data_ui(page: Page) -> DataSet | None:
    """Where the images come from: the demo digits, the operator's data set, a ZIP, or a saved summary."""
    configured = _setting("ACTVIZ_DATASET")
    options = (["Demo: 1,000 handwritten digits"] if page.choice.origin == "demo" else []) + (["The data set of this server"] if configured else [])
    options += ["Upload a ZIP of images", "Open a saved summary"]
    kind = st.radio("Images", options, key="dataset_source", horizontal=True,
                    help="A ZIP holds a folder of images, with one subfolder per class (like test/NORMAL, test/PNEUMONIA) or none.")
    limit = server().limits.upload_mb
    if kind.startswith("Demo"):
        return DataSet("the 1,000 demo digits (held out from the demo model's training)", _held_source(("demo",), lambda: (demo_digits(), 0)))
    if kind == "The data set of this server":
        return DataSet(f"the data set of this server ({_md(Path(configured).name)})",
                       _held_source(("configured", configured), lambda: (open_source(configured), 0)))
    if kind == "Upload a ZIP of images":
        return _zip_ui(limit)
    return _summary_file_ui(page, limit, configured)


def _read_upload(kind: str, label: str, types: list[str], limit: int) -> tuple[str, bytes] | None:
    """A visitor's file, read once: the uploader is reset at once (its key changes), so Streamlit lets
    its copy go and the server holds the bytes once per content, not once per visitor."""
    count = st.session_state.setdefault(f"_{kind}_uploads", 0)
    upload = st.file_uploader(label, type=types, key=f"dataset_{kind}_{count}")
    if upload is None:
        return None
    st.session_state[f"_{kind}_uploads"] = count + 1
    if upload.size > limit * 1024**2:
        raise ChoiceError(f"The file is {upload.size / 1024**2:.0f} MB; uploads may be at most {limit} MB here.")
    return upload.name, upload.getvalue()


def _summary_limits() -> SummaryLimits:
    """What an uploaded summary may declare on this server: the operator's caps on classes and
    images, and at most the memory the server keeps for summaries."""
    return SummaryLimits(classes=_setting("ACTVIZ_MAX_SUMMARY_CLASSES"), images=_setting("ACTVIZ_MAX_SUMMARY_IMAGES"),
                         bytes=server().budget.share("summaries"))


def _zip_ui(limit: int) -> DataSet | None:
    held = st.session_state.get("_dataset_zip")
    upload = _read_upload("zip", f"A ZIP of images (up to {limit} MB)", ["zip"], limit)
    if upload is not None:
        name, data = upload
        server().budget.refuse_over("sources", len(data), "This ZIP")
        held = {"key": ("zip", file_digest(data)), "label": name}
        st.session_state["_dataset_zip"] = held
        return DataSet(f"{_md(name)}", _held_source(held["key"], lambda: (open_source(data), len(data))))
    if held is not None and held["key"] in server().sources:
        st.caption(f"Using your upload: {_md(held['label'])}. Upload another ZIP to replace it.")
        return DataSet(f"{_md(held['label'])}", server().sources.peek(held["key"])[0])
    if held is not None:
        st.session_state.pop("_dataset_zip")
        st.warning("The ZIP you uploaded was let go to make room for other visitors' data; please upload it again.")
    st.info("Upload a ZIP of a folder of images. Files that are not images are skipped and listed.")
    return None


def _summary_file_ui(page: Page, limit: int, configured: str | None) -> DataSet | None:
    held = st.session_state.get("_dataset_summary")
    upload = _read_upload("summary", "A summary saved by this page or by `actviz dataset` (summary.npz)", ["npz"], limit)
    if upload is not None:
        name, data = upload
        held = {"key": ("file", file_digest(data)), "label": name}
        summary = server().summaries.get(held["key"], lambda: Summary.load(data, limits=_summary_limits()))
        server().budget.refuse_over("summaries", summary.nbytes, "This summary")
        st.session_state["_dataset_summary"] = held
    summary = None if held is None else server().summaries.peek(held["key"])
    if summary is None:
        if held is not None:
            st.session_state.pop("_dataset_summary")
            st.warning("The summary you opened was let go to make room for other visitors' data; please open it again.")
        st.info("Open a summary saved earlier to see it again without running the model over the images.")
        return None
    if upload is None:
        st.caption(f"Using your summary: {_md(held['label'])}. Open another file to replace it.")
    offered = [_held_source(("demo",), lambda: (demo_digits(), 0))]
    if configured and ("configured", configured) in server().sources:
        offered.append(server().sources.peek(("configured", configured))[0])
    return DataSet(f"the summary {_md(held['label'])}", matching_source(summary, offered), summary)


def dataset_view(page: Page) -> None:
    st.caption(
        "Everything else on this page is about one image. Here the model runs once over a whole folder of images, and "
        "what it learned is summed up: which images excite each channel most, which channels tell the classes apart, "
        "where the model looks on average, and which images it gets wrong while being sure of itself."
    )
    chosen = data_ui(page)
    if chosen is None:
        return
    summary = chosen.summary or _summary_ui(page, chosen)
    if summary is None:
        return
    matches = summary.meta.get("model_digest") == page.opened.loaded.digest
    if matches:  # a file may claim any model's (public) digest: its layout must fit the model before the model draws anything
        summary.check_model(page.opened.probe, limits=_summary_limits())
    source = chosen.source if matches else None
    st.session_state["_dataset"] = {"summary": summary, "source": source, "digest": summary.meta.get("model_digest")}
    if not matches:
        st.warning(f"This summary was made with another model ({_md(summary.meta.get('model', 'unknown'))}); the pictures "
                   "that need the model (top images, mistakes) are left out. Choose that model in the sidebar to see them.")
    elif source is None:
        st.caption("The images this summary was made from are not here, so its tables and heat maps are shown without the images.")
    _dataset_overview(summary)
    sections = {"Channels": _dataset_channels, "Where the model looks": _dataset_heatmaps,
                "Mistakes": _dataset_mistakes, "Dead channels": _dataset_dead, "Download": _dataset_download}
    section = st.radio("Show", list(sections), key="dataset_section", horizontal=True)
    sections[section](page, summary, source)


def _summary_ui(page: Page, chosen: DataSet) -> Summary | None:
    """The summary of the chosen data set: from the shared store, or computed on request."""
    limits = server().limits
    source = chosen.source
    subset, note = spread_subset(len(source), limits.dataset_images)
    left, right = st.columns([2, 3])
    gradcam = left.toggle("Also where the model looks (Grad-CAM)", value=True, key="dataset_gradcam",
                          help="Average heat maps per class and per kind of mistake. Costs a backward pass per batch: about twice the time.")
    right.caption(f"{_md(source.describe())}" + (f" {_md(note)}" if note else ""))
    requested = st.session_state.get("preprocess", "auto")  # "auto" is resolved (and said so) by the pass itself
    settings = {"gradcam": gradcam, "preprocessing": requested, "classes": page.class_names, "images": limits.dataset_images}
    key = cache_key(page.opened, source, **settings)
    summary = server().summaries.peek(key)
    if summary is not None:
        return summary
    if not st.button("Run the model over these images", key="dataset_go", type="primary"):
        st.info(f"Press the button to run the model over {chosen.label}. Choosing something else stops the run.")
        return None

    def compute(report: Callable[[int, int], None]) -> Summary:
        return summarize(page.opened, source, gradcam=gradcam, preprocessing=requested, class_names=page.class_names,
                         indices=subset, progress=report)

    summary = run_job("Running over the data set", lambda report: server().summaries.get(key, lambda: compute(report)),
                      key="dataset", unit="images")
    st.session_state["_dataset"] = {"summary": summary, "source": source, "digest": page.opened.loaded.digest}
    st.rerun()  # draw the result without the finished job's buttons


def _dataset_overview(summary: Summary) -> None:
    facts = overview(summary)
    columns = st.columns(4)
    columns[0].metric("Images", f"{facts['images']:,}")
    columns[1].metric("Answered right", "no labels" if facts["accuracy"] is None else f"{facts['accuracy']:.1%}")
    columns[2].metric("Classes", len(facts["classes"]))
    columns[3].metric("Files skipped", f"{facts['skipped']:,}")
    st.markdown(_md(facts["text"]))
    for note in facts["notes"]:
        st.caption(_md(note))
    if summary.skipped:
        count = len(summary.skipped)
        with st.expander(f"The {count:,} file{'s' if count != 1 else ''} that {'were' if count != 1 else 'was'} skipped, and why"):
            st.dataframe([{"file": path, "reason": reason} for _, path, reason in summary.skipped[:500]], hide_index=True)


def _dataset_channels(page: Page, summary: Summary, source: Source | None) -> None:
    st.caption(_md(CAPTIONS["channels"]))
    layers = summary.layout.names
    if st.session_state.get("dataset_layer") not in layers:
        st.session_state["dataset_layer"] = layers[-1]
    layer = st.selectbox("Layer", layers, key="dataset_layer")
    orders = {"selectivity": "how well it tells the classes apart", "activity": "how strongly it responds", "channel": "channel number"}
    if not summary.labelled:
        orders.pop("selectivity")
    order = st.radio("Rank channels by", list(orders), format_func=orders.get, key="dataset_order", horizontal=True)
    rows = channel_ranking(summary, layer, order=order)
    st.dataframe([{
        "channel": r["channel"], "selectivity": r["selectivity"], "most for": r["selective_for"], "average": r["mean"],
        "active on": f"{r['active_fraction']:.0%}", "highest": r["peak"], "dead": "dead" if r["dead"] else "",
    } for r in rows], hide_index=True, height=240)
    ranked = [r["channel"] for r in rows]
    words = {r["channel"]: r for r in rows}
    channel = st.selectbox(
        "Channel", ranked, key=f"dataset_channel_{layer}",
        format_func=lambda c: f"channel {c}" + (f" (selectivity {words[c]['selectivity']:.2f}, most for {words[c]['selective_for']})"
                                                 if words[c]["selectivity"] is not None and words[c]["selective_for"] else ""),
    )
    if layer in page.result.maps:
        st.button("Show this channel on the image chosen in the sidebar", key="dataset_to_channel", on_click=_show_channel, args=(layer, channel))
    if words[channel]["dead"]:
        st.info(f"Channel {channel} of {_md(layer)} is dead: it gave the same value on every image, so no image excites it.")
        return
    if source is None:
        st.dataframe([row for row in top_image_rows(summary, [layer]) if row["channel"] == channel], hide_index=True)
        return
    st.markdown(f"**The images that excite channel {channel} of {_md(layer)} most**")
    st.caption(_md(CAPTIONS["top_images"]))
    with st.spinner("Finding where the channel responds on its top images ..."):
        tops = top_images(summary, source, layer, channel, probe=page.opened.probe, size=160)
    columns = st.columns(3)
    for n, entry in enumerate(tops):
        with columns[n % 3]:
            both = st.columns(2)
            both[0].image(entry["activation"], caption=_md(entry["caption"]), width="stretch")
            both[1].image(entry["crop"], caption="what the channel sees there", width="stretch")


def _dataset_heatmaps(page: Page, summary: Summary, source: Source | None) -> None:
    st.caption(_md(CAPTIONS["heatmaps"]))
    classes = class_heatmaps(summary, size=192)
    if not classes:
        st.info("This summary was made without Grad-CAM. Run it again with 'Also where the model looks' switched on.")
    else:
        columns = st.columns(min(5, len(classes)))
        for n, entry in enumerate(classes):
            columns[n % len(columns)].image(entry["picture"], caption=_md(entry["caption"]), width="stretch")
    rows = confusion_rows(summary)
    if rows:
        st.markdown("**Answers for each true class** (the diagonal counts the right answers)")
        st.caption(_md(CAPTIONS["confusion"]))
        st.dataframe([{**row, "right": f"{row['right']:.1%}"} for row in rows], hide_index=True)
    cells = cell_heatmaps(summary, size=128) if classes else []
    if cells:
        st.markdown("**Where the model looks when it makes each kind of mistake**")
        columns = st.columns(6)
        for n, entry in enumerate(cells[:12]):
            columns[n % 6].image(entry["picture"], caption=_md(entry["caption"]), width="stretch")


def _dataset_mistakes(page: Page, summary: Summary, source: Source | None) -> None:
    st.caption(_md(CAPTIONS["mistakes"]))
    if not summary.labelled:
        st.info("The images have no labels, so the model's mistakes are unknown.")
        return
    if source is None:
        st.dataframe([r for r in prediction_rows(summary) if r["label"] and r["label"] != r["predicted"]][:100], hide_index=True)
        return
    with st.spinner("Looking at the mistakes ..."):
        wrong = mistakes(summary, source, probe=page.opened.probe, limit=12)
    if not wrong:
        st.success("The model answered every labelled image right.")
        return
    columns = st.columns(4)
    for n, entry in enumerate(wrong):
        columns[n % 4].image(entry["overlay"] if entry["overlay"] is not None else entry["picture"], caption=_md(entry["caption"]), width="stretch")


def _dataset_dead(page: Page, summary: Summary, source: Source | None) -> None:
    st.caption(_md(CAPTIONS["dead"]))
    st.dataframe([{**row, "share": f"{row['share']:.0%}"} for row in dead_channels(summary)], hide_index=True)


def _dataset_download(page: Page, summary: Summary, source: Source | None) -> None:
    st.caption("The summary reopens here (Open a saved summary) and with `actviz dataset --summary`. The tables are what "
               "`actviz dataset` writes: top images, channels, predictions, skipped files and the mean heat maps.")
    left, right = st.columns(2)
    left.download_button("The summary (summary.npz)", data=summary.to_bytes, file_name="summary.npz", on_click="ignore", key="dataset_npz")
    right.download_button("Tables and heat maps (ZIP)", data=lambda: zip_bytes(output_files(summary)), file_name="actviz_dataset.zip",
                          mime="application/zip", on_click="ignore", key="dataset_tables")


def _show_dataset_channel(layer: str, channel: int) -> None:
    """Callback: open the data set view on this layer and channel."""
    st.session_state["view"] = "Across a data set"
    st.session_state["dataset_section"] = "Channels"
    st.session_state["dataset_layer"] = layer
    st.session_state[f"dataset_channel_{layer}"] = channel


def _held_summary(page: Page) -> tuple[Summary, Source | None] | None:
    """The data set summary this visitor looked at last, if it was made with this model."""
    held = st.session_state.get("_dataset")
    if held is None or held["digest"] != page.opened.loaded.digest:
        return None
    return held["summary"], held["source"]


def statistics_view(page: Page) -> None:
    ordered = list(page.stats.values())
    st.caption(
        "How active each layer is, from the input to the output. **Zero values** (sparsity): the share of the layer's "
        "numbers that are exactly zero. **Blank channels**: filters that found nothing at all in this image."
    )
    if len(ordered) > 1:
        st.markdown(_md(depth_summary(ordered)))
        st.image(depth_png(page.key, tuple(ordered)), width="content")
    rows = [{
        "layer": s.name, "size": f"{s.shape[0]} x {s.shape[1]}", "channels": s.channels,
        "zero values": f"{s.sparsity:.0%}", "blank channels": f"{len(s.blank)} of {s.channels}",
        "average": f"{s.mean:.3g}", "highest": f"{s.max:.3g}",
        "most active channels": ", ".join(map(str, s.top[:5])),
    } for s in ordered]
    st.dataframe(rows, hide_index=True, height=min(36 * (len(rows) + 1) + 4, 720))
    st.caption("The same numbers, with the list of blank channels, are in stats.csv inside the ZIP download.")


def model_view(page: Page) -> None:
    _model_table(page.choice, page.opened)


def _model_table(choice: ModelChoice, opened: OpenModel) -> None:
    probe = opened.probe
    st.caption(
        f"The layers of **{_md(choice.label)}**, in order, the way Keras's model.summary() lists them. Layers inside a nested "
        f"model are indented and named 'outer/inner'. Input: {' x '.join('any' if d is None else str(d) for d in probe.input_shape)}."
    )
    rows = [{
        "#": info.index, "layer": "\u2003" * info.depth + info.name, "type": info.type,
        "output shape": " x ".join("?" if d is None else str(d) for d in info.output_shape) or "-",
        "parameters": f"{info.params:,}", "shown": "yes" if info.default_view else ("on request" if info.spatial else "no"),
    } for info in probe.table]
    st.dataframe(rows, hide_index=True, height=min(36 * (len(rows) + 1) + 4, 720))
    st.caption(f"{sum(info.params for info in probe.table if info.depth == 0):,} parameters in all.")


#: The views, in tab order: title -> function drawing it from the page.
VIEWS: dict[str, Callable[[Page], None]] = {
    "Feature maps": feature_maps_view,
    "One channel": channel_view,
    "Why this answer": why_view,
    "What filters look for": filters_view,
    "Compare two images": compare_view,
    "Across a data set": dataset_view,
    "Layer statistics": statistics_view,
    "Model": model_view,
}


def main() -> None:
    st.title("What the network sees")
    st.markdown(
        "A convolutional network looks at an image in stages, called layers. Below, each layer's **feature maps** show "
        "what it picked out of your image: early layers find edges, deeper layers find abstract patterns."
    )
    st.sidebar.header("Choices")
    choice = model_ui()
    try:
        opened = open_chosen(choice)
        if choice.origin == "upload" and choice.read is not None:  # from now on the session holds only the key
            st.session_state["_uploaded_model"] = {"label": choice.label, "key": choice.key}
    except ActvizError as exc:
        st.error(f"This model cannot be shown: {_md(exc)}")
        choice = _demo_choice()
        opened = open_chosen(choice)
        st.info("Showing the demo model instead.")
    class_names = class_names_ui(choice, opened)
    image = image_ui(choice)
    chosen = preprocessing_ui(opened)
    scope, selected = layers_ui(choice, opened)
    per_row, cmap, contrast = display_ui()
    if image is None:
        st.info("Upload an image (or take a picture) in the sidebar to see what this model makes of it.")
        _model_table(choice, opened)
        return
    image_label, image_bytes = image
    image_digest = file_digest(image_bytes)
    try:
        pixels, batch = load_image(image_digest, choice.key, chosen.scaling, image_bytes, opened)
        names = [info.name for info in (opened.probe.default_layers if scope == "default" else opened.probe.spatial_layers)]
        key = (choice.key, image_digest, chosen.scaling, scope)
        with st.spinner("Running the image through the network ..."):
            result = forward_pass(key, opened, batch, names, hold="_result")
    except ActvizError as exc:
        st.error(f"This image cannot be used: {_md(exc)}")
        st.info("Choose another image in the sidebar.")
        return
    page = Page(
        choice=choice, opened=opened, class_names=class_names, image_label=image_label, pixels=pixels, batch=batch,
        scaling=chosen.scaling, note=chosen.note, selected=selected, per_row=per_row, cmap=cmap, contrast=contrast,
        result=result, stats=all_stats(key, result.maps), key=key,
    )
    header(page)
    tabs = st.tabs(list(VIEWS), key="view", bind="query-params")
    for tab, view in zip(tabs, VIEWS.values()):
        if tab.open:
            with tab:
                view(page)


try:
    main()
except ActvizError as exc:  # a user mistake that slipped past a view: say it plainly, keep the page
    st.error(_md(exc))
except Exception as exc:  # a bug: logged with its traceback for the operator, one line for the visitor
    log.exception("unexpected failure in the dashboard")
    st.error(f"Something went wrong inside actviz (this is a bug, not your mistake): {_md(type(exc).__name__)}: {_md(exc)}")
