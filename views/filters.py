"""What filters look for: the first layer's kernels, and pictures made to excite chosen channels
(all over or at the centre) or a class, robust or plain; beside each picture, the real images of
the data set that excite that filter most (once the data set page has run)."""

from __future__ import annotations

import streamlit as st

from actviz.core.passes import duration_words
from actviz.core.predictions import class_count, class_labels, predicted_class
from actviz.dataset import Summary
from actviz.dataset.views import top_strip
from actviz.featurevis.patterns import find_patterns, first_layer_kernels, kernel_picture
from actviz.featurevis.render import pattern_seconds
from actviz.serve.jobs import Limits
from views.common import Context, context, held_summary, md, run_job, server, shown

#: What a pattern is made to excite, in words.
OBJECTIVE_WORDS = {"channel": "channels (all over)", "neuron": "channels (at the centre)", "class": "a class"}
PATTERN_METHODS = {"robust": "robust (recommended)", "plain": "plain"}


def real_images_strip(key: tuple, summary: Summary, source, probe):
    """The crops of a channel's four strongest images of a data set, side by side (None: none readable)."""
    return shown(("strip", key), lambda: top_strip(summary, source, key[-2], key[-1], probe=probe))


def summary_key(summary: Summary, layer: str, channel: int) -> tuple:
    meta = summary.meta
    return (meta.get("model_digest"), meta.get("fingerprint"), meta.get("preprocessing"), summary.count, layer, int(channel))


def pattern_targets(context: Context, objective: str, limits: Limits) -> tuple[str | None, list[int]]:
    """The layer and the channels (or classes) whose pictures are wanted."""
    most = min(8, limits.pattern_channels)
    if objective == "class":
        labels = class_labels(class_count(context.result.predictions[0][0]), context.class_names)
        chosen = st.multiselect("Classes", list(range(len(labels))), default=[predicted_class(context.result.predictions[0][0])],
                                format_func=lambda i: labels[i], key="pattern_classes", max_selections=most)
        return None, chosen
    convs = [info.name for info in context.opened.probe.table.convolutions]
    layer = st.selectbox("Layer", convs, index=len(convs) // 2, key="pattern_layer")
    total = context.opened.probe.layer(layer).output_shape[-1]
    chosen = st.multiselect(
        f"Channels (up to {most}: each takes a while on a CPU)", list(range(total)), default=list(range(min(4, total))),
        key=f"pattern_channels_{layer}", max_selections=most,
    )
    return layer, chosen


def show(context: Context) -> None:
    st.caption(
        "What does a filter look for? Below: the first layer's filters themselves (tiny patterns the network learned), "
        "and, on request, pictures made to excite chosen filters (or a class) as much as possible."
    )
    probe, limits = context.opened.probe, server().limits
    first, kernels = first_layer_kernels(probe)
    st.image(kernel_picture(kernels), caption=f"The {len(kernels)} filters of {md(first)}, enlarged (grey: zero weight)")
    pick, how = st.columns(2)
    objective = pick.radio(
        "Make a picture that excites", list(OBJECTIVE_WORDS), key="pattern_objective", format_func=OBJECTIVE_WORDS.get, horizontal=True,
    )
    method = how.radio(
        "How", list(PATTERN_METHODS), key="pattern_method", format_func=PATTERN_METHODS.get, horizontal=True,
        help="Robust: the picture must keep exciting the filter when shifted, scaled and turned a little, which gives "
             "patterns people recognise. Plain: unconstrained gradient ascent (fine stripes and noise).",
    )
    layer, targets = pattern_targets(context, objective, limits)
    top = min(256 if method == "robust" else 60, limits.pattern_steps)
    steps = st.slider("Steps", min(16, top), top, min(64 if method == "robust" else 30, top), key=f"pattern_steps_{method}",
                      help="More steps: clearer pictures, and a longer wait.")
    wanted = (context.choice.key, context.scaling, layer, tuple(targets), method, objective, steps)
    patterns = server().patterns.peek(wanted)
    seconds = pattern_seconds(probe, layer, len(targets), steps=steps) if patterns is None and targets else None
    if patterns is None and targets and st.button("Make these pictures", key="pattern_go", type="primary",
                                                  help=f"{duration_words(seconds).capitalize()} on this server."):
        patterns = run_job("Making the pictures", lambda report: server().patterns.get(wanted, lambda: find_patterns(
            probe, layer, targets, method=method, objective=objective, steps=steps, preprocessing=context.scaling,
            class_names=context.class_names, progress=report)), key="patterns", estimate=seconds)
        st.rerun()  # draw the pictures without the finished job's buttons (Stop)
    if patterns is None:
        if targets:
            st.info(f"Press the button to make the pictures: {duration_words(seconds)} on this server. "
                    "Choosing something else stops the computation.")
        return
    captions = patterns.captions()
    held = held_summary(context)
    columns = st.columns(4)  # four even when fewer pictures: one picture is not stretched over the page
    for index in range(len(patterns)):
        column = columns[index % len(columns)]
        if patterns.dead[index]:
            column.info(md(captions[index]))
            continue
        column.image(patterns.picture(index, side=160), caption=md(captions[index]))
        if layer == first and objective != "class":
            column.image(kernel_picture(kernels[patterns.targets[index]:patterns.targets[index] + 1]),
                         caption="its kernel (the filter itself)")
        if held is not None and held[1] is not None and objective != "class" and layer in held[0].layout.names:
            strip = real_images_strip(summary_key(held[0], layer, patterns.targets[index]), held[0], held[1], probe)
            if strip is not None:
                column.image(strip, caption="the real images that excite it most (from the data set page)", width="stretch")
    st.caption(md(patterns.note()))
    if held is None and objective != "class":
        st.caption("Run the model over a data set ('Across a data set') to see, beside each picture, the real images that excite the filter most.")


show(context())
