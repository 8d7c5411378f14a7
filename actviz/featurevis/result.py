"""What feature visualisation returns: ``Patterns``, the pictures made for chosen channels (or
classes), with what each reached, which could not be made, and plain words to read them by."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..core.predictions import class_labels
from ..draw.rounding import for_people
from .param import WAKE_STARTS


@dataclass
class Patterns:
    """Patterns that excite chosen channels (or classes), with what each reached.

    ``images``: uint8 (N, H, W, C), what to show (for the robust method the
    very pixels the model was given; a dead target is flat grey);
    ``inputs``: float32 (N, H, W, C), the model input of each pattern, in the
    model's own range (preprocessing applied); ``activation``: float32 (N,),
    the objective on the untransformed pattern; ``start``: float32 (N,), the
    objective on the starting image; ``dead``: bool (N,), True where no
    pattern could be made (the gradient was zero at every step).
    ``targets`` are channel numbers (or class numbers for ``objective="class"``).
    """

    images: np.ndarray
    inputs: np.ndarray
    activation: np.ndarray
    start: np.ndarray
    dead: np.ndarray
    targets: list[int]
    layer: str | None
    objective: str
    method: str
    steps: int
    seed: int
    seconds: float = 0.0
    class_names: list[str] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.targets)

    def target_name(self, index: int) -> str:
        """Plain words for the i-th target: "channel 5 of block2_conv1", "digit 3" ..."""
        target = self.targets[index]
        if self.objective == "class":
            return class_labels(target + 1, self.class_names)[target]
        where = "the centre of " if self.objective == "neuron" else ""
        return f"{where}channel {target} of {self.layer}"

    def captions(self) -> list[str]:
        """One line per pattern, in plain words (dead targets say so)."""
        lines = []
        for i in range(len(self)):
            if self.dead[i] and self.objective == "class":
                lines.append(f"{self.target_name(i)}: no pattern: the model's score for it does not change "
                             "with the picture, so nothing can be drawn.")
            elif self.dead[i]:
                lines.append(f"{self.target_name(i)}: no pattern: it never responds (a 'dead' filter); "
                             "it stays at zero for every image tried, so nothing can be drawn.")
            else:
                lines.append(f"{self.target_name(i)}: reaches {for_people(self.activation[i])} (from {for_people(self.start[i])} on the starting image)")
        return lines

    def rows(self) -> list[dict]:
        """A table for a view: one dict per pattern (target, what, activation, start, dead)."""
        return [
            {"target": int(t), "what": self.target_name(i), "activation": float(self.activation[i]),
             "start": float(self.start[i]), "dead": bool(self.dead[i])}
            for i, t in enumerate(self.targets)
        ]

    def note(self) -> str:
        """How the pictures were made and how to read them, in plain words."""
        goal = {
            "channel": "to make each channel as strong as possible on average over the whole picture",
            "neuron": "to make each channel as strong as possible at the centre of the picture",
            "class": "to make the model's score for each class as high as possible",
        }[self.objective]
        read = {
            "channel": "Read it as a texture: what the filter looks for, repeated all over; the strokes, shapes and "
                       "colours are the ones it prefers.",
            "neuron": "Look at the middle: that is what the filter looks for at one place; the edges matter little.",
            "class": "Read it as a collage of the things the model takes as signs of that class, not as a photo.",
        }[self.objective]
        if self.method == "robust":
            how = (f"Each picture was changed step by step ({self.steps} steps) {goal}. It was built from smooth "
                   "waves rather than single pixels, and at every step it was shifted, scaled and turned a little "
                   f"at random, so only shapes that keep working when moved survive. {read}")
        else:
            how = (f"Each picture was changed pixel by pixel ({self.steps} steps) {goal}, starting from grey with "
                   "a little noise, then stretched in contrast for viewing. Plain ascent tends to find fine "
                   "stripes and pixel noise that real images do not have; the robust method is easier to read.")
        dead = int(np.sum(self.dead))
        if dead:
            how += (f" {dead} of {len(self)} never respond at all (dead filters): no picture tried (a grey one, "
                    f"{len(WAKE_STARTS)} random darker, brighter and smoother ones, and every step) made them fire, "
                    "so they are shown flat grey rather than as noise.")
        return how

    def picture(self, index: int | None = None, *, side: int = 128, per_row: int = 8) -> np.ndarray:
        """One pattern (``index``) or all of them in rows, enlarged by a whole factor to about
        ``side`` pixels each: uint8 (H', W', 3), white between patterns."""
        from ..draw.figures import tile_images

        images = self.images if index is None else self.images[index:index + 1]
        zoom = max(1, side // max(1, max(images.shape[1:3])))
        return tile_images(images, per_row=max(1, min(per_row, len(images))), gap=4, zoom=zoom)

    def _repr_png_(self) -> bytes:
        from ..draw.figures import picture_png

        return picture_png(self.picture(side=96))
