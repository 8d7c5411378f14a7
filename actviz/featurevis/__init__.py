"""What a filter looks for: pictures made to excite a channel, a neuron or a class.

``robust`` (optimised in a decorrelated Fourier basis under random shifts, scales and turns),
``patterns`` (plain gradient ascent, the first layer's kernels, and the one call for both).
"""
