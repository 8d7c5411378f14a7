"""Opening models safely: a model file from a stranger is read, checked and built before Keras
loads it, with every step bounded in memory and time.

``loading`` (the one opening path: each step once, in order, one function per isolation level),
``scan`` (the file's structure, read without running anything), ``policy`` (what the parent
trusts: which checks a file gets, what a configuration may name), ``isolation`` (the parent's
side of a check in a child process: limits, refusals in words), ``child`` (what runs in that
child: the scan, or the build and one trial pass), ``building`` (a dry build: declared weights and
loading memory; then the load), ``legacy`` (the Keras 2 ``.h5`` rebuild), ``download`` (a model
file over http(s), bounded), ``models`` (``OpenModel``: a model opened to look inside, from a
file, bytes, the demo or memory).
"""
