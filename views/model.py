"""Model: the layer table, as Keras's model.summary() lists it, nested models indented."""

from __future__ import annotations

from views.common import context, model_table

this_run = context()
model_table(this_run.choice, this_run.opened)
