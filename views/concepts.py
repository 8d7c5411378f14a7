"""What the model sees: the concepts of one class (the patterns the model picked out in that class's
images, each with its typical pieces of images and where it sits), the shortcut finder's findings
first, and a test of any concept a person names by examples (TCAV).

The images are chosen as on the data set page (the demo digits, the server's data set, a ZIP held
once per content by the server); each result is stored in ``server().concepts`` under the model's
digest, the data set's fingerprint, the class and the settings, so every visitor sees it at once.
Everything computed comes from ``actviz.concepts``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import streamlit as st

from actviz.concepts import Concepts, Tcav
from actviz.concepts.classes import ClassChoice, choose_class
from actviz.concepts.discover import MAX_CROPS, discover_concepts
from actviz.concepts.layer import default_layer, tcav_default_layer
from actviz.concepts.tcav import p_words, tcav
from actviz.core.predictions import class_count, class_labels, predicted_class
from actviz.dataset import Source, demo_digits, open_source
from actviz.dataset.views import cache_key
from actviz.draw.export import zip_bytes
from actviz.errors import ActvizError, ChoiceError
from actviz.safety.loading import file_digest
from views.common import Context, context, md, run_job, server, setting, shown

#: Concepts drawn in full; the rest (less important) are folded away.
SHOWN_CONCEPTS = 4
#: Crops the visitor may ask for (the package's default is the largest).
CROP_CHOICES = (64, 128, 256, 512, MAX_CROPS)
#: Largest number of concepts offered (the package chooses between 2 and 12 by itself).
MOST_CONCEPTS = 16
#: The significance level of the concept test.
ALPHA = 0.05
ZIP_HELP = "A ZIP holds a folder of images, with one subfolder per class (like test/NORMAL, test/PNEUMONIA) or none."


@dataclass(frozen=True)
class Images:
    """The images a visitor chose: their name in words (already safe for Markdown) and the data set."""

    label: str
    source: Source


# --- the images, held once per content by the server ---------------------------------------------------


def _held(key: tuple, open_it: Callable[[], Source], size: int = 0) -> Source:
    """A data set from the server's store (opened once per content; ``size``: the bytes it holds)."""
    return server().sources.get(key, lambda: (open_it(), size))[0]


def _read_upload(slot: str, label: str, *, help: str | None = None) -> tuple[str, bytes] | None:
    """A visitor's ZIP, read once: the uploader is reset at once (its key changes), so Streamlit lets
    its copy go and the server holds the bytes once per content, not once per visitor."""
    limit = server().limits.upload_mb
    count = st.session_state.setdefault(f"_{slot}_uploads", 0)
    upload = st.file_uploader(f"{label} (a ZIP, up to {limit} MB)", type=["zip"], key=f"{slot}_{count}", help=help)
    if upload is None:
        return None
    st.session_state[f"_{slot}_uploads"] = count + 1
    if upload.size > limit * 1024**2:
        raise ChoiceError(f"The file is {upload.size / 1024**2:.0f} MB; uploads may be at most {limit} MB here.")
    server().budget.refuse_over("sources", upload.size, "This ZIP")
    return upload.name, upload.getvalue()


def zip_ui(slot: str, held_as: str, label: str, *, labels: str, help: str | None = None) -> Images | None:
    """A ZIP of images from the visitor, held by the server under its content (and how its labels
    are read); the session keeps its name and key under ``held_as``. A file that cannot be used is
    said in words. Either way the page runs again at once, so the uploader on screen is the new,
    empty one (a file dropped on the old one would be lost)."""
    problem = st.session_state.pop(f"_{slot}_problem", None)
    if problem:
        st.warning(problem)
    try:
        upload = _read_upload(slot, label, help=help)
        if upload is not None:
            name, data = upload
            held = {"key": ("zip", file_digest(data)) + (() if labels == "folders" else (labels,)), "label": name}
            _held(held["key"], lambda: open_source(data, labels=labels), len(data))
            st.session_state[held_as] = held
            st.rerun()
    except ActvizError as exc:
        st.session_state[f"_{slot}_problem"] = f"This ZIP cannot be used: {md(exc)}"
        st.rerun()
    held = st.session_state.get(held_as)
    source = None if held is None else server().sources.peek(held["key"])
    if source is not None:
        st.caption(f"Using your upload: {md(held['label'])}. Upload another ZIP to replace it.")
        return Images(md(held["label"]), source[0])
    if held is not None:
        st.session_state.pop(held_as)
        st.warning("The ZIP you uploaded was let go to make room for other visitors' data; please upload it again.")
    return None


def images_ui(context: Context) -> Images | None:
    """The images to find concepts in: the same choices as the data set page (without saved summaries,
    which hold no images). An uploaded ZIP is the same one the data set page uses."""
    configured = setting("ACTVIZ_DATASET")
    options = (["Demo: 1,000 handwritten digits"] if context.choice.origin == "demo" else []) + (["The data set of this server"] if configured else [])
    options.append("Upload a ZIP of images")
    kind = options[0] if len(options) == 1 else st.radio("Images", options, key="concepts_source", horizontal=True, help=ZIP_HELP)
    if kind.startswith("Demo"):
        return Images("the 1,000 demo digits", _held(("demo",), demo_digits))
    if kind == "The data set of this server":
        try:
            return Images(f"the data set of this server ({md(Path(configured).name)})", _held(("configured", configured), lambda: open_source(configured)))
        except ActvizError as exc:
            st.warning(f"The data set of this server cannot be opened: {md(exc)}")
            return None
    chosen = zip_ui("concepts_zip", "_dataset_zip", "A folder of images", labels="folders", help=ZIP_HELP)
    if chosen is None:
        st.info("Upload a ZIP of a folder of images, with one subfolder per class if you can: the concepts of a class are found in its images.")
    return chosen


# --- the class and the settings ---------------------------------------------------------------------


def class_ui(context: Context) -> tuple[int, list[str]]:
    """The class to explain (the model's answer for the sidebar's image unless changed), and every class's name."""
    prediction = context.result.predictions[0][0]
    labels = class_labels(class_count(prediction), context.class_names)
    column, _ = st.columns([1, 2])
    chosen = column.selectbox("The class to look into", list(range(len(labels))), index=predicted_class(prediction), key="concepts_class",
                              format_func=lambda i: labels[i], help="The concepts are found in the images of this class.")
    return int(chosen), labels


@dataclass(frozen=True)
class Settings:
    """What discovery runs with: the layer (None: the package's default), the number of concepts
    (None: chosen automatically), the crops cut from the images."""

    layer: str | None
    count: int | None
    crops: int


def settings_ui(context: Context, default: str) -> Settings:
    """The layer, the number of concepts and the crops, folded away: the defaults suit most models."""
    probe = context.opened.probe
    layers = [info.name for info in probe.table.spatial if not info.container]
    with st.expander("Settings (optional): the layer, how many concepts, how many pieces of images"):
        left, middle, right = st.columns(3)
        layer = left.selectbox(
            "Layer", layers, index=layers.index(default) if default in layers else len(layers) - 1, key="concepts_layer",
            format_func=lambda name: f"{name} (recommended)" if name == default else name,
            help="Where in the network the concepts are read. The recommended one is the last map before the answer: "
                 "its patterns are parts of objects, and it still knows where they are.")
        channels = int(probe.layer(layer).output_shape[-1])
        counts = [None, *range(1, min(channels, MOST_CONCEPTS) + 1)]
        count = middle.selectbox("Concepts", counts, key=f"concepts_count_{layer}",
                                 format_func=lambda n: "chosen automatically" if n is None else str(n),
                                 help="How many patterns to look for. Automatically: the fewest that describe the layer almost as well as more would.")
        crops = right.select_slider("Pieces of images", CROP_CHOICES, value=MAX_CROPS, key="concepts_crops",
                                    help="The concepts are found in small pieces cut from the class's images. More pieces: concepts found "
                                         "more reliably, and a longer wait.")
    return Settings(None if layer == default else layer, count, int(crops))


# --- discovery: a job whose result every visitor sees ---------------------------------------------------


def discovery_ui(context: Context, images: Images, class_index: int, labels: list[str], klass: ClassChoice) -> tuple[tuple, Concepts] | None:
    """The concepts of the class: from the server's store, or found on request (a job with progress and Stop)."""
    try:
        layer = default_layer(context.opened.probe)
    except ActvizError as exc:
        st.warning(f"{md(exc)} Concepts are read from a layer that keeps a map of the image, and this model has none to offer.")
        return None
    chosen = settings_ui(context, layer)
    settings = {"what": "concepts", "class": class_index, "layer": chosen.layer, "concepts": chosen.count, "crops": chosen.crops,
                "preprocessing": context.requested, "classes": context.class_names}
    key = ("concepts", cache_key(context.opened, images.source, **settings))
    found = server().concepts.peek(key)
    if found is None:
        found = _held_result("_concepts_found", key)
    if found is not None:
        return key, found
    name = md(labels[class_index])
    if klass.images is None:
        st.caption(f"This data set has no labels for '{name}': its images are taken to be those the model answers '{name}' for. {md(klass.note)}")
    else:
        st.caption(f"{len(klass.images):,} images of '{name}' in {images.label}. {md(klass.note)}")
    if not st.button(f"Find what the model sees in '{name}'", key="concepts_go", type="primary"):
        st.info(f"Press the button to find the concepts of '{name}' in {images.label}. It runs the model over many pieces of "
                "these images; choosing something else stops it.")
        return None

    def compute(report: Callable[[int, int], Any]) -> Concepts:
        return discover_concepts(context.opened, images.source, class_index, layer=chosen.layer, concepts=chosen.count, max_crops=chosen.crops,
                                 preprocessing=context.requested, class_names=context.class_names or context.opened.class_names,
                                 progress=report)

    try:
        found = run_job("Finding concepts", lambda report: server().concepts.get(key, lambda: compute(report)), key="concepts", unit="pictures")
    except ActvizError as exc:
        st.warning(md(exc))
        return None
    st.session_state["_concepts_found"] = {"key": key, "result": found}  # kept while shown, even if the store lets it go
    st.rerun()  # draw the result without the finished job's buttons


def _held_result(slot: str, key: tuple) -> Any:
    held = st.session_state.get(slot)
    return held["result"] if held is not None and held["key"] == key else None


def findings_ui(key: tuple, found: Concepts) -> None:
    """The shortcut finder's findings, each with its region drawn on a typical image; or that there are none."""
    st.subheader("What to check first")
    st.caption("A finding is a concept the answer leans on that looks like how the images were taken rather than what they show: "
               "something small in the same place of most images (like a hospital's text marker), or something that comes with the "
               "model's mistakes. Whether it belongs to the disease is for you to judge, looking at its pieces of images below.")
    if not found.findings:
        st.info(f"{md(found.words()[-1])} This does not prove that the model reads the right things: look at its concepts below.")
        return
    for position, finding in enumerate(found.findings):
        with st.container(border=True):
            picture, words = st.columns([1, 3], vertical_alignment="center")
            picture.image(shown(("concept finding", key, position), lambda position=position: found.finding_picture(position)), width="stretch",
                          caption=f"The region of concept {finding.concept}, outlined in red on a typical image")
            words.warning(md(finding.words), icon=":material/flag:")


def concepts_ui(key: tuple, found: Concepts) -> None:
    """Each concept by importance: its typical pieces of images, its mean map, and its importance in words."""
    name = md(found.class_name)
    st.subheader(f"The concepts of '{name}', most important first")
    st.caption(
        f"A concept is a pattern the model picked out in the images of '{name}' at layer {md(found.layer)}. Beside each one: where "
        "it sits on average in these images, drawn over the image that shows it most, red where it is strong and blue where it is "
        "absent (where it is). Below: the pieces of images that show it most, one per image (what it is). A concept matters when "
        f"taking it out lowers the model's score for '{name}' much more than taking out a random part of the same size. The score "
        "is the number the model gives a class just before it turns its numbers into probabilities: the higher, the surer."
    )
    for concept in found.concepts[:SHOWN_CONCEPTS]:
        _concept_row(key, found, concept)
    rest = found.concepts[SHOWN_CONCEPTS:]
    if rest:
        with st.expander(f"The other {len(rest)} concept{'s' if len(rest) != 1 else ''}, which matter less"):
            for concept in rest:
                _concept_row(key, found, concept)
    with st.expander("How these concepts were found"):
        for line in [found.words()[0], *found.notes]:
            st.caption(md(line))
    st.download_button("The concepts as files (ZIP: pictures, maps and the JSON the command line writes)", data=lambda: zip_bytes(found.files()),
                       file_name=f"concepts_{found.class_index}.zip", mime="application/zip", on_click="ignore", key="concepts_download")


def _concept_row(key: tuple, found: Concepts, concept: Any) -> None:
    with st.container(border=True):
        words, where = st.columns([3, 2])
        words.markdown(f"#### Concept {concept.number}")
        words.markdown(md(found.concept_words(concept.number)))
        with where, st.container(width=224):  # its own size, or the column's on a narrow screen
            st.image(shown(("concept map", key, concept.number), lambda: found.map_picture(concept.number)), width="stretch",
                     caption="Where it is, on average")
        st.image(shown(("concept sheet", key, concept.number), lambda: found.sheet(concept.number)), width="stretch",
                 caption=f"What it is: the {len(concept.crops)} pieces of images that show it most, one per image")


# --- concept tests (TCAV) ----------------------------------------------------------------------------


def _server_folder(root: str, name: str | None, what: str) -> Images | None:
    """A folder of images on the server (read without labels), held once; None with a warning if it cannot be read."""
    path = Path(root) if name is None else Path(root) / name
    try:
        return Images(md(name or path.name), _held(("folder", str(path), "none"), lambda: open_source(path, labels="none")))
    except ActvizError as exc:
        st.warning(f"The {what} of this server cannot be read: {md(exc)}")
        return None


def concept_examples_ui() -> tuple[Images | None, str]:
    """The concept's examples (a ZIP, or a concept folder of the server) and the concept's name."""
    root = setting("ACTVIZ_CONCEPTS")
    st.markdown("**Examples of the concept**")
    kind = "Upload a ZIP"
    if root:
        kind = st.radio("Examples of the concept", ["A concept of this server", kind], key="tcav_concept_source", horizontal=True,
                        label_visibility="collapsed")
    if kind == "A concept of this server":
        try:
            named = _held(("folder", root, "folders"), lambda: open_source(root, labels="folders")).label_names or ()
        except ActvizError as exc:
            st.warning(f"The concept folders of this server cannot be read: {md(exc)}")
            return None, ""
        if not named:
            st.info("The concept folder of this server has no subfolders, so it names no concept.")
            return None, ""
        name = st.selectbox("Concept", list(named), key="tcav_concept_name", format_func=md)
        return _server_folder(root, name, "concept folder"), name
    chosen = zip_ui("tcav_concept_zip", "_tcav_concept", "Images that show the concept", labels="none",
                    help="For example chest X-rays cut down to the hospital's text marker. The ZIP's name names the concept.")
    held = st.session_state.get("_tcav_concept")
    return chosen, (Path(held["label"]).stem if chosen is not None and held else "")


def counterexamples_ui() -> Images | None:
    """The counterexamples: a ZIP, or the server's folder of other images."""
    root = setting("ACTVIZ_RANDOM_IMAGES")
    st.markdown("**Counterexamples**")
    kind = "Upload a ZIP"
    if root:
        kind = st.radio("Counterexamples", ["Other images of this server", kind], key="tcav_random_source", horizontal=True,
                        label_visibility="collapsed")
    if kind == "Other images of this server":
        return _server_folder(root, None, "folder of other images")
    return zip_ui("tcav_random_zip", "_tcav_random", "Varied images without the concept", labels="none",
                  help="Varied images of all kinds, without the concept: the test compares the concept with random picks of these.")


def tcav_ui(context: Context, images: Images, class_index: int, labels: list[str]) -> None:
    """A concept the visitor names by examples, tested against counterexamples: the verdict first, then the numbers and the chart."""
    name = md(labels[class_index])
    st.subheader("Test a concept you name")
    st.caption(
        f"Show the model examples of something (say, the hospital's text marker, or the ribs) and varied images without it. The test "
        f"(TCAV) learns what sets the examples apart inside the model, then counts in how many images of '{name}' the answer "
        f"'{name}' would grow with more of it, and compares that with what random directions give."
    )
    left, right = st.columns(2)
    with left:
        concept, concept_name = concept_examples_ui()
    with right:
        random = counterexamples_ui()
    if concept is None or random is None:
        st.info("Give both the examples of the concept and the counterexamples to test it.")
        return
    try:
        layer = tcav_default_layer(context.opened.probe)
    except ActvizError as exc:
        st.warning(md(exc))
        return
    settings = {"what": "tcav", "class": class_index, "concept": (concept_name, concept.source.fingerprint), "random": random.source.fingerprint,
                "preprocessing": context.requested, "classes": context.class_names}
    key = ("tcav", cache_key(context.opened, images.source, **settings))
    result = server().concepts.peek(key)
    if result is None:
        result = _held_result("_tcav_result", key)
    if result is None:
        result = _tcav_job(context, images, (class_index, labels[class_index]), key, (concept, concept_name, random), layer)
    if result is not None:
        tcav_result_ui(key, result)


def _tcav_job(context: Context, images: Images, klass: tuple[int, str], key: tuple, given: tuple, layer: str) -> Tcav | None:
    """The concept test on request: a job with progress and Stop, its result stored for every visitor."""
    (class_index, class_name), (concept, concept_name, random) = klass, given
    if not st.button(f"Test whether '{md(class_name)}' depends on '{md(concept_name)}'", key="tcav_go", type="primary"):
        st.caption(f"The test uses {md(concept.source.describe())} as examples and {md(random.source.describe())} as counterexamples, "
                   f"at layer {md(layer)}.")
        return None

    def compute(report: Callable[[int, int], Any]) -> Tcav:
        return tcav(context.opened, images.source, class_index, concept=concept.source, random=random.source, concept_name=concept_name,
                    alpha=ALPHA, preprocessing=context.requested, class_names=context.class_names or context.opened.class_names, progress=report)

    try:
        result = run_job("Testing the concept", lambda report: server().concepts.get(key, lambda: compute(report)), key="tcav", unit="pictures")
    except ActvizError as exc:
        st.warning(md(exc))
        return None
    st.session_state["_tcav_result"] = {"key": key, "result": result}
    st.rerun()


def tcav_result_ui(key: tuple, result: Tcav) -> None:
    """The verdict in words, coloured by what it means, then the numbers, a sentence on reading them, and the chart."""
    if result.finding:
        st.warning(md(result.words), icon=":material/flag:")
    else:
        st.info(md(result.words), icon=":material/hourglass_empty:" if result.kind == "too few" else ":material/remove:")
    concept, klass = md(result.concept), md(result.class_name)
    columns = st.columns(3)
    columns[0].metric("With the concept", f"{result.score:.0%}", help=f"Images of '{klass}' whose answer would grow with more of '{concept}'.")
    columns[1].metric("With random directions", f"{result.random_score:.0%}", help="The same, for directions inside the model that mean nothing.")
    columns[2].metric("Could it be chance?", "not computed" if result.p_value is None else p_words(result.p_value),
                      help="The p-value of the test: the chance of a difference this large if the concept made no difference.")
    chart, words = st.columns([1, 1])
    chart.image(shown(("tcav chart", key), result.chart), caption="Each dot is one run: the concept (left) against random directions (right); the bar is the average.")
    words.caption(
        f"The first number is the share of the {result.count:,} images of '{klass}' whose answer '{klass}' would grow with more of "
        f"'{concept}' (learned from {result.examples:,} examples and {result.randoms:,} counterexamples at layer {md(result.layer)}); "
        f"the second is the same for directions that mean nothing, over {len(result.runs)} runs. p is the chance of a difference this "
        f"large if '{concept}' made no difference to the model: below {ALPHA:g} (1 in {round(1 / ALPHA)}) the test counts it as evidence, "
        "and a p of 0.5 means a difference like this comes up half the time by luck alone."
    )
    for note in result.notes:
        words.caption(md(note))


def show(context: Context) -> None:
    st.caption(
        "Which things in the images does the model rely on for a class: the lungs, the ribs, or the hospital's text marker? Here the "
        "model's view of one class is split into concepts (patterns it picked out, shown by the pieces of images that hold them), "
        "ranked by how much its answer depends on each. Below, you can test a concept you name by showing examples."
    )
    images = images_ui(context)
    if images is None:
        return
    class_index, labels = class_ui(context)
    try:  # the class's images in this data set, found before any work
        klass = choose_class(context.opened.probe, images.source, class_index, class_names=context.class_names or context.opened.class_names)
    except ActvizError as exc:
        st.warning(md(exc))
        return
    done = discovery_ui(context, images, class_index, labels, klass)
    if done is not None:
        key, found = done
        findings_ui(key, found)
        concepts_ui(key, found)
    st.divider()
    tcav_ui(context, images, class_index, labels)


show(context())
