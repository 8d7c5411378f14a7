"""The model's layer table for people: one row per layer, in network order, with what each layer
does in plain words (``LayerInfo.kind_words``) beside its Keras name and type."""

from __future__ import annotations

from ..core.layers import LayerTable


def layer_rows(table: LayerTable) -> list[dict]:
    """One row per layer: "#" (its number in the table), "layer" (its name, indented one em space
    per level of nesting), "what it does", "output" ("56 x 56 x 16", "-" without one),
    "parameters" (learned numbers, "1,234"), "shown" ("yes": drawn without asking; "on request":
    it has an image-like output; "no"), "type" (the Keras class, for programmers).

    >>> from actviz.core.layers import LayerInfo
    >>> row = layer_rows(LayerTable([LayerInfo(1, "block1_pool", "MaxPooling2D", (28, 28, 16), 0, True, 0)]))[0]
    >>> row["what it does"], row["output"], row["shown"]
    ('shrinks the maps: keeps the strongest response in each small patch', '28 x 28 x 16', 'yes')
    """
    return [{
        "#": info.index, "layer": "\u2003" * info.depth + info.name, "what it does": info.kind_words(),
        "output": " x ".join("?" if d is None else str(d) for d in info.output_shape) or "-",
        "parameters": f"{info.params:,}", "shown": "yes" if info.default_view else ("on request" if info.spatial else "no"),
        "type": info.type,
    } for info in table]
