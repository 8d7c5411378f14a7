"""Running a model in bfloat16: a twin of the model whose layers compute in bfloat16 (Keras's
``mixed_bfloat16`` policy: weights kept in float32, cast as they are used) with the same weights,
looked into through an ordinary ``Probe``.

On a processor with bfloat16 instructions (AVX512_BF16 or AMX), oneDNN runs the convolutions of
the twin several times faster than in float32: VGG16 to block5_conv3 at 300 x 300 ran 21-22
images per second against 3.3-3.7 in float32, on the 2-core Xeon this was measured on, with a
relative L2 error of under 1% at block5_conv3. Without those instructions bfloat16 is emulated
and slower, so it is not used there (``choose_precision`` says so in words).

The layers that make the model's outputs stay in float32 (a final softmax in bfloat16 keeps
three significant digits of each probability); so do the layers of nested models that make their
model's outputs, and BatchNormalization computes in float32 under Keras's policy anyway.

>>> fast = at_precision(open_model("xray.h5"), "bfloat16")      # doctest: +SKIP
>>> summarize(fast, "chest_xray/test")                         # doctest: +SKIP
"""

from __future__ import annotations

import platform
import weakref
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import ActvizError, ChoiceError
from .probe import Probe

#: The precisions a model can be run in.
PRECISIONS = ("float32", "bfloat16")
#: Flags of /proc/cpuinfo that mean the processor computes in bfloat16 natively.
BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")

# probe of a twin -> the precision it runs in (a probe not listed runs in float32)
_precision_of: "weakref.WeakKeyDictionary[Probe, str]" = weakref.WeakKeyDictionary()


class PrecisionError(ActvizError):
    """The model cannot be run in the precision asked for."""


@dataclass(frozen=True)
class Choice:
    """The precision used (``name``) and, when it is not the one asked for, why (``note``)."""

    name: str
    note: str = ""


@lru_cache(maxsize=1)
def supports_bfloat16() -> bool:
    """Whether this processor has bfloat16 instructions (read once from /proc/cpuinfo; False
    where there is none to read)."""
    if platform.system() != "Linux":
        return False
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    flags = {word for line in text.splitlines() if line.startswith("flags") for word in line.split(":", 1)[-1].split()}
    return any(flag in flags for flag in BFLOAT16_FLAGS)


def choose_precision(name: str | None) -> Choice:
    """The precision to run in for a request (None: float32): bfloat16 only where the processor
    has the instructions for it, else float32 with a note saying why."""
    wanted = (name or "float32").strip().lower()
    if wanted not in PRECISIONS:
        raise ChoiceError(f"Unknown precision '{name}'. Choose one of: {', '.join(PRECISIONS)}.")
    if wanted == "bfloat16" and not supports_bfloat16():
        return Choice("float32", "This processor has no bfloat16 instructions (AVX512_BF16 or AMX), where bfloat16 would be "
                                 "slower than float32, so the model runs in float32.")
    return Choice(wanted)


def precision_of(probe: Probe) -> str:
    """The precision a probe's model computes in: "bfloat16" for a twin made here, else "float32"."""
    return _precision_of.get(probe, "float32")


def probe_at(probe: Probe, precision: str) -> Probe:
    """The probe that runs ``probe``'s model in ``precision`` ("float32": the probe itself;
    "bfloat16": a probe on the model's bfloat16 twin, made once per probe and kept in its cache),
    with the same memory budget. Ask ``choose_precision`` first whether the processor supports it."""
    if precision not in PRECISIONS:
        raise ChoiceError(f"Unknown precision '{precision}'. Choose one of: {', '.join(PRECISIONS)}.")
    if precision == "float32" or precision_of(probe) == precision:
        return probe

    def build() -> Probe:
        model = probe.model
        if model is None:
            raise PrecisionError("The model is no longer open, so it cannot be run in bfloat16; open it again.")
        twin = Probe(bfloat16_twin(model), max_bytes=probe.max_bytes)
        _precision_of[twin] = "bfloat16"
        return twin

    twin = probe.cached_model(("precision", precision), build)
    twin.max_bytes = probe.max_bytes  # the job's budget may have been set after the twin was made
    return twin


def at_precision(opened: Any, precision: str | None) -> Any:
    """An ``OpenModel`` whose probe runs in ``precision`` where the processor supports it (else
    the same model in float32, its ``notes`` saying why): the same file, digest and class names."""
    chosen = choose_precision(precision)
    if chosen.name == precision_of(opened.probe):
        return opened if not chosen.note else replace(opened, notes=[*opened.notes, chosen.note])
    probe = probe_at(opened.probe, chosen.name)
    return replace(opened, probe=probe, notes=[*opened.notes, *([chosen.note] if chosen.note else [])])


def bfloat16_twin(model: Any) -> Any:
    """A copy of a Functional or Sequential keras.Model (nested models too) whose layers compute in
    bfloat16 and hold the same weights; the layers that make the model's outputs stay float32.
    The model itself is not changed. ``PrecisionError`` in words when Keras cannot rebuild it."""
    import keras

    keep = _output_layers(model)

    def clone(layer: Any) -> Any:
        config = layer.get_config()
        config["dtype"] = "float32" if id(layer) in keep else "mixed_bfloat16"
        return layer.__class__.from_config(config)

    try:
        twin = keras.models.clone_model(model, clone_function=clone, recursive=True)
        twin.set_weights(model.get_weights())
    except Exception as exc:  # noqa: BLE001 -- a layer Keras cannot rebuild from its configuration
        raise PrecisionError(
            f"This model cannot be run in bfloat16 ({type(exc).__name__}: {' '.join(str(exc).split())[:160]}); "
            "run it in float32."
        ) from None
    return twin


def _output_layers(model: Any) -> set[int]:
    """ids of the layers that make ``model``'s outputs, and of those inside a nested model that makes one."""
    import keras

    found: set[int] = set()
    for tensor in keras.tree.flatten(model.outputs):
        history = getattr(tensor, "_keras_history", None)
        layer = history[0] if history else None
        if layer is None:
            continue
        found.add(id(layer))
        if isinstance(layer, keras.Model) and hasattr(layer, "outputs"):
            found |= _output_layers(layer)
    return found
