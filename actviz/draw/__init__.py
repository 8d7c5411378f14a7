"""Pictures and numbers for people: from feature maps to grids, figures, statistics and files.

``grids`` (normalise, tile, colour, PNG), ``figures`` (pictures for people: one channel, charts,
overlays), ``resample`` (every resizing of a map, and a Gaussian blur), ``stats`` (per-layer
numbers and what they say, plain titles), ``rounding`` (numbers rounded for people), ``tables``
(the layer table in plain words), ``compare`` (two images through one layer), ``export`` (what
``actviz export`` writes, all or nothing).
"""
