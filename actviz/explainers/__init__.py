"""Why the model answered as it did: explanation methods, their registry, and checks of whether
a map can be trusted.

``registry`` (every method: family, sentence, settings), ``explain`` (one call for every
method), ``result`` (the ``Explanation`` every method returns), ``cams`` (class activation
maps), ``attributions`` (pixel attributions), ``occlusion`` (hiding patches), ``checks``
(deletion and insertion, model randomisation, completeness).
"""
