"""Why this answer: explanation methods in three families side by side for the same class, the slow
ones on request with a progress bar and their settings; checks of whether a map can be trusted;
the filters that mattered most, each a click away from the one-channel page."""

from __future__ import annotations

from typing import Any

import streamlit as st

from actviz.core.predictions import class_count, class_labels, class_probabilities, is_probability, predicted_class
from actviz.draw.figures import overlay
from actviz.draw.rounding import for_people, percent
from actviz.explainers.attributions import black_input
from actviz.explainers.checks import empty_map, run_checks
from actviz.explainers.explain import explain
from actviz.explainers.registry import FAMILIES, METHOD_INFO, context_settings, methods_for, setting_widgets
from views.common import Context, context, go_to, md, queued, run_job, server

#: Methods shown side by side at most (each is a column).
MOST_METHODS = 4


def method_settings_ui(context: Context, methods: list[str], depth: int) -> dict[str, dict]:
    """The settings chosen for ``methods`` (the library's defaults unless changed), one widget per
    setting as the method registry describes it, in one folded box; ``depth``: channels of the
    maps' layer. Returns method -> the settings it runs with (the chosen ones, a black pixel in
    the model's scaling and a fixed seed where the method takes them)."""
    size = tuple(context.batch.shape[1:3])
    widgets = {m: setting_widgets(m, image_size=size, channels=depth) for m in methods}
    chosen: dict[str, dict] = {m: {} for m in methods}
    if any(widgets.values()):
        with st.expander("Settings of the slower methods: fewer passes of the model are quicker, more are smoother"):
            for method in (m for m in methods if widgets[m]):
                st.markdown(f"**{METHOD_INFO[method].title}**")
                columns = st.columns(2)
                for n, widget in enumerate(widgets[method]):
                    chosen[method][widget["name"]] = setting_ui(columns[n % 2], f"why_{method}_{widget['name']}", widget)
    black = black_input(context.scaling, context.pixels.shape[-1])
    return {m: context_settings(m, black=black, seed=0) | chosen[m] for m in methods}


def _settings_key(settings: dict) -> tuple:
    """The settings a visitor chose, for the key of a stored result (the black pixel and the seed
    follow from the model and the preprocessing, already in the key)."""
    return tuple(sorted((name, value) for name, value in settings.items() if name not in ("black", "seed")))


def setting_ui(column: Any, key: str, widget: dict) -> Any:
    """One setting's widget, drawn from its description (``registry.setting_widgets``); the value
    the method takes (None for "all", where the widget stands at its whole)."""
    if widget["kind"] == "select":
        return column.selectbox(widget["label"], widget["choices"], index=widget["choices"].index(widget["value"]), key=key,
                                format_func=widget["words"].get, help=widget["help"])
    if widget["kind"] == "stops":
        if len(widget["values"]) == 1:  # nothing to choose: say what is used
            column.caption(f"All {widget['values'][0]} {widget['label'].split()[0].lower()} of the layer are used: one pass of the model each.")
            return None if widget["whole"] is not None else widget["values"][0]
        value = column.select_slider(widget["label"], widget["values"], value=widget["value"], key=key, help=widget["help"],
                                     format_func=lambda v: f"all {v}" if v == widget["whole"] else str(v))
    else:
        value = column.slider(widget["label"], widget["low"], widget["high"], widget["value"], widget["step"], key=key, help=widget["help"])
    return None if value == widget["whole"] else value


def methods_ui(probe) -> list[str]:
    """The explanation methods chosen, by family, each family with its sentence (only the methods
    that apply to the model: attention rollout for a vision transformer)."""
    chosen = []
    offered = methods_for(probe)
    for family, sentence in FAMILIES.items():
        names = [name for name in offered if METHOD_INFO[name].family == family]
        if not names:
            continue
        picked = st.pills(
            sentence.split(":")[0], names, selection_mode="multi", key=f"why_{family}", default=["gradcam"] if family == "cam" else None,
            format_func=lambda name: METHOD_INFO[name].title + (" (slow)" if METHOD_INFO[name].expensive else ""),
            help=sentence,
        )
        chosen += list(picked or [])
    return chosen


def target_ui(context: Context) -> tuple[int, str, float]:
    """The class to explain (the model's answer unless changed), the layer of the class activation maps, the heat map's opacity."""
    prediction = context.result.predictions[0][0]
    labels = class_labels(class_count(prediction), context.class_names)
    probability = dict(class_probabilities(prediction, context.class_names))
    # a model without softmax or sigmoid at its end gives scores: shown as scores, never as percentages
    said = percent if is_probability(prediction) else (lambda value: f"score {for_people(value)}")
    table = context.opened.probe.table
    offered = [info.name for info in table.cam_layers]
    default, reason = table.default_cam_layer()
    left, middle, right = st.columns(3)
    class_index = left.selectbox(
        "Explain the answer", list(range(len(labels))), index=predicted_class(prediction), key="cam_class",
        format_func=lambda i: f"{labels[i]} ({said(probability.get(labels[i], 0))})",
    )
    layer = middle.selectbox("Layer of the class activation maps", offered, index=offered.index(default.name), key="cam_layer",
                             help="Deeper layers: coarser maps that speak for whole objects; earlier layers: finer detail.")
    middle.caption(("Chosen by default: " if layer == default.name else "The default: ") + md(reason))
    opacity = right.slider("Heat map opacity", 0.0, 1.0, 0.45, 0.05, key="cam_opacity")
    return int(class_index), layer, opacity


def show(context: Context) -> None:
    st.caption(
        "Where did the model look, and which pixels made it answer as it did? Each method below answers in its own way; "
        "seeing several side by side, and checking them, tells you how far to trust them. Red: strong evidence for the "
        "chosen answer; blue: none."
    )
    class_index, layer, opacity = target_ui(context)
    methods = methods_ui(context.opened.probe)
    if not methods:
        st.info("Choose one or more methods above.")
        return
    if len(methods) > MOST_METHODS:
        st.warning(f"{len(methods)} methods are chosen; the first {MOST_METHODS} are shown side by side.")
        methods = methods[:MOST_METHODS]
    settings = method_settings_ui(context, methods, context.opened.probe.layer(layer).output_shape[-1])
    store = server().explanations
    keys = {m: (context.key, m, class_index, layer if METHOD_INFO[m].layer else None, _settings_key(settings[m]))
            for m in methods}

    def compute(method: str, report=None) -> Any:
        return store.get(keys[method], lambda: explain(
            context.opened.probe, context.batch, method=method, class_index=class_index,
            layer=layer if METHOD_INFO[method].layer else None, progress=report, **settings[method]))

    for method in methods:
        if not METHOD_INFO[method].expensive and keys[method] not in store:
            with st.spinner(f"{METHOD_INFO[method].title} ..."):
                queued(METHOD_INFO[method].title, lambda: compute(method))
    slow = [m for m in methods if keys[m] not in store]
    if slow and st.button(f"Compute {', '.join(METHOD_INFO[m].title for m in slow)} (slower: the model runs many times)", key="why_go", type="primary"):
        for method in slow:
            run_job(METHOD_INFO[method].title, lambda report: compute(method, report), key=f"why_{method}", unit="passes")
        st.rerun()
    maps_ui(context, methods, {m: store.peek(keys[m]) for m in methods}, opacity)
    done = {m: store.peek(keys[m]) for m in methods if keys[m] in store}
    filters_ui(done)
    if done:
        checks_ui(context, done, keys)


def maps_ui(context: Context, methods: list[str], results: dict, opacity: float) -> None:
    """The methods' maps side by side, each with its caption and sentence (None: not computed yet).
    A single map takes half the width, not all of it: stretched across a wide screen, it would not
    fit on the screen with its caption."""
    for column, method in zip(st.columns(max(len(methods), 2)), methods):
        info, result = METHOD_INFO[method], results[method]
        column.markdown(f"**{md(info.title)}**")
        if result is None:
            column.info("Slower method: press the button above to compute it.")
        else:
            column.image(result.overlay(context.pixels, 0, opacity=opacity), width="stretch",
                         caption=md(result.caption(0, context.class_names)))
            if empty_map(result.heatmap[0]):
                column.warning("This map is empty: it has the same value everywhere, so it shows nothing in this image "
                               "that speaks for the class. Try another layer, class or method.", icon=":material/help:")
        column.caption(md(info.sentence))


def filters_ui(done: dict) -> None:
    """The channels the first method that ranks them gave most weight, each a link to the one-channel
    page; none from an empty map, whose channels all add nothing."""
    ranked = next(((m, r) for m, r in done.items() if r.ranking is not None and not empty_map(r.heatmap[0])), None)
    if ranked is None:
        return
    method, result = ranked
    st.markdown(f"**These filters mattered most for this answer** (the largest parts of the {md(METHOD_INFO[method].title)} map, "
                "each as its share of all the evidence for the class in it):")
    shares = result.map_shares(0)
    for rank, channel in enumerate(result.ranking[0][:6], start=1):
        cols = st.columns([3, 2])
        cols[0].write(f"{rank}. channel {int(channel)} of {md(result.layer)}: {for_people(100 * shares[channel])}% of the map")
        if cols[1].button("Show it up close", key=f"cam_show_{rank}"):
            go_to("views/one_channel.py", layer=result.layer, channel=int(channel))


#: How each state of a verdict is shown: the box, its icon and its title. Only a check that
#: passed is green; one that failed, that holds only in part or that cannot tell is orange.
VERDICT_LOOKS = {
    "passed": (st.success, ":material/check_circle:", "Passed"),
    "failed": (st.warning, ":material/block:", "Do not rely on this map"),
    "partly": (st.warning, ":material/warning:", "Read with care"),
    "cannot tell": (st.warning, ":material/help:", "This check cannot tell"),
}


def checks_ui(context: Context, done: dict, keys: dict) -> None:
    st.markdown("**Can this heat map be trusted?**")
    st.caption(
        "Two checks. First, the pixels the map calls important are removed first (or revealed first on a blurred copy): "
        "if the map is right, the model's answer falls quickly (or comes back quickly). Second, the same method on a copy "
        "of the model whose learned weights are replaced by random ones: a map that barely changes does not show what "
        "the model learned. Integrated Gradients also gets a check that its pixels' shares add up."
    )
    method = st.selectbox("Check", list(done), format_func=lambda m: METHOD_INFO[m].title, key="why_check_method")
    store, wanted = server().explanations, keys[method] + ("checks",)
    checks = store.peek(wanted)
    if checks is None and st.button("Run the checks (the model runs many times)", key="why_checks_go"):
        checks = run_job(f"Checking {METHOD_INFO[method].title}", lambda report: store.get(wanted, lambda: run_checks(
            context.opened.probe, context.batch, done[method], black=black_input(context.scaling, context.pixels.shape[-1]),
            progress=report)), key="why_checks", unit="steps")
        st.rerun()  # draw the verdicts without the finished job's buttons
    if checks is None:
        return
    verdicts = checks.verdicts(0)
    for verdict in verdicts:
        box, icon, title = VERDICT_LOOKS[verdict["state"]]
        box(md(verdict["sentence"]), icon=icon, title=title)
    if checks.curves is not None:
        st.line_chart(checks.curves.rows(0), x="share", y=["deletion", "insertion"], x_label="share of pixels removed or revealed",
                      y_label="probability", height=240)
    randomised = checks.randomisation
    if randomised is not None and randomised.maps is not None:
        randomisation_ui(context, done[method], randomised, empty=checks.empty is not None and bool(checks.empty[0]))
    with st.expander("More about these checks: how they work, and where they come from"):
        st.markdown(
            "**Removing and revealing** (deletion and insertion): the chart's lines are the model's probability for the "
            "class as more and more pixels are turned black (deletion) or revealed on a blurred copy (insertion), in the "
            "order of the map. The averages in the sentence are the areas under these lines. "
            "**Random weights** (model randomisation): the layers are made random from the top (the class scores) down, "
            "one more step at a time; the similarity compares which places stand out in the two maps (Spearman's rank "
            "correlation: 1 the same order, 0 unrelated). An empty map has no order at all, so it cannot be compared."
        )
        for verdict in verdicts:
            st.caption(f"{md(verdict['check'].capitalize())}: {md(verdict['reference'])}")


def randomisation_ui(context: Context, result: Any, randomised: Any, *, empty: bool) -> None:
    """The map on the trained model, then on the model randomised from the top layer down (at most
    six steps), each with its similarity to the first; ``empty``: the trained model's map is empty,
    so no similarity means anything and none is given."""
    st.markdown("The map as the model's weights are replaced by random ones, from the top layer down:")
    rows = randomised.rows(0)
    shown = randomised.shown_steps()
    columns = st.columns(len(shown) + 1)
    columns[0].image(result.overlay(context.pixels, 0), width="stretch",
                     caption="the trained model" + (": an empty map" if empty else ""))
    for column, depth in zip(columns[1:], shown):
        row = rows[depth]
        if randomised.empty is not None and randomised.empty[0, depth]:
            words = ": an empty map"
        else:
            words = "" if empty else f": similarity {row['correlation']:.2f}"
        column.image(overlay(context.pixels, randomised.maps[0, depth]), width="stretch",
                     caption=f"random down to {md(row['layer'])}{words}")


show(context())
