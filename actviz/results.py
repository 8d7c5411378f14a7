"""What the library's functions return: batch-first arrays that show themselves in Jupyter.

``FeatureMaps`` (from ``actviz.activations``) is a mapping from layer name to
float32 (N, H, W, C); ``result["block1_conv1"]`` is the array, a grid shows
itself as a picture (``_repr_png_``), the whole result as a table of layers
with small grids (``_repr_html_``). ``ExplanationMaps`` (from ``actviz.explain``)
holds one method's explanation of each image (any of
``actviz.explainers.registry.METHOD_INFO``), shows the maps over the images, and
has the checks' verdicts when they were run; ``HeatMaps`` (from ``actviz.grad_cam``)
is the same result for a class activation map, its raw map through a ReLU.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

if TYPE_CHECKING:
    from .explainers.checks import Checks
    from .explainers.result import Explanation

from .core.predictions import class_probabilities, is_probability
from .draw.grids import FeatureGrid, feature_grid, png_bytes
from .draw.stats import LayerStats, layer_stats


@dataclass
class FeatureMaps(Mapping):
    """Feature maps of N images, batch-first: layer name -> float32 (N, H, W, C).

    ``predictions``: the model's first output (N, ...); ``outputs``: every
    output; ``pixels``: uint8 (N, H, W, C) as the model saw them (None when
    float model inputs were given); ``names``: a label per image;
    ``preprocessing``: the scaling applied, in words.

    >>> maps = actviz.activations(model, "xray.jpg")      # doctest: +SKIP
    >>> maps["block1_conv1"].shape                        # doctest: +SKIP
    (1, 300, 300, 64)
    >>> maps.grid("block1_conv1")                         # a picture in Jupyter  # doctest: +SKIP
    """

    maps: dict
    predictions: np.ndarray
    outputs: list
    pixels: np.ndarray | None
    names: tuple
    preprocessing: str
    class_names: list | None = None
    probe: Any = field(default=None, repr=False)

    # --- a mapping of layer name -> array ------------------------------------------------

    def __getitem__(self, key: str | int) -> np.ndarray:
        """The layer's maps, float32 (N, H, W, C): by full name, unique last part, or table number."""
        if isinstance(key, str) and key in self.maps:
            return self.maps[key]
        name = self.probe.table.resolve(key, among=[self.probe.layer(n) for n in self.maps]).name
        return self.maps[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.maps)

    def __len__(self) -> int:
        return len(self.maps)

    @property
    def count(self) -> int:
        """How many images (N)."""
        return int(self.predictions.shape[0])

    # --- pictures and numbers ----------------------------------------------------------------

    def grid(self, layer: str | int, image: int = 0, **options) -> FeatureGrid:
        """Every channel of ``layer`` for one image as a grid (shows itself in Jupyter).

        ``options`` go to ``actviz.feature_grid`` (per_row, cmap, contrast, gap, display_width).
        """
        return feature_grid(self[layer][image], **options)

    def stats(self, image: int = 0) -> list[LayerStats]:
        """Per-layer statistics for one image, in network order."""
        return [layer_stats(name, maps[image]) for name, maps in self.maps.items()]

    def answer(self, image: int = 0) -> list[tuple[str, float]]:
        """Class names and probabilities for one image, highest first (empty if the output is not probabilities)."""
        prediction = self.predictions[image]
        return class_probabilities(prediction, self.class_names) if is_probability(prediction) else []

    def figure(self, layer: str | int, image: int = 0, **options):
        """A matplotlib Figure of the grid, titled with the layer and the image (not drawn by pyplot)."""
        from matplotlib.figure import Figure

        figure = Figure(figsize=self._size(layer, image, options))
        self._draw(figure.subplots(), layer, image, options)
        return figure

    def show(self, layer: str | int, image: int = 0, **options) -> None:
        """Draw the grid with pyplot (in a notebook: below the cell)."""
        import matplotlib.pyplot as plt

        figure, axes = plt.subplots(figsize=self._size(layer, image, options))
        self._draw(axes, layer, image, options)
        plt.show()

    def _size(self, layer, image, options) -> tuple[float, float]:
        height, width = self.grid(layer, image, **options).index.shape
        scale = min(1.0, 12.0 / max(width / 100, 1e-9))
        return max(4.0, width / 100 * scale), max(2.0, height / 100 * scale + 0.6)

    def _draw(self, axes, layer, image, options) -> None:
        name = layer if isinstance(layer, str) and layer in self.maps else self.probe.layer(layer).name
        axes.imshow(self.grid(layer, image, **options).rgb(), interpolation="nearest")
        axes.set_title(f"{name} ({self[layer].shape[-1]} channels), {self.names[image]}")
        axes.axis("off")

    def save(self, folder: str | Path, *, per_row: int = 16, cmap: str = "viridis", contrast: str = "channel", gap: int = 1, npz: bool = False) -> Path:
        """Write what ``actviz export`` writes: a full-resolution PNG grid per layer and stats.csv
        (and activations.npz with ``npz``), one subfolder per image when there are several.
        The files land all together or not at all."""
        from .draw.export import OutputFolder, grid_file_names
        from .draw.stats import channel_moments, stats_csv
        from .text import file_name, unique_names

        folders = [""] if self.count == 1 else unique_names([file_name(Path(n).stem) or "image" for n in self.names])
        files = grid_file_names(self.probe, list(self.maps))
        with OutputFolder(folder) as out:
            for image, sub in enumerate(folders):
                prefix = f"{sub}/" if sub else ""
                rows = []
                for name, maps in self.maps.items():
                    moments = channel_moments(maps[image])
                    out.write(prefix + files[name], png_bytes(feature_grid(maps[image], per_row=per_row, cmap=cmap, contrast=contrast, gap=gap, moments=moments)))
                    rows.append(layer_stats(name, maps[image], moments=moments))
                out.write(prefix + "stats.csv", stats_csv(rows).encode())
                if npz:
                    import io

                    buffer = io.BytesIO()
                    np.savez_compressed(buffer, **{name: maps[image] for name, maps in self.maps.items()})
                    out.write(prefix + "activations.npz", buffer.getvalue())
        return Path(folder)

    # --- Jupyter ------------------------------------------------------------------------------

    def _repr_html_(self) -> str:
        rows = []
        for info_stats, (name, maps) in zip(self.stats(0), self.maps.items()):
            grid = feature_grid(maps[0], display_width=480)
            rows.append(
                f"<tr><td style='text-align:left'><b>{html.escape(name)}</b></td><td>{' x '.join(map(str, maps.shape[1:]))}</td>"
                f"<td>{info_stats.sparsity:.0%}</td><td>{len(info_stats.blank)} of {info_stats.channels}</td>"
                f"<td><img src='data:image/png;base64,{base64.b64encode(png_bytes(grid)).decode()}' style='max-width:480px'></td></tr>"
            )
        answer = self.answer(0)
        said = f"the model says <b>{html.escape(answer[0][0])}</b> ({answer[0][1]:.1%})" if answer else "outputs " + html.escape(
            ", ".join(f"{v:.4g}" for v in np.ravel(self.predictions[0])[:10]))
        return (
            f"<div><p>Feature maps of {self.count} image{'s' if self.count != 1 else ''} at {len(self.maps)} layers; "
            f"first image ({html.escape(str(self.names[0]))}): {said}. {html.escape(self.preprocessing)}</p>"
            "<table><tr><th>layer</th><th>height x width x channels</th><th>zero values</th><th>blank channels</th>"
            f"<th>channels of the first image</th></tr>{''.join(rows)}</table></div>"
        )

    def __repr__(self) -> str:
        layers = ", ".join(f"{name}: {tuple(maps.shape)}" for name, maps in list(self.maps.items())[:6])
        more = f", ... ({len(self.maps)} layers)" if len(self.maps) > 6 else ""
        return f"FeatureMaps({self.count} image{'s' if self.count != 1 else ''}; {layers}{more})"


@dataclass
class ExplanationMaps:
    """Why the model gave each image's class, by one explanation method; batch-first.

    ``explanation``: the package's ``Explanation`` (``raw`` signed map and
    ``heatmap`` 0..1, both float32 (N, h, w) at the layer's size for a class
    activation map or the input's size for pixel methods and occlusion;
    ``class_index``, ``probability``, ``score``, ``weights``/``ranking`` for
    class activation maps, ``attributions`` (N, H, W, C) for pixel methods);
    its main fields read through this object too (``maps.heatmap``). ``pixels``:
    uint8 (N, H, W, C) as the model saw them (None for float inputs);
    ``checks``: the checks run on it (``actviz.explain(..., checks=True)``), or None.

    >>> maps = actviz.explain(model, "xray.jpg", method="scorecam", checks=True)   # doctest: +SKIP
    >>> maps.overlay(0).shape, maps.verdicts(0)[0]["check"]                        # doctest: +SKIP
    ((300, 300, 3), 'deletion and insertion')
    """

    explanation: "Explanation"
    pixels: np.ndarray | None
    names: tuple
    preprocessing: str
    class_names: list | None = None
    checks: "Checks | None" = None

    @property
    def method(self) -> str:
        """The method's name, e.g. "scorecam" (see ``actviz.explainers.registry.METHOD_INFO``)."""
        return self.explanation.method

    @property
    def layer(self) -> str | None:
        """The convolution layer of a class activation map; None for pixel methods and occlusion."""
        return self.explanation.layer

    @property
    def heatmap(self) -> np.ndarray:
        """float32 (N, h, w) in 0..1: what is drawn over the image."""
        return self.explanation.heatmap

    @property
    def raw(self) -> np.ndarray:
        """float32 (N, h, w): the signed map in its own units, before display scaling."""
        return self.explanation.raw

    @property
    def class_index(self) -> np.ndarray:
        """int64 (N,): the class explained for each image."""
        return self.explanation.class_index

    @property
    def probability(self) -> np.ndarray:
        """float32 (N,): the model's probability for that class."""
        return self.explanation.probability

    @property
    def score(self) -> np.ndarray:
        """float32 (N,): the class score (logit) explained."""
        return self.explanation.score

    @property
    def predictions(self) -> np.ndarray:
        """The model's first output (N, ...)."""
        return self.explanation.predictions

    @property
    def weights(self) -> np.ndarray | None:
        """float32 (N, C): each channel's weight (class activation maps only)."""
        return self.explanation.weights

    @property
    def ranking(self) -> np.ndarray | None:
        """int64 (N, C): channels by their share of the map, largest first (class activation maps only)."""
        return self.explanation.ranking

    @property
    def attributions(self) -> np.ndarray | None:
        """float32 (N, H, W, C): one value per colour channel (pixel methods only)."""
        return self.explanation.attributions

    def __len__(self) -> int:
        return len(self.explanation)

    @property
    def title(self) -> str:
        """The method's name for people, e.g. "Score-CAM"."""
        return self.explanation.title

    def overlay(self, image: int = 0, *, opacity: float = 0.45) -> np.ndarray:
        """The display map over the image: uint8 (H, W, 3)."""
        if self.pixels is None:
            raise ValueError("The images were given as float model inputs, so there are no pixels to draw the map over.")
        return self.explanation.overlay(self.pixels[image], image, opacity=opacity)

    def label(self, image: int = 0) -> str:
        """The name of the class explained for image ``image``."""
        from .core.predictions import class_labels

        index = int(self.explanation.class_index[image])
        return class_labels(index + 1, self.class_names)[index]

    def caption(self, image: int = 0) -> str:
        """One plain sentence: the method, the layer, the class, how sure the model is, how to read the colours."""
        return self.explanation.caption(image, self.class_names)

    def verdicts(self, image: int = 0) -> list[dict]:
        """The checks' verdicts for image ``image``: dicts with ``check``, ``passed`` (True, False or
        None), ``state`` ("passed", "failed", "partly" or "cannot tell": only "passed" reassures),
        ``sentence`` (plain words) and ``reference`` (the paper); empty when no checks were run."""
        return [] if self.checks is None else self.checks.verdicts(image)

    def _repr_png_(self) -> bytes:
        """Jupyter shows the maps over the images, side by side (or the bare maps)."""
        from .draw.figures import picture_png, tile_images

        if self.pixels is not None:
            pictures = np.stack([self.overlay(i) for i in range(len(self))])
        else:
            from .draw.grids import palette

            pictures = np.stack([palette("jet")[(self.explanation.at_input_size(i) * 254).astype(np.uint8)] for i in range(len(self))])
        zoom = max(1, 160 // max(pictures.shape[1:3]))
        return picture_png(tile_images(pictures, per_row=min(4, len(pictures)), gap=4, zoom=zoom))

    def __repr__(self) -> str:
        where = f" at {self.explanation.layer}" if self.explanation.layer else ""
        classes = ", ".join(f"{self.label(i)} ({float(self.explanation.probability[i]):.1%})" for i in range(min(len(self), 4)))
        checked = "; checked" if self.checks is not None else ""
        count = f"{len(self)} image{'s' if len(self) != 1 else ''}"
        return f"{type(self).__name__}({self.explanation.method}{where}, {count}: {classes}{checked})"


class HeatMaps(ExplanationMaps):
    """What ``actviz.grad_cam`` returns: the same result, a class activation map of each image,
    whose ``raw`` map is shown through its ReLU (float32 (N, h, w), at least 0), as
    ``grad_cam`` has always given it; ``explanation.raw`` keeps the signed map.

    >>> cams = actviz.grad_cam(model, ["a.jpg", "b.jpg"], class_index=1)   # doctest: +SKIP
    >>> cams.heatmap.shape, cams.weights.shape, cams.overlay(0).shape       # doctest: +SKIP
    ((2, 18, 18), (2, 512), (300, 300, 3))
    """

    @property
    def raw(self) -> np.ndarray:
        """float32 (N, h, w): the map before display scaling, through a ReLU."""
        return np.maximum(self.explanation.raw, 0.0)
