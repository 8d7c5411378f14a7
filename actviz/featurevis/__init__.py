"""What a filter looks for: pictures made to excite a channel, a neuron or a class (after lucent's
layout: one module per idea of feature visualisation).

``patterns`` (the one call, ``find_patterns``, and the first layer's kernels), ``param`` (the
picture as parameters: Fourier basis, colour decorrelation, pixels and model inputs from them),
``transforms`` (random shifts, scales and turns), ``objectives`` (channel, neuron, class: what is
maximised), ``render`` (the optimisation loops, robust and plain, waking dead-looking targets,
finishing, progress), ``result`` (``Patterns``, what they return), ``measures`` (high-frequency
share and robustness, for the benchmark).
"""
