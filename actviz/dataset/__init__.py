"""Across a data set: which images excite each channel, which channels tell the classes apart,
where the model looks, and how good it is, from one streaming pass over thousands of images.

>>> from actviz.dataset import open_source, summarize        # doctest: +SKIP
>>> summary = summarize("model.h5", open_source("chest_xray/test"), gradcam=True)  # doctest: +SKIP
>>> summary.accuracy(), summary.channels("block5_conv3")["selectivity"].argmax()   # doctest: +SKIP

Modules, one idea each: ``sources`` (where images come from), ``accumulate`` (mergeable top-k
and moments), ``summary`` (the ``Summary``: merging and reading), ``summary_file`` (its saved
file, the ``Layout`` and the checks of a file from a stranger), ``plan`` (what is fixed before a
pass, what one batch becomes), ``engine`` (the streaming local pass), ``ray_engine`` (the same on Ray), ``receptive`` (which pixels a grid position sees), ``report``
(CSV tables, heat maps, contact sheets), ``views`` (what the dashboard shows).
"""

from .engine import ENGINES, summarize
from .plan import Plan, make_plan
from .sources import DatasetError, Source, demo_digits, open_source
from .summary import Layout, Summary, differences

__all__ = [
    "ENGINES", "Plan", "make_plan", "summarize", "DatasetError", "Source", "demo_digits", "open_source",
    "Layout", "Summary", "differences",
]
