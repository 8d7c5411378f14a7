"""Why the model answered as it did: explanation methods, their registry, and checks of whether
a map can be trusted.

``registry`` (the table: one entry per method, from which the dispatch, the ``explain``
command's flags, the captions, ``method_table()`` and the dashboard's widgets are made),
``schema`` (what an entry and a setting are), ``explain`` (one call for every method),
``result`` (the ``Explanation`` every method returns), ``base`` (what every method is),
``checks`` (deletion and insertion, model randomisation, completeness).

One file per method, over its family's base:

- ``cam`` (class activation maps: the layer's maps, the gradient at them, the map from the
  channel weights): ``gradcam``, ``gradcam_plus_plus``, ``hirescam``, ``xgradcam``,
  ``layercam``, ``scorecam``, ``ablationcam``, ``eigencam``;
- ``attributions`` (pixel attributions over the gradient at the pixels): ``saliency``,
  ``gradient_x_input``, ``integrated_gradients``, and ``smoothgrad`` (a noise tunnel over any
  one-pass gradient method; SmoothGrad is the tunnel over Saliency);
- ``occlusion`` (hiding patches).

Adding a method: write its file, a class over its family's base (a class activation map
subclasses ``cam.CAM`` and overrides ``weights``, plus ``terms`` if it weighs each position on
its own; a pixel attribution subclasses ``attributions.Attribution`` and overrides ``local`` or
``attribute``), then add one ``MethodInfo`` entry for it to the table in ``registry`` (name,
title, family, the class, a sentence, its settings). Nothing else changes: ``explain``, the
command line, the captions, the method table and the dashboard all read the table.
"""
