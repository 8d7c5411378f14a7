"""The parent's side of checking untrusted model files in a child process with limits, so that a
file made to crash, hang or exhaust the reader takes down only that child.

Each check runs in a fresh ``python -m actviz.safety.child`` process (the child's side: ``child``)
on a file alone in a private folder (``loading.private_copy``):

- **scan** (``scan_file``; every untrusted load, command line and dashboard): the
  structure scan (zipfile, h5py, json; no TensorFlow, about half a second). A segfault
  in h5py, an endless HDF5 walk, a RecursionError or a memory blow-up ends as one
  ``ModelCheckError`` with a sentence.
- **vet** (``vet_file``; uploads to the dashboard): from the scan the parent has
  checked, the dry build, the load in safe mode, the layer table and one forward pass
  at the model's input size, under limits. It returns a ``VetReport``. The parent then
  loads the model itself from the same private copy: every step that could crash, hang
  or take unbounded memory has already run once, under limits, on exactly those bytes.

Limits here (``ChildLimits``) are what a child may take; the child sets them on itself
first thing (see ``child``); the wall-clock time is the parent's: when it is up, the
child's whole process group is killed. The parent owns the private folder and removes it
whatever happens, so a killed child leaves nothing behind. At most ``ACTVIZ_CHECK_WORKERS``
children run at once; others wait for a slot up to their own time limit, then get
``ServerBusyError``. A child's refusal is raised here as the same ``ActvizError`` class
with the same words; a crash, a timeout or a broken limit in words of its own.

Settings (environment variables; defaults in brackets):

- ``ACTVIZ_SCAN_TIMEOUT`` [60] seconds, ``ACTVIZ_SCAN_MEMORY_MB`` [1024]: the scan child.
- ``ACTVIZ_VET_TIMEOUT`` [180] seconds, ``ACTVIZ_VET_MEMORY_MB`` [3072]: the vetting child
  (TensorFlow alone takes about 600 MB of it).
- ``ACTVIZ_VET_CPU_SECONDS`` [2 x the timeout]: processor time of the vetting child (all threads).
- ``ACTVIZ_CHECK_WORKERS`` [2]: children at once, per server process.
- ``ACTVIZ_MAX_MODEL_MB`` (``building``) and ``ACTVIZ_MAX_FORWARD_MB`` (``probe``) apply inside the child too.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from .. import errors
from ..errors import ActvizError, ModelCheckError, ModelFileError, ServerBusyError
from ..settings import value
from .child import EXIT_MEMORY
from .scan import FileScan

log = logging.getLogger("actviz")

#: The folder holding the ``actviz`` package: the child imports this very copy.
_ROOT = Path(__file__).resolve().parents[2]
#: Largest answer read back from a child, in bytes (a configuration is at most 32 MB).
_MAX_ANSWER = 160 * 1024**2
_CRASH_SIGNALS = {signal.SIGSEGV: "a segmentation fault", signal.SIGBUS: "a bus error", signal.SIGILL: "an illegal instruction",
                  signal.SIGFPE: "an arithmetic fault", signal.SIGABRT: "an abort"}

_slots_lock = threading.Lock()
_slots: threading.BoundedSemaphore | None = None


@dataclass(frozen=True)
class ChildLimits:
    """What one child may take: wall-clock ``seconds``, ``memory_mb`` of data, ``cpu_seconds`` of processor time."""

    seconds: float
    memory_mb: int
    cpu_seconds: float


def scan_limits() -> ChildLimits:
    """Limits of the scan child (``ACTVIZ_SCAN_TIMEOUT`` [60 s], ``ACTVIZ_SCAN_MEMORY_MB`` [1024])."""
    seconds = value("ACTVIZ_SCAN_TIMEOUT")
    return ChildLimits(seconds=seconds, memory_mb=value("ACTVIZ_SCAN_MEMORY_MB"), cpu_seconds=seconds)


def vet_limits(*, timeout: float | None = None, memory_mb: int | None = None) -> ChildLimits:
    """Limits of the vetting child (``ACTVIZ_VET_TIMEOUT`` [180 s], ``ACTVIZ_VET_MEMORY_MB`` [3072],
    ``ACTVIZ_VET_CPU_SECONDS`` [2 x timeout]); ``timeout`` / ``memory_mb`` override them."""
    seconds = float(timeout) if timeout else value("ACTVIZ_VET_TIMEOUT")
    memory = int(memory_mb) if memory_mb else value("ACTVIZ_VET_MEMORY_MB")
    return ChildLimits(seconds=seconds, memory_mb=memory, cpu_seconds=value("ACTVIZ_VET_CPU_SECONDS") or 2 * seconds)


@dataclass
class VetReport:
    """What vetting found: the model opened, its table was traced and one pass ran, under limits.

    ``input_shape``: the model's (H, W, C), None for any size; ``checked_size``:
    the (H, W) the pass ran at (a model that takes any size is checked at the
    largest size actviz feeds it); ``forward_bytes``: that pass's memory worked
    out before running it; ``seconds``: the whole check as the caller waited for
    it; ``peak_memory_mb``: the child's peak resident memory; ``scanned``: the
    checked scan the child built the model from.
    """

    name: str
    kind: str
    input_shape: tuple
    checked_size: tuple
    layer_count: int
    spatial_layer_count: int
    declared_weight_bytes: int
    forward_bytes: int
    load_seconds: float
    forward_seconds: float
    seconds: float
    peak_memory_mb: float
    notes: list[str] = field(default_factory=list)
    scanned: FileScan | None = field(default=None, repr=False)
    ok: bool = True

    def summary(self) -> str:
        """One sentence for the person who uploaded the model."""
        height, width = self.checked_size
        return (
            f"Checked in a separate process in {self.seconds:.1f} s: {self.layer_count} layers, "
            f"{self.declared_weight_bytes / 1e6:,.1f} MB of weights; one image of {height} x {width} pixels takes "
            f"{self.forward_seconds:.2f} s and about {self.forward_bytes / 1e6:,.0f} MB to run."
        )


def scan_file(path: str, *, kind: str, label: str = "model", limits: ChildLimits | None = None) -> FileScan:
    """The structure scan of the model file at ``path`` (of ``kind`` "keras" or "h5"), in a child under ``limits``.

    ``path`` must be alone in a private folder (``loading.private_copy``): the child writes there.
    """
    answer = _run_child("scan", path, {"kind": kind}, label=label, limits=limits or scan_limits())
    return FileScan.from_json(answer)


def vet_file(path: str, scanned: FileScan, *, label: str = "model", limits: ChildLimits | None = None) -> VetReport:
    """Build, trace and run once the model file at ``path`` (in a private folder) in a child under
    ``limits``, from ``scanned``: its structure scan, whose configuration the caller has checked.

    ``seconds`` in the report is the child's time; the caller that also scanned counts its own.
    """
    started = time.monotonic()
    answer = _run_child("vet", path, {"scanned": scanned.to_json()}, label=label, limits=limits or vet_limits())
    return VetReport(
        name=label, kind=scanned.kind, input_shape=tuple(answer["input_shape"]), checked_size=tuple(answer["checked_size"]),
        layer_count=int(answer["layer_count"]), spatial_layer_count=int(answer["spatial_layer_count"]),
        declared_weight_bytes=int(answer["declared_weight_bytes"]), forward_bytes=int(answer["forward_bytes"]),
        load_seconds=float(answer["load_seconds"]), forward_seconds=float(answer["forward_seconds"]),
        seconds=time.monotonic() - started, peak_memory_mb=float(answer["peak_memory_mb"]),
        notes=[str(n) for n in answer.get("notes", [])], scanned=scanned,
    )


def _workers() -> threading.BoundedSemaphore:
    global _slots
    with _slots_lock:
        if _slots is None:
            _slots = threading.BoundedSemaphore(value("ACTVIZ_CHECK_WORKERS"))
        return _slots


@contextlib.contextmanager
def _slot(wait: float) -> Iterator[None]:
    slots = _workers()
    if not slots.acquire(timeout=wait):
        raise ServerBusyError(
            "The server is busy checking other model files right now; try again in a minute."
        )
    try:
        yield
    finally:
        slots.release()


def _run_child(task: str, path: str, job: dict, *, label: str, limits: ChildLimits) -> dict:
    """Run ``task`` on the file at ``path`` in a child under ``limits``, telling it ``job`` too;
    its answer, or its refusal raised here."""
    folder = os.path.dirname(os.path.abspath(path))
    job = {**job, "path": os.path.abspath(path), "limits": [limits.memory_mb, limits.cpu_seconds]}
    with open(os.path.join(folder, "job.json"), "w") as handle:
        json.dump(job, handle)
    log_path = os.path.join(folder, "child.log")
    with _slot(limits.seconds), open(log_path, "wb") as child_log:
        process = subprocess.Popen(
            [sys.executable, "-m", "actviz.safety.child", task, folder], cwd=str(_ROOT), env=_child_environment(),
            stdin=subprocess.DEVNULL, stdout=child_log, stderr=child_log, start_new_session=True, close_fds=True,
        )
        try:
            code = process.wait(timeout=limits.seconds)
        except subprocess.TimeoutExpired:
            _kill(process)
            _log_failure(task, label, f"stopped after {limits.seconds:.0f} s", log_path)
            raise ModelCheckError(
                f"Checking the model file took longer than {limits.seconds:g} seconds, the limit here; it was stopped "
                "and the file refused. A model that slow to open or to run once would make the program unusable. "
                f"(Whoever runs this program can raise the limit: ACTVIZ_{task.upper()}_TIMEOUT.)"
            ) from None
        except BaseException:  # the caller was interrupted: never leave the child running
            _kill(process)
            raise
    return _answer(task, code, folder, label=label, limits=limits, log_path=log_path)


def _kill(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)  # the child leads its own group (start_new_session)
    process.wait()


def _child_environment() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env["CUDA_VISIBLE_DEVICES"] = ""  # a check needs no GPU, and must not take one from the server
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _answer(task: str, code: int, folder: str, *, label: str, limits: ChildLimits, log_path: str) -> dict:
    if code == 0:
        result = _read_result(folder)
        if result is not None:
            if result.get("ok"):
                return result["value"]
            raise _refusal(result, task=task, label=label, log_path=log_path)
        _log_failure(task, label, "no answer", log_path)
        raise ModelCheckError("Checking the model file ended without an answer; the file is refused.")
    if code == EXIT_MEMORY or code == -signal.SIGKILL:  # SIGKILL not sent by us: the kernel's out-of-memory killer
        _log_failure(task, label, f"out of memory (exit {code})", log_path)
        raise ModelCheckError(_memory_message(task, limits))
    if code == -signal.SIGXCPU:
        _log_failure(task, label, "processor time limit", log_path)
        raise ModelCheckError(
            f"Checking the model file used more than {limits.cpu_seconds:g} seconds of processor time, the limit "
            "here; it was stopped and the file refused."
        )
    if code < 0 and -code in _CRASH_SIGNALS:
        _log_failure(task, label, f"signal {-code}", log_path)
        what = _CRASH_SIGNALS[signal.Signals(-code)]
        raise ModelCheckError(
            f"The model file made the program reading it crash ({what}). The file is damaged, or was made to attack "
            "the program that opens it; it is refused. Nothing else was affected."
            + (f" (It may also have needed more than the {limits.memory_mb:,} MB of memory allowed.)" if -code == signal.SIGABRT else "")
        )
    _log_failure(task, label, f"exit status {code}", log_path)
    raise ModelCheckError(
        f"Checking the model file stopped unexpectedly (exit status {code}); the file is refused. "
        "If the file is genuine, the program's log has the details for whoever runs it."
    )


def _memory_message(task: str, limits: ChildLimits) -> str:
    return (
        f"Checking the model file needed more than the {limits.memory_mb:,} MB of memory allowed, so it was stopped "
        f"and the file refused. (Whoever runs this program can raise the limit: ACTVIZ_{task.upper()}_MEMORY_MB.)"
    )


def _read_result(folder: str) -> dict | None:
    path = os.path.join(folder, "result.json")
    try:
        if os.path.getsize(path) > _MAX_ANSWER:
            return None
        with open(path, encoding="utf-8") as handle:
            result = json.load(handle)
    except (OSError, ValueError, RecursionError):
        return None
    return result if isinstance(result, dict) else None


def _refusal(result: dict, *, task: str, label: str, log_path: str) -> ActvizError:
    """The error the child reported, as the same ActvizError class here."""
    message = str(result.get("message", ""))[:4000] or "The model file is refused."
    name = str(result.get("error"))
    kind = getattr(errors, name, None)
    if isinstance(kind, type) and issubclass(kind, ActvizError) and result.get("error") != "bug":
        return kind(message)
    log.error("checking %r (%s) failed unexpectedly: %s\n%s", label, task, message, result.get("traceback", ""))
    return ModelFileError(
        f"actviz could not check this model file: reading it failed in an unexpected way ({message[:200]}). "
        "The file is refused. If it opens in Keras, this may be a bug in actviz; the program's log has the details."
    )


def _log_failure(task: str, label: str, what: str, log_path: str) -> None:
    try:
        with open(log_path, "rb") as handle:
            handle.seek(max(0, os.path.getsize(log_path) - 2000))
            tail = handle.read().decode("utf-8", "replace")
    except OSError:
        tail = ""
    log.warning("checking model %r (%s) failed: %s\n%s", label, task, what, tail)
