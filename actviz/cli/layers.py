"""``actviz layers``: the model's layer table, and which layers can be shown."""

from __future__ import annotations

import argparse

from ..text import shorten, terminal_text
from .common import model_options, say, open_chosen_model, shape_text


def add(commands) -> None:
    sub = commands.add_parser("layers", help="list the model's layers and which can be shown")
    model_options(sub)


def run(args: argparse.Namespace) -> int:
    opened = open_chosen_model(args)
    probe = opened.probe
    names = {info.index: shorten(terminal_text("  " * info.depth + info.name)) for info in probe.table}
    width = max(12, *(len(name) for name in names.values()))
    types = max(12, *(len(info.type) for info in probe.table))
    say(f"model: {opened.name}  input: {shape_text(probe.input_shape)}")
    print(f"{'#':>4}  {'layer':<{width}} {'type':<{types}} {'output shape':<18} {'params':>11}  shown")
    for info in probe.table:
        shown = "default" if info.default_view else ("yes" if info.spatial else "no")
        print(f"{info.index:>4}  {names[info.index]:<{width}} {terminal_text(info.type):<{types}} {shape_text(info.output_shape):<18} {info.params:>11,}  {shown}")
    for note in opened.notes:
        say(f"note: {note}")
    return 0
