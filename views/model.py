"""Model: the layers of the model in order, each with what it does in plain words; the Keras
names and types for programmers, nested models indented."""

from __future__ import annotations

from views.common import context, model_table

this_run = context()
model_table(this_run.choice, this_run.opened)
