"""Opening models safely: a model file from a stranger is read, checked and built before Keras
loads it, with every step bounded in memory and time.

``scan`` (the file's structure, read without running anything), ``isolation`` (the scan, or a
whole trial load, in a child process with limits), ``building`` (a dry build: declared weights
and loading memory), ``legacy`` (the Keras 2 ``.h5`` rebuild), ``loading`` (the steps in order),
``download`` (a model file over http(s), bounded), ``models`` (``OpenModel``: a model opened to
look inside, from a file, bytes, the demo or memory).
"""
