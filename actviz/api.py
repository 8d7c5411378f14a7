"""The library's face: one call from a model and images to what the network sees.

    >>> import actviz
    >>> maps = actviz.activations(model, "xray.jpg")          # doctest: +SKIP
    >>> maps["block1_conv1"].shape, maps.grid("block5_conv3")  # doctest: +SKIP
    >>> actviz.grad_cam(model, ["a.jpg", "b.jpg"])              # doctest: +SKIP

``model``: a ``keras.Model`` in memory (Functional, Sequential with or without
an Input, nested bases), a ``.keras`` / ``.h5`` path, the file's bytes, an
``OpenModel``, or None for the bundled demo. A model in memory is traced once
for its lifetime; a file is opened once per content (a small cache), so
calling these in a loop does not reload or retrace. ``images``: see
``actviz.inputs`` (paths, bytes, Pillow images, uint8 pixels, float model
inputs, or a list of them; one image or a batch).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Sequence

from .explain import grad_cam as _grad_cam
from .inputs import to_batch
from .models import ModelLike, OpenModel, open_model
from .results import FeatureMaps, HeatMaps

#: Model files kept open by content, for calls in a loop.
_OPEN_FILES = 4
_files: OrderedDict[tuple, OpenModel] = OrderedDict()
_files_lock = threading.Lock()


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
) -> HeatMaps:
    """Grad-CAM heat maps: where in each image ``layer`` found evidence for a class.

    ``class_index``: one class for every image, one per image, or None for each
    image's predicted class; ``layer``: a convolution layer (default: the last
    one, nested bases included); ``method``: "gradcam" or "gradcam++". One
    forward and one backward pass for the whole batch.

    >>> cams = actviz.grad_cam(model, "xray.jpg", class_index=1)   # doctest: +SKIP
    >>> cams.heatmap.shape, cams.overlay(0).shape                   # doctest: +SKIP
    ((1, 18, 18), (300, 300, 3))
    """
    opened = _opened(model, trust=trust, class_names=class_names)
    batch = to_batch(images, opened.probe, preprocess_as=preprocess)
    cam = _grad_cam(opened.probe, batch.inputs, layer=layer, class_index=class_index, method=method)
    return HeatMaps(
        layer=cam.layer, method=cam.method, heatmap=cam.heatmap, raw=cam.raw, weights=cam.weights,
        class_index=cam.class_index, probability=cam.probability, pixels=batch.pixels, names=batch.names,
        class_names=opened.class_names,
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
    from .filters import find_patterns
    from .preprocessing import choose_preprocessing

    opened = _opened(model, trust=trust, class_names=class_names)
    name = None if layer is None else opened.probe.layer(layer).name
    scaling = choose_preprocessing(opened.probe, preprocess).method
    return find_patterns(opened.probe, name, list(targets), method=method, objective=objective, steps=steps, seed=seed,
                         preprocessing=scaling, class_names=opened.class_names, progress=progress)


def _opened(model: ModelLike, *, trust: bool, class_names: Sequence[str] | None) -> OpenModel:
    """An OpenModel for ``model``: files are opened once per content (and trust), models in memory traced once."""
    if isinstance(model, OpenModel):
        opened = model
    elif isinstance(model, (bytes, bytearray, memoryview, str, Path)):
        key = (_identity(model), trust)
        with _files_lock:
            opened = _files.get(key)
            if opened is not None:
                _files.move_to_end(key)
        if opened is None:
            opened = open_model(model, trust=trust)
            with _files_lock:
                _files[key] = opened
                while len(_files) > _OPEN_FILES:
                    _files.popitem(last=False)
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
