"""The traced core: what a model computes, layer by layer, in one graph.

``tracing`` (a model re-traced layer by layer, stepping into nested models), ``layers`` (the
layer table and finding a layer), ``probe`` (one forward pass over a batch for many layers, its
memory checked first), ``logits`` (the class scores before the final softmax or sigmoid),
``target`` (the class score an explanation follows), ``batches`` (batches sized to memory),
``passes`` (compiled passes: scores, gradients, switched-off channels), ``predictions`` (reading
the model's output).
"""
