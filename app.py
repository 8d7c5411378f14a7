"""actviz dashboard: what a trained Keras convolutional network sees.

    streamlit run app.py

The only file that imports Streamlit. Cached loaders first, then small
``*_ui()`` functions that draw widgets and return what was chosen, then the
page. All computing happens in the ``actviz`` package.
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import streamlit as st

from actviz import demo
from actviz.compare import compare_maps
from actviz.errors import ActvizError, ImageError, ModelFileError
from actviz.explain import METHODS, grad_cam
from actviz.export import export_bundle, zip_bytes
from actviz.figures import channel_picture, overlay, tile_images
from actviz.filters import filter_patterns, first_layer_kernels
from actviz.images import open_image
from actviz.layers import CONV_TYPES
from actviz.models import OpenModel, open_model
from actviz.predictions import class_count, class_labels, class_probabilities, is_probability, predicted_class
from actviz.preprocessing import PREPROCESSING, choose_preprocessing, prepare, value_range
from actviz.text import file_name
from actviz.render import CONTRASTS, colour_maps, feature_grid, png_bytes
from actviz.stats import depth_summary, layer_stats

#: Uploads larger than this are refused in code too (server.maxUploadSize caps them first).
MAX_UPLOAD_MB = 200
#: Pixels across a grid sent to the browser; downloads are full resolution.
DISPLAY_WIDTH = 1200
IMAGE_TYPES = ["png", "jpg", "jpeg", "gif", "webp", "bmp", "tif", "tiff"]

st.set_page_config(page_title="actviz: what the network sees", page_icon=":material/visibility:", layout="wide")


def _keep_keras_state_across_reruns() -> None:
    """Stop Streamlit from calling keras.backend.clear_session() after every rerun.

    Streamlit does that to free models that a script builds on each run. Ours are
    built once and cached, so the call only costs: a full garbage collection
    over TensorFlow's objects and a cleared kernel cache, about 200 ms of every
    interaction (measured with bench/run.py). Calls from anywhere else go through.
    """
    import keras

    original = keras.backend.clear_session
    if getattr(original, "_actviz_wrapped", False):
        return

    def clear_session(*args, **kwargs):
        caller = sys._getframe(1).f_globals.get("__name__", "")
        if not caller.startswith("streamlit."):
            return original(*args, **kwargs)

    clear_session._actviz_wrapped = True
    keras.backend.clear_session = clear_session


_keep_keras_state_across_reruns()


# --- cached loaders --------------------------------------------------------------------


@dataclass(frozen=True)
class ModelChoice:
    """Where the model comes from: a label for people, a content hash, and how to read it."""

    label: str
    digest: str
    read: Callable[[], bytes | Path]
    trusted: bool = False


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)
def _path_digest(path: str, modified: float, size: int) -> str:
    """SHA-256 of a file on disk, recomputed only when the file changes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@st.cache_resource(max_entries=1, ttl=3600, show_spinner="Downloading the model ...")
def _fetch(url: str) -> tuple[bytes, str]:
    from actviz.download import fetch_model

    data = fetch_model(url)
    return data, hashlib.sha256(data).hexdigest()


@st.cache_resource(max_entries=4, ttl=6 * 3600, show_spinner=False)
def load_model(digest: str, trusted: bool, _read: Callable, _label: str) -> OpenModel:
    """The model and its activation model (actviz.Probe), once per file content."""
    source = _read()
    return open_model(None if source == demo.MODEL else source, trust=trusted, name=_label)


@st.cache_data(max_entries=16, ttl=3600, show_spinner=False)
def load_image(digest: str, model_digest: str, method: str, _data: bytes, _opened: OpenModel):
    """(uint8 (H, W, C) image as the model sees it, float32 (1, H, W, C) model input)."""
    return prepare(_opened.probe, open_image(_data), method)


@st.cache_resource(max_entries=1, ttl=3600, show_spinner=False)
def forward_pass(model_digest: str, image_digest: str, method: str, scope: str, _opened: OpenModel, _batch):
    """One forward pass for every layer in ``scope``: predictions and feature maps.

    A resource, not data: a VGG16 at 300x300 yields over 100 MB of feature maps,
    which st.cache_data would copy on every rerun. The arrays are made
    read-only so that no session can change what another sees.
    """
    probe = _opened.probe
    layers = probe.default_layers if scope == "default" else probe.spatial_layers
    result = probe.run(_batch, [info.name for info in layers])
    return _first_image(result)


def _first_image(result):
    """The one image of a batch-of-one forward pass, as read-only arrays so no session can change what another sees."""
    from actviz.probe import Activations

    single = Activations(predictions=[p[0] for p in result.predictions], maps={n: m[0] for n, m in result.maps.items()})
    for array in [*single.predictions, *single.maps.values()]:
        array.setflags(write=False)
    return single


@st.cache_data(max_entries=16, ttl=3600, show_spinner=False)
def all_stats(key: tuple, _maps: dict) -> dict:
    return {name: layer_stats(name, activation) for name, activation in _maps.items()}


@st.cache_data(max_entries=128, ttl=3600, show_spinner=False)
def grid_for_screen(key: tuple, layer: str, per_row: int, cmap: str, contrast: str, _activation) -> bytes:
    """A layer's grid sized for a screen, as PNG bytes (palette PNG: small and quick)."""
    grid = feature_grid(_activation, per_row=per_row, cmap=cmap, contrast=contrast, display_width=DISPLAY_WIDTH)
    return png_bytes(grid)


@st.cache_data(max_entries=64, ttl=3600, show_spinner=False)
def channel_png(key: tuple, layer: str, channel: int, cmap: str, _activation) -> bytes:
    from PIL import Image

    title = f"{layer}, channel {channel}" if _activation.shape[-1] > 1 else layer
    picture = channel_picture(_activation[:, :, channel], cmap=cmap, title=title)
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)
def class_map(key: tuple, layer: str, class_index: int, method: str, _opened: OpenModel, _batch):
    """Grad-CAM of one class at one layer (small arrays)."""
    return grad_cam(_opened.probe, _batch, layer=layer, class_index=class_index, method=method)


@st.cache_resource(max_entries=2, ttl=3600, show_spinner=False)
def layer_for(model_digest: str, image_digest: str, method: str, layer: str, _opened: OpenModel, _batch):
    """The comparison image's prediction and one layer's feature map (no other map is kept)."""
    return _first_image(_opened.probe.run(_batch, [layer]))


@st.cache_resource(show_spinner=False)
def pattern_store() -> tuple[threading.Lock, OrderedDict]:
    """Filter patterns computed on request, shared by all sessions (hence the lock), the 16 latest kept."""
    return threading.Lock(), OrderedDict()


@st.cache_data(max_entries=16, ttl=3600, show_spinner=False)
def depth_png(key: tuple, _stats: tuple) -> bytes:
    from actviz.figures import depth_chart

    return depth_chart(list(_stats))


# --- sidebar: each *_ui() draws widgets and returns what was chosen ---------------------


def _configured_model() -> str | None:
    value = os.environ.get("ACTVIZ_MODEL")
    if not value:
        try:
            value = st.secrets.get("ACTVIZ_MODEL")
        except Exception:  # no secrets file: nothing configured
            value = None
    return value or None


def _trust_allowed() -> bool:
    """The trust switch exists only when the app runs on localhost for its own user, or when turned on.

    "On localhost" means all of: the server listens on a loopback address only
    (``--server.address localhost``), the browser connects from this machine,
    the page was asked for as localhost, and no proxy forwarded the request.
    A Host header alone can be forged; the listening address cannot.
    """
    if os.environ.get("ACTVIZ_ALLOW_TRUST") == "1":
        return True
    loopback = ("localhost", "127.0.0.1", "::1", "[::1]")
    headers = st.context.headers
    host = (headers.get("Host") or "").rsplit(":", 1)[0]
    return (
        (st.get_option("server.address") or "") in loopback and host in loopback
        and st.context.ip_address is None and not headers.get("X-Forwarded-For")
    )


def _demo_choice() -> ModelChoice:
    stat = demo.MODEL.stat()
    return ModelChoice("bundled demo: handwritten digits", _path_digest(str(demo.MODEL), stat.st_mtime, stat.st_size), lambda: demo.MODEL)


def model_ui() -> ModelChoice:
    configured = _configured_model()
    options = (["Configured model"] if configured else []) + ["Demo: handwritten digits", "Upload a model file"]
    kind = st.sidebar.radio("Model", options, key="model_source", help="Which trained network to look inside.", bind="query-params")
    if kind == "Upload a model file":
        upload = st.sidebar.file_uploader("A Keras model file (.keras or .h5)", type=["keras", "h5", "hdf5"], key="model_upload")
        trusted = False
        if _trust_allowed():
            trusted = st.sidebar.checkbox(
                "I trust this file (allow code inside it)", key="trust_model",
                help="Only for files you made yourself: a model file with custom code can run that code on this computer.",
            )
        if upload is None:
            st.sidebar.caption("Until a file is uploaded, the demo model is shown.")
            return _demo_choice()
        if upload.size > MAX_UPLOAD_MB * 1024**2:
            st.error(f"The model file is {upload.size / 1024**2:.0f} MB; uploads may be at most {MAX_UPLOAD_MB} MB.")
            return _demo_choice()
        # hash each upload once per session: a 60 MB file costs ~40 ms to hash, on every rerun otherwise
        digests = st.session_state.setdefault("_upload_digests", {})
        if upload.file_id not in digests:
            digests.clear()
            digests[upload.file_id] = hashlib.sha256(upload.getvalue()).hexdigest()
        return ModelChoice(upload.name, digests[upload.file_id], upload.getvalue, trusted)
    if kind == "Configured model":
        try:
            if configured.lower().startswith(("http://", "https://")):
                data, digest = _fetch(configured)
                return ModelChoice(configured.rsplit("/", 1)[-1] or configured, digest, lambda: data)
            path = Path(configured).expanduser()
            if not path.is_file():
                raise ModelFileError(f"There is no model file at '{path}' (set by ACTVIZ_MODEL).")
            stat = path.stat()
            return ModelChoice(path.name, _path_digest(str(path), stat.st_mtime, stat.st_size), lambda: path)
        except ActvizError as exc:
            st.error(f"The configured model could not be opened: {exc} Showing the demo model instead.")
    return _demo_choice()


def class_names_ui(opened: OpenModel) -> list | None:
    """Names for the model's outputs: known for the demo, typed by the user otherwise."""
    if opened.class_names:
        return opened.class_names
    typed = st.sidebar.text_input(
        "Class names (optional)", key=f"classes_{opened.loaded.digest[:12]}", placeholder="e.g. normal, pneumonia",
        help="The names of the model's outputs, in order, separated by commas. Shown instead of 'class 0', 'class 1'.",
    )
    names = [name.strip() for name in typed.split(",") if name.strip()]
    return names or None


def image_ui() -> tuple[str, bytes] | None:
    kind = st.sidebar.radio("Image", ["Sample image", "Upload an image", "Camera"], key="image_source", horizontal=True, bind="query-params")
    if kind == "Upload an image":
        upload = st.sidebar.file_uploader("An image file", type=IMAGE_TYPES, key="image_upload")
        if upload is not None:
            return upload.name, upload.getvalue()
        st.sidebar.caption("Until an image is uploaded, a sample image is shown.")
    elif kind == "Camera":
        shot = st.sidebar.camera_input("Take a picture", key="camera")
        if shot is not None:
            return "camera picture", shot.getvalue()
        st.sidebar.caption("Until a picture is taken, a sample image is shown.")
    samples = {path.stem: path for path in demo.samples()}
    chosen = st.sidebar.selectbox(
        "Sample", list(samples), format_func=lambda stem: stem.replace("_", " "), key="sample",
        disabled=kind != "Sample image", bind="query-params",
    )
    return samples[chosen].name, samples[chosen].read_bytes()


def preprocessing_ui(opened: OpenModel) -> tuple[str, str]:
    labels = {"auto": "automatic (recommended)", **{k: f"{k}: {v}" for k, v in PREPROCESSING.items()}}
    requested = st.sidebar.selectbox(
        "Preprocessing", list(labels), format_func=labels.get, key="preprocess",
        help="How pixel values are scaled before they enter the model. It must match how the model was trained.",
    )
    chosen = choose_preprocessing(opened.probe, requested)
    return chosen.method, chosen.note


def layers_ui(opened: OpenModel) -> tuple[str, list[str]]:
    probe = opened.probe
    every = st.sidebar.toggle(
        "Show every layer with an image-like output", key="all_layers",
        help="By default only convolution and pooling layers are offered, as in the original notebook.",
    )
    scope = "all" if every else "default"
    offered = [info.name for info in (probe.spatial_layers if every else probe.default_layers)]
    convs = [info.name for info in probe.default_layers if info.type in CONV_TYPES]
    default = [convs[0], convs[-1]] if len(convs) > 1 else offered[:1]
    key = f"layers_{opened.loaded.digest[:12]}_{scope}"
    chosen = st.sidebar.multiselect(
        "Layers to show", offered, default=default, key=key, help="In network order, from the input to the output.",
        bind="query-params",
    )
    return scope, [name for name in offered if name in chosen]


def view_ui() -> tuple[int, str, str]:
    per_row = st.sidebar.slider("Channels per row", 4, 64, 16, key="per_row", bind="query-params")
    cmap = st.sidebar.selectbox("Colour map", colour_maps(), key="cmap", bind="query-params")
    contrast = st.sidebar.radio(
        "Contrast", list(CONTRASTS), key="contrast", format_func=lambda k: "per channel" if k == "channel" else "shared across the layer",
        help=" / ".join(CONTRASTS.values()),
    )
    return per_row, cmap, contrast


# --- the page ----------------------------------------------------------------------------


def depth_words(position: int, count: int) -> str:
    """What to notice in a layer, in plain words, from where it sits in the network."""
    where = position / max(count - 1, 1)
    if where < 0.34:
        return ("An early layer. Each small picture is one filter's answer to the image: most act as edge and stroke "
                "detectors, and the image is still easy to recognise.")
    if where < 0.67:
        return ("A middle layer. Filters combine edges into textures and parts; the pictures look less like the image "
                "and more of them go dark.")
    return ("A deep layer. Filters respond to abstract patterns linked to the answer; the pictures no longer look like "
            "the image, and many are blank (one flat colour): the pattern that filter looks for is not in this image.")


def header(opened: OpenModel, class_names: list | None, name: str, pixels, predictions, note: str) -> None:
    left, right = st.columns([1, 3])
    with left:
        st.image(pixels if pixels.shape[-1] == 3 else pixels[:, :, 0], caption=f"{name}, as the model sees it "
                 f"({pixels.shape[1]} x {pixels.shape[0]} pixels)", width=200)
    with right:
        if is_probability(predictions[0]):
            ranked = class_probabilities(predictions[0], class_names)
            best, probability = ranked[0]
            st.markdown(f"#### The model says: **{best}** ({probability:.1%} sure)")
            for label, value in ranked[:3]:
                st.progress(value, text=f"{label}: {value:.1%}")
        else:  # scores or a regression: show the numbers, not made-up percentages
            values = ", ".join(f"{v:.4g}" for v in predictions[0].ravel()[:10])
            st.markdown(f"#### The model's output: {values}")
            st.caption("These are not probabilities (the model has no softmax or sigmoid at its end), so they are shown as they are.")
        st.caption(note + ("" if class_names else " Class names are unknown for this model: type them in the sidebar."))
        for remark in opened.loaded.notes:
            st.caption(remark)


def _deferred_bundle(opened, batch, names, per_row, cmap, contrast, *, pick: str | None = None, npz: bool = False):
    """A download computed when clicked, from the model and the image only.

    Download buttons keep their callables for the whole session; capturing the
    feature maps here would keep 100+ MB alive per visitor after the cache let
    them go. Clicking costs one forward pass instead.
    """
    def build() -> bytes:
        files, _ = export_bundle(opened.probe, batch, names, per_row=per_row, cmap=cmap, contrast=contrast, npz=npz)
        if pick:
            return next(data for file, data in files.items() if file.endswith(pick))
        return zip_bytes(files)

    return build


def feature_maps_view(key, opened, batch, result, stats, selected, per_row, cmap, contrast) -> None:
    st.caption(
        "A **feature map** is what one layer of the network makes of the image. Each small picture below is one "
        "channel: the answer of one learned filter. Bright means the filter found its pattern there; a picture in one "
        "flat colour is blank: that filter found nothing."
    )
    if not selected:
        st.info("Choose one or more layers in the sidebar.")
        return
    order = list(result.maps)
    for name in selected:
        info = opened.probe.layer(name)
        numbers = stats[name]
        height, width, channels = numbers.shape
        st.markdown(f"##### {name} · {info.type} · {height} x {width} x {channels} · {len(numbers.blank)} of {channels} channels blank")
        st.caption(depth_words(order.index(name), len(order)))
        activation = result.maps[name]
        st.image(grid_for_screen(key, name, per_row, cmap, contrast, activation), width="content")
        st.download_button(
            "Download this grid at full resolution (PNG)", key=f"png_{name}", on_click="ignore", mime="image/png",
            file_name=f"{file_name(name)}.png", data=_deferred_bundle(opened, batch, [name], per_row, cmap, contrast, pick=".png"),
        )


def channel_view(key, result, stats, cmap) -> None:
    st.caption(
        "One channel up close: the answer of a single filter, with its actual values. The most active channels of the "
        "layer are listed first."
    )
    layer = st.selectbox("Layer", list(result.maps), key="channel_layer", bind="query-params")
    numbers = stats[layer]
    activation = result.maps[layer]
    means = activation.mean(axis=(0, 1))
    order = [*numbers.top, *(c for c in range(numbers.channels) if c not in numbers.top)]
    channel = st.selectbox(
        "Channel", order, key=f"channel_{layer}", bind="query-params",
        format_func=lambda c: f"channel {c} (average {means[c]:.3g}{', blank' if c in numbers.blank else ''})",
    )
    values = activation[:, :, channel]
    left, right = st.columns([3, 2])
    left.image(channel_png(key, layer, channel, cmap, activation), width="content")
    right.metric("Lowest value", f"{values.min():.4g}")
    right.metric("Highest value", f"{values.max():.4g}")
    right.metric("Share of zeros", f"{(values == 0).mean():.0%}")
    right.caption("Bright areas are where this filter's pattern is in the image. All one colour: the filter found nothing.")


def _show_channel(layer: str, channel: int) -> None:
    """Callback: open the one-channel view on this layer and channel."""
    st.session_state["channel_layer"] = layer
    st.session_state[f"channel_{layer}"] = channel
    st.session_state["view"] = "One channel"


def why_view(key, opened, class_names, pixels, batch, result) -> None:
    st.caption(
        "Where did the model look? The heat map shows the parts of the image that pushed the model towards the chosen "
        "answer, as seen by one layer (Grad-CAM). Red: strong evidence; blue: none."
    )
    probe = opened.probe
    prediction = result.predictions[0]
    labels = class_labels(class_count(prediction), class_names)
    probability = dict(class_probabilities(prediction, class_names))
    convs = [info.name for info in probe.spatial_layers if info.name in result.maps and info.type in CONV_TYPES]
    left, middle, right = st.columns(3)
    class_index = left.selectbox(
        "Explain the answer", list(range(len(labels))), index=predicted_class(prediction), key="cam_class",
        format_func=lambda i: f"{labels[i]} ({probability.get(labels[i], 0):.1%})",
    )
    default_layer = probe.table.last_convolution().name
    layer = middle.selectbox("At layer", convs, index=convs.index(default_layer) if default_layer in convs else len(convs) - 1, key="cam_layer")
    method = right.radio("Method", list(METHODS), key="cam_method", horizontal=True, help=" / ".join(METHODS.values()))
    opacity = st.slider("Heat map opacity", 0.0, 1.0, 0.45, 0.05, key="cam_opacity")
    cam = class_map(key, layer, class_index, method, opened, batch)
    size = max(224, min(384, pixels.shape[1]))
    over, bare = st.columns(2)
    over.image(overlay(pixels, cam.heatmap[0], opacity=opacity), caption="The heat map over the image", width=size)
    bare.image(
        channel_png(key + ("cam", class_index, method), f"Grad-CAM at {layer}", 0, "jet", cam.heatmap[0][:, :, None]),
        caption=f"The heat map alone ({cam.heatmap.shape[1]} x {cam.heatmap.shape[2]}: the layer's own size)", width="content",
    )
    st.markdown("**These filters mattered most for this answer** (their weight in the heat map):")
    for rank, channel in enumerate(cam.ranking[0][:6], start=1):
        cols = st.columns([3, 2])
        cols[0].write(f"{rank}. channel {int(channel)} of {layer}: weight {cam.weights[0, channel]:.3g}")
        cols[1].button("Show it up close", key=f"cam_show_{rank}", on_click=_show_channel, args=(layer, int(channel)))


def filters_view(opened, method) -> None:
    st.caption(
        "What does a filter look for? Below: the first layer's filters themselves (tiny colour patterns the network "
        "learned), and, on request, an image made to excite one filter as much as possible."
    )
    probe = opened.probe
    first, kernels = first_layer_kernels(probe)
    zoom = max(1, 48 // kernels.shape[1])
    st.image(tile_images(kernels, per_row=16, gap=2, zoom=zoom), caption=f"The {len(kernels)} filters of {first}, enlarged (grey: zero weight)")
    convs = [info.name for info in probe.spatial_layers if info.type in CONV_TYPES]
    layer = st.selectbox("Layer", convs, index=len(convs) // 2, key="pattern_layer")
    channels_total = probe.layer(layer).output_shape[-1]
    channels = st.multiselect("Channels (a few at a time: this is slow on a CPU)", list(range(channels_total)), default=list(range(min(4, channels_total))), key=f"pattern_channels_{layer}", max_selections=8)
    steps = st.slider("Steps", 10, 60, 30, 5, key="pattern_steps")
    lock, store = pattern_store()
    wanted = (opened.loaded.digest, method, layer, tuple(channels), steps)
    with lock:
        patterns = store.get(wanted)
    if patterns is None and channels and st.button("Compute these patterns", key="pattern_go", type="primary"):
        bar = st.progress(0.0, text="Computing ...")
        patterns = filter_patterns(
            probe, layer, channels, steps=steps, value_range=value_range(method, probe.input_shape[-1]),
            progress=lambda step, total: bar.progress(step / total, text=f"Step {step} of {total}"),
        )
        with lock:
            store[wanted] = patterns
            while len(store) > 16:
                store.popitem(last=False)
        bar.empty()
    if patterns is not None:
        zoom = max(1, 160 // patterns.shape[1])
        st.image(tile_images(patterns, per_row=4, gap=4, zoom=zoom), caption=f"Channels {', '.join(map(str, channels))} of {layer}: what each responds to most")
        st.caption("A picture that stays plain noise belongs to a filter that did not respond at all to the starting image, so there was nothing to climb.")
    elif channels:
        st.info("Press the button to compute. Choosing something else stops the computation.")


def compare_view(key, opened, method, pixels, result, per_row, cmap, class_names) -> None:
    st.caption(
        "Two images through the same layer, on one colour scale, so equal colours mean equal responses. The third grid "
        "shows the difference (red: stronger for the first image, blue: stronger for the second)."
    )
    samples = {path.stem: path for path in demo.samples()}
    source = st.radio("Second image", ["Sample image", "Upload"], key="compare_source", horizontal=True)
    if source == "Upload":
        upload = st.file_uploader("Second image", type=IMAGE_TYPES, key="compare_upload")
        if upload is None:
            st.info("Upload a second image to compare.")
            return
        other_name, other_bytes = upload.name, upload.getvalue()
    else:
        stem = st.selectbox("Sample", list(samples), index=min(1, len(samples) - 1), key="compare_sample", format_func=lambda s: s.replace("_", " "))
        other_name, other_bytes = samples[stem].name, samples[stem].read_bytes()
    layer = st.selectbox("Layer", list(result.maps), key="compare_layer")
    other_digest = hashlib.sha256(other_bytes).hexdigest()
    try:
        other_pixels, other_batch = load_image(other_digest, key[0], method, other_bytes, opened)
    except ImageError as exc:
        st.error(f"The second image cannot be used: {exc}")
        return
    other = layer_for(key[0], other_digest, method, layer, opened, other_batch)
    rows = min(per_row, 8)  # two grids side by side: fewer, larger tiles
    comparison = compare_maps(
        result.maps[layer], other.maps[layer], per_row=rows, cmap=cmap, display_width=DISPLAY_WIDTH // 2,
        difference_layout=(rows * 2, DISPLAY_WIDTH),
    )
    columns = st.columns(2)
    for column, title, picture, prediction, grid in (
        (columns[0], "First image (chosen in the sidebar)", pixels, result.predictions[0], comparison.grid_a),
        (columns[1], f"Second image: {other_name}", other_pixels, other.predictions[0], comparison.grid_b),
    ):
        best, chance = class_probabilities(prediction, class_names)[0]
        column.markdown(f"**{title}**  \nThe model says: **{best}** ({chance:.1%})")
        column.image(picture if picture.shape[-1] == 3 else picture[:, :, 0], width=120)
        column.image(png_bytes(grid), width="content")
    st.markdown("**Difference** (first minus second; white: the same, red: stronger for the first image, blue: for the second)")
    st.image(png_bytes(comparison.difference), width="content")
    st.markdown("**Channels that respond most differently** (how far apart, in standard deviations of that channel)")
    ranked = [int(c) for c in comparison.ranking]
    channel = st.selectbox(
        "Look at one channel in both images", ranked, key=f"compare_channel_{layer}",
        format_func=lambda c: f"channel {c}: {comparison.scores[c]:.2f} apart",
    )
    a, b = result.maps[layer][:, :, channel], other.maps[layer][:, :, channel]
    shared = (float(min(a.min(), b.min())), float(max(a.max(), b.max())))  # one colour scale for both
    left, right = st.columns(2)
    left.image(channel_picture(a, cmap=cmap, size=320, title=f"First image, channel {channel}", value_range=shared))
    right.image(channel_picture(b, cmap=cmap, size=320, title=f"Second image, channel {channel}", value_range=shared))


def statistics_view(key, stats) -> None:
    ordered = list(stats.values())
    st.caption(
        "How active each layer is, from the input to the output. **Zero values** (sparsity): the share of the layer's "
        "numbers that are exactly zero. **Blank channels**: filters that found nothing at all in this image."
    )
    if len(ordered) > 1:
        st.markdown(depth_summary(ordered))
        st.image(depth_png(key, tuple(ordered)), width="content")
    rows = [{
        "layer": s.name, "size": f"{s.shape[0]} x {s.shape[1]}", "channels": s.channels,
        "zero values": f"{s.sparsity:.0%}", "blank channels": f"{len(s.blank)} of {s.channels}",
        "average": f"{s.mean:.3g}", "highest": f"{s.max:.3g}",
        "most active channels": ", ".join(map(str, s.top[:5])),
    } for s in ordered]
    st.dataframe(rows, hide_index=True, height=min(36 * (len(rows) + 1) + 4, 720))
    st.caption("The same numbers, with the list of blank channels, are in stats.csv inside the ZIP download.")


def model_view(opened: OpenModel) -> None:
    probe = opened.probe
    st.caption(
        f"The layers of **{opened.name}**, in order, the way Keras's model.summary() lists them. Layers inside a nested "
        f"model are indented and named 'outer/inner'. Input: {' x '.join('any' if d is None else str(d) for d in probe.input_shape)}."
    )
    rows = [{
        "#": info.index, "layer": "\u2003" * info.depth + info.name, "type": info.type,
        "output shape": " x ".join("?" if d is None else str(d) for d in info.output_shape) or "-",
        "parameters": f"{info.params:,}", "shown": "yes" if info.default_view else ("on request" if info.spatial else "no"),
    } for info in probe.table]
    st.dataframe(rows, hide_index=True, height=min(36 * (len(rows) + 1) + 4, 720))
    st.caption(f"{opened.loaded.model.count_params():,} parameters in all.")


def downloads(opened, batch, names, per_row, cmap, contrast) -> None:
    left, right = st.columns(2)
    left.download_button(
        "All grids and statistics (ZIP)", data=_deferred_bundle(opened, batch, names, per_row, cmap, contrast),
        file_name="actviz_grids.zip", mime="application/zip", on_click="ignore", key="zip",
    )
    right.download_button(
        "Raw activations (NumPy .npz)", data=_deferred_bundle(opened, batch, names, per_row, cmap, contrast, pick=".npz", npz=True),
        file_name="actviz_activations.npz", on_click="ignore", key="npz",
    )


def main() -> None:
    st.title("What the network sees")
    st.markdown(
        "A convolutional network looks at an image in stages, called layers. Below, each layer's **feature maps** show "
        "what it picked out of your image: early layers find edges, deeper layers find abstract patterns."
    )
    st.sidebar.header("Choices")
    choice = model_ui()
    try:
        with st.spinner("Opening the model ..."):
            opened = load_model(choice.digest, choice.trusted, choice.read, choice.label)
    except ActvizError as exc:
        st.error(f"This model cannot be shown: {exc}")
        choice = _demo_choice()
        opened = load_model(choice.digest, False, choice.read, choice.label)
        st.info("Showing the demo model instead.")
    class_names = class_names_ui(opened)
    name, image_bytes = image_ui()
    method, note = preprocessing_ui(opened)
    scope, selected = layers_ui(opened)
    per_row, cmap, contrast = view_ui()

    image_digest = hashlib.sha256(image_bytes).hexdigest()
    try:
        pixels, batch = load_image(image_digest, choice.digest, method, image_bytes, opened)
    except ImageError as exc:
        st.error(f"This image cannot be used: {exc}")
        st.info("Choose another image in the sidebar.")
        return
    with st.spinner("Running the image through the network ..."):
        result = forward_pass(choice.digest, image_digest, method, scope, opened, batch)
    key = (choice.digest, image_digest, method, scope)
    stats = all_stats(key, result.maps)

    header(opened, class_names, name, pixels, result.predictions, note)
    maps_tab, channel_tab, why_tab, filters_tab, compare_tab, stats_tab, model_tab = st.tabs(
        ["Feature maps", "One channel", "Why this answer", "What filters look for", "Compare two images", "Layer statistics", "Model"],
        key="view", bind="query-params",
    )
    if maps_tab.open:
        with maps_tab:
            feature_maps_view(key, opened, batch, result, stats, selected, per_row, cmap, contrast)
            downloads(opened, batch, list(result.maps), per_row, cmap, contrast)
    if channel_tab.open:
        with channel_tab:
            channel_view(key, result, stats, cmap)
    if why_tab.open:
        with why_tab:
            why_view(key, opened, class_names, pixels, batch, result)
    if filters_tab.open:
        with filters_tab:
            filters_view(opened, method)
    if compare_tab.open:
        with compare_tab:
            compare_view(key, opened, method, pixels, result, per_row, cmap, class_names)
    if stats_tab.open:
        with stats_tab:
            statistics_view(key, stats)
    if model_tab.open:
        with model_tab:
            model_view(opened)


try:
    main()
except ActvizError as exc:  # a user mistake that slipped past a view: say it plainly, keep the page
    st.error(str(exc))
except Exception as exc:  # a bug: report it without a traceback
    st.error(f"Something went wrong inside actviz (this is a bug, not your mistake): {type(exc).__name__}: {exc}")
