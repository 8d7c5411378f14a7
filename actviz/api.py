"""The library's face: one call from a model and images to what the network sees.

    >>> import actviz
    >>> maps = actviz.activations(model, "xray.jpg")          # doctest: +SKIP
    >>> maps["block1_conv1"].shape, maps.grid("block5_conv3")  # doctest: +SKIP
    >>> actviz.grad_cam(model, ["a.jpg", "b.jpg"])              # doctest: +SKIP
    >>> actviz.explain(model, "xray.jpg", method="integrated-gradients", checks=True)  # doctest: +SKIP

``model``: a ``keras.Model`` in memory (Functional, Sequential with or without
an Input, nested bases), a ``.keras`` / ``.h5`` path, the file's bytes, an
``OpenModel``, or None for the bundled demo. A model in memory is traced once
for its lifetime; a file is opened once per content (a small cache), so
calling these in a loop does not reload or retrace. ``images``: see
``actviz.inputs.batch`` (paths, bytes, Pillow images, uint8 pixels, float model
inputs, or a list of them; one image or a batch).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Sequence

from .core.batches import Progress
from .errors import ChoiceError
from .explainers.explain import explain as _explain
from .explainers.registry import context_settings, method_info
from .inputs.batch import to_batch
from .results import ExplanationMaps, FeatureMaps, HeatMaps
from .safety.models import ModelLike, OpenModel, open_model
from .serve.stores import BoundedStore

#: Model files kept open by content (and trust), for calls in a loop, the least recently used let go first.
_OPEN_FILES = 4
_files = BoundedStore(max_entries=_OPEN_FILES)


def activations(
    model: ModelLike, images: Any, layers: Sequence[str | int] | str | int | None = None, *,
    preprocess: str = "auto", class_names: Sequence[str] | None = None, trust: bool = False,
) -> FeatureMaps:
    """The feature maps of ``layers`` for ``images``, from one forward pass over the batch.

    ``layers``: names (``"block1_conv1"``, or nested ``"vgg16/block1_conv1"``),
    table numbers, ``"all"`` (every layer with an image-like output), or None
    (the convolution and pooling layers, as the notebook showed).
    ``preprocess``: how pixel images are scaled ("auto", "rescale", "none",
    "tf", "caffe", "torch"); float arrays are passed as they are.
    Returns ``FeatureMaps``: layer name -> float32 (N, H, W, C).

    >>> maps = actviz.activations(None, "digit_7.png", ["block1_conv1"])   # the demo model  # doctest: +SKIP
    >>> maps["block1_conv1"].shape                                        # doctest: +SKIP
    (1, 56, 56, 16)
    """
    opened = _opened(model, trust=trust, class_names=class_names)
    probe = opened.probe
    batch = to_batch(images, probe, preprocess_as=preprocess)
    if layers == "all":
        names = [info.name for info in probe.spatial_layers]
    elif layers is None:
        names = [info.name for info in probe.default_layers]
    else:
        wanted = [layers] if isinstance(layers, (str, int)) else list(layers)
        names = list(dict.fromkeys(probe.layer(key).name for key in wanted))
    result = probe.run(batch.inputs, names)
    return FeatureMaps(
        maps=result.maps, predictions=result.predictions[0], outputs=result.predictions, pixels=batch.pixels,
        names=batch.names, preprocessing=batch.preprocessing.note, class_names=opened.class_names, probe=probe,
    )


def grad_cam(
    model: ModelLike, images: Any, class_index: int | Sequence[int] | None = None, layer: str | int | None = None, *,
    method: str = "gradcam", preprocess: str = "auto", class_names: Sequence[str] | None = None, trust: bool = False,
    batch_size: int | None = None, progress: Progress | None = None, **settings: Any,
) -> HeatMaps:
    """Class activation maps: where in each image ``layer`` found evidence for a class.

    ``class_index``: one class for every image, one per image, or None for each
    image's predicted class; ``layer``: a convolution layer (default: the last
    one, nested bases included); ``method``: any class activation map of
    ``actviz.explainers.registry.METHOD_INFO`` ("gradcam", "gradcam++", "hirescam",
    "xgradcam", "layercam", "scorecam", "ablationcam", "eigencam"), with its
    own ``settings`` (e.g. ``channels=16`` for Score-CAM). Grad-CAM takes one
    forward and one backward pass for the whole batch; Score-CAM and
    Ablation-CAM run the model many times, ``batch_size`` inputs a pass,
    calling ``progress(done, total)`` after each (``False`` stops them with
    ``Cancelled``). Pixel attributions and occlusion: ``actviz.explain``.

    >>> cams = actviz.grad_cam(model, "xray.jpg", class_index=1)   # doctest: +SKIP
    >>> cams.heatmap.shape, cams.overlay(0).shape                   # doctest: +SKIP
    ((1, 18, 18), (300, 300, 3))
    >>> actviz.grad_cam(model, "xray.jpg", method="scorecam", channels=32)   # doctest: +SKIP
    """
    info = method_info(method)
    if info.family != "cam":
        raise ChoiceError(
            f"{info.title} is not a class activation map: it explains the input pixels, not a layer. "
            f"Use actviz.explain(model, images, method='{method}')."
        )
    opened = _opened(model, trust=trust, class_names=class_names)
    batch = to_batch(images, opened.probe, preprocess_as=preprocess)
    cam = _explain(opened.probe, batch.inputs, method=method, layer=layer, class_index=class_index,
                   batch_size=batch_size, progress=progress, **settings)
    return HeatMaps(explanation=cam, pixels=batch.pixels, names=batch.names, preprocessing=batch.preprocessing.note,
                    class_names=opened.class_names)


def explain(
    model: ModelLike, images: Any, method: str = "gradcam", class_index: int | Sequence[int] | None = None,
    layer: str | int | None = None, *, checks: bool = False, preprocess: str = "auto",
    class_names: Sequence[str] | None = None, trust: bool = False, seed: int = 0, batch_size: int | None = None,
    progress: Progress | None = None, **settings: Any,
) -> ExplanationMaps:
    """Why the model gave each image's class, by any explanation method, with checks on request.

    ``method``: one of ``actviz.explainers.registry.METHOD_NAMES``; ``actviz.method_table()``
    lists them by family with a sentence each: class activation maps
    ("gradcam", "gradcam++", "hirescam", "xgradcam", "layercam", "scorecam",
    "ablationcam", "eigencam"), pixel attributions ("saliency", "smoothgrad",
    "integrated-gradients", "gradient-x-input") and "occlusion".
    ``class_index``: one class for every image, one per image, or None for each
    image's predicted class; ``layer``: the convolution layer of a class
    activation map (default: the last one; pixel methods take none).
    ``settings``: the method's own options (``channels`` for Score-CAM;
    ``samples``, ``noise`` for SmoothGrad; ``steps``, ``baseline`` for
    Integrated Gradients; ``patch``, ``stride``, ``fill`` for occlusion); a
    "black" baseline or fill is a black pixel under the images' preprocessing,
    and ``seed`` seeds the noise and the checks' random weights.
    ``checks``: also run the deletion/insertion curves, the model
    randomisation and (Integrated Gradients) completeness; ``verdicts(i)`` then
    says in plain words whether to trust each map. Methods that run the model
    many times stack ``batch_size`` inputs a pass and call
    ``progress(done, total)`` after each, first for the method, then for the
    checks; ``False`` stops the work with ``Cancelled``.

    >>> maps = actviz.explain(model, "xray.jpg", method="smoothgrad", samples=10)   # doctest: +SKIP
    >>> maps.heatmap.shape, maps.caption(0)                                          # doctest: +SKIP
    ((1, 300, 300), 'SmoothGrad, for class 1 (probability 97.0%): bright where ...')
    >>> actviz.explain(model, "xray.jpg", method="gradcam", checks=True).verdicts(0)  # doctest: +SKIP
    """
    from .explainers.attributions import black_input
    from .explainers.checks import run_checks

    method_info(method)  # an unknown method is said before the model is opened
    opened = _opened(model, trust=trust, class_names=class_names)
    batch = to_batch(images, opened.probe, preprocess_as=preprocess)
    black = black_input(batch.preprocessing.scaling, batch.inputs.shape[-1])  # "none" for float model inputs
    options = {**context_settings(method, black=black, seed=seed), **settings}
    result = _explain(opened.probe, batch.inputs, method=method, class_index=class_index, layer=layer,
                      batch_size=batch_size, progress=progress, **options)
    found = None
    if checks:
        found = run_checks(opened.probe, batch.inputs, result, black=black, seed=seed, batch_size=batch_size, progress=progress)
    return ExplanationMaps(
        explanation=result, pixels=batch.pixels, names=batch.names, preprocessing=batch.preprocessing.note,
        class_names=opened.class_names, checks=found,
    )


def feature_patterns(
    model: ModelLike, layer: str | int | None, targets: Sequence[int], *, method: str = "robust", objective: str = "channel",
    steps: int | None = None, seed: int = 0, preprocess: str = "auto", trust: bool = False,
    class_names: Sequence[str] | None = None, progress: Any = None,
) -> Any:
    """Pictures made to excite chosen channels of ``layer`` (or classes, with ``objective="class"``
    and ``layer=None``), as ``featurevis.Patterns``: ``images`` uint8 (N, H, W, C), what each
    reached, ``dead`` where no picture could be made, ``picture(i)`` and ``captions()``.

    ``method``: "robust" (Fourier parameterisation, colour decorrelation and small random
    shifts, scales and turns at each step: pictures people recognise) or "plain" (gradient
    ascent on the pixels); ``objective``: "channel" (the channel's mean), "neuron" (its centre
    position) or "class"; ``steps``; ``seed`` (the same seed gives the same pictures);
    ``progress(done, total)``, returning False to stop (``Cancelled``).

    >>> patterns = actviz.feature_patterns(model, "block3_conv1", [0, 1, 2, 3])   # doctest: +SKIP
    >>> patterns.images.shape, patterns.captions()[0]                            # doctest: +SKIP
    """
    from .featurevis.patterns import find_patterns
    from .inputs.preprocessing import choose_preprocessing

    opened = _opened(model, trust=trust, class_names=class_names)
    name = None if layer is None else opened.probe.layer(layer).name
    scaling = choose_preprocessing(opened.probe, preprocess).scaling
    return find_patterns(opened.probe, name, list(targets), method=method, objective=objective, steps=steps, seed=seed,
                         preprocessing=scaling, class_names=opened.class_names, progress=progress)


def _opened(model: ModelLike, *, trust: bool, class_names: Sequence[str] | None) -> OpenModel:
    """An OpenModel for ``model``: files are opened once per content (and trust), models in memory traced once."""
    if isinstance(model, OpenModel):
        opened = model
    elif isinstance(model, (bytes, bytearray, memoryview, str, Path)):
        opened = _files.get((_identity(model), trust), lambda: open_model(model, trust=trust))
    else:
        opened = open_model(model, trust=trust)
    if class_names:
        opened = OpenModel(opened.loaded, opened.probe, list(class_names), opened.notes)
    return opened


def _identity(source: bytes | str | Path) -> tuple:
    """What makes a file the same file: its bytes' hash, or its path with size and time of change."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return ("bytes", hashlib.sha256(bytes(source)).hexdigest())
    path = Path(source).expanduser()
    try:
        stat = path.resolve().stat()
    except OSError:
        return ("path", str(path))  # open_model reports the missing file in words
    return ("path", str(path.resolve()), stat.st_size, stat.st_mtime_ns)
