"""actviz dashboard: what a trained Keras convolutional network sees.

    streamlit run app.py

The entry of a multi-page app (Streamlit's st.navigation): it lists the pages, one file each in
views/, and links to every one of them at the top; shows the operator's title and description
(ACTVIZ_TITLE, ACTVIZ_DESCRIPTION); draws the sidebar the pages share (small ``*_ui()`` functions
that draw widgets and return what was chosen, the models offered as ACTVIZ_MODEL_CHOICES says),
computes the context once per run (the model opened, the image as the model sees it, the forward
pass), draws the header (the image and the model's answer), then runs the page chosen. The wiring
the pages share is views/common.py; everything computed comes from the ``actviz`` package.
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import Callable

import streamlit as st

from actviz import demo
from actviz.core.predictions import class_probabilities, is_probability, parse_class_names
from actviz.draw.figures import screen_image
from actviz.draw.grids import CONTRASTS, colour_maps
from actviz.draw.rounding import percent
from actviz.errors import ActvizError, ModelFileError
from actviz.inputs.preprocessing import PREPROCESSING, Preprocessing, choose_preprocessing
from actviz.inputs.samples import Sample, sample_images
from actviz.safety.loading import file_digest
from actviz.safety.models import OpenModel, open_model
from actviz.serve.trust import trust_switch_allowed
from actviz.settings import model_choices
from views.common import (
    IMAGE_TYPES, Context, ModelChoice, all_stats, arrived_by_link, forward_pass, load_image, md, model_table, path_digest,
    queued, server, setting, shared,
)

log = logging.getLogger("actviz.app")

#: Pixels across the image in the header: small enough to leave the answer room beside it on a phone.
IMAGE_WIDTH = 150
#: The title of every page unless the operator sets ACTVIZ_TITLE.
DEFAULT_TITLE = "What the network sees"
#: The sidebar's words for each model ACTVIZ_MODEL_CHOICES may offer (also the values of the
#: "model_source" choice in the page's address).
MODEL_SOURCES = {"model": "Configured model", "demo": "Demo: handwritten digits", "upload": "Upload a model file"}

#: The pages in the navigation's order: file, title (also what ``?view=`` named before there were
#: pages), icon, and what it shows (the navigation's tooltip).
PAGES = (
    ("views/feature_maps.py", "Feature maps", ":material/grid_view:", "One grid of feature maps per chosen layer, with downloads."),
    ("views/one_channel.py", "One channel", ":material/zoom_in:", "Any channel large, with its values; the most active channels first."),
    ("views/why.py", "Why this answer", ":material/lightbulb:",
     "Where the model looked and which pixels made it answer, side by side, with checks of whether to trust each map."),
    ("views/filters.py", "What filters look for", ":material/texture:",
     "The first layer's filters, and pictures made to excite chosen filters or a class."),
    ("views/compare.py", "Compare two images", ":material/compare:", "One layer for two images on one colour scale, and their difference."),
    ("views/dataset.py", "Across a data set", ":material/photo_library:",
     "The model run over a whole folder of images: the images each channel likes, where it looks, its mistakes."),
    ("views/concepts.py", "What the model sees", ":material/visibility:",
     "The concepts the model relies on for a class, with pieces of images and where they sit; things to check first; a test of a concept you name."),
    ("views/statistics.py", "Layer statistics", ":material/bar_chart:", "How active each layer is, from the input to the output."),
    ("views/model.py", "Model", ":material/account_tree:", "Every layer of the model, in order, with what it does."),
)


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


# --- the pages ---------------------------------------------------------------------------


def navigation() -> tuple[st.Page, dict[str, st.Page]]:
    """The page this run shows, and every page by its title. Streamlit's own navigation is hidden:
    at the top it hides pages behind a "more" menu on a projector's 1024 pixels, and on a phone it
    moves into the folded sidebar; ``navigation_ui`` draws every page instead."""
    pages = {title: st.Page(path, title=title, icon=icon, help=words, default=number == 0)
             for number, (path, title, icon, words) in enumerate(PAGES)}
    return st.navigation(list(pages.values()), position="hidden"), pages


def navigation_ui(pages: dict[str, st.Page]) -> None:
    """Every page as a link (the one shown highlighted), on as many lines as the screen needs."""
    with st.container(horizontal=True, gap="small", key="navigation"):
        for page in pages.values():
            st.page_link(page)


def follow_old_address(current: st.Page, pages: dict[str, st.Page]) -> None:
    """An address from before the pages (``?view=Why+this+answer&sample=digit+7``) opens the page
    it names, with the rest of its choices; an unknown title leaves the page as it is."""
    title = st.query_params.get("view")
    if title is None:
        return
    rest = {name: st.query_params.get_all(name) for name in st.query_params if name != "view"}
    st.switch_page(pages.get(title, current), query_params=rest)


# --- sidebar: each *_ui() draws widgets and returns what was chosen ---------------------
# The sidebar's widgets are bound to the address or kept for the session (persist_state): when a
# page opens another one (st.switch_page), Streamlit forgets the other values the entry's widgets
# hold; the image uploaded or taken with the camera is kept for that run by image_ui.


def _trust_allowed() -> bool:
    """The trust switch only for one local user, or where the operator turned it on (see actviz.serve.trust)."""
    headers = dict(st.context.headers)
    return trust_switch_allowed(
        operator_allows=bool(setting("ACTVIZ_ALLOW_TRUST")), server_address=st.get_option("server.address"),
        host=headers.get("Host"), remote_loopback=st.context.ip_address is None, headers=headers,
    )


def _demo_choice() -> ModelChoice:
    samples = tuple(Sample(path, path.stem.replace("_", " ")) for path in demo.samples())
    return ModelChoice(
        demo.NAME, (path_digest(demo.MODEL), False), lambda: demo.MODEL, "demo",
        tuple(demo.class_names()), samples,
    )


def _configured_choice(where: str) -> ModelChoice:
    """The operator's model (ACTVIZ_MODEL: a path or an http(s) address), names and samples."""
    names = tuple(parse_class_names(setting("ACTVIZ_CLASSES")) or ())
    folder, samples = setting("ACTVIZ_SAMPLES"), ()
    if folder:
        try:
            samples = tuple(sample_images(folder))
        except ActvizError as exc:  # the model still works: visitors upload their own images
            st.warning(f"The sample images set by ACTVIZ_SAMPLES cannot be offered: {md(exc)}")
    if where.lower().startswith(("http://", "https://")):
        digest, read = _downloaded(where)
        return ModelChoice(where.rsplit("/", 1)[-1] or where, (digest, False), read, "configured", names, samples)
    path = Path(where).expanduser()
    if not path.is_file():
        raise ModelFileError(f"There is no model file at '{path}' (set by ACTVIZ_MODEL).")
    return ModelChoice(path.name, (path_digest(path), False), lambda: path, "configured", names, samples)


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
            "I trust this file (allow code inside it)", key="trust_model", persist_state="session",
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
    st.sidebar.caption(f"Using your upload: {md(held['label'])}. Upload another file to replace it.")
    return ModelChoice(held["label"], held["key"], None, "upload")


def model_ui() -> ModelChoice:
    """The model to look inside, among those the operator offers (ACTVIZ_MODEL_CHOICES); no choice
    is drawn when there is only one."""
    configured = setting("ACTVIZ_MODEL")
    offered = model_choices(setting("ACTVIZ_MODEL_CHOICES"), configured=bool(configured))
    kind = offered[0]
    if len(offered) > 1:
        label = st.sidebar.radio("Model", [MODEL_SOURCES[k] for k in offered], key="model_source",
                                 help="Which trained network to look inside.", bind="query-params")
        kind = next(k for k in offered if MODEL_SOURCES[k] == label)
    # an upload not given yet shows the operator's model if visitors may see it, else the demo
    standing = "model" if "model" in offered else "demo"
    try:
        if kind == "upload":
            chosen = _upload_choice()
            if chosen is not None:
                return chosen
            st.sidebar.caption(f"Until a file is uploaded, the {'configured' if standing == 'model' else 'demo'} model is shown.")
            kind = standing
        if kind == "model":
            return _configured_choice(configured)
    except ActvizError as exc:
        st.error(f"This model cannot be used: {md(exc)} Showing the demo model instead.")
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
        "Class names (optional)", key=f"classes_{choice.key[0][:12]}", placeholder="e.g. normal, pneumonia", persist_state="session",
        help="The names of the model's outputs, in order, separated by commas. Shown instead of 'class 0', 'class 1'.",
    )
    return parse_class_names(typed)


def image_ui(choice: ModelChoice, *, linked: bool) -> tuple[str, bytes] | None:
    """The image to look at: a sample that goes with the model, an upload, or a camera picture.
    ``linked``: this run was opened by a link from another page (views.common.arrived_by_link)."""
    kinds = (["Sample image"] if choice.samples else []) + ["Upload an image", "Camera"]
    kind = st.sidebar.radio("Image", kinds, key="image_source", horizontal=True, bind="query-params")
    given = None
    if kind == "Upload an image":
        upload = st.sidebar.file_uploader("An image file", type=IMAGE_TYPES, key="image_upload")
        given = None if upload is None else (upload.name, upload.getvalue())
    elif kind == "Camera":
        shot = st.sidebar.camera_input("Take a picture", key="camera")
        given = None if shot is None else ("camera picture", shot.getvalue())
    given = _kept_across_a_link(kind, given, linked=linked)
    if given is not None:
        return given
    if not choice.samples:
        return None
    if kind != "Sample image":
        st.sidebar.caption("Until an image is given, a sample image is shown.")
    samples = {sample.label: sample.path for sample in choice.samples}
    chosen = st.sidebar.selectbox("Sample", list(samples), key="sample", disabled=kind != "Sample image", bind="query-params")
    return chosen, samples[chosen].read_bytes()


def _kept_across_a_link(kind: str, given: tuple[str, bytes] | None, *, linked: bool) -> tuple[str, bytes] | None:
    """The image the visitor gave (an upload or a camera picture), or on the run a link opens, the
    one they gave the run before: the uploader and the camera come back empty on that run only.
    The session holds the very bytes the uploader holds, not a copy."""
    held = st.session_state.get("_given_image")
    if given is None and linked and held is not None and held["kind"] == kind:
        given = held["image"]
    st.session_state["_given_image"] = None if given is None else {"kind": kind, "image": given}
    return given


def preprocessing_ui(opened: OpenModel) -> tuple[str, Preprocessing]:
    """The preprocessing asked for ("auto" or a name), and what it is for this model."""
    labels = {"auto": "automatic (recommended)", **{k: f"{k}: {v}" for k, v in PREPROCESSING.items()}}
    requested = st.sidebar.selectbox(
        "Preprocessing", list(labels), format_func=labels.get, key="preprocess", persist_state="session",
        help="How pixel values are scaled before they enter the model. It must match how the model was trained.",
    )
    return requested, choose_preprocessing(opened.probe, requested)


def layers_ui(choice: ModelChoice, opened: OpenModel) -> tuple[str, list[str]]:
    """The layers to show, in network order, and the scope of the forward pass: "default"
    (convolution and pooling layers, as in the original notebook) or "all" (every layer with an
    image-like output). The switch works only where it adds layers; the layers chosen stay chosen
    when it changes, as far as they are still offered, and those that are not are named."""
    table = opened.probe.table
    usual = {info.name for info in table.default}
    more = [info.name for info in table.spatial if info.name not in usual]
    every = st.sidebar.toggle(
        "Show every layer with an image-like output", key="all_layers", persist_state="session", disabled=not more,
        help=(f"Adds {len(more)} layer{'s' if len(more) != 1 else ''} to the convolution and pooling layers offered by default "
              f"(as in the original notebook): {', '.join(md(name) for name in more[:6])}{' ...' if len(more) > 6 else ''}." if more else
              "This model has no other layers with an image-like output: its convolution and pooling layers are all offered already."),
    ) and bool(more)
    scope = "all" if every else "default"
    offered = [info.name for info in (table.spatial if every else table.default)]
    key = f"layers_{choice.key[0][:12]}"
    held = st.session_state.get(key)
    default = None
    if held is None:
        convs = [info.name for info in table.convolutions if info.default_view]
        default = [convs[0], convs[-1]] if len(convs) > 1 else offered[:1]
    else:
        dropped = [name for name in held if name not in offered]
        if dropped:
            st.sidebar.caption(f"Shown only with every layer: {', '.join(md(name) for name in dropped)}.")
        ordered = [name for name in offered if name in held]  # network order, as the help says, whatever the order of the clicks
        if ordered != list(held):
            st.session_state[key] = ordered
    chosen = st.sidebar.multiselect("Layers to show", offered, default=default, key=key,
                                    help="In network order, from the input to the output.", bind="query-params")
    return scope, [name for name in offered if name in chosen]


def display_ui() -> tuple[int, str, str]:
    per_row = st.sidebar.slider("Channels per row", 4, 64, 16, key="per_row", bind="query-params")
    cmap = st.sidebar.selectbox("Colour map", colour_maps(), key="cmap", bind="query-params")
    contrast = st.sidebar.radio(
        "Contrast", list(CONTRASTS), key="contrast", format_func=lambda k: "per channel" if k == "channel" else "shared across the layer",
        help=" / ".join(CONTRASTS.values()), persist_state="session",
    )
    return per_row, cmap, contrast


# --- the frame around every page ---------------------------------------------------------


def header(context: Context) -> None:
    """The image as the model sees it, and the model's answer beside it on every screen: a row that
    never wraps, the image at a fixed width, so the answer is neither under the image (columns ran
    over it at 1024 pixels) nor pushed below the first screen of a phone (columns stack there)."""
    row = st.container(horizontal=True, wrap=False, gap="medium")
    pixels = context.pixels
    with row.container(width=IMAGE_WIDTH):
        st.image(screen_image(pixels), caption=f"{context.image_label}, as the model sees it "
                 f"({pixels.shape[1]} x {pixels.shape[0]} pixels)", width="stretch")
    with row.container():
        prediction = context.result.predictions[0][0]
        if is_probability(prediction):
            ranked = class_probabilities(prediction, context.class_names)
            best, probability = ranked[0]
            st.markdown(f"#### The model says: **{md(best)}** ({percent(probability)} sure)")
            for label, value in ranked[:3]:
                st.progress(value, text=f"{md(label)}: {percent(value)}")
        else:  # scores or a regression: show the numbers, not made-up percentages
            values = ", ".join(f"{v:.4g}" for v in prediction.ravel()[:10])
            st.markdown(f"#### The model's output: {values}")
            st.caption("These are not probabilities (the model has no softmax or sigmoid at its end), so they are shown as they are.")
        st.caption(md(context.note) + ("" if context.class_names else " Class names are unknown for this model: type them in the sidebar."))
        for remark in context.opened.notes:
            st.caption(md(remark))


def title_ui(title: str) -> None:
    """The title, and the operator's description of the model and its data (ACTVIZ_DESCRIPTION:
    Markdown; any HTML in it is shown as text), then what feature maps are."""
    st.title(md(title))
    description = setting("ACTVIZ_DESCRIPTION")
    if description:
        st.markdown(description)
    st.markdown(
        "A convolutional network looks at an image in stages, called layers. Each layer's **feature maps** show "
        "what it picked out of the image: early layers find edges, deeper layers find abstract patterns."
    )


def main() -> None:
    current, pages = navigation()
    title = setting("ACTVIZ_TITLE") or DEFAULT_TITLE
    st.set_page_config(page_title=f"{current.title} · {title}", page_icon=":material/visibility:", layout="wide")
    follow_old_address(current, pages)
    linked = arrived_by_link()
    navigation_ui(pages)
    title_ui(title)
    st.sidebar.header("Choices")
    choice = model_ui()
    try:
        opened = open_chosen(choice)
        if choice.origin == "upload" and choice.read is not None:  # from now on the session holds only the key
            st.session_state["_uploaded_model"] = {"label": choice.label, "key": choice.key}
    except ActvizError as exc:
        st.error(f"This model cannot be shown: {md(exc)}")
        choice = _demo_choice()
        opened = open_chosen(choice)
        st.info("Showing the demo model instead.")
    class_names = class_names_ui(choice, opened)
    image = image_ui(choice, linked=linked)
    requested, chosen = preprocessing_ui(opened)
    scope, selected = layers_ui(choice, opened)
    per_row, cmap, contrast = display_ui()
    if image is None:
        st.info("Upload an image (or take a picture) in the sidebar to see what this model makes of it.")
        model_table(choice, opened)
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
        st.error(f"This image cannot be used: {md(exc)}")
        st.info("Choose another image in the sidebar.")
        return
    context = Context(
        choice=choice, opened=opened, class_names=class_names, image_label=image_label, pixels=pixels, batch=batch,
        scaling=chosen.scaling, requested=requested, note=chosen.note, selected=selected, per_row=per_row, cmap=cmap, contrast=contrast,
        result=result, stats=all_stats(key, result.maps), key=key,
    )
    header(context)
    with shared(context):
        current.run()


try:
    main()
except ActvizError as exc:  # a user mistake that slipped past a page: say it plainly, keep the page
    st.error(md(exc))
except Exception as exc:  # a bug: logged with its traceback for the operator, one line for the visitor
    log.exception("unexpected failure in the dashboard")
    st.error(f"Something went wrong inside actviz (this is a bug, not your mistake): {md(type(exc).__name__)}: {md(exc)}")
