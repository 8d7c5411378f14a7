"""What a registry entry is: one explanation method (``MethodInfo``) and the schema of each of its
settings (``Setting``), with what every front end reads from them: checked values, ``--help``
words, widget ranges, caption words. No TensorFlow here, and no method: the registry puts the
entries together.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from ..errors import ChoiceError

#: The kinds of setting the caller gives, never asked of people: ``black`` (the model input of a
#: black pixel, from the images' preprocessing) and ``seed``.
CONTEXT_KINDS = ("black", "seed")


@dataclass(frozen=True)
class Limits:
    """What a setting's range may depend on, known before any pass: ``side``, the shorter side of
    the model input in pixels, and ``channels``, the explained layer's channels (None without one)."""

    side: int
    channels: int | None = None


def image_side(limits: Limits) -> int:
    """The shorter side of the image: the largest patch or stride."""
    return limits.side


def layer_channels(limits: Limits) -> int:
    """The layer's channels: the most Score-CAM can use."""
    return int(limits.channels or 1)


def eighth_of_side(limits: Limits) -> int:
    """An eighth of the shorter side, at least a pixel (occlusion's patch when none is given).

    >>> eighth_of_side(Limits(300)), eighth_of_side(Limits(56)), eighth_of_side(Limits(4))
    (38, 7, 1)
    """
    return max(1, round(limits.side / 8))


@dataclass(frozen=True)
class Setting:
    """One setting of a method: its name, default and kind, and what people read.

    ``kind``: people choose a ``count`` (a whole number), a ``share`` (a number in a range) or a
    ``choice`` (one of named choices, or with ``other`` a number or an image); the caller gives
    the ``CONTEXT_KINDS``.

    ``words``: what it is, for ``--help`` and a widget's help; ``label``: a widget's label;
    ``low``/``high``: the values it takes (``high`` may be a function of ``Limits``);
    ``slider``: (low, high, step) a slider offers, within those, when the whole range is too
    wide to slide through (None: the whole range); ``stops``: the only values a widget offers
    (those within the range, then the highest: e.g. 16, 32, 64 channels of 64), where every
    step of a slider would be too fine; ``whole``: the highest value means the default None (all
    of it), so a widget set there gives None back; ``choices``: value -> words;
    ``other``: what a ``choice`` also takes, "number" or "image"; ``default_words``: what a
    None default means; ``resolve``: the value a None default comes to at given ``Limits``
    (for a widget); ``error``: the message for a value out of range ({value}, {low}, {high});
    ``phrase``: how a value reads in a caption ({value}); ``none_phrase``: how None reads (""
    leaves the caption out).
    """

    name: str
    default: Any
    kind: str
    words: str = ""
    label: str = ""
    low: float = 0
    high: float | Callable[[Limits], int] | None = None
    slider: tuple | None = None
    stops: tuple = ()
    whole: bool = False
    choices: Mapping[str, str] = field(default_factory=dict)
    other: str = ""
    default_words: str = ""
    resolve: Callable[[Limits], Any] | None = None
    error: str = ""
    phrase: str = "{value}"
    none_phrase: str = ""

    @property
    def offered(self) -> bool:
        """True for a setting people choose; False for one the caller gives (``CONTEXT_KINDS``)."""
        return self.kind not in CONTEXT_KINDS

    def bounds(self, limits: Limits) -> tuple[float, float]:
        """The lowest and highest value taken at ``limits``."""
        high = self.high(limits) if callable(self.high) else self.high
        return self.low, high

    def check(self, value: Any, limits: Limits) -> Any:
        """``value`` if this setting takes it (a count as an int, a share as a float, a seed as an
        int; anything else as given); ``ChoiceError`` in words otherwise."""
        if value is None and self.default is None:
            return None
        if self.kind == "seed":
            return int(value)
        if self.kind == "choice":
            return self._choice(value)
        if self.kind not in ("count", "share"):
            return value
        low, high = self.bounds(limits)
        whole = isinstance(value, (int, np.integer))
        number = whole or isinstance(value, (float, np.floating))
        if isinstance(value, bool) or not (whole if self.kind == "count" else number) or not low <= value <= high:
            raise ChoiceError(self.error.format(value=value, low=low, high=high))
        return int(value) if self.kind == "count" else float(value)

    def _choice(self, value: Any) -> Any:
        if isinstance(value, str):
            if value not in self.choices:
                listed = ", ".join(self.choices) + (", or a number" if self.other == "number" else "")
                raise ChoiceError(f"Unknown {self.name} '{value}'. Choose one of: {listed}.")
            return value
        if self.other == "number" and (isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not np.isfinite(value)):
            raise ChoiceError(self.error.format(value=value))
        return value

    def help(self) -> str:
        """Its words for ``--help``, with the default: "noisy copies of the image (default 20)"."""
        if self.kind == "choice":
            named = [f"{choice} (default)" if choice == self.default else choice for choice in self.choices]
            listed = ", ".join(named) + ", or a number" if self.other == "number" else ", ".join(named[:-1]) + " or " + named[-1]
            return f"{self.words}: {listed}"
        if self.default is not None:
            return f"{self.words} (default {self.default})"
        return f"{self.words} (default: {self.default_words})" if self.default_words else self.words

    def from_text(self, text: str) -> Any:
        """A value typed on the command line, for a ``choice`` that also takes a number: the number
        if it reads as one ("0.5"), else the text."""
        if self.other == "number":
            try:
                return float(text)
            except ValueError:
                pass
        return text

    def widget(self, limits: Limits) -> dict:
        """What a page needs to draw this setting: name, label, kind ("slider", "stops" or
        "select"), low, high and step (sliders), the values offered (stops; ``whole``: the value
        that stands for the default None, "all"), choices and their words (select boxes), the
        starting value and the help."""
        if self.kind == "choice":
            return {"name": self.name, "label": self.label, "kind": "select", "choices": list(self.choices),
                    "words": dict(self.choices), "value": self.default, "help": self.help()}
        low, high = self.bounds(limits)
        value = self.resolve(limits) if self.default is None and self.resolve is not None else self.default
        common = {"name": self.name, "label": self.label, "value": value, "help": self.help(), "whole": high if self.whole else None}
        if self.stops:
            return {**common, "kind": "stops", "values": [v for v in self.stops if low <= v < high] + [high]}
        step = 1 if self.kind == "count" else None
        if self.slider is not None:
            low, high, step = max(low, self.slider[0]), min(high, self.slider[1]), self.slider[2]
        return {**common, "kind": "slider", "low": low, "high": high, "step": step}

    def caption(self, value: Any) -> str | None:
        """How ``value`` reads in a caption; None when the caption should be left out."""
        if value is None:
            return self.none_phrase or None
        if isinstance(value, str) and value in self.choices:
            return self.choices[value]
        if self.other == "image" and not isinstance(value, str):
            return "a given image"
        if self.other == "number":
            return f"the value {value:g}"
        return self.phrase.format(value=value)


@dataclass(frozen=True)
class MethodInfo:
    """One method: its command-line name, title, family, the class that computes it (``method``:
    made with ``method(probe, info, layer=..., batch_size=..., progress=...)``, called as
    ``.explain(batch, class_index, **settings)``), a sentence for people, its reference,
    whether it needs a convolution layer, whether it runs the model many times (``expensive``:
    show a progress bar, one at a time per server), how its raw map is shown (``display``, a
    rule of ``result.DISPLAY_RULES``), its settings' schema and its caption (a template over the
    settings' phrases, e.g. "{steps} from {baseline}")."""

    name: str
    title: str
    family: str
    method: Callable[..., Any]
    sentence: str
    layer: bool = False
    expensive: bool = False
    display: str = "positive"
    schema: tuple = ()
    reference: str = ""
    caption: str = ""

    @property
    def settings(self) -> dict:
        """Each setting's default: name -> value."""
        return {setting.name: setting.default for setting in self.schema}

    def check(self, settings: Mapping[str, Any], limits: Limits | None = None) -> dict:
        """Its defaults updated with ``settings``, each value checked against ``limits`` (names only
        when None); ``ChoiceError`` for a setting it lacks or a value it does not take."""
        unknown = sorted(set(settings) - set(self.settings))
        if unknown:
            offered = f"its settings are: {', '.join(self.settings)}" if self.schema else "it has no settings"
            raise ChoiceError(f"{self.title} has no setting '{unknown[0]}'; {offered}.")
        chosen = {**self.settings, **settings}
        if limits is None:
            return chosen
        return {setting.name: setting.check(chosen[setting.name], limits) for setting in self.schema}

    def words(self, settings: Mapping[str, Any]) -> str:
        """The settings it ran with, in plain words for a caption ("" when it has none to tell)."""
        schema = {setting.name: setting for setting in self.schema}
        phrases = {}
        for _, name, _, _ in string.Formatter().parse(self.caption):
            if name:
                phrases[name] = schema[name].caption(settings.get(name))
        return "" if None in phrases.values() else self.caption.format(**phrases)

    def context(self, *, black: Any, seed: int) -> dict:
        """The settings the caller gives (a black pixel, a seed) that this method takes."""
        given = {"black": black, "seed": seed}
        return {setting.name: given[setting.kind] for setting in self.schema if setting.kind in CONTEXT_KINDS}
