"""Every ``ACTVIZ_*`` setting in one table, read with one policy.

An operator sets these as environment variables (or, for the dashboard, as Streamlit secrets of
the same name). A value that is not of the setting's kind or outside its range is an error that
names the variable and the values it takes; an unset or empty one is the default. Nothing is read
at import time: ``value(name)`` reads the variable when asked.

>>> value("ACTVIZ_MAX_JOBS", {"ACTVIZ_MAX_JOBS": "3"})
3
>>> value("ACTVIZ_MAX_JOBS", {})
1
>>> value("ACTVIZ_MAX_JOBS", {"ACTVIZ_MAX_JOBS": "many"})
Traceback (most recent call last):
...
actviz.errors.SettingError: ACTVIZ_MAX_JOBS is 'many'; it takes a whole number of 1 or more (expensive jobs running at once on the server).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping

from .errors import SettingError


@dataclass(frozen=True)
class Setting:
    """One variable: its ``kind`` ("int", "float", "bool", "text", "choice" or "list": one or more
    of its ``choices``, separated by commas), ``default`` (None: unset), the lowest value a number
    may take, the ``choices`` of a choice or a list, and what it sets."""

    name: str
    kind: str
    default: Any
    meaning: str
    minimum: float | None = None
    choices: tuple = ()

    def parse(self, text: str) -> Any:
        """The value of ``text``; ``SettingError`` naming the variable and what it takes otherwise."""
        text = text.strip()
        try:
            if self.kind == "int":
                parsed: Any = int(text)
            elif self.kind == "float":
                parsed = float(text)
                if parsed != parsed or parsed in (float("inf"), float("-inf")):
                    raise ValueError(text)
            elif self.kind == "bool":
                parsed = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}[text.lower()]
            elif self.kind == "choice":
                parsed = text.lower()
                if parsed not in self.choices:
                    raise ValueError(text)
            elif self.kind == "list":  # in the order given, each once
                parsed = tuple(dict.fromkeys(part.strip().lower() for part in text.split(",") if part.strip()))
                if not parsed or not set(parsed) <= set(self.choices):
                    raise ValueError(text)
            else:
                parsed = text
        except (ValueError, KeyError):
            raise SettingError(f"{self.name} is '{text}'; it takes {self.takes()} ({self.meaning}).") from None
        if self.minimum is not None and parsed < self.minimum:
            raise SettingError(f"{self.name} is {text}; it takes {self.takes()} ({self.meaning}).")
        return parsed

    def takes(self) -> str:
        """What the variable takes, in words."""
        if self.kind == "int":
            return f"a whole number of {self.minimum:g} or more" if self.minimum is not None else "a whole number"
        if self.kind == "float":
            return f"a number of {self.minimum:g} or more" if self.minimum is not None else "a number"
        if self.kind == "bool":
            return "1 (on) or 0 (off)"
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        if self.kind == "list":
            return "one or more of " + ", ".join(self.choices) + ", separated by commas"
        return "a text"


_TABLE = [
    # what a deployment shows
    Setting("ACTVIZ_MODEL", "text", None, "the model file the dashboard opens on: a path or an http(s) address"),
    Setting("ACTVIZ_SAMPLES", "text", None, "a folder of sample images offered with that model"),
    Setting("ACTVIZ_CLASSES", "text", None, "the class names in order, separated by commas"),
    Setting("ACTVIZ_DATASET", "text", None, "a folder, CSV or ZIP on the server for the data set view"),
    Setting("ACTVIZ_CONCEPTS", "text", None, "a folder on the server with one subfolder of example images per named concept (concept tests)"),
    Setting("ACTVIZ_RANDOM_IMAGES", "text", None, "a folder of other images on the server: the counterexamples of concept tests"),
    Setting("ACTVIZ_TITLE", "text", None, "the dashboard's title at the top of every page (default: What the network sees)"),
    Setting("ACTVIZ_DESCRIPTION", "text", None, "a short description of the model and its data under the title, in Markdown"),
    Setting("ACTVIZ_MODEL_CHOICES", "list", None, "the models visitors may choose: model (the one ACTVIZ_MODEL sets), demo (the "
            "handwritten digits), upload (a file of their own); the first is shown first (default: all that apply)",
            choices=("model", "demo", "upload")),
    Setting("ACTVIZ_ALLOW_TRUST", "bool", False, "offer visitors the switch that loads a model file without the safety checks"),
    # memory and time of a shared server
    Setting("ACTVIZ_MEMORY_MB", "int", 2000, "the memory the dashboard may hold and use for its visitors, in MB", 256),
    Setting("ACTVIZ_MAX_UPLOAD_MB", "int", 200, "the largest upload accepted, in MB", 1),
    Setting("ACTVIZ_MAX_JOBS", "int", 1, "expensive jobs running at once on the server", 1),
    Setting("ACTVIZ_MAX_JOB_SECONDS", "float", 300.0, "the longest run of one job, in seconds", 1),
    Setting("ACTVIZ_MAX_PATTERN_STEPS", "int", 256, "optimisation steps of one filter-picture request", 1),
    Setting("ACTVIZ_MAX_PATTERN_CHANNELS", "int", 16, "channels of one filter-picture request", 1),
    Setting("ACTVIZ_MAX_DATASET_IMAGES", "int", 5000, "images per data set run in the dashboard", 1),
    Setting("ACTVIZ_MAX_SUMMARY_CLASSES", "int", 1000, "classes of a saved data set summary that is opened", 1),
    Setting("ACTVIZ_MAX_SUMMARY_IMAGES", "int", 1_000_000, "images of a saved data set summary that is opened", 1),
    Setting("ACTVIZ_MAX_FORWARD_MB", "float", 2048.0, "the memory of one forward pass, in MB", 1),
    Setting("ACTVIZ_MAX_MODEL_MB", "float", 4096.0, "the memory of loading one model, in MB", 1),
    Setting("ACTVIZ_PRECISION", "choice", "float32", "the precision the dashboard runs models in: bfloat16 is several times "
            "faster on processors with bfloat16 instructions (AVX512_BF16, AMX), within stated tolerances", choices=("float32", "bfloat16")),
    Setting("ACTVIZ_WORKER", "bool", True, "run each data set pass of the dashboard in a process of its own, whose memory "
            "is given back when the pass ends"),
    # the child processes that check model files
    Setting("ACTVIZ_ISOLATE", "choice", None, "how much of opening an untrusted model file runs in a child process", choices=("scan", "vet")),
    Setting("ACTVIZ_SCAN_TIMEOUT", "float", 60.0, "seconds the child that scans a model file may run", 1),
    Setting("ACTVIZ_SCAN_MEMORY_MB", "int", 1024, "memory of the child that scans a model file, in MB", 64),
    Setting("ACTVIZ_VET_TIMEOUT", "float", 180.0, "seconds the child that opens and runs an uploaded model may run", 1),
    Setting("ACTVIZ_VET_MEMORY_MB", "int", 3072, "memory of the child that opens and runs an uploaded model, in MB", 256),
    Setting("ACTVIZ_VET_CPU_SECONDS", "float", None, "processor seconds of that child, all threads (default: twice its timeout)", 1),
    Setting("ACTVIZ_CHECK_WORKERS", "int", 2, "children checking model files at once", 1),
]
#: name -> Setting, every variable actviz reads.
SETTINGS = {setting.name: setting for setting in _TABLE}


def value(name: str, env: Mapping[str, Any] | None = None, *, fallback: Mapping[str, Any] | None = None) -> Any:
    """The value of setting ``name`` from ``env`` (default: ``os.environ``), else from ``fallback``
    (the dashboard passes its Streamlit secrets), else its default; ``SettingError`` for a bad value."""
    setting = SETTINGS[name]
    env = os.environ if env is None else env
    for source in (env, fallback or {}):
        raw = source.get(name)
        if raw is not None and str(raw).strip():
            return setting.parse(str(raw))
    return setting.default


def is_set(name: str, env: Mapping[str, Any] | None = None) -> bool:
    """Whether setting ``name`` is given a value in ``env`` (default: ``os.environ``), not left at its default."""
    raw = (os.environ if env is None else env).get(SETTINGS[name].name)
    return raw is not None and bool(str(raw).strip())


def model_choices(chosen: tuple[str, ...] | None, *, configured: bool) -> tuple[str, ...]:
    """The models visitors may choose, first shown first: ``chosen`` (ACTVIZ_MODEL_CHOICES), else
    the configured model when there is one (``configured``: ACTVIZ_MODEL is set), the demo and an
    upload, as before the setting existed; ``SettingError`` when ``chosen`` names the configured
    model and there is none.

    >>> model_choices(None, configured=False), model_choices(None, configured=True)
    (('demo', 'upload'), ('model', 'demo', 'upload'))
    >>> model_choices(("model",), configured=True)
    ('model',)
    >>> model_choices(("model", "demo"), configured=False)
    Traceback (most recent call last):
    ...
    actviz.errors.SettingError: ACTVIZ_MODEL_CHOICES offers 'model', but no model is configured: set ACTVIZ_MODEL to a model file (a path or an http(s) address), or leave 'model' out.
    """
    if chosen is None:
        return ("model", "demo", "upload") if configured else ("demo", "upload")
    if "model" in chosen and not configured:
        raise SettingError("ACTVIZ_MODEL_CHOICES offers 'model', but no model is configured: set ACTVIZ_MODEL to a model file "
                           "(a path or an http(s) address), or leave 'model' out.")
    return tuple(chosen)


def megabytes(name: str, env: Mapping[str, Any] | None = None) -> int:
    """A setting given in MB, in bytes."""
    return int(float(value(name, env)) * 1024**2)
