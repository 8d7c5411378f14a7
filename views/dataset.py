"""Across a data set: the model run over a whole folder of images (the demo digits, the server's
data set, a ZIP, or a saved summary): which images excite each channel, which channels tell the
classes apart, where the model looks on average, its most confident mistakes, dead channels.

Other pages open it on a channel with ``go_to("views/dataset.py", layer=..., channel=...)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import streamlit as st

from actviz.core.passes import duration_words
from actviz.core.precision import at_precision
from actviz.dataset import Source, Summary, demo_digits, open_source, summarize
from actviz.dataset.engine import estimate_seconds
from actviz.dataset.report import output_files, prediction_rows, top_image_rows
from actviz.dataset.summary import SummaryLimits
from actviz.dataset.views import (
    CAPTIONS, cache_key, cell_heatmaps, channel_ranking, class_heatmaps, confusion_rows, dead_channels, matching_source, mistakes,
    overview, spread_subset, top_images,
)
from actviz.draw.export import zip_bytes
from actviz.draw.rounding import for_people
from actviz.errors import ChoiceError
from actviz.safety.loading import file_digest
from actviz.serve.worker import START_SECONDS, summarize_apart
from views.common import Context, context, followed_link, go_to, md, run_job, server, setting


#: The channel table's columns in plain words, each with the technical name and what it means.
CHANNEL_COLUMNS = {
    "selectivity": st.column_config.TextColumn(
        "tells classes apart", help="Selectivity, from 0 (the channel responds the same to every class) to 1 (its response "
                                    "alone tells the classes apart)."),
    "most for": st.column_config.TextColumn("most for", help="The class the channel responds to most, compared with the others."),
    "average": st.column_config.TextColumn("average", help="Its average response over all the images."),
    "active on": st.column_config.TextColumn("responds on", help="Active on: the share of the images on which the channel responds at all."),
    "highest": st.column_config.TextColumn("highest", help="Its strongest response on any image."),
}


def open_link() -> None:
    """Start on the channel a link names (the one-channel page's "images that excite this channel most")."""
    link = followed_link("layer", "channel")
    if link is None or not link["channel"].isdigit():
        return
    layer = link["layer"]
    st.session_state["dataset_section"] = "Channels"
    st.session_state["dataset_layer"] = layer
    st.session_state[f"dataset_channel_{layer}"] = int(link["channel"])


@dataclass
class DataSet:
    """The data set a visitor chose: its name in words, how to open it (None: a saved summary),
    and the saved summary if one was opened."""

    label: str
    source: Source | None = None
    summary: Summary | None = None


def _held_source(key: tuple, open_it: Callable[[], tuple[Source, int]]) -> Source:
    return server().sources.get(key, open_it)[0]


def data_ui(context: Context) -> DataSet | None:
    """Where the images come from: the demo digits, the operator's data set, a ZIP, or a saved summary."""
    configured = setting("ACTVIZ_DATASET")
    options = (["Demo: 1,000 handwritten digits"] if context.choice.origin == "demo" else []) + (["The data set of this server"] if configured else [])
    options += ["Upload a ZIP of images", "Open a saved summary"]
    kind = st.radio("Images", options, key="dataset_source", horizontal=True,
                    help="A ZIP holds a folder of images, with one subfolder per class (like test/NORMAL, test/PNEUMONIA) or none.")
    limit = server().limits.upload_mb
    if kind.startswith("Demo"):
        return DataSet("the 1,000 demo digits (held out from the demo model's training)", _held_source(("demo",), lambda: (demo_digits(), 0)))
    if kind == "The data set of this server":
        return DataSet(f"the data set of this server ({md(Path(configured).name)})",
                       _held_source(("configured", configured), lambda: (open_source(configured), 0)))
    if kind == "Upload a ZIP of images":
        return _zip_ui(limit)
    return _summary_file_ui(context, limit, configured)


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
    return SummaryLimits(classes=setting("ACTVIZ_MAX_SUMMARY_CLASSES"), images=setting("ACTVIZ_MAX_SUMMARY_IMAGES"),
                         bytes=server().budget.share("summaries"))


def _zip_ui(limit: int) -> DataSet | None:
    held = st.session_state.get("_dataset_zip")
    upload = _read_upload("zip", f"A ZIP of images (up to {limit} MB)", ["zip"], limit)
    if upload is not None:
        name, data = upload
        server().budget.refuse_over("sources", len(data), "This ZIP")
        held = {"key": ("zip", file_digest(data)), "label": name}
        st.session_state["_dataset_zip"] = held
        return DataSet(f"{md(name)}", _held_source(held["key"], lambda: (open_source(data), len(data))))
    if held is not None and held["key"] in server().sources:
        st.caption(f"Using your upload: {md(held['label'])}. Upload another ZIP to replace it.")
        return DataSet(f"{md(held['label'])}", server().sources.peek(held["key"])[0])
    if held is not None:
        st.session_state.pop("_dataset_zip")
        st.warning("The ZIP you uploaded was let go to make room for other visitors' data; please upload it again.")
    st.info("Upload a ZIP of a folder of images. Files that are not images are skipped and listed.")
    return None


def _summary_file_ui(context: Context, limit: int, configured: str | None) -> DataSet | None:
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
        st.caption(f"Using your summary: {md(held['label'])}. Open another file to replace it.")
    offered = [_held_source(("demo",), lambda: (demo_digits(), 0))]
    if configured and ("configured", configured) in server().sources:
        offered.append(server().sources.peek(("configured", configured))[0])
    return DataSet(f"the summary {md(held['label'])}", matching_source(summary, offered), summary)


def show(context: Context) -> None:
    st.caption(
        "Everything else on this page is about one image. Here the model runs once over a whole folder of images, and "
        "what it learned is summed up: which images excite each channel most, which channels tell the classes apart, "
        "where the model looks on average, and which images it gets wrong while being sure of itself."
    )
    open_link()
    chosen = data_ui(context)
    if chosen is None:
        return
    summary = chosen.summary or _summary_ui(context, chosen)
    if summary is None:
        return
    matches = summary.meta.get("model_digest") == context.opened.loaded.digest
    if matches:  # a file may claim any model's (public) digest: its layout must fit the model before the model draws anything
        summary.check_model(context.opened.probe, limits=_summary_limits())
    source = chosen.source if matches else None
    st.session_state["_dataset"] = {"summary": summary, "source": source, "digest": summary.meta.get("model_digest")}
    if not matches:
        st.warning(f"This summary was made with another model ({md(summary.meta.get('model', 'unknown'))}); the pictures "
                   "that need the model (top images, mistakes) are left out. Choose that model in the sidebar to see them.")
    elif source is None:
        st.caption("The images this summary was made from are not here, so its tables and heat maps are shown without the images.")
    _dataset_overview(summary)
    sections = {"Channels": _dataset_channels, "Where the model looks": _dataset_heatmaps,
                "Mistakes": _dataset_mistakes, "Dead channels": _dataset_dead, "Download": _dataset_download}
    section = st.radio("Show", list(sections), key="dataset_section", horizontal=True)
    sections[section](context, summary, source)


def _summary_ui(context: Context, chosen: DataSet) -> Summary | None:
    """The summary of the chosen data set: from the shared store, or computed on request."""
    limits = server().limits
    source = chosen.source
    subset, note = spread_subset(len(source), limits.dataset_images)
    left, right = st.columns([2, 3])
    gradcam = left.toggle("Also where the model looks (Grad-CAM)", value=True, key="dataset_gradcam",
                          help="Average heat maps per class and per kind of mistake. Costs a backward pass per batch: about twice the time.")
    right.caption(f"{md(source.describe())}" + (f" {md(note)}" if note else ""))
    requested = context.requested  # "auto" is resolved (and said so) by the pass itself
    settings = {"gradcam": gradcam, "preprocessing": requested, "classes": context.class_names, "images": limits.dataset_images}
    key = cache_key(context.opened, source, **settings)
    summary = server().summaries.peek(key)
    if summary is not None:
        return summary
    options = {"gradcam": gradcam, "preprocessing": requested, "class_names": context.class_names, "indices": subset}
    apart = setting("ACTVIZ_WORKER")
    opened = at_precision(context.opened, setting("ACTVIZ_PRECISION"))  # the operator's precision (float32 where bfloat16 cannot run)
    seconds = estimate_seconds(opened, source, **options) + (START_SECONDS if apart else 0.0)
    if not st.button("Run the model over these images", key="dataset_go", type="primary",
                     help=f"{duration_words(seconds).capitalize()} on this server, worked out from the speed of one pass of this model here."):
        st.info(f"Press the button to run the model over {chosen.label}: {duration_words(seconds)} on this server. "
                "Choosing something else stops the run.")
        return None

    def compute(report: Callable[[int, int], None]) -> Summary:
        # in a process of its own, unless the operator says otherwise: its memory is given back when it ends
        run = summarize_apart if apart else summarize
        return run(opened, source, progress=report, **options)

    summary = run_job("Running over the data set", lambda report: server().summaries.get(key, lambda: compute(report)),
                      key="dataset", unit="images", estimate=seconds)
    st.session_state["_dataset"] = {"summary": summary, "source": source, "digest": context.opened.loaded.digest}
    st.rerun()  # draw the result without the finished job's buttons


def _dataset_overview(summary: Summary) -> None:
    facts = overview(summary)
    columns = st.columns(4)
    columns[0].metric("Images", f"{facts['images']:,}")
    columns[1].metric("Answered right", "no labels" if facts["accuracy"] is None else f"{facts['accuracy']:.1%}")
    columns[2].metric("Classes", len(facts["classes"]))
    columns[3].metric("Files skipped", f"{facts['skipped']:,}")
    st.markdown(md(facts["text"]))
    for note in facts["notes"]:
        st.caption(md(note))
    if summary.skipped:
        count = len(summary.skipped)
        with st.expander(f"The {count:,} file{'s' if count != 1 else ''} that {'were' if count != 1 else 'was'} skipped, and why"):
            st.dataframe([{"file": path, "reason": reason} for _, path, reason in summary.skipped[:500]], hide_index=True)


def _dataset_channels(context: Context, summary: Summary, source: Source | None) -> None:
    st.caption(md(CAPTIONS["channels"]))
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
        "channel": r["channel"], "selectivity": None if r["selectivity"] is None else for_people(r["selectivity"]),
        "most for": r["selective_for"], "average": for_people(r["mean"]), "active on": f"{r['active_fraction']:.0%}",
        "highest": for_people(r["peak"]), "dead": "dead" if r["dead"] else "",
    } for r in rows], hide_index=True, height=240, column_config=CHANNEL_COLUMNS)
    ranked = [r["channel"] for r in rows]
    words = {r["channel"]: r for r in rows}
    channel = st.selectbox(
        "Channel", ranked, key=f"dataset_channel_{layer}",
        format_func=lambda c: f"channel {c}" + (
            f" (tells the classes apart: {for_people(words[c]['selectivity'])} of 1, most for {words[c]['selective_for']})"
            if words[c]["selectivity"] is not None and words[c]["selective_for"] else ""),
    )
    if layer in context.result.maps and st.button("Show this channel on the image chosen in the sidebar", key="dataset_to_channel"):
        go_to("views/one_channel.py", layer=layer, channel=channel)
    if words[channel]["dead"]:
        st.info(f"Channel {channel} of {md(layer)} is dead: it gave the same value on every image, so no image excites it.")
        return
    if source is None:
        st.dataframe([row for row in top_image_rows(summary, [layer]) if row["channel"] == channel], hide_index=True)
        return
    st.markdown(f"**The images that excite channel {channel} of {md(layer)} most**")
    st.caption(md(CAPTIONS["top_images"]))
    with st.spinner("Finding where the channel responds on its top images ..."):
        tops = top_images(summary, source, layer, channel, probe=context.opened.probe, size=160)
    columns = st.columns(3)
    for n, entry in enumerate(tops):
        with columns[n % 3]:
            both = st.columns(2)
            both[0].image(entry["activation"], caption=md(entry["caption"]), width="stretch")
            both[1].image(entry["crop"], caption="what the channel sees there", width="stretch")


def _dataset_heatmaps(context: Context, summary: Summary, source: Source | None) -> None:
    st.caption(md(CAPTIONS["heatmaps"]))
    classes = class_heatmaps(summary, size=192)
    if not classes:
        st.info("This summary was made without Grad-CAM. Run it again with 'Also where the model looks' switched on.")
    else:
        columns = st.columns(5)  # five even for two classes: a mean heat map is not stretched over the page
        for n, entry in enumerate(classes):
            columns[n % len(columns)].image(entry["picture"], caption=md(entry["caption"]), width="stretch")
    rows = confusion_rows(summary)
    if rows:
        st.markdown("**Answers for each true class** (the diagonal counts the right answers)")
        st.caption(md(CAPTIONS["confusion"]))
        st.dataframe([{**row, "right": f"{row['right']:.1%}"} for row in rows], hide_index=True)
    cells = cell_heatmaps(summary, size=128) if classes else []
    if cells:
        st.markdown("**Where the model looks when it makes each kind of mistake**")
        columns = st.columns(6)
        for n, entry in enumerate(cells[:12]):
            columns[n % 6].image(entry["picture"], caption=md(entry["caption"]), width="stretch")


def _dataset_mistakes(context: Context, summary: Summary, source: Source | None) -> None:
    st.caption(md(CAPTIONS["mistakes"]))
    if not summary.labelled:
        st.info("The images have no labels, so the model's mistakes are unknown.")
        return
    if source is None:
        st.dataframe([r for r in prediction_rows(summary) if r["label"] and r["label"] != r["predicted"]][:100], hide_index=True)
        return
    with st.spinner("Looking at the mistakes ..."):
        wrong = mistakes(summary, source, probe=context.opened.probe, limit=12)
    if not wrong:
        st.success("The model answered every labelled image right.")
        return
    columns = st.columns(4)
    for n, entry in enumerate(wrong):
        columns[n % 4].image(entry["overlay"] if entry["overlay"] is not None else entry["picture"], caption=md(entry["caption"]), width="stretch")


def _dataset_dead(context: Context, summary: Summary, source: Source | None) -> None:
    st.caption(md(CAPTIONS["dead"]))
    st.dataframe([{**row, "share": f"{row['share']:.0%}"} for row in dead_channels(summary)], hide_index=True)


def _dataset_download(context: Context, summary: Summary, source: Source | None) -> None:
    st.caption("The summary reopens here (Open a saved summary) and with `actviz dataset --summary`. The tables are what "
               "`actviz dataset` writes: top images, channels, predictions, skipped files and the mean heat maps.")
    left, right = st.columns(2)
    left.download_button("The summary (summary.npz)", data=summary.to_bytes, file_name="summary.npz", on_click="ignore", key="dataset_npz")
    right.download_button("Tables and heat maps (ZIP)", data=lambda: zip_bytes(output_files(summary)), file_name="actviz_dataset.zip",
                          mime="application/zip", on_click="ignore", key="dataset_tables")


show(context())
